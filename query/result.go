package query

import (
	"iter"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/peerq/peerq/answer"
)

// CompResult is the combined value of one component over the peers of one
// group, exact or estimated by gossip.
type CompResult struct {
	// Total is the total of an additive component (count, sum, sum of
	// squares) over the group's peers; for a quantile component, how many
	// values it holds.
	Total float64
	// Ext is the MIN or MAX; Has is false when no peer had a value.
	Ext Value
	Has bool
	// Quantile reads the q-quantile of a quantile component (nearest rank).
	Quantile func(q float64) (float64, bool)
	// Trimmed reads the mean of a quantile component's values without the
	// share p of them at each end (TrimmedMean).
	Trimmed func(p float64) (float64, bool)
	// Distinct is a distinct-count component's count.
	Distinct float64
}

// GroupResult is one group: its GROUP BY values and its components.
type GroupResult struct {
	Keys  []Value
	Comps []CompResult
}

// VarianceMinCount is the least count, as gossip estimates it, that a
// STDDEV or VARIANCE is given for: two values, less gossip's error
// (fewer give NULL). The asker's sample check judges every variance
// given (run's checkVariances).
const VarianceMinCount = 1.5

// AnswerColumns are the plan's columns as its answer names them, those
// that identify a row marked Key (keyColumn).
func (p *Plan) AnswerColumns() []answer.Column {
	cols := make([]answer.Column, len(p.Columns))
	for i, c := range p.Columns {
		cols[i] = answer.Column{Name: c.Name, Kind: c.Kind, Key: p.keyColumn(c)}
	}
	return cols
}

// keyColumn says whether c identifies its row: in a grouped aggregate, a
// column made of GROUP BY keys alone (no aggregate); in a top-k, the
// peer's name.
func (p *Plan) keyColumn(c Column) bool {
	switch p.Kind {
	case PlanAggregate:
		keys, aggs := false, false
		walkExpr(c.Expr, func(e *Expr) {
			keys = keys || e.Op == OpKeyRef
			aggs = aggs || e.Op == OpAggRef
		})
		return keys && !aggs
	case PlanTopK, PlanReserve:
		return c.Expr != nil && c.Expr.Op == OpAttr && c.Expr.Name == "node"
	}
	return false
}

// minCount is the estimated COUNT below which a group or an aggregate is
// taken to be empty: gossip estimates of an empty group hover near 0.
const minCount = 0.5

// Finalize computes an aggregate plan's rows from its groups: the aggregates
// from their components, the columns from the aggregates and keys, then
// ORDER BY and LIMIT. Ties in ORDER BY are broken by the group keys, so the
// answer is deterministic.
func Finalize(p *Plan, groups []GroupResult) *answer.Answer {
	res := &answer.Answer{Columns: p.AnswerColumns()}
	type row struct {
		keys, vals, order []Value
	}
	var rows []row
	for _, g := range groups {
		if len(p.GroupBy) > 0 && (len(g.Comps) == 0 || g.Comps[0].Total < minCount) {
			continue
		}
		aggs := make([]Value, len(p.Aggs))
		r := row{keys: g.Keys, vals: p.Row(g, aggs, nil)}
		for _, k := range p.Order {
			r.order = append(r.order, EvalRow(k.Expr, g.Keys, aggs))
		}
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if c := p.CompareKeys(rows[i].order, rows[j].order); c != 0 {
			return c < 0
		}
		return compareValues(rows[i].keys, rows[j].keys) < 0
	})
	if p.K > 0 && len(rows) > p.K {
		rows = rows[:p.K]
	}
	for _, r := range rows {
		res.Rows = append(res.Rows, r.vals)
	}
	return res
}

// Row computes one group's columns, appending them to out; aggs is a
// buffer of len(p.Aggs) values it fills with the aggregates. It does not
// allocate when out has room, so the simulator can call it for every peer.
func (p *Plan) Row(g GroupResult, aggs []Value, out []Value) []Value {
	for i, a := range p.Aggs {
		aggs[i] = finalAgg(a, g.Comps)
	}
	for _, c := range p.Columns {
		out = append(out, EvalRow(c.Expr, g.Keys, aggs))
	}
	return out
}

func compareValues(a, b []Value) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		switch {
		case a[i].IsNull() && b[i].IsNull():
			continue
		case a[i].IsNull():
			return 1
		case b[i].IsNull():
			return -1
		}
		if c := Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// finalAgg computes one aggregate from its components.
func finalAgg(a Aggregate, comps []CompResult) Value {
	c := func(i int) CompResult {
		if a.Comps[i] < len(comps) {
			return comps[a.Comps[i]]
		}
		return CompResult{}
	}
	switch a.Func {
	case AggCount:
		// A count is a whole number: a gossip estimate within ±0.5 of it
		// rounds to it exactly, and exact ties stay ties for ORDER BY.
		return Num(KindCount, math.Round(math.Max(c(0).Total, 0)))
	case AggCountDistinct:
		return Num(KindCount, math.Round(c(0).Distinct))
	case AggSum:
		if c(1).Total < minCount {
			return Null
		}
		return Num(a.Kind, c(0).Total)
	case AggAvg:
		if c(1).Total < minCount {
			return Null
		}
		return Num(a.Kind, c(0).Total/c(1).Total)
	case AggMin, AggMax:
		if !c(0).Has {
			return Null
		}
		v := c(0).Ext
		if v.Kind.Numeric() {
			v.Kind = a.Kind
		}
		return v
	case AggStddev, AggVariance:
		n := c(2).Total
		if n < VarianceMinCount {
			return Null
		}
		mean := c(0).Total / n
		v := math.Max((c(1).Total-n*mean*mean)/(n-1), 0)
		if a.Func == AggStddev {
			return Num(a.Kind, math.Sqrt(v))
		}
		return Num(a.Kind, v)
	case AggPercentile, AggTrimmedAvg:
		// Both read the quantile component at Param: a rank, or the
		// share left out at each end.
		read := c(0).Quantile
		if a.Func == AggTrimmedAvg {
			read = c(0).Trimmed
		}
		if read == nil {
			return Null
		}
		x, ok := read(a.Param)
		if !ok {
			return Null
		}
		return Num(a.Kind, x)
	}
	return Null
}

// Exact computes a plan's answer directly from every peer's record: the
// reference the gossip answers are checked against (tests, the simulator).
func Exact(p *Plan, records []Record) *answer.Answer {
	return ExactSeq(p, slices.Values(records))
}

// ExactSeq is Exact over a sequence of records, so that a simulator need not
// hold every record at once.
func ExactSeq(p *Plan, records iter.Seq[Record]) *answer.Answer {
	switch p.Kind {
	case PlanAggregate:
		return Finalize(p, exactGroups(p, records))
	case PlanTopK, PlanReserve:
		type cand struct {
			key  []byte
			node string
			row  []Value
		}
		var cs []cand
		for r := range records {
			if p.Matches(r) {
				cs = append(cs, cand{key: p.SortKey(r), node: r["node"].Str, row: p.Project(r)})
			}
		}
		sort.Slice(cs, func(i, j int) bool {
			if c := strings.Compare(string(cs[i].key), string(cs[j].key)); c != 0 {
				return c < 0
			}
			return cs[i].node < cs[j].node
		})
		if len(cs) > p.K {
			cs = cs[:p.K]
		}
		res := &answer.Answer{Columns: p.AnswerColumns()}
		for _, c := range cs {
			res.Rows = append(res.Rows, c.row)
			res.Nodes = append(res.Nodes, c.node)
		}
		return res
	}
	return &answer.Answer{}
}

// exactGroups computes every group's components exactly.
func exactGroups(p *Plan, records iter.Seq[Record]) []GroupResult {
	type acc struct {
		keys   []Value
		comps  []CompResult
		values [][]float64
		seen   []map[string]bool
	}
	groups := map[string]*acc{}
	var order []string
	for r := range records {
		if !p.Matches(r) {
			continue
		}
		keys := make([]Value, len(p.GroupBy))
		for i, g := range p.GroupBy {
			keys[i] = Eval(g, r)
		}
		id := string(EncodeRow(keys))
		a := groups[id]
		if a == nil {
			a = &acc{keys: keys, comps: make([]CompResult, len(p.Components)),
				values: make([][]float64, len(p.Components)), seen: make([]map[string]bool, len(p.Components))}
			groups[id] = a
			order = append(order, id)
		}
		for i, c := range p.Components {
			v := Bool(true)
			if c.Arg != nil {
				v = Eval(c.Arg, r)
			}
			if v.IsNull() {
				continue
			}
			cr := &a.comps[i]
			switch c.Kind {
			case CompCount:
				cr.Total++
			case CompSum:
				cr.Total += v.Num
			case CompSumSq:
				cr.Total += v.Num * v.Num
			case CompMin:
				if !cr.Has || Compare(v, cr.Ext) < 0 {
					cr.Ext, cr.Has = v, true
				}
			case CompMax:
				if !cr.Has || Compare(v, cr.Ext) > 0 {
					cr.Ext, cr.Has = v, true
				}
			case CompQuantile:
				a.values[i] = append(a.values[i], v.Num)
				cr.Total++
			case CompDistinct:
				if a.seen[i] == nil {
					a.seen[i] = map[string]bool{}
				}
				a.seen[i][string(EncodeRow([]Value{v}))] = true
				cr.Distinct = float64(len(a.seen[i]))
			}
		}
	}
	var out []GroupResult
	if len(p.GroupBy) == 0 && len(order) == 0 {
		// An ungrouped aggregate over no peers still has one row.
		return []GroupResult{{Comps: make([]CompResult, len(p.Components))}}
	}
	for _, id := range order {
		a := groups[id]
		for i := range a.comps {
			if vals := a.values[i]; vals != nil {
				sort.Float64s(vals)
				a.comps[i].Quantile = func(q float64) (float64, bool) { return NearestRank(vals, q) }
				a.comps[i].Trimmed = func(p float64) (float64, bool) { return TrimmedMean(vals, p) }
			}
		}
		out = append(out, GroupResult{Keys: a.keys, Comps: a.comps})
	}
	return out
}

// NearestRank is the q-quantile of sorted values by the nearest-rank rule:
// the smallest value with at least q of the values at or below it.
func NearestRank(sorted []float64, q float64) (float64, bool) {
	if len(sorted) == 0 {
		return 0, false
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(len(sorted)-1, i))], true
}

// TrimmedMean is the mean of sorted values without the share p of them at
// each end (0 ≤ p < 0.5): value i stands for ranks [i, i+1), and only the
// ranks between p·n and (1-p)·n count, so that a value the cut falls in
// counts in part (aggregate.TrimmedMean reads a histogram the same way).
func TrimmedMean(sorted []float64, p float64) (float64, bool) {
	n := float64(len(sorted))
	lo, hi := p*n, (1-p)*n
	if len(sorted) == 0 || hi <= lo {
		return 0, false
	}
	sum := 0.0
	for i, x := range sorted {
		if w := min(float64(i+1), hi) - max(float64(i), lo); w > 0 {
			sum += w * x
		}
	}
	return sum / (hi - lo), true
}
