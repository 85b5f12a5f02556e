package shell

import (
	"errors"
	"fmt"
	"strings"
	"testing"
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
