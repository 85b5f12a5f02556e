package shell

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
)

// epochs is an executor whose WATCH answers n epochs, a count each.
type epochs struct{ n int }

func (e epochs) Execute(context.Context, string, func(answer.Progress)) (*answer.Answer, error) {
	return nil, nil
}
func (e epochs) Words(context.Context) []string { return nil }
func (e epochs) Watch(ctx context.Context, _ string, each func(*answer.Answer, error) bool) error {
	for k := 1; k <= e.n; k++ {
		a := &answer.Answer{Columns: []answer.Column{{Name: "COUNT(*)", Kind: answer.KindCount}},
			Rows: [][]answer.Value{{answer.Num(answer.KindCount, float64(10+k))}},
			Meta: &answer.Meta{Statement: "WATCH", Status: answer.StatusConverged, Converged: true, Epoch: k, At: fmt.Sprintf("2026-11-27T00:00:%02dZ", k)}}
		if !each(a, nil) {
			return nil
		}
	}
	return nil
}

// On a terminal, each epoch's answer is drawn over the last (cursor up by
// the last block's lines, clear to the end); in a script, one block per
// epoch, as many as Epochs.
func TestWatchRendering(t *testing.T) {
	var out bytes.Buffer
	s := &Session{cfg: Config{Out: &out, Err: &out, Terminal: true}, exec: epochs{3}, format: FormatTable}
	s.watch(context.Background(), "WATCH SELECT COUNT(*) FROM peers EVERY 1s")
	got := out.String()
	if strings.Count(got, "\033[J") != 2 || !strings.Contains(got, "epoch 3") {
		t.Errorf("terminal output:\n%q", got)
	}
	first := got[:strings.Index(got, "\033[")]
	if up := "\033[" + strconv.Itoa(strings.Count(first, "\n")) + "A"; !strings.Contains(got, up) {
		t.Errorf("the redraw does not go up over the first block's %d lines:\n%q", strings.Count(first, "\n"), got)
	}
	out.Reset()
	if err := RunScript(context.Background(), epochs{5}, "WATCH SELECT COUNT(*) FROM peers EVERY 1s", ScriptOptions{Split: semicolons, Format: FormatCSV, Out: &out, Epochs: 2}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "COUNT(*)") != 2 || !strings.Contains(out.String(), "12") || strings.Contains(out.String(), "13") {
		t.Errorf("two epochs in csv:\n%s", out.String())
	}
}
