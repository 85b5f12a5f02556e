# netns-pools-lib.sh — what netns-pools.sh and netns-pools-liar.sh share,
# sourced by them (not run): the two pools of netns-cluster.sh started
# from this checkout's build, the statements asked at an agent, and the
# wait until SHOW POOLS shows both pools formed. Expects DIR, C, N, KEY,
# OUT and FORM_TIMEOUT set, PEERQ_BIN and PEERQ_NETNS_DIR exported.

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# start_pools: build peerq (and scripts/liar when LIAR_BIN is set), clear
# what a run before left, and start the N agents in pools a and b
# (netns-cluster.sh pools: a1..a4 in pool a, a5..a8 in pool b, every agent
# given the other pool's cloud ports).
start_pools() {
	mkdir -p "$DIR"
	go build -o "$PEERQ_BIN" ./cmd/peerq # this checkout's agents, not an older build
	if [ -n "${LIAR_BIN:-}" ]; then go build -o "$LIAR_BIN" ./scripts/liar; fi
	$C down > /dev/null 2>&1 || true # a run before this one, if it left anything
	rm -rf "$DIR"/a* "$OUT"
	mkdir -p "$OUT"
	$C pools "$N" "$KEY"
}

# ask FILE STATEMENT [I]: the statement at a1 (or aI), its JSON answer in
# FILE; prints its exit code.
ask() {
	local code=0
	$C query "${3:-1}" "$2" --format json > "$1" 2> "${1%.json}.err" || code=$?
	echo "$code"
}
# pools FILE: SHOW POOLS's rows from FILE, "pool status members gateways agreeing", one a line.
# (gateways is a list in JSON: joined with commas here)
pools() { jq -r '.rows[] | "\(.[0]) \(.[1]) \(.[2]) \(.[3] | if type == "array" then join(",") else (. // "-") end) \(.[4] // 0)"' "$1" 2> /dev/null || true; }
status() { jq -r '.meta.status // "none"' "$1" 2> /dev/null || echo none; }

# form_pools: SHOW POOLS at a1 once a second until both pools are
# answered (converged or exact) with N/2 members and 3 gateways each, or
# FORM_TIMEOUT (exit 1, with what it said and the agents' last lines).
# Sets rows (pools' lines), formed (seconds) and k (SHOW POOLS before).
form_pools() {
	local t0 f
	t0=$(now)
	formed="" k=0
	while (($(date +%s) < ${t0%.*} + FORM_TIMEOUT)); do
		f="$OUT/form.$k.json"
		ask "$f" "SHOW POOLS" > /dev/null
		rows=$(pools "$f")
		if [ "$(wc -l <<<"$rows")" -eq 2 ] && awk -v m=$((N / 2)) '$2 ~ /^(converged|exact)$/ && $3 == m && split($4, g, ",") == 3 { n++ } END { exit n != 2 }' <<<"$rows"; then
			formed=$(since "$t0" "$(now)")
			break
		fi
		k=$((k + 1))
		sleep 1
	done
	if [ -z "$formed" ]; then
		echo "the pools did not form in ${FORM_TIMEOUT}s; SHOW POOLS at a1 said:"
		cat "$f" "${f%.json}.err"
		tail -n 5 "$DIR"/a*.log
		exit 1
	fi
	echo "formed in ${formed}s (${k} SHOW POOLS before):"
	sed 's/^/  /' <<<"$rows"
}
