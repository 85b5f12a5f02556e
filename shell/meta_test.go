package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/parser"
)

// catalogExec answers the SHOW statements the backslash commands run, a
// constant SELECT, and a statement error for an unknown attribute.
type catalogExec struct {
	api.Executor
	ran []string
}

func strs(cols []string, rows ...[]string) *answer.Answer {
	a := &answer.Answer{Meta: &answer.Meta{Status: answer.StatusExact, Peers: 7, Converged: true}}
	for _, c := range cols {
		a.Columns = append(a.Columns, answer.Column{Name: c, Kind: answer.KindString})
	}
	for _, r := range rows {
		var row []answer.Value
		for _, v := range r {
			row = append(row, answer.Str(v))
		}
		a.Rows = append(a.Rows, row)
	}
	return a
}

func (e *catalogExec) Execute(_ context.Context, stmt string, _ func(answer.Progress)) (*answer.Answer, error) {
	e.ran = append(e.ran, stmt)
	switch {
	case stmt == "SHOW ATTRIBUTES":
		return strs([]string{"attribute", "kind", "source", "description"},
			[]string{"node", "string", "member", "the peer's name"}, []string{"mem_free", "bytes", "probe", "memory available"}), nil
	case stmt == "SHOW SUBCLOUDS":
		// members is a list, as the agent's SHOW SUBCLOUDS has it.
		a := strs([]string{"subcloud", "owner", "members"}, []string{"analytics", "peer-1", ""})
		a.Columns[2].Kind, a.Rows[0][2] = answer.KindList, answer.List([]string{"peer-2", "peer-3"})
		return a, nil
	case strings.Contains(stmt, "mem_fre "):
		i := strings.Index(stmt, "mem_fre ")
		line := strings.Count(stmt[:i], "\n") + 1
		return nil, posErr{line, i - strings.LastIndexByte(stmt[:i], '\n'), `unknown attribute "mem_fre"`}
	}
	return strs([]string{"one", "two"}, []string{"1", "2"}, []string{"3", "4"}), nil
}

func (e *catalogExec) Words(context.Context) []string { return []string{"node", "mem_free"} }

// session runs the lines through a piped shell, and returns its output
// and its errors.
func session(t *testing.T, exec api.Executor, lines ...string) (string, string) {
	t.Helper()
	var out, errs bytes.Buffer
	cfg := Config{In: strings.NewReader(strings.Join(lines, "\n") + "\n"), Out: &out, Err: &errs, Split: semicolons,
		Help: parser.Help, Topics: parser.HelpTopics(), Tables: func(name string) *answer.Answer {
			if name == "leases" {
				return strs([]string{"attribute", "kind"}, []string{"peer_hours", "number"})
			}
			return nil
		}}
	err := Run(context.Background(), exec, cfg)
	var failed *FailedError
	if err != nil && !errors.As(err, &failed) {
		t.Fatal(err)
	}
	return out.String(), errs.String()
}

// \? lists every command; \h the statements, \h NAME one's syntax.
func TestHelpCommands(t *testing.T) {
	out, _ := session(t, &catalogExec{}, `\?`)
	for _, cmd := range []string{`\d NAME`, `\x`, `\i FILE`, `\h [STATEMENT]`, `\timing`, `\format`, `\pager`, `\members`, `\explain`, `\q`} {
		if !strings.Contains(out, cmd) {
			t.Errorf(`\? lacks %s:\n%s`, cmd, out)
		}
	}
	out, _ = session(t, &catalogExec{}, `\h`)
	if !strings.Contains(out, "SELECT  RESERVE  RELEASE  ALTER  SHOW  WATCH  EXPLAIN") {
		t.Errorf(`\h:\n%s`, out)
	}
	out, errs := session(t, &catalogExec{}, `\h reserve`, `\h SELEKT`)
	if !strings.Contains(out, `reserve = "RESERVE" number`) || !strings.Contains(out, "Example:") {
		t.Errorf(`\h reserve:\n%s`, out)
	}
	if !strings.Contains(errs, "no statement begins with SELEKT") {
		t.Errorf(`\h SELEKT: %q`, errs)
	}
}

// \d NAME describes tables, attributes and subclouds.
func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		arg       string
		want, not []string
		ran       string
	}{
		{"peers", []string{`Table "peers"`, "mem_free", "memory available"}, nil, "SHOW ATTRIBUTES"},
		{"leases", []string{`Table "leases"`, "peer_hours"}, []string{"mem_free"}, ""},
		{"mem_free", []string{"kind", "bytes", "memory available"}, []string{"node"}, "SHOW ATTRIBUTES"},
		{"analytics", []string{"owner", "peer-1", "members", "  peer-3"}, nil, "SHOW SUBCLOUDS"},
		{"SUBCLOUD analytics", []string{"peer-1"}, nil, "SHOW SUBCLOUDS"},
	} {
		e := &catalogExec{}
		out, errs := session(t, e, `\d `+c.arg)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf(`\d %s lacks %q:\n%s%s`, c.arg, w, out, errs)
			}
		}
		for _, w := range c.not {
			if strings.Contains(out, w) {
				t.Errorf(`\d %s shows %q:\n%s`, c.arg, w, out)
			}
		}
		if c.ran != "" && !slices.Contains(e.ran, c.ran) || c.ran == "" && len(e.ran) > 0 {
			t.Errorf(`\d %s ran %q, want %q`, c.arg, e.ran, c.ran)
		}
	}
	if _, errs := session(t, &catalogExec{}, `\d nothing`); !strings.Contains(errs, "no table, attribute or subcloud is named nothing") {
		t.Errorf(`\d nothing: %q`, errs)
	}
	// and it is a failure: a piped shell exits with it.
	var failed *FailedError
	err := Run(context.Background(), &catalogExec{}, Config{In: strings.NewReader("\\d nothing\n"), Out: io.Discard, Err: io.Discard, Split: semicolons})
	if !errors.As(err, &failed) || failed.N != 1 {
		t.Errorf(`\d nothing through a pipe: %v, want 1 failure`, err)
	}
}

// \x shows a record at a time, as psql does, and off again; \timing
// prints psql's line after each statement.
func TestExpandedAndTiming(t *testing.T) {
	out, errs := session(t, &catalogExec{}, `\x`, "SELECT 1;", `\x off`, `\timing on`, "SELECT 2;", `\timing`, "SELECT 3;", `\x maybe`)
	want := "-[ RECORD 1 ]-\none | 1\ntwo | 2\n-[ RECORD 2 ]-\none | 3\ntwo | 4\n"
	if !strings.HasPrefix(out, want) {
		t.Errorf("expanded:\n%s\nwant it to begin\n%s", out, want)
	}
	if strings.Count(out, "RECORD") != 2 || strings.Count(out, "┌") != 2 {
		t.Errorf(`\x off did not go back to tables:\n%s`, out)
	}
	for _, w := range []string{"Expanded display is on.", "Expanded display is off.", "Timing is on.", "Timing is off.", `usage: \x [on|off]`} {
		if !strings.Contains(errs, w) {
			t.Errorf("messages lack %q:\n%s", w, errs)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^Time: \d+\.\d{3} ms$`).FindAllString(errs, -1)); n != 1 {
		t.Errorf("%d Time: lines, want 1 (timing on for one statement):\n%s", n, errs)
	}
}

// RenderExpanded lines values up under names; no rows says so.
func TestRenderExpanded(t *testing.T) {
	var b bytes.Buffer
	tbl := &Table{Columns: []Column{{Name: "node"}, {Name: "mem_free"}}, Rows: [][]Cell{{{Text: "peer-000001"}, {Text: "4.0 GiB"}}}, Footer: "1 row(s)"}
	if err := RenderExpanded(&b, tbl); err != nil {
		t.Fatal(err)
	}
	if want := "-[ RECORD 1 ]---------\nnode     | peer-000001\nmem_free | 4.0 GiB\n1 row(s)\n"; b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	RenderExpanded(&b, &Table{Columns: tbl.Columns})
	if b.String() != "(0 rows)\n" {
		t.Errorf("no rows: %q", b.String())
	}
}

// \i runs a file's statements, each error at its file:line:col, and the
// shell goes on.
func TestInclude(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.pql")
	if err := os.WriteFile(path, []byte("SELECT 1;\nSELECT node,\n  mem_fre FROM peers;\nSELECT 2;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &catalogExec{}
	out, errs := session(t, e, `\i `+path, `\i `+path+".missing", "SELECT 4;")
	if want := fmt.Sprintf("error: %s:3:3: unknown attribute \"mem_fre\"\n      mem_fre FROM peers;\n      ^", path); !strings.Contains(errs, want) {
		t.Errorf("errors:\n%s\nwant\n%s", errs, want)
	}
	if !strings.Contains(errs, "no such file") {
		t.Errorf("a missing file: %q", errs)
	}
	if len(e.ran) != 4 || strings.Count(out, "┌") != 3 {
		t.Errorf("ran %q; output:\n%s", e.ran, out)
	}
}

// refused is an executor whose agent is not there.
type refused struct{ api.Executor }

func (refused) Execute(context.Context, string, func(answer.Progress)) (*answer.Answer, error) {
	return nil, fmt.Errorf("agent at 127.0.0.1:7474: %w", syscall.ECONNREFUSED)
}

// failing is an executor whose every statement fails with err.
type failing struct {
	api.Executor
	err error
}

func (f failing) Execute(context.Context, string, func(answer.Progress)) (*answer.Answer, error) {
	return nil, f.err
}

// The first line says who answers and how big its cluster is; a refused
// connection comes with the hint.
func TestGreet(t *testing.T) {
	var errs bytes.Buffer
	s := &Session{cfg: Config{Err: &errs, Agent: "agent at 127.0.0.1:7474"}, exec: &catalogExec{}}
	s.greet(context.Background())
	if want := "peerq shell: connected to agent at 127.0.0.1:7474, in a cluster of 7 member(s)\n"; errs.String() != want {
		t.Errorf("greeting %q, want %q", errs.String(), want)
	}
	errs.Reset()
	s = &Session{cfg: Config{Err: &errs, Agent: "agent at 127.0.0.1:7474", Hint: func(err error) string {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "start one"
		}
		return ""
	}}, exec: refused{}}
	s.greet(context.Background())
	if got := errs.String(); !strings.Contains(got, "connection refused") || !strings.HasSuffix(got, "\nhint: start one\n") {
		t.Errorf("refused: %q", got)
	}
	// The agent is named once, whether the error names it or not.
	if got := errs.String(); strings.Count(got, "127.0.0.1:7474") != 1 || !strings.HasPrefix(got, "peerq shell: agent at 127.0.0.1:7474: ") {
		t.Errorf("refused: %q names the agent other than once", got)
	}
	errs.Reset()
	s = &Session{cfg: Config{Err: &errs, Agent: "peer p1 of the demo"}, exec: failing{err: errors.New("cluster is starting")}}
	s.greet(context.Background())
	if want := "peerq shell: peer p1 of the demo: cluster is starting\n"; errs.String() != want {
		t.Errorf("error without the agent: %q, want %q", errs.String(), want)
	}
}
