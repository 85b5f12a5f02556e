package shell

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
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

// Completion by context: what may stand where the cursor is.
func TestCompleteByContext(t *testing.T) {
	s := &Session{exec: words{}, cfg: Config{Keywords: []string{"SELECT", "RELEASE", "RESERVE", "REPAIR", "FROM", "ORDER", "BY",
		"SUBCLOUD", "SUBCLOUDS", "SHOW", "REGION_X", "DESC", "AND", "WATCH", "EXPLAIN", "MAX"}}}
	for _, c := range []struct {
		line string
		want []string
	}{
		{"re", []string{"release", "reserve"}},                                                       // a statement starts
		{"SELECT node FROM peers ORDER BY rel", []string{"reliability"}},                             // not RELEASE
		{"SELECT node FROM peers WHERE re", []string{"region", "region_x", "reliability", "repair"}}, // attributes and keywords, no statement words
		{"SELECT MAX(mem_f", []string{"mem_free"}},
		{"SELECT node FROM SUBCLOUD a", []string{"analytics"}},
		{"RELEASE b", []string{"batch"}},
		{"SELECT node FROM p", []string{"peers"}},
		{"SELECT node FROM peers WHERE region = 'e", nil}, // inside a string
		{"SHOW SUB", []string{"SUBCLOUDS"}},
		{"SELECT COUNT(*) FROM peers; sel", []string{"select"}},
		{"WATCH SEL", []string{"SELECT"}},
	} {
		_, got, _ := s.complete(c.line, len(c.line))
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.line, got, c.want)
		}
	}
	// On a continuation line an empty context is not a statement's start.
	s.typing = true
	if _, got, _ := s.complete("rel", 3); !slices.Equal(got, []string{"reliability"}) {
		t.Errorf("continuation %q: %q", "rel", got)
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
