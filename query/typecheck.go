package query

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/parser"
)

// expr type-checks one AST expression and compiles it into a plan Expr.
func (c *compiler) expr(x parser.Expr, sc scope) (*Expr, error) {
	return c.exprAt(x, sc, 1)
}

func (c *compiler) exprAt(x parser.Expr, sc scope, depth int) (*Expr, error) {
	if depth > MaxExprDepth {
		return nil, parser.Errorf(x.Position(), "expression is nested more than %d deep", MaxExprDepth)
	}
	c.nodes++
	if c.nodes > MaxExprNodes {
		return nil, parser.Errorf(x.Position(), "statement has more than %d expression nodes", MaxExprNodes)
	}
	// In aggregate mode, an expression equal to a GROUP BY key is that key.
	if sc.agg && sc.inAgg == "" {
		text := x.String()
		for i, g := range c.groupText {
			if g == text {
				return &Expr{Op: OpKeyRef, Kind: c.groupKind[i], Index: i}, nil
			}
		}
	}
	sub := func(y parser.Expr) (*Expr, error) { return c.exprAt(y, sc, depth+1) }

	switch x := x.(type) {
	case *parser.Literal:
		return c.literal(x)

	case *parser.Ident:
		if sc.agg && sc.inAgg == "" {
			return nil, parser.Errorf(x.Pos, "column %s must appear in GROUP BY or inside an aggregate", parser.QuoteIdent(x.Name))
		}
		a, ok := c.cat.Lookup(x.Name)
		if !ok {
			err := parser.Errorf(x.Pos, "unknown attribute %q%s", x.Name, c.cat.suggest(x.Name))
			if !c.cat.open || !UserTag(x.Name) {
				return nil, err
			}
			a = Attr{Name: x.Name, Kind: KindString, Origin: OriginTag, Doc: "Serf tag"}
			if !slices.ContainsFunc(c.unlisted, func(u Unlisted) bool { return u.Name == x.Name }) {
				c.unlisted = append(c.unlisted, Unlisted{Name: x.Name, Err: err})
			}
		}
		return &Expr{Op: OpAttr, Kind: a.Kind, Name: a.Name}, nil

	case *parser.Unary:
		arg, err := sub(x.X)
		if err != nil {
			return nil, err
		}
		if x.Op == parser.OpNot {
			if !isBoolish(arg.Kind) {
				return nil, parser.Errorf(x.Pos, "NOT needs a condition, found %s", arg.Kind)
			}
			return &Expr{Op: OpNot, Kind: KindBool, Args: []*Expr{arg}}, nil
		}
		if !isNumberish(arg.Kind) {
			return nil, parser.Errorf(x.Pos, "unary minus needs a number, found %s", arg.Kind)
		}
		return &Expr{Op: OpNeg, Kind: numKind(arg.Kind), Args: []*Expr{arg}}, nil

	case *parser.Binary:
		l, err := sub(x.L)
		if err != nil {
			return nil, err
		}
		r, err := sub(x.R)
		if err != nil {
			return nil, err
		}
		return c.binary(x, l, r)

	case *parser.In:
		v, err := sub(x.X)
		if err != nil {
			return nil, err
		}
		if len(x.List) > MaxInList {
			return nil, parser.Errorf(x.List[MaxInList].Position(), "IN list has more than %d values", MaxInList)
		}
		e := &Expr{Op: OpIn, Kind: KindBool, Args: []*Expr{v}}
		for _, y := range x.List {
			item, err := sub(y)
			if err != nil {
				return nil, err
			}
			if err := comparable(y.Position(), "compare", v.Kind, item.Kind); err != nil {
				return nil, err
			}
			e.Args = append(e.Args, item)
		}
		return negate(e, x.Not), nil

	case *parser.Between:
		v, err := sub(x.X)
		if err != nil {
			return nil, err
		}
		lo, err := sub(x.Low)
		if err != nil {
			return nil, err
		}
		hi, err := sub(x.High)
		if err != nil {
			return nil, err
		}
		if err := comparable(x.Low.Position(), "compare", v.Kind, lo.Kind); err != nil {
			return nil, err
		}
		if err := comparable(x.High.Position(), "compare", v.Kind, hi.Kind); err != nil {
			return nil, err
		}
		return negate(&Expr{Op: OpBetween, Kind: KindBool, Args: []*Expr{v, lo, hi}}, x.Not), nil

	case *parser.Like:
		v, err := sub(x.X)
		if err != nil {
			return nil, err
		}
		pat, err := sub(x.Pattern)
		if err != nil {
			return nil, err
		}
		for _, k := range []Kind{v.Kind, pat.Kind} {
			if k != KindString && k != KindNull {
				return nil, parser.Errorf(x.Pos, "LIKE needs strings, found %s", k)
			}
		}
		return negate(&Expr{Op: OpLike, Kind: KindBool, Args: []*Expr{v, pat}}, x.Not), nil

	case *parser.IsNull:
		v, err := sub(x.X)
		if err != nil {
			return nil, err
		}
		return negate(&Expr{Op: OpIsNull, Kind: KindBool, Args: []*Expr{v}}, x.Not), nil

	case *parser.Call:
		return c.call(x, sc, depth)
	}
	return nil, parser.Errorf(x.Position(), "unsupported expression %s", x)
}

func negate(e *Expr, not bool) *Expr {
	if !not {
		return e
	}
	return &Expr{Op: OpNot, Kind: KindBool, Args: []*Expr{e}}
}

func (c *compiler) literal(x *parser.Literal) (*Expr, error) {
	switch x.Kind {
	case parser.LitString:
		if len(x.Str) > MaxStringBytes {
			return nil, parser.Errorf(x.Pos, "string of %d bytes is longer than the limit of %d", len(x.Str), MaxStringBytes)
		}
		return constant(Str(x.Str)), nil
	case parser.LitBool:
		return constant(Bool(x.Bool)), nil
	case parser.LitNull:
		return constant(Null), nil
	}
	kind := map[parser.Unit]Kind{
		parser.UnitNone: KindNumber, parser.UnitBytes: KindBytes,
		parser.UnitDuration: KindDuration, parser.UnitPercent: KindRatio,
	}[x.Unit]
	return constant(Num(kind, x.Num)), nil
}

func isBoolish(k Kind) bool   { return k == KindBool || k == KindNull }
func isNumberish(k Kind) bool { return k.Numeric() || k == KindNull }

// numKind is the kind a numeric result keeps; NULL stays a plain number.
func numKind(k Kind) Kind {
	if k == KindNull {
		return KindNumber
	}
	return k
}

var opFromAST = map[parser.Op]Op{
	parser.OpOr: OpOr, parser.OpAnd: OpAnd, parser.OpEq: OpEq, parser.OpNe: OpNe,
	parser.OpLt: OpLt, parser.OpLe: OpLe, parser.OpGt: OpGt, parser.OpGe: OpGe,
	parser.OpAdd: OpAdd, parser.OpSub: OpSub, parser.OpMul: OpMul, parser.OpDiv: OpDiv, parser.OpMod: OpMod,
}

func (c *compiler) binary(x *parser.Binary, l, r *Expr) (*Expr, error) {
	op := opFromAST[x.Op]
	e := &Expr{Op: op, Args: []*Expr{l, r}}
	switch {
	case op == OpAnd || op == OpOr:
		for i, k := range []Kind{l.Kind, r.Kind} {
			if !isBoolish(k) {
				side := [2]string{"left", "right"}[i]
				return nil, parser.Errorf(x.Pos, "%s needs conditions on both sides, found %s on the %s", x.Op, k, side)
			}
		}
		e.Kind = KindBool
	case x.Op.IsComparison():
		if err := comparable(x.Pos, "compare", l.Kind, r.Kind); err != nil {
			return nil, err
		}
		e.Kind = KindBool
	default:
		k, err := arithKind(x, l.Kind, r.Kind)
		if err != nil {
			return nil, err
		}
		e.Kind = k
	}
	return e, nil
}

// comparable checks that values of kinds a and b may be compared.
func comparable(pos parser.Pos, verb string, a, b Kind) error {
	switch {
	case a == KindNull || b == KindNull:
		return nil
	case a.Numeric() && b.Numeric():
		if dimOf(a) == dimOf(b) || a == KindNumber || b == KindNumber {
			return nil
		}
	case a == b:
		return nil
	}
	return parser.Errorf(pos, "cannot %s %s with %s", verb, a, b)
}

// arithKind gives the kind of l op r for + - * / %, or an error: sizes and
// durations do not mix, and a plain number takes the unit of what it meets.
func arithKind(x *parser.Binary, l, r Kind) (Kind, error) {
	if l == KindNull || r == KindNull {
		return numKind(max(l, r)), nil
	}
	if !l.Numeric() || !r.Numeric() {
		bad := l
		if l.Numeric() {
			bad = r
		}
		return 0, parser.Errorf(x.Pos, "%s needs numbers, found %s", x.Op, bad)
	}
	switch x.Op {
	case parser.OpAdd, parser.OpSub, parser.OpMod:
		switch {
		case l == r:
			return l, nil
		case r == KindNumber:
			return l, nil
		case l == KindNumber:
			return r, nil
		case dimOf(l) == dimNone && dimOf(r) == dimNone:
			return KindNumber, nil
		}
		verb := map[parser.Op]string{parser.OpAdd: "add", parser.OpSub: "subtract", parser.OpMod: "take the remainder of"}[x.Op]
		return 0, parser.Errorf(x.Pos, "cannot %s %s and %s", verb, l, r)
	case parser.OpMul:
		switch {
		case dimOf(l) != dimNone && dimOf(r) != dimNone:
			return 0, parser.Errorf(x.Pos, "cannot multiply %s by %s", l, r)
		case dimOf(l) != dimNone:
			return l, nil
		case dimOf(r) != dimNone:
			return r, nil
		case l == KindNumber:
			return r, nil
		case r == KindNumber:
			return l, nil
		}
		return KindNumber, nil
	}
	// Division.
	switch {
	case dimOf(l) != dimNone && dimOf(l) == dimOf(r):
		return KindNumber, nil // mem_free / 1GiB is a plain number
	case dimOf(r) != dimNone:
		return 0, parser.Errorf(x.Pos, "cannot divide %s by %s", l, r)
	case dimOf(l) != dimNone:
		return l, nil
	case r == KindNumber && l != KindNumber:
		return l, nil
	}
	return KindNumber, nil
}

// functionNames lists every function, for suggestions.
func functionNames() []string {
	var names []string
	for n := range aggNames {
		names = append(names, n)
	}
	for n := range scalarFuncs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (c *compiler) call(x *parser.Call, sc scope, depth int) (*Expr, error) {
	name := strings.ToLower(x.Name)
	if f, ok := aggNames[name]; ok {
		return c.aggregate(x, f, name, sc, depth)
	}
	if x.Trim != nil {
		return nil, parser.Errorf(x.Trim.Pos, "TRIM applies only to AVG, not to %s", strings.ToUpper(name))
	}
	arity, ok := scalarFuncs[name]
	if !ok {
		msg := ""
		if s := parser.Suggest(name, functionNames()); s != "" {
			msg = " (did you mean " + strings.ToUpper(s) + "?)"
		}
		return nil, parser.Errorf(x.Pos, "unknown function %s%s", x.Name, msg)
	}
	upper := strings.ToUpper(name)
	if x.Star || x.Distinct {
		return nil, parser.Errorf(x.Pos, "%s takes neither * nor DISTINCT", upper)
	}
	if len(x.Args) < arity[0] || len(x.Args) > arity[1] {
		return nil, parser.Errorf(x.Pos, "%s takes %s, found %d", upper, argCount(arity), len(x.Args))
	}
	if name == "tag" {
		// TAG('name') reads a Serf tag the catalog has not seen yet.
		lit, ok := x.Args[0].(*parser.Literal)
		if !ok || lit.Kind != parser.LitString || lit.Str == "" {
			return nil, parser.Errorf(x.Args[0].Position(), "TAG needs a tag name in quotes, such as TAG('rack')")
		}
		if sc.agg && sc.inAgg == "" {
			return nil, parser.Errorf(x.Pos, "column %s must appear in GROUP BY or inside an aggregate", x.String())
		}
		if len(lit.Str) > MaxStringBytes {
			return nil, parser.Errorf(lit.Pos, "tag name is longer than %d bytes", MaxStringBytes)
		}
		return &Expr{Op: OpAttr, Kind: KindString, Name: lit.Str}, nil
	}
	e := &Expr{Op: OpFunc, Name: name}
	for _, a := range x.Args {
		arg, err := c.exprAt(a, sc, depth+1)
		if err != nil {
			return nil, err
		}
		e.Args = append(e.Args, arg)
	}
	first := e.Args[0].Kind
	switch name {
	case "lower", "upper", "length":
		if first != KindString && first != KindNull {
			return nil, parser.Errorf(x.Args[0].Position(), "%s needs a string, found %s", upper, first)
		}
		e.Kind = KindString
		if name == "length" {
			e.Kind = KindCount
		}
	case "abs", "round", "floor", "ceil":
		if !isNumberish(first) {
			return nil, parser.Errorf(x.Args[0].Position(), "%s needs a number, found %s", upper, first)
		}
		e.Kind = numKind(first)
	case "coalesce":
		e.Kind = KindNull
		for i, a := range e.Args {
			if err := comparable(x.Args[i].Position(), "mix", first, a.Kind); err != nil {
				return nil, err
			}
			if e.Kind == KindNull {
				e.Kind = a.Kind
			}
		}
	}
	return e, nil
}

func argCount(arity [2]int) string {
	switch {
	case arity[0] == arity[1] && arity[0] == 1:
		return "1 argument"
	case arity[0] == arity[1]:
		return strconv.Itoa(arity[0]) + " arguments"
	}
	return "at least " + strconv.Itoa(arity[0]) + " argument(s)"
}

// aggregate compiles an aggregate call into an AggRef, registering the
// aggregate and its components.
func (c *compiler) aggregate(x *parser.Call, f AggFunc, name string, sc scope, depth int) (*Expr, error) {
	upper := strings.ToUpper(name)
	switch {
	case !sc.agg:
		return nil, parser.Errorf(x.Pos, "aggregate %s is not allowed in %s", upper, sc.clause)
	case sc.inAgg != "":
		return nil, parser.Errorf(x.Pos, "aggregate %s cannot be nested inside %s", upper, sc.inAgg)
	case x.Star && f != AggCount:
		return nil, parser.Errorf(x.Pos, "* is only allowed in COUNT(*), not in %s", upper)
	case x.Distinct && f != AggCount:
		return nil, parser.Errorf(x.Pos, "DISTINCT is only supported in COUNT(DISTINCT x), not in %s", upper)
	}
	want := 1
	if name == "percentile" {
		want = 2
	}
	if x.Star {
		want = 0
	}
	if len(x.Args) != want {
		usage := map[string]string{"percentile": "2 arguments (expression, fraction)"}[name]
		if usage == "" {
			usage = "1 argument"
			if f == AggCount {
				usage = "* or 1 argument"
			}
		}
		return nil, parser.Errorf(x.Pos, "%s takes %s, found %d", upper, usage, len(x.Args))
	}
	agg := Aggregate{Func: f, Text: x.String()}
	inner := scope{clause: sc.clause, agg: true, inAgg: upper}
	if len(x.Args) > 0 {
		arg, err := c.exprAt(x.Args[0], inner, depth+1)
		if err != nil {
			return nil, err
		}
		agg.Arg = arg
	}
	argKind := KindNull
	if agg.Arg != nil {
		argKind = agg.Arg.Kind
	}
	switch f {
	case AggCount:
		agg.Kind = KindCount
		if x.Distinct {
			agg.Func = AggCountDistinct
		}
	case AggMin, AggMax:
		if !isNumberish(argKind) && argKind != KindString {
			return nil, parser.Errorf(x.Args[0].Position(), "%s needs a number or a string, found %s", upper, argKind)
		}
		agg.Kind = numKindOr(argKind)
	default:
		if !isNumberish(argKind) {
			return nil, parser.Errorf(x.Args[0].Position(), "%s needs a number, found %s", upper, argKind)
		}
		agg.Kind = numKind(argKind)
		switch {
		case f == AggVariance:
			agg.Kind = KindNumber // in squared units
		case f == AggSum && agg.Kind == KindRatio:
			agg.Kind = KindNumber // a sum of fractions is no fraction
		case f == AggAvg && agg.Kind == KindCount:
			agg.Kind = KindNumber
		}
	}
	if name == "median" {
		agg.Param = 0.5
	}
	if name == "percentile" {
		lit, ok := x.Args[1].(*parser.Literal)
		if !ok || lit.Kind != parser.LitNumber || (lit.Unit != parser.UnitNone && lit.Unit != parser.UnitPercent) {
			return nil, parser.Errorf(x.Args[1].Position(), "PERCENTILE needs a constant fraction such as 0.9 or 90%%")
		}
		if lit.Num < 0 || lit.Num > 1 {
			return nil, parser.Errorf(lit.Pos, "PERCENTILE fraction must be between 0 and 1, found %s", lit.Raw)
		}
		agg.Param = lit.Num
	}
	if t := x.Trim; t != nil {
		switch {
		case f != AggAvg:
			return nil, parser.Errorf(t.Pos, "TRIM applies only to AVG, not to %s", upper)
		case t.Unit != parser.UnitNone && t.Unit != parser.UnitPercent:
			return nil, parser.Errorf(t.Pos, "TRIM needs a constant share such as 1%% or 0.01, found %s", t.Raw)
		case !(t.Num > 0 && t.Num < 0.5):
			return nil, parser.Errorf(t.Pos, "TRIM share must be above 0 and below 50%%, found %s", t.Raw)
		}
		agg.Func, agg.Param = AggTrimmedAvg, t.Num
	}
	// The same aggregate written twice is computed once.
	text := aggKey(agg)
	for i, t := range c.aggText {
		if t == text {
			return &Expr{Op: OpAggRef, Kind: c.aggs[i].Kind, Index: i}, nil
		}
	}
	agg.Comps = c.componentsFor(agg)
	c.aggs = append(c.aggs, agg)
	c.aggText = append(c.aggText, text)
	return &Expr{Op: OpAggRef, Kind: agg.Kind, Index: len(c.aggs) - 1}, nil
}

func numKindOr(k Kind) Kind {
	if k == KindString {
		return k
	}
	return numKind(k)
}

func aggKey(a Aggregate) string {
	return a.Func.String() + "|" + a.Arg.String() + "|" + answer.FormatNumber(a.Param)
}

// componentsFor lists the components an aggregate is computed from.
func (c *compiler) componentsFor(a Aggregate) []int {
	var kinds []CompKind
	switch a.Func {
	case AggCount:
		kinds = []CompKind{CompCount}
	case AggCountDistinct:
		kinds = []CompKind{CompDistinct}
	case AggSum, AggAvg:
		// The count of non-NULL values makes SUM of nothing NULL, as in SQL,
		// and is AVG's denominator.
		kinds = []CompKind{CompSum, CompCount}
	case AggMin:
		kinds = []CompKind{CompMin}
	case AggMax:
		kinds = []CompKind{CompMax}
	case AggStddev, AggVariance:
		kinds = []CompKind{CompSum, CompSumSq, CompCount}
	case AggPercentile, AggTrimmedAvg:
		kinds = []CompKind{CompQuantile}
	}
	idx := make([]int, len(kinds))
	for i, k := range kinds {
		idx[i] = c.addComponent(k, a.Arg)
	}
	return idx
}

func (c *compiler) addComponent(k CompKind, arg *Expr) int {
	for i, comp := range c.comps {
		if comp.Kind == k && comp.Arg.String() == arg.String() && (comp.Arg == nil) == (arg == nil) {
			return i
		}
	}
	c.comps = append(c.comps, Component{Kind: k, Arg: arg})
	return len(c.comps) - 1
}
