package query

import (
	"math"
	"strconv"
	"strings"

	"github.com/peerq/peerq/answer"
)

// Op is the operation of an expression node in a Plan.
type Op uint8

// The operations. Arity is checked by Validate.
const (
	OpConst   Op = iota + 1 // Val
	OpAttr                  // the record's attribute Name
	OpKeyRef                // the Index-th GROUP BY key of a result row
	OpAggRef                // the Index-th aggregate of a result row
	OpAnd                   // Args[0] AND Args[1]
	OpOr                    // Args[0] OR Args[1]
	OpNot                   // NOT Args[0]
	OpEq                    // Args[0] = Args[1]
	OpNe                    // !=
	OpLt                    // <
	OpLe                    // <=
	OpGt                    // >
	OpGe                    // >=
	OpAdd                   // +
	OpSub                   // -
	OpMul                   // *
	OpDiv                   // /
	OpMod                   // %
	OpNeg                   // -Args[0]
	OpIn                    // Args[0] IN (Args[1:])
	OpBetween               // Args[0] BETWEEN Args[1] AND Args[2]
	OpLike                  // Args[0] LIKE Args[1]
	OpIsNull                // Args[0] IS NULL
	OpFunc                  // the scalar function Name over Args
	opEnd
)

var opNames = [...]string{"", "const", "attr", "key", "agg", "AND", "OR", "NOT", "=", "!=", "<", "<=", ">", ">=",
	"+", "-", "*", "/", "%", "neg", "IN", "BETWEEN", "LIKE", "IS NULL", "func"}

func (o Op) String() string {
	if o > 0 && o < opEnd {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Expr is a node of a safe expression tree: data, not code. A peer evaluates
// it with Eval; Validate bounds its size and depth.
type Expr struct {
	Op    Op      `cbor:"1,keyasint"`
	Kind  Kind    `cbor:"2,keyasint,omitempty"` // the result kind
	Name  string  `cbor:"3,keyasint,omitempty"` // OpAttr, OpFunc
	Val   *Value  `cbor:"4,keyasint,omitempty"` // OpConst
	Index int     `cbor:"5,keyasint,omitempty"` // OpKeyRef, OpAggRef
	Args  []*Expr `cbor:"6,keyasint,omitempty"`
}

// String prints e in PQL, for EXPLAIN and errors.
func (e *Expr) String() string {
	if e == nil {
		return "TRUE"
	}
	a := func(i int) string { return e.Args[i].String() }
	switch e.Op {
	case OpConst:
		return literalText(*e.Val)
	case OpAttr:
		return quoteName(e.Name)
	case OpKeyRef:
		return "$key" + strconv.Itoa(e.Index)
	case OpAggRef:
		return "$agg" + strconv.Itoa(e.Index)
	case OpNot:
		return "(NOT " + a(0) + ")"
	case OpNeg:
		return "(-" + a(0) + ")"
	case OpIn:
		parts := make([]string, len(e.Args)-1)
		for i := range parts {
			parts[i] = a(i + 1)
		}
		return "(" + a(0) + " IN (" + strings.Join(parts, ", ") + "))"
	case OpBetween:
		return "(" + a(0) + " BETWEEN " + a(1) + " AND " + a(2) + ")"
	case OpLike:
		return "(" + a(0) + " LIKE " + a(1) + ")"
	case OpIsNull:
		return "(" + a(0) + " IS NULL)"
	case OpFunc:
		parts := make([]string, len(e.Args))
		for i := range parts {
			parts[i] = a(i)
		}
		return strings.ToUpper(e.Name) + "(" + strings.Join(parts, ", ") + ")"
	}
	if len(e.Args) == 2 {
		return "(" + a(0) + " " + e.Op.String() + " " + a(1) + ")"
	}
	return e.Op.String()
}

func quoteName(n string) string {
	for i, r := range n {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
		}
	}
	if n == "" {
		return `""`
	}
	return n
}

func literalText(v Value) string {
	switch v.Kind {
	case KindString:
		return "'" + strings.ReplaceAll(v.Str, "'", "''") + "'"
	case KindBool:
		if v.Bool {
			return "TRUE"
		}
		return "FALSE"
	case KindNull:
		return "NULL"
	case KindBytes:
		return withUnit(v.Num, byteUnits)
	case KindDuration:
		return withUnit(v.Num, durationUnits)
	case KindRatio:
		return answer.FormatNumber(v.Num*100) + "%"
	}
	return answer.FormatNumber(v.Num)
}

type unitStep struct {
	name string
	size float64
}

// Largest first; withUnit picks the largest unit the value is a whole
// multiple of, so constants print as the user would write them (4GB, 2h).
var (
	byteUnits = []unitStep{{"PiB", 1 << 50}, {"PB", 1e15}, {"TiB", 1 << 40}, {"TB", 1e12},
		{"GiB", 1 << 30}, {"GB", 1e9}, {"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"KB", 1e3}, {"B", 1}}
	durationUnits = []unitStep{{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}, {"ms", 1e-3}}
)

func withUnit(x float64, units []unitStep) string {
	for _, u := range units {
		if q := x / u.size; x != 0 && q == math.Trunc(q) && math.Abs(q) < 1e15 {
			return answer.FormatNumber(q) + u.name
		}
	}
	return answer.FormatNumber(x) + units[len(units)-1].name
}

// env is what an expression reads: a peer's record, or a result row.
type env struct {
	rec  Record
	keys []Value
	aggs []Value
}

// Eval evaluates e against one peer's record with SQL NULL semantics. A
// division by zero gives NULL rather than an error: a peer cannot stop a
// gossip query to report one.
func Eval(e *Expr, r Record) Value { return eval(e, &env{rec: r}) }

// EvalRow evaluates an output expression of an aggregate plan against the
// GROUP BY keys and aggregate values of one result row.
func EvalRow(e *Expr, keys, aggs []Value) Value { return eval(e, &env{keys: keys, aggs: aggs}) }

func eval(e *Expr, en *env) Value {
	if e == nil {
		return Bool(true)
	}
	switch e.Op {
	case OpConst:
		return *e.Val
	case OpAttr:
		return en.rec[e.Name]
	case OpKeyRef:
		if e.Index < len(en.keys) {
			return en.keys[e.Index]
		}
		return Null
	case OpAggRef:
		if e.Index < len(en.aggs) {
			return en.aggs[e.Index]
		}
		return Null
	case OpAnd:
		l := eval(e.Args[0], en)
		if isFalse(l) {
			return Bool(false)
		}
		r := eval(e.Args[1], en)
		switch {
		case isFalse(r):
			return Bool(false)
		case l.IsNull() || r.IsNull():
			return Null
		}
		return Bool(true)
	case OpOr:
		l := eval(e.Args[0], en)
		if isTrue(l) {
			return Bool(true)
		}
		r := eval(e.Args[1], en)
		switch {
		case isTrue(r):
			return Bool(true)
		case l.IsNull() || r.IsNull():
			return Null
		}
		return Bool(false)
	case OpNot:
		x := eval(e.Args[0], en)
		if x.Kind != KindBool {
			return Null
		}
		return Bool(!x.Bool)
	case OpEq, OpNe, OpLt, OpLe, OpGt, OpGe:
		l, r := eval(e.Args[0], en), eval(e.Args[1], en)
		if l.IsNull() || r.IsNull() {
			return Null
		}
		return Bool(compareOp(e.Op, Compare(l, r)))
	case OpAdd, OpSub, OpMul, OpDiv, OpMod:
		l, r := eval(e.Args[0], en), eval(e.Args[1], en)
		if !l.Kind.Numeric() || !r.Kind.Numeric() {
			return Null
		}
		return arith(e.Op, e.Kind, l.Num, r.Num)
	case OpNeg:
		x := eval(e.Args[0], en)
		if !x.Kind.Numeric() {
			return Null
		}
		return Num(e.Kind, -x.Num)
	case OpIn:
		x := eval(e.Args[0], en)
		if x.IsNull() {
			return Null
		}
		sawNull := false
		for _, a := range e.Args[1:] {
			v := eval(a, en)
			if v.IsNull() {
				sawNull = true
			} else if Compare(x, v) == 0 {
				return Bool(true)
			}
		}
		if sawNull {
			return Null
		}
		return Bool(false)
	case OpBetween:
		x, lo, hi := eval(e.Args[0], en), eval(e.Args[1], en), eval(e.Args[2], en)
		if x.IsNull() || lo.IsNull() || hi.IsNull() {
			return Null
		}
		return Bool(Compare(lo, x) <= 0 && Compare(x, hi) <= 0)
	case OpLike:
		x, p := eval(e.Args[0], en), eval(e.Args[1], en)
		if x.Kind != KindString || p.Kind != KindString {
			return Null
		}
		return Bool(like(x.Str, p.Str))
	case OpIsNull:
		return Bool(eval(e.Args[0], en).IsNull())
	case OpFunc:
		return callFunc(e, en)
	}
	return Null
}

func isTrue(v Value) bool  { return v.Kind == KindBool && v.Bool }
func isFalse(v Value) bool { return v.Kind == KindBool && !v.Bool }

func compareOp(op Op, c int) bool {
	switch op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	case OpLt:
		return c < 0
	case OpLe:
		return c <= 0
	case OpGt:
		return c > 0
	}
	return c >= 0
}

func arith(op Op, k Kind, a, b float64) Value {
	var x float64
	switch op {
	case OpAdd:
		x = a + b
	case OpSub:
		x = a - b
	case OpMul:
		x = a * b
	case OpDiv:
		if b == 0 {
			return Null
		}
		x = a / b
	case OpMod:
		if b == 0 {
			return Null
		}
		x = math.Mod(a, b)
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return Null
	}
	return Num(k, x)
}

// like matches s against a LIKE pattern: % is any run of bytes, _ is one
// character, everything else matches itself (case-sensitively). The matcher
// backtracks only to the last %, so it runs in O(len(s)·len(p)) at worst.
func like(s, p string) bool {
	sr, pr := []rune(s), []rune(p)
	i, j := 0, 0
	star, mark := -1, 0
	for i < len(sr) {
		switch {
		case j < len(pr) && (pr[j] == '_' || pr[j] == sr[i]) && pr[j] != '%':
			i++
			j++
		case j < len(pr) && pr[j] == '%':
			star, mark = j, i
			j++
		case star >= 0:
			j = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for j < len(pr) && pr[j] == '%' {
		j++
	}
	return j == len(pr)
}

// The scalar functions: name → (minimum args, maximum args).
var scalarFuncs = map[string][2]int{
	"lower": {1, 1}, "upper": {1, 1}, "length": {1, 1},
	"abs": {1, 1}, "round": {1, 1}, "floor": {1, 1}, "ceil": {1, 1},
	"coalesce": {1, maxFuncArgs}, "tag": {1, 1},
}

const maxFuncArgs = 16

func callFunc(e *Expr, en *env) Value {
	args := make([]Value, len(e.Args))
	for i, a := range e.Args {
		args[i] = eval(a, en)
		if e.Name == "coalesce" && !args[i].IsNull() {
			return args[i]
		}
	}
	if e.Name == "coalesce" || len(args) == 0 || args[0].IsNull() {
		return Null
	}
	x := args[0]
	switch e.Name {
	case "lower":
		return Str(strings.ToLower(x.Str))
	case "upper":
		return Str(strings.ToUpper(x.Str))
	case "length":
		return Num(KindCount, float64(len([]rune(x.Str))))
	case "abs":
		return Num(e.Kind, math.Abs(x.Num))
	case "round":
		return Num(e.Kind, math.Round(x.Num))
	case "floor":
		return Num(e.Kind, math.Floor(x.Num))
	case "ceil":
		return Num(e.Kind, math.Ceil(x.Num))
	}
	return Null
}

// Matches reports whether r passes the plan's filter (WHERE is TRUE).
func (p *Plan) Matches(r Record) bool { return isTrue(Eval(p.Filter, r)) }

// Project evaluates the plan's per-peer columns on r (top-k entries).
func (p *Plan) Project(r Record) []Value {
	out := make([]Value, len(p.Columns))
	for i, c := range p.Columns {
		out[i] = Eval(c.Expr, r)
	}
	return out
}

// OrderValues evaluates the plan's ORDER BY keys on r.
func (p *Plan) OrderValues(r Record) []Value {
	out := make([]Value, len(p.Order))
	for i, k := range p.Order {
		out[i] = Eval(k.Expr, r)
	}
	return out
}

// CompareKeys orders two sort keys by the plan's ORDER BY: NULLs last in
// either direction, so that peers that lack a value never crowd out those
// that have one.
func (p *Plan) CompareKeys(a, b []Value) int {
	for i, k := range p.Order {
		if i >= len(a) || i >= len(b) {
			break
		}
		x, y := a[i], b[i]
		switch {
		case x.IsNull() && y.IsNull():
			continue
		case x.IsNull():
			return 1
		case y.IsNull():
			return -1
		}
		c := Compare(x, y)
		if k.Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
