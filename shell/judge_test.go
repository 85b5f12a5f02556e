package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
)

// timeouts is an executor whose every statement ends at its WITH TIMEOUT:
// a partial answer with api.ErrTimeout beside it, as node and the API's
// Client return it.
type timeouts struct{ status string }

func (e timeouts) Execute(_ context.Context, stmt string, _ func(answer.Progress)) (*answer.Answer, error) {
	a := &answer.Answer{Columns: []answer.Column{{Name: "count", Kind: answer.KindCount}},
		Rows: [][]answer.Value{{answer.Num(answer.KindCount, 7)}},
		Meta: &answer.Meta{Statement: stmt, Status: e.status, Reason: "the statement's timeout ended it before it converged", Timeout: true}}
	return a, fmt.Errorf("node: %w", api.ErrTimeout)
}
func (e timeouts) Words(context.Context) []string { return nil }
func (e timeouts) Watch(context.Context, string, func(*answer.Answer, error) bool) error {
	return errors.New("no WATCH here")
}

func TestJudge(t *testing.T) {
	partial := &answer.Answer{Meta: &answer.Meta{Status: answer.StatusPartial, Reason: "a1 unreachable"}}
	contested := &answer.Answer{Meta: &answer.Meta{Status: answer.StatusContested, Reason: "bent"}}
	exact := &answer.Answer{Meta: &answer.Meta{Status: answer.StatusExact}}
	sampled := &answer.Answer{Meta: &answer.Meta{Status: answer.StatusSampled, Reason: "the gossip was bent", Converged: true}}
	timeout := fmt.Errorf("node: %w", api.ErrTimeout)
	for _, c := range []struct {
		name                 string
		ans                  *answer.Answer
		err                  error
		partialOK, contestOK bool
		want                 error // nil: accepted
	}{
		{"exact", exact, nil, false, false, nil},
		{"sampled", sampled, nil, false, false, nil},
		{"partial", partial, nil, false, false, api.ErrPartial},
		{"partial allowed", partial, nil, true, false, nil},
		{"timeout", partial, timeout, false, false, api.ErrTimeout},
		{"timeout allowed", partial, timeout, true, false, nil},
		{"timeout without an answer", nil, timeout, true, true, api.ErrTimeout},
		{"partial without an answer", nil, fmt.Errorf("node: %w", api.ErrPartial), true, true, api.ErrPartial},
		{"cancelled", partial, context.Canceled, true, true, context.Canceled},
		{"contested", contested, nil, true, false, api.ErrContested},
		{"contested allowed", contested, nil, false, true, nil},
		{"contested and timed out", contested, timeout, false, true, api.ErrTimeout},
		{"statement error", nil, api.ErrStatement, true, true, api.ErrStatement},
	} {
		got := Judge(c.ans, c.err, c.partialOK, c.contestOK)
		if c.want == nil && got != nil || c.want != nil && !errors.Is(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		// A partial error that came back alone is said so: there is no
		// answer for --allow-partial to accept (cmd/peerq's exitFor).
		var un *Unanswered
		if want := c.ans == nil && (partialOnly(c.err) || errors.Is(c.err, api.ErrContested)); errors.As(got, &un) != want {
			t.Errorf("%s: %v unanswered %v, want %v", c.name, got, !want, want)
		}
	}
}

// --allow-partial accepts an answer WITH TIMEOUT ended, in a script and in
// a shell reading a pipe; without it, the answer is printed and the
// timeout is the error.
func TestAllowPartialTimeout(t *testing.T) {
	const src = "SELECT COUNT(*) FROM peers WITH TIMEOUT 1ms; SELECT COUNT(*) FROM peers WITH TIMEOUT 1ms"
	for _, allow := range []bool{false, true} {
		var out bytes.Buffer
		err := RunScript(context.Background(), timeouts{answer.StatusPartial}, src,
			ScriptOptions{Split: semicolons, Format: FormatCSV, Out: &out, AllowPartial: allow})
		if allow && err != nil || !allow && !errors.Is(err, api.ErrTimeout) {
			t.Errorf("script, allow-partial %v: %v", allow, err)
		}
		if n := strings.Count(out.String(), "count\n7\n"); allow && n != 2 || !allow && n != 1 {
			t.Errorf("script, allow-partial %v: %d answers printed:\n%s", allow, n, out.String())
		}

		out.Reset()
		var errs bytes.Buffer
		err = Run(context.Background(), timeouts{answer.StatusPartial}, Config{In: strings.NewReader(src + ";\n"), Out: &out, Err: &errs,
			Split: semicolons, Format: FormatCSV, AllowPartial: allow})
		var failed *FailedError
		if allow && err != nil || !allow && (!errors.As(err, &failed) || failed.N != 2 || !errors.Is(err, api.ErrTimeout)) {
			t.Errorf("piped shell, allow-partial %v: %v", allow, err)
		}
		if n := strings.Count(out.String(), "count\n7\n"); n != 2 {
			t.Errorf("piped shell, allow-partial %v: %d answers printed:\n%s", allow, n, out.String())
		}
		if allow && errs.Len() > 0 {
			t.Errorf("piped shell, allow-partial: %s", errs.String())
		}
	}
}
