package run

import (
	"fmt"
	"math"
	"strings"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
)

// The sample stands in for a bent robust answer (docs/SECURITY.md, "When
// the gossip is bent, the sample answers").
//
// A statement whose every aggregate is AVG(x) TRIM p, MEDIAN(x) or
// PERCENTILE(x, q) asks for an answer a minority cannot move. Its gossip
// estimator, a histogram averaged by flow updating, keeps that promise
// against peers that lie about themselves (a liar's value is one value,
// cut off with the trim's ends or moving a rank by one), but not against
// a peer that sends made-up histogram flows: those move the histogram
// anywhere, and the sample check contests the answer. The sample keeps
// the promise where the gossip cannot: its members are chosen by a hash
// of the query's ID, each record is signed by its member, and a sampled
// liar is one value of m. So where the sample contests a robust answer,
// the asker samples more members, as many as the sample's own answer
// needs to be within Precision (a relative half-width at 95%, each group's
// each aggregate) or up to Max, and answers with the sample's figures:
// status sampled, the gossip's figure in the check's reason. With GROUP
// BY, every group the sample holds must hold enough sampled values to
// stand on (else the answer stays contested); a group only the gossip
// holds — made up, or rarer than one member in those sampled — is left
// out, and the reason names it.

// Robust reports whether plan p's contested answer may be its sample's:
// every aggregate is a trimmed mean or a quantile of peers' records.
func Robust(p *query.Plan) bool {
	return Sampled(p) && p.Table == query.TablePeers && p.RobustAggs()
}

// Fallback tunes the sample that stands in for a bent robust answer.
type Fallback struct {
	// Precision is the relative half-width at 95% the sample's answer
	// aims for, each aggregate's (or the plan's accuracy, if larger).
	// 0.03 keeps a trimmed mean of a skewed attribute (cpu_load's,
	// spread about as much as its mean) within 5% in all but about one
	// answer in 400.
	Precision float64
	// Max is the most members the asker samples for it: 4,096 is 0.4% of
	// 10^6 members, but 41% of 10^4, where a trimmed mean of cpu_load
	// needs about 4,000 to reach 3%. Max 0: the sample never stands in.
	Max int
	// MaxWidth is the widest relative half-width at 95% the sample's
	// answer may have and stand in: beyond it (a small group, at Max) the
	// answer stays contested, its sample's figures shown beside the
	// gossip's. 0.05 is the error issue 23 allows a robust answer.
	MaxWidth float64
}

// DefaultFallback is the runtime's and the simulator's.
func DefaultFallback() Fallback {
	return Fallback{Precision: query.FallbackPrecision, Max: query.FallbackMax, MaxWidth: query.FallbackMaxWidth}
}

// width is one aggregate's half-width at 95% in the sample's answer,
// relative to the value; ok false where the sample holds too few values
// for the aggregate to stand on.
type width struct {
	rel float64
	ok  bool
}

// sampleWidths is, for a robust plan, the half-width of each aggregate of
// the sample's answer, from sorted[j], the sampled values of component j
// sorted, fpc the finite population correction of the sample.
func (c SampleCheck) sampleWidths(p *query.Plan, sorted map[int][]float64, fpc float64) []width {
	out := make([]width, len(p.Aggs))
	for i, a := range p.Aggs {
		if len(a.Comps) == 0 {
			continue
		}
		xs := sorted[a.Comps[0]]
		m := float64(len(xs))
		if len(xs) == 0 || fpc > 0 && len(xs) < c.MinMatches {
			continue
		}
		var x, hw float64
		switch a.Func {
		case query.AggTrimmedAvg:
			g := int(math.Floor(a.Param * m))
			if fpc > 0 && g < trimCheckMin {
				// The trim leaves out fewer sampled values than a
				// sampled liar's could be among: more are needed.
				continue
			}
			v, ok := query.TrimmedMean(xs, a.Param)
			if !ok {
				continue
			}
			x, hw = v, 1.96*trimmedSE(xs, a.Param, fpc)
		case query.AggPercentile:
			v, _ := nearestRank(xs, a.Param)
			// A distribution-free interval: the order statistics
			// 1.96 binomial standard deviations of rank either side.
			r := 1.96 * math.Sqrt(m*a.Param*(1-a.Param)) * fpc
			if fpc > 0 && (a.Param*m-r < 1 || a.Param*m+r > m-1 || m*min(a.Param, 1-a.Param) < 10) {
				// The interval runs past the sample's ends (a tail
				// percentile of a small sample): its width says nothing
				// of the value's, and ten values beyond it are the
				// fewest to stand on. More are needed.
				continue
			}
			lo, _ := nearestRank(xs, a.Param-r/m)
			hi, _ := nearestRank(xs, a.Param+r/m)
			x, hw = v, math.Max(v-lo, hi-v)
		default:
			continue
		}
		w := width{ok: true}
		switch {
		case hw == 0:
		case x != 0:
			w.rel = hw / math.Abs(x)
		default:
			w.rel = math.Inf(1)
		}
		out[i] = w
	}
	return out
}

// StandIn reports whether the sample's answer in v stands in for plan p's
// gossip answer, which v contests (standable), holding enough values for
// each aggregate of each of its groups, each within MaxWidth at 95%.
// width is the widest aggregate's relative half-width at 95%; why says
// what the answer is, for its reason.
func (f Fallback) StandIn(p *query.Plan, v SampleVerdict) (width float64, why string, ok bool) {
	if f.Max <= 0 || v.Answer == nil || len(v.Answer.Rows) == 0 || !standable(p, v) {
		return 0, "", false
	}
	for _, g := range v.groups {
		if len(g.widths) != len(p.Aggs) {
			return 0, "", false
		}
		for _, w := range g.widths {
			if !w.ok {
				return 0, "", false
			}
			width = math.Max(width, w.rel)
		}
	}
	if width > f.MaxWidth {
		return 0, "", false
	}
	why = fmt.Sprintf("the gossip was bent (%s); this is the answer of %d sampled members' signed records alone, within ±%s at 95%%",
		v.Reason, v.Sampled, answer.FormatPercent(width))
	if len(v.unsampled) > 0 {
		why += fmt.Sprintf("; left out, no sampled member being in them (made up, or rarer than 1 in %d): %s", v.Sampled, strings.Join(v.unsampled, ", "))
	}
	return width, why, true
}

// standable reports whether the sample could stand in for p's answer at
// some size: v contests it, not for a sampled member's own lie (v.Liar:
// its record would be in the sample's answer), p is Robust, and no
// trimmed mean's sampled values hold more claims beyond its trim than it
// leaves out (beyondTrim).
func standable(p *query.Plan, v SampleVerdict) bool {
	return v.Contested && v.Liar == "" && Robust(p) && len(v.groups) > 0 && !beyondTrim(p, v)
}

// beyondTrim reports whether a trimmed mean's sampled values in a group
// of v hold more claims above what any machine reports (the catalog's
// Typical) than its trim leaves out: the liars are then more than the
// trim, and the sample's answer would be theirs too.
func beyondTrim(p *query.Plan, v SampleVerdict) bool {
	for _, a := range p.Aggs {
		if a.Func != query.AggTrimmedAvg || len(a.Comps) == 0 {
			continue
		}
		typical := typicalOf(p, a.Comps[0])
		for _, g := range v.groups {
			if top, ok := nearestRank(g.sorted[a.Comps[0]], 1-a.Param); ok && typical > 0 && top > typical {
				return true
			}
		}
	}
	return false
}

// More is how many members beyond asked the asker samples so that the
// sample's answer to p, which v contests, reaches f.Precision in every
// group: 0 where it has, where Max (or every one of members) is asked
// already, or where the sample could not stand in at any size
// (standable).
func (f Fallback) More(p *query.Plan, v SampleVerdict, asked, members int) int {
	if !standable(p, v) {
		return 0
	}
	// A statement's looser accuracy loosens the aim, but never past what
	// StandIn takes.
	target := math.Min(math.Max(f.Precision, p.Accuracy), f.MaxWidth)
	m := float64(v.Sampled)
	want := 0.0
	for _, g := range v.groups {
		for i := range p.Aggs {
			w := width{}
			if i < len(g.widths) {
				w = g.widths[i]
			}
			switch {
			case !w.ok || math.IsInf(w.rel, 1):
				want = math.Max(want, 2*float64(asked))
			case w.rel > target:
				// The half-width falls as 1/√m: 20% more than that
				// says, for the estimate's own spread.
				want = math.Max(want, 1.2*m*(w.rel/target)*(w.rel/target))
			}
		}
	}
	n := min(int(math.Ceil(want)), f.Max, members)
	if n <= asked {
		return 0
	}
	return n - asked
}

// tailMore is how many more members a verdict contested by a sum above
// the interval of fewer than OutlierMin sampled values, under a tenth of
// the sample (SampleVerdict.Tail), asks before it stands: as many again
// as were asked (at least up to Size+More), up to the fallback's Max.
// An honest group of a skewed
// attribute can hold a few large values that 512 sampled members miss (a
// region's servers' free disk, 4 times what its sampled members said, in
// 2 of 100 honest clusters of 10^4 in TestSampleNoFalseAlarms); a bend
// stays past a larger sample's interval too.
func (c SampleCheck) tailMore(v SampleVerdict, asked, members int) int {
	if !v.Contested || !v.Tail || v.Liar != "" {
		return 0
	}
	return max(min(max(2*asked, c.Size+c.More), c.Fallback.Max, members)-asked, 0)
}

// Grow is the asker's sample after its first verdict v over asked of
// members: the one loop the runtime's asker, the simulator's and the tests
// share. Three steps, each only where the one before left it so:
//  1. A first sample in doubt, or an answer that did not converge, asks
//     the next c.More (AskMore; only after a check that agreed: checked).
//  2. A verdict contested by a small group's sum above the sample
//     (SampleVerdict.Tail) asks as many again as were asked (at least up
//     to Size+More), up to the fallback's Max, until it is not
//     (tailMore), whether or not the first agreed.
//  3. Where standIn and the plan is robust, a sample that contests the
//     answer grows until the fallback's precision or its Max
//     (Fallback.More), so that StandIn may take it.
//
// judge asks the next more members after asked in the sample's order and
// judges with every one asked; fallback is false for the first step and
// true for the other two (the runtime bounds those by the statement's
// context and time, the first by its own). It returns false when nothing
// more may be asked, which ends the growing. Grow returns the last
// verdict and how many members were asked.
func (c SampleCheck) Grow(p *query.Plan, v SampleVerdict, asked, members int, checked, converged, standIn bool,
	judge func(asked, more int, fallback bool) (SampleVerdict, bool)) (SampleVerdict, int) {
	if checked && c.AskMore(v, converged, asked, members) {
		w, ok := judge(asked, c.More, false)
		if !ok {
			return v, asked
		}
		v, asked = w, asked+c.More
	}
	for more := c.tailMore(v, asked, members); more > 0; more = c.tailMore(v, asked, members) {
		w, ok := judge(asked, more, true)
		if !ok {
			break
		}
		v, asked = w, asked+more
	}
	if !standIn {
		return v, asked
	}
	for more := c.Fallback.More(p, v, asked, members); more > 0; more = c.Fallback.More(p, v, asked, members) {
		w, ok := judge(asked, more, true)
		if !ok {
			break
		}
		v, asked = w, asked+more
	}
	return v, asked
}
