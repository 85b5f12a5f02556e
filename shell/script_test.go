package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
)

// semicolons is a splitter for tests: every ';' ends a statement (the
// real one, query.Split, knows strings and comments).
func semicolons(src string) ([]int, bool) {
	var ends []int
	for i, c := range src {
		if c == ';' {
			ends = append(ends, i)
		}
	}
	return ends, strings.TrimSpace(src[strings.LastIndexByte(src, ';')+1:]) == ""
}

type posErr struct {
	line, col int
	msg       string
}

func (p posErr) Error() string { return fmt.Sprintf("%d:%d: %s", p.line, p.col, p.msg) }
func (p posErr) Line() int     { return p.line }
func (p posErr) Column() int   { return p.col }

func TestSplitAndPlace(t *testing.T) {
	src := "SELECT 1 FROM peers;\n  SELECT node,\n    mem_fre FROM peers;\n"
	stmts := SplitScript(src, semicolons)
	if len(stmts) != 2 || stmts[1].Line != 1 || stmts[1].Column != 21 {
		t.Fatalf("statements %+v", stmts)
	}
	// The executor saw the second statement's text, starting right after
	// the first ';': its line 3, column 5 is the script's line 3, column 5.
	err := Place(src, "s.pql", stmts[1], fmt.Errorf("wrapped: %w", posErr{3, 5, `unknown attribute "mem_fre"`}))
	var se *StatementError
	if !errors.As(err, &se) || se.Line != 3 || se.Column != 5 {
		t.Fatalf("placed %v", err)
	}
	want := "s.pql:3:5: unknown attribute \"mem_fre\"\n        mem_fre FROM peers;\n        ^"
	if err.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", err, want)
	}
	// On the statement's first line, columns add up.
	if se := Place(src, "", stmts[1], posErr{1, 3, "x"}).(*StatementError); se.Line != 1 || se.Column != 23 {
		t.Errorf("first line: %+v", se)
	}
	// No position, or position 0: unchanged.
	plain := errors.New("agent unreachable")
	if Place(src, "", stmts[0], plain) != plain || Place(src, "", stmts[0], posErr{}) == nil {
		t.Error("errors without a position must come back unchanged")
	}
}

// A caret under a 100 KB line shows the neighbourhood, not the line.
func TestCaretLongLine(t *testing.T) {
	line := strings.Repeat("a", 50_000) + "X" + strings.Repeat("b", 50_000)
	c := Caret(line, 1, 50_001)
	text, caret, _ := strings.Cut(c, "\n")
	if len(text) > 4*maxCaretContext || !strings.Contains(text, "X") {
		t.Fatalf("context of %d bytes", len(text))
	}
	if []rune(text)[len([]rune(caret))-1] != 'X' {
		t.Errorf("the caret is not under X:\n%s", c)
	}
	if got := Caret("\tSELECT x", 1, 9); got != "\tSELECT x\n\t       ^" {
		t.Errorf("tabs: %q", got)
	}
}

// -F json writes one JSON value: a script of several statements (or a
// WATCH) an array of documents, closed even when a statement fails; a
// shell reading a pipe likewise, the array closed when \format changes;
// the items separated as jq prints them ("},\n  {").
func TestJSONArray(t *testing.T) {
	run := func(exec api.Executor, src string, opts ScriptOptions) ([]map[string]any, error) {
		t.Helper()
		var out bytes.Buffer
		opts.Split, opts.Format, opts.Out = semicolons, FormatJSON, &out
		err := RunScript(context.Background(), exec, src, opts)
		var docs []map[string]any
		if jerr := json.Unmarshal(out.Bytes(), &docs); jerr != nil {
			t.Fatalf("%s: not one JSON array: %v\n%s", src, jerr, out.String())
		}
		// As jq prints an array: the comma ends the item's last line.
		if strings.Contains(out.String(), "\n,") || strings.Count(out.String(), "\n  },\n  {\n") != max(len(docs)-1, 0) {
			t.Errorf("%s: items not separated by \"},\\n  {\":\n%s", src, out.String())
		}
		return docs, err
	}
	if docs, err := run(timeouts{answer.StatusPartial}, "SELECT 1; SELECT 2; SELECT 3", ScriptOptions{AllowPartial: true}); err != nil || len(docs) != 3 {
		t.Errorf("three statements: %d documents, %v", len(docs), err)
	}
	// The first partial answer stops the script: the array holds it.
	if docs, err := run(timeouts{answer.StatusPartial}, "SELECT 1; SELECT 2", ScriptOptions{}); err == nil || len(docs) != 1 {
		t.Errorf("stopped after the first: %d documents, %v", len(docs), err)
	}
	if docs, err := run(epochs{3}, "WATCH SELECT COUNT(*) FROM peers EVERY 1s", ScriptOptions{}); err != nil || len(docs) != 3 || docs[2]["meta"].(map[string]any)["epoch"] != 3.0 {
		t.Errorf("WATCH: %v, %v", docs, err)
	}
	// One statement: its document alone.
	var out bytes.Buffer
	if err := RunScript(context.Background(), timeouts{answer.StatusPartial}, "SELECT 1", ScriptOptions{Split: semicolons, Format: FormatJSON, Out: &out, AllowPartial: true}); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc["statement"] != "SELECT 1" {
		t.Errorf("one statement: %v\n%s", err, out.String())
	}

	// A shell on a pipe: an array of two, then CSV after \format.
	out.Reset()
	in := "SELECT 1;\nSELECT 2;\n\\format csv\nSELECT 3;\n"
	if err := Run(context.Background(), timeouts{answer.StatusPartial}, Config{In: strings.NewReader(in), Out: &out, Err: io.Discard,
		Split: semicolons, Format: FormatJSON, AllowPartial: true}); err != nil {
		t.Fatal(err)
	}
	text, csvPart, ok := strings.Cut(out.String(), "\n]\n")
	var docs []map[string]any
	if err := json.Unmarshal([]byte(text+"]"), &docs); !ok || err != nil || len(docs) != 2 || csvPart != "count\n7\n" {
		t.Errorf("piped shell: %v\n%s", err, out.String())
	}
}
