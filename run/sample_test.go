package run

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
)

// sampleStatements are the statements the false-alarm checks run: one of
// each kind of component the sample checks.
var sampleStatements = []string{
	"SELECT AVG(cpu_load) FROM peers",
	"SELECT SUM(mem_free), COUNT(*) FROM peers",
	"SELECT COUNT(*) FROM peers WHERE mem_free >= 8GB",
	"SELECT region, AVG(disk_free), STDDEV(uptime) FROM peers GROUP BY region",
	"SELECT MEDIAN(cpu_load), PERCENTILE(mem_free, 0.9) FROM peers",
	"SELECT AVG(cpu_load) TRIM 1%, AVG(mem_free) TRIM 10% FROM peers",
	"SELECT STDDEV(cpu_load), VARIANCE(mem_free), STDDEV(disk_free), VARIANCE(cpu_cores) FROM peers WHERE cpu_cores >= 2",
}

// exactGroups is what converged gossip reads as groups (GroupResults),
// computed exactly from every record, each additive total then moved by
// up to ±err of itself, as gossip's own error.
func exactGroups(t *testing.T, p *query.Plan, recs []query.Record, err float64, r *rand.Rand) []query.GroupResult {
	t.Helper()
	type acc struct {
		keys  []query.Value
		tot   []float64
		quant [][]float64
	}
	groups := map[string]*acc{}
	for _, rec := range recs {
		c := Contribution(p, rec)
		if !c.Match {
			continue
		}
		g := groups[string(c.Group)]
		if g == nil {
			g = &acc{tot: make([]float64, len(p.Components)), quant: make([][]float64, len(p.Components))}
			if len(p.GroupBy) > 0 {
				ks, err := query.DecodeRow(c.Group)
				if err != nil {
					t.Fatal(err)
				}
				g.keys = ks
			}
			groups[string(c.Group)] = g
		}
		for j, in := range c.Inputs {
			if !in.Present {
				continue
			}
			g.tot[j] += in.Num
			g.quant[j] = append(g.quant[j], in.Num)
		}
	}
	var out []query.GroupResult
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		g := groups[key]
		gr := query.GroupResult{Keys: g.keys, Comps: make([]query.CompResult, len(p.Components))}
		for j, comp := range p.Components {
			gr.Comps[j].Total = g.tot[j] * (1 + err*(2*r.Float64()-1))
			if comp.Kind == query.CompQuantile {
				gr.Comps[j].Total = float64(len(g.quant[j])) * (1 + err*(2*r.Float64()-1))
			}
			if (comp.Kind == query.CompMin || comp.Kind == query.CompMax) && len(g.quant[j]) > 0 {
				x := slices.Max(g.quant[j])
				if comp.Kind == query.CompMin {
					x = slices.Min(g.quant[j])
				}
				gr.Comps[j].Ext, gr.Comps[j].Has = query.Num(comp.Arg.Kind, x), true
			}
			if comp.Kind == query.CompQuantile {
				sorted := slices.Sorted(slices.Values(g.quant[j]))
				gr.Comps[j].Quantile = func(q float64) (float64, bool) {
					x, ok := nearestRank(sorted, q)
					return x * (1 + err*(2*r.Float64()-1)), ok
				}
				gr.Comps[j].Trimmed = func(q float64) (float64, bool) {
					// The histogram's: each value within HistAlpha.
					x, ok := query.TrimmedMean(sorted, q)
					return x * (1 + (err+aggregate.HistAlpha)*(2*r.Float64()-1)), ok
				}
			}
		}
		out = append(out, gr)
	}
	return out
}

func synthetic(seed uint64, n int) ([]query.Record, []string) {
	recs := make([]query.Record, n)
	names := make([]string, n)
	for i := range recs {
		recs[i] = query.Synthetic(seed, i)
		names[i] = recs[i]["node"].Str
	}
	return recs, names
}

// checkEscalating is the check as the runtime's asker makes it
// (SampleCheck.Grow, without standing in): the first c.Size sampled
// records, and where they leave a doubt, the next c.More with them; where
// a sum is contested from above, more until it is not or the fallback's
// Max. escalated: more than the first were asked.
func checkEscalating(p *query.Plan, flow []query.GroupResult, recs []query.Record, names []string, qid []byte, c SampleCheck) (SampleVerdict, bool) {
	n := float64(len(recs))
	v := CheckSample(p, flow, sampleRecords(recs, names, qid, c.Size), n, c)
	v, _ = c.Grow(p, v, min(c.Size, len(names)), len(names), true, true, false, func(asked, more int, _ bool) (SampleVerdict, bool) {
		return CheckSample(p, flow, sampleRecords(recs, names, qid, asked+more), n, c), true
	})
	return v, v.Sampled > c.Size
}

// sampleRecords are the records of query qid's sample, as the asker would
// receive them.
func sampleRecords(recs []query.Record, names []string, qid []byte, k int) []query.Record {
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	var out []query.Record
	for _, n := range SampleOf(qid, names, k) {
		out = append(out, recs[index[n]])
	}
	return out
}

func compile(t *testing.T, text string) *query.Plan {
	t.Helper()
	p, err := query.CompileText(text, query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSampleNoFalseAlarms: honest clusters of several sizes, answers off
// by up to their accuracy, five statements: the check never contests.
// (The simulator's TestSampleHonestClusters runs the engine itself.)
func TestSampleNoFalseAlarms(t *testing.T) {
	c := DefaultSampleCheck()
	seeds := 30
	if s, err := strconv.Atoi(os.Getenv("PEERQ_SAMPLE_SEEDS")); err == nil && s > 0 {
		seeds = s // a longer run for BENCHMARKS.md
	} else if testing.Short() {
		seeds = 10
	}
	checks, escalations, tails := 0, 0, 0
	defer func() {
		t.Logf("%d checks, %d of them asked %d more members, %d of those more still (a sum above the sample's interval)", checks, escalations, c.More, tails)
	}()
	for _, n := range []int{40, 1000, 10000} {
		for seed := range uint64(seeds) {
			recs, names := synthetic(seed+1, n)
			r := rand.New(rand.NewPCG(seed, 7))
			for _, text := range sampleStatements {
				p := compile(t, text)
				flow := exactGroups(t, p, recs, p.Accuracy, r)
				qid := fmt.Appendf(nil, "q-%d-%d", n, seed)
				v, escalated := checkEscalating(p, flow, recs, names, qid, c)
				if v.Contested {
					t.Errorf("n=%d seed %d %q: contested an honest answer: %s", n, seed, text, v.Reason)
				}
				if escalated {
					escalations++
				}
				if v.Sampled > min(c.Size+c.More, n) {
					tails++
				}
				checks++
				if !escalated && v.Sampled != min(c.Size, n) || escalated && v.Sampled < min(c.Size+c.More, n) || v.Answer == nil || len(v.Answer.Rows) == 0 {
					t.Errorf("n=%d seed %d %q: sampled %d, answer %v", n, seed, text, v.Sampled, v.Answer)
				}
			}
		}
	}
}

// A sum above the first samples' interval in an honest cluster, a few
// large values they did not draw (seeds TestSampleNoFalseAlarms found at
// 100 seeds: a region's free disk and uptime at 10^4 members), is not
// contested: the sample grows until it is not (SampleVerdict.Tail). The
// same sums bent twice over stay contested once the group holds enough
// sampled values to see its tail's class.
func TestSampleTailGrows(t *testing.T) {
	c := DefaultSampleCheck()
	const n = 10000
	grouped := slices.Index(sampleStatements, "SELECT region, AVG(disk_free), STDDEV(uptime) FROM peers GROUP BY region")
	for _, seed := range []uint64{67, 98} {
		recs, names := synthetic(seed+1, n)
		r := rand.New(rand.NewPCG(seed, 7))
		var p *query.Plan
		var flow []query.GroupResult
		for _, text := range sampleStatements[:grouped+1] { // the flows as the sweep drew them
			p = compile(t, text)
			flow = exactGroups(t, p, recs, p.Accuracy, r)
		}
		qid := fmt.Appendf(nil, "q-%d-%d", n, seed)
		first := CheckSample(p, flow, sampleRecords(recs, names, qid, c.Size+c.More), n, c)
		if !first.Contested || !first.Tail {
			t.Fatalf("seed %d: 512 sampled members agree (%s): the case no longer tests the tail", seed, first.Reason)
		}
		v, _ := checkEscalating(p, flow, recs, names, qid, c)
		if v.Contested || v.Sampled <= c.Size+c.More {
			t.Errorf("seed %d: contested %v (%s) with %d sampled", seed, v.Contested, v.Reason, v.Sampled)
		}
		for i := range flow {
			for j, comp := range p.Components {
				if comp.Kind == query.CompSum {
					flow[i].Comps[j].Total *= 2
				}
			}
		}
		if v, _ := checkEscalating(p, flow, recs, names, qid, c); !v.Contested || v.Sampled <= c.Size+c.More {
			t.Errorf("seed %d: sums ×2: contested %v (%s) with %d sampled, want contested past %d", seed, v.Contested, v.Reason, v.Sampled, c.Size+c.More)
		}
	}
}

// Growing the sample for a sum's tail never lets a lie through that the
// sample without it contests: 1% of 10^4 members inflating their own
// attributes ×1000 (the gossip, exact, counts their claims), sums of a
// WHERE that keeps much of the cluster, 20 seeds each. (Growing every sum
// contested from above by fewer than 48 sampled values let 5 of 11 and 2
// of 17 through: the larger sample held the liars, who sign their own
// claims, and agreed with them.)
func TestSampleTailKeepsInflators(t *testing.T) {
	const n = 10000
	seeds := uint64(20)
	if testing.Short() {
		seeds = 5
	}
	for _, text := range []string{
		"SELECT SUM(mem_free) FROM peers WHERE cpu_cores >= 8",
		"SELECT SUM(mem_free) FROM peers WHERE class <> 'phone'",
		"SELECT SUM(mem_free) FROM peers",
	} {
		p := compile(t, text)
		kept := 0
		for seed := uint64(1); seed <= seeds; seed++ {
			recs, names := synthetic(seed, n)
			r := rand.New(rand.NewPCG(seed, 99))
			for i := range recs {
				if r.Float64() >= 0.01 {
					continue
				}
				recs[i] = maps.Clone(recs[i])
				for name, v := range recs[i] {
					if a, ok := query.DefaultCatalog().Lookup(name); ok && v.Kind.Numeric() && a.Max > 0 {
						recs[i][name] = query.Num(v.Kind, math.Min(1000*v.Num, a.Max))
					}
				}
			}
			flow := exactGroups(t, p, recs, p.Accuracy, r)
			qid := fmt.Appendf(nil, "q-%d", seed)
			c := DefaultSampleCheck()
			grown, _ := checkEscalating(p, flow, recs, names, qid, c)
			c.Fallback.Max = 0 // no growth
			plain, _ := checkEscalating(p, flow, recs, names, qid, c)
			if plain.Contested && !grown.Contested {
				t.Errorf("%s, seed %d: contested with %d sampled (%s), let through with %d", text, seed, plain.Sampled, plain.Reason, grown.Sampled)
			}
			if grown.Contested {
				kept++
			}
		}
		if kept == 0 {
			t.Errorf("%s: no seed contested: the liars bent nothing the check sees", text)
		}
	}
}

// A variance made 0 (every sum and count true) leaves the first 64 in
// doubt and is contested by the 512 (SampleCheck.Escalate); the same
// answer untouched is not.
func TestSampleVarianceEscalates(t *testing.T) {
	const n = 10000
	recs, names := synthetic(5, n)
	c := DefaultSampleCheck()
	for _, text := range []string{"SELECT STDDEV(cpu_load) FROM peers", "SELECT VARIANCE(cpu_cores) FROM peers"} {
		p := compile(t, text)
		qid := []byte("q-" + text)
		flow := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))
		if v, _ := checkEscalating(p, flow, recs, names, qid, c); v.Contested {
			t.Errorf("%s, untouched: contested: %s", text, v.Reason)
		}
		a := p.Aggs[0]
		g := flow[0].Comps
		S, C := g[a.Comps[0]].Total, g[a.Comps[2]].Total
		g[a.Comps[1]].Total = S * S / C // a variance of 0
		v, escalated := checkEscalating(p, flow, recs, names, qid, c)
		if !v.Contested || !escalated || !strings.Contains(v.Reason, a.Text+"'s variance: gossip says 0, an independent sample of") {
			t.Errorf("%s, variance 0: contested %v (%s), escalated %v", text, v.Contested, v.Reason, escalated)
		}
	}
}

// How far below the honest variance made-up squares can put it unseen,
// the sample grown as the runtime's (checkEscalating): each attribute's
// variance set to f times its own, 10^4 members, seeds. The figures go to
// BENCHMARKS.md (PEERQ_SAMPLE_SEEDS=10 go test ./run -run
// TestSampleVarianceFloor -v); what is held here: the untouched answers
// are never contested, a variance of 0 is contested for the attributes
// whose spread 64 values bound (cpu_load, cpu_cores, rtt) in every seed,
// and a variance contested at some f stays contested below it in the
// same seed.
func TestSampleVarianceFloor(t *testing.T) {
	const n = 10000
	seeds := uint64(3)
	if s, err := strconv.Atoi(os.Getenv("PEERQ_SAMPLE_SEEDS")); err == nil && s > 0 {
		seeds = uint64(s)
	}
	c := DefaultSampleCheck()
	fs := []float64{1, 0.8, 0.6, 0.4, 0.2, 0}
	for _, attr := range []string{"cpu_load", "cpu_cores", "rtt", "reliability", "mem_free", "disk_free", "uptime"} {
		p := compile(t, "SELECT STDDEV("+attr+") FROM peers")
		a := p.Aggs[0]
		caught := make([]int, len(fs))
		for seed := uint64(1); seed <= seeds; seed++ {
			recs, names := synthetic(seed, n)
			flow := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))
			g := flow[0].Comps
			S, Q, C := g[a.Comps[0]].Total, g[a.Comps[1]].Total, g[a.Comps[2]].Total
			before := false
			for i, f := range fs {
				g[a.Comps[1]].Total = S*S/C + f*(Q-S*S/C)
				v, _ := checkEscalating(p, flow, recs, names, fmt.Appendf(nil, "q-%d", seed), c)
				switch {
				case f == 1 && v.Contested:
					t.Errorf("%s, seed %d: the honest answer contested: %s", attr, seed, v.Reason)
				case f == 0 && !v.Contested && (attr == "cpu_load" || attr == "cpu_cores" || attr == "rtt"):
					t.Errorf("%s, seed %d: a variance of 0 not contested", attr, seed)
				case before && !v.Contested:
					t.Errorf("%s, seed %d: contested above ×%g, not at it", attr, seed, f)
				}
				before = v.Contested
				if v.Contested {
					caught[i]++
				}
			}
		}
		line := ""
		for i, f := range fs {
			line += fmt.Sprintf(" ×%g %d/%d", f, caught[i], seeds)
		}
		t.Logf("STDDEV(%s): contested with its variance%s", attr, line)
	}
}

// A STDDEV is given once gossip counts 1.5 values (query's
// VarianceMinCount), not 2: a group of two members whose count gossip
// puts a little low still has its variance checked. Mutation: skipping
// counts under 2, as the check did, leaves its variance made negative
// uncontested (query gives it as 0).
func TestSampleVarianceOfTwo(t *testing.T) {
	p := mustCompile(t, "SELECT STDDEV(cpu_load) FROM peers")
	recs, _ := synthetic(5, 2)
	a := p.Aggs[0]
	for _, tc := range []struct {
		name    string
		count   float64
		squares float64 // Q as a share of S²/C: under 1 is a variance below 0
		want    string
	}{
		{"two, honest", 2, -1, ""},
		{"counted 1.8, honest", 1.8, -1, ""},
		{"counted 1.8, made negative", 1.8, 0.5, "less than any values can have"},
		{"two, made negative", 2, 0.5, "less than any values can have"},
	} {
		g := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))[0]
		S, C := g.Comps[a.Comps[0]].Total, g.Comps[a.Comps[2]].Total
		g.Comps[a.Comps[2]].Total = tc.count
		g.Comps[a.Comps[0]].Total = S * tc.count / C
		if tc.squares >= 0 {
			S := g.Comps[a.Comps[0]].Total
			g.Comps[a.Comps[1]].Total = tc.squares * S * S / tc.count
		}
		why, _ := DefaultSampleCheck().checkVariances(p, nil, "", g, 0)
		if tc.want == "" && why != "" || !strings.Contains(why, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, why, tc.want)
		}
		if ans := query.Finalize(p, []query.GroupResult{g}); len(ans.Rows) != 1 || ans.Rows[0][0].IsNull() {
			t.Errorf("%s: query gives no STDDEV at a count of %v", tc.name, tc.count)
		}
	}
}

// TestSampleCatchesLies: the lies the check is for, each contested with a
// reason that names the aggregate; the same answer untouched is not.
func TestSampleCatchesLies(t *testing.T) {
	var p *query.Plan // the case's, for squares
	// spread sets each variance to f times its own, its sum of squares
	// moved alone (Q = S²/C + f·(Q − S²/C)).
	spread := func(f float64) func([]query.GroupResult) {
		return func(gs []query.GroupResult) {
			for _, a := range p.Aggs {
				if len(a.Comps) == 3 {
					c := gs[0].Comps
					S, C := c[a.Comps[0]].Total, c[a.Comps[2]].Total
					c[a.Comps[1]].Total = S*S/C + f*(c[a.Comps[1]].Total-S*S/C)
				}
			}
		}
	}
	// squares moves the sums of squares alone, f times.
	squares := func(f float64) func([]query.GroupResult) {
		return func(gs []query.GroupResult) {
			for j, comp := range p.Components {
				if comp.Kind == query.CompSumSq {
					gs[0].Comps[j].Total *= f
				}
			}
		}
	}
	const n = 5000
	recs, names := synthetic(3, n)
	qid := []byte("q-lies")
	c := DefaultSampleCheck()
	scale := func(f float64) func([]query.GroupResult) {
		return func(gs []query.GroupResult) {
			for i := range gs {
				for j := range gs[i].Comps {
					gs[i].Comps[j].Total *= f
				}
			}
		}
	}
	cases := []struct {
		name, text string
		// bend moves the gossip answer as lying flows would; inflate
		// rewrites one sampled record as a liar about itself would.
		bend    func([]query.GroupResult)
		inflate func(query.Record)
		want    string
	}{
		{name: "honest", text: "SELECT AVG(cpu_load) FROM peers"},
		{name: "sum ×5", text: "SELECT SUM(mem_free) FROM peers", bend: func(gs []query.GroupResult) { gs[0].Comps[1].Total *= 5 }, want: "SUM(mem_free): gossip says"},
		{name: "count ×0.3", text: "SELECT COUNT(*) FROM peers WHERE cpu_cores >= 8", bend: scale(0.3), want: "gossip says"},
		{name: "count ×1.2", text: "SELECT COUNT(*) FROM peers", bend: scale(1.2), want: "gossip says"},
		{name: "avg's sum ×3", text: "SELECT AVG(cpu_load) FROM peers", bend: func(gs []query.GroupResult) { gs[0].Comps[1].Total *= 3 }, want: "AVG(cpu_load)'s sum: gossip says"},
		{name: "one group", text: "SELECT arch, SUM(cpu_cores) FROM peers GROUP BY arch",
			bend: func(gs []query.GroupResult) { gs[0].Comps[1].Total *= 4 }, want: "group (amd64) SUM(cpu_cores)"},
		{name: "quantile", text: "SELECT MEDIAN(mem_free) FROM peers", bend: func(gs []query.GroupResult) {
			q := gs[0].Comps[1].Quantile
			gs[0].Comps[1].Quantile = func(x float64) (float64, bool) { v, ok := q(x); return v * 20, ok }
		}, want: "MEDIAN(mem_free): gossip says"},
		{name: "inflated record", text: "SELECT AVG(cpu_load) FROM peers", inflate: func(r query.Record) {
			r["cpu_load"] = query.Num(query.KindRatio, 1024)
		}, want: "more than any machine reports (16)"},
		{name: "inflated record, in an expression", text: "SELECT SUM(cpu_cores * 2) FROM peers", inflate: func(r query.Record) {
			r["cpu_cores"] = query.Num(query.KindCount, 100000)
		}, want: "times the next largest"},
		{name: "a maximum no machine reports", text: "SELECT MAX(cpu_cores), MIN(cpu_load) FROM peers", bend: func(gs []query.GroupResult) {
			for j := range gs[0].Comps {
				if gs[0].Comps[j].Has && gs[0].Comps[j].Ext.Kind == query.KindCount {
					gs[0].Comps[j].Ext = query.Num(query.KindCount, 1<<20)
				}
			}
		}, want: "MAX(cpu_cores) is 1048576, more than any machine reports (1024): one member's claim"},
		{name: "honest extremes", text: "SELECT MAX(cpu_cores), MIN(cpu_load), MAX(mem_free) FROM peers"},
		{name: "trimmed, a liar sampled", text: "SELECT AVG(cpu_load) TRIM 1% FROM peers", inflate: func(r query.Record) {
			r["cpu_load"] = query.Num(query.KindRatio, 1024)
		}},
		{name: "trimmed mean ×3", text: "SELECT AVG(cpu_load) TRIM 1% FROM peers", bend: func(gs []query.GroupResult) {
			tr := gs[0].Comps[1].Trimmed
			gs[0].Comps[1].Trimmed = func(x float64) (float64, bool) { v, ok := tr(x); return v * 3, ok }
		}, want: "AVG(cpu_load) TRIM 1%: gossip's mean without 4.688% at each end"},
		{name: "trimmed, liars beyond the trim", text: "SELECT AVG(cpu_load) TRIM 1% FROM peers", bend: func(gs []query.GroupResult) {
			q := gs[0].Comps[1].Quantile
			gs[0].Comps[1].Quantile = func(x float64) (float64, bool) {
				if x >= 0.985 {
					return 1024, true // 1.5% claim the catalog's bound
				}
				return q(x)
			}
		}, want: "AVG(cpu_load) TRIM 1%: more than 1% of the values are above 16"},
		{name: "trimmed mean's histogram", text: "SELECT AVG(mem_free) TRIM 5% FROM peers", bend: func(gs []query.GroupResult) {
			q := gs[0].Comps[1].Quantile
			gs[0].Comps[1].Quantile = func(x float64) (float64, bool) { v, ok := q(x); return v * 20, ok }
		}, want: "AVG(mem_free) TRIM 5%'s 0.25-quantile: gossip says"},
		{name: "variance made negative", text: "SELECT STDDEV(cpu_load) FROM peers", bend: squares(0.3),
			want: "STDDEV(cpu_load)'s variance: gossip says -"},
		{name: "variance made negative, few sampled", text: "SELECT STDDEV(cpu_load) FROM peers WHERE cpu_cores >= 64", bend: squares(0.3),
			want: "STDDEV(cpu_load)'s variance: gossip says -"},
		{name: "a skewed variance made 0", text: "SELECT STDDEV(mem_free) FROM peers", bend: spread(0),
			want: "STDDEV(mem_free)'s variance: gossip says 0, less than the 64 sampled values alone make about its mean"},
		// What SECURITY.md says is not seen at 64 sampled: a skewed
		// attribute's variance lowered, not to 0.
		{name: "variance halved", text: "SELECT STDDEV(cpu_load) FROM peers", bend: spread(0.5)},
		{name: "squares no machines could make", text: "SELECT VARIANCE(cpu_load) FROM peers", bend: squares(100),
			want: "VARIANCE(cpu_load)'s sum of squares: gossip says"},
		// What EXPLAIN says is not seen: squares raised within what
		// machines report (the sample cannot rule out a tail it missed).
		{name: "squares ×1.5", text: "SELECT STDDEV(cpu_load) FROM peers", bend: squares(1.5)},
		{name: "honest variances", text: "SELECT STDDEV(cpu_load), VARIANCE(mem_free), STDDEV(uptime) FROM peers"},
		{name: "a large honest record", text: "SELECT AVG(cpu_load) FROM peers", inflate: func(r query.Record) {
			r["cpu_load"] = query.Num(query.KindRatio, 4) // the most a synthetic machine has
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p = compile(t, tc.text)
			flow := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))
			if tc.bend != nil {
				tc.bend(flow)
			}
			sample := sampleRecords(recs, names, qid, c.Size)
			if tc.inflate != nil {
				sample[7] = maps.Clone(sample[7])
				tc.inflate(sample[7])
			}
			v := CheckSample(p, flow, sample, n, c)
			if v.Contested != (tc.want != "") || !strings.Contains(v.Reason, tc.want) {
				t.Fatalf("contested %v (%s), want %v with %q", v.Contested, v.Reason, tc.want != "", tc.want)
			}
		})
	}
}

// TestSampleOf: the sample is the k lowest ranks, whatever the members'
// order, and another query's is another sample.
func TestSampleOf(t *testing.T) {
	_, names := synthetic(1, 1000)
	a := SampleOf([]byte("q1"), names, 64)
	rev := slices.Clone(names)
	slices.Reverse(rev)
	if b := SampleOf([]byte("q1"), rev, 64); !slices.Equal(a, b) {
		t.Fatal("the sample depends on the members' order")
	}
	for i := 1; i < len(a); i++ {
		if SampleRank([]byte("q1"), a[i-1]) > SampleRank([]byte("q1"), a[i]) {
			t.Fatal("the sample is not in rank order")
		}
	}
	common := 0
	for _, x := range SampleOf([]byte("q2"), names, 64) {
		if slices.Contains(a, x) {
			common++
		}
	}
	if common > 16 {
		t.Fatalf("two queries share %d of 64 sampled members: the rank does not depend on the query", common)
	}
	if got := SampleOf([]byte("q1"), names[:10], 64); len(got) != 10 {
		t.Fatalf("sample of 10 members has %d", len(got))
	}
}

// TestSampleSmallClusterOneWord: where the sample holds every member, a
// sum that one member's claim makes (100× the next largest, 90% of the
// total) is contested, as the netns run's liar among 8 agents claiming
// 20 TiB of free memory; the honest cluster is not.
func TestSampleSmallClusterOneWord(t *testing.T) {
	const n = 8
	recs, names := synthetic(11, n)
	p := compile(t, "SELECT SUM(mem_free) FROM peers")
	c := DefaultSampleCheck()
	qid := []byte("q-small")
	if v := CheckSample(p, exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1))), sampleRecords(recs, names, qid, c.Size), n, c); v.Contested {
		t.Fatalf("honest cluster of %d contested: %s", n, v.Reason)
	}
	liar := maps.Clone(recs[5])
	liar["mem_free"] = query.Num(query.KindBytes, 1000*liar["mem_free"].Num)
	recs = append(slices.Clone(recs[:5]), append([]query.Record{liar}, recs[6:]...)...)
	v := CheckSample(p, exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1))), sampleRecords(recs, names, qid, c.Size), n, c)
	if !v.Contested || !strings.Contains(v.Reason, "the answer rests on its word") {
		t.Fatalf("a liar's ×1000 among %d: contested %v (%s)", n, v.Contested, v.Reason)
	}
}

// TestSampleEveryMemberHeldToAccuracy: where the sample holds every
// member the answer is about, its figure is exact, and a total off it by
// more than the statement's accuracy is contested — the blend an early
// crash leaves (TestCrashMidQuery: 74.96 against 76 at 8 peers); one
// within it is not. A sample of some members allows three accuracies
// beside its spread, as before.
func TestSampleEveryMemberHeldToAccuracy(t *testing.T) {
	p := compile(t, "SELECT COUNT(*), SUM(cpu_cores) FROM peers")
	c := DefaultSampleCheck()
	qid := []byte("q-every")
	for _, tc := range []struct {
		n         int
		off       float64 // the gossip's SUM is the exact one times 1+off
		contested bool
	}{
		{8, 0, false},
		{8, 0.009, false},
		{8, -0.009, false},
		{8, 0.013, true},
		{8, -0.014, true},
		{64, 0.011, true},
		{200, 0.013, false}, // 64 of 200: the sample's own spread, and 3%
		{200, -0.025, false},
	} {
		recs, names := synthetic(7, tc.n)
		flow := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))
		flow[0].Comps[1].Total *= 1 + tc.off
		v := CheckSample(p, flow, sampleRecords(recs, names, qid, c.Size), float64(tc.n), c)
		if v.Contested != tc.contested {
			t.Errorf("%d members, SUM off by %+.1f%%: contested %v, want %v (%s)", tc.n, 100*tc.off, v.Contested, tc.contested, v.Reason)
		}
		if v.Contested && tc.n <= c.Size && !strings.Contains(v.Reason, fmt.Sprintf("the records of all %d members", tc.n)) {
			t.Errorf("%d members: the reason does not say the sample is every member: %s", tc.n, v.Reason)
		}
	}
	// An AVG is a ratio of two totals, each within the accuracy: twice
	// it is allowed.
	p = compile(t, "SELECT AVG(cpu_cores) FROM peers WHERE mem_free >= 1GB")
	recs, names := synthetic(7, 8)
	for _, tc := range []struct {
		sum, count float64
		contested  bool
	}{{1.01, 0.99, false}, {1.012, 0.995, false}, {1.015, 0.99, true}, {0.985, 1.01, true}} {
		flow := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))
		avg := p.Aggs[0].Comps // its sum's component, then its count's
		flow[0].Comps[avg[0]].Total *= tc.sum
		flow[0].Comps[avg[1]].Total *= tc.count
		if v := CheckSample(p, flow, sampleRecords(recs, names, qid, c.Size), 8, c); v.Contested != tc.contested {
			t.Errorf("AVG's sum ×%v, count ×%v: contested %v, want %v (%s)", tc.sum, tc.count, v.Contested, tc.contested, v.Reason)
		}
	}
}

func TestImplausible(t *testing.T) {
	for _, c := range []struct {
		src  string
		rows [][]query.Value
		want string
	}{
		{"SELECT node, cpu_cores FROM peers ORDER BY cpu_cores DESC LIMIT 2",
			[][]query.Value{{query.Str("a8"), query.Num(query.KindCount, 2000)}, {query.Str("a1"), query.Num(query.KindCount, 2)}},
			"a8 claims cpu_cores 2000, more than any machine reports (1024)"},
		{"SELECT node, cpu_cores FROM peers ORDER BY cpu_cores DESC LIMIT 2",
			[][]query.Value{{query.Str("a8"), query.Num(query.KindCount, 1024)}, {query.Str("a1"), query.Num(query.KindCount, 2)}}, ""},
		{"SELECT node, cpu_cores * 2 AS c FROM peers ORDER BY c DESC LIMIT 1", // an expression: no Typical
			[][]query.Value{{query.Str("a8"), query.Num(query.KindCount, 1e6)}}, ""},
		{"SELECT COUNT(*) FROM peers", [][]query.Value{{query.Num(query.KindCount, 1e9)}}, ""}, // not a ranking
	} {
		p := compile(t, c.src)
		a := &answer.Answer{Rows: c.rows}
		for _, r := range c.rows {
			if r[0].Kind == query.KindString {
				a.Nodes = append(a.Nodes, r[0].Str)
			}
		}
		if got := Implausible(p, a); got != c.want {
			t.Errorf("%s: %q, want %q", c.src, got, c.want)
		}
	}
}

func TestOverclaimed(t *testing.T) {
	reads := compile(t, "SELECT COUNT(*) FROM peers WHERE reliability >= 0.99")
	bound := func(node string) (float64, bool) { return map[string]float64{"a": 0.5, "b": 1}[node], node != "c" }
	rec := func(node string, rel float64) query.Record {
		return query.Record{"node": query.Str(node), "reliability": query.Num(query.KindRatio, rel)}
	}
	for _, c := range []struct {
		name   string
		sample []query.Record
		want   bool
	}{
		{"within the bound", []query.Record{rec("a", 0.5), rec("b", 1)}, false},
		{"above what was seen", []query.Record{rec("b", 0.9), rec("a", 1)}, true},
		{"a member never seen is not judged", []query.Record{rec("c", 1)}, false},
		{"a sample that does not carry reliability", []query.Record{{"node": query.Str("a")}}, false},
	} {
		liar, why := overclaimed(reads, c.sample, bound)
		if got := liar != ""; got != c.want || got && (liar != "a" || !strings.Contains(why, "sampled member a claims reliability 100%")) {
			t.Errorf("%s: %q (%s), want %v", c.name, liar, why, c.want)
		}
	}
	if liar, _ := overclaimed(reads, []query.Record{rec("a", 1)}, nil); liar != "" {
		t.Error("judged without a bound")
	}
	if liar, _ := overclaimed(compile(t, "SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1"), []query.Record{rec("a", 1)}, bound); liar != "" {
		t.Error("judged a claim the statement does not read")
	}
}

// CheckLedgerSample: a member's ledger rows are one sampled unit, and
// members without rows count as zeros. Over 2,000 members, a quarter of
// them serving 1–6 leases of up to 30 hours, the sampled ledgers agree
// with the exact totals in 100 queries' samples (0 false alarms, grouped
// by owner and not); a total with 10× the hours (a member billing leases
// nobody granted, unsampled, with made-up flows) is contested in at least
// 95 (a sample with fewer than LedgerMinMatches members that served a
// lease checks nothing). A bend of less is what the sample's spread
// hides: the figures are logged (a member's receipts, where it is
// sampled, are what catches a smaller bill: node's
// TestLedgerLiarIsContested).
func TestCheckLedgerSample(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const n = 2000
	names := make([]string, n)
	byNode := map[string][]query.Record{}
	var all []query.Record
	for i := range names {
		names[i] = fmt.Sprintf("peer-%06d", i)
		if r.IntN(4) != 0 {
			continue
		}
		for range 1 + r.IntN(6) {
			rec := query.Record{"node": query.Str(names[i]), "owner": query.Str(fmt.Sprintf("owner-%d", r.IntN(3))),
				"subcloud": query.Str("s"), "peer_hours": query.Num(query.KindNumber, 30*r.Float64()), "receipted": query.Bool(true)}
			byNode[names[i]] = append(byNode[names[i]], rec)
			all = append(all, rec)
		}
	}
	c := DefaultSampleCheck()
	bent := func(groups []query.GroupResult, times float64) []query.GroupResult {
		out := slices.Clone(groups)
		for i := range out {
			out[i].Comps = slices.Clone(out[i].Comps)
			out[i].Comps[0].Total *= times
		}
		return out
	}
	for _, src := range []string{"SELECT SUM(peer_hours), COUNT(*) FROM leases", "SELECT owner, SUM(peer_hours), COUNT(*) FROM leases GROUP BY owner"} {
		p, err := query.CompileText(src, query.LeasesCatalog(), query.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		exact := exactGroups(t, p, all, 0, r)
		noisy := exactGroups(t, p, all, 0.01, r) // gossip's own error
		alarms := 0
		caught := map[float64]int{}
		for q := range 100 {
			qid := []byte(strconv.Itoa(q))
			picked := SampleOf(qid, names, c.Size)
			var rows []query.Record
			for _, m := range picked {
				rows = append(rows, byNode[m]...)
			}
			if v := CheckLedgerSample(p, noisy, rows, len(picked), n, c); v.Contested {
				alarms++
				t.Errorf("%s, query %d: a false alarm: %s", src, q, v.Reason)
			}
			for _, times := range []float64{1.5, 3, 10} {
				if CheckLedgerSample(p, bent(exact, times), rows, len(picked), n, c).Contested {
					caught[times]++
				}
			}
		}
		t.Logf("%s: false alarms %d/100; contested with the hours ×1.5 %d/100, ×3 %d/100, ×10 %d/100", src, alarms, caught[1.5], caught[3], caught[10])
		if caught[10] < 95 {
			t.Errorf("%s: 10× the hours contested in %d/100, want at least 95", src, caught[10])
		}
	}
}

// A COUNT bent by made-up flows less than the first sample's interval:
// over 10,000 members and 200 queries, a count bent by 15%, 25% and 40%
// of itself is contested by the first 64 sampled alone in few queries,
// and in most once a doubt asks 192 more (SampleCheck.Escalate); the
// honest answer (off by its accuracy) is never contested, and asks more
// in a few queries only. The figures are logged.
func TestSampleEscalation(t *testing.T) {
	recs, names := synthetic(3, 10000)
	p := compile(t, "SELECT COUNT(*) FROM peers WHERE mem_free >= 8GB")
	r := rand.New(rand.NewPCG(3, 3))
	c := DefaultSampleCheck()
	once := c
	once.More = 0
	const queries = 200
	honestEsc := 0
	for q := range queries {
		qid := fmt.Appendf(nil, "esc-%d", q)
		v, esc := checkEscalating(p, exactGroups(t, p, recs, p.Accuracy, r), recs, names, qid, c)
		if v.Contested {
			t.Errorf("query %d: an honest count contested: %s", q, v.Reason)
		}
		if esc {
			honestEsc++
		}
	}
	t.Logf("honest: %d/%d queries asked more", honestEsc, queries)
	if honestEsc > queries/5 {
		t.Errorf("honest answers asked more members in %d of %d queries: the escalation costs too much", honestEsc, queries)
	}
	for _, bend := range []float64{0.15, 0.25, 0.4} {
		caughtOnce, caught := 0, 0
		for q := range queries {
			qid := fmt.Appendf(nil, "esc-%d", q)
			flow := exactGroups(t, p, recs, 0, r)
			for i := range flow {
				flow[i].Comps = slices.Clone(flow[i].Comps)
				for j := range flow[i].Comps {
					flow[i].Comps[j].Total *= 1 - bend
				}
			}
			if v, _ := checkEscalating(p, flow, recs, names, qid, once); v.Contested {
				caughtOnce++
			}
			if v, _ := checkEscalating(p, flow, recs, names, qid, c); v.Contested {
				caught++
			}
		}
		t.Logf("COUNT bent by %.0f%%: contested by 64 alone %d/%d, with the escalation %d/%d", 100*bend, caughtOnce, queries, caught, queries)
		if caught < caughtOnce {
			t.Errorf("bent by %.0f%%: the escalation caught fewer (%d) than 64 alone (%d)", 100*bend, caught, caughtOnce)
		}
		if bend >= 0.4 && caught < queries*9/10 {
			t.Errorf("bent by %.0f%%: contested in %d/%d with the escalation, want 90%%", 100*bend, caught, queries)
		}
	}
}

// AskMore: a doubt, or an answer that did not converge (a flow liar keeps
// it moving), asks the next More members — unless the first sample
// already contested it, escalation is off, or there is no one else.
func TestAskMore(t *testing.T) {
	c := DefaultSampleCheck()
	off := c
	off.More = 0
	for _, tc := range []struct {
		name      string
		c         SampleCheck
		v         SampleVerdict
		converged bool
		members   int
		want      bool
	}{
		{"agrees, converged", c, SampleVerdict{}, true, 10000, false},
		{"doubt", c, SampleVerdict{Doubt: true}, true, 10000, true},
		{"not converged", c, SampleVerdict{}, false, 10000, true},
		{"contested already", c, SampleVerdict{Contested: true, Doubt: true}, false, 10000, false},
		{"escalation off", off, SampleVerdict{Doubt: true}, false, 10000, false},
		{"everyone sampled", c, SampleVerdict{Doubt: true}, false, c.Size, false},
	} {
		if got := tc.c.AskMore(tc.v, tc.converged, c.Size, tc.members); got != tc.want {
			t.Errorf("%s: AskMore %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A census (every member sampled) knows the total: a census of one
// member passes the total it holds and contests another, never NaN.
// Mutation: the standard error computed for a census of one is NaN, and
// the honest total is contested "± NaN".
func TestCheckTotalCensus(t *testing.T) {
	p, err := query.CompileText("SELECT SUM(mem_free) FROM peers", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultSampleCheck()
	for _, k := range []float64{1, 2, 5} {
		xs := make([]float64, int(k))
		for i := range xs {
			xs[i] = 2.464e10 / k
		}
		if why, _ := c.checkTotal(p, 1, query.CompSum, xs, k, k, 0, 2.464e10); why != "" {
			t.Errorf("a census of %v, the total it holds: %s", k, why)
		}
		if why, _ := c.checkTotal(p, 1, query.CompSum, xs, k, k, 0, 5e10); why == "" || strings.Contains(why, "NaN") {
			t.Errorf("a census of %v, twice the total it holds: %q, want contested with a number", k, why)
		}
	}
}
