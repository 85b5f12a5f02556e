package run

import (
	"fmt"
	"math"
	"strings"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
)

// Rule is the convergence rule: when the asking peer may call its answer
// final. It is the engine's one definition; node applies it to real
// queries and sim reports the round at which it fires next to the round at
// which the answer is truly within the target, so that the simulator's
// "rounds to converge" are the engine's.
//
// An aggregate has converged when
//
//  1. at least half the expected rounds have passed (query.ExpectedRounds);
//  2. the originator's own error estimate (Tracker, over the answer's
//     numeric cells and the participants estimate) has stayed
//     within half the target accuracy for CalmRounds rounds in which some
//     message reached it — a round in which its exchanges stalled (a
//     loaded machine, a slow peer) changes nothing and proves nothing;
//  3. the gossip estimate of the peers whose mass reached the answer
//     agrees with the membership's count within MixedShare: while the
//     originator's mass is still spreading the answer is not final,
//     however still it looks;
//  4. for a COUNT or a SUM, which scale an average by the membership's
//     count, the two agree within half the accuracy (Counted): under
//     churn the membership still lists members lost before the query
//     reached them, and a sum over that count would be off by their
//     share. The query's peers leave them out as they meet them, which
//     brings the count back.
//
// A top-k with a coverage filter (topk, coverage.go) has converged when
// the filter holds every live member — every peer's entry, or better ones,
// has reached the asker's list — and the list has not changed for
// CoveredRounds rounds since (a margin against the filter's rare false
// positives). Without a filter (clusters beyond topk.MaxCoverageBits), it
// has converged when its list has not changed for the core's StableRounds,
// twice the expected rounds plus two have passed (a peer's entry starts
// spreading only once the query reaches that peer, itself about the
// expected rounds after the start), and it has received at least that many
// messages: a heuristic, which the simulator measures against the truth.
type Rule struct {
	kind     query.PlanKind
	accuracy float64
	minimum  int

	// scaled: the answer has a COUNT or a SUM (condition 4).
	scaled  bool
	tracker Tracker
	calm    int
	heard   int
	lastErr float64
	// seen is the last round's observation, for Why.
	seen Observation
}

// Rule constants.
const (
	// CalmRounds is how many heard rounds the error estimate must stay
	// within half the target.
	CalmRounds = 3
	// MixedShare is how far the participants estimate may be from the
	// membership's count, as a share of it.
	MixedShare = 0.05
	// CoveredRounds is how many rounds a covered top-k list must stay
	// unchanged.
	CoveredRounds = 2
)

// NewRule returns the rule for plan over about peers peers.
func NewRule(plan *query.Plan, peers int) *Rule {
	peers = max(peers, 2)
	exp := query.ExpectedRounds(plan.Kind, peers, plan.Accuracy)
	r := &Rule{kind: plan.Kind, accuracy: plan.Accuracy, lastErr: 1}
	for _, a := range plan.Aggs {
		r.scaled = r.scaled || a.Func == query.AggCount || a.Func == query.AggSum
	}
	if plan.Kind == query.PlanAggregate {
		r.minimum = exp / 2
	} else {
		r.minimum = 2*exp + 2
	}
	return r
}

// Minimum is the fewest rounds before the rule can fire.
func (r *Rule) Minimum() int { return r.minimum }

// Observation is what the asking peer sees at the end of a round.
type Observation struct {
	// Suspects is how many live members the asker could not reach: the
	// gossip state may hold a dead peer's mass until the failure detector
	// declares it, so no answer is final while any is suspect.
	// Round is the query's round at this peer.
	Suspects int
	Round    int
	// Peers is the number of live peers the membership knows.
	Peers int
	// Received is how many messages the peer's core has received so far.
	Received int
	// Cells are the answer's numeric cells, and Sketches its quantile
	// sketches (aggregates; see Cells).
	Cells    []float64
	Sketches [][]aggregate.Bucket
	// Participants is the gossip estimate of the peers whose mass reached
	// the answer (aggregates).
	Participants float64
	// Stable says the top-k list has not changed for StableRounds;
	// Unchanged is for how many rounds it has not.
	Stable    bool
	Unchanged int
	// Coverage says the top-k keeps a coverage filter; Covered that it
	// holds every live member.
	Coverage, Covered bool
}

// Verdict is the rule's judgement of a round.
type Verdict struct {
	// ErrEstimate is the peer's own estimate of its answer's relative
	// error; for a top-k, 0 once its list is stable, else 1.
	ErrEstimate float64
	Converged   bool
}

// Observe judges one round. Call it once a round, in order.
func (r *Rule) Observe(o Observation) Verdict {
	if r.kind != query.PlanAggregate {
		v := Verdict{ErrEstimate: 1}
		if o.Coverage && o.Covered || !o.Coverage && o.Stable {
			v.ErrEstimate = 0
		}
		if o.Coverage {
			v.Converged = o.Covered && o.Unchanged >= CoveredRounds
		} else {
			v.Converged = o.Round >= r.minimum && o.Stable && o.Received >= r.minimum
		}
		v.Converged = v.Converged && o.Suspects == 0
		return v
	}
	r.seen = Observation{Round: o.Round, Peers: o.Peers, Participants: o.Participants, Suspects: o.Suspects} // what Why reads
	if o.Received > r.heard {
		r.heard = o.Received
		cells := append([]float64{o.Participants}, o.Cells...)
		r.lastErr = r.tracker.Observe(cells, o.Sketches)
		if r.lastErr <= r.accuracy/2 {
			r.calm++
		} else {
			r.calm = 0
		}
	}
	peers := float64(o.Peers)
	mixed := math.Abs(o.Participants-peers) <= MixedShare*peers
	counted := r.Counted(o.Participants, o.Peers)
	return Verdict{ErrEstimate: r.lastErr, Converged: o.Round >= r.minimum && r.calm >= CalmRounds && mixed && counted && o.Suspects == 0}
}

// Calming says an aggregate's estimate has been within half the target
// for at least one heard round, and fewer than CalmRounds: the rule is a
// round or two from calling it calm.
func (r *Rule) Calming() bool {
	return r.kind == query.PlanAggregate && r.calm > 0 && r.calm < CalmRounds
}

// Why says which of an aggregate's conditions the last round observed
// did not hold ("" if none did not): what the reason of an answer that
// ran to its budget says it waited for, and what tests log.
func (r *Rule) Why() string {
	if r.kind != query.PlanAggregate {
		return ""
	}
	o := r.seen
	var why []string
	if o.Round < r.minimum {
		why = append(why, fmt.Sprintf("round %d of at least %d", o.Round, r.minimum))
	}
	if r.calm < CalmRounds {
		why = append(why, fmt.Sprintf("calm %d of %d heard rounds (error estimate %.3g)", r.calm, CalmRounds, r.lastErr))
	}
	if peers := float64(o.Peers); math.Abs(o.Participants-peers) > MixedShare*peers {
		why = append(why, fmt.Sprintf("participants %.3f of %d members", o.Participants, o.Peers))
	} else if !r.Counted(o.Participants, o.Peers) {
		why = append(why, fmt.Sprintf("participants %.3f, not within half the accuracy of %d members", o.Participants, o.Peers))
	}
	if o.Suspects > 0 {
		why = append(why, fmt.Sprintf("%d suspect(s)", o.Suspects))
	}
	return strings.Join(why, "; ")
}

// Counted says the membership's count of peers, by which a COUNT or a SUM
// is scaled, agrees within half the accuracy with the gossip estimate of
// the peers that took part (condition 4); true for answers that do not
// scale.
func (r *Rule) Counted(participants float64, peers int) bool {
	return !r.scaled || math.Abs(participants-float64(peers)) <= r.accuracy/2*float64(peers)
}

// Cells are an aggregate answer's numeric cells as the rule watches them,
// and its quantile sketches. A value read from a quantile sketch is not
// watched itself: at a rank boundary it jumps between two peers' values
// while the distribution under it is still to a hair; the sketch's
// cumulative distribution is watched instead (Tracker).
func Cells(p *query.Plan, r *answer.Answer, est aggregate.Estimate) ([]float64, [][]aggregate.Bucket) {
	var cells []float64
	for _, row := range r.Rows {
		for j, v := range row {
			if v.Kind.Numeric() && !(j < len(p.Columns) && readsQuantile(p, p.Columns[j].Expr)) {
				cells = append(cells, v.Num)
			}
		}
	}
	var sketches [][]aggregate.Bucket
	for _, g := range est.Groups {
		for c, comp := range p.Components {
			if comp.Kind == query.CompQuantile && c < len(g.Buckets) {
				sketches = append(sketches, g.Buckets[c])
			}
		}
	}
	return cells, sketches
}

func readsQuantile(p *query.Plan, e *query.Expr) bool {
	if e == nil {
		return false
	}
	if e.Op == query.OpAggRef && e.Index < len(p.Aggs) && p.Aggs[e.Index].Func == query.AggPercentile {
		return true
	}
	for _, a := range e.Args {
		if readsQuantile(p, a) {
			return true
		}
	}
	return false
}

// Blocking is how many of s suspects (members lost while a query ran that
// no peer has left out yet: unconfirmed, or past what the query's peers
// can tell each other of) hold an answer over peers back. Such a member
// still counts as having taken part: its mass stays with its neighbours'
// flows (Flow Updating), so the answer moves by its share, at most about
// 1/peers of it, not more. Below half the accuracy in all, they need not
// be waited for — at 10^4 peers with one-hour sessions three members are
// lost every second, and some are always being confirmed; at 60 peers one
// is 1.7%, and is. The runtime (node) and the simulator apply this one
// rule.
func Blocking(s, peers int, accuracy float64) int {
	if s == 0 || float64(s) > accuracy/2*float64(peers) {
		return s
	}
	return 0
}
