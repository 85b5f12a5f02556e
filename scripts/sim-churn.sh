#!/usr/bin/env bash
# sim-churn.sh: the simulator's churn table (BENCHMARKS.md, "Answers under
# churn"): for 10^3…10^6 peers and median sessions of 10 min and 1 h, the
# share of answers the runtime would call converged and their error over
# the members that took part, with sums scaled by the membership's count
# (one Serf pool, as the runtime does) and by the gossip estimate.
#
#   scripts/sim-churn.sh [peerq binary] > table.txt
#
# PEERQ_SIM_SIZES picks sizes ("10000 1000000"), PEERQ_SIM_TRIALS_1K,
# _10K, _100K and _1M the trials at each (100, 100, 20, 10).
# Rounds of 100 ms; a query's peers leave a lost member out 0.75 s after
# its loss plus log2(N) rounds; Serf's verdict after 4 × log10(N) s.
set -euo pipefail
PEERQ=${1:-./peerq}
STMT="SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 2GB"
echo "| peers | session | sums scaled by | trials | converged | error of the converged: median / worst | beyond the accuracy | left out per answer | lost unconfirmed | lost before it started |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for n in 1000 10000 100000 1000000; do
	case $n in 1000) k=${PEERQ_SIM_TRIALS_1K:-100} ;; 10000) k=${PEERQ_SIM_TRIALS_10K:-100} ;; 100000) k=${PEERQ_SIM_TRIALS_100K:-20} ;; *) k=${PEERQ_SIM_TRIALS_1M:-10} ;; esac
	case " ${PEERQ_SIM_SIZES:-1000 10000 100000 1000000} " in *" $n "*) ;; *) continue ;; esac
	for session in 10m 1h; do
		for nfrom in membership gossip; do
			out=$("$PEERQ" sim --nodes $n -e "$STMT" --session $session --n-from $nfrom --trials $k)
			conv=$(grep '^converged' <<<"$out")
			per=$(grep '^per answer' <<<"$out")
			share=$(sed -E 's/^converged ([0-9]+) of ([0-9]+) \(([0-9.]+%)\).*/\1 of \2 (\3)/' <<<"$conv")
			errs=$(sed -E 's/.*median ([^,]+), worst ([^;]+);.*/\1 \/ \2/' <<<"$conv")
			beyond=$(sed -E 's/.*; ([0-9]+) converged beyond.*/\1/' <<<"$conv")
			left=$(sed -E 's/^per answer: ([0-9.]+) members left out \(([0-9.]+%).*/\1 (\2)/' <<<"$per")
			unconf=$(sed -E 's/.*, ([0-9.]+) lost unconfirmed.*/\1/' <<<"$per")
			ghosts=$(sed -E 's/.*, ([0-9.]+) lost before it started.*/\1/' <<<"$per")
			echo "| $n | $session | $nfrom | $k | $share | $errs | $beyond | $left | $unconf | $ghosts |"
		done
	done
done
