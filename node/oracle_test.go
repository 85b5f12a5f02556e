package node

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/query"
)

// On a frozen 200-peer embedded cluster, every kind of statement answered by
// gossip matches the exact answer computed from every peer's record (the
// test-only oracle): top-k identical, aggregates within 1%, percentiles
// between the exact quantiles at p±1% (widened by the histogram's 1%
// buckets), distinct counts within HyperLogLog's error.
func TestOracle200(t *testing.T) {
	t.Parallel()
	fake(t, 200, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) { oracle(t, c.nodes[17], c.records()) })
}

// oracle asks every kind of statement from asker and checks the answers
// against recs, the records of every peer.
func oracle(t *testing.T, asker *Node, recs []query.Record) {
	for _, src := range []string{
		"SELECT COUNT(*) FROM peers WHERE mem_free >= 4GB",
		"SELECT COUNT(*), AVG(cpu_load), SUM(disk_free), MIN(reliability), MAX(mem_free) FROM peers WHERE arch = 'arm64'",
		"SELECT COUNT(cpu_load), STDDEV(cpu_load), VARIANCE(cpu_cores) FROM peers",
		"SELECT SUM(mem_total) / COUNT(*) AS per_peer, MIN(node), MAX(uptime) FROM peers WHERE class != 'phone'",
		"SELECT region, COUNT(*), AVG(cpu_load) FROM peers WHERE mem_free >= 2GB GROUP BY region",
		"SELECT class, SUM(disk_free), MAX(cpu_cores) FROM peers GROUP BY class ORDER BY class",
		"SELECT region, COUNT(*) AS n FROM peers WHERE cpu_load < 30% GROUP BY region ORDER BY n DESC LIMIT 3",
		"SELECT node, mem_free, reliability FROM peers WHERE mem_free >= 4GB AND region IN ('eu', 'us') ORDER BY reliability DESC LIMIT 50",
		"SELECT node, cpu_load FROM peers ORDER BY cpu_load DESC, node LIMIT 10",
		"SELECT node FROM peers WHERE class = 'server' AND uptime > 1h",
		"SELECT class, COUNT(DISTINCT cpu_cores) FROM peers GROUP BY class",
		"SELECT MEDIAN(mem_free), PERCENTILE(uptime, 0.9) FROM peers",
		"SELECT region, PERCENTILE(disk_free, 0.75) FROM peers GROUP BY region",
	} {
		p := compile(t, asker, src)
		res := ask(t, asker, p)
		if res.FromTags {
			t.Errorf("%s: answered from tags; the test wants gossip", src)
		}
		want := query.Exact(p, recs)
		t.Logf("%s: %d rounds, %v, converged %v", src, res.Rounds, res.Took().Round(time.Millisecond), res.Converged)
		if !res.Converged {
			t.Errorf("%s: not converged after %d rounds", src, res.Rounds)
		}
		if len(res.Rows) != len(want.Rows) {
			t.Fatalf("%s: %d rows, want %d\n got %v\nwant %v", src, len(res.Rows), len(want.Rows), res.Rows, want.Rows)
		}
		for i := range want.Rows {
			for j, w := range want.Rows[i] {
				g, col := res.Rows[i][j], p.Columns[j]
				switch {
				case strings.Contains(col.Name, "PERCENTILE") || strings.Contains(col.Name, "MEDIAN"):
					checkPercentile(t, src, p, j, recs, want, i, g)
				case strings.Contains(col.Name, "DISTINCT"):
					if math.Abs(g.Num-w.Num) > 3*1.04/32*w.Num+0.5 {
						t.Errorf("%s row %d: distinct %v, want %v", src, i, g, w)
					}
				case w.Kind.Numeric():
					if math.Abs(g.Num-w.Num) > 0.01*math.Abs(w.Num)+1e-9 {
						t.Errorf("%s row %d col %s: %v, want %v", src, i, col.Name, g, w)
					}
				default:
					if g != w {
						t.Errorf("%s row %d col %s: %v, want %v", src, i, col.Name, g, w)
					}
				}
			}
		}
	}
}

// checkPercentile compares a gossip percentile with the exact ones at p±1%.
func checkPercentile(t *testing.T, src string, p *query.Plan, col int, recs []query.Record, want *answer.Answer, row int, got query.Value) {
	t.Helper()
	a := p.Aggs[p.Columns[col].Expr.Index]
	bound := func(q float64) float64 {
		alt := *p
		alt.Aggs = append([]query.Aggregate(nil), p.Aggs...)
		alt.Aggs[p.Columns[col].Expr.Index].Param = math.Max(0, math.Min(1, q))
		return query.Exact(&alt, recs).Rows[row][col].Num
	}
	lo, hi := bound(a.Param-0.01)*(1-aggregate.HistAlpha), bound(a.Param+0.01)*(1+aggregate.HistAlpha)
	if got.Num < lo || got.Num > hi {
		t.Errorf("%s row %d: %s = %v outside [%v, %v] (exact %v)", src, row, p.Columns[col].Name, got, lo, hi, want.Rows[row][col])
	}
}
