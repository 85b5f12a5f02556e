package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/query"
)

// churnQueries are the statements the churn tests ask: sums and counts
// (flows to undo), a maximum whose witness may be the lost member, a top-k
// that may name it, groups.
var churnQueries = []string{
	"SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 0",
	"SELECT MAX(mem_free), MIN(mem_free) FROM peers",
	"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 3",
	"SELECT region, COUNT(*) FROM peers GROUP BY region",
}

// A member lost at each phase of a query — before it starts, as it
// spreads, while it converges, near its budget — with a failure detector
// too slow to help (Serf's verdict a minute away): the query's own peers
// find it lost (a refused connection at once; a silent machine by a ping
// and indirect probes), leave it out, undo their flows with it and drop
// what it gave; the answer is converged or exact over the others, names
// it, and is right over them. The lost member holds the largest mem_free:
// MAX and the top-k must find the next.
func TestLostMidQueryIsExcluded(t *testing.T) {
	for _, how := range []string{"stopped", "crashed"} {
		for _, at := range []time.Duration{-time.Second, 0, 150 * time.Millisecond, 500 * time.Millisecond, 1200 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s at %v", how, at), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					fcfg := fakenet.DefaultConfig()
					fcfg.Detect, fcfg.Jitter = time.Minute, 5*time.Millisecond
					c := startFake(t, 12, fcfg, 3, nil)
					asker := c.nodes[0]
					// The member with the most mem_free: lost.
					best := 1
					for i, r := range c.records() {
						if i > 0 && r["mem_free"].Num > c.records()[best]["mem_free"].Num {
							best = i
						}
					}
					lostName := c.nodes[best].Name()
					lose := func() {
						if how == "stopped" {
							c.nodes[best].Close()
							c.net.Stop(lostName) // its process is gone: connections refused
						} else {
							c.kill(best) // the machine is gone: silence
						}
					}
					all := c.records()
					var survivors []query.Record
					for i, r := range all {
						if i != best {
							survivors = append(survivors, r)
						}
					}
					if at < 0 {
						lose()
						elapse(-at)
					}
					outs := make([]*Result, len(churnQueries))
					errs := make([]error, len(churnQueries))
					var wg sync.WaitGroup
					for i, src := range churnQueries {
						wg.Add(1)
						go func() {
							defer wg.Done()
							outs[i], errs[i] = asker.Query(context.Background(), compile(t, asker, src), nil)
						}()
					}
					if at >= 0 {
						elapse(at)
						lose()
					}
					wg.Wait()
					for i, src := range churnQueries {
						res, err := outs[i], errs[i]
						p := compile(t, asker, src)
						if res == nil {
							t.Fatalf("%s: %v", src, err)
						}
						if res.Status == StatusPartial {
							t.Errorf("%s: partial (%s), want converged over the others", src, res.Reason)
							continue
						}
						// Over the members that took part: without the lost one
						// if the answer left it out (and names it), with it if
						// it took part before it was lost.
						excluded := slices.Contains(res.Excluded, lostName)
						want := query.Exact(p, all)
						if excluded {
							want = query.Exact(p, survivors)
						}
						if !closeTo(res.Result, want) {
							t.Errorf("%s: %v, want %v (excluded %v)", src, res.Rows, want.Rows, res.Excluded)
						}
						if excluded && slices.Contains(res.Nodes, lostName) {
							t.Errorf("%s: the top-k names the member it left out", src)
						}
						// (An answer from the membership exchanges with no one:
						// it counts the member until some peer finds it lost.)
						if !excluded && !res.FromTags && (at < 0 || how == "stopped" && res.Elapsed > at+time.Second) {
							t.Errorf("%s: the member lost %v in did not count as lost (answered in %v)", src, at, res.Elapsed)
						}
						t.Logf("%s: %s in %v, excluded %v", src, res.Status, res.Elapsed.Round(time.Millisecond), res.Excluded)
					}
				})
			})
		}
	}
}
