package sim

import (
	"strings"
	"testing"

	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// Liars that write top-k entries for other nodes — unsigned, or under
// the nodes' own signatures — get no entry into any list: their messages
// are refused, and the asker's top-k is the honest one. Mutation: with the
// signatures' model off (newSeal returning nil), all 50 entries of the
// asker's list were forged (peerq sim --nodes 2000 … --liars 0.01).
func TestLiarsCannotForge(t *testing.T) {
	p := plan(t, "SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 50")
	for _, lie := range []Lie{LieForge, LieAlter} {
		t.Run(lie.String(), func(t *testing.T) {
			cfg := DefaultConfig(1000)
			cfg.Liars, cfg.Lie = 0.02, lie
			s, err := New(p, cfg)
			if err != nil {
				t.Fatal(err)
			}
			refused := 0
			var last RoundStats
			for !s.Done() {
				last = s.Step()
				refused += last.LiesRefused
			}
			if n, err := s.Refused(); n > 0 {
				t.Errorf("%d honest messages refused: %v", n, err)
			}
			if refused == 0 {
				t.Error("no lie was refused: the liars did not lie")
			}
			if last.ForgedAccepted != 0 || last.OriginErr != 0 {
				t.Errorf("forged entries in the asker's list: %d; its top-50 exact: %v", last.ForgedAccepted, last.OriginErr == 0)
			}
		})
	}
}

// run runs a simulation to its end and returns its last round.
func runSim(t *testing.T, p *query.Plan, cfg Config) (*Sim, RoundStats) {
	t.Helper()
	s, err := New(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var last RoundStats
	for !s.Done() {
		last = s.Step()
	}
	if n, err := s.Refused(); n > 0 {
		t.Fatalf("%d honest messages refused: %v", n, err)
	}
	return s, last
}

// Right or flagged: 1% of the peers lie — about themselves (inflate,
// extreme) or with made-up flows — and the asker's answer is either
// within the bound of the answer over the honest peers, or
// contested by the sample check (made-up flows: within 100%, or
// contested; smaller bends are below what 64 sampled members can see). The lies are not idle: each bends the
// unchecked answer past the bound (HonestErr), which is what makes the
// flag necessary. A robust statement (TRIM) is never flagged: lies about
// oneself do not bend it, and made-up flows that bend its gossip leave
// the answer to the sample (run.Fallback), within the same bound.
// Mutation: with the check's outlier rule off
// (OutlierRatio +Inf), the inflate and extreme runs in which a liar is
// sampled come back unflagged, 10× off.
func TestLiarsFlaggedOrRight(t *testing.T) {
	const n, liars = 2000, 0.01
	seeds := uint64(3)
	if raceDetector {
		seeds = 1 // the same checks; three seeds cost a minute under -race
	}
	statements := []struct {
		text string
		// bound is the honest error allowed unflagged, relative: for
		// AVG(cpu_load) 0.05; for sums twice the liars' share of the
		// range (issue 23), against the honest total.
		bound func(honest float64) float64
		// robust: a lie about a liar's own value neither bends the
		// answer past the bound nor gets it flagged (TRIM).
		robust bool
	}{
		{"SELECT AVG(cpu_load) FROM peers", func(float64) float64 { return 0.05 }, false},
		{"SELECT COUNT(*) FROM peers WHERE mem_free >= 8GB", func(h float64) float64 { return 2 * liars * n / h }, false},
		{"SELECT SUM(cpu_cores) FROM peers", func(h float64) float64 { return 2 * liars * n * (1 << 20) / h }, false},
		{"SELECT AVG(cpu_load) TRIM 5% FROM peers", func(float64) float64 { return 0.05 }, true},
	}
	for si, st := range statements {
		p := plan(t, st.text)
		lies := []Lie{LieInflate, LieExtreme, LieFlow}
		if raceDetector {
			// Each statement one lie, each lie some statement: the same
			// checks, a third of the runs (CI's race run has 15 minutes).
			lies = lies[si%3 : si%3+1]
		}
		for _, lie := range lies {
			for seed := uint64(1); seed <= seeds; seed++ {
				cfg := DefaultConfig(n)
				cfg.Liars, cfg.Lie, cfg.Seed, cfg.NFromGossip = liars, lie, seed, false
				s, last := runSim(t, p, cfg)
				v, honestErr, ok := s.Check()
				c := run.DefaultSampleCheck()
				if !ok || !last.Checked || v.Sampled != c.Size && !(last.Escalated && v.Sampled >= c.Size+c.More) && !last.StandIn {
					t.Fatalf("%s, %s, seed %d: no sample check (sampled %d, contested %v: %s)", st.text, lie, seed, v.Sampled, v.Contested, v.Reason)
				}
				flagged := v.Contested && !last.StandIn
				h := s.honestValue()
				bound := st.bound(h)
				if lie == LieFlow {
					// Made-up flows are caught only past the sample's
					// interval: an answer they keep moving does not
					// converge and is checked with 512 members (at 2,000
					// peers about ±21% of a share, up to 2× for a skewed
					// sum above the sample).
					bound = max(bound, 0.25)
					if st.text == "SELECT SUM(cpu_cores) FROM peers" {
						bound = max(bound, 1)
					}
				}
				if st.robust {
					// Whatever the lie, within the bound and never
					// flagged: made-up flows bend the gossip, and the
					// sample answers instead.
					bound = st.bound(h)
				}
				if !flagged && honestErr > bound {
					t.Errorf("%s, %s, seed %d: unflagged, honest error %.3g > %.3g", st.text, lie, seed, honestErr, bound)
				}
				if st.robust && (flagged || last.StandIn != (lie == LieFlow)) {
					t.Errorf("%s, %s, seed %d: a robust answer, flagged %v, answered by the sample %v: %s", st.text, lie, seed, flagged, last.StandIn, v.Reason)
				}
				t.Logf("%s, %s, seed %d: honest error %.3g, flagged %v, answered by the sample %v (sampled %d) %s", st.text, lie, seed, honestErr, flagged, last.StandIn, v.Sampled, v.Reason)
			}
		}
	}
}

// Made-up flows of sums of squares alone (every sum and count true) are
// contested, or leave the spread within a quarter of the honest one: the
// sample's variance bounds it from below, what any machine reports from
// above (run's checkVariances).
func TestSquaresLiarsFlaggedOrRight(t *testing.T) {
	const n = 2000
	seeds := uint64(3)
	if raceDetector {
		seeds = 1
	}
	flaggedRuns := 0
	for _, text := range []string{"SELECT STDDEV(cpu_load) FROM peers", "SELECT VARIANCE(mem_free) FROM peers"} {
		p := plan(t, text)
		for seed := uint64(1); seed <= seeds; seed++ {
			cfg := DefaultConfig(n)
			cfg.Liars, cfg.Lie, cfg.Seed, cfg.NFromGossip = 0.01, LieSquares, seed, false
			s, last := runSim(t, p, cfg)
			v, honestErr, ok := s.Check()
			if !ok || !last.Checked {
				t.Fatalf("%s, seed %d: no sample check", text, seed)
			}
			if v.Contested {
				flaggedRuns++
				if !strings.Contains(v.Reason, "variance") && !strings.Contains(v.Reason, "sum of squares") {
					t.Errorf("%s, seed %d: contested for another reason than the spread: %s", text, seed, v.Reason)
				}
			} else if honestErr > 0.25 {
				t.Errorf("%s, seed %d: unflagged, honest error %.3g", text, seed, honestErr)
			}
			t.Logf("%s, seed %d: honest error %.3g, contested %v %s", text, seed, honestErr, v.Contested, v.Reason)
		}
	}
	if flaggedRuns == 0 {
		t.Error("no run contested: the lie did not reach the answer")
	}
}

// The honest cluster is never contested: six statements, each kind of
// component the sample checks, several seeds and sizes.
func TestSampleHonestClusters(t *testing.T) {
	seeds := uint64(4)
	if testing.Short() || raceDetector {
		seeds = 1
	}
	for i, text := range []string{
		"SELECT AVG(cpu_load) FROM peers",
		"SELECT SUM(mem_free), COUNT(*) FROM peers",
		"SELECT COUNT(*) FROM peers WHERE mem_free >= 8GB",
		"SELECT region, AVG(disk_free), STDDEV(uptime) FROM peers GROUP BY region",
		"SELECT MEDIAN(cpu_load), PERCENTILE(mem_free, 0.9) FROM peers",
		"SELECT AVG(cpu_load) TRIM 1%, AVG(mem_free) TRIM 10% FROM peers",
	} {
		p := plan(t, text)
		sizes := []int{50, 1500}
		if raceDetector && i%4 != 0 {
			// Every statement at 50 (its sample every member), and a sum
			// and the quantiles at 1,500 (a part sampled, the measuring
			// workers running): at 1,500 the six statements took 133 s of
			// the race run's 15 minutes, the histograms most.
			sizes = sizes[:1]
		}
		for _, n := range sizes {
			for seed := uint64(1); seed <= seeds; seed++ {
				cfg := DefaultConfig(n)
				cfg.Seed, cfg.NFromGossip = seed, false
				s, last := runSim(t, p, cfg)
				if v, _, _ := s.Check(); !last.Checked || last.Flagged {
					t.Errorf("%s, %d peers, seed %d: checked %v, contested: %s", text, n, seed, last.Checked, v.Reason)
				}
			}
		}
	}
}

// Liars that claim reliability 1 rank only where the peers observed them
// that reliable: their claims above it are refused where they arrive, and
// the asker's top-50 is the one over the true records but for liars
// within the slack of the top. drop: a liar that swallows the others'
// entries changes nothing (every entry reaches the asker by other paths).
// Either way the asker's answer is final: it goes after the members its
// coverage lacks and judges the selfrank liars itself (run.Instance's
// Straggler and Implausible). Mutation: without the chase (the sampler's
// straggler), the selfrank run's rule never fired — every peer refuses a
// liar's entry, so none reaches the asker but by meeting it, which among
// 1,000 in the budget it mostly does not.
func TestSelfRankersAndDroppers(t *testing.T) {
	p := plan(t, "SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 50")
	for _, lie := range []Lie{LieSelfrank, LieDrop} {
		t.Run(lie.String(), func(t *testing.T) {
			cfg := DefaultConfig(1000)
			cfg.Liars, cfg.Lie = 0.02, lie
			s, err := New(p, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var last RoundStats
			refused, final := 0, 0
			for !s.Done() {
				last = s.Step()
				refused += last.LiesRefused
				if last.RuleConverged && final == 0 {
					final = last.Round
				}
			}
			if n, err := s.Refused(); n > 0 {
				t.Fatalf("%d honest messages refused: %v", n, err)
			}
			judged := s.origin.Implausible()
			if final == 0 || lie == LieSelfrank && len(judged) == 0 {
				t.Errorf("the asker's rule fired at round %d (0: never), %d liars judged by it", final, len(judged))
			}
			for name := range judged {
				if i, ok := s.index(name); !ok || !s.liar(int32(i)) {
					t.Errorf("the asker judged %s, no liar", name)
				}
			}
			if last.SelfRanked != 0 || last.HonestShare < 0.96 {
				t.Errorf("%d liars ranked above what was observed; honest share %.2f", last.SelfRanked, last.HonestShare)
			}
			if lie == LieSelfrank && refused == 0 {
				t.Error("no claim was refused: the liars did not lie")
			}
		})
	}
}

// MIN and MAX under flow liars that raise every extreme they pass on
// (×1000, within the bounds): an extreme is a value its witness signed
// (the simulator's model of the signatures), so the raised ones are
// refused where they arrive and the asker's answer is exact. Mutation:
// without the witness's signature checked (run's validExtreme) the answer
// comes back 400 times off (the MAX at the catalog's bound), and no
// message is refused.
func TestExtremesWitnessed(t *testing.T) {
	p := plan(t, "SELECT MAX(cpu_load), MIN(mem_free) FROM peers")
	cfg := DefaultConfig(2000)
	cfg.Liars, cfg.Lie, cfg.NFromGossip = 0.01, LieFlow, false
	_, last := runSim(t, p, cfg)
	if last.OriginErr != 0 {
		t.Errorf("MAX and MIN off by %.3g under liars that raise extremes (%d of their messages refused)", last.OriginErr, last.LiesRefused)
	}
	if last.LiesRefused == 0 {
		t.Error("no lie refused: the liars raised no extreme, and the test proves nothing")
	}
	t.Logf("%d lying messages refused, the asker's error %v", last.LiesRefused, last.OriginErr)
}
