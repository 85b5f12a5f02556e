package node

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/peerq/peerq/query"
)

func compile(t testing.TB, n *Node, src string) *query.Plan {
	t.Helper()
	p, err := query.CompileText(src, n.Catalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func startEmbedded(t testing.TB, n int) *Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Nodes: n, Seed: 1, Freeze: true, Round: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.WaitSettled(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// ask runs a plan from n and fails the test on error.
func ask(t testing.TB, n *Node, p *query.Plan) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := n.Query(ctx, p, nil)
	if err != nil {
		t.Fatalf("%s: %v", p.Text, err)
	}
	return res
}

// sameAnswer checks a gossip answer against the exact one: the same rows,
// numbers within 1%, everything else equal.
func sameAnswer(t testing.TB, got, want *query.Result, label string) {
	t.Helper()
	if len(got.Rows) != len(want.Rows) {
		t.Fatalf("%s: %d rows, want %d\n got %v\nwant %v", label, len(got.Rows), len(want.Rows), got.Rows, want.Rows)
	}
	for i := range want.Rows {
		for j, w := range want.Rows[i] {
			g := got.Rows[i][j]
			if w.Kind.Numeric() && math.Abs(g.Num-w.Num) > 0.01*math.Abs(w.Num)+1e-9 || !w.Kind.Numeric() && g != w {
				t.Errorf("%s: row %d col %d: %v, want %v", label, i, j, g, w)
			}
		}
	}
}

func TestEmbeddedQueries(t *testing.T) {
	e := startEmbedded(t, 40)
	asker := e.Nodes[3]
	for _, src := range []string{
		"SELECT COUNT(*), AVG(cpu_load), MAX(mem_free) FROM peers WHERE mem_free >= 4GB",
		"SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 10",
		"SELECT region, COUNT(*) FROM peers GROUP BY region",
		"SELECT COUNT(*) FROM peers WHERE region = 'eu'",
	} {
		p := compile(t, asker, src)
		res := ask(t, asker, p)
		t.Logf("%s: %d rounds, %v, converged %v, from tags %v", src, res.Rounds, res.Elapsed, res.Converged, res.FromTags)
		sameAnswer(t, res.Result, query.Exact(p, e.Records()), src)
	}
}

func TestConcurrentQueries(t *testing.T) {
	e := startEmbedded(t, 40)
	srcs := []string{
		"SELECT COUNT(*) FROM peers WHERE mem_free >= 4GB",
		"SELECT AVG(cpu_load) FROM peers",
		"SELECT node FROM peers ORDER BY uptime DESC LIMIT 5",
		"SELECT region, SUM(cpu_cores) FROM peers WHERE cpu_load < 50% GROUP BY region",
		"SELECT MAX(disk_free), MIN(mem_total) FROM peers",
		"SELECT node FROM peers ORDER BY mem_free LIMIT 3",
	}
	type answer struct {
		src string
		res *Result
		err error
	}
	out := make(chan answer, len(srcs))
	recs := e.Records()
	for i, src := range srcs {
		asker := e.Nodes[i*5]
		p := compile(t, asker, src)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := asker.Query(ctx, p, nil)
			out <- answer{src, res, err}
		}()
	}
	for range srcs {
		a := <-out
		if a.err != nil {
			t.Fatalf("%s: %v", a.src, a.err)
		}
		sameAnswer(t, a.res.Result, query.Exact(compile(t, e.Nodes[0], a.src), recs), a.src)
	}
	// Every peer took part in every query, and the instances were collected.
	time.Sleep(time.Duration(e.Nodes[0].cfg.Linger+5) * e.Nodes[0].cfg.Round * 10)
	for _, n := range e.Nodes {
		if s := n.Stats(); s.Joined < int64(len(srcs)-1) {
			t.Errorf("%s joined %d queries", n.Name(), s.Joined)
		}
		n.mu.Lock()
		left := len(n.queries)
		n.mu.Unlock()
		if left != 0 {
			t.Errorf("%s still holds %d query instances", n.Name(), left)
		}
	}
}
