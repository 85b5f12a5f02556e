#!/usr/bin/env bash
# netns-pools-liar.sh — one lying gateway among real agents in a cloud of
# two pools (issues 23 and 24; BENCHMARKS.md, "A lying gateway among
# agents"): netns-cluster.sh's pools of 8 (a1..a4 in pool a, a5..a8 in
# pool b), all with one --encrypt key, with scripts/liar --lie gateway in
# the place of aLIAR (8: the name of pool b's that hashes lowest, so
# always one of its 3 gateways). The liar tells the truth about itself and
# bends every partial it reports for pool b, signed with its own identity:
# sums and counts ×1000, a top-k's first row dropped. It waits until SHOW
# POOLS at a1 lists both pools, exact, 4 members and 3 gateways each, the
# liar among pool b's; then asks, ROUNDS times (10) at a1 and at pool b's
# first agent that is not the liar (a5, or a6; its coordinator may be the
# liar), five statements whose answers are known: a COUNT and an
# AVG(cpu_cores) by gossip (8; every agent shares the host's cores), the
# top 5 by name by gossip (a8..a4; the liar drops its pool's first row,
# a8), a COUNT of tags and a GROUP BY pool from the gateways' member
# lists (8; a=4, b=4). Each must be right and not
# flagged: a pool's partial counts only when a majority of its gateways
# report agreeing ones, so the liar is outvoted. It prints every answer
# with pool b's agreeing gateways, how many partials the liar bent (its
# log), and exits 1 on a wrong answer (or the liar not a gateway), 2 on a
# flagged one. Needs root, iproute2, jq and Go. The agents' logs and the
# answers stay in $PEERQ_NETNS_DIR (/tmp/peerq-netns): a*.log, pools-liar/.
#
#   sudo scripts/netns-pools-liar.sh
#   sudo LIAR=6 ROUNDS=20 scripts/netns-pools-liar.sh  # a6: a gateway too
#   sudo LIAR_ROSTER=alone scripts/netns-pools-liar.sh # its reports name it
#       as pool b's only gateway (made-up, more: scripts/liar --roster)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${PEERQ_NETNS_DIR:-/tmp/peerq-netns}
C=scripts/netns-cluster.sh
N=8
LIAR=${LIAR:-8}
ROUNDS=${ROUNDS:-10}
FORM_TIMEOUT=${FORM_TIMEOUT:-120}
KEY=$(head -c 32 /dev/urandom | base64)
export PEERQ_BIN="$DIR/peerq" PEERQ_NETNS_DIR="$DIR" LIAR_AT=$LIAR LIAR_BIN="$DIR/liar" LIAR_LIE=gateway
OUT="$DIR/pools-liar"
if ! [[ "$LIAR" =~ ^[0-9]+$ ]] || [ "$LIAR" -le $((N / 2)) ] || [ "$LIAR" -gt "$N" ]; then
	echo "LIAR=$LIAR: one of pool b's agents, $((N / 2 + 1))..$N" >&2
	exit 1
fi
B=$((N / 2 + 1)) # pool b's agent that asks: the first that is not the liar (it serves no API)
[ "$B" = "$LIAR" ] && B=$((B + 1))

trap '$C down' EXIT
. scripts/netns-pools-lib.sh
start_pools

# 1. The cloud forms, the liar one of pool b's gateways.
form_pools
if ! grep -qE "^b .*[ ,]a$LIAR(,| |$)" <<<"$rows"; then
	echo "a$LIAR, the liar, is not one of pool b's gateways: the run tests nothing"
	exit 1
fi

# 2. The statements, ROUNDS times, at a1 and aB. right: the answer's
# rows as text equal WANT (for the AVG: within 1% of it).
declare -a STMT WANT
STMT+=("SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1") WANT+=("8")
STMT+=("SELECT AVG(cpu_cores) FROM peers") WANT+=("$(nproc)")
STMT+=("SELECT node FROM peers WHERE cpu_cores >= 1 ORDER BY node DESC LIMIT 5") WANT+=("a8,a7,a6,a5,a4")
STMT+=("SELECT COUNT(*) FROM peers") WANT+=("8")
STMT+=("SELECT pool, COUNT(*) FROM peers GROUP BY pool") WANT+=("a=4,b=4")
ok=0 wrong=0 flagged=0
for r in $(seq 1 "$ROUNDS"); do
	for at in 1 "$B"; do
		for s in "${!STMT[@]}"; do
			f="$OUT/r$r.a$at.s$s.json"
			code=$(ask "$f" "${STMT[$s]}" "$at")
			st=$(status "$f")
			val=$(jq -r '[.rows[] | map(tostring) | join("=")] | join(",")' "$f" 2> /dev/null || echo none)
			b=$(jq -r '.meta.pools[]? | select(.pool == "b") | "\(.agreeing)/\(.gateways)"' "$f" 2> /dev/null || echo -)
			right=0
			if [ "$s" = 1 ]; then
				awk -v v="$val" -v w="${WANT[$s]}" 'BEGIN { exit !(v != "" && v - w <= 0.01 * w && w - v <= 0.01 * w) }' && right=1
			elif [ "$val" = "${WANT[$s]}" ]; then
				right=1
			fi
			if [[ "$st" =~ ^(converged|exact)$ ]] && [ "$code" = 0 ]; then
				if [ "$right" = 1 ]; then v=ok ok=$((ok + 1)); else v=WRONG wrong=$((wrong + 1)); fi
			elif [[ "$st" =~ ^(partial|contested)$ ]] && [ "$code" != 0 ]; then
				v=flagged flagged=$((flagged + 1))
			else
				v=WRONG wrong=$((wrong + 1))
			fi
			printf '%-3s a%s %-72s %-10s %-4s %-22s pool b %-4s %s\n' "$r" "$at" "${STMT[$s]}" "$st" "$code" "$val" "$b" "$v"
		done
	done
done

bent=$(grep -c "bent its pool's partial" "$DIR/a$LIAR.log" || true)
named=$(grep -c "as its pool's gateways, not" "$DIR/a$LIAR.log" || true)
echo
echo "a$LIAR, a gateway of pool b, bent $bent of its pool's partials${LIAR_ROSTER:+ and named a false roster ($LIAR_ROSTER) in $named reports}; $((ROUNDS * 2 * ${#STMT[@]})) answers: $ok right, $flagged flagged, $wrong wrong"
if [ "$wrong" -gt 0 ]; then exit 1; fi
if [ "$flagged" -gt 0 ]; then exit 2; fi
