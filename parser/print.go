package parser

import (
	"strings"
)

// Printing gives the canonical text of a statement: keywords upper-case,
// only the parentheses the grammar needs, literals as written. Parsing the
// printed text gives back the same AST (positions aside); FuzzParse checks it.

// printer writes statements and expressions. tree puts every compound
// expression in parentheses, so that the text shows the shape of the tree
// (the parser's tests print so); String is the canonical form, printer{}.
type printer struct{ tree bool }

func (s *Select) String() string  { return s.print(printer{}) }
func (s *Reserve) String() string { return s.print(printer{}) }
func (s *Watch) String() string   { return s.print(printer{}) }
func (s *Alter) String() string   { return s.print(printer{}) }
func (s *Release) String() string { return s.print(printer{}) }
func (s *Show) String() string    { return s.print(printer{}) }
func (s *Explain) String() string { return s.print(printer{}) }

func (s *Select) print(p printer) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, it := range s.Items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.item(it))
	}
	if s.From != nil {
		b.WriteString(" FROM ")
		b.WriteString(s.From.String())
	}
	p.where(&b, s.Where)
	if len(s.GroupBy) > 0 {
		b.WriteString(" GROUP BY ")
		b.WriteString(p.join(s.GroupBy))
	}
	p.order(&b, s.OrderBy)
	if s.Limit != nil {
		b.WriteString(" LIMIT ")
		b.WriteString(s.Limit.Raw)
	}
	writeWith(&b, s.With)
	return b.String()
}

func (it *SelectItem) String() string { return printer{}.item(it) }

func (p printer) item(it *SelectItem) string {
	if it.Star {
		return "*"
	}
	if it.Alias != "" {
		return p.expr(it.Expr, 0) + " AS " + QuoteIdent(it.Alias)
	}
	return p.expr(it.Expr, 0)
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

func (s *Reserve) print(p printer) string {
	var b strings.Builder
	b.WriteString("RESERVE ")
	b.WriteString(s.Count.Raw)
	if s.From != nil {
		b.WriteString(" FROM ")
		b.WriteString(s.From.String())
	}
	p.where(&b, s.Where)
	p.order(&b, s.OrderBy)
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

func (s *Watch) print(p printer) string {
	if s.Every != nil {
		return "WATCH " + s.Select.print(p) + " EVERY " + s.Every.Raw
	}
	return "WATCH " + s.Select.print(p)
}

func (s *Alter) print(printer) string {
	if s.Resize != nil {
		return "ALTER SUBCLOUD " + QuoteIdent(s.Name.Name) + " RESIZE TO " + s.Resize.Raw
	}
	return "ALTER SUBCLOUD " + QuoteIdent(s.Name.Name) + " EXTEND FOR " + s.Extend.Raw
}

func (s *Release) print(printer) string   { return "RELEASE " + QuoteIdent(s.Name.Name) }
func (s *Show) print(printer) string      { return "SHOW " + s.What.String() }
func (s *Explain) print(p printer) string { return "EXPLAIN " + s.Stmt.print(p) }

func (p printer) where(b *strings.Builder, where Expr) {
	if where != nil {
		b.WriteString(" WHERE ")
		b.WriteString(p.expr(where, 0))
	}
}

func (p printer) order(b *strings.Builder, keys []*OrderKey) {
	if len(keys) == 0 {
		return
	}
	b.WriteString(" ORDER BY ")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.expr(k.Expr, 0))
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

func (p printer) join(es []Expr) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = p.expr(e, 0)
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

// expr writes e for a context that needs at least precedence min.
func (p printer) expr(e Expr, min int) string {
	s := e.text(p)
	if precedence(e) < min || p.tree && precedence(e) < precPrimary {
		return "(" + s + ")"
	}
	return s
}

// String prints e in canonical form.
func (e *Binary) String() string  { return printer{}.expr(e, 0) }
func (e *Unary) String() string   { return printer{}.expr(e, 0) }
func (e *In) String() string      { return printer{}.expr(e, 0) }
func (e *Between) String() string { return printer{}.expr(e, 0) }
func (e *Like) String() string    { return printer{}.expr(e, 0) }
func (e *IsNull) String() string  { return printer{}.expr(e, 0) }
func (e *Literal) String() string { return printer{}.expr(e, 0) }
func (e *Ident) String() string   { return printer{}.expr(e, 0) }
func (e *Call) String() string    { return printer{}.expr(e, 0) }

func (e *Binary) text(p printer) string {
	prec := precedence(e)
	if prec == precCmp {
		// Comparisons do not chain: both sides are additive expressions.
		return p.expr(e.L, precAdd) + " " + e.Op.String() + " " + p.expr(e.R, precAdd)
	}
	// Left-associative: the right side must bind tighter.
	return p.expr(e.L, prec) + " " + e.Op.String() + " " + p.expr(e.R, prec+1)
}

func (e *Unary) text(p printer) string {
	if e.Op == OpNot {
		return "NOT " + p.expr(e.X, precNot)
	}
	x := p.expr(e.X, precNeg)
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

func (e *In) text(p printer) string {
	return p.expr(e.X, precAdd) + not(e.Not) + " IN (" + p.join(e.List) + ")"
}

func (e *Between) text(p printer) string {
	return p.expr(e.X, precAdd) + not(e.Not) + " BETWEEN " + p.expr(e.Low, precAdd) + " AND " + p.expr(e.High, precAdd)
}

func (e *Like) text(p printer) string {
	return p.expr(e.X, precAdd) + not(e.Not) + " LIKE " + p.expr(e.Pattern, precAdd)
}

func (e *IsNull) text(p printer) string {
	return p.expr(e.X, precAdd) + " IS" + not(e.Not) + " NULL"
}

func (e *Literal) text(printer) string {
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

func (e *Ident) text(printer) string { return QuoteIdent(e.Name) }

func (e *Call) text(p printer) string {
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
		b.WriteString(p.join(e.Args))
	}
	b.WriteByte(')')
	if e.Trim != nil {
		b.WriteString(" TRIM ")
		b.WriteString(e.Trim.text(p))
	}
	return b.String()
}
