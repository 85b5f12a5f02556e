package node

import (
	"time"

	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// Progress is the originator's view of a running query, once a round.
type Progress struct {
	Round, Budget int
	// Peers is the number of live peers in the membership.
	Peers int
	// Answer is the current estimate.
	Answer *query.Result
	// ErrEstimate is the originator's own estimate of the relative error
	// of Answer (run.Rule); for top-k, 0 once its list is stable.
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

// instance is one peer's part in one query: the pure run.Instance and
// what the runtime keeps beside it.
type instance struct {
	id        QueryID
	run       *run.Instance
	kind      protoKind
	planBytes []byte
	coord     []byte // the asker's network coordinate
	coverage  uint32 // the top-k's coverage filter size
	planHash  string
	origin    bool
	// finishedAt is the node's round when the asker's answer became
	// final; the instance lingers from then on.
	finishedAt int64
	reported   bool

	started  time.Time
	progress func(Progress)
	result   chan *Result
}

// newInstance creates this peer's instance of plan, with rec (its record
// for this query) as its contribution. Called with n.mu held: rec is read
// before.
func (n *Node) newInstance(id QueryID, plan *query.Plan, wire, coord []byte, coverage uint32, origin bool, rec query.Record, peers int) (*instance, error) {
	b, err := run.Bind(plan, run.Config{Peers: peers, Rand: n.r, Sampler: sampler{n}, Alive: n.alive, Linger: n.cfg.Linger,
		Self: n.Name(), Coverage: int(coverage), Members: n.memberNames})
	if err != nil {
		return nil, err
	}
	ri, err := b.New(origin, rec)
	if err != nil {
		return nil, err
	}
	kind := protoAggregate
	if b.Protocol() == run.TopK {
		kind = protoTopK
	}
	q := &instance{id: id, run: ri, kind: kind, planBytes: wire, coord: coord, coverage: coverage, origin: origin, result: make(chan *Result, 1)}
	if origin {
		q.planHash = plan.Hash()
	}
	return q, nil
}

// entry wraps one of the core's messages for the batch; requests carry
// the plan and the asker's coordinate, so that any peer can join.
func (q *instance) entry(msg []byte, request bool) entry {
	e := entry{ID: q.id, Kind: q.kind, Round: uint32(q.run.Round()), Msg: msg}
	if request {
		e.Plan, e.Origin, e.Coverage = q.planBytes, q.coord, q.coverage
	}
	return e
}

// expired reports whether the instance can be forgotten at node round now.
func (q *instance) expired(now int64, linger int) bool {
	if q.origin && q.run.Final() {
		return now > q.finishedAt+int64(linger)
	}
	return q.run.Round() > q.run.Budget()+linger
}

// report is one round's news for the asker, delivered outside the lock.
type report struct {
	q        *instance
	progress Progress
	final    *Result
}

// report applies the convergence rule at the end of the asker's round.
// Called with n.mu held.
func (q *instance) report(n *Node, peers int) (report, bool) {
	a, err := q.run.Report(peers)
	if err != nil {
		return report{}, false
	}
	rp := report{q: q, progress: Progress{Round: a.Round, Budget: a.Budget, Peers: peers, Answer: a.Result, ErrEstimate: a.ErrEstimate}}
	if a.Final && !q.reported {
		q.reported = true
		q.finishedAt = n.round
		rp.final = q.result1(n, a, peers)
	}
	return rp, true
}

func (rp report) deliver() {
	if rp.q.progress != nil {
		rp.q.progress(rp.progress)
	}
	if rp.final != nil {
		rp.q.result <- rp.final // buffered: sent once
	}
}

// result1 is the asker's answer as a Result.
func (q *instance) result1(n *Node, a run.Answer, peers int) *Result {
	return &Result{Result: a.Result, Peers: peers, Participants: a.Participants, Rounds: a.Round,
		Elapsed: n.clock.Now().Sub(q.started), ErrEstimate: a.ErrEstimate, PlanHash: q.planHash, Converged: a.Converged}
}
