// Command liar is a peerq peer that lies, for red-team runs among real
// agents (scripts/netns-liar.sh, scripts/netns-pools-liar.sh;
// BENCHMARKS.md, "Lying peers" and "Beyond one pool"): it joins a cluster
// as an agent does, with its own identity and the cluster key, and
// follows every protocol but in its lie. About itself (--lie inflate, the
// simulator's inflate, or extreme) it reports a record of its machine with
// cpu_cores, cpu_load, mem_free and disk_free exaggerated — ×1000 within
// the catalog's bounds, or at the bounds; or (--lie selfrank) its record
// true but for a reliability of 1. As a gateway of its pool in a
// cloud of pools (--pool, --cloud-join, --lie gateway) it tells the truth
// about itself and bends every partial it reports for its pool, signed
// with its own identity: sums and counts ×1000, a top-k's first row
// dropped; it prints a line for each. With --roster it also names, as its
// pool's gateways now, itself alone (alone), itself and two made-up names
// (made-up), or its pool's gateways and two made-up names (more): a
// roster that would make its report a majority, if the asker took it. It
// serves no local API: the statements are asked at honest agents.
//
//	go run ./scripts/liar --node a8 --bind 10.77.0.8:7946 --exchange 10.77.0.8:7947 \
//		--data-dir /tmp/peerq-netns/a8 --join 10.77.0.1:7946 --lie inflate
//
// What the honest peers do about it is docs/SECURITY.md's: the answers
// its claim bends are contested by the sample check, AVG(x) TRIM p leaves
// its value out; a pool's partial counts only when a majority of its
// gateways report agreeing ones, so one lying gateway is outvoted.
package main
