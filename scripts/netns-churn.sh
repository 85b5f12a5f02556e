#!/usr/bin/env bash
# netns-churn.sh — answers under kill -9 churn among real agents (issue
# 21): on a cluster from `netns-cluster.sh up N`, agents 2..N are killed
# (kill -9: no leave, no goodbye) one every PEERQ_CHURN_EVERY seconds (5)
# and each restarted PEERQ_CHURN_DOWN seconds later (10) on its data dir,
# while agent 1 asks a COUNT and a list of every member's name, one after
# the other, for PEERQ_CHURN_SECONDS (120). Each answer is checked against
# the agents that were up: an answer that is not partial must count and
# name every agent up throughout it (and started 3 s before: one started
# later may not have joined yet) and none that was down throughout, less
# those it says it left out (`excluded`), and never name one it left out. It prints the share of partial answers, the members left out, and
# exits 1 on any wrong answer.
#
#   scripts/netns-cluster.sh up 8 && scripts/netns-churn.sh
set -euo pipefail
cd "$(dirname "$0")"
DIR=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}
EVERY=${PEERQ_CHURN_EVERY:-5}
DOWN=${PEERQ_CHURN_DOWN:-10}
SECS=${PEERQ_CHURN_SECONDS:-120}
N=$(cat "$DIR/count")
OUT=$(mktemp -d)
now() { date +%s.%N; }

# The churn: one agent killed every EVERY s, restarted DOWN s later; each
# change logged with its time (down: from just before the kill; up: from
# when the agent is started, since it may count from then on).
churn() {
	local end=$1 i
	while (($(date +%s) < end)); do
		i=$((2 + RANDOM % (N - 1)))
		if [ ! -e "$OUT/down.$i" ]; then
			touch "$OUT/down.$i"
			echo "$(now) down a$i" >> "$OUT/events"
			./netns-cluster.sh kill "$i" > /dev/null 2>&1 || true
			(
				sleep "$DOWN"
				echo "$(now) up a$i" >> "$OUT/events"
				./netns-cluster.sh start "$i" > /dev/null 2>&1 || true
				rm -f "$OUT/down.$i"
			) &
		fi
		sleep "$EVERY"
	done
	wait
}

end=$(($(date +%s) + SECS))
: > "$OUT/events"
churn "$end" &
k=0
while (($(date +%s) < end)); do
	for stmt in "SELECT COUNT(*) FROM peers WHERE mem_free >= 0" \
		"SELECT node FROM peers WHERE mem_free >= 0 ORDER BY node LIMIT 100"; do
		t0=$(now)
		code=0
		./netns-cluster.sh query 1 "$stmt" --format json --allow-partial > "$OUT/a$k.json" 2> "$OUT/a$k.err" || code=$?
		echo "$t0 $(now) $code $OUT/a$k.json" >> "$OUT/answers"
		k=$((k + 1))
	done
done
wait

python3 - "$OUT" "$N" <<'EOF'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
JOIN = 3.0
events = []
for line in open(f"{out}/events"):
    t, what, name = line.split()
    events.append((float(t), what, name))
def state(t):
    up = {f"a{i}" for i in range(1, n + 1)}
    for et, what, name in events:
        if et <= t:
            (up.discard if what == "down" else up.add)(name)
    return up
total = partial = wrong = failed = left_out = 0
for line in open(f"{out}/answers"):
    t0, t1, code, path = line.split()
    t0, t1 = float(t0), float(t1)
    try:
        a = json.load(open(path))
    except Exception:
        failed += 1
        print("no answer:", open(path.replace(".json", ".err")).read().strip()[:200])
        continue
    total += 1
    meta = a["meta"]
    if meta["status"] == "partial":
        partial += 1
        continue
    excl = set(meta.get("excluded", []))
    left_out += meta.get("excluded_count", 0)
    # Up throughout: up at the start, at the end and at every change in
    # between. An agent started in the JOIN seconds before may not have
    # joined yet (a process starting, then Serf's join): it may count or
    # not.
    times = [t0, t1] + [et for et, _, _ in events if t0 <= et <= t1]
    sure = set.intersection(*(state(t) for t in times)) - excl
    maybe = set.union(*(state(t) for t in times)) - excl
    sure -= {name for et, what, name in events if what == "up" and t0 - JOIN <= et <= t1}
    if a["columns"][0]["name"] == "COUNT(*)":
        got = a["rows"][0][0]
        ok = len(sure) <= got <= len(maybe)
    else:
        names = {r[0] for r in a["rows"]}
        ok = sure <= names <= maybe and not names & excl
        got = sorted(names)
    if not ok:
        wrong += 1
        print(f"WRONG: {a['statement']}: {got}; up throughout {sorted(sure)}, up at some time {sorted(maybe)}, excluded {sorted(excl)}")
print(f"{total} answers in {n} agents' churn, {partial} partial ({100*partial/max(total,1):.1f}%), {wrong} wrong, "
      f"{failed} without an answer, {left_out} members left out in all; kills {sum(1 for e in events if e[1]=='down')}")
sys.exit(1 if wrong else 0)
EOF
