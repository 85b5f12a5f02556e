package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/peerq/peerq/internal/durable"
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
// began watching as up (it cannot judge it), each change it saw as a
// few seconds' doubt (events reach peers apart), and two seconds for the
// clocks. A top-k entry that
// claims more is refused where it arrives, so a node cannot rank itself
// above what the others saw; a node that joined lately was not alive
// before (the time before this peer first saw it, after it began
// watching, counts as down), so it starts low.
//
// Its memory is bounded: at most maxSpans spans a member (the oldest
// merged), maxSpans gaps. It is persisted (<data-dir>/observed.json,
// every Config.ObserveSaveEvery and on Close): a restarted peer keeps
// what it saw, and the time it was down is a gap it did not watch,
// counted as up like the time before it began (it judges less, never
// wrongly). It is safe for concurrent use.
type observer struct {
	window time.Duration
	since  time.Time // when this peer began watching

	mu      sync.Mutex
	members map[string]*sighting
	gaps    []span // times since it began that this peer did not watch (it was down)
	// bounds remembers each member's atMost for boundMemo, until its
	// next change: a top-k checks every entry that enters a peer's list
	// against it, query after query. In a second the bound moves by a
	// second's share of the window; a change of the member's is news.
	bounds map[string]bound
}

// bound is a member's atMost as computed at at.
type bound struct {
	most float64
	ok   bool
	at   time.Time
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
	// clockDoubt is how far a member's own count of its time up (its
	// journal, in whole seconds, on its clock) may run ahead of this
	// peer's, changes or none. It is time, not a share of the window: a
	// share (0.001 of a week is 10 minutes) let a liar's claim pass above
	// what was seen by more than separates the most reliable peers of a
	// large cloud.
	clockDoubt = 2 * time.Second
	// boundMemo is how long a member's bound is remembered (bounds), and
	// maxBounds how many members' are.
	boundMemo = time.Second
	maxBounds = 1 << 14
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
		delete(o.bounds, name)
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
	delete(o.bounds, name)
}

// trim drops the spans that ended before the window and merges the
// oldest while there are too many.
func (o *observer) trim(s *sighting, now time.Time) { s.ups = trimSpans(s.ups, now.Add(-o.window)) }

// trimSpans drops the spans (oldest first) that ended before start and
// merges the oldest while there are more than maxSpans: merging counts
// the time between as in them (for ups: generous; for gaps: judging
// less), never too harsh.
func trimSpans(spans []span, start time.Time) []span {
	k := 0
	for k < len(spans) && spans[k].to.Before(start) {
		k++
	}
	spans = spans[k:]
	for len(spans) > maxSpans {
		spans[1].from = spans[0].from
		spans = spans[1:]
	}
	return spans
}

// atMost is the most reliability name may claim as this peer saw it at
// now; ok is false for a member it never saw.
func (o *observer) atMost(name string, now time.Time) (float64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if b, ok := o.bounds[name]; ok && now.Sub(b.at) < boundMemo && !now.Before(b.at) {
		return b.most, b.ok
	}
	most, ok := o.computeAtMost(name, now)
	if o.bounds == nil || len(o.bounds) >= maxBounds {
		o.bounds = map[string]bound{}
	}
	o.bounds[name] = bound{most, ok, now}
	return most, ok
}

// computeAtMost is atMost, computed (o.mu held).
func (o *observer) computeAtMost(name string, now time.Time) (float64, bool) {
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
	for _, g := range o.gaps {
		unwatched += overlap(g.from, g.to, start, now)
	}
	doubt := time.Duration(s.changes)*eventDoubt + clockDoubt
	return min(1, float64(up+unwatched+doubt)/float64(o.window)), true
}

// lastSeen is when this peer last saw name alive: the end of its last
// span up, as the failure or leave that ended it reached this peer; ok is
// false while it is alive, and for a member never seen or whose spans
// fell out of the window.
func (o *observer) lastSeen(name string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.members[name]
	if s == nil || !s.upSince.IsZero() || len(s.ups) == 0 {
		return time.Time{}, false
	}
	return s.ups[len(s.ups)-1].to, true
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

// observedFile keeps the observer across restarts.
const observedFile = "observed.json"

// Bounds of an observed.json file: what a peer may read back.
const (
	maxObservedBytes   = 64 << 20
	maxObservedMembers = 1 << 17
	maxObservedName    = 512
)

// observedDoc is observed.json, version 1: times as Unix nanoseconds.
type observedDoc struct {
	Version int                       `json:"version"`
	Saved   int64                     `json:"saved"`
	Since   int64                     `json:"since"`
	Gaps    [][2]int64                `json:"gaps,omitempty"`
	Members map[string]observedMember `json:"members"`
}

type observedMember struct {
	FirstSeen int64      `json:"first_seen"`
	Ups       [][2]int64 `json:"ups,omitempty"`
	UpSince   int64      `json:"up_since,omitempty"` // alive when saved
	Changes   int        `json:"changes"`
}

// encode is the observer as observed.json at now.
func (o *observer) encode(now time.Time) []byte {
	o.mu.Lock()
	doc := observedDoc{Version: 1, Saved: now.UnixNano(), Since: o.since.UnixNano(), Members: make(map[string]observedMember, len(o.members))}
	for _, g := range o.gaps {
		doc.Gaps = append(doc.Gaps, [2]int64{g.from.UnixNano(), g.to.UnixNano()})
	}
	for name, s := range o.members {
		m := observedMember{FirstSeen: s.firstSeen.UnixNano(), Changes: s.changes}
		for _, u := range s.ups {
			m.Ups = append(m.Ups, [2]int64{u.from.UnixNano(), u.to.UnixNano()})
		}
		if !s.upSince.IsZero() {
			m.UpSince = s.upSince.UnixNano()
		}
		doc.Members[name] = m
	}
	o.mu.Unlock()
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("node: encoding the observer: %v", err)) // only numbers and strings: cannot fail
	}
	return b
}

// errObserved: an observed.json that is not one this peer could have
// written.
var errObserved = errors.New("node: observed.json is malformed")

// decodeObserved restores an observer from observed.json at now (after a
// restart): what it saw until it was saved, members alive then seen so
// until then, and the time since a gap it did not watch. The membership
// tells it who is alive now (up). Bounded and checked: at most
// maxObservedMembers members of maxSpans spans, times in order and not
// after now; what ended before the window is dropped.
func decodeObserved(b []byte, window time.Duration, now time.Time) (*observer, error) {
	if len(b) > maxObservedBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errObserved, len(b), maxObservedBytes)
	}
	var doc observedDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", errObserved, err)
	}
	saved, since := time.Unix(0, doc.Saved), time.Unix(0, doc.Since)
	switch {
	case doc.Version != 1:
		return nil, fmt.Errorf("%w: version %d, want 1", errObserved, doc.Version)
	case doc.Since <= 0 || since.After(saved) || saved.After(now):
		// A clock that went back past the save: start anew rather than
		// judge by times that are in its future.
		return nil, fmt.Errorf("%w: watched from %v, saved %v, now %v", errObserved, since, saved, now)
	case len(doc.Members) > maxObservedMembers || len(doc.Gaps) > maxSpans:
		return nil, fmt.Errorf("%w: %d members, %d gaps", errObserved, len(doc.Members), len(doc.Gaps))
	}
	spans := func(in [][2]int64) ([]span, error) {
		if len(in) > maxSpans {
			return nil, fmt.Errorf("%w: %d spans", errObserved, len(in))
		}
		out := make([]span, 0, len(in))
		last := int64(0)
		for _, x := range in {
			if x[0] < last || x[1] < x[0] || x[1] > doc.Saved {
				return nil, fmt.Errorf("%w: a span out of order", errObserved)
			}
			last = x[1]
			out = append(out, span{time.Unix(0, x[0]), time.Unix(0, x[1])})
		}
		return out, nil
	}
	o := newObserver(window, since)
	var err error
	if o.gaps, err = spans(doc.Gaps); err != nil {
		return nil, err
	}
	if len(o.gaps) > 0 && o.gaps[0].from.Before(since) {
		// A gap is a time this peer did not watch after it began: one
		// before would count that time twice.
		return nil, fmt.Errorf("%w: a gap before it began watching", errObserved)
	}
	if saved.Before(now) {
		o.gaps = append(o.gaps, span{saved, now}) // down, not watching
	}
	start := now.Add(-window)
	for name, m := range doc.Members {
		if name == "" || len(name) > maxObservedName || m.Changes < 0 || m.FirstSeen <= 0 || m.FirstSeen > doc.Saved ||
			m.UpSince != 0 && (m.UpSince < m.FirstSeen || m.UpSince > doc.Saved) {
			return nil, fmt.Errorf("%w: member %.40q", errObserved, name)
		}
		s := &sighting{firstSeen: time.Unix(0, m.FirstSeen), changes: m.Changes}
		if s.ups, err = spans(m.Ups); err != nil {
			return nil, err
		}
		if m.UpSince != 0 {
			// Seen alive until the save; not a change it saw (it stopped
			// watching), and the membership's up after the restart is one.
			if n := len(s.ups); n > 0 && s.ups[n-1].to.After(time.Unix(0, m.UpSince)) {
				return nil, fmt.Errorf("%w: member %.40q alive since before its last span ended", errObserved, name)
			}
			s.ups = append(s.ups, span{time.Unix(0, m.UpSince), saved})
		}
		o.trim(s, now)
		if len(s.ups) == 0 && s.firstSeen.Before(start) {
			continue // nothing of it in the window
		}
		o.members[name] = s
	}
	o.gaps = trimSpans(o.gaps, start)
	return o, nil
}

// writeObserved saves o at now in dir, durably.
func writeObserved(fsys durable.FS, dir string, o *observer, now time.Time) error {
	return durable.Write(fsys, filepath.Join(dir, observedFile), o.encode(now))
}

// openObserved restores what this peer observed before a restart from
// cfg.DataDir, or starts watching anew (no data dir, no file, or one it
// cannot use: the note says which). Starting anew judges less, never
// wrongly.
func openObserved(cfg Config) (*observer, string) {
	now := cfg.Clock()
	fresh := newObserver(cfg.ReliabilityWindow, now)
	if cfg.DataDir == "" {
		return fresh, ""
	}
	var o *observer
	note, _, err := durable.Read(cfg.FS, filepath.Join(cfg.DataDir, observedFile), func(b []byte) error {
		got, err := decodeObserved(b, cfg.ReliabilityWindow, now)
		if err == nil {
			o = got // only on success: parse may run twice
		}
		return err
	})
	switch {
	case err != nil:
		return fresh, fmt.Sprintf("what this peer observed of the members' availability cannot be read (%v): it watches anew", err)
	case o == nil:
		return fresh, note
	}
	return o, note
}

// saveObserved writes what this peer observed every ObserveSaveEvery and
// once more on Close, outside the observer's lock. A failed write is
// logged once until one succeeds: the observations are a bound on
// others' claims, not a promise, and the next save retries.
func (n *Node) saveObserved() {
	defer n.wg.Done()
	if n.cfg.DataDir == "" {
		return
	}
	every := n.cfg.ObserveSaveEvery
	if every <= 0 {
		every = DefaultConfig(nil).ObserveSaveEvery
	}
	failing := false
	save := func() {
		err := writeObserved(n.fs, n.cfg.DataDir, n.rt.observer, n.now())
		switch {
		case err != nil && !failing:
			n.logf("cannot save what this peer observed (%s): %v", durable.Reason(err), err)
		case err == nil && failing:
			n.logf("saved what this peer observed again")
		}
		failing = err != nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			save()
			return
		case <-t.C:
			save()
		}
	}
}
