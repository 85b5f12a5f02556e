package run

import (
	"fmt"
	"math"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/topk"
)

// The binding of plans to the protocol cores, shared by the node runtime
// and the simulator: the shape of a plan's gossip state, what a peer
// contributes, and how the cores' state reads back as groups and rows.

// Spec is the shape of an aggregate plan's gossip state, with the bound
// of each component's inputs where the catalog knows one, so that values
// from other peers are checked on receipt.
func Spec(p *query.Plan) aggregate.Spec {
	spec := aggregate.Spec{MaxGroups: max(p.MaxGroups, 1)}
	cat := catalogOf(p)
	if p.Table == query.TableLeases {
		spec.Rows = query.MaxLedgerRows
	}
	for _, c := range p.Components {
		bound := 0.0
		if c.Arg != nil && c.Arg.Op == query.OpAttr {
			if a, ok := cat.Lookup(c.Arg.Name); ok && (a.Min != 0 || a.Max != 0) {
				bound = math.Max(math.Abs(a.Min), math.Abs(a.Max))
			}
		}
		switch c.Kind {
		case query.CompCount:
			bound = 1
		case query.CompSumSq:
			bound *= bound
		case query.CompQuantile:
			bound = 0 // buckets are shares, checked by the core
		}
		spec.Bounds = append(spec.Bounds, bound)
		var k aggregate.CompKind
		switch c.Kind {
		case query.CompCount, query.CompSum, query.CompSumSq:
			k = aggregate.Additive
		case query.CompMin:
			k = aggregate.Min
		case query.CompMax:
			k = aggregate.Max
		case query.CompQuantile:
			k = aggregate.Histogram
		case query.CompDistinct:
			k = aggregate.Distinct
		}
		spec.Comps = append(spec.Comps, k)
	}
	return spec
}

// Contribution evaluates an aggregate plan on a peer's record: whether it
// matches, its group, and its value for each component.
func Contribution(p *query.Plan, r query.Record) aggregate.Contribution {
	if !p.Matches(r) {
		return aggregate.Contribution{}
	}
	c := aggregate.Contribution{Match: true, Inputs: make([]aggregate.Input, len(p.Components))}
	if len(p.GroupBy) > 0 {
		keys := make([]query.Value, len(p.GroupBy))
		for i, g := range p.GroupBy {
			keys[i] = query.Eval(g, r)
		}
		c.Group = query.EncodeRow(keys)
	}
	for i, comp := range p.Components {
		v := query.Bool(true)
		if comp.Arg != nil {
			v = query.Eval(comp.Arg, r)
		}
		if v.IsNull() {
			continue
		}
		in := &c.Inputs[i]
		in.Present = true
		switch comp.Kind {
		case query.CompCount:
			in.Num = 1
		case query.CompSum, query.CompQuantile:
			in.Num = v.Num
		case query.CompSumSq:
			in.Num = v.Num * v.Num
		case query.CompMin, query.CompMax:
			in.Num, in.Str, in.IsStr = v.Num, v.Str, v.Kind == query.KindString
		case query.CompDistinct:
			in.Hash = aggregate.Hash64(query.EncodeRow([]query.Value{v}))
		}
	}
	return c
}

// GroupResults reads a peer's estimate as groups. Totals are averages times
// the number of peers: n when the caller knows it (Serf's membership), else
// the gossip estimate 1/Origin (pass n = 0).
func GroupResults(p *query.Plan, e aggregate.Estimate, n float64) ([]query.GroupResult, error) {
	if n <= 0 {
		if e.Origin <= 0 {
			return nil, nil // the originator's mass has not reached this peer
		}
		n = 1 / e.Origin
	}
	var out []query.GroupResult
	for _, g := range e.Groups {
		gr := query.GroupResult{Comps: make([]query.CompResult, len(p.Components))}
		if len(p.GroupBy) > 0 {
			keys, err := query.DecodeRow(g.Key)
			if err != nil || len(keys) != len(p.GroupBy) {
				return nil, fmt.Errorf("run: malformed group key from gossip")
			}
			gr.Keys = keys
		}
		for i, comp := range p.Components {
			cr := &gr.Comps[i]
			switch comp.Kind {
			case query.CompCount, query.CompSum, query.CompSumSq:
				cr.Total = g.Means[i] * n
			case query.CompMin, query.CompMax:
				if g.HasExt[i] {
					x := g.Ext[i]
					cr.Has = true
					if x.IsStr {
						cr.Ext = query.Str(x.Str)
					} else {
						cr.Ext = query.Num(comp.Arg.Kind, x.Num)
					}
				}
			case query.CompQuantile:
				buckets := g.Buckets[i]
				cr.Total = g.Means[i] * n // the histogram's mass: the values it holds
				cr.Quantile = func(q float64) (float64, bool) { return aggregate.Quantile(buckets, q) }
				cr.Trimmed = func(p float64) (float64, bool) { return aggregate.TrimmedMean(buckets, p) }
			case query.CompDistinct:
				cr.Distinct = g.Distinct[i]
			}
		}
		out = append(out, gr)
	}
	if len(out) == 0 && len(p.GroupBy) == 0 {
		// No matching peer seen yet: one row of empty aggregates, as SQL.
		out = []query.GroupResult{{Comps: make([]query.CompResult, len(p.Components))}}
	}
	return out, nil
}

// Entry is a peer's top-k candidate, or nil when it does not match.
func Entry(p *query.Plan, r query.Record) *topk.Entry {
	if !p.Matches(r) {
		return nil
	}
	row := p.Project(r)
	for i, c := range p.Columns {
		if isNode(c) {
			row[i] = query.Value{} // it travels once, as the entry's Node
		}
	}
	return &topk.Entry{Node: r["node"].Str, Key: p.SortKey(r), Row: query.EncodeRow(row)}
}

// isNode reports whether a column is the peer's name, which a top-k row
// leaves out (NULL) and reading fills from the entry's Node.
func isNode(c query.Column) bool {
	return c.Expr != nil && c.Expr.Op == query.OpAttr && c.Expr.Name == "node"
}

// TopResult reads a top-k list as the answer's rows.
func TopResult(p *query.Plan, entries []*topk.Entry) (*answer.Answer, error) {
	res := &answer.Answer{Columns: p.AnswerColumns()}
	for _, e := range entries {
		row, err := query.DecodeRow(e.Row)
		if err != nil || len(row) != len(p.Columns) {
			return nil, fmt.Errorf("run: malformed top-k row from %s", e.Node)
		}
		for i, c := range p.Columns {
			if isNode(c) {
				row[i] = query.Str(e.Node)
			}
		}
		res.Rows = append(res.Rows, row)
		res.Nodes = append(res.Nodes, e.Node)
	}
	return res, nil
}
