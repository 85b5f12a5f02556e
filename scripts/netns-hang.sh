#!/usr/bin/env bash
# netns-hang.sh — a member that hangs, among real agents: alive to Serf
# (its gossip port still answers) but silent to peerq's exchanges. 8
# `peerq agent`s in one pool on netns-cluster.sh's namespaces and bridge
# (it starts them, on fresh data dirs, and refuses to run while another
# cluster holds the bridge). Once a1 counts 8 it asks a gossip COUNT
# BASELINE times (3) with no fault going on, then RESERVEs 4 members
# other than a1 AS hangjob FOR 1h at a1 and hangs one of them (the last
# RESERVE names, or HANG=aN): iptables in its namespace DROPs incoming
# TCP to its exchange port (7947; the exchanges, their probes and the
# lease requests are TCP only, Serf's port 7946 is untouched, so Serf
# keeps listing it). Right after, ASKS times (6), EVERY seconds apart (3),
# it asks at a1 a COUNT by gossip (WHERE cpu_cores >= 1: the exchanges
# answer it) and the plain COUNT(*) (answered from Serf's member list and
# what a1 found lost lately): each must be 8 or 7 with status converged or
# exact and exit 0 — 8 less the members it names as left out (`excluded`),
# naming none but the hung one — or flagged (partial or contested, exit 4
# or 8); another number with exit 0 is WRONG. It records each answer's
# time (the client's, and the gossip's meta.elapsed_seconds), status and
# excluded list: the first after the hang is expected slower (~1 s, the
# probes), the next ones as fast as before (the hung member stays left
# out, and the sample that checks them, of the members they are over,
# agrees: it must not ask the hung member and wait for it). A1's SHOW
# SUBCLOUDS is polled from the hang on (every 0.5 s): by
# REPLACE_TIMEOUT (90 s) it must show hangjob at size 4 without the hung
# member (the owner replaces a member its probes found silent 10 s). Then
# the rule goes, and by RELEASE_TIMEOUT (60 s) the member's own view
# (`SELECT node, reserved, subcloud FROM peers WHERE node = 'aN'` at aN,
# its lease table in its tags) must say it no longer holds hangjob's
# lease, while hangjob keeps its 4 (it is not taken back); the gossip
# COUNT is asked again (8 or 7, as above). Last, RELEASE hangjob must free
# its 4 members. It prints a summary and the owner's log lines about
# hangjob, and exits 1 on a WRONG answer, an error, a failed RESERVE or
# RELEASE, or a timeout. The agents are stopped, the rule removed and the
# namespaces deleted on any exit. Needs root, iproute2, iptables, jq and
# Go (it builds this checkout's peerq). The agents' logs and every answer
# stay in $PEERQ_NETNS_DIR (/tmp/peerq-netns): a*.log, hang/.
#
#   sudo scripts/netns-hang.sh
#   sudo HANG=a3 ASKS=10 scripts/netns-hang.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}
C=scripts/netns-cluster.sh
N=8
EXCHANGE_PORT=7947 # netns-cluster.sh's --exchange (gossip port 7946 + 1)
BASELINE=${BASELINE:-3}
ASKS=${ASKS:-6}
EVERY=${EVERY:-3}
FORM_TIMEOUT=${FORM_TIMEOUT:-60}
REPLACE_TIMEOUT=${REPLACE_TIMEOUT:-90}
RELEASE_TIMEOUT=${RELEASE_TIMEOUT:-60}
HANG=${HANG:-}
export PEERQ_BIN="$DIR/peerq" PEERQ_NETNS_DIR="$DIR"
OUT="$DIR/hang"
GOSSIP="SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1"
TAGS="SELECT COUNT(*) FROM peers"

for tool in ip iptables jq go; do
	command -v "$tool" > /dev/null || { echo "netns-hang: $tool not found" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "netns-hang: needs root (network namespaces, iptables)" >&2; exit 1; }
if ip link show pqbr0 > /dev/null 2>&1; then
	echo "netns-hang: another netns cluster holds the bridge pqbr0; stop it first: sudo $C down" >&2
	exit 1
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

victim="" vi="" poller=""
hung() { [ -n "$vi" ] && ip netns exec "pq$vi" iptables -C INPUT -p tcp --dport "$EXCHANGE_PORT" -j DROP 2> /dev/null; }
unhang() { while hung; do ip netns exec "pq$vi" iptables -D INPUT -p tcp --dport "$EXCHANGE_PORT" -j DROP; done; }
cleanup() {
	if [ -n "$poller" ]; then kill "$poller" 2> /dev/null || true; wait "$poller" 2> /dev/null || true; fi
	unhang || true
	$C down > /dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR"
go build -o "$PEERQ_BIN" ./cmd/peerq # this checkout's agents, not an older build
rm -rf "$DIR"/a* "$OUT"
mkdir -p "$OUT"

# ask FILE STATEMENT [I]: the statement at a1 (or aI), its JSON answer in
# FILE, its errors beside; sets code (the exit code) and wall (seconds,
# as the client waited).
code=0 wall=0
ask() {
	local t
	t=$(now)
	code=0
	$C query "${3:-1}" "$2" --format json > "$1" 2> "${1%.json}.err" || code=$?
	wall=$(since "$t" "$(now)")
}
status() { jq -r '.meta.status // "none"' "$1" 2> /dev/null || echo none; }
first_cell() { jq -r '.rows[0][0] // "none"' "$1" 2> /dev/null || echo none; }
excluded() { jq -r '.meta.excluded // [] | join(",") | if . == "" then "-" else . end' "$1" 2> /dev/null || echo "?"; }
elapsed() { jq -r '.meta.elapsed_seconds // 0 | . * 100 | round / 100' "$1" 2> /dev/null || echo "?"; }
# judge FILE CODE: ok (8 or 7, converged or exact, exit 0, 8 less the
# members it names left out, none named but the hung one), flagged
# (partial or contested, exit 4 or 8), error (no answer) or WRONG.
judge() {
	jq -r --arg v "$victim" --argjson code "$2" --argjson n "$N" '
		(.meta.status // "none") as $st | (.rows[0][0] // null) as $c | (.meta.excluded // []) as $ex |
		if ($st == "converged" or $st == "exact") and $code == 0 then
			if ($c == $n or $c == $n - 1) and ($ex - [$v] | length) == 0 and $c == $n - ($ex | length)
				and (.meta.peers == null or .meta.peers == $c) then "ok" else "WRONG" end
		elif ($st == "partial" or $st == "contested") and ($code == 4 or $code == 8) then "flagged"
		else "WRONG" end' "$1" 2> /dev/null || echo error
}

wrong=0 errors=0 flagged=0 failed=""
declare -a TABLE
row() { TABLE+=("$(printf '%-26s %6s %7s  %-10s %-4s %-5s %-8s %s' "$@")"); }
# count KEY [LABEL]: the gossip COUNT and the plain COUNT(*) at a1,
# judged, each a row of the table; their answers in $OUT/KEY.gossip.json
# and KEY.tags.json.
count() {
	local key=$1 label=${2:-$1} s stmt f v
	for s in gossip tags; do
		stmt=$GOSSIP
		[ "$s" = tags ] && stmt=$TAGS
		f="$OUT/$key.$s.json"
		ask "$f" "$stmt"
		v=$(judge "$f" "$code")
		case $v in WRONG) wrong=$((wrong + 1)) ;; error) errors=$((errors + 1)) ;; flagged) flagged=$((flagged + 1)) ;; esac
		row "$label $s" "$wall" "$(elapsed "$f")" "$(status "$f")" "$code" "$(first_cell "$f")" "$v" "$(excluded "$f")"
		[ "$v" = ok ] || [ "$v" = flagged ] || { echo "  $label $s: $v:"; head -c 600 "$f" "${f%.json}.err"; echo; }
	done
}

# 1. The cluster: netns-cluster.sh's up (every agent joined to a1), then
# until a1's SHOW MEMBERS lists 8 alive and its gossip COUNT is 8.
t0=$(now)
$C up "$N"
formed=""
while (($(date +%s) < ${t0%.*} + FORM_TIMEOUT)); do
	ask "$OUT/form.members.json" "SHOW MEMBERS"
	alive=$(jq '[.rows[]? | select(.[1] == "alive")] | length' "$OUT/form.members.json" 2> /dev/null || echo 0)
	ask "$OUT/form.count.json" "$GOSSIP"
	if [ "$alive" = "$N" ] && [ "$code" = 0 ] && [ "$(first_cell "$OUT/form.count.json")" = "$N" ]; then
		formed=$(since "$t0" "$(now)")
		break
	fi
	sleep 1
done
[ -n "$formed" ] || { echo "the cluster did not form in ${FORM_TIMEOUT}s: $alive alive at a1"; tail -n 3 "$DIR"/a*.log; exit 1; }
echo "formed: $N agents in ${formed}s"

# 2. hangjob, and the answers before the hang.
ask "$OUT/reserve.json" "RESERVE 4 FROM peers WHERE node != 'a1' AS hangjob FOR 1h"
members=$(jq -r '[.rows[]?[0]] | join(",")' "$OUT/reserve.json" 2> /dev/null || true)
if [ "$code" != 0 ] || [ "$(tr ',' '\n' <<< "$members" | grep -c '^a[2-8]$')" != 4 ]; then
	echo "RESERVE failed (exit $code):"; cat "$OUT/reserve.json" "$OUT/reserve.err"; exit 1
fi
echo "hangjob reserved at a1 in ${wall}s: $members"
victim=${HANG:-${members##*,}}
vi=${victim#a}
[[ ",$members," == *",$victim,"* ]] || { echo "HANG=$victim is not a member of hangjob ($members)"; exit 1; }
for k in $(seq 1 "$BASELINE"); do count "before-$k"; sleep 1; done

# 3. The hang, and a1's SHOW SUBCLOUDS polled from then on: "time target
# size members" a line.
ip netns exec "pq$vi" iptables -I INPUT -p tcp --dport "$EXCHANGE_PORT" -j DROP
t_hang=$(now)
echo "hung $victim at $(date +%T): $(ip netns exec "pq$vi" iptables -S INPUT | grep DROP)"
(
	while :; do
		t=$(now)
		$C query 1 "SHOW SUBCLOUDS" --format json 2> /dev/null |
			jq -r --arg t "$t" '.rows[]? | select(.[0] == "hangjob") | "\($t) \(.[2]) \(.[3]) \(.[8] | join(","))"' >> "$OUT/subclouds.log" 2> /dev/null || true
		sleep 0.5
	done
) &
poller=$!

# 4. ASKS answers while it hangs, EVERY seconds apart.
for k in $(seq 1 "$ASKS"); do
	count "hung-$k" "hung-$k (+$(since "$t_hang" "$(now)")s)"
	if [ "$k" -lt "$ASKS" ]; then sleep "$EVERY"; fi
done
# how many of the gossip answers while it hung named it left out
named=$(for k in $(seq 1 "$ASKS"); do jq -r --arg v "$victim" 'any((.meta.excluded // [])[]; . == $v)' "$OUT/hung-$k.gossip.json" 2> /dev/null; done | grep -c true || true)
# the gossip answers after the first, the hung member left out from their
# start, checked by a sample of the members they are over (not asking it)
unchecked=$(for k in $(seq 2 "$ASKS"); do jq -r '.meta.check.verdict // "none"' "$OUT/hung-$k.gossip.json" 2> /dev/null; done | grep -vc '^agrees$' || true)
[ "$unchecked" = 0 ] || failed+=" unchecked($unchecked)"

# 5. Until hangjob is 4 again without the hung member (from the poller's
# lines, timed from the hang).
t_replaced="" replaced_by="-"
while (($(date +%s) < ${t_hang%.*} + REPLACE_TIMEOUT)); do
	line=$(awk -v v="$victim" '$2 == 4 && $3 == 4 && ("," $4 ",") !~ ("," v ",") { print; exit }' "$OUT/subclouds.log" 2> /dev/null || true)
	if [ -n "$line" ]; then
		t_replaced=$(since "$t_hang" "${line%% *}")
		replaced_by=${line##* }
		break
	fi
	sleep 0.5
done
kill "$poller" 2> /dev/null || true
wait "$poller" 2> /dev/null || true
poller=""
if [ -n "$t_replaced" ]; then
	echo "replaced: hangjob is $replaced_by at +${t_replaced}s after the hang"
else
	failed+=" replacement"
	echo "NOT REPLACED in ${REPLACE_TIMEOUT}s: a1's SHOW SUBCLOUDS last said $(tail -n 1 "$OUT/subclouds.log" 2> /dev/null)"
fi

# 6. The rule goes: until the member's own view says it holds no lease of
# hangjob; a1's view of it and a1's SHOW SUBCLOUDS beside.
LEASE="SELECT node, reserved, subcloud FROM peers WHERE node = '$victim'"
holds() { jq -e '.rows[0] | .[1] == true and .[2] == "hangjob"' "$1" > /dev/null 2>&1; }
ask "$OUT/lease.before.json" "$LEASE" "$vi"
held="no"
holds "$OUT/lease.before.json" && held="yes"
unhang
t_unhang=$(now)
echo "unhung $victim at $(date +%T); it held hangjob's lease then: $held"
t_released="" t_a1=""
k=0
while (($(date +%s) < ${t_unhang%.*} + RELEASE_TIMEOUT)); do
	lf="$OUT/lease.$k.json"
	ask "$lf" "$LEASE" "$vi"
	if [ "$code" = 0 ] && ! holds "$lf"; then t_released=$(since "$t_unhang" "$(now)"); fi
	ask "$OUT/lease.$k.a1.json" "$LEASE"
	if [ -z "$t_a1" ] && [ "$code" = 0 ] && jq -e '.rows[0][1] == false' "$OUT/lease.$k.a1.json" > /dev/null 2>&1; then
		t_a1=$(since "$t_unhang" "$(now)")
	fi
	[ -n "$t_released" ] && break
	k=$((k + 1))
	sleep 0.5
done
if [ -n "$t_released" ]; then
	echo "released: $victim's own view says no lease of hangjob at +${t_released}s after unblocking: $(jq -c '.rows[0]' "$lf")"
else
	failed+=" release"
	echo "NOT RELEASED in ${RELEASE_TIMEOUT}s: $victim says $(jq -c '.rows[0]' "$lf" 2> /dev/null)"
fi
ask "$OUT/after.subclouds.json" "SHOW SUBCLOUDS"
after=$(jq -r '.rows[]? | select(.[0] == "hangjob") | "target \(.[2]) size \(.[3]) repairs \(.[4]) members \(.[8] | join(","))"' "$OUT/after.subclouds.json" 2> /dev/null || true)
echo "a1's SHOW SUBCLOUDS after: ${after:-no hangjob}"
if ! awk -v v="$victim" '$2 == 4 && $4 == 4 && ("," $8 ",") !~ ("," v ",") { ok = 1 } END { exit !ok }' <<< "$after"; then
	failed+=" subcloud-after"
fi
sleep 2 # the hung member counted again by a1 (a second's look)
for k in 1 2; do count "unhung-$k"; sleep 1; done

# 7. RELEASE, and the summary.
ask "$OUT/release.json" "RELEASE hangjob"
rel=$(jq -r '.rows[0] | "released \(.[1]), unreachable \(.[2])"' "$OUT/release.json" 2> /dev/null || echo none)
echo "RELEASE hangjob (exit $code): $rel"
[ "$code" = 0 ] && [ "$rel" = "released 4, unreachable 0" ] || failed+=" RELEASE"

echo
printf '%-26s %6s %7s  %-10s %-4s %-5s %-8s %s\n' "answer" "wall" "gossip" "status" "exit" "count" "verdict" "excluded"
printf '%s\n' "${TABLE[@]}"
echo
echo "owner a1's log about hangjob:"
grep -h "hangjob" "$DIR/a1.log" | sed 's/^/  /' || true
echo
echo "formed ${formed}s; hangjob $members; hung $victim, named left out in $named of $ASKS gossip answers while it hung;" \
	"replaced at +${t_replaced:-never}s ($replaced_by);" \
	"lease let go +${t_released:-never}s after unblocking (a1 saw it +${t_a1:-never}s);" \
	"$wrong WRONG, $errors errors, $flagged flagged${failed:+; FAILED:$failed}"
[ "$wrong" = 0 ] && [ "$errors" = 0 ] && [ -z "$failed" ] || exit 1
