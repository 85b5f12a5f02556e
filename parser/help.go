package parser

import (
	"fmt"
	"regexp"
	"strings"
)

// statementHelp describes each kind of statement for Help: what it does
// and an example. The syntax itself comes from the grammar (EBNF).
var statementHelp = []struct{ name, rule, about, example string }{
	{"SELECT", "GSelect", "ask the peers: a row per peer (top-k by ORDER BY), or aggregates (COUNT, SUM, AVG, MIN, MAX, PERCENTILE, ... with GROUP BY); without FROM, constants answered at once",
		"SELECT region, COUNT(*), AVG(cpu_load) FROM peers WHERE mem_free >= 4GB GROUP BY region"},
	{"RESERVE", "GReserve", "lease the best matching free peers as a named subcloud, kept at its size (repaired) until the lease ends or it is released",
		"RESERVE 50 FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC AS analytics FOR 2h"},
	{"RELEASE", "GRelease", "give a subcloud's peers back", "RELEASE analytics"},
	{"ALTER", "GAlter", "resize a subcloud, or extend its members' leases", "ALTER SUBCLOUD analytics RESIZE TO 80"},
	{"SHOW", "GShow", "list subclouds, attributes (the catalog), members (with failed and left ones) or pools", "SHOW MEMBERS"},
	{"WATCH", "GWatch", "a standing query: the SELECT answered anew every EVERY (default 10s) until stopped", "WATCH SELECT COUNT(*) FROM peers EVERY 5s"},
	{"EXPLAIN", "GExplain", "how a statement would run: its protocol, rounds and messages", "EXPLAIN SELECT node FROM peers ORDER BY cpu_load LIMIT 5"},
}

// helpNames are the names Help gives the grammar's rules, for people.
var helpNames = map[string]string{
	"GSelect": "select", "GReserve": "reserve", "GRelease": "release", "GAlter": "alter", "GShow": "show",
	"GWatch": "watch", "GExplain": "explain", "GInner": "statement", "GItem": "item", "GSource": "source",
	"GOption": "option", "GOrderKey": "order_key", "GOr": "expr", "GNumber": "number", "GIdent": "name",
	"GString": "string",
}

// helpParts are the rules a statement's help spells out below its own;
// the others (expr, number, name, string) are named only.
var helpParts = []string{"GItem", "GSource", "GOrderKey", "GOption"}

var ruleName = regexp.MustCompile(`\bG[A-Z][A-Za-z]*\b`)

// HelpTopics are the statements Help describes, in the order of the docs.
func HelpTopics() []string {
	out := make([]string, len(statementHelp))
	for i, h := range statementHelp {
		out[i] = h.name
	}
	return out
}

// Help describes a kind of statement, named by its first word (any case):
// what it does, its syntax as the grammar has it (EBNF: ( )? optional,
// ( )* repeated, | or), and an example; ok is false for a word that
// begins no statement. The syntax is read from EBNF(), so it cannot drift
// from the parser.
func Help(statement string) (text string, ok bool) {
	rules := map[string]string{}
	for _, line := range strings.Split(EBNF(), "\n") {
		if name, body, ok := strings.Cut(line, " = "); ok {
			rules[name] = body
		}
	}
	human := func(body string) string {
		return ruleName.ReplaceAllStringFunc(body, func(r string) string {
			if n, ok := helpNames[r]; ok {
				return n
			}
			return r
		})
	}
	for _, h := range statementHelp {
		if !strings.EqualFold(h.name, strings.TrimSpace(statement)) {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "Statement:   %s\nDescription: %s\nSyntax:\n  %s = %s\n", h.name, h.about, helpNames[h.rule], human(rules[h.rule]))
		// The parts it uses, spelled out (one level: a select's within
		// WATCH and EXPLAIN is \h SELECT).
		uses := map[string]bool{}
		for _, r := range ruleName.FindAllString(rules[h.rule], -1) {
			uses[r] = true
		}
		for _, part := range helpParts {
			if uses[part] {
				fmt.Fprintf(&b, "  %s = %s\n", helpNames[part], human(rules[part]))
			}
		}
		fmt.Fprintf(&b, "Example:\n  %s;\n", h.example)
		return b.String(), true
	}
	return "", false
}
