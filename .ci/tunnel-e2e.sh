#!/usr/bin/env bash
# End-to-end test of braid tunnel with real applications, on loopback only: curl through SOCKS5
# and through -L to a local HTTP server (a byte-exact download of a large file), iperf3 through -L
# (upload and -R), redis-benchmark through -L to a local redis-server (pipelined and not),
# line-by-line interactive traffic through socat, braid cat to a target and to a server's stdout,
# a refused target, and a download over a shamir:2/3 tunnel. Every step is bounded in time; every
# process it starts is stopped on exit; any failure stops it with a message and the logs.
#
# Run as root (it installs what it needs with apt-get): bash .ci/tunnel-e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

E2E_NAME=tunnel-e2e
. .ci/e2e-lib.sh
div() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { printf f, a / b }'; } # div A B FORMAT

install_missing curl iperf3 redis-server redis-benchmark=redis-tools socat busybox ss=iproute2 ps=procps
start_work

say "building braid"
go build -o "$work/braid" ./cmd/braid
braid="$work/braid"

HTTP=$(free_port) REDIS=$(free_port) IPERF=$(free_port) ECHO=$(free_port) BRAID=$(free_port) BRAID2=$(free_port)
L_HTTP=$(free_port) L_REDIS=$(free_port) L_IPERF=$(free_port) L_ECHO=$(free_port) SOCKS=$(free_port)
L_DENIED=$(free_port) L_SHAMIR=$(free_port)

say "local services: HTTP (busybox httpd), redis-server, iperf3 -s, a socat echo"
mkdir -p "$work/www"
head -c $((96 << 20)) /dev/urandom >"$work/www/big.bin"
want=$(sha256sum <"$work/www/big.bin" | cut -d' ' -f1)
busybox httpd -f -p "127.0.0.1:$HTTP" -h "$work/www" >"$work/httpd.log" 2>&1 & pids+=($!)
redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 & pids+=($!)
iperf3 -s -B 127.0.0.1 -p "$IPERF" >"$work/iperf3-server.log" 2>&1 & pids+=($!)
socat "TCP-LISTEN:$ECHO,bind=127.0.0.1,fork,reuseaddr" EXEC:cat >"$work/echo.log" 2>&1 & pids+=($!)
for p in "$HTTP" "$REDIS" "$IPERF" "$ECHO"; do wait_port "$p" 20; done

say "braid serve (allows the four services on 127.0.0.1 only) and braid tunnel (4 paths, TLS)"
"$braid" serve --listen "127.0.0.1:$BRAID" --identity "$work/id" \
  --allow "127.0.0.1:$HTTP,127.0.0.1:$REDIS,127.0.0.1:$IPERF,127.0.0.1:$ECHO" >"$work/serve.out" 2>"$work/serve.log" & pids+=($!)
wait_for "$work/serve.log" 'msg=listening' 30 # the fingerprint is printed before the port is open
fp=$(grep -o 'SHA256:[^ ]*' "$work/serve.out" | head -1)
"$braid" tunnel --server-fingerprint "$fp" --paths 4 \
  -L "$L_HTTP:127.0.0.1:$HTTP" -L "$L_REDIS:127.0.0.1:$REDIS" -L "$L_IPERF:127.0.0.1:$IPERF" \
  -L "$L_ECHO:127.0.0.1:$ECHO" -L "$L_DENIED:127.0.0.1:22" -D "$SOCKS" \
  "127.0.0.1:$BRAID" >"$work/tunnel.out" 2>"$work/tunnel.log" & pids+=($!)
wait_for "$work/tunnel.out" "SOCKS5 on 127.0.0.1:$SOCKS" 30
cat "$work/tunnel.out"

say "curl through -L: 96 MiB, byte-exact"
# speed: curl's own average download speed (bytes/s), the same measure direct and through the tunnel
speed() { timeout 120 curl -sS --fail -o "$2" -w '%{speed_download}' "$1"; }
tun=$(speed "http://127.0.0.1:$L_HTTP/big.bin" "$work/dl.bin") || fail "curl through -L"
got=$(sha256sum <"$work/dl.bin" | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "curl -L: sha256 $got, want $want"
dir=$(speed "http://127.0.0.1:$HTTP/big.bin" /dev/null) || fail "curl direct"
echo "sha256 ok; $(div "$tun" 1048576 %.0f) MiB/s through the tunnel, $(div "$dir" 1048576 %.0f) MiB/s direct"
rm -f "$work/dl.bin"

say "curl through SOCKS5, the host name resolved by the server"
got=$(timeout 120 curl -sS --fail --socks5-hostname "127.0.0.1:$SOCKS" "http://localhost:$HTTP/big.bin" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "curl --socks5-hostname: sha256 $got, want $want"
echo "sha256 ok"

say "a target the server does not allow: SOCKS refuses it, -L resets it, the server logs it"
set +e
out=$(timeout 30 curl -sS --socks5-hostname "127.0.0.1:$SOCKS" "http://127.0.0.1:22/" 2>&1)
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "curl to a target not allowed succeeded"
echo "curl: exit $rc: $out"
echo "$out" | grep -qi 'not allowed\|(2)' || fail "curl did not report the SOCKS refusal (reply 2)"
set +e
timeout 30 curl -sS "http://127.0.0.1:$L_DENIED/" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "curl through -L to a target not allowed succeeded"
grep -q 'tunnel: stream refused.*target=127.0.0.1:22.*not on the server' "$work/serve.log" || fail "no refusal line in the server's log"
grep -m1 'tunnel: stream refused' "$work/serve.log"

say "iperf3 through -L, upload then download (-R), 3 s each"
for dir in "" "-R"; do
  timeout 60 iperf3 -c 127.0.0.1 -p "$L_IPERF" -t 3 $dir -J >"$work/iperf3.json" || fail "iperf3 $dir through the tunnel"
  bps=$(grep -A8 '"sum_received"' "$work/iperf3.json" | grep -m1 bits_per_second | sed -E 's/.*:[[:space:]]*([0-9.e+]+).*/\1/')
  awk -v b="$bps" 'BEGIN { exit !(b > 0) }' || fail "iperf3 $dir: no result"
  echo "iperf3 ${dir:-upload}: $(div "$bps" 1000000 %.0f) Mbit/s received through the tunnel"
done

say "redis through -L: a value round trip, then redis-benchmark (SET/GET, 50 clients), pipelined and not"
[ "$(timeout 10 redis-cli -p "$L_REDIS" set e2e "through braid")" = "OK" ] || fail "redis SET"
[ "$(timeout 10 redis-cli -p "$L_REDIS" get e2e)" = "through braid" ] || fail "redis GET"
p50() { # the GET line's p50 (ms) from redis-benchmark --csv
  grep '^"GET"' "$1" | cut -d, -f5 | tr -d '"'
}
for pipe in 1 16; do
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$REDIS" -t set,get -n 20000 -P "$pipe" --csv >"$work/redis-direct.csv" 2>&1 || fail "redis-benchmark direct -P $pipe"
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$L_REDIS" -t set,get -n 20000 -P "$pipe" --csv >"$work/redis-tunnel.csv" 2>&1 || fail "redis-benchmark through the tunnel -P $pipe"
  grep -q '^"GET"' "$work/redis-tunnel.csv" || fail "redis-benchmark -P $pipe: no GET result"
  d=$(p50 "$work/redis-direct.csv") t=$(p50 "$work/redis-tunnel.csv")
  echo "redis-benchmark -P $pipe: GET p50 $t ms through the tunnel, $d ms direct ($(div "$t" "$d" %.2f)x)"
done

say "interactive: 20 lines typed one by one through socat, each echoed before the next"
coproc ECHOER { timeout 60 socat - "TCP:127.0.0.1:$L_ECHO"; }
for i in $(seq 20); do
  printf 'keystrokes %d\n' "$i" >&"${ECHOER[1]}"
  read -r -t 10 line <&"${ECHOER[0]}" || fail "no echo of line $i"
  [ "$line" = "keystrokes $i" ] || fail "echo of line $i: $line"
  sleep 0.05
done
exec {ECHOER[1]}>&-
wait "$ECHOER_PID" || true
echo "20 lines echoed in order"

say "braid cat to a target, and to another server's stdout"
head -c $((8 << 20)) /dev/urandom >"$work/cat.in"
catwant=$(sha256sum <"$work/cat.in" | cut -d' ' -f1)
got=$(timeout 60 "$braid" cat -q --server-fingerprint "$fp" "127.0.0.1:$BRAID" "127.0.0.1:$ECHO" <"$work/cat.in" | sha256sum | cut -d' ' -f1)
[ "$got" = "$catwant" ] || fail "braid cat through an echo: sha256 $got, want $catwant"
"$braid" serve --listen "127.0.0.1:$BRAID2" --identity "$work/id2" --stdout >"$work/stdout.bin" 2>"$work/serve2.log" & pids+=($!)
wait_for "$work/serve2.log" 'msg=listening' 30
fp2=$(grep -o 'SHA256:[^ ]*' "$work/serve2.log" | head -1)
timeout 60 "$braid" cat -q --server-fingerprint "$fp2" --paths 3 "127.0.0.1:$BRAID2" <"$work/cat.in" || fail "braid cat to serve --stdout"
got=$(sha256sum <"$work/stdout.bin" | cut -d' ' -f1)
[ "$got" = "$catwant" ] || fail "serve --stdout wrote sha256 $got, want $catwant"
echo "both byte-exact"

say "a shamir:2/3 tunnel (3 paths, each carrying one share): curl through -L, byte-exact"
"$braid" tunnel --server-fingerprint "$fp" --mode shamir:2/3 -L "$L_SHAMIR:127.0.0.1:$HTTP" \
  "127.0.0.1:$BRAID" >"$work/tunnel2.out" 2>"$work/tunnel2.log" & pids+=($!)
wait_for "$work/tunnel2.out" "forwarding 127.0.0.1:$L_SHAMIR" 30
got=$(timeout 120 curl -sS --fail "http://127.0.0.1:$L_SHAMIR/big.bin" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "curl over shamir:2/3: sha256 $got, want $want"
grep -q 'mode shamir:2/3' "$work/tunnel2.out" || fail "the second tunnel is not shamir:2/3"
echo "sha256 ok"

say "ok"
