package run

import (
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/peerq/peerq/query"
)

func TestRobust(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"SELECT AVG(cpu_load) TRIM 2% FROM peers", true},
		{"SELECT MEDIAN(cpu_load), PERCENTILE(mem_free, 0.9) FROM peers WHERE cpu_cores >= 4", true},
		{"SELECT AVG(cpu_load) TRIM 1%, AVG(mem_free) TRIM 10% FROM peers", true},
		{"SELECT AVG(cpu_load) FROM peers", false},
		{"SELECT MEDIAN(cpu_load), COUNT(*) FROM peers", false},
		{"SELECT region, MEDIAN(cpu_load) FROM peers GROUP BY region", true},
		{"SELECT node, cpu_load FROM peers ORDER BY cpu_load DESC LIMIT 5", false},
	} {
		if got := Robust(compile(t, tc.text)); got != tc.want {
			t.Errorf("Robust(%s) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// standIn is the asker's loop (node/sample.go finishSample): the first
// sample, then more until the fallback's precision or its Max; it returns
// the last verdict and how many members were asked.
func standIn(p *query.Plan, flow []query.GroupResult, recs []query.Record, names []string, qid []byte, c SampleCheck, lie func(query.Record) query.Record) (SampleVerdict, int) {
	sample := func(k int) []query.Record {
		out := sampleRecords(recs, names, qid, k)
		if lie != nil {
			for i := range out {
				out[i] = lie(out[i])
			}
		}
		return out
	}
	n := float64(len(recs))
	c.More = 0 // the gossip is taken as converged: only the fallback grows it
	return c.Grow(p, CheckSample(p, flow, sample(c.Size), n, c), c.Size, len(names), true, true, true,
		func(asked, more int, _ bool) (SampleVerdict, bool) {
			return CheckSample(p, flow, sample(asked+more), n, c), true
		})
}

// TestFallbackStandsIn: a robust statement whose gossip made-up flows
// bent is answered by the sample, grown until within its precision, and
// that answer is within its stated half-width of the exact one; where it
// cannot stand (a GROUP BY, an aggregate that is not robust, liars beyond
// the trim) the answer stays contested and no more members are asked.
func TestFallbackStandsIn(t *testing.T) {
	const n = 10000
	recs, names := synthetic(5, n)
	c := DefaultSampleCheck()
	bendTrimmed := func(f float64) func([]query.GroupResult) {
		return func(gs []query.GroupResult) {
			for i := range gs {
				for j := range gs[i].Comps {
					if tr := gs[i].Comps[j].Trimmed; tr != nil {
						gs[i].Comps[j].Trimmed = func(x float64) (float64, bool) { v, ok := tr(x); return v * f, ok }
					}
					if q := gs[i].Comps[j].Quantile; q != nil {
						gs[i].Comps[j].Quantile = func(x float64) (float64, bool) { v, ok := q(x); return v * f, ok }
					}
				}
			}
		}
	}
	bendMass := func(gs []query.GroupResult) {
		for i := range gs {
			for j := range gs[i].Comps {
				gs[i].Comps[j].Total *= 1.6
			}
		}
	}
	// aboveTypical makes every 40th record claim cpu_load 1024: 2.5% of
	// the sampled values, more than a 2% trim leaves out.
	aboveTypical := func(r query.Record) query.Record {
		if SampleRank([]byte("salt"), r["node"].Str)%40 != 0 {
			return r
		}
		r = maps.Clone(r)
		r["cpu_load"] = query.Num(query.KindRatio, 1024)
		return r
	}
	for _, tc := range []struct {
		name, text string
		bend       func([]query.GroupResult)
		lie        func(query.Record) query.Record
		stands     bool
		leftOut    string // a group the reason names as left out
		// grows: the sample grows to Max before it gives up (a group too
		// rare for the first samples may have enough values in more).
		grows bool
	}{
		{name: "trimmed mean ×3", text: "SELECT AVG(cpu_load) TRIM 2% FROM peers", bend: bendTrimmed(3), stands: true},
		{name: "trimmed mean's mass", text: "SELECT AVG(cpu_load) TRIM 5% FROM peers", bend: bendMass, stands: true},
		{name: "median ×20", text: "SELECT MEDIAN(mem_free) FROM peers", bend: bendTrimmed(20), stands: true},
		{name: "two robust, filtered", text: "SELECT AVG(cpu_load) TRIM 1%, PERCENTILE(reliability, 0.9) FROM peers WHERE cpu_cores >= 8", bend: bendMass, stands: true},
		{name: "grouped", text: "SELECT arch, MEDIAN(reliability) FROM peers GROUP BY arch", bend: bendTrimmed(20), stands: true},
		{name: "grouped, too wide", text: "SELECT arch, MEDIAN(mem_free) FROM peers GROUP BY arch", bend: bendTrimmed(20), grows: true},
		{name: "grouped, a group made up", text: "SELECT region, AVG(reliability) TRIM 5% FROM peers GROUP BY region", bend: func(gs []query.GroupResult) {
			for i := range gs {
				for j := range gs[i].Comps {
					gs[i].Comps[j].Total *= 3
				}
			}
			// The made-up group takes the first group's place; that group
			// stays in the sample's answer, which is checked against the
			// exact one.
			gs[0].Keys = []query.Value{query.Str("moon")}
		}, stands: true, leftOut: "group (moon)"},
		{name: "a tail percentile", text: "SELECT PERCENTILE(cpu_cores, 0.99) FROM peers", bend: bendMass, stands: true},
		{name: "grouped, a group too rare to stand on", text: "SELECT region, MEDIAN(mem_free) FROM peers WHERE cpu_cores >= 32 GROUP BY region", bend: func(gs []query.GroupResult) {
			for i := range gs {
				for j := range gs[i].Comps {
					gs[i].Comps[j].Total *= 20
				}
			}
		}, grows: true},
		{name: "not robust", text: "SELECT MEDIAN(mem_free), COUNT(*) FROM peers", bend: bendMass},
		{name: "liars beyond the trim", text: "SELECT AVG(cpu_load) TRIM 2% FROM peers", bend: bendTrimmed(3), lie: aboveTypical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, tc.text)
			flow := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))
			tc.bend(flow)
			qid := []byte("q-" + tc.name)
			v, asked := standIn(p, flow, recs, names, qid, c, tc.lie)
			if !v.Contested {
				t.Fatalf("the bent answer is not contested (asked %d)", asked)
			}
			width, why, ok := c.Fallback.StandIn(p, v)
			if ok != tc.stands {
				t.Fatalf("stands in %v, want %v (asked %d; %s)", ok, tc.stands, asked, v.Reason)
			}
			if !tc.stands {
				if tc.grows && asked != c.Fallback.Max {
					t.Fatalf("asked %d members, want %d before giving up", asked, c.Fallback.Max)
				}
				if !tc.grows && asked != c.Size+c.More && asked != c.Size {
					t.Fatalf("asked %d members for an answer the sample cannot stand in for", asked)
				}
				return
			}
			if asked > c.Fallback.Max || asked <= c.Size {
				t.Fatalf("asked %d, want more than %d and at most %d", asked, c.Size, c.Fallback.Max)
			}
			if asked < c.Fallback.Max && width > c.Fallback.Precision {
				t.Fatalf("stopped at %d members with a half-width of %.3f, above %.3f", asked, width, c.Fallback.Precision)
			}
			if !strings.Contains(why, "gossip was bent") || !strings.Contains(why, "sampled members' signed records") || !strings.Contains(why, tc.leftOut) {
				t.Fatalf("reason %q", why)
			}
			exact := query.Exact(p, recs)
			if len(v.Answer.Rows) != len(exact.Rows) {
				t.Fatalf("%d rows, exactly %d", len(v.Answer.Rows), len(exact.Rows))
			}
			for r, row := range v.Answer.Rows {
				for i, a := range p.Aggs {
					cell, want := row[len(p.GroupBy)+i], exact.Rows[r][len(p.GroupBy)+i]
					for k := range p.GroupBy {
						if row[k] != exact.Rows[r][k] {
							t.Fatalf("row %d is group %v, exactly %v", r, row[:len(p.GroupBy)], exact.Rows[r][:len(p.GroupBy)])
						}
					}
					// 1.5 half-widths at 95%: about 3 standard errors, for a
					// test of a dozen cells (at 1.96 one in twenty would
					// pass it by chance).
					if d := math.Abs(cell.Num-want.Num) / math.Abs(want.Num); d > 1.5*width {
						t.Errorf("%v %s: the sample says %g, exactly %g: %.3f off, beyond 1.5 times its half-width %.3f (asked %d)", row[:len(p.GroupBy)], a.Text, cell.Num, want.Num, d, width, asked)
					}
				}
			}
		})
	}
}

// TestFallbackMore: where the sample cannot reach the precision, it stops
// at Max or at every member; disabled (Max 0), it never asks more nor
// stands in.
func TestFallbackMore(t *testing.T) {
	recs, names := synthetic(9, 3000)
	p := compile(t, "SELECT MEDIAN(cpu_load) FROM peers")
	flow := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))
	for i := range flow[0].Comps {
		flow[0].Comps[i].Total *= 2
	}
	c := DefaultSampleCheck()
	v, asked := standIn(p, flow, recs, names, []byte("q-more"), c, nil)
	if asked != len(names) {
		t.Fatalf("asked %d of %d members: a median of cpu_load within 3%% needs them all here", asked, len(names))
	}
	if w, _, ok := c.Fallback.StandIn(p, v); !ok || w != 0 {
		t.Fatalf("every member sampled: stands in %v with half-width %g, want true and 0", ok, w)
	}
	// A sample wider than MaxWidth does not stand in: at 256 members at
	// most, the median's half-width is past 5%.
	c.Fallback.Max = 256
	v, asked = standIn(p, flow, recs, names, []byte("q-more"), c, nil)
	if w, _, ok := c.Fallback.StandIn(p, v); ok || asked != 256 || w != 0 {
		t.Fatalf("at most 256 sampled: stands in %v (half-width %g), asked %d; want contested at 256", ok, w, asked)
	}
	c.Fallback.MaxWidth = 1
	if w, _, ok := c.Fallback.StandIn(p, v); !ok || w <= 0.05 {
		t.Fatalf("with MaxWidth 1: stands in %v with half-width %g; want true, past 5%%", ok, w)
	}
	c.Fallback = Fallback{}
	v, asked = standIn(p, flow, recs, names, []byte("q-more"), c, nil)
	if _, _, ok := c.Fallback.StandIn(p, v); ok || asked != c.Size || !v.Contested {
		t.Fatalf("disabled: stands in %v, asked %d, contested %v", ok, asked, v.Contested)
	}
}

// A tail percentile stands in only with values enough beyond it: from
// the first 64 members, PERCENTILE(cpu_cores, 0.99) read 16–32 against 64
// claiming ±0% in 10 of 150 queries (a reviewer's probe), its interval
// clamped at the sample's end. Over 100 queries, a stand-in more than 1.5
// half-widths off is at most a rare one (about 3 standard errors).
func TestFallbackTailPercentile(t *testing.T) {
	const n = 10000
	recs, names := synthetic(5, n)
	c := DefaultSampleCheck()
	p := compile(t, "SELECT PERCENTILE(cpu_cores, 0.99) FROM peers")
	want := query.Exact(p, recs).Rows[0][0].Num
	wrong, stood := 0, 0
	for q := range 100 {
		flow := exactGroups(t, p, recs, 0, rand.New(rand.NewPCG(1, 1)))
		for j := range flow[0].Comps {
			flow[0].Comps[j].Total *= 1.6
		}
		v, asked := standIn(p, flow, recs, names, []byte{byte(q), 't'}, c, nil)
		width, _, ok := c.Fallback.StandIn(p, v)
		if !ok {
			continue
		}
		stood++
		if got := v.Answer.Rows[0][0].Num; math.Abs(got-want) > 1.5*width*want {
			wrong++
			t.Logf("query %d: %g against %g, ±%.3f, from %d members", q, got, want, width, asked)
		}
	}
	t.Logf("%d of 100 stood in, %d more than 1.5 half-widths off", stood, wrong)
	if stood < 50 || wrong > 2 {
		t.Errorf("%d of 100 stood in, %d of them more than 1.5 half-widths off", stood, wrong)
	}
}
