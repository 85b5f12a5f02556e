package query

import (
	"errors"
	"fmt"
	"math"

	"github.com/fxamacker/cbor/v2"
	"github.com/peerq/peerq/internal/strictcbor"
	"github.com/peerq/peerq/parser"
)

// PlanVersion is the first byte of an encoded plan. A peer refuses versions
// it does not know rather than guess at their meaning.
const PlanVersion = 1

// The wire format is the version byte followed by the plan in CBOR (RFC
// 8949), core deterministic encoding, so that equal plans encode to equal
// bytes and Hash is stable.
var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	// Each level of an expression is a map holding an array.
	decMode = strictcbor.DecMode(2*MaxExprDepth+16, MaxExprNodes, 32)
}

// Encode returns the plan's wire form.
func (p *Plan) Encode() ([]byte, error) {
	body, err := encMode.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("query: encode plan: %w", err)
	}
	if len(body)+1 > MaxPlanBytes {
		return nil, fmt.Errorf("query: plan of %d bytes is larger than the limit of %d", len(body)+1, MaxPlanBytes)
	}
	return append([]byte{PlanVersion}, body...), nil
}

// ErrMalformedPlan wraps every reason Decode refuses a plan.
var ErrMalformedPlan = errors.New("query: malformed plan")

// Decode reads a plan from the network. It refuses oversized, malformed or
// out-of-limits input with an error wrapping ErrMalformedPlan; it never
// panics.
func Decode(b []byte) (*Plan, error) {
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("%w: empty", ErrMalformedPlan)
	case len(b) > MaxPlanBytes:
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedPlan, len(b), MaxPlanBytes)
	case b[0] != PlanVersion:
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformedPlan, b[0], PlanVersion)
	}
	var p Plan
	if err := decMode.Unmarshal(b[1:], &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPlan, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPlan, err)
	}
	if p.Empty() {
		// LIMIT 0 is answered by its asker alone: no peer runs it.
		return nil, fmt.Errorf("%w: LIMIT 0 is never sent", ErrMalformedPlan)
	}
	return &p, nil
}

// Validate checks every invariant and limit of a plan, so that evaluating a
// decoded plan is safe and bounded.
func (p *Plan) Validate() error {
	if p.Kind < PlanAggregate || p.Kind >= planKindEnd {
		return fmt.Errorf("unknown plan kind %d", p.Kind)
	}
	if p.Owner != "" && p.Subcloud == "" {
		return errors.New("a subcloud's owner without FROM SUBCLOUD")
	}
	if (p.ByOwner || len(p.Members) > 0) && (p.Owner == "" || !p.FromTags) || len(p.Members) > MaxListed {
		return fmt.Errorf("a subcloud's %d members listed without its owner, or for a statement that does not read only the membership", len(p.Members))
	}
	for _, m := range p.Members {
		if m == "" || len(m) > MaxStringBytes {
			return errors.New("a listed member's name is empty or too long")
		}
	}
	if len(p.Text) > parser.MaxInputBytes || len(p.Subcloud) > MaxStringBytes || len(p.Owner) > MaxStringBytes {
		return errors.New("text too long")
	}
	if p.Rounds < 0 || p.Rounds > MaxRounds {
		return fmt.Errorf("rounds %d outside 0..%d", p.Rounds, MaxRounds)
	}
	if !finite(p.TimeoutSeconds) || p.TimeoutSeconds < 0 {
		return fmt.Errorf("bad timeout %v", p.TimeoutSeconds)
	}
	if p.Kind != PlanLocal && !(p.Accuracy > 0 && p.Accuracy < 1) {
		return fmt.Errorf("accuracy %v outside (0,1)", p.Accuracy)
	}
	if p.K < 0 || p.K > MaxK {
		return fmt.Errorf("k %d outside 0..%d", p.K, MaxK)
	}
	if len(p.Columns) > MaxColumns || len(p.Order) > MaxOrderKeys || len(p.GroupBy) > MaxGroupKeys ||
		len(p.Aggs) > MaxAggregates || len(p.Components) > 3*MaxAggregates+1 {
		return errors.New("too many columns, keys, aggregates or components")
	}
	v := &validator{}
	// Expressions over records.
	if err := v.expr(p.Filter, false, 1); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	if p.Filter != nil && p.Filter.Kind != KindBool && p.Filter.Kind != KindNull {
		return fmt.Errorf("filter is %s, not a condition", p.Filter.Kind)
	}
	for _, g := range p.GroupBy {
		if err := v.expr(g, false, 1); err != nil {
			return fmt.Errorf("group by: %w", err)
		}
	}
	for _, c := range p.Components {
		if c.Kind < CompCount || c.Kind >= compKindEnd {
			return fmt.Errorf("unknown component kind %d", c.Kind)
		}
		if err := v.expr(c.Arg, false, 1); err != nil {
			return fmt.Errorf("component: %w", err)
		}
	}
	// Output expressions read result rows in aggregate plans, records
	// otherwise.
	row := p.Kind == PlanAggregate
	v.keys, v.aggs = len(p.GroupBy), len(p.Aggs)
	for _, c := range p.Columns {
		if c.Expr == nil || len(c.Name) > MaxStringBytes {
			return errors.New("column without expression or with too long a name")
		}
		if err := v.expr(c.Expr, row, 1); err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
	}
	for _, k := range p.Order {
		if k.Expr == nil {
			return errors.New("order key without expression")
		}
		if err := v.expr(k.Expr, row, 1); err != nil {
			return fmt.Errorf("order by: %w", err)
		}
	}
	for i, a := range p.Aggs {
		if a.Func < AggCount || a.Func >= aggFuncEnd || !finite(a.Param) || a.Param < 0 || a.Param > 1 ||
			a.Func == AggTrimmedAvg && !(a.Param > 0 && a.Param < 0.5) {
			return fmt.Errorf("aggregate %d is malformed", i)
		}
		if len(a.Comps) == 0 || len(a.Comps) > 3 || len(a.Text) > MaxStringBytes {
			return fmt.Errorf("aggregate %d is malformed", i)
		}
		for _, c := range a.Comps {
			if c < 0 || c >= len(p.Components) {
				return fmt.Errorf("aggregate %d refers to component %d of %d", i, c, len(p.Components))
			}
		}
		if err := v.expr(a.Arg, false, 1); err != nil {
			return fmt.Errorf("aggregate %d: %w", i, err)
		}
	}
	switch p.Kind {
	case PlanAggregate:
		if p.MaxGroups < 1 || p.MaxGroups > MaxGroups {
			return fmt.Errorf("max groups %d outside 1..%d", p.MaxGroups, MaxGroups)
		}
		if len(p.Components) == 0 || p.Components[0].Kind != CompCount || p.Components[0].Arg != nil {
			return errors.New("aggregate plan must start with COUNT(*)")
		}
	case PlanTopK, PlanReserve:
		if p.K < 1 && !(p.Kind == PlanTopK && p.Empty()) || len(p.Order) == 0 || len(p.Aggs) > 0 || len(p.GroupBy) > 0 {
			return errors.New("top-k plan needs k, an order and no aggregates")
		}
	}
	if (p.Kind == PlanReserve) != (p.Reserve != nil) {
		return errors.New("reserve spec present on the wrong kind of plan")
	}
	if r := p.Reserve; r != nil {
		if r.N < 1 || r.N > MaxReserve || r.AtLeast < 0 || r.AtLeast > r.N || r.Name == "" ||
			len(r.Name) > MaxStringBytes || len(r.Key) > 128 || !finite(r.LeaseSeconds) ||
			r.LeaseSeconds < MinLeaseSeconds || r.LeaseSeconds > MaxLeaseSeconds {
			return errors.New("reserve spec out of range")
		}
	}
	if p.Table >= tableEnd || p.Table == TableLeases && (p.Kind != PlanAggregate || p.FromTags) {
		return errors.New("table out of range, or leases read other than by aggregates")
	}
	if w := p.Watch; w != nil && (p.Kind == PlanLocal || p.Kind == PlanReserve || !finite(w.EverySeconds) ||
		w.EverySeconds < MinWatchSeconds || w.EverySeconds > MaxWatchSeconds) {
		return errors.New("watch spec out of range, or on a statement that cannot be watched")
	}
	if (p.Kind == PlanLocal) != (p.Local != nil) {
		return errors.New("local spec present on the wrong kind of plan")
	}
	if l := p.Local; l != nil {
		set := 0
		for _, b := range []bool{l.Release != "", l.Show != 0, l.Alter != nil, l.Const} {
			if b {
				set++
			}
		}
		if set != 1 || l.Show >= showEnd || len(l.Release) > MaxStringBytes {
			return errors.New("local spec must be one SHOW, RELEASE, ALTER or constant SELECT")
		}
		if a := l.Alter; a != nil && (a.Name == "" || len(a.Name) > MaxStringBytes || (a.Resize > 0) == (a.ExtendSeconds > 0) ||
			a.Resize < 0 || a.Resize > MaxReserve || !finite(a.ExtendSeconds) || a.ExtendSeconds < 0 ||
			a.ExtendSeconds > 0 && (a.ExtendSeconds < MinLeaseSeconds || a.ExtendSeconds > MaxLeaseSeconds)) {
			return errors.New("alter spec out of range")
		}
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

type validator struct {
	nodes      int
	keys, aggs int
}

// expr checks one expression: known ops, right arity, bounded depth and
// size, references in range. row allows KeyRef and AggRef.
func (v *validator) expr(e *Expr, row bool, depth int) error {
	if e == nil {
		return nil
	}
	if depth > MaxExprDepth {
		return fmt.Errorf("expression deeper than %d", MaxExprDepth)
	}
	v.nodes++
	if v.nodes > MaxExprNodes {
		return fmt.Errorf("more than %d expression nodes", MaxExprNodes)
	}
	if !e.Kind.Valid() {
		return fmt.Errorf("unknown kind %d", e.Kind)
	}
	if len(e.Name) > MaxStringBytes {
		return errors.New("name too long")
	}
	n := len(e.Args)
	arity := func(lo, hi int) error {
		if n < lo || n > hi {
			return fmt.Errorf("%s with %d arguments", e.Op, n)
		}
		return nil
	}
	var err error
	switch e.Op {
	case OpConst:
		err = arity(0, 0)
		if err == nil {
			err = checkValue(e.Val)
		}
	case OpAttr:
		err = arity(0, 0)
		if err == nil && e.Name == "" {
			err = errors.New("attribute without a name")
		}
	case OpKeyRef, OpAggRef:
		err = arity(0, 0)
		limit := v.keys
		if e.Op == OpAggRef {
			limit = v.aggs
		}
		if err == nil && (!row || e.Index < 0 || e.Index >= limit) {
			err = fmt.Errorf("%s %d out of range", e.Op, e.Index)
		}
	case OpNot, OpNeg, OpIsNull:
		err = arity(1, 1)
	case OpAnd, OpOr, OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpAdd, OpSub, OpMul, OpDiv, OpMod, OpLike:
		err = arity(2, 2)
	case OpIn:
		err = arity(2, MaxInList+1)
	case OpBetween:
		err = arity(3, 3)
	case OpFunc:
		ar, ok := scalarFuncs[e.Name]
		if !ok || e.Name == "tag" {
			err = fmt.Errorf("unknown function %q", e.Name)
		} else {
			err = arity(ar[0], ar[1])
		}
	default:
		err = fmt.Errorf("unknown op %d", e.Op)
	}
	if err != nil {
		return err
	}
	for _, a := range e.Args {
		if a == nil {
			return errors.New("nil argument")
		}
		if err := v.expr(a, row, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v *Value) error {
	if v == nil {
		return errors.New("constant without a value")
	}
	if !v.Kind.Valid() || !finite(v.Num) || len(v.Str) > MaxStringBytes {
		return errors.New("malformed constant")
	}
	return nil
}
