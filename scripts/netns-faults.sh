#!/usr/bin/env bash
# netns-faults.sh — the table of issue 10 on the netns cluster
# (netns-cluster.sh up 8 first): concurrency, loss, kills and a partition
# during queries; each answer judged right, flagged (partial or refused)
# or WRONG (converged but not the exact answer over its population). The
# statement's exact answer is known: every agent of one host has the same
# cpu_cores, so COUNT(*) = the population and SUM(cpu_cores) = cores × it.
set -uo pipefail
cd "$(dirname "$0")"
C=./netns-cluster.sh
STMT="SELECT COUNT(*), SUM(cpu_cores) FROM peers"
CORES=$(nproc)
OUT=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}/faults
mkdir -p "$OUT"

# judge FILE EXPECTED...: right when converged over one of the expected
# populations with the exact numbers; flagged when partial or refused.
judge() {
	local f=$1
	shift
	python3 - "$f" "$CORES" "$@" <<'PY'
import json, sys
f, cores, expected = sys.argv[1], int(sys.argv[2]), {int(x) for x in sys.argv[3:]}
try:
    d = json.load(open(f))
except Exception:
    txt = open(f).read()
    print("flagged" if "overloaded" in txt or "429" in txt else "error"); sys.exit()
m, rows = d.get("meta", {}), d.get("rows") or [[None, None]]
if m.get("status") != "converged":
    print("flagged"); sys.exit()
count, total = rows[0]
ok = m.get("peers") in expected and count == m["peers"] and total == cores * m["peers"]
print("right" if ok else "WRONG")
PY
}

# run NAME CONC AGENTS EXPECTED...: CONC concurrent queries spread over
# agents 1..AGENTS; prints right/flagged/wrong counts.
run() {
	local name=$1 conc=$2 agents=$3
	shift 3
	rm -f "$OUT/$name".*
	for k in $(seq 1 "$conc"); do
		i=$(( (k - 1) % agents + 1 ))
		$C query "$i" "$STMT" --format json --allow-partial > "$OUT/$name.$k" 2>&1 &
	done
	wait
	tally "$name" "$conc" "$@"
}

tally() {
	local name=$1 conc=$2
	shift 2
	local r=0 fl=0 w=0 e=0
	for k in $(seq 1 "$conc"); do
		case $(judge "$OUT/$name.$k" "$@") in
		right) r=$((r + 1)) ;; flagged) fl=$((fl + 1)) ;; WRONG) w=$((w + 1)) ;; *) e=$((e + 1)) ;;
		esac
	done
	echo "$name: $conc queries: $r right, $fl flagged, $w WRONG, $e errors"
}

N=$($C query 1 "SELECT COUNT(*) FROM peers" --format csv | tail -1)
echo "cluster of $N agents, $CORES cores each"
for conc in 1 50 200; do run "conc$conc-one-agent" "$conc" 1 "$N"; sleep 3; done
run "conc500-all-agents" 500 "$N" "$N"; sleep 3
for loss in 5 20; do
	$C loss "$loss"
	run "loss$loss" 20 "$N" "$N"
	$C heal; sleep 5
done
# Two agents killed one second into queries, three times.
for trial in 1 2 3; do
	rm -f "$OUT/kill$trial".*
	for k in 1 2 3 4; do $C query 1 "$STMT" --format json --allow-partial > "$OUT/kill$trial.$k" 2>&1 & done
	sleep 1
	$C kill $((N - 1)); $C kill "$N"
	wait
	tally "kill$trial" 4 "$N" $((N - 2))
	$C start $((N - 1)); $C start "$N"
	sleep 15
done
# A partition into halves one second into queries, asked on both sides.
for trial in 1 2; do
	rm -f "$OUT/part$trial".*
	for k in 1 2 3 4; do $C query $(( k <= 2 ? 1 : N )) "$STMT" --format json --allow-partial > "$OUT/part$trial.$k" 2>&1 & done
	sleep 1
	$C partition $((N / 2))
	wait
	tally "part$trial" 4 "$N" $((N / 2))
	$C heal
	sleep 20
done
