// Package aggregate is the gossip aggregation core: pure state machines that
// estimate sums, averages, extremes, quantiles and distinct counts over all
// peers, each peer talking to one random peer per round.
//
// Additive quantities (counts, sums, sums of squares, histogram buckets) are
// averaged by pairwise exchanges: push-pull averaging (Jelasity, Montresor,
// Babaoglu, "Gossip-based aggregation in large dynamic networks", ACM TOCS
// 2005), in which the variance of the estimates shrinks by 1/(2√e) ≈ 0.303 a
// round. Plain push-pull loses or creates mass when a reply is lost; the
// default scheme is therefore Flow Updating (Jesus, Baquero, Almeida,
// "Fault-tolerant aggregation by flow updating", DAIS 2009), adapted to random
// peer sampling: each exchange is a link with a flow vector on each side, a
// message overwrites the receiver's flow with the negated flow of the sender,
// and an unanswered request is retried on the same link, so that a lost
// message only delays. A peer's estimate is its input minus the flows on its
// links. Dropping the links to a peer that died removes exactly the mass
// that peer exchanged on them.
//
// MIN and MAX spread by extremal propagation (idempotent, so loss only
// delays). Quantiles come from averaged log-bucket histograms with the
// DDSketch mapping (Masson, Rim, Lee, VLDB 2019): relative error at most
// HistAlpha on top of the averaging error. Distinct counts come from
// HyperLogLog registers merged by maximum (Flajolet et al. 2007), standard
// error 1.04/√HLLRegisters.
//
// Sums need the number of peers: a node over Serf knows it from the
// membership; beyond Serf's scale it comes from gossip too, as the inverse
// of the average of a mass that is 1 at the originator and 0 elsewhere
// (Kempe, Dobra, Gehrke, FOCS 2003).
//
// The package does no I/O, reads no clock, starts no goroutine and uses only
// the random source it is given.
//
// # Usage
//
//	n := aggregate.New(cfg, contribution) // once per peer per query
//	for each round {
//		n.Tick()                          // start this round's exchange
//		for _, env := range n.Outbox() {  // send what it asks to send
//			transport.Send(env.To, env.Msg)
//		}
//	}
//	on message m from peer p: n.Step(p, m) // and send its Outbox too
//	on peer p declared dead:  n.RemovePeer(p)
//	est := n.Estimate()                   // at any time, on any peer
//
// The caller's duties:
//
//  1. Call Tick once per round, Step for every message, and send every
//     envelope of Outbox after each call; envelopes may be lost.
//  2. Never call two methods of one Node at the same time.
//  3. Give every peer of a query the same Spec and the same Scheme, and
//     exactly one peer Originator = true.
//  4. Tell the Node of peers that died (RemovePeer), once the failure
//     detector is sure.
//
// A Flow Updating link is kept FoldAfter rounds after its last message,
// so that its flow can be undone if the peer dies, or retried if lost;
// then it is folded (its flow stays in the estimate). A driver that never
// removes peers may fold an initiator's link as soon as it is answered
// (Config.FoldAnswered: the simulator without crashes). A Node's links and
// flows live in the Node itself while they fit, and return there from the
// heap as links fold.
//
// A running Node can take a new contribution in place (Reinput) when only
// its additive inputs changed; the runtime does not (a WATCH restarts per
// epoch, docs/PROTOCOLS.md), the simulator measures it.
package aggregate
