#!/usr/bin/env bash
# netns-gateway-hang.sh — a gateway of another pool that hangs, among real
# agents (docs/PROTOCOLS.md, Pools: a gateway whose exchange failed within
# the last 30 s is asked last). 8 `peerq agent`s in network namespaces on
# netns-cluster.sh's bridge, in two pools as netns-pools.sh makes them:
# a1..a4 in pool "a", a5..a8 in pool "b". Once SHOW POOLS at a1 lists both
# pools, converged or exact, with 4 members and 3 gateways each, it asks a
# gossip COUNT BEFORE times (5) at ASKER (a member of pool a that is not
# one of its gateways: its statements are relayed to pool a's gateways,
# the coordinators, which ask pool b's gateways over the cloud pool). Then
# it hangs one of pool b's gateways (HANG=aN, or the first SHOW POOLS
# names) on the cloud pool only: iptables in its namespace DROPs incoming
# TCP to its cloud exchange port, gossip port + 3 (7949: the cloud pool's
# Serf is on + 2, 7948, its exchanges on + 3, node/peer.go socketCloud;
# the exchanges are TCP only, overlay/exchange.go). Its pool's Serf (7946)
# and exchanges (7947) and the cloud pool's Serf are untouched, so both
# pools' Serf keep listing it alive and a gateway: the coordinators still
# pick it, and an exchange with it waits for its timeout (2 s). It asks
# ASKS COUNTs (12), EVERY seconds apart (3, so that the hang outlasts the
# 30 s a coordinator remembers a failed gateway), then SHOW POOLS at ASKER
# (timed too: it runs in every pool as a statement does), removes the rule
# and asks AFTER COUNTs (3). Each answer must be 8, converged or exact with
# exit 0 (the hung gateway still runs the statement in its own pool), or
# flagged (partial or contested, exit 4 or 8); anything else is WRONG. It
# prints a table of every answer (client wall time, value, status, pool
# b's part, the gateways the cloud pool lists for b), how many answers
# during the hang took SLOW seconds (2) or more, whether the hung gateway
# stayed listed, and the coordinators' log lines about it; exits 1 on a
# WRONG answer, an error, or a hung gateway no longer listed. Before
# ec3b1e0 about two statements in three during the hang met the timeout;
# since, one per coordinator's note: the first that ranks the hung gateway
# among the first two, and again once the note is 30 s old.
#
# The agents run PEERQ_BIN if set (to compare builds), else this
# checkout's peerq, built into $PEERQ_NETNS_DIR. Needs root, iproute2,
# iptables and jq (and Go without PEERQ_BIN). The agents' logs and every
# answer stay in $PEERQ_NETNS_DIR (/tmp/peerq-netns): a*.log, gwhang/. The
# rule, the agents, the namespaces and the bridge go on any exit.
#
#   sudo scripts/netns-gateway-hang.sh
#   sudo PEERQ_BIN=/tmp/peerq-old HANG=a6 ASKS=20 scripts/netns-gateway-hang.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}
BR=pqbr0
C=scripts/netns-cluster.sh
N=8                      # a1..a4 in pool a, a5..a8 in pool b
CLOUD_EXCHANGE_PORT=7949 # the agents' --bind 7946 + 3 (the cloud pool's exchanges)
BEFORE=${BEFORE:-5}
ASKS=${ASKS:-12}
AFTER=${AFTER:-3}
EVERY=${EVERY:-3}
SLOW=${SLOW:-2}
FORM_TIMEOUT=${FORM_TIMEOUT:-120}
HANG=${HANG:-}
KEY=$(head -c 32 /dev/urandom | base64)
OUT="$DIR/gwhang"
COUNT="SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1" # by gossip: every agent's exchanges answer it

for tool in ip iptables jq; do
	command -v "$tool" > /dev/null || { echo "netns-gateway-hang: $tool not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "netns-gateway-hang: needs root (network namespaces, iptables)" >&2; exit 1; }
if ip link show "$BR" > /dev/null 2>&1; then
	echo "netns-gateway-hang: another netns cluster holds the bridge $BR; stop it first: sudo $C down" >&2
	exit 1
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

victim="" vi=""
rule=(INPUT -p tcp --dport "$CLOUD_EXCHANGE_PORT" -j DROP)
hung() { [ -n "$vi" ] && ip netns exec "pq$vi" iptables -C "${rule[@]}" 2> /dev/null; }
unhang() { while hung; do ip netns exec "pq$vi" iptables -D "${rule[@]}"; done; }
cleanup() {
	unhang || true
	$C down > /dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR"
if [ -z "${PEERQ_BIN:-}" ]; then
	PEERQ_BIN="$DIR/peerq"
	go build -o "$PEERQ_BIN" ./cmd/peerq # this checkout's agents, not an older build
fi
[ -x "$PEERQ_BIN" ] || { echo "netns-gateway-hang: PEERQ_BIN=$PEERQ_BIN is not executable" >&2; exit 1; }
export PEERQ_BIN PEERQ_NETNS_DIR="$DIR" # netns-cluster.sh's query and down use them
rm -rf "$DIR"/a* "$OUT"
mkdir -p "$OUT"
echo "agents: $PEERQ_BIN ($(sha256sum "$PEERQ_BIN" | cut -c1-12))"

# The namespaces and the agents in two pools (netns-cluster.sh pools):
# a1..a4 in pool a, a5..a8 in pool b, every agent given the other
# pool's cloud ports; netns-cluster.sh's query, kill and down work on them.
$C pools "$N" "$KEY"

# ask FILE STATEMENT I: the statement at aI, its JSON answer in FILE, its
# errors beside; sets code (the exit code) and wall (seconds, as the
# client waited, its start included).
code=0 wall=0
ask() {
	local t
	t=$(now)
	code=0
	$C query "$3" "$2" --format json > "$1" 2> "${1%.json}.err" || code=$?
	wall=$(since "$t" "$(now)")
}
pools() { jq -r '.rows[] | "\(.[0]) \(.[1]) \(.[2]) \(.[3] | if type == "array" then join(",") else (. // "-") end) \(.[4] // 0)"' "$1" 2> /dev/null || true; }
status() { jq -r '.meta.status // "none"' "$1" 2> /dev/null || echo none; }
first_cell() { jq -r '.rows[0][0] // "none"' "$1" 2> /dev/null || echo none; }
# pool_b FILE: pool b's part of the answer, status:peers:agreeing/gateways
# and the gateways the cloud pool lists for it.
pool_b() { jq -r '[.meta.pools[]? | select(.pool == "b") | "\(.status):\(.peers):\(.agreeing)/\(.gateways) \(.gateway_names // [] | join(","))"] | first // "- -"' "$1" 2> /dev/null || echo "- -"; }

# 1. The cloud forms: 2 pools, each answered (exact) with 4 members and 3 gateways.
t0=$(now)
formed="" rows=""
while (($(date +%s) < ${t0%.*} + FORM_TIMEOUT)); do
	ask "$OUT/form.json" "SHOW POOLS" 1
	rows=$(pools "$OUT/form.json")
	if [ "$(wc -l <<< "$rows")" -eq 2 ] && awk '$2 ~ /^(converged|exact)$/ && $3 == 4 && split($4, g, ",") == 3 { n++ } END { exit n != 2 }' <<< "$rows"; then
		formed=$(since "$t0" "$(now)")
		break
	fi
	sleep 1
done
[ -n "$formed" ] || { echo "the pools did not form in ${FORM_TIMEOUT}s: $rows"; tail -n 3 "$DIR"/a*.log; exit 1; }
echo "formed in ${formed}s:"
sed 's/^/  /' <<< "$rows"
gw_a=$(awk '$1 == "a" { print $4 }' <<< "$rows")
gw_b=$(awk '$1 == "b" { print $4 }' <<< "$rows")
# The asker: pool a's member that is not a gateway (4 members, 3 gateways).
asker=""
for i in 1 2 3 4; do [[ ",$gw_a," == *",a$i,"* ]] || asker=a$i; done
[ -n "$asker" ] || { echo "no member of pool a outside its gateways $gw_a"; exit 1; }
ai=${asker#a}
hang_to=${HANG:-${gw_b%%,*}}
[[ ",$gw_b," == *",$hang_to,"* ]] || { echo "HANG=$hang_to is not a gateway of pool b ($gw_b)"; exit 1; }
echo "asker $asker; pool a's gateways (the coordinators among them) $gw_a; pool b's $gw_b; to hang: $hang_to"

wrong=0 errors=0
declare -a TABLE
row() { TABLE+=("$(printf '%-7s %3s %7s %6s %-5s %-10s %-4s %-8s %-16s %s' "$@")"); }
# count PHASE K: the COUNT at the asker, judged (ok: 8, converged or
# exact, exit 0; flagged: partial or contested, exit 4 or 8; error: no
# answer; else WRONG), a row of the table.
t_hang=""
count() {
	local f="$OUT/$1-$2.json" v val st at="-"
	[ -n "$t_hang" ] && at="+$(since "$t_hang" "$(now)")"
	ask "$f" "$COUNT" "$ai"
	val=$(first_cell "$f")
	st=$(status "$f")
	if [[ "$st" =~ ^(converged|exact)$ ]] && [ "$code" = 0 ]; then
		if [ "$val" = "$N" ]; then v=ok; else v=WRONG; fi
	elif [[ "$st" =~ ^(partial|contested)$ ]] && [[ "$code" =~ ^[48]$ ]]; then
		v=flagged
	elif [ "$st" = none ]; then
		v=error
	else
		v=WRONG
	fi
	case $v in WRONG) wrong=$((wrong + 1)) ;; error) errors=$((errors + 1)) ;; esac
	row "$1" "$2" "$at" "$wall" "$val" "$st" "$code" "$v" $(pool_b "$f")
	[ "$v" = ok ] || [ "$v" = flagged ] || { echo "  $1-$2: $v:"; head -c 600 "$f" "${f%.json}.err"; echo; }
	echo "$1 $2 $wall" >> "$OUT/walls"
}

# 2. The answers before the hang.
for k in $(seq 1 "$BEFORE"); do count before "$k"; sleep 1; done

# 3. The hang: the cloud exchange port of one gateway of pool b, nothing
# else. The coordinators' logs from here on say which exchanges met it.
victim=$hang_to
vi=${victim#a}
declare -A mark=()
for i in 1 2 3 4; do mark[$i]=$(wc -l < "$DIR/a$i.log"); done
ip netns exec "pq$vi" iptables -I "${rule[@]}"
t_hang=$(now)
echo "hung $victim on the cloud pool at $(date +%T): $(ip netns exec "pq$vi" iptables -S INPUT | grep DROP)"
for k in $(seq 1 "$ASKS"); do
	count hung "$k"
	if [ "$k" -lt "$ASKS" ]; then sleep "$EVERY"; fi
done
# SHOW POOLS while it hangs: pool b's gateways as the cloud pool lists them.
f="$OUT/hung.pools.json"
ask "$f" "SHOW POOLS" "$ai"
sp_wall=$wall sp_code=$code
sp_b=$(pools "$f" | awk '$1 == "b"')
listed=no
[[ ",$(awk '{ print $4 }' <<< "$sp_b")," == *",$victim,"* ]] && listed=yes
# ... and in every COUNT's meta.pools while it hung.
unlisted=0
for k in $(seq 1 "$ASKS"); do
	jq -e --arg v "$victim" '.meta.pools[]? | select(.pool == "b") | .gateway_names // [] | index($v) != null' "$OUT/hung-$k.json" > /dev/null 2>&1 || unlisted=$((unlisted + 1))
done
hung_for=$(since "$t_hang" "$(now)")

# 4. The rule goes, and the answers after.
unhang
echo "unhung $victim after ${hung_for}s"
for k in $(seq 1 "$AFTER"); do count after "$k"; sleep 1; done

# The coordinators' (pool a's gateways') lines about the hung gateway from the hang
# on: in the cloud pool it is named aN.b.J (node, pool, its Nth join).
met=""
for i in 1 2 3 4; do
	met+=$(tail -n +"$((mark[$i] + 1))" "$DIR/a$i.log" | grep -E "pools: gateway $victim(\.| )" | sed "s/^/  a$i: /" | cut -c1-170 || true)
	met+=$'\n'
done
met=$(sed '/^$/d' <<< "$met")

slow() { awk -v p="$1" -v s="$SLOW" '$1 == p && $3 >= s { n++ } END { print n + 0 }' "$OUT/walls"; }
echo
printf '%-7s %3s %7s %6s %-5s %-10s %-4s %-8s %-16s %s\n' phase k "+hang" wall count status exit verdict "b st:peers:agr/gw" "b's gateways"
printf '%s\n' "${TABLE[@]}"
echo
echo "coordinators' log lines about $victim from the hang on ($(grep -c . <<< "$met" || true)):"
[ -n "$met" ] && head -n 30 <<< "$met"
echo
echo "SHOW POOLS at $asker while $victim hung (${sp_wall}s, exit $sp_code): $sp_b"
echo "formed ${formed}s; hung $victim (pool b's gateway, cloud exchange port $CLOUD_EXCHANGE_PORT) ${hung_for}s;" \
	"answers >= ${SLOW}s: before $(slow before)/$BEFORE, hung $(slow hung)/$ASKS, after $(slow after)/$AFTER;" \
	"$victim listed by SHOW POOLS: $listed, missing from b's gateways in $unlisted of $ASKS COUNTs; $wrong WRONG, $errors errors"
[ "$wrong" = 0 ] && [ "$errors" = 0 ] && [ "$listed" = yes ] || exit 1
