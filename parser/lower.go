package parser

import "strings"

// lower turns participle's parse tree into the AST: it folds operator
// repetitions into left-associative Binary nodes, reads literals and names,
// and reports the errors that the grammar alone cannot see (a bad unit, a bad
// escape), each at its position.

func lowerStatement(g *gStatement) (Statement, error) {
	if g.Explain != nil {
		inner, err := lowerInner(g.Explain.Inner)
		if err != nil {
			return nil, err
		}
		return &Explain{Pos: g.Explain.Pos, Stmt: inner}, nil
	}
	return lowerInner(g.Inner)
}

func lowerInner(g *gInner) (Statement, error) {
	switch {
	case g.Select != nil:
		return lowerSelect(g.Select)
	case g.Reserve != nil:
		return lowerReserve(g.Reserve)
	case g.Alter != nil:
		return lowerAlter(g.Alter)
	case g.Watch != nil:
		sel, err := lowerSelect(g.Watch.Select)
		if err != nil {
			return nil, err
		}
		w := &Watch{Pos: g.Watch.Pos, Select: sel}
		if g.Watch.Every != nil {
			if w.Every, err = parseNumber(g.Watch.Every.Pos, g.Watch.Every.Raw); err != nil {
				return nil, err
			}
		}
		return w, nil
	case g.Release != nil:
		name, err := unquoteIdent(g.Release.Name)
		if err != nil {
			return nil, err
		}
		return &Release{Pos: g.Release.Pos, Name: name}, nil
	default:
		show := &Show{Pos: g.Show.Pos}
		switch strings.ToUpper(g.Show.What) {
		case "SUBCLOUDS":
			show.What = ShowSubclouds
		case "ATTRIBUTES":
			show.What = ShowAttributes
		case "POOLS":
			show.What = ShowPools
		case "EVENTS":
			show.What = ShowEvents
		default:
			show.What = ShowMembers
		}
		return show, nil
	}
}

func lowerSelect(g *gSelect) (*Select, error) {
	s := &Select{Pos: g.Pos}
	for _, it := range g.Items {
		item := &SelectItem{Pos: it.Pos, Star: it.Star}
		if !it.Star {
			e, err := lowerOr(it.Expr)
			if err != nil {
				return nil, err
			}
			item.Expr = e
		}
		if it.Alias != nil {
			id, err := unquoteIdent(it.Alias)
			if err != nil {
				return nil, err
			}
			item.Alias = id.Name
		}
		s.Items = append(s.Items, item)
	}
	var err error
	if g.From != nil { // without FROM, a constant SELECT
		if s.From, err = lowerSource(g.From); err != nil {
			return nil, err
		}
	}
	if s.Where, err = lowerOptional(g.Where); err != nil {
		return nil, err
	}
	for _, k := range g.GroupBy {
		e, err := lowerOr(k)
		if err != nil {
			return nil, err
		}
		s.GroupBy = append(s.GroupBy, e)
	}
	if s.OrderBy, err = lowerOrder(g.OrderBy); err != nil {
		return nil, err
	}
	if g.Limit != nil {
		if s.Limit, err = parseNumber(g.Limit.Pos, g.Limit.Raw); err != nil {
			return nil, err
		}
	}
	if s.With, err = lowerOptions(g.With); err != nil {
		return nil, err
	}
	return s, nil
}

func lowerReserve(g *gReserve) (*Reserve, error) {
	r := &Reserve{Pos: g.Pos}
	var err error
	if r.Count, err = parseNumber(g.Count.Pos, g.Count.Raw); err != nil {
		return nil, err
	}
	if g.From != nil {
		if r.From, err = lowerSource(g.From); err != nil {
			return nil, err
		}
	}
	if r.Where, err = lowerOptional(g.Where); err != nil {
		return nil, err
	}
	if r.OrderBy, err = lowerOrder(g.OrderBy); err != nil {
		return nil, err
	}
	if r.Name, err = unquoteIdent(g.Name); err != nil {
		return nil, err
	}
	if g.For != nil {
		if r.For, err = parseNumber(g.For.Pos, g.For.Raw); err != nil {
			return nil, err
		}
	}
	r.NoRepair = g.NoRepair
	if r.With, err = lowerOptions(g.With); err != nil {
		return nil, err
	}
	return r, nil
}

func lowerAlter(g *gAlter) (*Alter, error) {
	a := &Alter{Pos: g.Pos}
	var err error
	if a.Name, err = unquoteIdent(g.Name); err != nil {
		return nil, err
	}
	if g.Resize != nil {
		a.Resize, err = parseNumber(g.Resize.Pos, g.Resize.Raw)
	} else {
		a.Extend, err = parseNumber(g.Extend.Pos, g.Extend.Raw)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func lowerSource(g *gSource) (*Source, error) {
	src := &Source{Pos: g.Pos, Leases: g.Leases}
	if g.Subcloud != nil {
		id, err := unquoteIdent(g.Subcloud)
		if err != nil {
			return nil, err
		}
		src.Subcloud = id.Name
	}
	return src, nil
}

func lowerOrder(keys []*gOrderKey) ([]*OrderKey, error) {
	var out []*OrderKey
	for _, k := range keys {
		e, err := lowerOr(k.Expr)
		if err != nil {
			return nil, err
		}
		out = append(out, &OrderKey{Pos: k.Pos, Expr: e, Desc: strings.EqualFold(k.Dir, "DESC")})
	}
	return out, nil
}

func lowerOptions(opts []*gOption) ([]*Option, error) {
	var out []*Option
	for _, o := range opts {
		opt := &Option{Pos: o.Pos}
		var num *gNumber
		switch {
		case o.Rounds != nil:
			opt.Name, num = OptRounds, o.Rounds
		case o.Timeout != nil:
			opt.Name, num = OptTimeout, o.Timeout
		case o.Accuracy != nil:
			opt.Name, num = OptAccuracy, o.Accuracy
		case o.AtLeast != nil:
			opt.Name, num = OptAtLeast, o.AtLeast
		default:
			opt.Name = OptKey
			s, err := unquoteString(o.Key.Pos, o.Key.Raw)
			if err != nil {
				return nil, err
			}
			opt.Value = &Literal{Pos: o.Key.Pos, Kind: LitString, Str: s, Raw: o.Key.Raw}
		}
		if num != nil {
			lit, err := parseNumber(num.Pos, num.Raw)
			if err != nil {
				return nil, err
			}
			opt.Value = lit
		}
		out = append(out, opt)
	}
	return out, nil
}

func lowerOptional(g *gOr) (Expr, error) {
	if g == nil {
		return nil, nil
	}
	return lowerOr(g)
}

func lowerOr(g *gOr) (Expr, error) {
	left, err := lowerAnd(g.Left)
	if err != nil {
		return nil, err
	}
	for _, r := range g.Rest {
		right, err := lowerAnd(r)
		if err != nil {
			return nil, err
		}
		left = &Binary{Pos: left.Position(), Op: OpOr, L: left, R: right}
	}
	return left, nil
}

func lowerAnd(g *gAnd) (Expr, error) {
	left, err := lowerNot(g.Left)
	if err != nil {
		return nil, err
	}
	for _, r := range g.Rest {
		right, err := lowerNot(r)
		if err != nil {
			return nil, err
		}
		left = &Binary{Pos: left.Position(), Op: OpAnd, L: left, R: right}
	}
	return left, nil
}

func lowerNot(g *gNot) (Expr, error) {
	if g.Not != nil {
		x, err := lowerNot(g.Not)
		if err != nil {
			return nil, err
		}
		return &Unary{Pos: g.Pos, Op: OpNot, X: x}, nil
	}
	return lowerCmp(g.Cmp)
}

var cmpOps = map[string]Op{"=": OpEq, "!=": OpNe, "<>": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe}

func lowerCmp(g *gCmp) (Expr, error) {
	left, err := lowerAdd(g.Left)
	if err != nil || g.Tail == nil {
		return left, err
	}
	t := g.Tail
	switch {
	case t.Op != nil:
		right, err := lowerAdd(t.Op.Right)
		if err != nil {
			return nil, err
		}
		return &Binary{Pos: t.Pos, Op: cmpOps[t.Op.Op], L: left, R: right}, nil
	case t.Is != nil:
		return &IsNull{Pos: t.Pos, X: left, Not: t.Is.Not}, nil
	}
	p := t.Pred
	switch {
	case p.Between != nil:
		lo, err := lowerAdd(p.Between.Low)
		if err != nil {
			return nil, err
		}
		hi, err := lowerAdd(p.Between.High)
		if err != nil {
			return nil, err
		}
		return &Between{Pos: p.Pos, X: left, Not: p.Not, Low: lo, High: hi}, nil
	case p.Like != nil:
		pat, err := lowerAdd(p.Like)
		if err != nil {
			return nil, err
		}
		return &Like{Pos: p.Pos, X: left, Not: p.Not, Pattern: pat}, nil
	}
	in := &In{Pos: p.Pos, X: left, Not: p.Not}
	for _, x := range p.In {
		e, err := lowerOr(x)
		if err != nil {
			return nil, err
		}
		in.List = append(in.List, e)
	}
	return in, nil
}

func lowerAdd(g *gAdd) (Expr, error) {
	left, err := lowerMul(g.Left)
	if err != nil {
		return nil, err
	}
	for _, r := range g.Rest {
		right, err := lowerMul(r.Right)
		if err != nil {
			return nil, err
		}
		op := OpAdd
		if r.Op == "-" {
			op = OpSub
		}
		left = &Binary{Pos: r.Pos, Op: op, L: left, R: right}
	}
	return left, nil
}

func lowerMul(g *gMul) (Expr, error) {
	left, err := lowerUnary(g.Left)
	if err != nil {
		return nil, err
	}
	for _, r := range g.Rest {
		right, err := lowerUnary(r.Right)
		if err != nil {
			return nil, err
		}
		op := map[string]Op{"*": OpMul, "/": OpDiv, "%": OpMod}[r.Op]
		left = &Binary{Pos: r.Pos, Op: op, L: left, R: right}
	}
	return left, nil
}

func lowerUnary(g *gUnary) (Expr, error) {
	if g.Neg != nil {
		x, err := lowerUnary(g.Neg)
		if err != nil {
			return nil, err
		}
		return &Unary{Pos: g.Pos, Op: OpNeg, X: x}, nil
	}
	return lowerPrimary(g.Prim)
}

func lowerPrimary(g *gPrimary) (Expr, error) {
	switch {
	case g.Number != nil:
		return parseNumber(g.Number.Pos, g.Number.Raw)
	case g.String != nil:
		s, err := unquoteString(g.String.Pos, g.String.Raw)
		if err != nil {
			return nil, err
		}
		return &Literal{Pos: g.Pos, Kind: LitString, Str: s, Raw: g.String.Raw}, nil
	case g.Bool != "":
		b := strings.EqualFold(g.Bool, "TRUE")
		return &Literal{Pos: g.Pos, Kind: LitBool, Bool: b, Raw: strings.ToUpper(g.Bool)}, nil
	case g.Null:
		return &Literal{Pos: g.Pos, Kind: LitNull, Raw: "NULL"}, nil
	case g.Sub != nil:
		return lowerOr(g.Sub)
	}
	id, err := unquoteIdent(g.Name.Name)
	if err != nil {
		return nil, err
	}
	if g.Name.Call == nil {
		return id, nil
	}
	call := &Call{Pos: g.Pos, Name: id.Name, Star: g.Name.Call.Star, Distinct: g.Name.Call.Distinct}
	for _, a := range g.Name.Call.Args {
		e, err := lowerOr(a)
		if err != nil {
			return nil, err
		}
		call.Args = append(call.Args, e)
	}
	if t := g.Name.Call.Trim; t != nil {
		lit, err := parseNumber(t.Pos, t.Raw)
		if err != nil {
			return nil, err
		}
		call.Trim = lit
	}
	return call, nil
}
