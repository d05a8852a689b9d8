#!/usr/bin/env bash
# Scale-out end to end, on loopback only: HAProxy (Debian's package) running deploy/haproxy.cfg
# as shipped, with only its addresses replaced, in front of three `braid serve` backends with
# server ids 01, 02 and 03 and one shared identity. The Go test TestLoadBalancedSessions
# (cmd/braid/lb_e2e_test.go) then opens 1,000 sessions x 4 paths through it (16 at a time),
# checks from the backends' logs that every path of each session came up on the backend its id
# names, and that each transfer is byte-exact; then it kills backend 02 and checks that exactly
# its sessions fail (ErrPathLost: the re-dial is answered UNKNOWN_SESSION) and that new sessions
# open on the others. Every process it starts is stopped on exit; on failure it prints the logs.
#
# Run as root (it installs haproxy with apt-get if missing, and runs in a network namespace of
# its own, lb-e2e-PID, whose loopback MTU of 1200 splits every ClientHello): bash .ci/lb-e2e.sh
# Then the same with --insecure backends and clients (200 sessions), through the configuration
# DEPLOY.md gives for plain TCP, which routes on the attach frame's bytes.
# LB_SESSIONS and LB_INSECURE_SESSIONS override the 1,000 and 200 sessions.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

E2E_NAME=lb-e2e
. .ci/e2e-lib.sh
install_missing haproxy ss=iproute2 ps=procps

# Run in a network namespace of our own whose loopback has an MTU of 1200, so that every
# ClientHello (about 1.5 KB with its post-quantum key share) spans two TCP segments, as on most
# real networks: HAProxy must wait for the whole hello to read the server name. Where no
# namespace can be made, run on the host's loopback (one segment) and say so.
if [ -z "${LB_NETNS:-}" ]; then
  ns="lb-e2e-$$"
  if ip netns add "$ns" 2>/dev/null; then
    rc=0
    ip -n "$ns" link set lo up mtu 1200 && LB_NETNS="$ns" ip netns exec "$ns" bash "$0" "$@" || rc=$?
    ip netns del "$ns" 2>/dev/null || true
    exit "$rc"
  fi
  say "no network namespace (not root?): on the host's loopback, where a ClientHello fits one segment"
fi

start_work

started=$(date +%s)
[ -n "${LB_NETNS:-}" ] && say "in network namespace $LB_NETNS, loopback MTU $(cat /sys/class/net/lo/mtu)"
say "building braid and the test"
go build -o "$work/braid" ./cmd/braid
go test -c -o "$work/lb.test" ./cmd/braid

# scenario MODE SESSIONS: three backends and haproxy, then the Go test. MODE is tls (the
# shipped configuration) or insecure (plain TCP; the rules DEPLOY.md gives for it, which read
# the attach frame's first 7 bytes instead of the ClientHello's server name).
scenario() {
  local mode=$1 sessions=$2 first=${#pids[@]} i
  local LB B1 B2 B3
  LB=$(free_port) B1=$(free_port) B2=$(free_port) B3=$(free_port)
  local dir="$work/$mode" sec=(--identity "$work/id") insecure=""
  mkdir -p "$dir"
  if [ "$mode" = insecure ]; then sec=(--insecure); insecure=1; fi

  say "$mode: three backends, server ids 01 02 03, one identity"
  # Behind a balancer every connection comes from the balancer's address: the per-address
  # limits (handshakes, sessions not yet established) must allow what all clients do at once.
  local backends=""
  for i in 1 2 3; do
    local port_var="B$i"
    "$work/braid" serve --listen "127.0.0.1:${!port_var}" "${sec[@]}" --server-id "0$i" \
      --max-handshakes-per-ip 256 --max-pending-sessions-per-ip 256 \
      >"$dir/serve$i.out" 2>"$work/$mode-serve$i.log" & pids+=($!)
    backends="$backends${backends:+,}0$i:$!:$work/$mode-serve$i.log"
    # One at a time: the first creates the identity, the others load it.
    wait_for "$work/$mode-serve$i.log" "msg=listening .*server_id=0$i " 30
  done
  local fp=""
  if [ "$mode" = tls ]; then
    fp=$(grep -o 'SHA256:[^ ]*' "$dir/serve1.out" | head -1)
    for i in 2 3; do
      grep -q "$fp" "$dir/serve$i.out" || fail "backend $i does not present the shared identity $fp"
    done
  fi

  say "$mode: haproxy with deploy/haproxy.cfg"
  local rules=()
  if [ "$mode" = insecure ]; then
    rules=(-e 's/accept if { req\.ssl_hello_type 1 }/accept if { req.len ge 7 }/'
      -e 's/use-server \(braid[0-9]*\) if { req\.ssl_sni -m beg \([0-9a-f]*\)\. }/use-server \1 if { req.payload(0,7) -m bin 000000321201\2 }/')
  fi
  sed -e "s/0\.0\.0\.0:7878/127.0.0.1:$LB/" \
    -e "s/10\.0\.0\.11:7878/127.0.0.1:$B1/" -e "s/10\.0\.0\.12:7878/127.0.0.1:$B2/" -e "s/10\.0\.0\.13:7878/127.0.0.1:$B3/" \
    "${rules[@]}" deploy/haproxy.cfg >"$dir/haproxy.cfg"
  grep -q "127.0.0.1:$B3" "$dir/haproxy.cfg" && ! grep -q '10\.0\.0\.' "$dir/haproxy.cfg" || fail "deploy/haproxy.cfg no longer has the addresses this script replaces"
  if [ "$mode" = insecure ]; then
    [ "$(grep -c 'req.payload(0,7) -m bin 0000003212010[123] }' "$dir/haproxy.cfg")" = 3 ] || fail "deploy/haproxy.cfg no longer has the rules this script rewrites"
  fi
  haproxy -c -q -f "$dir/haproxy.cfg" || fail "haproxy rejects the $mode configuration"
  haproxy -db -f "$dir/haproxy.cfg" >"$work/$mode-haproxy.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do
    ss -Htln "sport = :$LB" | grep -q . && break
    sleep 0.1
  done
  ss -Htln "sport = :$LB" | grep -q . || fail "haproxy does not listen on $LB"
  # No wait for the health checks: HAProxy counts its servers up from the start (checks only
  # take them out), and a listening haproxy is ready.

  say "$mode: $sessions sessions x 4 paths through haproxy, then backend 02 killed"
  BRAID_LB_ADDR="127.0.0.1:$LB" BRAID_LB_FINGERPRINT="$fp" BRAID_LB_INSECURE="$insecure" \
    BRAID_LB_BACKENDS="$backends" BRAID_LB_SESSIONS="$sessions" \
    timeout 150 "$work/lb.test" -test.run '^TestLoadBalancedSessions$' -test.v -test.count=1 -test.timeout 140s \
    >"$work/$mode-test.log" 2>&1 || { cat "$work/$mode-test.log"; fail "TestLoadBalancedSessions ($mode)"; }
  grep -E '^\s+lb_e2e_test.go' "$work/$mode-test.log" || true
  grep -q -- '--- PASS: TestLoadBalancedSessions' "$work/$mode-test.log" || { cat "$work/$mode-test.log"; fail "the test did not run"; }

  # This scenario's processes go before the next starts (backend 02 is gone already).
  stop "${pids[@]:$first}"
  wait 2>/dev/null || true
}

scenario tls "${LB_SESSIONS:-1000}"
scenario insecure "${LB_INSECURE_SESSIONS:-200}"

say "ok in $(($(date +%s) - started)) s"
