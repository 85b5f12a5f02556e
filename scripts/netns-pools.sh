#!/usr/bin/env bash
# netns-pools.sh — a cloud of two pools among real agents (issue 24,
# docs/AGENT.md "Pools"): 8 `peerq agent`s, each in its own network
# namespace on netns-cluster.sh's bridge, all with one --encrypt key;
# a1..a4 in pool "a", a5..a8 in pool "b", each pool joined inside itself,
# every agent given --cloud-join for the cloud ports (gossip port + 2) of
# the other pool's agents. It waits until SHOW POOLS at a1 lists both
# pools, exact, with 4 members and 3 gateways; asks a COUNT by gossip,
# one of tags alone (exact, from the gateways' member lists), a top 5 and
# a GROUP BY pool at a1 (ROUNDS times each, 5). Then subclouds across
# pools: at a1 it RESERVEs 6 members AS netjob, more than pool a's 4 (pool
# b's named b/aN, claimed through the gateways); at a5, in pool b, and at
# a1 a COUNT FROM SUBCLOUD netjob must be 6, at a5 its nodes the 6
# reserved, SHOW SUBCLOUDS must list netjob in pool a with size 6, and a
# COUNT FROM SUBCLOUD nosuchjob must exit 2 (unknown subcloud); each asked
# again while flagged, up to 5 times; then a1 RELEASEs it. Every agent's
# /metrics must then show 3 gateways a pool (peerq_pool_gateway), relays
# delivered out of pool a's gateways and into pool b's, and pool runs.
# Then it starts
# a gossip COUNT at a1 and, KILL_AFTER seconds later (0.03; a COUNT takes
# 0.1–0.4 s), kills -9 one of pool b's gateways while it runs: that answer
# must be right (8, the agents up when it was asked, or 7, those up when
# it ended) or flagged (partial or contested, exit 4 or 8) — never another
# number with exit 0, nor one that names another agent as left out (a
# pool's gateways name the members their runs lost). Then it asks COUNT and SHOW POOLS until the COUNT is
# 7 and converged and pool b has 3 gateways again, none of them the dead
# one, and a majority of them (2; the third is asked only when two
# disagree) agreeing (RECOVER_TIMEOUT, 180 s), checks every answer in
# between the same way, asks the four statements again, prints a summary
# and exits 1 on a wrong answer or a timeout, 2 if an answer was flagged
# with no fault going on. (The agents share one host's memory: their
# mem_free is one figure sampled at different moments, so the top 5 by it
# ties and reorders from run to run.) Needs root, iproute2, jq and Go (it
# builds this checkout's peerq). The agents' logs and every answer stay in
# $PEERQ_NETNS_DIR (/tmp/peerq-netns): a*.log, pools/.
#
#   sudo scripts/netns-pools.sh
#   sudo KILL_AFTER=0.01 ROUNDS=10 scripts/netns-pools.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}
C=scripts/netns-cluster.sh
N=8 # a1..a4 in pool a, a5..a8 in pool b
KILL_AFTER=${KILL_AFTER:-0.03}
ROUNDS=${ROUNDS:-5}
FORM_TIMEOUT=${FORM_TIMEOUT:-120}
RECOVER_TIMEOUT=${RECOVER_TIMEOUT:-180}
KEY=$(head -c 32 /dev/urandom | base64)
export PEERQ_BIN="$DIR/peerq" PEERQ_NETNS_DIR="$DIR"
unset LIAR_AT LIAR_BIN # netns-pools-liar.sh's: every agent here is honest
OUT="$DIR/pools"

trap '$C down' EXIT
. scripts/netns-pools-lib.sh
start_pools

first_cell() { jq -r '.rows[0][0] // "none"' "$1" 2> /dev/null || echo none; }
pools_meta() { # the answer's meta.pools, one pool a line: name status peers agreeing/gateways
	jq -r '[.meta.pools[]? | "\(.pool):\(.status):\(.peers):\(.agreeing)/\(.gateways)"] | join(" ")' "$1" 2> /dev/null || true
}

# 1. The cloud forms: 2 pools, each answered (exact) with 4 members and 3 gateways.
form_pools

wrong=0 flags=0
declare -a TABLE
row() { TABLE+=("$(printf '%-34s %-10s %-5s %-22s %s' "$@")"); }

# judge STATUS EXIT RIGHT: ok (RIGHT=1, converged or exact, exit 0),
# flagged (partial or contested, exit 4 or 8) or WRONG (anything else).
# named_only() says the answer in file $1 names no member left out but
# $2 (the agent killed): a pool's gateways name those their runs lost,
# and an answer naming a live agent so would be a wrong word about it.
named_only() {
	jq -e --arg v "$2" '[.meta.excluded // [] | .[] | select(. != $v)] | length == 0' "$1" > /dev/null 2>&1
}

judge() {
	if [[ "$1" =~ ^(converged|exact)$ ]] && [ "$2" = 0 ]; then
		if [ "$3" = 1 ]; then echo ok; else echo WRONG; fi
	elif [[ "$1" =~ ^(partial|contested)$ ]] && [ "$2" != 0 ]; then
		echo flagged
	else
		echo WRONG
	fi
}

# A COUNT by gossip (every agent has a core): one that reads only tags is
# answered from the gateways' member lists in milliseconds, and would be
# done before the kill; that one (TAGS) is asked beside the others.
COUNT="SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1"
TAGS="SELECT COUNT(*) FROM peers"
TOP="SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 5"
BY="SELECT pool, COUNT(*) FROM peers GROUP BY pool"
# statements LABEL N BY: the four statements at a1 with no fault going
# on: the COUNT must be N, the top 5 five distinct members by mem_free,
# the GROUP BY BY. A flag here has no fault to explain it: counted in
# flags.
statements() {
	local label=$1 n=$2 by=$3 s stmt f t code el st val right v
	for s in count tags top by; do
		case $s in count) stmt=$COUNT ;; tags) stmt=$TAGS ;; top) stmt=$TOP ;; by) stmt=$BY ;; esac
		f="$OUT/$label.$s.json"
		t=$(now)
		code=$(ask "$f" "$stmt")
		el=$(since "$t" "$(now)")
		st=$(status "$f")
		case $s in
		count) val=$(first_cell "$f"); right=$([ "$val" = "$n" ] && echo 1 || echo 0) ;;
		tags) val=$(first_cell "$f"); right=$([ "$val" = "$n" ] && [ "$st" = exact ] && echo 1 || echo 0) ;;
		top)
			val=$(jq -r '.rows | map(.[0]) | join(",")' "$f" 2> /dev/null || echo none)
			right=$(jq -r '[.rows[][1]] as $m | if (.rows | length) == 5 and ([.rows[][0]] | unique | length) == 5 and $m == ($m | sort | reverse) then 1 else 0 end' "$f" 2> /dev/null || echo 0)
			;;
		by)
			val=$(jq -r '.rows | map("\(.[0])=\(.[1])") | join(",")' "$f" 2> /dev/null || echo none)
			right=$([ "$val" = "$by" ] && echo 1 || echo 0)
			;;
		esac
		v=$(judge "$st" "$code" "$right")
		case $v in WRONG) wrong=$((wrong + 1)) ;; flagged) flags=$((flags + 1)) ;; esac
		row "$label $s (${el}s)" "$st" "$code" "$val" "$v $(pools_meta "$f")"
	done
}

# 2. Three statements at a1, ROUNDS times each.
for r in $(seq 1 "$ROUNDS"); do statements "steady-$r" 8 "a=4,b=4"; done

# 3. Subclouds across pools: a subcloud of pool a with members in both
# pools, reserved at a1, counted from a5 in pool b and from a1 by FROM
# SUBCLOUD, listed by SHOW SUBCLOUDS; a name no pool
# holds is an error in the statement (exit 2); released at a1.
# sub LABEL I STATEMENT WANT CHECK [TRIES]: the statement at aI, asked
# again (TRIES times in all, 5, a second apart) while its answer is
# flagged (partial or contested, exit 4 or 8; each counted in flags: no
# fault is going on).
# WANT is the exit code it must have: 0 (and converged or exact), or 2
# (an error in the statement). CHECK FILE CODE sets val, what the answer
# says, and right, 1 if that is the right answer. Sets f to the last
# answer's file.
sub() {
	local label=$1 i=$2 stmt=$3 want=$4 check=$5 tries=${6:-5} try t code el st v
	for try in $(seq 1 "$tries"); do
		f="$OUT/sub.$label.$try.json"
		t=$(now)
		code=$(ask "$f" "$stmt" "$i")
		el=$(since "$t" "$(now)")
		st=$(status "$f")
		val=none right=0
		$check "$f" "$code"
		if [ "$want" = 0 ]; then
			v=$(judge "$st" "$code" "$right")
		elif [ "$code" = "$want" ] && [ "$right" = 1 ]; then
			v=ok
		elif [[ "$code" =~ ^[48]$ ]]; then
			v=flagged
		else
			v=WRONG
		fi
		[ "$v" = flagged ] && [ "$try" -lt "$tries" ] || break
		flags=$((flags + 1))
		row "sub $label at a$i (${el}s)" "$st" "$code" "$val" "flagged, asked again $(pools_meta "$f")"
		sleep 1
	done
	[ "$v" = flagged ] && flags=$((flags + 1))
	[ "$v" = ok ] || { v=WRONG; wrong=$((wrong + 1)); }
	row "sub $label at a$i (${el}s)" "$st" "$code" "$val" "$v $(pools_meta "$f")"
}
reserved="" # the members RESERVE claimed, without their pools, sorted, joined by commas
c_reserve() { # 6 members, more than pool a's 4: some of pool b's, named b/aN
	local named
	named=$(jq -r '[.rows[]?[0]] | sort | join(",")' "$1" 2> /dev/null || true)
	reserved=$(jq -r '[.rows[]?[0] | sub("^b/"; "")] | sort | join(",")' "$1" 2> /dev/null || true)
	val=${named:-none}
	right=$([ "$(tr ',' '\n' <<< "$reserved" | sort -u | grep -c '^a[1-8]$')" = 6 ] && [[ "$named" =~ b/a[5-8] ]] &&
		! [[ "$named" =~ (^|,)a[5-8] ]] && ! [[ "$named" =~ b/a[1-4] ]] && echo 1 || echo 0)
}
c_count() { val=$(first_cell "$1"); right=$([ "$val" = 6 ] && echo 1 || echo 0); }
c_nodes() { # the reserved members, no other
	val=$(jq -r '[.rows[]?[0]] | sort | join(",")' "$1" 2> /dev/null || echo none)
	right=$([ -n "$reserved" ] && [ "$val" = "$reserved" ] && echo 1 || echo 0)
}
c_show() { # netjob, pool a, size 6
	val=$(jq -r '(.columns | map(.name)) as $c | [.rows[]? | [$c, .] | transpose | map({(.[0]): .[1]}) | add
		| select(.subcloud == "netjob") | "pool \(.pool) size \(.size)"] | join("; ") | if . == "" then "no netjob" else . end' "$1" 2> /dev/null || echo none)
	right=$([ "$val" = "pool a size 6" ] && echo 1 || echo 0)
}
c_unknown() { # the error names the subcloud unknown in every pool
	val="exit $2"
	if grep -q "unknown subcloud nosuchjob: no agent owns it in any of the" "${1%.json}.err" "$1" 2> /dev/null; then
		val="unknown subcloud" right=1
	fi
}
c_release() { # its 6 members, in both pools, let their lease go
	val=$(jq -r '.rows[0] | "freed \(.[1]), unreachable \(.[2])"' "$1" 2> /dev/null || echo none)
	right=$([ "$val" = "freed 6, unreachable 0" ] && echo 1 || echo 0)
}
sub "reserve netjob" 1 "RESERVE 6 FROM peers ORDER BY mem_free DESC AS netjob FOR 2m" 0 c_reserve 1
sub "count netjob" 5 "SELECT COUNT(*) FROM SUBCLOUD netjob" 0 c_count
sub "count netjob" 1 "SELECT COUNT(*) FROM SUBCLOUD netjob" 0 c_count
sub "nodes netjob" 5 "SELECT node FROM SUBCLOUD netjob ORDER BY mem_free DESC LIMIT 10" 0 c_nodes
sub "show subclouds" 5 "SHOW SUBCLOUDS" 0 c_show
sub "count nosuchjob" 5 "SELECT COUNT(*) FROM SUBCLOUD nosuchjob" 2 c_unknown
sub "release netjob" 1 "RELEASE netjob" 0 c_release 1

# /metrics at every agent: 3 gateways a pool, as SHOW POOLS said; the
# RESERVE above relayed out of pool a's gateways and into pool b's; the
# gateways ran the statements in their pools.
m_sum() { # m_sum PREFIX AGENTS...: the sum of the series whose line starts with PREFIX, over the agents
	local prefix=$1 i
	shift
	for i in "$@"; do $C metrics "$i" || true; done | awk -v p="$prefix" 'index($0, p) == 1 { s += $NF } END { printf "%d", s }'
}
gw_a=$(m_sum 'peerq_pool_gateway{pool="a"} ' 1 2 3 4)
gw_b=$(m_sum 'peerq_pool_gateway{pool="b"} ' 5 6 7 8)
out_a=$(m_sum 'peerq_relays_total{result="delivered",way="out"} ' 1 2 3 4)
in_b=$(m_sum 'peerq_relays_total{result="delivered",way="in"} ' 5 6 7 8)
runs=$(m_sum 'peerq_pool_runs_total{' 1 2 3 4 5 6 7 8)
val="gateways a $gw_a, b $gw_b; relays out of a $out_a, into b $in_b; pool runs $runs"
if [ "$gw_a" = 3 ] && [ "$gw_b" = 3 ] && [ "$out_a" -gt 0 ] && [ "$in_b" -gt 0 ] && [ "$runs" -gt 0 ]; then v=ok; else v=WRONG; wrong=$((wrong + 1)); fi
row "/metrics at a1..a8" "-" "-" "-" "$v $val"

# 4. A COUNT at a1, and one of pool b's gateways (as SHOW POOLS names
# them now) killed while it runs.
f="$OUT/before-kill.json"
ask "$f" "SHOW POOLS" > /dev/null
victim=$(jq -r '.rows[] | select(.[0] == "b") | .[3] | if type == "array" then .[0] else ((. // "") | split(",")[0]) end' "$f" 2> /dev/null || true)
vi=${victim#a}
[[ "$vi" =~ ^[5-8]$ ]] || { echo "no gateway of pool b in SHOW POOLS: $(cat "$f")"; exit 1; }
f="$OUT/kill.json"
t_ask=$(now)
(
	code=0
	$C query 1 "$COUNT" --format json > "$f" 2> "$OUT/kill.err" || code=$?
	echo "$code $(now)" > "$OUT/kill.done"
) &
qpid=$!
sleep "$KILL_AFTER"
t_kill=$(now)
$C kill "$vi"
wait "$qpid"
read -r code t_end < "$OUT/kill.done"
st=$(status "$f")
val=$(first_cell "$f")
verdict=$(judge "$st" "$code" "$([[ "$val" =~ ^[78]$ ]] && echo 1 || echo 0)")
named_only "$f" "$victim" || verdict="WRONG (names a live agent left out)"
[[ "$verdict" == WRONG* ]] && wrong=$((wrong + 1))
mid=$(awk -v k="$t_kill" -v e="$t_end" 'BEGIN { print (k < e) ? "killed mid-query" : "KILLED AFTER THE ANSWER" }')
row "kill $victim at +$(since "$t_ask" "$t_kill")s, done +$(since "$t_ask" "$t_end")s" "$st" "$code" "$val" "$verdict, $mid $(pools_meta "$f")"
echo "the answer asked across the kill of $victim:"
echo "  asked at +0s, $victim killed at +$(since "$t_ask" "$t_kill")s, answered at +$(since "$t_ask" "$t_end")s"
jq -c '.meta | {status, peers, elapsed_seconds, members_start, members_end, reason, excluded, pools}' "$f" 2> /dev/null || cat "$f" "$OUT/kill.err"

# 5. Until COUNT is 7 and converged and pool b has 3 gateways (none of
# them the dead one), 2 or more agreeing. Every answer on the way: 7 or 8 (the
# dead agent until pool b's gateways see it failed) with exit 0, or
# flagged with exit 4 or 8.
t_count="" t_agree="" t_pool="" t_both="" b="" k=0 right=0 flagged=0
declare -A seen=()
while (($(date +%s) < ${t_kill%.*} + RECOVER_TIMEOUT)); do
	f="$OUT/after.$k.json"
	code=$(ask "$f" "$COUNT")
	st=$(status "$f")
	val=$(first_cell "$f")
	t=$(since "$t_kill" "$(now)")
	if ! named_only "$f" "$victim"; then
		wrong=$((wrong + 1))
		row "after the kill +${t}s" "$st" "$code" "$val" "WRONG: names a live agent left out $(jq -c .meta.excluded "$f")"
	elif [[ "$st" =~ ^(converged|exact)$ ]] && [ "$code" = 0 ] && [[ "$val" =~ ^[78]$ ]]; then
		right=$((right + 1))
	elif [[ "$st" =~ ^(partial|contested)$ ]] && [ "$code" != 0 ]; then
		flagged=$((flagged + 1))
	else
		wrong=$((wrong + 1))
		row "after the kill +${t}s" "$st" "$code" "$val" "WRONG $(pools_meta "$f")"
	fi
	key="$st $code $val | $(pools_meta "$f")"
	[ -n "${seen[$key]:-}" ] || { seen[$key]=1; echo "  +${t}s COUNT: $key"; }
	c7=0
	[[ "$st" =~ ^(converged|exact)$ ]] && [ "$code" = 0 ] && [ "$val" = 7 ] && [ "$(jq -r .meta.peers "$f")" = 7 ] && c7=1
	[ "$c7" = 1 ] && [ -z "$t_count" ] && t_count=$t
	p="$OUT/after.$k.pools.json"
	ask "$p" "SHOW POOLS" > /dev/null
	b=$(pools "$p" | awk '$1 == "b"')
	t=$(since "$t_kill" "$(now)")
	[ -z "$t_agree" ] && awk '{ exit !(split($4, g, ",") == 3 && $5 >= 2) }' <<<"$b" && t_agree=$t && echo "  +${t}s SHOW POOLS, pool b has 3 gateways, a majority agreeing: $b"
	if awk -v dead="$victim" '{ n = split($4, g, ","); for (i = 1; i <= n; i++) if (g[i] == dead) exit 1; exit !(n == 3 && $5 >= 2) }' <<<"$b"; then
		[ -z "$t_pool" ] && t_pool=$t && echo "  +${t}s SHOW POOLS, pool b has 3 gateways, a majority agreeing, $victim no longer listed: $b"
		if [ -n "$t_count" ] && [ "$c7" = 1 ]; then
			t_both=$(since "$t_kill" "$(now)")
			break
		fi
	fi
	k=$((k + 1))
	sleep 1
done
row "COUNT converged 7 after the kill" "" "" "${t_count:-never}" "s after the kill"
row "pool b: 3 gateways, 2+ agreeing" "" "" "${t_agree:-never}" "s after the kill"
row "pool b: and $victim gone from them" "" "" "${t_pool:-never}" "s after the kill: $b"
row "both at once" "" "" "${t_both:-never}" "s after the kill"
row "answers after the kill" "" "" "$((k + 1))" "$right right (7 or 8, exit 0), $flagged flagged"

# 6. The next four statements, once recovered.
[ -n "$t_both" ] && statements next 7 "a=4,b=3"

echo
printf '%-34s %-10s %-5s %-22s %s\n' "what" "status" "exit" "value" "verdict (pool:status:peers:agreeing/gateways)"
printf '%s\n' "${TABLE[@]}"
echo "pools formed in ${formed}s; killed $victim (gateway of pool b) $KILL_AFTER s into a COUNT; $wrong wrong answers;" \
	"$flags flagged with no fault going on (steady, subclouds, next)"
[ "$wrong" = 0 ] && [ -n "$t_both" ] || exit 1
[ "$flags" = 0 ] || exit 2
