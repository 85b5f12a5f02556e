package run

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
)

// The sample check: an aggregate's gossip answer compared with an
// independent sample of signed records (docs/SECURITY.md, "Answers checked
// against a sample").
//
// Flow updating conserves mass only while every peer follows it: one peer
// that sends made-up flows moves COUNT, SUM and AVG anywhere, and no peer
// can tell from the flows. And a peer that lies about itself within the
// catalog's bounds moves a sum by up to the bound. What a liar cannot do
// is choose which peers the asker samples, or speak for them: the asker
// ranks every member it knows by a hash of the query's ID (its own random
// choice, made after every name was) and the member's name, asks the
// Size members of lowest rank for the attributes the plan reads, signed
// by each (node/sample.go), and evaluates the plan on those records
// itself. A liar in the sample counts as one record of Size.
//
// CheckSample then compares, per group, each additive component's gossip
// total with the sample's estimate (the members' count times the sample's
// mean) and each quantile with the sample's order statistics. A gap
// beyond Z standard errors plus the answer's own accuracy contests the
// answer; so does one sampled value of a sum that is OutlierRatio times
// the next largest and most of the sampled total (a liar about itself,
// inflating a sum). Where the sample is every member, the COUNTs, SUMs
// and AVGs are held to the accuracy the answer claims (checkEvery). The honest cluster is never contested in the simulator's 500 runs
// (sim.TestSampleNoFalseAlarms, BENCHMARKS.md); what a liar can still do
// undetected is move the answer by less than the check's interval, which
// EXPLAIN states (ExplainCheck).

// sampleDomain separates a sample rank from every other use of SHA-256.
const sampleDomain = "peerq sample rank v1"

// SampleRank is node's rank in query's sample: the sample is the members
// of lowest rank.
func SampleRank(queryID []byte, node string) uint64 {
	h := sha256.New()
	h.Write([]byte(sampleDomain))
	h.Write([]byte{0})
	h.Write(queryID)
	h.Write([]byte{0})
	h.Write([]byte(node))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// SampleOf is query's sample of members: the k of lowest rank, lowest
// first.
func SampleOf(queryID []byte, members []string, k int) []string {
	type ranked struct {
		rank uint64
		node string
	}
	rs := make([]ranked, 0, len(members))
	for _, m := range members {
		rs = append(rs, ranked{SampleRank(queryID, m), m})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(a.rank, b.rank); c != 0 {
			return c
		}
		return cmp.Compare(a.node, b.node)
	})
	out := make([]string, 0, min(k, len(rs)))
	for _, r := range rs[:min(k, len(rs))] {
		out = append(out, r.node)
	}
	return out
}

// Sampled reports whether the sample check applies to plan: aggregates
// answered by gossip, over peers' records or over their ledgers (FROM
// leases: a sampled member shows its rows with its owners' receipts,
// CheckLedgerSample). An answer from the member list is exact already.
func Sampled(p *query.Plan) bool {
	return p.Kind == query.PlanAggregate && !p.FromTags
}

// SampleCheck tunes the check.
type SampleCheck struct {
	// Size is how many members the asker samples.
	Size int
	// Z is how many standard errors of the sample's estimate a gossip
	// total may be from it, on top of the answer's accuracy: twice as
	// many above it for a sum (a skewed attribute's sample misses its
	// rare large values more often than it holds too many).
	Z float64
	// OutlierRatio and OutlierMin: one sampled value of a sum that is
	// at least OutlierRatio times the next largest and half the sampled
	// total contests the answer, where OutlierMin or more were sampled.
	OutlierRatio float64
	OutlierMin   int
	// MinMatches is the fewest sampled records of a group with a value
	// for a sum or a quantile to be checked: below it the sample's spread
	// says too little of the population's, whose rare large values
	// (servers among phones) it may all have missed. Counts, whose spread
	// is known (a share), are checked at any size, and so is everything
	// when the sample holds every member.
	MinMatches int
	// LedgerMinMatches is MinMatches for FROM leases, where a sampled
	// unit is a member's ledger: most members served no lease (zeros the
	// spread counts), and hours are bounded by the receipts' span, not
	// spread over classes of machines.
	LedgerMinMatches int
	// Escalate and More: where a total lies past Escalate standard
	// errors of the sample's estimate but within Z, the sample could
	// not tell a bend from its own spread, and the asker samples More
	// members beyond the first Size (the next in the same order,
	// SampleOf) and checks again with them all (SampleVerdict.Doubt).
	// A sequential test: honest answers rarely pay for it, and a bend
	// past about Z/2 of the first sample's standard errors is caught
	// by the larger one. Escalate 0 never asks more.
	Escalate float64
	More     int
	// Fallback: where the sample contests a Robust plan's answer, the
	// sample's own answer stands in for it (fallback.go).
	Fallback Fallback
}

// DefaultSampleCheck is the check the runtime and the simulator make.
// Size 64 costs the asker 64 short replies (about 7 KB) and 64
// verifications (~4 ms); Z 4.5 makes a false alarm on one total about 1
// in 150,000 where the sample's mean is near normal.
func DefaultSampleCheck() SampleCheck {
	return SampleCheck{Size: query.SampleSize, Z: 4.5, OutlierRatio: 10, OutlierMin: 48, MinMatches: 30, LedgerMinMatches: 8,
		Escalate: 1.5, More: query.SampleMore, Fallback: DefaultFallback()}
}

// SampleVerdict is what the check found.
type SampleVerdict struct {
	// Sampled is how many records the check used.
	Sampled int
	// Contested says the gossip answer disagrees with the sample, or the
	// sample holds a record that alone bends it; Reason says which, with
	// both figures.
	Contested bool
	Reason    string
	// Doubt says a total lay past SampleCheck.Escalate standard errors
	// of the sample's estimate, within Z: a larger sample decides.
	Doubt bool
	// Answer is the sample's own answer, in the plan's columns: what the
	// records alone say.
	Answer *answer.Answer
	// Liar names a sampled member whose own record the others'
	// observations refute (its reliability claim): the contest is its
	// lie, and the sample that holds its record does not stand in.
	Liar string
	// Tail says the contest is a small group's sum above the sample's
	// interval: one that large values the sample did not draw could make
	// (a few servers' disks in a region), which a larger sample tells
	// from a bend (SampleCheck.Grow).
	Tail bool

	// For a Robust plan, per group the sample holds (by its encoded key),
	// the sampled values of each quantile component, sorted, and each
	// aggregate's half-width in Answer; and the groups the gossip holds
	// that no sampled member is in (fallback.go).
	groups    map[string]*sampledGroup
	unsampled []string
}

// sampledGroup is one group of a Robust plan's sample.
type sampledGroup struct {
	name   string // groupName's
	sorted map[int][]float64
	widths []width
}

// AskMore says whether the asker samples More members after a first
// verdict v that agreed, with members to draw from beyond the first
// Size: where the first sample was in doubt, or where the answer did not
// converge. A peer sending made-up flows keeps the answer moving, so an
// answer that ran to its budget is the one most likely bent; an honest
// answer almost always converges, so this costs honest clusters little.
func (c SampleCheck) AskMore(v SampleVerdict, converged bool, first, members int) bool {
	return (v.Doubt || !converged) && !v.Contested && c.More > 0 && members > first
}

// CheckSample checks an aggregate's gossip answer (flow, its groups as
// GroupResults reads them, scaled by n) against the sampled members'
// records, n being the members the sample was drawn from.
func CheckSample(p *query.Plan, flow []query.GroupResult, sample []query.Record, n float64, c SampleCheck) SampleVerdict {
	contribs := make([]aggregateRow, len(sample))
	for i, r := range sample {
		ct := Contribution(p, r)
		contribs[i] = aggregateRow{node: r["node"].Str, match: ct.Match, group: string(ct.Group), inputs: ct.Inputs}
	}
	return c.check(p, flow, contribs, len(sample), n, false)
}

// CheckLedgerSample is CheckSample for a statement FROM leases: rows are
// the sampled members' ledger rows (their hours as their owners' receipts
// show them), members the members that answered (with rows or without:
// a member that served no lease is a 0 in every sum). A member is one
// sampled unit: its rows' contributions are summed per group, and the
// additive components are checked as sums of those (a member's COUNT may
// be more than 1, so a count is not a share here). Quantiles and
// extremes of leases are not checked.
func CheckLedgerSample(p *query.Plan, flow []query.GroupResult, rows []query.Record, members int, n float64, c SampleCheck) SampleVerdict {
	type unit struct{ node, group string }
	byUnit := map[unit]int{}
	var contribs []aggregateRow
	for _, r := range rows {
		ct := Contribution(p, r)
		if !ct.Match {
			continue
		}
		u := unit{r["node"].Str, string(ct.Group)}
		i, ok := byUnit[u]
		if !ok {
			i = len(contribs)
			byUnit[u] = i
			contribs = append(contribs, aggregateRow{node: u.node, match: true, group: u.group, inputs: make([]aggregate.Input, len(p.Components))})
		}
		for j, in := range ct.Inputs {
			if in.Present && p.Components[j].Kind.Additive() {
				contribs[i].inputs[j].Present = true
				contribs[i].inputs[j].Num += in.Num
			}
		}
	}
	c.MinMatches = c.LedgerMinMatches
	return c.check(p, flow, contribs, members, n, true)
}

// check compares flow with contribs, the sampled units' contributions, k
// of them having answered. perMember: a unit is a member's rows summed
// (CheckLedgerSample), not one record.
func (c SampleCheck) check(p *query.Plan, flow []query.GroupResult, contribs []aggregateRow, sampled int, n float64, perMember bool) SampleVerdict {
	v := SampleVerdict{Sampled: sampled}
	k := float64(sampled)
	if k == 0 || n < 1 {
		return v
	}
	keys := []string{}
	seen := map[string]bool{}
	for _, r := range contribs {
		if r.match && !seen[r.group] {
			seen[r.group] = true
			keys = append(keys, r.group)
		}
	}
	flowOf := map[string]*query.GroupResult{}
	for i := range flow {
		g := &flow[i]
		key := ""
		if len(p.GroupBy) > 0 {
			key = string(query.EncodeRow(g.Keys))
		}
		flowOf[key] = g
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	fpc := math.Sqrt(math.Max(0, 1-k/n)) // sampled without replacement
	robust := Robust(p) && !perMember
	if robust {
		v.groups = map[string]*sampledGroup{}
	}
	var groups []query.GroupResult
	for _, key := range keys {
		g := query.GroupResult{Comps: make([]query.CompResult, len(p.Components))}
		if len(p.GroupBy) > 0 {
			ks, err := query.DecodeRow([]byte(key))
			if err != nil {
				continue
			}
			g.Keys = ks
		}
		fg := flowOf[key]
		for j, comp := range p.Components {
			xs, nodes := values(contribs, key, j)
			switch {
			case comp.Kind.Additive():
				g.Comps[j].Total = n * sum(xs) / k
				if v.Contested || fg == nil && len(xs) == 0 || comp.Kind == query.CompSumSq {
					// A sum of squares (STDDEV, VARIANCE) is
					// checked as the variance it makes, with its sum
					// and count (checkVariances).
					continue
				}
				total := 0.0
				if fg != nil {
					total = fg.Comps[j].Total
				}
				kind := comp.Kind
				if perMember {
					// A member's rows are checked as the sum they
					// are; their values are receipted hours, and a
					// member serves leases of any length, so the
					// outlier rule does not apply.
					kind = query.CompSum
				}
				why, doubt := c.checkTotal(p, j, kind, xs, k, n, fpc, total)
				v.Doubt = v.Doubt || doubt
				if why != "" {
					v.Contested, v.Reason = true, groupName(p, g.Keys)+why
					// A sum above the interval of a small group's
					// sampled values (fewer than OutlierMin, under a
					// tenth of the sample) may be a tail they missed
					// (a region's few servers): a larger sample
					// decides (Grow). Where the group has more, or is
					// much of the sample (a WHERE that keeps most
					// members), a larger sample would hold the liars
					// that bend it, signing their claims, and agree
					// with them.
					v.Tail = !perMember && kind == query.CompSum && total > n*sum(xs)/k && len(xs) < c.OutlierMin && float64(len(xs)) < 0.1*k
				} else if perMember {
					continue
				} else if why := c.checkOutlier(p, j, comp.Kind, xs, nodes, fpc == 0); why != "" {
					v.Contested, v.Reason = true, groupName(p, g.Keys)+why
				}
			case perMember:
				continue // a member's rows are one unit: no order statistic of rows
			case comp.Kind == query.CompQuantile:
				sorted := slices.Sorted(slices.Values(xs))
				if robust && len(xs) > 0 {
					sg := v.groups[key]
					if sg == nil {
						sg = &sampledGroup{name: groupName(p, g.Keys), sorted: map[int][]float64{}}
						v.groups[key] = sg
					}
					sg.sorted[j] = sorted
				} else if robust && fg != nil && !sampledKey(contribs, key) {
					v.unsampled = append(v.unsampled, strings.TrimSpace(groupName(p, g.Keys)))
				}
				g.Comps[j].Quantile = func(q float64) (float64, bool) { return nearestRank(sorted, q) }
				g.Comps[j].Trimmed = func(q float64) (float64, bool) { return query.TrimmedMean(sorted, q) }
				g.Comps[j].Total = n * float64(len(xs)) / k
				if v.Contested || fg == nil || fg.Comps[j].Quantile == nil {
					continue
				}
				// The histogram's mass is a count (the members with a
				// value): made-up bucket flows move it as they move a
				// COUNT, and the sample knows the share.
				why, doubt := c.checkTotal(p, j, query.CompCount, ones(len(xs)), k, n, fpc, fg.Comps[j].Total)
				v.Doubt = v.Doubt || doubt
				if why != "" {
					v.Contested, v.Reason = true, groupName(p, g.Keys)+"the values of "+why
					continue
				}
				if why := checkTrimmedTop(p, j, fg.Comps[j]); why != "" {
					v.Contested, v.Reason = true, groupName(p, g.Keys)+why
					continue
				}
				if len(xs) < c.MinMatches && fpc > 0 {
					continue
				}
				if why := c.checkQuantiles(p, j, sorted, fg.Comps[j].Quantile); why != "" {
					v.Contested, v.Reason = true, groupName(p, g.Keys)+why
				} else if why := c.checkTrimmed(p, j, sorted, fg.Comps[j], fpc); why != "" {
					v.Contested, v.Reason = true, groupName(p, g.Keys)+why
				}
			case comp.Kind == query.CompMin || comp.Kind == query.CompMax:
				g.Comps[j] = sampleExtreme(contribs, key, j, comp)
				if !v.Contested && fg != nil {
					if why := checkExtreme(p, j, fg.Comps[j]); why != "" {
						v.Contested, v.Reason = true, groupName(p, g.Keys)+why
					}
				}
			}
		}
		if !perMember && !v.Contested && fg != nil {
			why, doubt := c.checkVariances(p, contribs, key, *fg, fpc)
			v.Doubt = v.Doubt || doubt
			if why != "" {
				v.Contested, v.Reason = true, groupName(p, g.Keys)+why
			}
		}
		if fpc == 0 && !perMember && !v.Contested && fg != nil {
			if why := checkEvery(p, *fg, g, sampled); why != "" {
				v.Contested, v.Reason = true, groupName(p, g.Keys)+why
			}
		}
		groups = append(groups, g)
	}
	v.Answer = query.Finalize(p, groups)
	if robust {
		for _, sg := range v.groups {
			sg.widths = c.sampleWidths(p, sg.sorted, fpc)
		}
		v.unsampled = slices.Compact(v.unsampled)
	}
	return v
}

// sampledKey reports whether a sampled record matched group key.
func sampledKey(rows []aggregateRow, key string) bool {
	for _, r := range rows {
		if r.match && r.group == key {
			return true
		}
	}
	return false
}

// ones is n ones: the sampled values of a count.
func ones(n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = 1
	}
	return xs
}

// aggregateRow is one sampled record's contribution.
type aggregateRow struct {
	node   string
	match  bool
	group  string
	inputs []aggregate.Input
}

// values lists the sampled values of component j in group key, with the
// node of each.
func values(rows []aggregateRow, key string, j int) (xs []float64, nodes []string) {
	for _, r := range rows {
		if r.match && r.group == key && j < len(r.inputs) && r.inputs[j].Present {
			xs = append(xs, r.inputs[j].Num)
			nodes = append(nodes, r.node)
		}
	}
	return xs, nodes
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// checkTotal compares a gossip total with the sample's estimate n·mean,
// the k sampled records each counting 0 where they are not in the group.
//
// doubt: the total lies past c.Escalate standard errors, within c.Z.
func (c SampleCheck) checkTotal(p *query.Plan, j int, kind query.CompKind, xs []float64, k, n, fpc, total float64) (why string, doubt bool) {
	est := n * sum(xs) / k
	var se float64
	if kind == query.CompCount {
		// A share. The larger of two spreads: the score test's, of the
		// share the gossip says (were it right, the sampled count would
		// be binomial about it), kept off 0 and 1 by half a record; and
		// Agresti–Coull's about the sampled share, which stays honest
		// where the normal approximation is not (a small group that
		// the sample happens to hold many of: a binomial's tail is
		// heavier than the normal's there).
		f := math.Min(math.Max(total/n, 0.5/k), 1-0.5/k)
		share := (float64(len(xs)) + 2) / (k + 4)
		se = n * math.Max(math.Sqrt(f*(1-f)/k), math.Sqrt(share*(1-share)/(k+4))) * fpc
	} else {
		if len(xs) < c.MinMatches && fpc > 0 {
			return "", false
		}
		mean := sum(xs) / k
		ss := 0.0
		for _, x := range xs {
			ss += (x - mean) * (x - mean)
		}
		ss += (k - float64(len(xs))) * mean * mean // the records outside the group, each 0
		if fpc > 0 {
			se = n * math.Sqrt(ss/(k-1)/k) * fpc
		}
		// else every member was sampled (a census, the total known): no
		// spread. A census of one member gave 0/0, and a tolerance of NaN
		// contested every total (helper-73: an asker whose pool's other
		// members had just died, its answer over itself alone, exit 8).
	}
	above := 1.0
	if total > est && kind != query.CompCount {
		// Above the sample: the sample may have missed the rare large
		// values of a skewed attribute (servers' memory among phones'),
		// whose spread its own then understates.
		above = 2
	}
	slack := 3 * p.Accuracy * math.Max(math.Abs(total), math.Abs(est))
	tol := above*c.Z*se + slack
	if math.Abs(total-est) <= tol {
		return "", c.Escalate > 0 && math.Abs(total-est) > above*c.Escalate*se+slack
	}
	return fmt.Sprintf("%s: gossip says %s, an independent sample of %d members says %s ± %s", componentName(p, j), fmtNum(total), int(k), fmtNum(est), fmtNum(tol)), false
}

// checkVariances checks each STDDEV's and VARIANCE's variance as gossip
// gives it, from its sum S, sum of squares Q and count C. The sum and the
// count are checked as totals (checkTotal); the sum of squares is not, as
// a total: it is mostly the mean squared, so that a sample's spread of it
// hides a bent variance. Its values' tail is the square of theirs, and a
// sample of 64 misses what a few large values add to a variance (an
// honest cluster's group of uptimes: 8 times its sampled values'), so the
// two sides are checked apart:
//
//   - Below: a variance below 0 is no values' (Q ≥ S²/C whatever they
//     are), whatever was sampled; nor one whose squared deviations are
//     fewer than the sampled values' alone about its mean (they are some
//     of its values: one server sampled among phones bounds a variance
//     lowered to 0, whatever the spread), with MinMatches of them or
//     every member; and one below the sampled values' by
//     more than Z standard errors of a sample variance (from the sample's
//     fourth central moment: a large value sampled widens it as it raises
//     the estimate), beside gossip's own error's cancellation either
//     way. That error is within the accuracy a total, which the variance
//     keeps as accuracy·(|Q| + 3S²/C)/(C−1) at most (S²/C's is its
//     square's, twice S's, and C's); the slack, 3·accuracy·(|Q| +
//     S²/C)/(C−1), covers it. For the interval, fewer than MinMatches
//     sampled values decide nothing, unless the sample is every member.
//     doubt: past Escalate standard errors. The sample's interval is wide for a skewed
//     attribute (Z standard errors of 64 values' variance are more than
//     the variance itself for cpu_load, memory, disk and uptime): there a
//     STDDEV lowered but not below 0 is seen only as 512 sampled, or
//     every member, can see it.
//   - Above: no sample bounds a tail it did not see, but what machines
//     report does. Values in [lo, hi] — the attribute's least and the most
//     any machine reports (query.Attr.Typical, as checkOutlier holds a
//     sampled value to) — have Q ≤ (lo+hi)·S − C·lo·hi, whatever their
//     spread (Popoviciu's inequality, summed); more is contested. Squares
//     bent less than that pass: EXPLAIN says what one liar can do.
func (c SampleCheck) checkVariances(p *query.Plan, contribs []aggregateRow, key string, fg query.GroupResult, fpc float64) (why string, doubt bool) {
	for _, a := range p.Aggs {
		if a.Func != query.AggStddev && a.Func != query.AggVariance || len(a.Comps) != 3 {
			continue
		}
		js, jq, jc := a.Comps[0], a.Comps[1], a.Comps[2]
		if max(js, jq, jc) >= len(fg.Comps) {
			continue
		}
		S, Q, C := fg.Comps[js].Total, fg.Comps[jq].Total, fg.Comps[jc].Total
		if C < query.VarianceMinCount {
			continue // gossip's NULL (fewer than two values); the count's check judges that
		}
		eps := 3 * p.Accuracy
		if lo, hi, ok := rangeOf(p, a.Arg); ok {
			most := (lo+hi)*S - C*lo*hi
			if Q-most > eps*(math.Abs(Q)+(math.Abs(lo)+math.Abs(hi))*math.Abs(S)+C*math.Abs(lo*hi)) {
				return fmt.Sprintf("%s's sum of squares: gossip says %s, more than %s values between %s and %s (what any machine reports) can make with their sum %s (at most %s)",
					a.Text, fmtNum(Q), fmtNum(C), fmtNum(lo), fmtNum(hi), fmtNum(S), fmtNum(most)), false
			}
		}
		flow := (Q - S*S/C) / (C - 1)
		slack := eps * (math.Abs(Q) + S*S/C) / (C - 1)
		if flow < -slack {
			// No values have a negative variance: Q ≥ S²/C whatever
			// they are, sampled or not.
			return fmt.Sprintf("%s's variance: gossip says %s, less than any values can have (0)", a.Text, fmtNum(flow)), false
		}
		xs, _ := values(contribs, key, js)
		m := float64(len(xs))
		if m == 0 {
			continue
		}
		mean := sum(xs) / m
		// The sampled values are some of the values the variance is
		// of, so its sum of squared deviations is at least theirs about
		// the same mean: S/C, within the gossip's error (the nearest
		// mean to theirs in it, where their sum is least).
		mu, d := S/C, eps*math.Abs(S/C)
		about := min(max(mean, mu-d), mu+d)
		own := 0.0
		for _, x := range xs {
			own += (x - about) * (x - about)
		}
		// Only with as many sampled values as the interval below asks
		// for, or every member: a member's record moves (the runtime
		// shows the sample the record each member contributed, but past
		// the runtime's bounds on the records it keeps, its record as it
		// is by then), and among a few values one moved can outweigh a
		// small group's whole spread.
		if (len(xs) >= c.MinMatches || fpc == 0) && (flow+slack)*(C-1) < own {
			return fmt.Sprintf("%s's variance: gossip says %s, less than the %d sampled values alone make about its mean (%s)",
				a.Text, fmtNum(flow), len(xs), fmtNum(own/(C-1))), false
		}
		if m < 2 || len(xs) < c.MinMatches && fpc > 0 {
			continue
		}
		var m2, m4 float64
		for _, x := range xs {
			d := (x - mean) * (x - mean)
			m2 += d
			m4 += d * d
		}
		est := m2 / (m - 1)
		m4 /= m
		se := math.Sqrt(math.Max(0, m4-est*est*(m-3)/(m-1))/m) * fpc
		if est-flow <= c.Z*se+slack {
			doubt = doubt || c.Escalate > 0 && est-flow > c.Escalate*se+slack
			continue
		}
		return fmt.Sprintf("%s's variance: gossip says %s, an independent sample of %d values says %s ± %s",
			a.Text, fmtNum(flow), len(xs), fmtNum(est), fmtNum(c.Z*se+slack)), false
	}
	return "", doubt
}

// rangeOf is the least value of e and the most any machine reports of it
// (query.Attr.Typical) where e is an attribute with a Typical; ok false
// otherwise.
func rangeOf(p *query.Plan, e *query.Expr) (lo, hi float64, ok bool) {
	if e == nil || e.Op != query.OpAttr {
		return 0, 0, false
	}
	a, found := catalogOf(p).Lookup(e.Name)
	if !found || a.Typical <= 0 {
		return 0, 0, false
	}
	return a.Min, a.Typical, true
}

// checkEvery holds a group's COUNTs and SUMs to the accuracy the answer
// claims where the sample is every member it is about (exact's totals
// are then exact), and its AVGs to twice that (a ratio of two totals,
// each within the accuracy): the totals' check allows three accuracies
// beside a sample's spread, as a sample is an estimate itself; here the
// records leave no spread. This catches what an honest cluster can still
// get wrong: a member that dies early in a query takes the mass it held,
// and the survivors settle, calm, on a blend of the answers before and
// after its death before anyone can find it lost (at 8 peers 1.2–2.3%
// off, in 5 of 300 runs of TestCrashMidQuery's seed 9 under -race). Other
// aggregates keep their own checks: a percentile's histogram and a
// variance's cancellation are not within the accuracy of their totals.
func checkEvery(p *query.Plan, flow, exact query.GroupResult, members int) string {
	got, want := make([]query.Value, len(p.Aggs)), make([]query.Value, len(p.Aggs))
	p.Row(flow, got, nil)
	p.Row(exact, want, nil)
	for i, a := range p.Aggs {
		if a.Func != query.AggCount && a.Func != query.AggSum && a.Func != query.AggAvg || got[i].IsNull() || want[i].IsNull() {
			continue
		}
		g, w := got[i].Num, want[i].Num
		allowed := p.Accuracy
		if a.Func == query.AggAvg {
			allowed *= 2 // a ratio of two totals, each within the accuracy
		}
		if math.Abs(g-w) > allowed*math.Max(math.Abs(g), math.Abs(w))+1e-9 {
			return fmt.Sprintf("%s: gossip says %s, the records of all %d members say %s (±%s%% allowed)",
				a.Text, fmtNum(g), members, fmtNum(w), fmtNum(100*allowed))
		}
	}
	return ""
}

// checkOutlier looks for one sampled value of a sum that bends it: above
// what any machine reports (the catalog's Typical) and more than the
// accuracy's worth of the sampled total; or at least OutlierRatio times
// the next largest and most of the sampled total. Honest values of one
// attribute span classes of machines (a phone's disk, a server's), but
// among OutlierMin or more sampled values the next largest is of a class
// near the largest's (in the simulator's machines, within 3×); a liar's
// ×1000 is not. One honest machine far above every other sampled one is
// contested too, and rightly: the answer then rests on its word, which a
// liar could have given. everyone: the sample holds every member.
func (c SampleCheck) checkOutlier(p *query.Plan, j int, kind query.CompKind, xs []float64, nodes []string, everyone bool) string {
	if kind != query.CompSum || len(xs) == 0 {
		return ""
	}
	order := make([]int, len(xs))
	total := 0.0
	for i, x := range xs {
		order[i] = i
		total += math.Abs(x)
	}
	if total == 0 {
		return ""
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(math.Abs(xs[b]), math.Abs(xs[a])) })
	top := order[0]
	if typical := typicalOf(p, j); typical > 0 && math.Abs(xs[top]) > typical && math.Abs(xs[top]) > 3*p.Accuracy*total {
		return fmt.Sprintf("%s: sampled member %s says %s, more than any machine reports (%s), %.0f%% of the sampled total",
			componentName(p, j), nodes[top], fmtNum(xs[top]), fmtNum(typical), 100*math.Abs(xs[top])/total)
	}
	if len(xs) < c.OutlierMin {
		// Few sampled: in a small cluster the sample is every member,
		// and one value OutlierRatio² times the next largest and nearly
		// all of the total is contested — the answer rests on one
		// member's word (one agent among 8 claiming 20 TiB of free
		// memory). Not in a group, nor where the sample is a part: a
		// group's few sampled members may well be a server among phones.
		if everyone && len(p.GroupBy) == 0 && len(order) >= 2 {
			last, next := math.Abs(xs[top]), math.Abs(xs[order[1]])
			if last >= c.OutlierRatio*c.OutlierRatio*next && last >= 0.9*total {
				return fmt.Sprintf("%s: sampled member %s says %s, %s times the next largest of %d sampled, %.0f%% of their total: the answer rests on its word",
					componentName(p, j), nodes[top], fmtNum(xs[top]), timesOf(last, next), len(xs), 100*last/total)
			}
		}
		return ""
	}
	// The few largest (a liar sampled twice or three times, which at 1%
	// liars and 64 sampled is one sample in eight or in forty), together
	// most of the total, each OutlierRatio times the rest.
	held := 0.0
	for n := 1; n <= 3 && n < len(order); n++ {
		last, next := math.Abs(xs[order[n-1]]), math.Abs(xs[order[n]])
		held += last
		if held < total/2 || last < c.OutlierRatio*next {
			continue
		}
		if n == 1 {
			return fmt.Sprintf("%s: sampled member %s says %s, %s times the next largest of %d sampled, %.0f%% of their total",
				componentName(p, j), nodes[top], fmtNum(xs[top]), timesOf(last, next), len(xs), 100*held/total)
		}
		who := make([]string, n)
		for i, k := range order[:n] {
			who[i] = nodes[k] + " " + fmtNum(xs[k])
		}
		return fmt.Sprintf("%s: sampled members %s say %.0f%% of the sampled total, each %s times or more the next largest of %d sampled",
			componentName(p, j), strings.Join(who, ", "), 100*held/total, timesOf(last, next), len(xs))
	}
	return ""
}

// typicalOf is the catalog's Typical for the attribute component j sums
// (query.Attr.Typical), or 0 where it sums an expression or an attribute
// without one.
func typicalOf(p *query.Plan, j int) float64 { return typicalOfExpr(p, p.Components[j].Arg) }

// typicalOfExpr is the catalog's Typical for e where e is an attribute
// with one, else 0.
func typicalOfExpr(p *query.Plan, e *query.Expr) float64 {
	_, hi, _ := rangeOf(p, e)
	return hi
}

// timesOf is a/b for a reason, "∞" when b is 0.
func timesOf(a, b float64) string {
	if b == 0 {
		return "∞"
	}
	return fmt.Sprintf("%.0f", a/b)
}

// checkQuantiles compares the gossip quantiles of component j with the
// sample's order statistics: the q-quantile's rank in m sampled values is
// binomial, so the true quantile lies between the values Z standard
// deviations of rank either side, widened by the histogram's error. A
// trimmed mean's histogram is checked so at its quartiles.
func (c SampleCheck) checkQuantiles(p *query.Plan, j int, sorted []float64, gossip func(float64) (float64, bool)) string {
	m := float64(len(sorted))
	for _, a := range p.Aggs {
		if len(a.Comps) == 0 || a.Comps[0] != j {
			continue
		}
		var qs []float64
		switch a.Func {
		case query.AggPercentile:
			qs = []float64{a.Param}
		case query.AggTrimmedAvg:
			qs = []float64{0.25, 0.5, 0.75}
		}
		for _, q := range qs {
			got, ok := gossip(q)
			if !ok {
				continue
			}
			half := c.Z*math.Sqrt(m*q*(1-q)) + 1
			lo, hi := math.Inf(-1), math.Inf(1)
			if i := int(math.Floor(m*q - half)); i >= 0 {
				lo = sorted[i]
			}
			if i := int(math.Ceil(m*q + half)); i < len(sorted) {
				hi = sorted[i]
			}
			slack := 3 * (p.Accuracy + 0.01) // the histogram's buckets: aggregate.HistAlpha
			if got < lo-slack*math.Abs(lo) || got > hi+slack*math.Abs(hi) {
				what := a.Text
				if a.Func == query.AggTrimmedAvg {
					what += fmt.Sprintf("'s %s-quantile", fmtNum(q))
				}
				return fmt.Sprintf("%s: gossip says %s, an independent sample of %d values puts it in [%s, %s]", what, fmtNum(got), len(sorted), fmtNum(lo), fmtNum(hi))
			}
		}
	}
	return ""
}

// checkTrimmedTop contests a trimmed mean of component j that keeps
// values above what any machine reports (the catalog's Typical): more
// members claim them than the trim leaves out, and the answer is theirs.
// It reads the gossip histogram alone, so it holds for a group of any
// size.
func checkTrimmedTop(p *query.Plan, j int, flow query.CompResult) string {
	typical := typicalOf(p, j)
	if typical <= 0 || flow.Quantile == nil {
		return ""
	}
	for _, a := range p.Aggs {
		if a.Func != query.AggTrimmedAvg || len(a.Comps) == 0 || a.Comps[0] != j {
			continue
		}
		if top, ok := flow.Quantile(1 - a.Param); ok && top > typical {
			return fmt.Sprintf("%s: more than %s%% of the values are above %s (more than any machine reports): trim more, or ask who (ORDER BY %s DESC)",
				a.Text, fmtNum(100*a.Param), fmtNum(typical), p.Components[j].Arg)
		}
	}
	return ""
}

// trimCheckMin is the fewest sampled values a trimmed mean's check leaves
// out at each end: a sampled liar's value is one of them, whatever share
// the statement trims (1% of 64 is less than one value).
const trimCheckMin = 3

// checkTrimmed compares a gossip trimmed mean (AVG(x) TRIM p) of
// component j with the sample's: both trimmed by the larger of p and
// trimCheckMin sampled values at each end, so that they estimate the same
// mean and a sampled liar's value is left out of the sample's. The
// spread is the trimmed mean's (Tukey and McLaughlin 1963: the winsorized
// sample's standard deviation over (1-2p)√m), widened by the histogram's
// error. Where the sample holds every member the two are compared at p.
func (c SampleCheck) checkTrimmed(p *query.Plan, j int, sorted []float64, flow query.CompResult, fpc float64) string {
	m := float64(len(sorted))
	for _, a := range p.Aggs {
		if a.Func != query.AggTrimmedAvg || len(a.Comps) == 0 || a.Comps[0] != j || flow.Trimmed == nil {
			continue
		}
		gossip := flow.Trimmed
		trim := a.Param
		if fpc > 0 {
			trim = math.Max(trim, trimCheckMin/m)
		}
		if trim >= 0.4 {
			continue // too few sampled values to say anything of the middle
		}
		got, ok1 := gossip(trim)
		est, ok2 := query.TrimmedMean(sorted, trim)
		if !ok1 || !ok2 {
			continue
		}
		se := trimmedSE(sorted, trim, fpc)
		z := c.Z
		if got > est {
			z *= 2 // as for a sum: the sample may have missed a skewed attribute's rare large values
		}
		tol := z*se + 3*(p.Accuracy+0.01)*math.Max(math.Abs(got), math.Abs(est))
		if math.Abs(got-est) <= tol {
			continue
		}
		return fmt.Sprintf("%s: gossip's mean without %s%% at each end is %s, an independent sample of %d values says %s ± %s",
			a.Text, fmtNum(100*trim), fmtNum(got), len(sorted), fmtNum(est), fmtNum(tol))
	}
	return ""
}

// trimmedSE is the standard error of the mean of sorted without the share
// trim at each end (Tukey and McLaughlin 1963: the winsorized sample's
// standard deviation over (1-2·trim)√m), fpc the finite population
// correction.
func trimmedSE(sorted []float64, trim, fpc float64) float64 {
	m := float64(len(sorted))
	g := int(math.Floor(trim * m))
	lo, hi := sorted[g], sorted[len(sorted)-1-g]
	mean, ss := 0.0, 0.0
	for _, x := range sorted {
		mean += min(max(x, lo), hi)
	}
	mean /= m
	for _, x := range sorted {
		d := min(max(x, lo), hi) - mean
		ss += d * d
	}
	return math.Sqrt(ss/math.Max(m-1, 1)) / ((1 - 2*trim) * math.Sqrt(m)) * fpc
}

// nearestRank is the q-quantile of sorted values by nearest rank.
func nearestRank(sorted []float64, q float64) (float64, bool) {
	if len(sorted) == 0 {
		return 0, false
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)], true
}

// checkExtreme contests a gossip MAX (or MIN) of an attribute that is
// above what any machine reports (the catalog's Typical): an extreme is
// one member's word, and that word is a liar's. An extreme within the
// honest range is not checked.
func checkExtreme(p *query.Plan, j int, flow query.CompResult) string {
	typical := typicalOf(p, j)
	if typical <= 0 || !flow.Has || !flow.Ext.Kind.Numeric() || math.Abs(flow.Ext.Num) <= typical {
		return ""
	}
	return fmt.Sprintf("%s is %s, more than any machine reports (%s): one member's claim", componentName(p, j),
		flow.Ext, query.Num(flow.Ext.Kind, typical))
}

// sampleExtreme is the sample's MIN or MAX of component j in group key
// (shown beside the answer; not checked: an extreme is one peer's value).
func sampleExtreme(rows []aggregateRow, key string, j int, comp query.Component) query.CompResult {
	var out query.CompResult
	for _, r := range rows {
		if !r.match || r.group != key || j >= len(r.inputs) || !r.inputs[j].Present {
			continue
		}
		in := r.inputs[j]
		x := query.Num(comp.Arg.Kind, in.Num)
		if in.IsStr {
			x = query.Str(in.Str)
		}
		if !out.Has || comp.Kind == query.CompMin && query.Compare(x, out.Ext) < 0 || comp.Kind == query.CompMax && query.Compare(x, out.Ext) > 0 {
			out.Ext, out.Has = x, true
		}
	}
	return out
}

// componentName names component j by the first aggregate that uses it:
// the aggregate itself where the component is its value (COUNT's count,
// SUM's sum), else which part of it ("AVG(x)'s sum").
func componentName(p *query.Plan, j int) string {
	kind := p.Components[j].Kind
	for _, a := range p.Aggs {
		if !slices.Contains(a.Comps, j) {
			continue
		}
		if a.Func == query.AggCount || a.Func == query.AggSum && kind == query.CompSum || a.Func == query.AggPercentile || a.Func == query.AggTrimmedAvg ||
			a.Func == query.AggMin && kind == query.CompMin || a.Func == query.AggMax && kind == query.CompMax {
			return a.Text
		}
		return a.Text + "'s " + kind.String()
	}
	if kind == query.CompCount {
		return "the count of members that match"
	}
	return kind.String()
}

// groupName says which group a reason is about ("" when ungrouped).
func groupName(p *query.Plan, keys []query.Value) string {
	if len(p.GroupBy) == 0 {
		return ""
	}
	s := "group ("
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += k.String()
	}
	return s + ") "
}

func fmtNum(x float64) string { return fmt.Sprintf("%.4g", x) }

// sampleProof is the domain of a sampled record's signature
// (SampleMessage).
const sampleProof = "peerq sample record v1"

// SampleRow is what a sampled member sends of itself for plan: the values
// of the attributes the plan reads (query.Plan.Reads, in that order),
// encoded as a row. It signs SampleMessage over it.
func SampleRow(p *query.Plan, rec query.Record) []byte {
	attrs := p.Reads()
	row := make([]query.Value, len(attrs))
	for i, a := range attrs {
		row[i] = rec[a]
	}
	return query.EncodeRow(row)
}

// SampleMessage is what a sampled member signs: its row for query, as
// node.
func SampleMessage(queryID []byte, node string, row []byte) []byte {
	out := make([]byte, 0, len(sampleProof)+len(queryID)+len(node)+len(row)+3*binary.MaxVarintLen64)
	out = append(out, sampleProof...)
	for _, f := range [][]byte{queryID, []byte(node), row} {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out
}

// SampleRecord reads a sampled member's reply — node's row for query,
// with its signature — as the record the check evaluates the plan on.
// It refuses a reply not signed by node (an error wrapping ErrForged),
// a row that is not the plan's attributes, and a value outside the
// catalog's bounds: a member can lie about itself, within them, only.
func SampleRecord(p *query.Plan, seal Sealer, queryID []byte, node string, row, sig []byte) (query.Record, error) {
	if err := seal.Verify(node, SampleMessage(queryID, node, row), sig); err != nil {
		return nil, err
	}
	return DecodeSampleRow(p, node, row)
}

// DecodeSampleRow reads one row a sampled member sent (SampleRow), its
// signature checked already: the plan's attributes, each of its kind and
// within the catalog's bounds.
func DecodeSampleRow(p *query.Plan, node string, row []byte) (query.Record, error) {
	vals, err := query.DecodeRow(row)
	if err != nil {
		return nil, err
	}
	attrs := p.Reads()
	if len(vals) != len(attrs) {
		return nil, fmt.Errorf("run: %s sent %d values for %d attributes", node, len(vals), len(attrs))
	}
	cat := catalogOf(p)
	rec := query.Record{"node": query.Str(node)}
	for i, a := range attrs {
		if a == "node" {
			continue
		}
		if vals[i].IsNull() {
			continue // a tag it does not have
		}
		e := &query.Expr{Op: query.OpAttr, Name: a, Kind: vals[i].Kind}
		if at, ok := cat.Lookup(a); ok {
			e.Kind = at.Kind
		}
		if err := checkValue(cat, e, vals[i]); err != nil {
			return nil, fmt.Errorf("run: %s: %w", node, err)
		}
		rec[a] = vals[i]
	}
	return rec, nil
}

// Implausible names the first value of a top-k answer (SELECT … ORDER BY
// … LIMIT, over peers) that no machine reports: a column that is an
// attribute of the catalog with a Typical, holding a value above it. A
// member may lie about itself, and in a ranking its lie takes one place;
// a claim above what any machine reports says so, and the answer is
// contested rather than handing the top place to it quietly. "" when
// every value is plausible.
func Implausible(p *query.Plan, a *answer.Answer) string {
	if p.Kind != query.PlanTopK || p.Table != query.TablePeers || a == nil {
		return ""
	}
	for j, col := range p.Columns {
		typical := typicalOfExpr(p, col.Expr)
		if typical <= 0 {
			continue
		}
		for i, row := range a.Rows {
			if j < len(row) && row[j].Kind.Numeric() && row[j].Num > typical {
				who := "a member"
				if i < len(a.Nodes) {
					who = a.Nodes[i]
				}
				return fmt.Sprintf("%s claims %s %s, more than any machine reports (%s)", who, col.Name,
					row[j], query.Num(row[j].Kind, typical))
			}
		}
	}
	return ""
}

// overclaimed finds a sampled record that claims more reliability than
// this peer observed of its node (Config.Reliability, as a top-k entry's
// claim is bounded): a claim the statement reads (a filter such as WHERE
// reliability >= 0.99, or an aggregate of it) that the others'
// observations refute. A claim the statement does not read bends
// nothing and is not judged (the runtime's sample does not even carry
// it; the simulator's records are whole).
func overclaimed(p *query.Plan, sample []query.Record, bound func(node string) (float64, bool)) (liar, why string) {
	if bound == nil || !slices.Contains(p.Reads(), "reliability") {
		return "", ""
	}
	for _, r := range sample {
		claim, ok := r["reliability"]
		if !ok || !claim.Kind.Numeric() {
			continue
		}
		name := r["node"].Str
		if most, seen := bound(name); seen && claim.Num > most {
			return name, fmt.Sprintf("sampled member %s claims reliability %s, and was seen up at most %s of the window",
				name, claim, query.Num(query.KindRatio, most))
		}
	}
	return "", ""
}
