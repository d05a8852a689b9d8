package main

// commandDocs describes each command for its full help (braid help CMD, or CMD -h), between
// the synopsis and the flags. A command without an entry shows its one-line summary.
var commandDocs = map[string]string{
	"serve": `Accepts multipath sessions (and single-path frame clients) on one address, over TLS
unless --insecure. Received files go to --out DIR as NAME.part and are renamed to NAME only
once every byte has arrived and the sender's SHA-256 matches; an existing NAME is never
overwritten (the file is saved as NAME.1, NAME.2, ... before the extension) unless
--overwrite. --metrics ADDR serves Prometheus metrics at http://ADDR/metrics. SIGINT or SIGTERM
closes sessions gracefully; --json prints a summary of what was received on exit.`,
	"send": `Sends a message or a file over a session of --paths N connections to ADDR, or over the
paths given with --path LOCAL=REMOTE, and checks the receiver's receipt (byte count and
SHA-256). A file is checked before any connection is opened: a directory or an unreadable
file is refused. --file - streams standard input. The session starts if at least
--min-paths paths attach (default 1, K in a coded mode); the others are re-dialed in the
background. On a terminal a progress display shows the total and each path (rate, RTT,
share of the bytes, state); -q turns it and the summary off, -i 1s prints interval reports
instead. Ctrl-C prints what was delivered so far and exits with status 130. Rates are in
bits per second, sizes in bytes.`,
	"ping": `Sends PING probes to ADDR over one connection and reports each round trip, then the loss
and min/avg/median/p99/max/mdev. A probe unanswered within -W counts as lost and the next
one is sent on a new connection; the exit status is 1 if no probe was answered.`,
	"bench": `With no address: the single-path frame protocol on loopback beside raw TCP. With --paths
1,2,4,8 and no address: multipath sessions on loopback beside raw TCP, each ratio measured
in the same run. With ADDR (a braid serve, possibly on another host): --paths N measures a
session of N paths for --time (or --bytes), beside one path to the same server in the same
run; --reverse makes the server send; -i prints iperf3-style interval reports per path.
--tunnel: braid tunnel on loopback beside direct TCP and a plain relay. --sessions N,...:
N idle sessions on a braid serve child process (with --tunnel, tunnel sessions), its memory
and CPU per session. Rates are in bits per second.`,
	"eval": `Runs scenarios (paths with rates, delays and timed events; a workload) over emulated
paths. A SCENARIO is the name of one built into braid (braid eval --list), a name in
--scenarios DIR, or a path to a scenario file.`,
}
