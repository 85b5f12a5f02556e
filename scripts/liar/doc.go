// Command liar is a peerq peer that lies about itself, for red-team runs
// among real agents (scripts/netns-liar.sh; BENCHMARKS.md, "Lying
// peers"): it joins a cluster as an agent does, with its own identity and
// the cluster key, follows every protocol, and reports a record of its
// machine with cpu_cores, cpu_load, mem_free and disk_free exaggerated —
// ×1000 within the catalog's bounds (--lie inflate, the simulator's
// inflate), or at the bounds (--lie extreme). It serves no local API: the
// statements are asked at honest agents.
//
//	go run ./scripts/liar --node a8 --bind 10.77.0.8:7946 --exchange 10.77.0.8:7947 \
//		--data-dir /tmp/peerq-netns/a8 --join 10.77.0.1:7946 --lie inflate
//
// What the honest peers do about it is docs/SECURITY.md's: the answers
// its claim bends are contested by the sample check, AVG(x) TRIM p leaves
// its value out.
package main
