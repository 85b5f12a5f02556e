package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/peerq/peerq/internal/cputime"
)

// BenchmarkStep times the simulator's round with every peer working
// (AllStart) — the cost the scale issue measures — and counts its
// allocations: an op is one round of N peers, and ns/peer-round is the
// time per working peer-round; cpu-ns/peer-round is the process's CPU time
// (every thread) per working peer-round, which a machine shared with other
// work inflates less than the wall time.
//
//	go test ./sim -run '^$' -bench BenchmarkStep -benchmem
func BenchmarkStep(b *testing.B) {
	for _, bc := range []struct{ name, src string }{
		{"count", "SELECT COUNT(*) FROM peers"},
		{"minmax", "SELECT MIN(reliability), MAX(mem_free) FROM peers"},
		{"top50", "SELECT node FROM peers ORDER BY reliability DESC LIMIT 50"},
	} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("%s/%d", bc.name, n), func(b *testing.B) {
				cfg := DefaultConfig(n)
				cfg.AllStart, cfg.Rounds = true, 1<<30
				s, err := New(plan(b, bc.src), cfg)
				if err != nil {
					b.Fatal(err)
				}
				for range 3 {
					s.Step() // past the first rounds' growth of lists and links
				}
				b.ReportAllocs()
				cpu0 := cpuTime(b)
				b.ResetTimer()
				working := 0
				for range b.N {
					working += s.Step().Alive // with AllStart, every live peer works
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(working), "ns/peer-round")
				b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(working), "cpu-ns/peer-round")
			})
		}
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	c, err := cputime.Self()
	if err != nil {
		b.Fatal(err)
	}
	return c
}
