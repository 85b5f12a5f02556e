package node

import (
	"errors"
	"fmt"
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
	doubt := func(changes int) float64 {
		return (float64(changes)*eventDoubt.Seconds() + clockDoubt.Seconds()) / w.Seconds()
	}
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

// A member's bound is remembered for boundMemo (a top-k checks each
// entry that enters a list against it), not past it, and not past a
// change of the member's: a member seen going up or down is judged anew
// at once. Mutations: without the up's or the down's forgetting, the
// bound after it is the one from before it.
func TestObserverRemembersBounds(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const w = 1000 * time.Second
	o := newObserver(w, t0)
	o.up("a", at(0))
	o.down("a", at(500*time.Second))
	first, _ := o.atMost("a", at(1000*time.Second))
	if again, _ := o.atMost("a", at(1000*time.Second+boundMemo/2)); again != first {
		t.Errorf("within %v: %v, then %v; want it remembered", boundMemo, first, again)
	}
	later, _ := o.atMost("a", at(1000*time.Second+2*boundMemo))
	if want, _ := o.computeAtMost("a", at(1000*time.Second+2*boundMemo)); later != want || later >= first {
		t.Errorf("past %v: %v, want %v (below %v: the window slid over its time up)", boundMemo, later, want, first)
	}
	// Each change is news within the memo's time: up, then down.
	base := 1000*time.Second + 2*boundMemo
	o.up("a", at(base))
	upNow, _ := o.atMost("a", at(base+boundMemo/8))
	if want, _ := o.computeAtMost("a", at(base+boundMemo/8)); upNow != want || upNow == later {
		t.Errorf("after an up within %v: %v, want %v (not the %v remembered)", boundMemo, upNow, want, later)
	}
	o.down("a", at(base+boundMemo/4))
	now := at(base + boundMemo/2)
	got, _ := o.atMost("a", now)
	if want, _ := o.computeAtMost("a", now); got != want || got == upNow {
		t.Errorf("after a down within %v: %v, want %v (not the %v remembered)", boundMemo, got, want, upNow)
	}
	// A clock that went back is not within the memo.
	back := now.Add(-time.Hour)
	if b, _ := o.atMost("a", back); b == got {
		want, _ := o.computeAtMost("a", back)
		t.Errorf("an hour back: %v, the bound remembered from an hour later; want %v", b, want)
	}
}

// What a peer observed survives its restart: the spans it saw, a member
// alive at the save seen so until then, and the time it was down a gap
// it did not watch (counted as up, as the time before it began).
func TestObserverSurvivesRestart(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d * time.Second) }
	const w = 200 * time.Second
	o := newObserver(w, t0)
	o.up("a", at(0))
	o.down("a", at(100))
	o.up("b", at(0))
	b := o.encode(at(150))
	// Restored at once, it judges as before.
	same, err := decodeObserved(b, w, at(150))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b"} {
		want, _ := o.atMost(m, at(150))
		if got, ok := same.atMost(m, at(150)); !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s restored at the save: %v, want %v", m, got, want)
		}
	}
	// Restarted 50 s later: [150, 200] is a gap; b is alive again.
	r, err := decodeObserved(b, w, at(200))
	if err != nil {
		t.Fatal(err)
	}
	r.up("b", at(200))
	doubt := func(changes int) float64 {
		return (float64(changes)*eventDoubt.Seconds() + clockDoubt.Seconds()) / w.Seconds()
	}
	// a at 250 (window [50, 250]): up [50, 100], the gap [150, 200], 2 changes.
	if got, _ := r.atMost("a", at(250)); math.Abs(got-(100.0/200+doubt(2))) > 1e-9 {
		t.Errorf("a after the restart: %v, want %v", got, 100.0/200+doubt(2))
	}
	// A fresh observer would have judged a at 250 by 50 s of watching.
	if got, _ := newObserver(w, at(200)).atMost("a", at(250)); got != 0 {
		t.Errorf("a fresh observer knows a: %v", got)
	}
	// Anything that is not what encode writes is refused.
	for name, doc := range map[string]string{
		"empty":       ``,
		"version":     `{"version":2,"saved":2,"since":1,"members":{}}`,
		"future save": fmt.Sprintf(`{"version":1,"saved":%d,"since":1,"members":{}}`, at(999).UnixNano()),
		"since after": `{"version":1,"saved":2,"since":3,"members":{}}`,
		"order":       `{"version":1,"saved":9,"since":1,"members":{"a":{"first_seen":1,"ups":[[5,6],[2,3]],"changes":2}}}`,
		"past save":   `{"version":1,"saved":9,"since":1,"members":{"a":{"first_seen":1,"ups":[[5,10]],"changes":2}}}`,
		"negative":    `{"version":1,"saved":9,"since":1,"members":{"a":{"first_seen":1,"changes":-1}}}`,
		"no name":     `{"version":1,"saved":9,"since":1,"members":{"":{"first_seen":1,"changes":1}}}`,
		"unknown":     `{"version":1,"saved":9,"since":1,"members":{},"x":1}`,
		"overlap":     `{"version":1,"saved":9,"since":1,"members":{"a":{"first_seen":1,"ups":[[2,6]],"up_since":4,"changes":3}}}`,
		"gap before":  `{"version":1,"saved":9,"since":5,"gaps":[[2,3]],"members":{}}`,
	} {
		if _, err := decodeObserved([]byte(doc), w, at(300)); !errors.Is(err, errObserved) {
			t.Errorf("%s: %v, want errObserved", name, err)
		}
	}
}

func FuzzDecodeObserved(f *testing.F) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	o := newObserver(time.Hour, t0)
	o.up("a", t0)
	o.down("a", t0.Add(time.Minute))
	o.up("b", t0.Add(time.Second))
	f.Add(o.encode(t0.Add(2 * time.Minute)))
	f.Add([]byte(`{"version":1,"saved":9,"since":1,"gaps":[[2,3]],"members":{"a":{"first_seen":1,"ups":[[1,2]],"up_since":4,"changes":2}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		now := t0.Add(time.Hour)
		r, err := decodeObserved(b, time.Hour, now)
		if err != nil {
			return
		}
		// What it restored it can judge and save again.
		for name := range r.members {
			if x, ok := r.atMost(name, now); !ok || x < 0 || x > 1 || math.IsNaN(x) {
				t.Fatalf("%s: atMost %v, %v", name, x, ok)
			}
			if len(r.members[name].ups) > maxSpans+1 {
				t.Fatalf("%s: %d spans", name, len(r.members[name].ups))
			}
		}
		if _, err := decodeObserved(r.encode(now), time.Hour, now); err != nil {
			t.Fatalf("a restored observer's own file is refused: %v", err)
		}
	})
}
