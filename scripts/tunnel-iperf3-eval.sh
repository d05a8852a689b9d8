#!/usr/bin/env bash
# iperf3 over four paths between two network namespaces, in one run: through braid tunnel (one
# TCP connection of iperf3's, carried over a four-path session), directly (iperf3 over one path,
# and four iperf3 at once, one per path: the most TCP can get from the paths), and over Linux
# MPTCP (mptcpize run iperf3, one subflow per path). See docs/EVALUATION.md, "Tunnel".
#
#   sudo scripts/tunnel-iperf3-eval.sh                 # 4 x 50 Mbit/s, 10 s per run
#   sudo RATES="20 40 60 80" DURATION=15 scripts/tunnel-iperf3-eval.sh
#   sudo BRAID=/path/to/braid scripts/tunnel-iperf3-eval.sh   # a given binary instead of building
#
# Topology: namespaces bte-PID-c (client) and bte-PID-s (server), joined by one veth pair per
# path: c<i> 10.250.<i>.1/24 to s<i> 10.250.<i>.2/24, each end shaped by tbf to the path's rate
# (× 1514/1448, so that TCP's payload gets the rate; see EVALUATION.md, "What a rate means").
# No namespace has any other interface or route: no packet leaves them. Everything is removed on
# exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
read -r -a rates <<<"${RATES:-50 50 50 50}"
DURATION=${DURATION:-10}
paths=${#rates[@]}

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v mptcpize >/dev/null || need+=(mptcpize)
command -v tc >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

C=bte-$$-c S=bte-$$-s
work=$(mktemp -d /tmp/braid-tunnel-eval.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  # Everything this script started runs in one of its two namespaces: stop those processes,
  # and nothing else, then remove the namespaces.
  for ns in "$C" "$S"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then tail -n 20 "$work"/*.log 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mbits() { # the receiver's bits/s from iperf3 -J, in Mbit/s
  grep -A8 '"sum_received"' "$1" | grep -m1 bits_per_second | sed -E 's/.*:[[:space:]]*([0-9.e+]+).*/\1/' |
    awk '{ printf "%.1f", $1 / 1e6 }'
}

if [ -n "${BRAID:-}" ]; then cp "$BRAID" "$work/braid"; else go build -o "$work/braid" ./cmd/braid; fi
ip netns add "$C"
ip netns add "$S"
for ns in "$C" "$S"; do
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_timestamps=1 net.mptcp.enabled=1
  ip -n "$ns" mptcp limits set subflows 8 add_addr_accepted 8
done
sum=0
for i in $(seq 0 $((paths - 1))); do
  ip -n "$C" link add "c$i" mtu 1500 type veth peer name "s$i" mtu 1500 netns "$S"
  ip -n "$C" addr add "10.250.$i.1/24" dev "c$i"
  ip -n "$S" addr add "10.250.$i.2/24" dev "s$i"
  ip -n "$C" link set "c$i" up
  ip -n "$S" link set "s$i" up
  bits=$((rates[i] * 1000000 * 1514 / 1448))
  for side in "$C c$i" "$S s$i"; do
    set -- $side
    tc -n "$1" qdisc replace dev "$2" root tbf rate "${bits}bit" burst 32768 latency 20ms
  done
  sum=$((sum + rates[i]))
  # MPTCP: the server announces its address on every other path; the client opens a subflow to
  # each, leaving by that path's interface.
  [ "$i" -gt 0 ] && ip -n "$S" mptcp endpoint add "10.250.$i.2" dev "s$i" signal
done

# Servers: an iperf3 per direct path, one for MPTCP, one on the server's loopback for the tunnel,
# and braid serve allowing only that one.
for i in $(seq 0 $((paths - 1))); do
  ip netns exec "$S" iperf3 -s -B "10.250.$i.2" -p $((5201 + i)) >"$work/iperf-$i.log" 2>&1 & pids+=($!)
done
ip netns exec "$S" mptcpize run iperf3 -s -p 5300 >"$work/iperf-mptcp.log" 2>&1 & pids+=($!)
ip netns exec "$S" iperf3 -s -B 127.0.0.1 -p 5301 >"$work/iperf-tunnel.log" 2>&1 & pids+=($!)
ip netns exec "$S" "$work/braid" serve --listen 0.0.0.0:7878 --identity "$work/id" --allow 127.0.0.1:5301 >"$work/serve.out" 2>"$work/serve.log" & pids+=($!)
for _ in $(seq 100); do grep -q 'msg=listening' "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
fp=$(grep -o 'SHA256:[^ ]*' "$work/serve.out" | head -1)
specs=()
for i in $(seq 0 $((paths - 1))); do specs+=(--path "10.250.$i.1=10.250.$i.2:7878"); done
ip netns exec "$C" "$work/braid" tunnel --server-fingerprint "$fp" "${specs[@]}" -L 127.0.0.1:5301:127.0.0.1:5301 \
  >"$work/tunnel.out" 2>"$work/tunnel.log" & pids+=($!)
for _ in $(seq 100); do grep -q forwarding "$work/tunnel.out" 2>/dev/null && break; sleep 0.1; done
grep -q forwarding "$work/tunnel.out" || { echo "the tunnel did not start" >&2; exit 1; }
sleep 1

run() { # name, then the iperf3 command in the client namespace; prints Mbit/s
  local name=$1
  shift
  timeout $((DURATION + 30)) ip netns exec "$C" "$@" -t "$DURATION" -J >"$work/$name.json" 2>"$work/$name.log" ||
    { echo "$name failed" >&2; exit 1; }
  mbits "$work/$name.json"
}
one=$(run one iperf3 -c 10.250.0.2 -p 5201)
for i in $(seq 0 $((paths - 1))); do
  timeout $((DURATION + 30)) ip netns exec "$C" iperf3 -c "10.250.$i.2" -B "10.250.$i.1" -p $((5201 + i)) -t "$DURATION" -J \
    >"$work/each-$i.json" 2>&1 &
  each_pids+=($!)
done
for p in "${each_pids[@]}"; do wait "$p" || { echo "per-path iperf3 failed" >&2; exit 1; }; done
each=0
for i in $(seq 0 $((paths - 1))); do each=$(awk -v a="$each" -v b="$(mbits "$work/each-$i.json")" 'BEGIN { printf "%.1f", a + b }'); done
mptcp=$(run mptcp mptcpize run iperf3 -c 10.250.0.2 -p 5300)
mptcp_r=$(run mptcp-r mptcpize run iperf3 -c 10.250.0.2 -p 5300 -R)
tun=$(run tunnel iperf3 -c 127.0.0.1 -p 5301)
tun_r=$(run tunnel-r iperf3 -c 127.0.0.1 -p 5301 -R)
tun_p=$(run tunnel-p4 iperf3 -c 127.0.0.1 -p 5301 -P 4)

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
echo
echo "paths: ${rates[*]} Mbit/s (sum $sum), $DURATION s per run, braid tunnel over TLS (4 paths, adaptive scheduler)"
echo
echo "| run | Mbit/s | of the sum of rates | of TCP, one per path |"
echo "|---|---:|---:|---:|"
echo "| iperf3 direct, one path | $one | $(pct "$one" "$sum") | $(pct "$one" "$each") |"
echo "| iperf3 direct, one per path at once (TCP baseline) | $each | $(pct "$each" "$sum") | 100% |"
echo "| iperf3 over MPTCP (mptcpize), upload | $mptcp | $(pct "$mptcp" "$sum") | $(pct "$mptcp" "$each") |"
echo "| iperf3 over MPTCP (mptcpize), download (-R) | $mptcp_r | $(pct "$mptcp_r" "$sum") | $(pct "$mptcp_r" "$each") |"
echo "| iperf3 through braid tunnel, upload | $tun | $(pct "$tun" "$sum") | $(pct "$tun" "$each") |"
echo "| iperf3 through braid tunnel, download (-R) | $tun_r | $(pct "$tun_r" "$sum") | $(pct "$tun_r" "$each") |"
echo "| iperf3 -P 4 through braid tunnel | $tun_p | $(pct "$tun_p" "$sum") | $(pct "$tun_p" "$each") |"
