// Package sim is a round-based simulator that runs the real protocol cores
// (aggregate, topk) for up to millions of peers in one process, against the
// exact answer, with message loss, crashes and joins.
//
// It follows cockroach's asim: the real algorithms, driven in ticks against
// state held in slices, with no goroutine per peer and no clock. Each round
// every live peer starts one exchange, in a random order; a message is
// delivered at once or lost (the sequential model under which push-pull
// averaging shrinks the variance by 1/(2√e) a round). Crashed peers stop at
// once; survivors learn of a crash DetectRounds later, as from a failure
// detector, and then stop sampling the dead and drop their links to them.
// Joined peers take part from the round they join.
//
// Peers get the synthetic records of query.Synthetic, the same the embedded
// demo gives its peers.
//
// # Usage
//
//	s, err := sim.New(plan, sim.DefaultConfig(100_000))
//	for !s.Done() {
//		st := s.Step()     // one round; st has messages, bytes and errors
//	}
//	answer := s.Answer()   // the originator's result
//	exact := s.Exact()     // over the peers alive now
package sim
