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
