package parser

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// followCorpus are statements of every kind; the tests walk them token
// by token.
var followCorpus = []string{
	"SELECT COUNT(*) FROM peers WHERE cpu_cores >= 4 AND region IN ('eu', 'us')",
	"SELECT node, mem_free FROM peers WHERE NOT reserved ORDER BY mem_free DESC LIMIT 5 WITH ROUNDS 30, TIMEOUT 2s",
	"SELECT region, AVG(load) TRIM 5% AS l FROM SUBCLOUD web GROUP BY region WITH AT LEAST 10",
	"SELECT owner, SUM(peer_hours) FROM leases GROUP BY owner",
	"SELECT 1 + 1 AS two",
	"SELECT x FROM peers WHERE y IS NOT NULL OR z BETWEEN 1 AND 2 OR w LIKE 'a%'",
	"RESERVE 10 FROM peers WHERE gpu = TRUE ORDER BY load AS batch FOR 2h NO REPAIR WITH KEY 'k'",
	"RELEASE batch",
	"ALTER SUBCLOUD batch RESIZE TO 4",
	"ALTER SUBCLOUD batch EXTEND FOR 1h",
	"SHOW MEMBERS",
	"EXPLAIN SELECT COUNT(DISTINCT zone) FROM peers",
	"WATCH SELECT COUNT(*) FROM peers EVERY 5s",
}

// samples stand for a class when a test writes one out.
var samples = map[string]string{FollowName: "x", FollowNumber: "1", FollowString: "'s'"}

// grammarWords are the words the grammar's rules name.
func grammarWords() []string {
	var out []string
	var walk func(n *gnode)
	walk = func(n *gnode) {
		if n.op == '"' && isWord(n.val) {
			out = append(out, n.val)
		}
		for _, k := range n.kids {
			walk(k)
		}
	}
	for _, n := range followRules.rules {
		walk(n)
	}
	return out
}

func isWord(s string) bool {
	return s != "" && (s[0] >= 'A' && s[0] <= 'Z' || s[0] >= 'a' && s[0] <= 'z')
}

// classOf is what Follow calls a token: its class, or the word itself.
func classOf(t string) string {
	switch {
	case t[0] == '\'':
		return FollowString
	case t[0] >= '0' && t[0] <= '9':
		return FollowNumber
	case t[0] == '"':
		return FollowName
	case isWord(t):
		if IsReserved(t) || slices.ContainsFunc(grammarWords(), func(w string) bool { return strings.EqualFold(w, t) }) {
			return strings.ToUpper(t)
		}
		return FollowName
	}
	return t
}

// TestFollowOffersWhatFollows: at every token of every statement of the
// corpus, Follow of the text before it offers the token (or its class);
// a non-reserved keyword used as a name counts as a name.
func TestFollowOffersWhatFollows(t *testing.T) {
	for _, stmt := range followCorpus {
		toks, err := grammar.Lex("", strings.NewReader(stmt))
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range toks {
			if tok.EOF() || strings.TrimSpace(tok.Value) == "" {
				continue
			}
			prefix := stmt[:tok.Pos.Offset]
			got := Follow(prefix)
			c := classOf(tok.Value)
			if !slices.Contains(got, c) && !(isWord(c) && !IsReserved(c) && slices.Contains(got, FollowName)) {
				t.Errorf("Follow(%q) = %v: lacks %s, which follows in %q", prefix, got, c, stmt)
			}
		}
	}
}

// TestFollowWords pins what is offered, and what is not, where users
// complete most.
func TestFollowWords(t *testing.T) {
	for _, c := range []struct {
		prefix    string
		want, not []string
	}{
		{"", []string{"SELECT", "RESERVE", "SHOW", "WATCH", "EXPLAIN", "ALTER", "RELEASE"}, []string{FollowName, "FROM", "WHERE"}},
		{"SELECT COUNT(*) FROM peers WHERE ", []string{FollowName, FollowNumber, FollowString, "NOT", "(", "TRUE"}, []string{"SELECT", "FROM", "WHERE", "ORDER", "PEERS", "ROUNDS"}},
		{"SELECT COUNT(*) FROM peers WHERE cpu_cores ", []string{">=", "AND", "OR", "IN", "BETWEEN", "ORDER", "LIMIT", "WITH"}, []string{"SELECT", FollowName, "FROM"}},
		{"SELECT COUNT(*) FROM ", []string{"PEERS", "LEASES", "SUBCLOUD"}, []string{FollowName, "SELECT", "WHERE"}},
		{"SELECT COUNT(*) FROM SUBCLOUD ", []string{FollowName}, []string{"PEERS", "WHERE"}},
		{"SELECT a FROM peers WITH ", []string{"ROUNDS", "TIMEOUT", "ACCURACY", "AT", "KEY"}, []string{FollowName, "WHERE"}},
		{"SHOW ", []string{"MEMBERS", "SUBCLOUDS", "ATTRIBUTES", "POOLS"}, []string{FollowName}},
		{"RESERVE 3 ", []string{"FROM", "WHERE", "ORDER", "AS"}, []string{"LIMIT", FollowName}},
		{"SELECT x FROM peers WHERE y IS ", []string{"NOT", "NULL"}, []string{FollowName}},
		{"SELECT 1; ", []string{"SELECT", "SHOW"}, []string{FollowName}},
		{"SELECT 'abc", nil, []string{FollowName, "FROM"}},
		{"SELECT FROM", nil, []string{"PEERS"}},
	} {
		got := Follow(c.prefix)
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("Follow(%q) = %v: lacks %s", c.prefix, got, w)
			}
		}
		for _, w := range c.not {
			if slices.Contains(got, w) {
				t.Errorf("Follow(%q) = %v: offers %s", c.prefix, got, w)
			}
		}
	}
}

// TestFollowedWordsParse: every word offered after every prefix of the
// corpus begins a statement that parses. Each is completed greedily,
// preferring the words that end a clause, and the result must parse.
func TestFollowedWordsParse(t *testing.T) {
	prefer := []string{")", FollowNumber, FollowName, FollowString, "NULL", "PEERS", "AS", "BY", "FROM", "TO", "FOR", "LEAST",
		"REPAIR", "MEMBERS", "SELECT", "AND"}
	// Completions share their prefixes: remember what follows each.
	memo := map[string][]string{}
	follow := func(text string) []string {
		if f, ok := memo[text]; ok {
			return f
		}
		memo[text] = Follow(text)
		return memo[text]
	}
	complete := func(text string) (string, bool) {
		for range 12 {
			if _, err := grammar.ParseString("", text); err == nil {
				return text, true
			}
			next := follow(text)
			pick := ""
			for _, p := range prefer {
				if slices.Contains(next, p) {
					pick = p
					break
				}
			}
			if pick == "" && len(next) > 0 {
				pick = next[0]
			}
			if pick == "" {
				return text, false
			}
			if s, ok := samples[pick]; ok {
				pick = s
			}
			text += " " + pick
		}
		return text, false
	}
	tried := 0
	for _, stmt := range append([]string{""}, followCorpus...) {
		toks, err := grammar.Lex("", strings.NewReader(stmt))
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range toks {
			if strings.TrimSpace(tok.Value) == "" && !tok.EOF() {
				continue
			}
			prefix := stmt[:tok.Pos.Offset]
			for _, w := range follow(prefix) {
				if s, ok := samples[w]; ok {
					w = s
				}
				tried++
				if text, ok := complete(prefix + " " + w); !ok {
					t.Errorf("Follow(%q) offers %q, but %q does not complete into a statement", prefix, w, text)
				}
			}
		}
	}
	if tried < 500 {
		t.Errorf("only %d offered words tried", tried)
	}
}

// Help spells out each statement's syntax from the grammar, with the
// parts it uses, and its example parses.
func TestHelp(t *testing.T) {
	for _, topic := range HelpTopics() {
		text, ok := Help(strings.ToLower(topic))
		if !ok || !strings.Contains(text, "Statement:   "+topic) || regexp.MustCompile(`\bG[A-Z][a-z]`).MatchString(text) {
			t.Errorf("Help(%s) = %v\n%s", topic, ok, text)
		}
		_, example, _ := strings.Cut(text, "Example:\n  ")
		if _, err := Parse("", example); err != nil {
			t.Errorf("Help(%s): example %q: %v", topic, example, err)
		}
	}
	text, _ := Help("RESERVE")
	for _, want := range []string{`reserve = "RESERVE" number ("FROM" source)?`, `source = "PEERS" | ("SUBCLOUD" name) | "LEASES" .`,
		`order_key = expr ("ASC" | "DESC")? .`, `option = ("ROUNDS" number)`} {
		if !strings.Contains(text, want) {
			t.Errorf("Help(RESERVE) lacks %q:\n%s", want, text)
		}
	}
	if _, ok := Help("SELEKT"); ok {
		t.Error("Help(SELEKT) is ok")
	}
}
