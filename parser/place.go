package parser

import (
	"strings"
)

// Place is where the cursor stands in a statement, as far as its tokens
// tell: what a completer needs besides Follow's words to offer only names
// the type checker takes there (a table's columns, aggregates only where
// they may stand).
type Place struct {
	// Statement is the statement's first word, upper case ("SELECT",
	// "WATCH", "RESERVE", ...; EXPLAIN is skipped), or "".
	Statement string
	// Clause is the clause the cursor is in, at the statement's top level:
	// "SELECT" (the select list), "FROM", "WHERE", "GROUP BY", "ORDER BY",
	// "LIMIT", "WITH", "EVERY", ... or the statement's first word.
	Clause string
	// Calls are the function calls the cursor is inside, outermost first,
	// lower case: ["max"] in "SELECT MAX(mem_|".
	Calls []string
	// SelectCalls are the functions the select list calls, lower case (an
	// aggregate there makes the statement aggregate).
	SelectCalls []string
	// GroupBy says that the statement has a GROUP BY, before or after the
	// cursor.
	GroupBy bool
	// GroupKeys are the GROUP BY's keys that are plain names, before or
	// after the cursor.
	GroupKeys []string
	// Table is what the statement reads, before or after the cursor:
	// "peers", "leases", "subcloud", or "" when it names no FROM.
	Table string
}

// PlaceOf says where the end of before stands in its statement; after is
// the text after the cursor (its statement's rest tells the table and GROUP
// BY of a select list being edited). Text the lexer cannot read (an
// unterminated string) counts as far as it can be read.
func PlaceOf(before, after string) Place {
	var p Place
	toks := words(before)
	if i := lastIndex(toks, ";"); i >= 0 {
		toks = toks[i+1:]
	}
	rest := words(after)
	if i := index(rest, ";"); i >= 0 {
		rest = rest[:i]
	}
	if len(toks) > 0 && toks[0] == "EXPLAIN" {
		toks = toks[1:]
	}
	if len(toks) > 0 {
		p.Statement = toks[0]
	}
	// The clause and calls at the cursor.
	type open struct{ call string }
	var stack []open
	for i, t := range toks {
		switch t {
		case "(":
			call := ""
			if i > 0 && isNameToken(toks[i-1]) {
				call = strings.ToLower(toks[i-1])
			}
			stack = append(stack, open{call})
			if call != "" && p.Clause == "SELECT" && len(stack) == 1 {
				p.SelectCalls = append(p.SelectCalls, call)
			}
		case ")":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) > 0 {
			continue
		}
		switch {
		case i == 0 || t == "SELECT" && i == 1 && toks[0] == "WATCH":
			p.Clause = t
		case t == "BY" && (toks[i-1] == "GROUP" || toks[i-1] == "ORDER"):
			p.Clause = toks[i-1] + " BY"
			p.GroupBy = p.GroupBy || toks[i-1] == "GROUP"
		case t == "FROM" || t == "WHERE" || t == "LIMIT" || t == "WITH" || t == "EVERY" || t == "AS" && p.Statement == "RESERVE" || t == "FOR":
			p.Clause = t
		}
		if i > 0 && toks[i-1] == "FROM" {
			p.Table = strings.ToLower(t)
		}
	}
	for _, o := range stack {
		p.Calls = append(p.Calls, o.call)
	}
	// The rest of the statement after the cursor, from inside the calls
	// the cursor is in.
	depth := len(stack)
	clause := p.Clause
	for i, t := range rest {
		switch t {
		case "(":
			if depth == 0 && clause == "SELECT" && i > 0 && isNameToken(rest[i-1]) {
				p.SelectCalls = append(p.SelectCalls, strings.ToLower(rest[i-1]))
			}
			depth++
			continue
		case ")":
			depth--
			continue
		}
		if depth > 0 {
			continue
		}
		switch {
		case t == "FROM" || t == "WHERE" || t == "LIMIT" || t == "WITH":
			clause = t
		case t == "BY" && i > 0 && (rest[i-1] == "GROUP" || rest[i-1] == "ORDER"):
			clause = rest[i-1] + " BY"
			p.GroupBy = p.GroupBy || rest[i-1] == "GROUP"
		}
		if p.Table == "" && (i > 0 && rest[i-1] == "FROM" || i == 0 && len(toks) > 0 && toks[len(toks)-1] == "FROM") {
			p.Table = strings.ToLower(t)
		}
	}
	p.GroupKeys = groupKeys(append(append([]string(nil), toks...), rest...))
	return p
}

// groupKeys are the plain names among the GROUP BY keys of a statement's
// tokens.
func groupKeys(toks []string) []string {
	var keys []string
	depth, in := 0, false
	var item []string
	flush := func() {
		if len(item) == 1 && isNameToken(item[0]) {
			keys = append(keys, item[0])
		}
		item = nil
	}
	for i, t := range toks {
		switch {
		case t == "(":
			depth++
		case t == ")":
			depth--
		case depth != 0:
		case t == "BY" && i > 0 && toks[i-1] == "GROUP":
			in = true
			continue
		case !in:
			continue
		case t == ",":
			flush()
			continue
		case t == "ORDER" || t == "LIMIT" || t == "WITH" || t == "EVERY" || t == ";":
			flush()
			in = false
			continue
		}
		if in {
			item = append(item, t)
		}
	}
	if in {
		flush()
	}
	return keys
}

// words are the tokens of src other than whitespace and comments: reserved
// words upper case, the rest as written; as many as the lexer reads.
func words(src string) []string {
	lx, err := pqlLexer.Lex("", strings.NewReader(src))
	if err != nil {
		return nil
	}
	sym := pqlLexer.Symbols()
	var out []string
	for {
		tok, err := lx.Next()
		if err != nil || tok.EOF() {
			return out
		}
		switch tok.Type {
		case sym["Whitespace"], sym["Comment"]:
		case sym["Keyword"]:
			out = append(out, strings.ToUpper(tok.Value))
		case sym["Ident"]:
			if w := strings.ToUpper(tok.Value); w == "PEERS" || w == "LEASES" || w == "SUBCLOUD" || w == "WATCH" || w == "EVERY" {
				out = append(out, w) // words of the grammar that stay names elsewhere
				continue
			}
			out = append(out, tok.Value)
		default:
			out = append(out, tok.Value)
		}
	}
}

func isNameToken(t string) bool {
	return t != "" && (t[0] == '_' || t[0] >= 'a' && t[0] <= 'z' || t[0] >= 'A' && t[0] <= 'Z') && !IsReserved(t)
}

func index(toks []string, t string) int {
	for i, x := range toks {
		if x == t {
			return i
		}
	}
	return -1
}

func lastIndex(toks []string, t string) int {
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i] == t {
			return i
		}
	}
	return -1
}
