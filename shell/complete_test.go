package shell

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/parser"
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
	return &Session{exec: words{}, cfg: Config{Follow: parser.Follow, Functions: []string{"COUNT", "AVG", "MAX", "ROUND"}}}
}

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
		{"SELECT COUNT(*) FROM peers WHERE ", []string{"AVG", "COUNT", "FALSE", "MAX", "NOT", "NULL", "ROUND", "TRUE",
			"mem_free", "node", "region", "reliability"}}, // what an expression starts with; no SELECT, no subclouds
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
func TestCompletedWordsParse(t *testing.T) {
	s := completer()
	for _, prefix := range []string{"", "SELECT ", "SELECT COUNT(*) FROM peers WHERE ", "SELECT node FROM peers WHERE region = 'eu' ",
		"SELECT node, ", "SELECT node FROM ", "SELECT AVG(cpu_load) FROM peers GROUP BY ", "RESERVE 5 ", "RESERVE 5 FROM peers ORDER BY ",
		"SHOW ", "ALTER SUBCLOUD analytics ", "WATCH SELECT COUNT(*) FROM peers ", "EXPLAIN ", "SELECT x FROM peers WHERE y IS "} {
		_, got, _ := s.complete(prefix, len(prefix))
		if len(got) == 0 {
			t.Errorf("%q: nothing offered", prefix)
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
