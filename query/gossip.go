package query

import (
	"fmt"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/topk"
)

// The glue between plans and the protocol cores, shared by the node runtime
// and the simulator: what a peer contributes, and how the cores' state
// reads back as groups and rows.

// AggregateSpec is the shape of an aggregate plan's gossip state.
func (p *Plan) AggregateSpec() aggregate.Spec {
	spec := aggregate.Spec{MaxGroups: max(p.MaxGroups, 1)}
	for _, c := range p.Components {
		var k aggregate.CompKind
		switch c.Kind {
		case CompCount, CompSum, CompSumSq:
			k = aggregate.Additive
		case CompMin:
			k = aggregate.Min
		case CompMax:
			k = aggregate.Max
		case CompQuantile:
			k = aggregate.Histogram
		case CompDistinct:
			k = aggregate.Distinct
		}
		spec.Comps = append(spec.Comps, k)
	}
	return spec
}

// Contribution evaluates an aggregate plan on a peer's record: whether it
// matches, its group, and its value for each component.
func (p *Plan) Contribution(r Record) aggregate.Contribution {
	if !p.Matches(r) {
		return aggregate.Contribution{}
	}
	c := aggregate.Contribution{Match: true, Inputs: make([]aggregate.Input, len(p.Components))}
	if len(p.GroupBy) > 0 {
		keys := make([]Value, len(p.GroupBy))
		for i, g := range p.GroupBy {
			keys[i] = Eval(g, r)
		}
		c.Group = EncodeRow(keys)
	}
	for i, comp := range p.Components {
		v := Bool(true)
		if comp.Arg != nil {
			v = Eval(comp.Arg, r)
		}
		if v.IsNull() {
			continue
		}
		in := &c.Inputs[i]
		in.Present = true
		switch comp.Kind {
		case CompCount:
			in.Num = 1
		case CompSum, CompQuantile:
			in.Num = v.Num
		case CompSumSq:
			in.Num = v.Num * v.Num
		case CompMin, CompMax:
			in.Num, in.Str, in.IsStr = v.Num, v.Str, v.Kind == KindString
		case CompDistinct:
			in.Hash = aggregate.Hash64(EncodeRow([]Value{v}))
		}
	}
	return c
}

// GroupResults reads a peer's estimate as groups. Totals are averages times
// the number of peers: n when the caller knows it (Serf's membership), else
// the gossip estimate 1/Origin (pass n = 0).
func (p *Plan) GroupResults(e aggregate.Estimate, n float64) ([]GroupResult, error) {
	if n <= 0 {
		if e.Origin <= 0 {
			return nil, nil // the originator's mass has not reached this peer
		}
		n = 1 / e.Origin
	}
	var out []GroupResult
	for _, g := range e.Groups {
		gr := GroupResult{Comps: make([]CompResult, len(p.Components))}
		if len(p.GroupBy) > 0 {
			keys, err := DecodeRow(g.Key)
			if err != nil || len(keys) != len(p.GroupBy) {
				return nil, fmt.Errorf("query: malformed group key from gossip")
			}
			gr.Keys = keys
		}
		for i, comp := range p.Components {
			cr := &gr.Comps[i]
			switch comp.Kind {
			case CompCount, CompSum, CompSumSq:
				cr.Total = g.Means[i] * n
			case CompMin, CompMax:
				if g.HasExt[i] {
					x := g.Ext[i]
					cr.Has = true
					if x.IsStr {
						cr.Ext = Str(x.Str)
					} else {
						cr.Ext = Num(comp.Arg.Kind, x.Num)
					}
				}
			case CompQuantile:
				buckets := g.Buckets[i]
				cr.Quantile = func(q float64) (float64, bool) { return aggregate.Quantile(buckets, q) }
			case CompDistinct:
				cr.Distinct = g.Distinct[i]
			}
		}
		out = append(out, gr)
	}
	if len(out) == 0 && len(p.GroupBy) == 0 {
		// No matching peer seen yet: one row of empty aggregates, as SQL.
		out = []GroupResult{{Comps: make([]CompResult, len(p.Components))}}
	}
	return out, nil
}

// Entry is a peer's top-k candidate, or nil when it does not match.
func (p *Plan) Entry(r Record) *topk.Entry {
	if !p.Matches(r) {
		return nil
	}
	return &topk.Entry{Node: r["node"].Str, Key: p.SortKey(r), Row: EncodeRow(p.Project(r))}
}

// TopResult reads a top-k list as the answer's rows.
func (p *Plan) TopResult(entries []*topk.Entry) (*Result, error) {
	res := &Result{Columns: p.Columns}
	for _, e := range entries {
		row, err := DecodeRow(e.Row)
		if err != nil || len(row) != len(p.Columns) {
			return nil, fmt.Errorf("query: malformed top-k row from %s", e.Node)
		}
		res.Rows = append(res.Rows, row)
		res.Nodes = append(res.Nodes, e.Node)
	}
	return res, nil
}
