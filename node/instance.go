package node

import (
	"math"
	"time"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/topk"
)

// Progress is the originator's view of a running query, once a round.
type Progress struct {
	Round, Budget int
	// Peers is the number of live peers in the membership.
	Peers int
	// Answer is the current estimate.
	Answer *query.Result
	// ErrEstimate is the originator's own estimate of the relative error
	// of Answer (aggregate.Tracker); for top-k, 0 once its list is stable.
	ErrEstimate float64
}

// Result is a query's answer and how it was reached.
type Result struct {
	*query.Result
	// Peers is the number of live peers when the answer was given.
	Peers int
	// Participants is, for gossip aggregates, the gossip estimate of the
	// peers whose mass reached the answer (1 / the origin's mass): a
	// cross-check of Peers. 0 otherwise.
	Participants float64
	Rounds       int
	Elapsed      time.Duration
	ErrEstimate  float64
	PlanHash     string
	// FromTags says the answer came from the member list, without gossip.
	FromTags bool
	// Converged is false when the budget or a timeout ended the query
	// first.
	Converged bool
}

type env struct {
	to  aggregate.PeerID
	msg []byte
}

// instance is one peer's part in one query.
type instance struct {
	n         *Node
	id        QueryID
	plan      *query.Plan
	planBytes []byte
	kind      protoKind
	origin    bool
	agg       *aggregate.Node
	top       *topk.Node

	rounds, budget int
	finished       bool
	finishedAt     int

	started  time.Time
	progress func(Progress)
	result   chan *Result
	tracker  aggregate.Tracker
	calm     int
	minimum  int
	heard    int32   // messages the originator's core had received at the last report
	lastErr  float64 // the tracker's last estimate
}

// newInstance creates this peer's instance of plan, with its contribution
// from its own record. Called with n.mu held.
func (n *Node) newInstance(id QueryID, plan *query.Plan, wire []byte, origin bool) (*instance, error) {
	size := max(n.ov.Size(), 2)
	q := &instance{n: n, id: id, plan: plan, planBytes: wire, origin: origin,
		budget: plan.RoundBudget(size), result: make(chan *Result, 1), lastErr: 1}
	rec := n.record()
	if v, ok := n.rtt(plan.Origin); ok {
		rec["rtt"] = v
	}
	switch plan.Kind {
	case query.PlanAggregate:
		q.kind = protoAggregate
		cfg := aggregate.DefaultConfig(plan.AggregateSpec(), n.r, sampler{n})
		cfg.Originator = origin
		// Keep every link for the whole query: a peer that dies can then
		// be undone exactly (docs/PROTOCOLS.md). A peer holds ~2 links a
		// round, a few kilobytes.
		cfg.FoldAfter = q.budget + n.cfg.Linger + 2
		node, err := aggregate.New(&cfg, plan.Contribution(rec))
		if err != nil {
			return nil, err
		}
		q.agg = node
		q.minimum = query.ExpectedRounds(plan.Kind, size, plan.Accuracy) / 2
	case query.PlanTopK, query.PlanReserve:
		q.kind = protoTopK
		cfg := topk.DefaultConfig(plan.K, n.r, topSampler{sampler{n}})
		cfg.Alive = func(name string) bool { _, ok := n.ov.Member(name); return ok }
		node, err := topk.New(cfg, plan.Entry(rec))
		if err != nil {
			return nil, err
		}
		q.top = node
		// A peer's entry starts to spread only once the query has reached
		// that peer, itself about the expected rounds after the start: the
		// last entry can need twice as long to reach the originator.
		q.minimum = 2*query.ExpectedRounds(plan.Kind, size, plan.Accuracy) + 2
	default:
		return nil, errNotYet
	}
	return q, nil
}

// expired reports whether the instance can be forgotten.
func (q *instance) expired() bool {
	if q.finished && q.origin {
		return q.rounds > q.finishedAt+q.n.cfg.Linger
	}
	return q.rounds > q.budget+q.n.cfg.Linger
}

func (q *instance) tick() []env {
	if q.agg != nil {
		q.agg.Tick()
	} else {
		q.top.Tick()
	}
	return q.outbox()
}

// outbox encodes what the core has to send (at once: the core reuses its
// buffers on the next call).
func (q *instance) outbox() []env {
	var out []env
	if q.agg != nil {
		for _, e := range q.agg.Outbox() {
			out = append(out, env{to: e.To, msg: e.Msg.Encode(nil)})
		}
		return out
	}
	for _, e := range q.top.Outbox() {
		out = append(out, env{to: aggregate.PeerID(e.To), msg: e.Msg.Encode(nil)})
	}
	return out
}

// step hands a message to the core; a malformed one is refused.
func (q *instance) step(from aggregate.PeerID, msg []byte) error {
	if q.agg != nil {
		m, err := aggregate.Decode(msg)
		if err != nil {
			return err
		}
		q.agg.Step(from, m)
		return nil
	}
	m, err := topk.Decode(msg)
	if err != nil {
		return err
	}
	q.top.Step(topk.PeerID(from), m)
	return nil
}

func (q *instance) removePeers(dead map[aggregate.PeerID]bool) {
	if q.agg != nil {
		q.agg.RemovePeers(func(p aggregate.PeerID) bool { return dead[p] })
	} else {
		q.top.Prune()
	}
}

// answer reads the instance's current answer.
func (q *instance) answer(peers int) (*Result, error) {
	res := &Result{Peers: peers, Rounds: q.rounds, Elapsed: time.Since(q.started), PlanHash: q.plan.Hash()}
	if q.agg != nil {
		est := q.agg.Estimate()
		groups, err := q.plan.GroupResults(est, float64(peers))
		if err != nil {
			return nil, err
		}
		res.Result = query.Finalize(q.plan, groups)
		if est.Origin > 0 {
			res.Participants = 1 / est.Origin
		}
		return res, nil
	}
	var live []*topk.Entry
	for _, e := range q.top.Top() {
		if _, ok := q.n.ov.Member(e.Node); ok || e.Node == q.n.Name() {
			live = append(live, e)
		}
	}
	r, err := q.plan.TopResult(live)
	if err != nil {
		return nil, err
	}
	res.Result = r
	return res, nil
}

// report is the originator's round: progress, and the answer once it has
// converged or the budget is spent.
func (q *instance) report(peers int) {
	res, err := q.answer(peers)
	if err != nil {
		return
	}
	if q.agg != nil {
		// The participants' estimate joins the tracked values: while the
		// originator's mass is still spreading, its answer is not final,
		// however still it looks (a slow round can deliver nothing).
		cells := append([]float64{res.Participants}, res.NumericCells()...)
		// Only rounds in which something reached the originator count: a
		// round in which its exchanges stalled (a loaded machine, a slow
		// peer) changes nothing and proves nothing.
		if got := q.agg.Stats().Received; got > q.heard {
			q.heard = got
			q.lastErr = q.tracker.Observe(cells)
			if q.lastErr <= q.plan.Accuracy/2 {
				q.calm++
			} else {
				q.calm = 0
			}
		}
		res.ErrEstimate = q.lastErr
		// Converged: calm for 3 rounds, past half the expected rounds, and
		// the gossip count of the peers reached agrees with the membership.
		mixed := math.Abs(res.Participants-float64(peers)) <= 0.05*float64(peers)
		res.Converged = q.rounds >= q.minimum && q.calm >= 3 && mixed
	} else {
		res.ErrEstimate = 1
		if q.top.Stable() {
			res.ErrEstimate = 0
		}
		// Stable, past the expected rounds, and having heard from enough
		// exchanges (a slow round can deliver nothing, and look stable).
		res.Converged = q.rounds >= q.minimum && q.top.Stable() && int(q.top.Stats().Received) >= q.minimum
	}
	if q.progress != nil {
		q.progress(Progress{Round: q.rounds, Budget: q.budget, Peers: peers, Answer: res.Result, ErrEstimate: res.ErrEstimate})
	}
	if res.Converged || q.rounds >= q.budget {
		q.finished, q.finishedAt = true, q.rounds
		q.result <- res
	}
}
