package parser

import (
	"strings"
)

// Printing gives the canonical text of a statement: keywords upper-case,
// every compound expression in parentheses, literals as written. Parsing the
// printed text gives back the same AST (positions aside); FuzzParse checks it.

func (s *Select) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, it := range s.Items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it.String())
	}
	b.WriteString(" FROM ")
	b.WriteString(s.From.String())
	writeWhere(&b, s.Where)
	if len(s.GroupBy) > 0 {
		b.WriteString(" GROUP BY ")
		b.WriteString(joinExprs(s.GroupBy))
	}
	writeOrder(&b, s.OrderBy)
	if s.Limit != nil {
		b.WriteString(" LIMIT ")
		b.WriteString(s.Limit.Raw)
	}
	writeWith(&b, s.With)
	return b.String()
}

func (it *SelectItem) String() string {
	if it.Star {
		return "*"
	}
	if it.Alias != "" {
		return it.Expr.String() + " AS " + QuoteIdent(it.Alias)
	}
	return it.Expr.String()
}

func (s *Source) String() string {
	if s != nil && s.Leases {
		return "leases"
	}
	if s == nil || s.Subcloud == "" {
		return "peers"
	}
	return "SUBCLOUD " + QuoteIdent(s.Subcloud)
}

func (s *Reserve) String() string {
	var b strings.Builder
	b.WriteString("RESERVE ")
	b.WriteString(s.Count.Raw)
	if s.From != nil {
		b.WriteString(" FROM ")
		b.WriteString(s.From.String())
	}
	writeWhere(&b, s.Where)
	writeOrder(&b, s.OrderBy)
	b.WriteString(" AS ")
	b.WriteString(QuoteIdent(s.Name.Name))
	if s.For != nil {
		b.WriteString(" FOR ")
		b.WriteString(s.For.Raw)
	}
	if s.NoRepair {
		b.WriteString(" NO REPAIR")
	}
	writeWith(&b, s.With)
	return b.String()
}

func (s *Watch) String() string {
	if s.Every != nil {
		return "WATCH " + s.Select.String() + " EVERY " + s.Every.Raw
	}
	return "WATCH " + s.Select.String()
}

func (s *Alter) String() string {
	if s.Resize != nil {
		return "ALTER SUBCLOUD " + QuoteIdent(s.Name.Name) + " RESIZE TO " + s.Resize.Raw
	}
	return "ALTER SUBCLOUD " + QuoteIdent(s.Name.Name) + " EXTEND FOR " + s.Extend.Raw
}

func (s *Release) String() string { return "RELEASE " + QuoteIdent(s.Name.Name) }
func (s *Show) String() string    { return "SHOW " + s.What.String() }
func (s *Explain) String() string { return "EXPLAIN " + s.Stmt.String() }

func writeWhere(b *strings.Builder, where Expr) {
	if where != nil {
		b.WriteString(" WHERE ")
		b.WriteString(where.String())
	}
}

func writeOrder(b *strings.Builder, keys []*OrderKey) {
	if len(keys) == 0 {
		return
	}
	b.WriteString(" ORDER BY ")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.Expr.String())
		if k.Desc {
			b.WriteString(" DESC")
		}
	}
}

func writeWith(b *strings.Builder, opts []*Option) {
	if len(opts) == 0 {
		return
	}
	b.WriteString(" WITH ")
	for i, o := range opts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(o.Name.String())
		b.WriteByte(' ')
		b.WriteString(o.Value.String())
	}
}

func joinExprs(es []Expr) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.String()
	}
	return strings.Join(parts, ", ")
}

// Precedence levels of the grammar, loosest first. The printer writes
// parentheses only where the grammar needs them, so that a printed statement
// is never nested deeper than the text it was parsed from (and so always
// parses back within MaxNesting).
const (
	precOr = iota + 1
	precAnd
	precNot
	precCmp
	precAdd
	precMul
	precNeg
	precPrimary
)

func precedence(e Expr) int {
	switch e := e.(type) {
	case *Binary:
		switch e.Op {
		case OpOr:
			return precOr
		case OpAnd:
			return precAnd
		case OpAdd, OpSub:
			return precAdd
		case OpMul, OpDiv, OpMod:
			return precMul
		}
		return precCmp
	case *Unary:
		if e.Op == OpNot {
			return precNot
		}
		return precNeg
	case *In, *Between, *Like, *IsNull:
		return precCmp
	}
	return precPrimary
}

// fullParens makes the printer parenthesize every compound expression, so
// that tests can see the shape of the tree.
var fullParens = false

// format writes e for a context that needs at least precedence min.
func format(e Expr, min int) string {
	s := e.text()
	if precedence(e) < min || fullParens && precedence(e) < precPrimary {
		return "(" + s + ")"
	}
	return s
}

// String prints e in canonical form.
func (e *Binary) String() string  { return format(e, 0) }
func (e *Unary) String() string   { return format(e, 0) }
func (e *In) String() string      { return format(e, 0) }
func (e *Between) String() string { return format(e, 0) }
func (e *Like) String() string    { return format(e, 0) }
func (e *IsNull) String() string  { return format(e, 0) }
func (e *Literal) String() string { return format(e, 0) }
func (e *Ident) String() string   { return format(e, 0) }
func (e *Call) String() string    { return format(e, 0) }

func (e *Binary) text() string {
	p := precedence(e)
	if p == precCmp {
		// Comparisons do not chain: both sides are additive expressions.
		return format(e.L, precAdd) + " " + e.Op.String() + " " + format(e.R, precAdd)
	}
	// Left-associative: the right side must bind tighter.
	return format(e.L, p) + " " + e.Op.String() + " " + format(e.R, p+1)
}

func (e *Unary) text() string {
	if e.Op == OpNot {
		return "NOT " + format(e.X, precNot)
	}
	x := format(e.X, precNeg)
	if strings.HasPrefix(x, "-") {
		return "- " + x // "--" would start a comment
	}
	return "-" + x
}

func not(b bool) string {
	if b {
		return " NOT"
	}
	return ""
}

func (e *In) text() string {
	return format(e.X, precAdd) + not(e.Not) + " IN (" + joinExprs(e.List) + ")"
}

func (e *Between) text() string {
	return format(e.X, precAdd) + not(e.Not) + " BETWEEN " + format(e.Low, precAdd) + " AND " + format(e.High, precAdd)
}

func (e *Like) text() string {
	return format(e.X, precAdd) + not(e.Not) + " LIKE " + format(e.Pattern, precAdd)
}

func (e *IsNull) text() string {
	return format(e.X, precAdd) + " IS" + not(e.Not) + " NULL"
}

func (e *Literal) text() string {
	switch e.Kind {
	case LitString:
		return quoteString(e.Str)
	case LitBool:
		if e.Bool {
			return "TRUE"
		}
		return "FALSE"
	case LitNull:
		return "NULL"
	}
	return e.Raw
}

func (e *Ident) text() string { return QuoteIdent(e.Name) }

func (e *Call) text() string {
	var b strings.Builder
	b.WriteString(QuoteIdent(e.Name))
	b.WriteByte('(')
	switch {
	case e.Star:
		b.WriteByte('*')
	case e.Distinct:
		b.WriteString("DISTINCT ")
		fallthrough
	default:
		b.WriteString(joinExprs(e.Args))
	}
	b.WriteByte(')')
	return b.String()
}
