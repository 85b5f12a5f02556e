package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
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
	a := &answer.Answer{Columns: []answer.Column{{Name: "n", Kind: answer.KindCount}}, Rows: [][]answer.Value{{answer.Num(answer.KindCount, 3)}},
		Meta: &answer.Meta{Peers: 3, Converged: true}}
	b, _ := json.Marshal(ResultLine(a))
	var l Line
	if err := json.Unmarshal(b, &l); err != nil || l.Type != LineResult {
		t.Fatalf("%s: %v", b, err)
	}
	got := l.Answer()
	if got.Meta.Peers != 3 || got.Text()[0][0] != "3" || !got.Meta.Converged {
		t.Errorf("answer %+v", got)
	}
	p := ProgressLine(answer.Progress{Round: 2, Budget: 9, Estimate: a})
	if p.Progress().FirstCell() != "3" || (answer.Progress{}).FirstCell() != "…" {
		t.Errorf("progress %+v", p)
	}
}

// A result line as docs/API.md records it (with the meta the example
// leaves out) reads as typed values and writes back the same JSON:
// clients and scripts read these names.
func TestRecordedResultLine(t *testing.T) {
	const recorded = `{"type":"result","columns":[{"name":"COUNT(*)","kind":"count"},{"name":"AVG(cpu_load)","kind":"ratio"}],` +
		`"rows":[[3,0.1466]],"text":[["3","14.66%"]],` +
		`"meta":{"statement":"SELECT COUNT(*), AVG(cpu_load) FROM peers","protocol":"aggregate","status":"converged","peers":3,` +
		`"rounds":14,"elapsed_seconds":0.71,"error_estimate":0.0001,"plan_hash":"9b2f","from_tags":false,"converged":true}}`
	var l Line
	dec := json.NewDecoder(strings.NewReader(recorded))
	dec.UseNumber() // as Client reads lines
	if err := dec.Decode(&l); err != nil {
		t.Fatal(err)
	}
	a := l.Answer()
	if a.Columns[1].Kind != answer.KindRatio || a.Rows[0][0] != answer.Num(answer.KindCount, 3) || a.Rows[0][1] != answer.Num(answer.KindRatio, 0.1466) ||
		a.Text()[0][1] != "14.66%" || a.Status != answer.StatusConverged || a.Peers != 3 || a.Rounds != 14 || a.Elapsed != 0.71 {
		t.Errorf("read %+v %v %+v", a.Columns, a.Rows, a.Meta)
	}
	b, err := json.Marshal(ResultLine(a))
	if err != nil || string(b) != recorded {
		t.Errorf("written back\n%s\nwant\n%s (%v)", b, recorded, err)
	}
}

// Every name a result line's meta may carry is the documented one
// (docs/API.md, answer.Meta), and the runtime's own fields stay off the
// wire.
func TestResultLineNames(t *testing.T) {
	a := &answer.Answer{Columns: []answer.Column{{Name: "node", Kind: answer.KindString}}, Rows: [][]answer.Value{{answer.Str("a1")}},
		Nodes: []string{"a1"}, Explain: "x",
		Meta: &answer.Meta{Statement: "s", Protocol: "p", Status: "partial", Reason: "r", Peers: 1, MembersStart: 1, MembersEnd: 1,
			Joined: []string{"j"}, Left: []string{"l"}, Unreachable: []string{"u"}, Refused: []string{"f"}, Excluded: []string{"e"},
			ExcludedCount: 1, Participants: 1, Rounds: 1, Elapsed: 1, ErrEstimate: 1, PlanHash: "h", FromTags: true, Warning: "w",
			Converged: true, Timeout: true, Epoch: 1, At: "t", Budget: 9, Final: true}}
	b, _ := json.Marshal(ResultLine(a))
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(top["meta"], &meta); err != nil {
		t.Fatal(err)
	}
	keys := func(m any) []string {
		var ks []string
		for _, k := range reflect.ValueOf(m).MapKeys() {
			ks = append(ks, k.String())
		}
		sort.Strings(ks)
		return ks
	}
	if got, want := keys(top), []string{"columns", "explain", "meta", "rows", "text", "type"}; !slices.Equal(got, want) {
		t.Errorf("line names %v, want %v", got, want)
	}
	want := []string{"at", "converged", "elapsed_seconds", "epoch", "error_estimate", "excluded", "excluded_count", "from_tags",
		"joined", "left", "members_end", "members_start", "participants_estimate", "peers", "plan_hash", "protocol", "reason",
		"refused", "rounds", "statement", "status", "timeout", "unreachable", "warning"}
	if got := keys(meta); !slices.Equal(got, want) {
		t.Errorf("meta names %v, want %v", got, want)
	}
}
