#!/usr/bin/env bash
# netns-reliability.sh — the promises of RESERVE and RELEASE, tried on real
# agents in network namespaces, as an operator would: disks filled and made
# read-only, owners restarted without their records, two RESERVEs of one
# name at once, and statements by the hundred at once. Start the cluster
# with data dirs on tmpfs first:
#
#   sudo PEERQ_NETNS_DISKS=1 scripts/netns-cluster.sh up 8
#   sudo scripts/netns-reliability.sh            # prints one line per promise
#
# Each line says what was tried, what was expected and what happened; a
# line that starts with FAIL is a broken promise.
set -uo pipefail
cd "$(dirname "$0")"
C=./netns-cluster.sh
OUT=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}/reliability
mkdir -p "$OUT"
N=$($C query 1 "SELECT COUNT(*) FROM peers" --format csv | tail -1)

# q I STATEMENT: run a statement at agent I, print its output, return its
# exit code.
q() { $C query "$@"; }

# held NAME: how many peers hold a lease of subcloud NAME (gossip: each
# peer's own lease table, not the tags).
held() {
	q 1 "SELECT COUNT(*) FROM peers WHERE subcloud = '$1' AND mem_free >= 0" --format csv --allow-partial 2>/dev/null | tail -1
}

# until_free NAME: waits up to 90 s until no peer holds a lease of
# subcloud NAME; prints "LEFT SECONDS" (LEFT 0: freed).
until_free() {
	local start left=1
	start=$(date +%s)
	for _ in $(seq 1 90); do
		left=$(held "$1")
		[ "${left:-1}" = 0 ] && break
		sleep 1
	done
	echo "${left:-1} $(($(date +%s) - start))"
}

report() { # report OK|FAIL TEXT
	printf '%-4s %s\n' "$1" "$2"
}

echo "cluster of $N agents"

# 1. RESERVE at an owner whose disk is full or read-only: never exit 0,
# nothing held afterwards. Both when the agent knows (its probe ran) and
# when the disk fails between its probe and the write.
for fault in full ro; do
	for when in known sudden; do
		name="disk_${fault}_$when"
		$C disk 3 "$fault"
		[ "$when" = known ] && sleep 11 # the agent's probe, every 10 s
		q 3 "RESERVE 3 FROM peers WHERE node != 'a3' AS $name FOR 30m" > "$OUT/$name" 2>&1
		code=$?
		if [ "$fault" = full ]; then $C disk 3 free; else $C disk 3 repair; fi
		sleep 11 # past a3's next probe: the case after this starts with a disk it writes
		h=$(held "$name")
		[ "$code" = 0 ] && q 3 "RELEASE $name" > /dev/null 2>&1 # a broken promise: give the peers back
		# A sudden fault must be met by the write itself (owned.json), not
		# by a probe left over from the case before.
		path_ok=1
		[ "$when" = sudden ] && ! grep -q "owned.json\|names.json\|lease.json" "$OUT/$name" && path_ok=0
		if [ "$code" = 7 ] && [ "${h:-0}" = 0 ] && [ "$path_ok" = 1 ]; then
			report OK "RESERVE with the owner's disk $fault ($when): exit $code, $h peers hold it — $(tail -1 "$OUT/$name" | cut -c1-160)"
		else
			report FAIL "RESERVE with the owner's disk $fault ($when): exit $code, $h peers hold it — $(tail -1 "$OUT/$name" | cut -c1-160)"
		fi
	done
done
sleep 11 # a3 back, its probe sees its disk writable

# 2. An owner that restarts without its records: its members free
# themselves (they ask it) — how long until none holds the lease.
q 2 "RESERVE 3 FROM peers WHERE node != 'a2' AS norecords FOR 30m" > "$OUT/norecords" 2>&1
before=$(held norecords)
$C kill 2
rm -f "${PEERQ_NETNS_DIR:-/tmp/peerq-netns}/a2/owned.json" "${PEERQ_NETNS_DIR:-/tmp/peerq-netns}/a2/owned.json.prev"
sleep 1
$C start 2
read -r left took < <(until_free norecords)
if [ "${before:-0}" = 0 ]; then
	report FAIL "owner restarted without its records: its RESERVE failed ($(tail -n 1 "$OUT/norecords"))"
elif [ "${left:-1}" = 0 ]; then
	report OK "owner restarted without its records: $before members held, 0 after ${took} s"
else
	report FAIL "owner restarted without its records: $left of $before members still hold after ${took} s"
fi

# 3. A member whose disk turned read-only: RELEASE says yes; restarted on
# the read-only disk, the member finds the lease there and frees itself.
q 1 "RESERVE 2 FROM peers WHERE node IN ('a5', 'a6') AS rodisk FOR 30m" > "$OUT/rodisk" 2>&1
$C disk 5 ro
q 1 "RELEASE rodisk" > "$OUT/rodisk.release" 2>&1
rcode=$?
$C kill 5
sleep 1
$C start 5
read -r left took < <(until_free rodisk)
$C disk 5 repair
if [ "$rcode" = 0 ] && [ "${left:-1}" = 0 ]; then
	report OK "RELEASE with a read-only member: exit 0; after its restart on the read-only disk, 0 peers hold it (${took} s)"
else
	report FAIL "RELEASE with a read-only member: exit $rcode; $left peers hold it ${took} s after its restart"
fi

# 4. Two RESERVEs of one name at once, at two agents, 20 times: exactly
# one exit 0 each time, and the other holds nothing.
good=0
for trial in $(seq 1 20); do
	a=$(( (trial % (N - 1)) + 1 ))
	b=$(( a % N + 1 ))
	q "$a" "RESERVE 2 AS race$trial FOR 5m" > "$OUT/race$trial.a" 2>&1 &
	pa=$!
	q "$b" "RESERVE 2 AS race$trial FOR 5m" > "$OUT/race$trial.b" 2>&1 &
	pb=$!
	wait $pa
	ca=$?
	wait $pb
	cb=$?
	h=$(held "race$trial")
	if { [ "$ca" = 0 ] && [ "$cb" != 0 ]; } || { [ "$ca" != 0 ] && [ "$cb" = 0 ]; }; then
		[ "$h" = 2 ] && good=$((good + 1))
	fi
	winner=$a
	[ "$cb" = 0 ] && winner=$b
	q "$winner" "RELEASE race$trial" > /dev/null 2>&1
done
[ "$good" = 20 ] && v=OK || v=FAIL
report "$v" "two RESERVEs of one name at once, 20 trials: exactly one exit 0 (and 2 peers held) in $good"

# 5. Statements by the hundred at once, spread over every agent: the
# answers admitted are right or flagged, the rest refused at once (busy,
# exit 5). Every agent of one host has the same cpu_cores, so the exact
# answer is known: COUNT = the population, SUM(cpu_cores) = cores × it.
CORES=$(nproc)
for conc in 200 500; do
	rm -f "$OUT/load$conc".*
	t0=$(date +%s.%N)
	for k in $(seq 1 "$conc"); do
		i=$(( (k - 1) % N + 1 ))
		q "$i" "SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 0" --format json > "$OUT/load$conc.$k" 2>&1 &
		echo $! > "$OUT/load$conc.$k.pid"
	done
	codes=()
	for k in $(seq 1 "$conc"); do
		wait "$(cat "$OUT/load$conc.$k.pid")"
		codes+=($?)
	done
	t1=$(date +%s.%N)
	python3 - "$OUT" "$conc" "$CORES" "$N" "${codes[@]}" <<'PY'
import json, sys
out, conc, cores, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
codes = [int(c) for c in sys.argv[5:]]
right = partial = busy = wrong = other = 0
for k, code in enumerate(codes, 1):
    txt = open(f"{out}/load{conc}.{k}").read()
    if code == 5:
        busy += 1
        continue
    try:
        d = json.loads(txt[txt.index("{"):txt.rindex("}") + 1])
    except Exception:
        other += 1
        if other <= 2:
            print("  (other:", txt.strip()[-160:].replace("\n", " "), ")")
        continue
    m, rows = d.get("meta", {}), d.get("rows") or [[None, None]]
    if m.get("status") == "partial":
        partial += 1
        continue
    count, total = rows[0]
    if count == m.get("peers") and total == cores * count and m.get("peers") in (n, n - 1):
        right += 1
    else:
        wrong += 1
        print("  (WRONG:", rows, m.get("peers"), m.get("status"), ")")
admitted = conc - busy
share = 100.0 * partial / admitted if admitted else 0
verdict = "OK" if wrong == 0 and other == 0 and share <= 5 else "FAIL"
print(f"{verdict:<4} {conc} statements at once over {n} agents: {right} right, {partial} partial "
      f"({share:.1f}% of the {admitted} admitted), {busy} refused busy, {wrong} WRONG, {other} other")
PY
	sleep 5
done
