package node

import (
	"sync"
	"time"
)

// observer is what this peer saw of every other member's availability:
// per member, the spans of the trailing window (Config.ReliabilityWindow)
// in which the membership showed it alive, from Serf's events. Every
// member keeps the full membership, so every peer is an observer of every
// other: a node's reliability is what the others saw, not its own
// journal's word.
//
// It bounds what a node may claim (run.Config.Reliability): the share of
// the window this peer saw it alive, counting the time before this peer
// began watching as up (it cannot judge it) and each change it saw as a
// few seconds' doubt (events reach peers apart). A top-k entry that
// claims more is refused where it arrives, so a node cannot rank itself
// above what the others saw; a node that joined lately was not alive
// before (the time before this peer first saw it, after it began
// watching, counts as down), so it starts low.
//
// Its memory is bounded: at most maxSpans spans a member (the oldest
// merged). It is not persisted: a restarted peer watches anew, and until
// it has watched a window it judges less (it counts the unwatched time
// as up), never wrongly. It is safe for concurrent use.
type observer struct {
	window time.Duration
	since  time.Time // when this peer began watching

	mu      sync.Mutex
	members map[string]*sighting
}

// sighting is one member as this peer saw it.
type sighting struct {
	firstSeen time.Time
	ups       []span    // when it was seen alive, oldest first
	upSince   time.Time // zero while it is not alive
	changes   int       // changes seen, each a little doubt
}

type span struct{ from, to time.Time }

const (
	// maxSpans bounds the spans kept of one member: a member that comes
	// and goes more often than that in a window has its oldest spans
	// merged (which counts the gaps between them as up: generous, never
	// too harsh).
	maxSpans = 64
	// eventDoubt is how much of a member's state change this peer may
	// have seen late or early: Serf's events reach peers seconds apart.
	eventDoubt = 10 * time.Second
)

func newObserver(window time.Duration, now time.Time) *observer {
	return &observer{window: window, since: now, members: map[string]*sighting{}}
}

// up notes that the membership shows name alive at now.
func (o *observer) up(name string, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.members[name]
	if s == nil {
		s = &sighting{firstSeen: now}
		o.members[name] = s
	}
	if s.upSince.IsZero() {
		s.upSince = now
		s.changes++
	}
}

// down notes that name failed or left at now.
func (o *observer) down(name string, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.members[name]
	if s == nil || s.upSince.IsZero() {
		return
	}
	s.ups = append(s.ups, span{s.upSince, now})
	s.upSince = time.Time{}
	s.changes++
	o.trim(s, now)
}

// trim drops the spans that ended before the window and merges the
// oldest while there are too many.
func (o *observer) trim(s *sighting, now time.Time) {
	start := now.Add(-o.window)
	k := 0
	for k < len(s.ups) && s.ups[k].to.Before(start) {
		k++
	}
	s.ups = s.ups[k:]
	for len(s.ups) > maxSpans {
		s.ups[1].from = s.ups[0].from
		s.ups = s.ups[1:]
	}
}

// atMost is the most reliability name may claim as this peer saw it at
// now; ok is false for a member it never saw.
func (o *observer) atMost(name string, now time.Time) (float64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.members[name]
	if s == nil || o.window <= 0 {
		return 0, false
	}
	start := now.Add(-o.window)
	var up time.Duration
	for _, sp := range s.ups {
		up += overlap(sp.from, sp.to, start, now)
	}
	if !s.upSince.IsZero() {
		up += overlap(s.upSince, now, start, now)
	}
	unwatched := overlap(start, o.since, start, now) // before this peer watched
	doubt := time.Duration(s.changes) * eventDoubt
	return min(1, float64(up+unwatched+doubt)/float64(o.window)), true
}

// overlap is how long [a, b] and [c, d] share.
func overlap(a, b, c, d time.Time) time.Duration {
	from, to := a, b
	if c.After(from) {
		from = c
	}
	if d.Before(to) {
		to = d
	}
	if !to.After(from) {
		return 0
	}
	return to.Sub(from)
}
