# Shared by the end-to-end scripts (.ci/tunnel-e2e.sh, .ci/lb-e2e.sh). Source it after setting
# E2E_NAME; it defines the helpers below and nothing runs until they are called.

say() { printf -- '-- %s\n' "$*"; }
fail() { echo "$E2E_NAME: FAIL: $*" >&2; exit 1; }

# install_missing COMMAND=PACKAGE...: installs with apt-get the packages whose command is missing.
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || need+=("${pair#*=}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# start_work: a scratch directory ($work), the list of started processes to stop at exit
# ($pids: append each with pids+=($!)), and the exit trap that stops them, prints the logs'
# tails ($work/*.log) on failure and removes $work.
start_work() {
  work=$(mktemp -d "/tmp/braid-$E2E_NAME.XXXXXX")
  pids=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

# ours PID: the process is still a child of this script. One that was killed and reaped may
# have left its pid to an unrelated process (pid_max is often 32768): only our own children are
# ever signalled.
ours() { [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ]; }

# stop PID...: SIGTERM, then SIGKILL after 5 s, our children only.
stop() {
  local p
  for p in "$@"; do ours "$p" && kill "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 50); do ours "$p" && kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    ours "$p" && kill -9 "$p" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  stop "${pids[@]}"
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $(basename "$f") (last 40 lines)"
      tail -n 40 "$f"
    done
  fi
  rm -rf "$work"
  exit "$rc"
}

# free_port: a free loopback TCP port, not handed out twice in this run. It is drawn from below
# the kernel's ephemeral range, so that no outgoing connection (a tunnel's own paths, a test's
# clients) can hold it by the time it is bound, and no socket in any state may use it now.
taken=" "
eph_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
port_lo=10000 port_hi=$((eph_lo > 20000 ? eph_lo : 30000))
free_port() {
  local p
  while :; do
    p=$((port_lo + RANDOM % (port_hi - port_lo)))
    case "$taken" in *" $p "*) continue ;; esac
    if ! ss -Htan "( sport = :$p or dport = :$p )" | grep -q .; then
      taken="$taken$p "
      echo "$p"
      return
    fi
  done
}

# wait_for FILE REGEX SECONDS: until FILE has a line matching REGEX.
wait_for() {
  for _ in $(seq $(($3 * 10))); do
    grep -Eq "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "timed out waiting for /$2/ in $(basename "$1")"
}

# wait_port PORT SECONDS: until something listens on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq $(($2 * 10))); do
    ss -Htln "sport = :$1" | grep -q . && return 0
    sleep 0.1
  done
  fail "nothing listens on port $1"
}
