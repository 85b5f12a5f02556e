package node

import (
	"context"

	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

func members(names ...string) []network.Member {
	out := make([]network.Member, len(names))
	for i, n := range names {
		out[i] = network.Member{Name: n}
	}
	return out
}

// TestGateways: every member computes the same gateways from the same
// membership, in any order; a gateway that fails is replaced by the next
// and no other changes.
func TestGateways(t *testing.T) {
	var names []string
	for i := range 50 {
		names = append(names, query.SyntheticName(i))
	}
	g := Gateways(members(names...), 3)
	if len(g) != 3 {
		t.Fatalf("%d gateways, want 3", len(g))
	}
	rev := slices.Clone(names)
	slices.Reverse(rev)
	if got := Gateways(members(rev...), 3); !slices.Equal(got, g) {
		t.Fatalf("order matters: %v, then %v", g, got)
	}
	without := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == g[1] })
	next := Gateways(members(without...), 3)
	if next[0] != g[0] || next[1] != g[2] || slices.Contains(next, g[1]) {
		t.Fatalf("after %s failed: %v, from %v", g[1], next, g)
	}
	if got := Gateways(members("a", "b"), 3); len(got) != 2 {
		t.Fatalf("a pool of 2 has %d gateways", len(got))
	}
	if got := Gateways(nil, 3); len(got) != 0 {
		t.Fatalf("no members, %d gateways", len(got))
	}
}

// TestChoose: a pool's partial counts when most of its gateways report
// agreeing ones; a liar is outvoted; disagreement without a majority is
// contested; too few reports leave the pool out.
func TestChoose(t *testing.T) {
	plan, err := query.CompileText("SELECT COUNT(*) FROM peers", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ans := func(x float64) verified {
		return verified{part: &run.Partial{}, ans: &answer.Answer{Rows: [][]answer.Value{{answer.Num(answer.KindCount, x)}}}}
	}
	failed := verified{body: reportBody{Status: statusFailed, Reason: "busy"}}
	for _, c := range []struct {
		name     string
		vs       []verified
		listed   int
		agreeing int
		why      string // "" chosen
	}{
		{"three agree", []verified{ans(100), ans(100), ans(100)}, 3, 3, ""},
		{"within the accuracy", []verified{ans(100), ans(100.4), ans(99.7)}, 3, 3, ""},
		{"one liar outvoted", []verified{ans(100), ans(1000), ans(100)}, 3, 2, ""},
		{"two of three, the third gone", []verified{ans(100), ans(100)}, 3, 2, ""},
		{"one gateway", []verified{ans(100)}, 1, 1, ""},
		{"two disagree", []verified{ans(100), ans(1000)}, 2, 1, "disagree"},
		{"three disagree", []verified{ans(100), ans(1000), ans(10)}, 3, 1, "disagree"},
		{"one of three", []verified{ans(100)}, 3, 1, "1 of its 3 gateways reported in time"},
		{"one of three, two failed", []verified{ans(100), failed, failed}, 3, 1, "1 of its 3 gateways reported, 2 failed to answer (busy)"},
		{"no gateway", nil, 0, 0, "it has no gateway in the cloud pool now"},
		{"more reports than listed", []verified{ans(100), ans(1000), ans(1000)}, 1, 2, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, agreeing, why := choose(plan, c.vs, c.listed)
			if why != c.why || agreeing != c.agreeing || (got == nil) != (c.why != "") {
				t.Fatalf("chose %v, %d agreeing, %q; want %d agreeing, %q", got != nil, agreeing, why, c.agreeing, c.why)
			}
		})
	}
}

// startPools is an embedded cluster of n peers in pools pools, settled.
func startPools(t *testing.T, n, pools int) *Embedded {
	t.Helper()
	return startEmbeddedWith(t, EmbeddedConfig{Nodes: n, Pools: pools, Seed: 1, Freeze: true, Round: 50 * time.Millisecond})
}

// gatewaysOf are the indexes of pool k's gateways, as its members see them.
func (e *Embedded) gatewaysOf(k int) []int {
	var out []int
	for i, n := range e.Nodes {
		if e.PoolOf(i) == k && n.rt.pools.isGateway() && !e.Down(i) {
			out = append(out, i)
		}
	}
	return out
}

// ask runs text at peer i with a deadline.
func (e *Embedded) ask(t *testing.T, i int, text string) (*answer.Answer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return e.Nodes[i].Execute(ctx, text, nil)
}

// rightOrFlagged checks an answer of a pooled cloud against the exact one
// over every live peer: right (converged and within the accuracy, the
// top-k's nodes exact), or flagged.
func rightOrFlagged(t *testing.T, e *Embedded, text string, a *answer.Answer, err error) (right bool) {
	t.Helper()
	if a == nil || a.Meta == nil {
		t.Fatalf("%s: no answer: %v", text, err)
	}
	if a.Meta.Status == answer.StatusPartial || a.Meta.Status == answer.StatusContested {
		return false
	}
	if err != nil {
		t.Fatalf("%s: %s with an error: %v", text, a.Meta.Status, err)
	}
	plan, perr := query.CompileText(text, query.DefaultCatalog(), query.DefaultConfig())
	if perr != nil {
		t.Fatal(perr)
	}
	exact := query.Exact(plan, e.Records())
	if !slices.Equal(a.Nodes, exact.Nodes) {
		t.Fatalf("%s: %s with nodes %v, want %v", text, a.Meta.Status, a.Nodes, exact.Nodes)
	}
	if len(a.Rows) != len(exact.Rows) {
		t.Fatalf("%s: %s with %d rows, want %d", text, a.Meta.Status, len(a.Rows), len(exact.Rows))
	}
	for i := range a.Rows {
		for j, v := range a.Rows[i] {
			x := exact.Rows[i][j]
			if v.Str != x.Str || absDiff(v.Num, x.Num) > 2*plan.Accuracy*max(1, abs(x.Num)) {
				t.Fatalf("%s: %s with %v, want %v", text, a.Meta.Status, a.Text(), exact.Text())
			}
		}
	}
	return true
}

func abs(x float64) float64 { return max(x, -x) }

func absDiff(a, b float64) float64 { return abs(a - b) }

// TestPools: a statement asked in a cloud of 3 pools runs in each and
// merges one partial per pool: right from any peer, with each pool named
// in the answer; one lying gateway is outvoted; two that lie differently
// make the answer contested, naming their pool; a gateway killed is
// replaced and the next statement is right.
func TestPools(t *testing.T) {
	e := startPools(t, 45, 3)
	statements := []string{
		"SELECT COUNT(*) FROM peers",
		"SELECT COUNT(*), SUM(mem_free), MAX(cpu_cores) FROM peers WHERE cpu_cores >= 2",
		"SELECT pool, COUNT(*) FROM peers GROUP BY pool",
		"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 10",
	}
	gw := e.gatewaysOf(1)
	if len(gw) != 3 {
		t.Fatalf("pool1 has gateways %v, want 3", gw)
	}
	asker := 0
	for i := range e.Nodes {
		if e.PoolOf(i) == 0 && !slices.Contains(e.gatewaysOf(0), i) {
			asker = i // not a gateway: its statements go through one
			break
		}
	}
	t.Run("honest", func(t *testing.T) {
		for _, text := range statements {
			a, err := e.ask(t, asker, text)
			if !rightOrFlagged(t, e, text, a, err) {
				t.Fatalf("%s: %s (%s) in an honest cloud", text, a.Meta.Status, a.Meta.Reason)
			}
			if len(a.Meta.Pools) != 3 || a.Meta.Peers != 45 {
				t.Fatalf("%s: pools %+v, %d peers", text, a.Meta.Pools, a.Meta.Peers)
			}
			for _, p := range a.Meta.Pools {
				if p.Agreeing != 3 || p.Peers != 15 {
					t.Fatalf("%s: pool %+v", text, p)
				}
			}
		}
		a, err := e.ask(t, gw[0], statements[0]) // from a gateway of another pool
		if !rightOrFlagged(t, e, statements[0], a, err) {
			t.Fatalf("asked at a gateway: %s (%s)", a.Meta.Status, a.Meta.Reason)
		}
	})
	t.Run("one liar", func(t *testing.T) {
		liar := e.Nodes[gw[0]].rt.pools
		liar.bend = inflate
		defer func() { liar.bend = nil }()
		for _, text := range statements {
			a, err := e.ask(t, asker, text)
			if !rightOrFlagged(t, e, text, a, err) {
				t.Fatalf("%s: %s (%s): one liar of 3 gateways bent it", text, a.Meta.Status, a.Meta.Reason)
			}
			if p := a.Meta.Pools[1]; p.Agreeing != 2 {
				t.Fatalf("%s: pool1 %+v, want 2 agreeing", text, p)
			}
		}
	})
	t.Run("two liars", func(t *testing.T) {
		a1, a2 := e.Nodes[gw[0]].rt.pools, e.Nodes[gw[1]].rt.pools
		a1.bend = inflate
		a2.bend = func(p *run.Partial) { inflate(p); inflate(p) }
		defer func() { a1.bend, a2.bend = nil, nil }()
		a, err := e.ask(t, asker, statements[0])
		if a == nil || a.Meta.Status != answer.StatusContested || !strings.Contains(a.Meta.Reason, "pool pool1") {
			t.Fatalf("two liars that disagree: %+v, %v", a.Meta, err)
		}
	})
	t.Run("a gateway killed", func(t *testing.T) {
		dead := gw[2]
		if err := e.Kill(dead); err != nil {
			t.Fatal(err)
		}
		a, err := e.ask(t, asker, statements[0])
		rightOrFlagged(t, e, statements[0], a, err) // right or flagged, while the pool finds it gone
		// A new gateway is chosen once pool1 declares it failed; then the
		// next statement is right, agreed by 3 again.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			a, err = e.ask(t, asker, statements[0])
			ok := rightOrFlagged(t, e, statements[0], a, err)
			if ok && a.Meta.Pools[1].Agreeing == 3 && a.Meta.Peers == 44 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new gateway in 2 minutes: %+v", a.Meta)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if got := e.gatewaysOf(1); len(got) != 3 || slices.Contains(got, dead) {
			t.Fatalf("pool1's gateways %v after %d died", got, dead)
		}
	})
}

// inflate is a gateway's lie: its pool's counts and sums ×10, its top-k's
// first row dropped.
func inflate(p *run.Partial) {
	for _, g := range p.Groups {
		for i := range g.Means {
			g.Means[i] *= 10
		}
	}
	if len(p.Top) > 0 {
		p.Top = p.Top[1:]
	}
}
