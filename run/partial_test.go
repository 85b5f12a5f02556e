package run

import (
	"math"
	"testing"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
)

// poolPartial is a pool's partial as its converged asker would hold it
// (ExactPartial), as a gateway sends it.
func poolPartial(t *testing.T, p *query.Plan, recs []query.Record) *Partial {
	t.Helper()
	part, err := ExactPartial(p, recs)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := part.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodePartial(enc)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func sameRows(a, b *answer.Answer, tol float64) bool {
	if len(a.Rows) != len(b.Rows) {
		return false
	}
	for i := range a.Rows {
		for j, x := range a.Rows[i] {
			y := b.Rows[i][j]
			if x.Kind != y.Kind || x.Str != y.Str || x.Bool != y.Bool || math.Abs(x.Num-y.Num) > tol*max(1, math.Abs(y.Num)) {
				return false
			}
		}
	}
	return true
}

// TestMergeIsTheUnion: the pools' partials merged are the answer over all
// their members — exactly for counts, sums, extremes, distinct counts and
// rankings, and as one pool of everyone would estimate it for quantiles
// (the histograms add up).
func TestMergeIsTheUnion(t *testing.T) {
	recs, _ := synthetic(7, 300)
	pools := [][]query.Record{recs[:100], recs[100:220], recs[220:221], recs[221:]}
	for _, src := range []string{
		"SELECT COUNT(*) FROM peers",
		"SELECT COUNT(*), SUM(mem_free), AVG(cpu_load) FROM peers WHERE cpu_cores >= 4",
		"SELECT MIN(mem_free), MAX(cpu_cores), MIN(region), MAX(node) FROM peers",
		"SELECT COUNT(DISTINCT region), COUNT(DISTINCT os) FROM peers",
		"SELECT region, COUNT(*), AVG(mem_free), MAX(cpu_cores) FROM peers GROUP BY region",
		"SELECT node, COUNT(*), SUM(mem_free) FROM peers GROUP BY node", // 300 groups: past a peer's MaxGroups
		"SELECT MEDIAN(mem_free), PERCENTILE(cpu_load, 0.9) FROM peers",
		"SELECT AVG(mem_free) TRIM 5% FROM peers",
		"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 20",
		"SELECT node, cpu_cores FROM peers WHERE class = 'phone' ORDER BY cpu_cores, node LIMIT 7",
	} {
		t.Run(src, func(t *testing.T) {
			p := mustCompile(t, src)
			var parts []*Partial
			for _, pool := range pools {
				parts = append(parts, poolPartial(t, p, pool))
			}
			got, err := Merge(p, parts)
			if err != nil {
				t.Fatal(err)
			}
			one, err := Merge(p, []*Partial{poolPartial(t, p, recs)})
			if err != nil {
				t.Fatal(err)
			}
			if !sameRows(got, one, 1e-9) {
				t.Fatalf("merged\n%v\none pool of all\n%v", got.Text(), one.Text())
			}
			if !sameRows(got, query.Exact(p, recs), 1e-9) && !Sketched(p) {
				t.Fatalf("merged\n%v\nexact\n%v", got.Text(), query.Exact(p, recs).Text())
			}
			if ProtocolOf(p.Kind) == TopK && len(got.Nodes) != len(query.Exact(p, recs).Nodes) {
				t.Fatalf("%d nodes, want %d", len(got.Nodes), len(query.Exact(p, recs).Nodes))
			}
		})
	}
}

// TestMergeRefusesMisfits: a partial from the network whose shape is not
// the plan's is refused, never merged.
func TestMergeRefusesMisfits(t *testing.T) {
	recs, _ := synthetic(3, 40)
	agg := mustCompile(t, "SELECT COUNT(*), MIN(mem_free), COUNT(DISTINCT region) FROM peers")
	top := mustCompile(t, "SELECT node FROM peers ORDER BY mem_free DESC LIMIT 5")
	good := func(p *query.Plan) *Partial { return poolPartial(t, p, recs) }
	for _, c := range []struct {
		name string
		plan *query.Plan
		bend func(*Partial)
	}{
		{"negative members", agg, func(p *Partial) { p.Peers = -1 }},
		{"a component missing", agg, func(p *Partial) { p.Groups[0].Means = p.Groups[0].Means[:2] }},
		{"NaN", agg, func(p *Partial) { p.Groups[0].Means[0] = math.NaN() }},
		{"infinite", agg, func(p *Partial) { p.Groups[0].Means[0] = math.Inf(1) }},
		{"a group twice", agg, func(p *Partial) { p.Groups = append(p.Groups, p.Groups[0]) }},
		{"short registers", agg, func(p *Partial) { p.Groups[0].Registers[2] = p.Groups[0].Registers[2][:5] }},
		{"a string extreme for a number", agg, func(p *Partial) { p.Groups[0].Ext[1].IsStr = true }},
		{"rows in an aggregate", agg, func(p *Partial) { p.Top = []PartialEntry{{Node: "x"}} }},
		{"more rows than k", top, func(p *Partial) { p.Top = append(p.Top, PartialEntry{Node: "zzz", Key: []byte{0xff}}) }},
		{"a name twice", top, func(p *Partial) { p.Top[1] = p.Top[0] }},
		{"out of order", top, func(p *Partial) { p.Top[0], p.Top[1] = p.Top[1], p.Top[0] }},
		{"no name", top, func(p *Partial) { p.Top[0].Node = "" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			part := good(c.plan)
			if _, err := Merge(c.plan, []*Partial{part}); err != nil {
				t.Fatalf("the honest partial: %v", err)
			}
			c.bend(part)
			if _, err := Merge(c.plan, []*Partial{good(c.plan), part}); err == nil {
				t.Fatal("merged a misfit")
			}
		})
	}
}

func FuzzDecodePartial(f *testing.F) {
	recs, _ := synthetic(5, 30)
	for _, src := range []string{"SELECT region, COUNT(*), MIN(node), MEDIAN(mem_free), COUNT(DISTINCT os) FROM peers GROUP BY region",
		"SELECT node FROM peers ORDER BY mem_free DESC LIMIT 5"} {
		p, err := query.CompileText(src, query.DefaultCatalog(), query.DefaultConfig())
		if err != nil {
			f.Fatal(err)
		}
		var part *Partial
		if ProtocolOf(p.Kind) == TopK {
			part = &Partial{Peers: 3, Top: []PartialEntry{{Node: "a", Key: []byte{1}, Row: []byte{2}}}}
		} else {
			var err error
			if part, err = ExactPartial(p, recs); err != nil {
				f.Fatal(err)
			}
		}
		enc, err := part.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	plan, err := query.CompileText("SELECT region, COUNT(*), MIN(node), MEDIAN(mem_free), COUNT(DISTINCT os) FROM peers GROUP BY region", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePartial(b)
		if err != nil {
			return
		}
		_, _ = Merge(plan, []*Partial{p}) // refused or merged: never a panic
	})
}
