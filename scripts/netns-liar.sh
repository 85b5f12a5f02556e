#!/usr/bin/env bash
# netns-liar.sh — one liar among real agents (issue 23; BENCHMARKS.md,
# "Lying peers"): N-1 `peerq agent`s and one scripts/liar, each in its own
# network namespace on netns-cluster.sh's bridge, all with one cluster
# key; the liar follows every protocol and lies about its own machine
# (LIE=inflate: ×1000 within the catalog's bounds; LIE=extreme: the
# bounds; LIE=selfrank: reliability 1, all else true — stopped for DOWN
# seconds (75) first, so that the others saw it down longer than their
# doubt, then restarted). Each statement is asked at agent 3, then again
# over the honest agents only (WHERE node <> the liar) for the figure it
# should be near; the last is the 3 most reliable, ties broken by name. Needs root, iproute2,
# iptables and jq.
#
#   sudo scripts/netns-liar.sh              # 8 peers, the 8th lying
#   sudo N=8 LIE=extreme scripts/netns-liar.sh
#   sudo LIE=selfrank scripts/netns-liar.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-8}
LIE=${LIE:-inflate}
DIR=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}
NET=10.77.0
C=scripts/netns-cluster.sh
KEY=$(head -c 32 /dev/urandom | base64)
export PEERQ_AGENT_FLAGS="--encrypt $KEY"

liar_down() {
	kill "$(cat "$DIR/liar.pid" 2>/dev/null)" 2>/dev/null || true
	ip netns del "pq$N" 2>/dev/null || true
	ip link del "veth$N" 2>/dev/null || true
}
trap 'liar_down; $C down' EXIT

mkdir -p "$DIR"
export PEERQ_BIN="$DIR/peerq"
go build -o "$PEERQ_BIN" ./cmd/peerq # this checkout's agents, not an older build
go build -o "$DIR/liar" ./scripts/liar
rm -rf "$DIR"/a*
$C up $((N - 1))
ip netns add "pq$N"
ip link add "veth$N" type veth peer name eth0 netns "pq$N"
ip link set "veth$N" master pqbr0 up
ip netns exec "pq$N" ip addr add "$NET.$N/24" dev eth0
ip netns exec "pq$N" ip link set eth0 up
ip netns exec "pq$N" ip link set lo up
liar_up() {
	ip netns exec "pq$N" "$DIR/liar" --node "a$N" --bind "$NET.$N:7946" --exchange "$NET.$N:7947" \
		--data-dir "$DIR/a$N" --join "$NET.1:7946" --encrypt "$KEY" --lie "$LIE" >> "$DIR/a$N.log" 2>&1 &
	echo $! > "$DIR/liar.pid"
	for _ in $(seq 1 150); do
		[ "$($C query 3 "SELECT COUNT(*) FROM peers" --format csv 2>/dev/null | tail -1 || true)" = "$N" ] && break
		sleep 0.2
	done
	sleep 2 # the liar's record reaches every peer's membership view
}
liar_up
if [ "$LIE" = selfrank ]; then
	# Seen down for DOWN seconds: longer than the observers' doubt (10 s
	# a change, 2 s for the clocks), so that a claim of 1 is above what
	# they saw (node/observe.go).
	kill "$(cat "$DIR/liar.pid")"
	sleep "${DOWN:-75}"
	liar_up
fi
cat "$DIR/a$N.log"

# ask STATEMENT [WHERE-less honest filter]: the statement at agent 3, its
# exit code, status, answer and the check's reason; then over the honest.
ask() {
	local stmt=$1 honest=$2 out code
	set +e
	out=$($C query 3 "$stmt" --format json 2>/dev/null)
	code=$?
	set -e
	echo "$stmt"
	jq -r --arg code "$code" '"  exit \($code), status \(.meta.status), answer \(.rows | map(map(tostring) | join(" ")) | join("; ")), check: \(.meta.check.verdict // "none"), reason: \(.meta.reason // ""), rounds \(.meta.rounds), warning: \(.meta.warning // "")"' <<<"$out" 2>/dev/null || echo "  exit $code: $out"
	out=$($C query 3 "$honest" --format json --allow-contested 2>/dev/null || true)
	jq -r '"  over the honest agents: \(.rows | map(map(tostring) | join(" ")) | join("; "))"' <<<"$out" 2>/dev/null || echo "  honest: $out"
}
w="WHERE node <> 'a$N'"
ask "SELECT SUM(cpu_cores) FROM peers" "SELECT SUM(cpu_cores) FROM peers $w"
ask "SELECT AVG(cpu_load) FROM peers" "SELECT AVG(cpu_load) FROM peers $w"
ask "SELECT SUM(mem_free) FROM peers" "SELECT SUM(mem_free) FROM peers $w"
ask "SELECT AVG(cpu_load) TRIM 20% FROM peers" "SELECT AVG(cpu_load) TRIM 20% FROM peers $w"
ask "SELECT MEDIAN(cpu_load) FROM peers" "SELECT MEDIAN(cpu_load) FROM peers $w"
ask "SELECT node, cpu_cores FROM peers ORDER BY cpu_cores DESC LIMIT 3" "SELECT node, cpu_cores FROM peers $w ORDER BY cpu_cores DESC LIMIT 3"
# Fresh agents were all up all along (reliability 1): the names break the
# tie, the liar's first, so that its claim would put it in the top 3.
ask "SELECT node, reliability FROM peers ORDER BY reliability DESC, node DESC LIMIT 3" "SELECT node, reliability FROM peers $w ORDER BY reliability DESC, node DESC LIMIT 3"
