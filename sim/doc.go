// Package sim is a round-based simulator that runs the real protocol cores
// (aggregate, topk) for up to millions of peers in one process, against the
// exact answer, with message loss, crashes and joins.
//
// It follows cockroach's asim: the real algorithms, driven in ticks against
// state held in slices, with no goroutine per peer and no clock. Every peer
// is a run.Instance, as in the runtime: its rounds, every message it
// receives (with the runtime's checks on receipt: RoundStats.Refused, 0
// with honest peers) and the members it leaves out go through it, and the
// originator's applies the engine's convergence rule (run.Rule) each
// round: RoundStats.RuleConverged says when the engine would answer, next
// to the true error. Messages are handed over decoded, not as bytes. Each round every peer that has joined the query starts one
// exchange, in a random order; a message is delivered at once or lost (the
// sequential model under which push-pull averaging shrinks the variance by
// 1/(2√e) a round). As in the runtime, only the originator starts: a peer
// joins when a message first reaches it (Config.AllStart starts everyone at
// once, the model of the limits table), or an announcement does
// (Config.Fanout: a young query's peers tell Fanout more a round,
// run.Instance.Announce). Crashed peers stop at once;
// survivors learn of a crash DetectRounds later, as from a failure
// detector, and then stop sampling the dead and drop their links to them.
// Peers added by a join event take part once the query reaches them.
//
// Churn can also be a process (Config.Session, peerq sim --session 1h):
// peers leave without notice after exponential sessions of that median and
// as many join, members that left before the query started stay listed
// until Serf's verdict (DetectRounds, SuspicionMult × log10(N) probe
// intervals), and the query's own peers leave a lost member out
// ExcludeRounds after its loss (a failed exchange, pings and indirect
// probes, then the set spreads), up to MaxExcluded members a query, as the
// runtime does (node's query-scoped exclusion). Outcome is what the asker
// would answer at the first round the rule calls final: the runtime's
// status (run.Blocking for members lost and not yet left out) and the
// error over the members that took part.
//
// At a million peers memory latency sets the pace: every visit to a peer
// and to its random partner misses the cache. Step prefetches the peer a
// dozen places ahead and the partner it will draw (the sampler's random
// words are drawn ahead of use), so those misses overlap the work of the
// peers before (package internal/prefetch).
//
// Memory is the other limit: a peer's run.Instance and aggregate core
// (~0.9 KB) live in one block, and without crashes or churn nobody is ever
// removed, so an initiator folds its link as soon as it is answered
// (aggregate.Config.FoldAnswered): a peer then holds only its responder
// links, which fit in the core's own storage (no heap) most rounds. A
// top-k's peers share one topk.Config (run's Binding) and, since
// messages are handed over in the process, their lists: a peer whose
// merge yields its partner's list keeps that list, not a copy (package
// topk), so converged peers hold a few lists between them. peerq sim
// --memprofile shows where the rest goes.
//
// Tables, summaries, CSV and plots are in sim/report, so that the
// simulator carries no plotting dependency.
//
// Peers get the synthetic records of query.Synthetic, the same the embedded
// demo gives its peers. Drift moves them (query.Drift) and puts the new
// values into the running cores in place: the long-lived instance a WATCH
// could keep across epochs, measured against a restart per epoch by
// BenchmarkWatchEpochs.
//
// Liars (liars.go, Config.Liars and Lie): a share of the peers lies —
// about itself, in the record it contributes and shows the sample
// (inflate, extreme, selfrank), or in the messages it sends (flow: made-up
// flows; squares: made-up flows of sums of squares alone; forge, alter:
// top-k entries for other nodes; drop: the others' entries swallowed). The peers then sign and check entries as the
// runtime does (run.Sealer), with a keyed hash as the model of each
// peer's ed25519 signature, and bound reliability claims by their
// observation (the true value: every peer watched every other); a message
// refused for a lie is counted apart from the refusals of honest ones
// (a forging liar's entry for a node is made once and kept, each peer's
// observed reliability read from its record as it is made). An
// aggregate's final answer is checked against the asker's sample as the
// runtime does (run.CheckSample; a robust answer it contests is the
// sample's own, grown as run.Fallback says: RoundStats.StandIn) and
// measured against the answer over the honest peers' true records
// (RoundStats.HonestErr, Sim.Check); a top-k's
// final list is checked for entries that are not what their node says,
// liars ranked above what was observed of them, and the share of the
// honest top-k it holds.
//
// A cloud of pools (pools.go, RunPools) is a simulation per pool
// (Config.First keeps their records and random streams apart), each run
// until its asker's rule calls it final, its run.Partial merged with the
// others' as the asker of a cloud of pools merges them (run.Merge), the
// cloud level counted as CloudRounds exchanges. With liars each pool's
// asker (its gateway, honest) checks its answer against its own sample
// as the runtime's gateways do: a pool contested makes the merged answer
// contested, and a pool whose sample answers for it (a bent robust
// aggregate) gives the sample's partial. Since one pool is simulated at a
// time, a cloud of 10^6 in pools of 10^3 holds one pool's state, not
// 10^6 peers'.
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
