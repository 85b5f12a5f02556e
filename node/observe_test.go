package node

import (
	"math"
	"testing"
	"time"
)

// The observer's bound: up time seen, plus the time before it watched,
// plus a little doubt per change, over the window; a member first seen
// late starts low; one never seen is not judged.
func TestObserverBound(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const w = 100 * time.Second
	doubt := func(changes int) float64 { return float64(changes) * eventDoubt.Seconds() / w.Seconds() }
	for _, tc := range []struct {
		name  string
		steps func(o *observer)
		now   time.Duration
		want  float64
		known bool
	}{
		{"up all along, watched a whole window", func(o *observer) { o.up("a", at(0)) }, 150 * time.Second, 1, true},
		{"down half the window", func(o *observer) {
			o.up("a", at(0))
			o.down("a", at(100*time.Second))
			o.up("a", at(150*time.Second))
		}, 200 * time.Second, 0.5 + doubt(3), true},
		{"joined late: the time before counts down", func(o *observer) { o.up("a", at(80*time.Second)) }, 100 * time.Second, 0.2 + doubt(1), true},
		{"never seen", func(o *observer) {}, 100 * time.Second, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newObserver(w, t0)
			tc.steps(o)
			got, ok := o.atMost("a", at(tc.now))
			if ok != tc.known || math.Abs(got-min(tc.want, 1)) > 1e-9 {
				t.Errorf("atMost = %v, %v; want %v, %v", got, ok, min(tc.want, 1), tc.known)
			}
		})
	}
	// An observer that has watched less than a window cannot judge the
	// rest: a member down all it watched may still claim the unwatched.
	o := newObserver(w, at(60*time.Second))
	o.up("b", at(60*time.Second))
	o.down("b", at(61*time.Second))
	if got, _ := o.atMost("b", at(100*time.Second)); got < 0.6 {
		t.Errorf("unwatched time counted against the member: %v", got)
	}
	// Memory stays bounded however often a member comes and goes.
	for i := range 1000 {
		o.up("c", at(time.Duration(100+i)*time.Second))
		o.down("c", at(time.Duration(100+i)*time.Second+time.Second/2))
	}
	if n := len(o.members["c"].ups); n > maxSpans {
		t.Errorf("%d spans kept, want at most %d", n, maxSpans)
	}
}
