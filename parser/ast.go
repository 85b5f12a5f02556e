package parser

import "github.com/alecthomas/participle/v2/lexer"

// Pos is a position in the source text: Line and Column count from 1, Offset
// from 0 in bytes.
type Pos = lexer.Position

// Node is any node of the AST.
type Node interface {
	Position() Pos
}

// Statement is one PQL statement: *Select, *Reserve, *Release, *Show or
// *Explain.
type Statement interface {
	Node
	String() string
	print(p printer) string
	statement()
}

// Expr is a scalar or aggregate expression. The set of implementations is
// closed: *Binary, *Unary, *In, *Between, *Like, *IsNull, *Literal, *Ident and
// *Call.
type Expr interface {
	Node
	String() string
	text(p printer) string
	expr()
}

// Select is SELECT items [FROM source] [WHERE] [GROUP BY] [ORDER BY] [LIMIT] [WITH].
type Select struct {
	Pos   Pos
	Items []*SelectItem
	// From is nil in a constant SELECT (SELECT 1 + 1 AS two), which reads
	// no table: the asking peer answers it alone.
	From    *Source
	Where   Expr // nil when absent
	GroupBy []Expr
	OrderBy []*OrderKey
	Limit   *Literal // a number literal; nil when absent
	With    []*Option
}

// SelectItem is "*" or an expression with an optional alias.
type SelectItem struct {
	Pos   Pos
	Star  bool
	Expr  Expr   // nil when Star
	Alias string // "" when absent
}

// Source is what a statement reads: every peer, the members of a
// subcloud, or the leases every peer has served (its ledger).
type Source struct {
	Pos      Pos
	Subcloud string // "" means FROM peers (or leases)
	Leases   bool   // FROM leases
}

// OrderKey is one key of ORDER BY.
type OrderKey struct {
	Pos  Pos
	Expr Expr
	Desc bool
}

// OptionName names a WITH option.
type OptionName int

// The WITH options.
const (
	OptRounds   OptionName = iota + 1 // WITH ROUNDS n: the round budget
	OptTimeout                        // WITH TIMEOUT d: the wall-clock budget
	OptAccuracy                       // WITH ACCURACY p: the target relative error
	OptAtLeast                        // WITH AT LEAST m: RESERVE accepts a subcloud of m..n peers
	OptKey                            // WITH KEY 'k': the idempotency key of a RESERVE
)

func (o OptionName) String() string {
	switch o {
	case OptRounds:
		return "ROUNDS"
	case OptTimeout:
		return "TIMEOUT"
	case OptAccuracy:
		return "ACCURACY"
	case OptAtLeast:
		return "AT LEAST"
	case OptKey:
		return "KEY"
	}
	return "OPTION?"
}

// Option is one WITH option; Value is a number or string literal.
type Option struct {
	Pos   Pos
	Name  OptionName
	Value *Literal
}

// Reserve is RESERVE n [FROM] [WHERE] [ORDER BY] AS name [FOR d] [WITH].
type Reserve struct {
	Pos     Pos
	Count   *Literal
	From    *Source // nil means FROM peers
	Where   Expr
	OrderBy []*OrderKey
	Name    *Ident
	For     *Literal // nil when absent
	// NoRepair: the owner does not replace members that fail (NO REPAIR).
	NoRepair bool
	With     []*Option
}

// Watch is WATCH select [EVERY d]: a standing query, answered anew each
// epoch.
type Watch struct {
	Pos    Pos
	Select *Select
	Every  *Literal // nil when absent
}

// Alter is ALTER SUBCLOUD name RESIZE TO n, or ALTER SUBCLOUD name EXTEND
// FOR d: exactly one of Resize and Extend is set.
type Alter struct {
	Pos    Pos
	Name   *Ident
	Resize *Literal
	Extend *Literal
}

// Release is RELEASE name.
type Release struct {
	Pos  Pos
	Name *Ident
}

// ShowWhat is what SHOW lists.
type ShowWhat int

// What SHOW can list.
const (
	ShowSubclouds ShowWhat = iota + 1
	ShowAttributes
	ShowMembers
	ShowPools
	ShowEvents
)

func (w ShowWhat) String() string {
	switch w {
	case ShowSubclouds:
		return "SUBCLOUDS"
	case ShowAttributes:
		return "ATTRIBUTES"
	case ShowMembers:
		return "MEMBERS"
	case ShowPools:
		return "POOLS"
	case ShowEvents:
		return "EVENTS"
	}
	return "?"
}

// Show is SHOW SUBCLOUDS | ATTRIBUTES | MEMBERS | POOLS | EVENTS.
type Show struct {
	Pos  Pos
	What ShowWhat
}

// Explain is EXPLAIN statement.
type Explain struct {
	Pos  Pos
	Stmt Statement
}

// Op is a unary or binary operator.
type Op int

// The operators, loosest first.
const (
	OpOr Op = iota + 1
	OpAnd
	OpNot
	OpEq
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
	OpAdd
	OpSub
	OpMul
	OpDiv
	OpMod
	OpNeg
)

var opText = map[Op]string{
	OpOr: "OR", OpAnd: "AND", OpNot: "NOT", OpEq: "=", OpNe: "!=", OpLt: "<", OpLe: "<=",
	OpGt: ">", OpGe: ">=", OpAdd: "+", OpSub: "-", OpMul: "*", OpDiv: "/", OpMod: "%", OpNeg: "-",
}

func (o Op) String() string {
	if s, ok := opText[o]; ok {
		return s
	}
	return "?"
}

// IsComparison reports whether o is one of = != < <= > >=.
func (o Op) IsComparison() bool { return o >= OpEq && o <= OpGe }

// Binary is L op R.
type Binary struct {
	Pos  Pos // the position of the operator
	Op   Op
	L, R Expr
}

// Unary is NOT X or -X.
type Unary struct {
	Pos Pos
	Op  Op // OpNot or OpNeg
	X   Expr
}

// In is X [NOT] IN (list).
type In struct {
	Pos  Pos
	X    Expr
	Not  bool
	List []Expr
}

// Between is X [NOT] BETWEEN Low AND High (both ends included).
type Between struct {
	Pos       Pos
	X         Expr
	Not       bool
	Low, High Expr
}

// Like is X [NOT] LIKE Pattern, with % for any run and _ for one character.
type Like struct {
	Pos     Pos
	X       Expr
	Not     bool
	Pattern Expr
}

// IsNull is X IS [NOT] NULL.
type IsNull struct {
	Pos Pos
	X   Expr
	Not bool
}

// LitKind is the kind of a literal.
type LitKind int

// The kinds of literal.
const (
	LitNumber LitKind = iota + 1
	LitString
	LitBool
	LitNull
)

// Unit is the unit written after a number literal.
type Unit int

// The units of number literals.
const (
	UnitNone     Unit = iota // a plain number
	UnitBytes                // Num is in bytes
	UnitDuration             // Num is in seconds
	UnitPercent              // Num is the fraction (95% gives 0.95)
)

func (u Unit) String() string {
	switch u {
	case UnitBytes:
		return "bytes"
	case UnitDuration:
		return "duration"
	case UnitPercent:
		return "percent"
	}
	return "number"
}

// Literal is a constant. Raw is the text as written, kept so that printing a
// statement gives back exactly the literal the user wrote (4GiB stays 4GiB).
type Literal struct {
	Pos  Pos
	Kind LitKind
	Num  float64 // LitNumber: the value in the unit's base (bytes, seconds, fraction)
	Unit Unit
	Str  string // LitString: the unquoted value
	Bool bool   // LitBool
	Raw  string
}

// IsInt reports whether l is a plain number with an integer value.
func (l *Literal) IsInt() bool {
	return l.Kind == LitNumber && l.Unit == UnitNone && l.Num == float64(int64(l.Num))
}

// Ident is a name: an attribute, an alias, a subcloud.
type Ident struct {
	Pos  Pos
	Name string
}

// Call is a function call: an aggregate or a scalar function.
type Call struct {
	Pos      Pos
	Name     string // as written; compare case-insensitively
	Star     bool   // COUNT(*)
	Distinct bool   // COUNT(DISTINCT x)
	Args     []Expr
	// Trim is the fraction after TRIM (AVG(x) TRIM 1%): the share of
	// values left out at each end; nil without TRIM.
	Trim *Literal
}

func (s *Select) Position() Pos  { return s.Pos }
func (s *Reserve) Position() Pos { return s.Pos }
func (s *Release) Position() Pos { return s.Pos }
func (s *Alter) Position() Pos   { return s.Pos }
func (s *Watch) Position() Pos   { return s.Pos }
func (s *Show) Position() Pos    { return s.Pos }
func (s *Explain) Position() Pos { return s.Pos }
func (e *Binary) Position() Pos  { return e.Pos }
func (e *Unary) Position() Pos   { return e.Pos }
func (e *In) Position() Pos      { return e.Pos }
func (e *Between) Position() Pos { return e.Pos }
func (e *Like) Position() Pos    { return e.Pos }
func (e *IsNull) Position() Pos  { return e.Pos }
func (e *Literal) Position() Pos { return e.Pos }
func (e *Ident) Position() Pos   { return e.Pos }
func (e *Call) Position() Pos    { return e.Pos }

func (*Select) statement()  {}
func (*Reserve) statement() {}
func (*Release) statement() {}
func (*Alter) statement()   {}
func (*Watch) statement()   {}
func (*Show) statement()    {}
func (*Explain) statement() {}
func (*Binary) expr()       {}
func (*Unary) expr()        {}
func (*In) expr()           {}
func (*Between) expr()      {}
func (*Like) expr()         {}
func (*IsNull) expr()       {}
func (*Literal) expr()      {}
func (*Ident) expr()        {}
func (*Call) expr()         {}

// Walk calls fn for e and then for each of its subexpressions, depth first,
// while fn returns true.
func Walk(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	switch e := e.(type) {
	case *Binary:
		Walk(e.L, fn)
		Walk(e.R, fn)
	case *Unary:
		Walk(e.X, fn)
	case *In:
		Walk(e.X, fn)
		for _, x := range e.List {
			Walk(x, fn)
		}
	case *Between:
		Walk(e.X, fn)
		Walk(e.Low, fn)
		Walk(e.High, fn)
	case *Like:
		Walk(e.X, fn)
		Walk(e.Pattern, fn)
	case *IsNull:
		Walk(e.X, fn)
	case *Call:
		for _, x := range e.Args {
			Walk(x, fn)
		}
	}
}
