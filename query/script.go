package query

import (
	"strings"

	"github.com/peerq/peerq/parser"
)

// The language's surface for tools that must not import the parser (the
// command line wires the shell with it).

// CompileScript parses and compiles every statement of a script; name (may
// be empty) goes into error positions. The first error stops it; a
// statement error implements Line() and Column().
func CompileScript(name, src string, cat *Catalog, cfg Config) ([]*Plan, error) {
	stmts, err := parser.Parse(name, src)
	if err != nil {
		return nil, err
	}
	plans := make([]*Plan, 0, len(stmts))
	for _, s := range stmts {
		p, err := Compile(s, cat, cfg)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// Split finds where the statements of a script end, by the language's
// lexer (parser.Split): a ';' inside a string or a comment ends nothing.
func Split(src string) (ends []int, complete bool) { return parser.Split(src) }

// Keywords are the language's words, for completion.
func Keywords() []string { return parser.Keywords() }

// Functions lists the language's functions (aggregates and scalar ones),
// upper case, for completion.
func Functions() []string {
	names := functionNames()
	for i, n := range names {
		names[i] = strings.ToUpper(n)
	}
	return names
}

// ParseScript checks that every statement of a script parses, without
// type-checking (the live catalog may know tags the default one does
// not). The error, if any, implements Line() and Column().
func ParseScript(name, src string) error {
	_, err := parser.Parse(name, src)
	return err
}

// Follow is what may come next after a script's prefix (parser.Follow),
// for the shell's completion.
func Follow(prefix string) []string { return parser.Follow(prefix) }

// Help describes a kind of statement (parser.Help), for the shell's \h;
// HelpTopics lists the kinds.
func Help(statement string) (string, bool) { return parser.Help(statement) }

// HelpTopics are the kinds of statement Help describes.
func HelpTopics() []string { return parser.HelpTopics() }

// CompletionScope says, for a shell completing a name at the end of
// before (after is the rest of the line), what the type checker takes
// there: the table whose columns it may be ("peers" or "leases": the table
// the statement's FROM names, peers when it names none yet); the functions
// that may stand there, upper case (aggregates only in the select list of
// a SELECT or WATCH and in the ORDER BY of an aggregate one, never inside
// another aggregate); and, when not nil, the only columns that may stand
// bare there (an aggregate statement's GROUP BY keys, in its ORDER BY, or
// in its select list once the GROUP BY is written).
func CompletionScope(before, after string) (table string, functions, keys []string) {
	p := parser.PlaceOf(before, after)
	table = "peers"
	if p.Table == "leases" {
		table = "leases"
	}
	inAgg := false
	for _, c := range p.Calls {
		_, agg := aggNames[c]
		inAgg = inAgg || agg
	}
	grouped := p.GroupBy || table == "leases"
	for _, c := range p.SelectCalls {
		_, agg := aggNames[c]
		grouped = grouped || agg
	}
	sel := p.Statement == "SELECT" || p.Statement == "WATCH"
	aggregates := sel && !inAgg && (p.Clause == "SELECT" || p.Clause == "ORDER BY" && grouped)
	bare := sel && !inAgg && grouped && (p.Clause == "ORDER BY" || p.Clause == "SELECT" && p.GroupBy)
	if bare {
		keys = append([]string{}, p.GroupKeys...)
	}
	for _, f := range functionNames() {
		_, agg := aggNames[f]
		if agg && !aggregates || f == "tag" && bare {
			continue // TAG('x') reads a column too
		}
		functions = append(functions, strings.ToUpper(f))
	}
	return table, functions, keys
}
