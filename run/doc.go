// Package run is one running plan at one peer: the binding of a compiled
// query.Plan to the protocol core that answers it (aggregate or topk) — the
// shape of its gossip state, what a peer contributes from its record, how
// the core's state reads back as an answer.Answer — and, at the asking
// peer, the convergence rule (Rule) that decides when the answer is final.
//
// It is the one home of both: the node runtime drives Instances over the
// network, and the simulator drives an Instance for each of a million
// simulated peers — the same rounds, checks on receipt, exclusions and
// Rule, with messages handed over decoded (StepAggregate, StepTopK) rather
// than as bytes — so that the simulator's "rounds to converge" are the
// engine's (sim/report prints the round at which the rule fires next to
// the round at which the answer is truly within target).
//
// The rule: an aggregate is final when its own error estimate (Tracker) has
// been calm for CalmRounds rounds that heard something and the gossip
// estimate of the participants agrees with the membership; a top-k is final
// when its coverage filter holds every live member (topk/coverage.go) and
// its list has not moved since — or, in clusters too large for a filter, by
// the older heuristic of stability after the expected rounds. Near the end
// the asker names the members its filter still lacks (Instance.Straggler,
// each at most MaxChases rounds) for its driver to meet, and does not wait
// for one whose own signed claim its observations refuse
// (Instance.Implausible). An
// aggregate already within half its accuracy whose calm rounds are being
// counted when the budget runs out gets the rest of them (at most
// CalmRounds more: Rule.Calming), rather than being flagged a round short.
//
// Under churn the rule waits for exclusions to settle: a member left out
// of the query restarts the calm count (the survivors' estimates move once
// its flows are undone), for SpreadRounds+ExpectedRounds rounds after the
// last exclusion, within MaxRoundsFactor times the budget; and an answer is
// only converged while the members lost and not yet left out are too few
// to move it past half the accuracy (Blocking).
//
// Peers are strangers: with Config.CheckReceived (the runtime), every
// value another peer sends is checked where it is used against the plan
// and the catalog's bounds (check.go, which also says what a liar can
// still do), and a message holding one that no peer could have reported is
// refused (Instance.Step returns ErrRefused).
//
// At the asker, an aggregate's answer is checked against an independent
// sample of signed records (sample.go: CheckSample, with its escalation:
// totals, outliers, quantiles, extremes and each STDDEV's and VARIANCE's
// variance; a small group's sum above the sample grows it before it
// stands);
// where the sample contests an answer a minority should not move (every
// aggregate a trimmed mean or a quantile: Robust), the
// sample, grown to a stated precision, answers instead (fallback.go:
// Fallback). SampleCheck.Grow is the one loop that grows it, for the
// runtime's asker and the simulator's alike.
//
// In a cloud of pools (node/pools.go), a pool's asking instance hands
// its share over as a Partial (Instance.Partial: an aggregate's means
// with the members they average over, histograms, extremes, HyperLogLog
// registers; a top-k's list) and the asker merges one per pool (Merge),
// refusing a partial whose shape does not fit the plan.
//
// The cores of one Binding keep one configuration between them (an
// aggregate core points to the binding's aggregate.Config, a top-k core to
// its topk.Config: topk.NewAs): the simulator's million peers of one query
// share one Binding, and a copy each, with its closures, was ~200 bytes a
// peer.
//
// The package does no I/O, reads no clock and starts no goroutine; the
// cores' randomness is the *rand.Rand in Config.
//
// # Usage
//
//	b, err := run.Bind(plan, run.Config{Peers: n, Rand: r, Sampler: s, Alive: alive,
//		Self: name, Coverage: run.CoverageFor(n), Members: members})
//	q, err := b.New(origin, record)
//	each round:  q.Tick(); send q.Messages(), each encoded before
//	             q's next call (the runtime encodes them into its batch)
//	on message:  q.Step(from, msg); send q.Messages()
//	             (or, decoded: q.StepAggregate(from, m) / q.StepTopK(from, m))
//	on deaths:   q.RemovePeers(dead)
//	on a member left out of this query (by its peers): q.Exclude(id)
//	asker, each round, after Tick:
//	             a, err := q.Report(peers)   // a.Final: answer now
//	a pool's gateway, once final: part, err := q.Partial(peers)
//	the asker of a cloud of pools:  a, err := run.Merge(plan, parts)
//
// The caller's duties:
//
//  1. Never call two methods of one Instance at the same time.
//  2. At the asking peer, call Report once a round, after Tick: the rule
//     counts rounds.
//  3. Give every peer of one query the same Coverage (the asker's choice
//     travels with the query).
package run
