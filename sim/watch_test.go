package sim

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/peerq/peerq/aggregate"
)

// watchQuery is the standing query the comparison runs: additive, so that
// a long-lived instance can take new values in place.
const watchQuery = "SELECT COUNT(*), AVG(cpu_load), SUM(mem_free) FROM peers"

// A long-lived instance that takes drifted values in place converges to the
// new exact answer: flows carry the differences as they carried the values.
func TestDriftReconverges(t *testing.T) {
	t.Parallel()
	s, _ := simulate(t, watchQuery, config(2_000, 40, 1))
	for epoch := 1; epoch <= 3; epoch++ {
		if err := s.Drift(600); err != nil {
			t.Fatal(err)
		}
		moved := s.Step().OriginErr
		var st RoundStats
		for range 30 {
			st = s.Step()
		}
		if st.OriginErr > 0.01 || st.MedianErr > 0.01 {
			t.Errorf("epoch %d: 30 rounds after a drift the error is %.2e at the asker, %.2e median; want < 1%%",
				epoch, st.OriginErr, st.MedianErr)
		}
		if moved < 10*st.OriginErr {
			t.Errorf("epoch %d: the drift moved the answer by %.2e only, against %.2e after: the test measures nothing",
				epoch, moved, st.OriginErr)
		}
	}
}

// MIN, MAX, COUNT DISTINCT and top-k cannot take back what they spread.
func TestDriftNotIncremental(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"SELECT MAX(cpu_load) FROM peers", "SELECT COUNT(DISTINCT cpu_load), SUM(cpu_load) FROM peers",
		"SELECT node FROM peers ORDER BY cpu_load DESC LIMIT 5"} {
		s, err := New(plan(t, src), config(50, 5, 1))
		if err != nil {
			t.Fatal(err)
		}
		s.Step()
		if err := s.Drift(600); !errors.Is(err, aggregate.ErrNotIncremental) {
			t.Errorf("%s: Drift gave %v, want ErrNotIncremental", src, err)
		}
	}
}

// BenchmarkWatchEpochs measures the two ways a WATCH can take its epochs
// (docs/PROTOCOLS.md, "WATCH"): a restart per epoch — a fresh instance
// that the engine's rule ends — against one long-lived instance whose
// peers put their drifted values in place (Sim.Drift: dt seconds of
// query.Drift, one WATCH interval) and gossip until the answer is within
// half the target again, the bar the rule holds a fresh instance to. Per
// epoch, medians over seeds: rounds (the rule's, and the first within the
// bar by the truth), and bytes sent by all peers. The long-lived figure is
// a lower bound: it is read from the truth, which no peer knows.
//
// Then 10% of the peers crash under the long-lived instance, whose links
// fold after 5 rounds as they must for it to live in bounded memory, and
// its COUNT error 40 rounds later is reported: the dead peers' mass it can
// no longer take back (a restart counts only the living).
func BenchmarkWatchEpochs(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		for _, dt := range []float64{10, 60} {
			b.Run(fmt.Sprintf("n=%d/every=%gs", n, dt), func(b *testing.B) {
				const crashAt = 100
				var coldR, coldT, coldB, warmR, warmB, dead []float64
				for b.Loop() {
					coldR, coldT, coldB, warmR, warmB, dead = coldR[:0], coldT[:0], coldB[:0], warmR[:0], warmB[:0], dead[:0]
					for seed := uint64(1); seed <= 5; seed++ {
						cfg := config(n, 400, seed)
						cfg.FoldAfter, cfg.Crashes = 5, []Event{{Frac: 0.1, Round: crashAt}}
						s, err := New(plan(b, watchQuery), cfg)
						if err != nil {
							b.Fatal(err)
						}
						target := s.plan.Accuracy / 2
						// A restart per epoch: the rule's stop.
						var bytes int64
						truth := 0
						for !s.Done() {
							st := s.Step()
							bytes += st.Bytes
							if truth == 0 && st.OriginErr <= target {
								truth = st.Round
							}
							if st.RuleConverged {
								break
							}
						}
						coldR, coldT, coldB = append(coldR, float64(s.round)), append(coldT, float64(truth)), append(coldB, float64(bytes))
						// The same instance, on: five epochs of drift.
						for range 5 {
							if err := s.Drift(dt); err != nil {
								b.Fatal(err)
							}
							rounds, bytes := 0, int64(0)
							for !s.Done() {
								st := s.Step()
								rounds++
								bytes += st.Bytes
								if st.OriginErr <= target {
									break
								}
							}
							warmR, warmB = append(warmR, float64(rounds)), append(warmB, float64(bytes))
						}
						var st RoundStats
						for s.round < crashAt+40 {
							st = s.Step()
						}
						dead = append(dead, st.OriginErr)
					}
				}
				b.ReportMetric(median(coldR), "restart-rounds/epoch")
				b.ReportMetric(median(coldT), "restart-truth-rounds/epoch")
				b.ReportMetric(median(coldB), "restart-B/epoch")
				b.ReportMetric(median(dead), "longlived-err-after-crash")
				b.ReportMetric(median(warmR), "longlived-rounds/epoch")
				b.ReportMetric(median(warmB), "longlived-B/epoch")
			})
		}
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
