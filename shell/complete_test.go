package shell

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/parser"
	"github.com/peerq/peerq/query"
)

// words is an executor that knows attributes and subclouds, for
// completion.
type words struct{ api.Executor }

func (words) Words(context.Context) []string {
	return []string{"reliability", "region", "mem_free", "node", "analytics", "batch"}
}

func (words) Execute(_ context.Context, stmt string, _ func(answer.Progress)) (*answer.Answer, error) {
	return &answer.Answer{Columns: []answer.Column{{Name: "subcloud", Kind: answer.KindString}},
		Rows: [][]answer.Value{{answer.Str("analytics")}, {answer.Str("batch")}}}, nil
}

// completer is a session that completes with the real grammar.
func completer() *Session {
	few := []string{"AVG", "COUNT", "MAX", "ROUND"}
	scope := func(before, after string) (string, []string, []string) {
		table, funcs, keys := query.CompletionScope(before, after)
		funcs = slices.DeleteFunc(funcs, func(f string) bool { return !slices.Contains(few, f) })
		return table, funcs, keys
	}
	return &Session{exec: words{}, cfg: Config{Follow: parser.Follow, Functions: few, Scope: scope, Tables: query.DescribeTable}}
}

// leases are the columns of FROM leases, as \d leases lists them.
var leases = []string{"ended_ago", "node", "open", "owner", "peer_hours", "receipted", "started_ago", "subcloud"}

// Completion offers what may come next where the cursor is.
func TestCompleteByContext(t *testing.T) {
	if followName != parser.FollowName {
		t.Fatalf("followName %q is not parser.FollowName %q", followName, parser.FollowName)
	}
	s := completer()
	for _, c := range []struct {
		line string
		want []string
	}{
		{"re", []string{"release", "reserve"}},                                 // a statement starts
		{"SELECT node FROM peers ORDER BY rel", []string{"reliability"}},       // not RELEASE
		{"SELECT node FROM peers WHERE re", []string{"region", "reliability"}}, // names only: no REPAIR, no RESERVE
		{"SELECT COUNT(*) FROM peers WHERE ", []string{"FALSE", "NOT", "NULL", "ROUND", "TRUE",
			"mem_free", "node", "region", "reliability"}}, // what an expression starts with; no SELECT, no subclouds, no aggregates
		{"SELECT node FROM peers GROUP BY ", []string{"FALSE", "NOT", "NULL", "ROUND", "TRUE", "mem_free", "node", "region", "reliability"}},
		{"SELECT node FROM peers ORDER BY ", []string{"FALSE", "NOT", "NULL", "ROUND", "TRUE", "mem_free", "node", "region", "reliability"}},
		{"RESERVE 2 FROM peers ORDER BY ", []string{"FALSE", "NOT", "NULL", "ROUND", "TRUE", "mem_free", "node", "region", "reliability"}},
		{"SELECT region, COUNT(*) FROM peers GROUP BY region ORDER BY ", []string{"AVG", "COUNT", "FALSE", "MAX", "NOT", "NULL", "ROUND", "TRUE",
			"region"}}, // an aggregate statement orders by aggregates and its keys
		{"SELECT ", []string{"AVG", "COUNT", "FALSE", "MAX", "NOT", "NULL", "ROUND", "TRUE", "mem_free", "node", "region", "reliability"}},
		{"SELECT MAX(", []string{"DISTINCT", "FALSE", "NOT", "NULL", "ROUND", "TRUE", "mem_free", "node", "region", "reliability"}}, // no nesting
		{"SELECT COUNT(*) FROM leases WHERE rec", []string{"receipted"}},
		{"SELECT COUNT(*) FROM leases WHERE mem", nil}, // a column of peers
		{"SELECT COUNT(*) FROM leases GROUP BY ", append([]string{"FALSE", "NOT", "NULL", "ROUND", "TRUE"}, leases...)},
		{"SELECT COUNT(*) FROM peers WHERE region = 'eu' ", []string{"AND", "GROUP", "LIMIT", "OR", "ORDER", "WITH"}}, // comparisons do not chain
		{"SELECT COUNT(*) FROM peers WHERE region ", []string{"AND", "BETWEEN", "GROUP", "IN", "IS", "LIKE", "LIMIT", "NOT", "OR", "ORDER", "WITH"}},
		{"SELECT MAX(mem_f", []string{"mem_free"}},
		{"SELECT node FROM SUBCLOUD a", []string{"analytics"}},
		{"SELECT node FROM SUBCLOUD ", []string{"analytics", "batch"}},
		{"RELEASE b", []string{"batch"}},
		{"SELECT node FROM p", []string{"peers"}},
		{"SELECT node FROM ", []string{"LEASES", "PEERS", "SUBCLOUD"}},
		{"SELECT node FROM peers WHERE region = 'e", nil}, // inside a string
		{"SHOW SUB", []string{"SUBCLOUDS"}},
		{"SELECT COUNT(*) FROM peers; sel", []string{"select"}},
		{"WATCH SEL", []string{"SELECT"}},
		{"SELECT COUNT(*) AS ", nil}, // a new name
		{"SELECT COUNT(*) FROM peers WITH ", []string{"ACCURACY", "AT", "KEY", "ROUNDS", "TIMEOUT"}},
		{"SELECT FROM ", nil}, // a mistake: nothing follows
	} {
		_, got, _ := s.complete(c.line, len(c.line))
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.line, got, c.want)
		}
	}
	// Editing the select list of a statement that reads leases offers
	// its columns.
	for line, want := range map[string][]string{
		"SELECT o FROM leases WHERE open":     {"open", "owner"},
		"SELECT o FROM leases GROUP BY owner": {"owner"}, // only its keys stand bare
	} {
		if _, got, _ := s.complete(line, len("SELECT o")); !slices.Equal(got, want) {
			t.Errorf("%q at 8: %q, want %q", line, got, want)
		}
	}
	// On a continuation line the statement begun on earlier lines counts.
	s.pending = "SELECT node\nFROM peers\n"
	if _, got, _ := s.complete("WHERE rel", 9); !slices.Equal(got, []string{"reliability"}) {
		t.Errorf("continuation %q: %q", "WHERE rel", got)
	}
	if _, got, _ := s.complete("rel", 3); got != nil {
		t.Errorf("after FROM peers, %q: %q", "rel", got)
	}
}

// Every word completion offers parses where it is offered: the prefix
// and the word go on (parser.Follow of the two is not nil, or they parse).
// And every name it offers (a column, a function) passes the type checker
// against the catalog, once the statement is completed as the case says:
// no aggregate in WHERE, no column of another table.
func TestCompletedWordsParse(t *testing.T) {
	s := completer()
	s.cfg.Functions, s.cfg.Scope = query.Functions(), query.CompletionScope
	// Arguments that make a function's call check, one of them for each.
	args := []string{"", "(*)", "(COUNT(*))", "(mem_free)", "(peer_hours)", "(region)", "(owner)", "(mem_free, 0.5)", "(peer_hours, 0.5)", "('rack')"}
	for _, c := range []struct {
		prefix string
		ends   []string // what completes the statement after the word; none: words are only parsed
	}{
		{"", nil},
		{"SELECT ", []string{" FROM peers", " FROM peers GROUP BY region", " FROM leases GROUP BY owner"}},
		{"SELECT COUNT(*) FROM peers WHERE ", []string{" IS NULL"}},
		{"SELECT node FROM peers WHERE region = 'eu' ", nil},
		{"SELECT node, ", []string{" FROM peers", " FROM peers GROUP BY node"}},
		{"SELECT node FROM ", nil},
		{"SELECT AVG(cpu_load) FROM peers GROUP BY ", []string{""}},
		{"SELECT AVG(cpu_load) FROM peers ORDER BY ", []string{""}},
		{"SELECT region, AVG(cpu_load) FROM peers GROUP BY region ORDER BY ", []string{""}},
		{"SELECT region, AVG(cpu_load) FROM peers GROUP BY region ORDER BY COALESCE(", []string{")"}},
		{"SELECT node FROM peers ORDER BY ", []string{""}},
		{"SELECT MAX(", []string{") FROM peers"}},
		{"SELECT SUM(peer_hours) FROM leases WHERE ", []string{" IS NULL"}},
		{"SELECT SUM(peer_hours) FROM leases GROUP BY ", []string{""}},
		{"RESERVE 5 ", nil},
		{"RESERVE 5 FROM peers WHERE ", []string{" IS NULL AS batch"}},
		{"RESERVE 5 FROM peers ORDER BY ", []string{" AS batch"}},
		{"SHOW ", nil}, {"ALTER SUBCLOUD analytics ", nil}, {"WATCH SELECT COUNT(*) FROM peers ", nil},
		{"WATCH SELECT COUNT(*) FROM peers WHERE ", []string{" IS NULL"}},
		{"EXPLAIN ", nil}, {"SELECT x FROM peers WHERE y IS ", nil},
	} {
		prefix := c.prefix
		_, got, _ := s.complete(prefix, len(prefix))
		if len(got) == 0 {
			t.Errorf("%q: nothing offered", prefix)
		}
		keywords := map[string]bool{}
		for _, f := range parser.Follow(prefix) {
			keywords[f] = true
		}
		for _, w := range got {
			if prefix == "" && bareCommands[w] != "" {
				continue // help, quit, exit: the prompt's own words
			}
			text := prefix + w
			if _, err := parser.Parse("", text); err != nil && parser.Follow(text) == nil {
				t.Errorf("%q offers %q, but %q neither parses (%v) nor goes on", prefix, w, text, err)
			}
			if strings.EqualFold(w, "SELECT") && strings.Contains(prefix, "WHERE") {
				t.Errorf("%q offers SELECT", prefix)
			}
			if len(c.ends) == 0 || keywords[strings.ToUpper(w)] {
				continue // a keyword: the grammar's business
			}
			var firstErr error
			checks := false
			for _, arg := range args {
				for _, end := range c.ends {
					stmts, err := parser.Parse("", text+arg+end)
					if err != nil {
						continue
					}
					if _, err = query.Compile(stmts[len(stmts)-1], query.DefaultCatalog(), query.DefaultConfig()); err == nil {
						checks = true
					} else if firstErr == nil {
						firstErr = err
					}
				}
			}
			if !checks {
				t.Errorf("%q offers %q, which the checker refuses in every completion (%v)", prefix, w, firstErr)
			}
		}
	}
}

type history []string

func (h *history) AppendHistory(s string) { *h = append(*h, s) }

// A 100 KB line in the history file loses nothing after it.
func TestLoadHistoryLongLine(t *testing.T) {
	long := "SELECT node FROM peers WHERE region = '" + strings.Repeat("x", 100_000) + "'"
	var h history
	loadHistory(&h, strings.NewReader("SELECT 1 FROM peers\n"+long+"\nSHOW MEMBERS\n\\timing"))
	if len(h) != 4 || h[1] != long || h[2] != "SHOW MEMBERS" || h[3] != `\timing` {
		t.Errorf("%d entries, last %q", len(h), h[len(h)-1])
	}
}
