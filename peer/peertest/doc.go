// Package peertest is the in-memory, round-based network the protocol
// cores' own tests run on (as raft's tests run on their network with drop
// and isolate): every live peer ticks once a round in a random order, its
// messages are delivered at once and the replies they cause with them, each
// message lost with probability Loss; a crashed peer neither sends nor
// receives. Everything is drawn from one seeded source, so a run is
// determined by its seed.
//
// # Usage
//
//	nw := peertest.New[*aggregate.Message](seed)
//	for i := range n {
//		cfg := aggregate.DefaultConfig(spec, rand.New(...), nw.Sampler(peer.ID(i)))
//		node, _ := aggregate.New(&cfg, contribution(i))
//		nw.Add(node)
//	}
//	nw.Loss = 0.05
//	for range rounds {
//		nw.Round()
//	}
//	nw.Crash(7)
package peertest
