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
	writeWith(&b, s.With)
	return b.String()
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

func (e *Binary) String() string {
	return "(" + e.L.String() + " " + e.Op.String() + " " + e.R.String() + ")"
}

func (e *Unary) String() string {
	if e.Op == OpNot {
		return "(NOT " + e.X.String() + ")"
	}
	return "(-" + e.X.String() + ")"
}

func not(b bool) string {
	if b {
		return " NOT"
	}
	return ""
}

func (e *In) String() string {
	return "(" + e.X.String() + not(e.Not) + " IN (" + joinExprs(e.List) + "))"
}

func (e *Between) String() string {
	return "(" + e.X.String() + not(e.Not) + " BETWEEN " + e.Low.String() + " AND " + e.High.String() + ")"
}

func (e *Like) String() string {
	return "(" + e.X.String() + not(e.Not) + " LIKE " + e.Pattern.String() + ")"
}

func (e *IsNull) String() string {
	return "(" + e.X.String() + " IS" + not(e.Not) + " NULL)"
}

func (e *Literal) String() string {
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

func (e *Ident) String() string { return QuoteIdent(e.Name) }

func (e *Call) String() string {
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
