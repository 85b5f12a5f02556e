package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

type posErr struct{ line, col int }

func (p posErr) Error() string { return fmt.Sprintf("%d:%d: bad", p.line, p.col) }
func (p posErr) Line() int     { return p.line }
func (p posErr) Column() int   { return p.col }

// Errors keep their class from the engine to the client and back.
func TestErrorOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		code Code
	}{
		{fmt.Errorf("wrapped: %w", posErr{1, 13}), CodeStatement},
		{fmt.Errorf("node: %w (after 3 rounds)", ErrTimeout), CodeTimeout},
		{&Error{Code: CodeNotEnoughPeers, Message: "RESERVE 5 got 2"}, CodeNotEnoughPeers},
		{errors.New("disk on fire"), CodeInternal},
		{posErr{0, 0}, CodeInternal}, // a position of 0 is no position
	} {
		e := ErrorOf(c.err)
		if e.Code != c.code || e.Message != c.err.Error() {
			t.Errorf("%v: %+v, want code %s", c.err, e, c.code)
		}
		// Through a line and back, as a client sees it.
		b, _ := json.Marshal(ErrorLine(c.err))
		var l Line
		json.Unmarshal(b, &l)
		back := l.Err()
		if c.code == CodeTimeout && !errors.Is(back, ErrTimeout) || c.code == CodeNotEnoughPeers && !errors.Is(back, ErrNotEnoughPeers) {
			t.Errorf("%v: the client's error %v lost its class", c.err, back)
		}
	}
	if ErrorOf(nil) != nil {
		t.Error("ErrorOf(nil)")
	}
	if errors.Is(ErrTimeout, ErrNotEnoughPeers) {
		t.Error("codes must not match each other")
	}
}

func TestLines(t *testing.T) {
	a := &Answer{Columns: []Column{{"n", "count"}}, Rows: [][]any{{3.0}}, Text: [][]string{{"3"}}, Meta: &Meta{Peers: 3, Converged: true}}
	b, _ := json.Marshal(ResultLine(a))
	var l Line
	if err := json.Unmarshal(b, &l); err != nil || l.Type != LineResult {
		t.Fatalf("%s: %v", b, err)
	}
	got := l.Answer()
	if got.Meta.Peers != 3 || got.Text[0][0] != "3" || !got.Meta.Converged {
		t.Errorf("answer %+v", got)
	}
	p := ProgressLine(Progress{Round: 2, Budget: 9, Estimate: a})
	if p.Progress().FirstCell() != "3" || (Progress{}).FirstCell() != "…" {
		t.Errorf("progress %+v", p)
	}
}
