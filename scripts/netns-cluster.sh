#!/usr/bin/env bash
# netns-cluster.sh — N real `peerq agent`s, each in its own network
# namespace on one bridge, with loss and partitions from iptables (this
# kernel has no netem; delay comes from the runtime's fault layer in tests).
# Needs root, iproute2 and iptables. docs/AGENT.md has a walkthrough.
#
#   scripts/netns-cluster.sh up 8            # agents a1..a8 at 10.77.0.1..8
#   scripts/netns-cluster.sh pools 8 KEY     # the same in pools a (a1..a4) and b (a5..a8)
#   LIAR_AT=8 LIAR_BIN=B scripts/netns-cluster.sh pools 8 KEY   # a8 is scripts/liar (B), LIAR_LIE gateway, LIAR_ROSTER its --roster
#   scripts/netns-cluster.sh query 3 "SELECT COUNT(*) FROM peers" --format json
#   scripts/netns-cluster.sh metrics 3       # agent 3's /metrics (its API token)
#   scripts/netns-cluster.sh loss 20         # drop 20% of packets into every agent
#   scripts/netns-cluster.sh partition 4     # a1..a4 | a5..aN
#   scripts/netns-cluster.sh heal            # no loss, no partition
#   scripts/netns-cluster.sh kill 7          # kill -9 agent 7
#   scripts/netns-cluster.sh start 7         # start it again on its data dir
#   scripts/netns-cluster.sh disk 3 full     # agent 3's data dir: full|free|ro|repair
#   scripts/netns-cluster.sh down            # stop everything, remove the namespaces
#
# With PEERQ_NETNS_DISKS=1, `up` puts each agent's data dir on an ext4 file
# system of its own (a 32 MiB loop image, errors=remount-ro), so that
# `disk` can fill it, or make it read-only as the kernel does after an I/O
# error (ext4's trigger_fs_error, which open files do not prevent);
# `disk I repair` stops the agent, checks the file system, mounts it
# writable again and restarts the agent.
set -euo pipefail

BIN=${PEERQ_BIN:-/tmp/peerq-netns/peerq}
DIR=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}
BR=pqbr0
NET=10.77.0

ns() { echo "pq$1"; }
count() { cat "$DIR/count" 2>/dev/null || echo 0; }

# bridge N: the binary (built from this checkout unless there is one),
# the count of agents, and the bridge their namespaces join.
bridge() {
	mkdir -p "$DIR"
	if [ ! -x "$BIN" ]; then
		(cd "$(dirname "$0")/.." && go build -o "$BIN" ./cmd/peerq)
	fi
	echo "$1" > "$DIR/count"
	ip link add "$BR" type bridge 2>/dev/null || true
	ip addr add "$NET.254/24" dev "$BR" 2>/dev/null || true
	ip link set "$BR" up
}

up() {
	local n=$1
	bridge "$n"
	for i in $(seq 1 "$n"); do
		if [ "${PEERQ_NETNS_DISKS:-0}" = 1 ] && ! mountpoint -q "$DIR/a$i"; then
			mkdir -p "$DIR/a$i"
			rm -f "$DIR/a$i.img"
			truncate -s 32M "$DIR/a$i.img"
			mkfs.ext4 -q -m 0 "$DIR/a$i.img" # no blocks kept for root: full is full
			mount -o loop,errors=remount-ro "$DIR/a$i.img" "$DIR/a$i"
			noreserve "$DIR/a$i"
		fi
		netns "$i"
		start "$i"
	done
	# Wait until every agent sees every other.
	for i in $(seq 1 "$n"); do
		for _ in $(seq 1 150); do
			got=$(query "$i" "SELECT COUNT(*) FROM peers" --format csv 2>/dev/null | tail -1 || true)
			[ "$got" = "$n" ] && break
			sleep 0.2
		done
	done
	echo "up: $n agents"
}

# netns I: agent I's namespace on the bridge, at $NET.I.
netns() {
	local i=$1
	ip netns add "$(ns "$i")"
	ip link add "veth$i" type veth peer name eth0 netns "$(ns "$i")"
	ip link set "veth$i" master "$BR" up
	ip netns exec "$(ns "$i")" ip addr add "$NET.$i/24" dev eth0
	ip netns exec "$(ns "$i")" ip link set eth0 up
	ip netns exec "$(ns "$i")" ip link set lo up
}

# pools N KEY: N agents in two pools (docs/AGENT.md, Pools): a1..a(N/2)
# in pool a, the others in pool b, each pool joined inside itself through
# its first agent, every agent given the other pool's cloud ports (its
# gossip port + 2) and the --encrypt key KEY. Like up's, these agents
# answer query, kill and down (not start, which joins one pool, nor disk,
# whose repair restarts through start; PEERQ_NETNS_DISKS does not apply);
# unlike up, it does not wait for them.
pools() {
	if [ $# -lt 2 ]; then
		echo "usage: netns-cluster.sh pools N KEY" >&2
		return 1
	fi
	local n=$1 key=$2 half=$(($1 / 2)) pool first flags
	bridge "$n"
	for i in $(seq 1 "$n"); do netns "$i"; done
	for i in $(seq 1 "$n"); do
		pool=a first=1
		[ "$i" -gt "$half" ] && pool=b first=$((half + 1))
		flags=(--pool "$pool" --encrypt "$key")
		[ "$i" -ne "$first" ] && flags+=(--join "$NET.$first:7946" --retry-join)
		if [ "$pool" = a ]; then
			for j in $(seq $((half + 1)) "$n"); do flags+=(--cloud-join "$NET.$j:7948"); done
		else
			for j in $(seq 1 "$half"); do flags+=(--cloud-join "$NET.$j:7948"); done
		fi
		if [ "$i" = "${LIAR_AT:-}" ]; then
			# scripts/liar in its place (netns-pools-liar.sh): the same
			# pool, seeds and cloud seeds, no local API, the lie LIAR_LIE
			# (and LIAR_ROSTER, if set, its --roster).
			local cloud=() j
			for j in "${!flags[@]}"; do [ "${flags[$j]}" = --cloud-join ] && cloud+=("${flags[$((j + 1))]}"); done
			ip netns exec "$(ns "$i")" "$LIAR_BIN" --node "a$i" --bind "$NET.$i:7946" --exchange "$NET.$i:7947" \
				--data-dir "$DIR/a$i" --round 200ms --pool "$pool" --encrypt "$key" --lie "${LIAR_LIE:-gateway}" ${LIAR_ROSTER:+--roster "$LIAR_ROSTER"} \
				--cloud-join "$(IFS=,; echo "${cloud[*]}")" $([ "$i" -ne "$first" ] && echo --join "$NET.$first:7946") \
				>> "$DIR/a$i.log" 2>&1 &
		else
			ip netns exec "$(ns "$i")" "$BIN" agent --node "a$i" --bind "$NET.$i:7946" --exchange "$NET.$i:7947" \
				--api 127.0.0.1:7474 --data-dir "$DIR/a$i" --round 200ms "${flags[@]}" ${PEERQ_AGENT_FLAGS:-} \
				>> "$DIR/a$i.log" 2>&1 &
		fi
		echo $! > "$DIR/a$i.pid"
	done
}

# start I: start agent I in its namespace (again, after a kill: same
# data dir, same name, it rejoins).
start() {
	local i=$1 join=()
	[ "$i" -gt 1 ] && join=(--join "$NET.1:7946")
	[ "$i" -eq 1 ] && [ "$(count)" -gt 1 ] && [ -f "$DIR/a1/serf.snapshot" ] && join=(--join "$NET.2:7946")
	ip netns exec "$(ns "$i")" "$BIN" agent --node "a$i" --bind "$NET.$i:7946" --exchange "$NET.$i:7947" \
		--api 127.0.0.1:7474 --data-dir "$DIR/a$i" --round 200ms "${join[@]}" ${PEERQ_AGENT_FLAGS:-} \
		>> "$DIR/a$i.log" 2>&1 &
	echo $! > "$DIR/a$i.pid"
}

# query I STATEMENT [flags]: run a statement at agent I.
query() {
	local i=$1 stmt=$2
	shift 2
	ip netns exec "$(ns "$i")" "$BIN" query --data-dir "$DIR/a$i" --api 127.0.0.1:7474 -e "$stmt" "$@"
}

# metrics I: agent I's /metrics, with the token from its data dir.
metrics() {
	ip netns exec "$(ns "$1")" curl -sf -H "X-Peerq-Token: $(cat "$DIR/a$1/api-token")" http://127.0.0.1:7474/metrics
}

rules() { # rules I: flush agent I's filter
	ip netns exec "$(ns "$1")" iptables -F INPUT
}

loss() {
	local p
	p=$(awk -v x="$1" 'BEGIN { printf "%.4f", x / 100 }')
	for i in $(seq 1 "$(count)"); do
		rules "$i"
		ip netns exec "$(ns "$i")" iptables -A INPUT -i eth0 -m statistic --mode random --probability "$p" -j DROP
	done
}

partition() {
	local k=$1 n
	n=$(count)
	for i in $(seq 1 "$n"); do
		rules "$i"
		for j in $(seq 1 "$n"); do
			if { [ "$i" -le "$k" ] && [ "$j" -gt "$k" ]; } || { [ "$i" -gt "$k" ] && [ "$j" -le "$k" ]; }; then
				ip netns exec "$(ns "$i")" iptables -A INPUT -s "$NET.$j" -j DROP
			fi
		done
	done
}

heal() { for i in $(seq 1 "$(count)"); do rules "$i"; done; }

kill_agent() { kill -9 "$(cat "$DIR/a$1.pid")" 2>/dev/null || true; }

# noreserve DIR: the ext4 file system at DIR keeps no clusters aside
# (root, which the agents run as, could write into them: full is full).
noreserve() {
	echo 0 > "/sys/fs/ext4/$(basename "$(findmnt -n -o SOURCE "$1")")/reserved_clusters"
}

# disk I full|free|ro|repair: agent I's data dir (its own file system:
# PEERQ_NETNS_DISKS=1) filled up, freed, made read-only by an error, or
# repaired (the agent stopped, the file system checked and mounted again,
# the agent started).
disk() {
	local d="$DIR/a$1" dev
	mountpoint -q "$d" || { echo "disk: $d is not a file system of its own (up with PEERQ_NETNS_DISKS=1)" >&2; return 1; }
	case "$2" in
	full)
		dd if=/dev/zero of="$d/filler" bs=64k 2>/dev/null || true
		dd if=/dev/zero of="$d/filler2" bs=1k 2>/dev/null || true # the last blocks
		;;
	free) rm -f "$d/filler" "$d/filler2" ;;
	ro)
		dev=$(basename "$(findmnt -n -o SOURCE "$d")")
		echo 1 > "/sys/fs/ext4/$dev/trigger_fs_error"
		;;
	repair)
		# A file system the kernel made read-only stays so while any mount
		# namespace (ip netns exec makes one per command) still holds it:
		# copy its files to a new one instead of checking it in place.
		kill_agent "$1"
		for _ in $(seq 1 50); do
			kill -0 "$(cat "$DIR/a$1.pid")" 2>/dev/null || break
			sleep 0.1
		done
		rm -f "$d.img.new"
		truncate -s 32M "$d.img.new"
		mkfs.ext4 -q -m 0 "$d.img.new"
		mkdir -p "$d.new"
		mount -o loop "$d.img.new" "$d.new"
		cp -a "$d/." "$d.new/"
		rm -f "$d.new/filler" "$d.new/filler2"
		umount "$d.new"
		umount -l "$d"
		mv "$d.img.new" "$d.img"
		mount -o loop,errors=remount-ro "$d.img" "$d"
		noreserve "$d"
		start "$1"
		;;
	*) echo "disk: full, free, ro or repair" >&2; return 1 ;;
	esac
}

down() {
	for i in $(seq 1 "$(count)"); do
		kill_agent "$i"
		ip netns del "$(ns "$i")" 2>/dev/null || true
		ip link del "veth$i" 2>/dev/null || true # gone with its namespace, unless a process held it
		if mountpoint -q "$DIR/a$i"; then umount "$DIR/a$i"; rm -f "$DIR/a$i.img"; fi
	done
	ip link del "$BR" 2>/dev/null || true
	rm -f "$DIR/count"
}

cmd=${1:-}
shift || true
case "$cmd" in
up) up "${1:-8}" ;;
pools) pools "$@" ;;
query) query "$@" ;;
metrics) metrics "$1" ;;
loss) loss "$1" ;;
partition) partition "$1" ;;
heal) heal ;;
kill) kill_agent "$1" ;;
start) start "$1" ;;
disk) disk "$1" "$2" ;;
down) down ;;
*) sed -n '2,21p' "$0"; exit 1 ;;
esac
