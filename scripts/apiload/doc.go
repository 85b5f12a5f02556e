// Command apiload opens many connections at once to a peerq agent's local
// HTTP API, one request each, and counts how they were answered: 200, 429
// (with or without Retry-After), other statuses, and the connections that
// got no reply at all, by kind (refused, reset, closed, timed out). It
// prints the latency of the answers (p50, p99) and, given the agent's
// process id, the agent's peak resident memory (VmHWM, Linux).
//
//	go run ./scripts/apiload --data-dir /tmp/apiload-a1 -c 10000 --pid $(pgrep -n peerq)
//
// Every connection waits at a barrier until all are ready, then dials,
// sends its request (Connection: close) and reads the whole answer.
// With --connect-first they dial before the barrier and only the
// requests start together.
//
// Client-side limits (docs/API.md, "Overload"): each connection is a file
// descriptor — Go raises the soft RLIMIT_NOFILE to the hard limit on
// start (Linux, macOS; since Go 1.19), and the tool says so when even the
// hard limit is too small; each connection also takes an ephemeral port
// of the (source, destination) pair, 28,232 by default on Linux
// (net.ipv4.ip_local_port_range): --sources N spreads a loopback target's
// connections over the source addresses 127.0.0.1 … 127.0.0.N.
package main
