#!/usr/bin/env bash
# Issue 23's simulator figures for lying peers (BENCHMARKS.md, "Lying
# peers"): for each statement and lie, SEEDS runs of `peerq sim` with a
# share LIARS of liars at NODES peers, and how many came back right
# (honest error within the bound) or flagged (contested by the sample
# check); then SEEDS runs of each statement with no liars, and how many
# were contested (false alarms); then the top-50 under forge, alter and
# drop: forged entries accepted and honest top-50s.
#
#   scripts/sim-liars.sh                 # 10^4 peers, 1% liars, 20 seeds
#   SEEDS=100 scripts/sim-liars.sh       # the issue's 100 seeds
#   PARTS=honest SEEDS=100 scripts/sim-liars.sh
#   ONLY=GROUP PARTS=honest scripts/sim-liars.sh   # the statements matching a regex
#   LIES=flow PARTS=aggregates scripts/sim-liars.sh # some of the lies
#   LIES=squares ONLY=STDDEV PARTS=aggregates scripts/sim-liars.sh # made-up squares
#   SIMFLAGS=--check-once scripts/sim-liars.sh     # the first sample alone
# The simulator measures at most 200 peers' full estimates a round
# (--sample): the figures here are the asker's, and grouped statements
# at 10^4 peers cost 20 s a run measuring every peer.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-10000}
LIARS=${LIARS:-0.01}
SEEDS=${SEEDS:-20}
PARTS=${PARTS:-"aggregates honest topk"}
ONLY=${ONLY:-.}
LIES=${LIES:-"inflate extreme flow"}
SIMFLAGS=${SIMFLAGS:-} # e.g. --check-once: the sample check without its escalation
bin=$(mktemp -d)/peerq
go build -o "$bin" ./cmd/peerq

run() { "$bin" sim --nodes "$NODES" --quiet --n-from membership --sample 200 $SIMFLAGS "$@" 2>&1; }

aggregates=("SELECT AVG(cpu_load) FROM peers" "SELECT SUM(mem_free) FROM peers" "SELECT COUNT(*) FROM peers WHERE mem_free >= 8GB" "SELECT AVG(cpu_load) TRIM 2% FROM peers" "SELECT AVG(cpu_load) TRIM 5% FROM peers" "SELECT MEDIAN(cpu_load) FROM peers" "SELECT STDDEV(cpu_load) FROM peers")
honest=("${aggregates[@]:0:3}" "SELECT AVG(cpu_load) TRIM 1%, AVG(mem_free) TRIM 10% FROM peers" "SELECT region, AVG(disk_free), STDDEV(uptime) FROM peers GROUP BY region" "SELECT MEDIAN(cpu_load), PERCENTILE(mem_free, 0.9) FROM peers" "SELECT STDDEV(cpu_load), VARIANCE(mem_free), STDDEV(disk_free) FROM peers")

for part in $PARTS; do
	case $part in
	aggregates)
		echo "# $NODES peers, liars $LIARS, $SEEDS seeds: flagged, and the unflagged runs' honest error (median, worst)"
		for stmt in "${aggregates[@]}"; do
			grep -qE "$ONLY" <<<"$stmt" || continue
			for lie in $LIES; do
				flagged=0 errs=()
				for seed in $(seq 1 "$SEEDS"); do
					out=$(run -e "$stmt" --liars "$LIARS" --lie "$lie" --seed "$seed")
					line=$(grep '^liars' <<<"$out")
					if grep -q 'flagged yes' <<<"$line"; then
						flagged=$((flagged + 1))
					else
						errs+=("$(sed -E 's/.*honest error ([^,]*),.*/\1/' <<<"$line")")
					fi
				done
				unflagged=$(printf '%s\n' "${errs[@]:-}" | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {if (NR) printf "median %s, worst %s", a[int((NR+1)/2)], a[NR]; else printf "none"}')
				echo "$stmt | $lie | flagged $flagged/$SEEDS | unflagged: $unflagged"
			done
		done
		;;
	honest)
		echo "# $NODES peers, no liars, $SEEDS seeds: answers contested (false alarms)"
		for stmt in "${honest[@]}"; do
			grep -qE "$ONLY" <<<"$stmt" || continue
			contested=0 checked=0
			for seed in $(seq 1 "$SEEDS"); do
				out=$(run -e "$stmt" --seed "$seed")
				grep -q '^sample check' <<<"$out" && checked=$((checked + 1))
				grep -q '^sample check.*contested' <<<"$out" && contested=$((contested + 1)) && grep '^sample check' <<<"$out"
			done
			echo "$stmt | checked $checked/$SEEDS | contested $contested"
		done
		;;
	topk)
		echo "# $NODES peers, liars $LIARS, $SEEDS seeds: top-50 by reliability"
		for lie in forge alter drop selfrank inflate; do
			forged=0 ranked=0 shares=()
			for seed in $(seq 1 "$SEEDS"); do
				out=$(run -e "SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 50" --liars "$LIARS" --lie "$lie" --seed "$seed")
				line=$(grep '^liars' <<<"$out")
				forged=$((forged + $(sed -E 's/.*forged entries ([0-9]+).*/\1/' <<<"$line")))
				ranked=$((ranked + $(sed -E 's/.*observed of them ([0-9]+).*/\1/' <<<"$line")))
				shares+=("$(sed -E 's/.*share ([0-9]+)%.*/\1/' <<<"$line")")
			done
			worst=$(printf '%s\n' "${shares[@]}" | sort -n | head -1)
			echo "top-50 | $lie | forged entries accepted $forged | liars ranked above what was observed $ranked | honest top-50 share: worst $worst%"
		done
		;;
	esac
done
