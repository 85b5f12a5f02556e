package sim

import (
	"math"
	"slices"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// Churn as a process (Config.Session): peers leave without notice after
// sessions of median Session rounds (exponential: each live peer leaves in
// a round with probability 1-2^(-1/Session)), and as many join on
// average. A query meets two kinds of lost members:
//
//   - members that left before it started but that Serf still lists (its
//     verdict takes DetectRounds: SuspicionMult × log10(N) probe
//     intervals): they never took part; the query's peers waste exchanges
//     on them until they leave them out;
//   - members that left while it ran, whose mass is in their neighbours'
//     flows: the query's peers leave them out ExcludeRounds after they
//     left (a failed exchange, direct and indirect probes, then the set
//     spreads with the query's messages), and every peer undoes its flows
//     with them (aggregate.RemovePeers), so that the answer converges on
//     the members that took part.
//
// The set the peers tell each other of holds MaxExcluded members (the
// runtime's wire bound); a member lost beyond it waits for Serf's verdict,
// after which every peer leaves it out by itself. Until then it is
// unconfirmed, and the answer is converged only if the unconfirmed are
// too few to move it beyond the accuracy (run.Blocking): the status the
// runtime would give.

// Outcome is what the asker would answer under churn: at the first round
// the engine's rule calls final (converged, or out of rounds), the status
// and the error against the exact answer over the members that took part
// (joined the query and were not left out, alive or not).
type Outcome struct {
	Round     int
	Converged bool // the runtime's status: converged (else partial)
	// Err is the answer's relative error over the members that took part.
	Err float64
	// TookPart, Excluded (left out by the query's peers), ByVerdict (left
	// out on Serf's verdict), Unconfirmed (lost while it ran, not left
	// out yet), Ghosts (lost before it started, still listed by Serf).
	TookPart, Excluded, ByVerdict, Unconfirmed, Ghosts int
	// Crashed and Joined count the churn while it ran.
	Crashed, Joined int
}

func (s *Sim) churning() bool { return s.cfg.Session > 0 }

// leaveProb is a live peer's chance to leave in one round.
func (s *Sim) leaveProb() float64 { return 1 - math.Exp2(-1/s.cfg.Session) }

// poisson draws from a Poisson distribution of mean m (Knuth's method for
// small means, a rounded normal beyond: m is at most a few thousand).
func (s *Sim) poisson(m float64) int {
	if m <= 0 {
		return 0
	}
	if m > 30 {
		return max(0, int(math.Round(m+math.Sqrt(m)*s.r.NormFloat64())))
	}
	l, k, p := math.Exp(-m), 0, 1.0
	for {
		p *= s.r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// seedGhosts makes the members that left in the DetectRounds before the
// query started: dead, still listed, each with Serf's verdict due at a
// uniformly random round of the window and its exclusion ExcludeRounds
// after the start (the query's peers meet them at once).
func (s *Sim) seedGhosts() {
	n := s.poisson(float64(s.cfg.Nodes) * s.leaveProb() * float64(s.cfg.DetectRounds))
	for k := 0; k < n && k < s.n-1; k++ {
		d := int32(1 + s.r.IntN(s.n-1))
		if !s.st[d].alive {
			continue
		}
		s.st[d].alive = false
		s.ghosts++
		s.detects = append(s.detects, detection{round: 1 + s.r.IntN(max(s.cfg.DetectRounds, 1)), ids: []int32{d}})
		s.excludes = append(s.excludes, detection{round: s.cfg.ExcludeRounds, ids: []int32{d}})
	}
}

// churn applies one round of the process: leaves, then joins.
func (s *Sim) churn() {
	p := s.leaveProb()
	alive := 0
	for _, st := range s.st {
		if st.alive {
			alive++
		}
	}
	var dead []int32
	for k := s.poisson(float64(alive-1) * p); k > 0; k-- {
		for try := 0; try < 64; try++ {
			d := int32(1 + s.r.IntN(s.n-1)) // the originator stays
			if s.st[d].alive {
				s.st[d].alive = false
				dead = append(dead, d)
				break
			}
		}
	}
	if len(dead) > 0 {
		s.crashed += len(dead)
		s.detects = append(s.detects, detection{round: s.round + s.cfg.DetectRounds, ids: dead})
		s.excludes = append(s.excludes, detection{round: s.round + s.cfg.ExcludeRounds, ids: append([]int32(nil), dead...)})
	}
	joins := s.poisson(float64(s.cfg.Nodes) * p)
	for k := 0; k < joins && len(s.st) < cap(s.st); k++ {
		if _, err := s.addOne(); err != nil {
			panic(err) // capacity is checked above
		}
		s.joinedN++
	}
}

// due takes the detections of list that are due this round.
func (s *Sim) due(list *[]detection) []int32 {
	var ids []int32
	keep := (*list)[:0]
	for _, d := range *list {
		if d.round <= s.round {
			ids = append(ids, d.ids...)
		} else {
			keep = append(keep, d)
		}
	}
	*list = keep
	return ids
}

// exclusions leaves out the members due this round, as long as the set
// has room; the others wait for Serf's verdict. It returns those newly
// left out.
func (s *Sim) exclusions(verdicts []int32) []int32 {
	var out []int32
	for _, d := range s.due(&s.excludes) {
		if s.pos[d] < 0 || slices.Contains(verdicts, d) {
			continue // Serf was first
		}
		if s.excluded >= s.cfg.MaxExcluded {
			continue
		}
		s.excluded++
		out = append(out, d)
	}
	return out
}

// unconfirmed counts members lost while the query ran that took part and
// that no peer has left out yet.
func (s *Sim) unconfirmed() int {
	k := 0
	for i, st := range s.st {
		if !st.alive && st.joined && s.pos[i] >= 0 {
			k++
		}
	}
	return k
}

// tookPart yields the records of the members that took part: joined, not
// left out (alive or lost and unconfirmed).
func (s *Sim) tookPart(yield func(query.Record) bool) {
	for i, st := range s.st {
		if st.joined && s.pos[i] >= 0 {
			if !yield(s.record(i)) {
				return
			}
		}
	}
}

// settle records the outcome at the first final round: the runtime's
// status and the error over the members that took part.
func (s *Sim) settle(a *answer.Answer, err error, unconfirmed int) {
	o := &Outcome{Round: s.round, Excluded: s.excluded, Unconfirmed: unconfirmed, Ghosts: s.ghosts,
		Crashed: s.crashed, Joined: s.joinedN}
	o.Converged = err == nil && a.Converged && run.Blocking(unconfirmed, len(s.known), s.plan.Accuracy) == 0
	for i, st := range s.st {
		if st.joined && s.pos[i] >= 0 {
			o.TookPart++
		}
	}
	o.ByVerdict = s.removed - s.excluded
	s.setExact(query.ExactSeq(s.plan, s.tookPart))
	o.Err = s.errOf(a, err)
	if s.agg == nil {
		o.Err = 1
		if err == nil && sameNames(a.Nodes, s.exactTop) {
			o.Err = 0
		}
	}
	s.outcome = o
}

// Outcome is the answer the asker would give under churn, once the rule
// called it final (nil before, or without Config.Session).
func (s *Sim) Outcome() *Outcome { return s.outcome }

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// remove takes lost members out of the sampling pool and out of every
// live peer's instance: under churn the query's peers leave them out
// (run.Instance.Exclude: flows undone, extremes and rows dropped, their
// messages refused), as the runtime's do, and the asker's budget makes
// room to mix again; otherwise the failure detector's verdict prunes them
// (run.Instance.RemovePeers).
func (s *Sim) remove(dead []int32) {
	ids := s.gone[:0]
	for _, d := range dead {
		if s.pos[d] < 0 {
			continue
		}
		p := s.pos[d]
		last := s.known[len(s.known)-1]
		s.known[p], s.pos[last] = last, p
		s.known = s.known[:len(s.known)-1]
		s.pos[d] = -1
		s.st[d].out = true
		s.removed++
		ids = append(ids, peer.ID(d))
	}
	s.gone = ids
	if len(ids) == 0 {
		return
	}
	isOut := func(p peer.ID) bool { return s.st[p].out }
	for i := range s.st {
		if !s.st[i].alive {
			continue
		}
		if s.churning() {
			s.peer(int32(i)).Exclude(ids...)
		} else {
			s.peer(int32(i)).RemovePeers(isOut)
		}
	}
}
