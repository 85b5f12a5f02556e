package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
)

// Splitter finds where the statements of a script end: the byte offsets
// of the ';' that end statements (outside strings, quoted names and
// comments), and whether nothing but whitespace and comments follows the
// last. The language's lexer provides it (query.Split); the shell knows no
// grammar.
type Splitter func(src string) (ends []int, complete bool)

// Statement is one statement of a script and where its text starts.
type Statement struct {
	Text         string // without its ';'
	Offset       int    // of Text in the script
	Line, Column int    // of Offset, from 1
}

// SplitScript cuts src into statements with split; the text after the last
// ';', if it holds more than whitespace, is the last statement. A statement
// of nothing but comments is no statement.
func SplitScript(src string, split Splitter) []Statement {
	ends, _ := split(src)
	var out []Statement
	start := 0
	add := func(end int) {
		text := src[start:end]
		if e, blank := split(text); len(e) == 0 && blank {
			return // only whitespace and comments: nothing to run
		}
		if strings.TrimSpace(text) != "" {
			line, col := position(src, start)
			out = append(out, Statement{Text: text, Offset: start, Line: line, Column: col})
		}
	}
	for _, e := range ends {
		add(e)
		start = e + 1
	}
	add(len(src))
	return out
}

// position is the line and column (in characters) of byte offset off.
func position(src string, off int) (line, col int) {
	line = 1 + strings.Count(src[:off], "\n")
	lineStart := strings.LastIndexByte(src[:off], '\n') + 1
	return line, 1 + len([]rune(src[lineStart:off]))
}

// Positioned is an error that points at a line and column of a statement.
type Positioned interface {
	error
	Line() int
	Column() int
}

// StatementError is a statement's error placed in its script: the
// script's name, the line and column, the reason, and the line with a
// caret under the column.
type StatementError struct {
	Name         string
	Line, Column int
	Reason       string
	Caret        string
	Err          error
}

func (e *StatementError) Error() string {
	s := fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Reason)
	if e.Name != "" {
		s = e.Name + ":" + s
	}
	if e.Caret != "" {
		s += "\n    " + strings.ReplaceAll(e.Caret, "\n", "\n    ")
	}
	return s
}

func (e *StatementError) Unwrap() error { return e.Err }

// positionPrefix is the "line:col: " an error's text starts with.
var positionPrefix = regexp.MustCompile(`^\d+:\d+: `)

// reason is a positioned error's message without its position.
func reason(p Positioned) string {
	if r, ok := p.(interface{ Reason() string }); ok {
		return r.Reason()
	}
	return positionPrefix.ReplaceAllString(p.Error(), "")
}

// Place places a statement error: err's position is within the text of
// stmt, which starts at stmt.Line, stmt.Column of src. Errors without a
// position come back unchanged.
func Place(src, name string, stmt Statement, err error) error {
	var p Positioned
	if !errors.As(err, &p) || p.Line() < 1 {
		return err
	}
	line, col := stmt.Line+p.Line()-1, p.Column()
	if p.Line() == 1 {
		col += stmt.Column - 1
	}
	return &StatementError{Name: name, Line: line, Column: col, Reason: reason(p), Caret: Caret(src, line, col), Err: err}
}

// maxCaretContext bounds the characters of the line shown around a caret:
// a 100 KB line is not echoed whole.
const maxCaretContext = 60

// Caret returns line `line` of src and a caret under column `col` (both
// from 1), the line cut to about maxCaretContext characters each side of
// the column. Tabs before the column are kept so that the caret lines up.
func Caret(src string, line, col int) string {
	lines := strings.Split(src, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	text := []rune(strings.TrimRight(lines[line-1], "\r"))
	c := max(col-1, 0)
	lo, hi := max(0, c-maxCaretContext), min(len(text), c+maxCaretContext)
	var b, pad strings.Builder
	if lo > 0 {
		b.WriteString("…")
		pad.WriteByte(' ')
	}
	b.WriteString(string(text[lo:hi]))
	if hi < len(text) {
		b.WriteString("…")
	}
	for i := lo; i < c && i < len(text); i++ {
		if text[i] == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	return b.String() + "\n" + pad.String() + "^"
}

// ScriptOptions say how a script runs.
type ScriptOptions struct {
	// Name is the script's name for positions ("" for -e).
	Name   string
	Split  Splitter
	Format Format
	Out    io.Writer
	// AllowPartial goes on after a partial answer; by default a partial
	// answer is printed, then stops the script with api.ErrPartial.
	AllowPartial bool
	// AllowContested goes on after a contested answer (the sample check
	// found it bent: answer.StatusContested); by default it is printed,
	// then stops the script with api.ErrContested.
	AllowContested bool
	// Epochs ends a WATCH after that many answers; 0 watches until ctx
	// ends (Ctrl-C).
	Epochs int
}

// IsWatch reports whether a statement is a WATCH (its first word).
func IsWatch(stmt string) bool {
	f := strings.Fields(stmt)
	return len(f) > 0 && strings.EqualFold(f[0], "WATCH")
}

// jsonArray writes JSON documents as the items of one array, as jq
// prints one: "[" before the first, "},\n  {" between, "\n]" at close
// (only if one was written). An item's last line waits for the comma, or
// the close, that follows it.
type jsonArray struct {
	w   io.Writer
	n   int // documents written
	buf bytes.Buffer
}

func (a *jsonArray) item(t *Table) error {
	a.buf.Reset()
	if a.n == 0 {
		a.buf.WriteString("[\n")
	} else {
		a.buf.WriteString(",\n")
	}
	if err := renderJSON(&a.buf, t, "  "); err != nil {
		return err
	}
	a.n++
	_, err := a.w.Write(bytes.TrimSuffix(a.buf.Bytes(), []byte("\n")))
	return err
}

func (a *jsonArray) close() error {
	if a.n == 0 {
		return nil
	}
	a.n = 0
	_, err := io.WriteString(a.w, "\n]\n")
	return err
}

// answers writes a script's answers in its format: blocks of table or
// CSV an empty line apart; JSON documents, inside one array when the
// script may write more than one (several statements, or a WATCH: one
// document an epoch), so that the output is always one JSON value;
// NDJSON lines as they are.
type answers struct {
	opts  ScriptOptions
	array *jsonArray // JSON of several answers; nil otherwise
	n     int        // answers written
}

func newAnswers(opts ScriptOptions, stmts []Statement) *answers {
	o := &answers{opts: opts}
	if opts.Format == FormatJSON && (len(stmts) > 1 || len(stmts) == 1 && IsWatch(stmts[0].Text)) {
		o.array = &jsonArray{w: opts.Out}
	}
	return o
}

// write writes one answer; head, if set, is a line a table shows above it.
func (o *answers) write(ans *answer.Answer, head string) error {
	w := o.opts.Out
	if o.n > 0 && o.opts.Format.separated() {
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	o.n++
	if o.array != nil {
		return o.array.item(TableOf(ans))
	}
	if o.opts.Format == FormatTable && head != "" {
		if _, err := fmt.Fprintln(w, head); err != nil {
			return err
		}
	}
	return Render(w, o.opts.Format, TableOf(ans))
}

// close ends the JSON array, whatever stopped the script, so that what
// was written is one JSON value.
func (o *answers) close() error {
	if o.array == nil {
		return nil
	}
	return o.array.close()
}

// watchScript runs a WATCH of a script: one block per epoch (table, csv,
// json), or per row plus a meta line (ndjson), until Epochs answers or ctx
// ends. A partial epoch is printed and, unless AllowPartial, ends it with
// api.ErrPartial.
func watchScript(ctx context.Context, exec api.Executor, src string, stmt Statement, opts ScriptOptions, out *answers) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var failed error
	epochs := 0
	err := exec.Watch(ctx, stmt.Text, func(ans *answer.Answer, err error) bool {
		epochs++
		if ans == nil {
			failed = Place(src, opts.Name, stmt, err)
			return false
		}
		head := ""
		if ans.Meta != nil {
			head = fmt.Sprintf("epoch %d · %s", ans.Meta.Epoch, ans.Meta.At)
		}
		if rerr := out.write(ans, head); rerr != nil {
			failed = rerr
			return false
		}
		if err := Judge(ans, err, opts.AllowPartial, opts.AllowContested); err != nil {
			epoch := 0
			if ans.Meta != nil {
				epoch = ans.Meta.Epoch
			}
			failed = fmt.Errorf("%w (line %d, epoch %d)", err, stmt.Line, epoch)
			return false
		}
		return opts.Epochs == 0 || epochs < opts.Epochs
	})
	if err != nil {
		return Place(src, opts.Name, stmt, err)
	}
	return failed
}

// RunScript runs every statement of src through exec and renders each
// answer. The first error stops it: a statement error comes back as a
// *StatementError placed in the script; a partial answer (whether a
// WITH TIMEOUT, the budget or missing members made it so) is rendered
// first, then its error returned, unless AllowPartial; a contested one
// likewise unless AllowContested (Judge). In JSON, a script of more than
// one statement, or a WATCH, writes one array of documents.
func RunScript(ctx context.Context, exec api.Executor, src string, opts ScriptOptions) (err error) {
	stmts := SplitScript(src, opts.Split)
	out := newAnswers(opts, stmts)
	defer func() {
		if cerr := out.close(); err == nil {
			err = cerr
		}
	}()
	for _, stmt := range stmts {
		if IsWatch(stmt.Text) {
			if err := watchScript(ctx, exec, src, stmt, opts, out); err != nil {
				return err
			}
			continue
		}
		ans, err := exec.Execute(ctx, stmt.Text, nil)
		if ans != nil {
			if rerr := out.write(ans, ""); rerr != nil {
				return rerr
			}
		}
		if err := Judge(ans, err, opts.AllowPartial, opts.AllowContested); err != nil {
			if ans == nil || !ans.Flagged() {
				return Place(src, opts.Name, stmt, err)
			}
			return fmt.Errorf("%w (line %d)", err, stmt.Line)
		}
	}
	return nil
}

// Judge is the error that stops a script after a statement: err when there
// is no answer or err is not about how complete the answer is; for a
// flagged answer, api.ErrContested unless allowContested, api.ErrPartial
// (or the error beside it that made it partial, as api.ErrTimeout for
// WITH TIMEOUT) unless allowPartial; nil otherwise. An error beside a
// partial answer that only says why it is partial (a timeout) is the
// answer's status, not a failure of its own: --allow-partial accepts every
// partial answer, whatever ended it. A cancelled statement (Ctrl-C) is not
// accepted: its partial answer is not one the script asked for.
func Judge(ans *answer.Answer, err error, allowPartial, allowContested bool) error {
	var m *answer.Meta
	if ans != nil {
		m = ans.Meta
	}
	if err != nil && m == nil && (partialOnly(err) || errors.Is(err, api.ErrContested)) {
		return &Unanswered{Err: err}
	}
	if err != nil && (m == nil || !partialOnly(err)) {
		return err
	}
	switch {
	case m == nil:
		return nil
	case m.Status == answer.StatusContested && !allowContested:
		return fmt.Errorf("%w: %s", api.ErrContested, m.Reason)
	case (m.Status == answer.StatusPartial || err != nil) && !allowPartial:
		if err != nil {
			return err // its own words: "the statement's timeout ended it …"
		}
		return fmt.Errorf("%w: %s", api.ErrPartial, m.Reason)
	}
	return nil
}

// Unanswered is a statement's error that says its answer would be partial
// (or contested) but came back without one (a FROM SUBCLOUD whose owner's pool did not
// answer; a timeout before any answer): no answer was printed, and there
// is none for --allow-partial to accept.
type Unanswered struct{ Err error }

func (u *Unanswered) Error() string { return u.Err.Error() }
func (u *Unanswered) Unwrap() error { return u.Err }

// partialOnly reports whether err, returned beside an answer, only says
// why the answer is partial.
func partialOnly(err error) bool {
	return errors.Is(err, api.ErrTimeout) || errors.Is(err, api.ErrPartial)
}
