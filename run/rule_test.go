package run

import (
	"fmt"
	"strings"
	"testing"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/topk"
)

func cells(vals ...float64) []float64 { return vals }

func TestTracker(t *testing.T) {
	var tr Tracker
	if got := tr.Observe(cells(100), nil); got != 1 {
		t.Errorf("first round: %v, want 1", got)
	}
	// An estimate converging geometrically to 50 by ρ a round: the
	// tracker's error estimate follows the true error within a factor 2.
	err := 10.0
	for r := 0; r < 20; r++ {
		err *= rho
		est := tr.Observe(cells(50+err, 7), nil)
		truth := err / (50 + err)
		if r > 2 && (est < truth/2 || est > 4*truth) {
			t.Errorf("round %d: estimate %.3g, true error %.3g", r, est, truth)
		}
	}
	if got := tr.Observe(cells(1, 2, 3), nil); got != 1 {
		t.Errorf("new shape: %v, want 1", got)
	}
	// A sketch is watched by its cumulative distribution: masses that
	// move by 0.1% of the total count as 0.1%, whatever the quantile reads.
	var q Tracker
	sk := func(m float64) [][]aggregate.Bucket {
		return [][]aggregate.Bucket{{{Index: aggregate.HistBucket(10), Mass: 0.5 - m}, {Index: aggregate.HistBucket(20), Mass: 0.5 + m}}}
	}
	q.Observe(nil, sk(0))
	q.Observe(nil, sk(0))
	if got := q.Observe(nil, sk(0.001)); got < 0.0009 || got > 0.003 {
		t.Errorf("a CDF move of 0.1%%: estimate %v", got)
	}
}

// The rule fires for an aggregate only after calm rounds that heard
// something, with the participants estimate agreeing with the membership;
// for a top-k with coverage, only once covered and unchanged.
func TestRule(t *testing.T) {
	p, err := query.CompileText("SELECT COUNT(*) FROM peers", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := NewRule(p, 100)
	fired := 0
	for round := 1; round <= 40; round++ {
		o := Observation{Round: round, Peers: 100, Received: round, Cells: cells(42), Participants: 100}
		if round > 20 {
			o.Received = 20 // nothing heard: stalled rounds prove nothing
		}
		if v := r.Observe(o); v.Converged {
			if round < r.Minimum() || round < 4 {
				t.Fatalf("fired at round %d, before the minimum %d", round, r.Minimum())
			}
			fired++
		}
	}
	if fired == 0 {
		t.Error("never fired on a still answer")
	}
	if why := r.Why(); why != "" {
		t.Errorf("fired, yet waits for %q", why)
	}
	// Participants far from the membership: never, and Why says so.
	r = NewRule(p, 100)
	for round := 1; round <= 40; round++ {
		if r.Observe(Observation{Round: round, Peers: 100, Received: round, Cells: cells(42), Participants: 80, Suspects: 1}).Converged {
			t.Fatalf("fired with 80 participants of 100 (round %d)", round)
		}
	}
	if why := r.Why(); why != "participants 80.000 of 100 members; 1 suspect(s)" {
		t.Errorf("Why() = %q", why)
	}
	r = NewRule(p, 100)
	r.Observe(Observation{Round: 1, Peers: 100, Received: 1, Cells: cells(42), Participants: 100})
	if why := r.Why(); !strings.HasPrefix(why, "round 1 of at least") || !strings.Contains(why, "calm 0 of 3 heard rounds") {
		t.Errorf("Why() = %q", why)
	}
	// Calming: within half the target for 1 or 2 heard rounds, not 0 or
	// CalmRounds (the tracker needs two still rounds before the first); a
	// round that heard nothing changes nothing (at calm 1); a jump (at
	// calm 2) starts again.
	r = NewRule(p, 100)
	r.Observe(Observation{Round: 1, Peers: 100, Received: 1, Cells: cells(10), Participants: 100})
	var calming []bool
	for i, c := range []struct {
		received int
		cell     float64
	}{{2, 50}, {3, 50}, {4, 50}, {4, 50}, {5, 50}, {6, 90}, {7, 90}} {
		r.Observe(Observation{Round: 2 + i, Peers: 100, Received: c.received, Cells: cells(c.cell), Participants: 100})
		calming = append(calming, r.Calming())
	}
	if fmt.Sprint(calming) != "[false false true true true false false]" {
		t.Errorf("Calming() over the rounds = %v", calming)
	}
	top, _ := query.CompileText("SELECT node FROM peers ORDER BY mem_free LIMIT 3", query.DefaultCatalog(), query.DefaultConfig())
	if NewRule(top, 100).Calming() {
		t.Error("a top-k is never calming")
	}
	r = NewRule(top, 100)
	if v := r.Observe(Observation{Round: 50, Coverage: true, Covered: false, Unchanged: 30, Stable: true, Received: 99}); v.Converged || v.ErrEstimate != 1 {
		t.Errorf("uncovered: %+v", v)
	}
	if v := r.Observe(Observation{Round: 3, Coverage: true, Covered: true, Unchanged: CoveredRounds}); !v.Converged || v.ErrEstimate != 0 {
		t.Errorf("covered: %+v", v)
	}
}

// The plan's sizing of coverage filters stays within what the top-k core
// accepts.
func TestCoverageSizes(t *testing.T) {
	if query.MaxCoverageBits != topk.MaxCoverageBits {
		t.Fatalf("query allows %d bits, topk %d", query.MaxCoverageBits, topk.MaxCoverageBits)
	}
	for _, n := range []int{1, 2, 31, 32, 200, 1000, 4096, 4097, 1 << 20} {
		b := CoverageFor(n)
		if b%64 != 0 || b > topk.MaxCoverageBits || b != 0 && b < 16*n || n <= 4096 && b == 0 {
			t.Errorf("CoverageFor(%d) = %d", n, b)
		}
	}
}
