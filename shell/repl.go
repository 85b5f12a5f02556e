package shell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peterh/liner"
)

// Config configures a shell session.
type Config struct {
	In       io.Reader
	Out, Err io.Writer
	// Terminal selects the line editor (prompts, history, completion);
	// otherwise statements are read plainly, for pipes and scripts.
	Terminal    bool
	HistoryFile string
	Format      Format
	// Keywords are the language's words, for completion.
	Keywords []string
	// Split finds where statements end (query.Split): the shell cuts
	// statements with the language's own lexer, so that a ';' inside a
	// string or a comment ends nothing.
	Split Splitter
	// Pager, on a terminal, shows an answer taller than the screen
	// (Rows() lines, read at each answer: the window may change) through
	// this command ("less -FRX" style); empty pages nothing. \pager
	// turns it off and on. While it runs, Ctrl-C is the pager's: the
	// shell lets it go on a channel of its own, and leaves the rest of
	// the process's signal handling as it was.
	Pager string
	Rows  func() int
	// AllowPartial and AllowContested, when the shell reads a pipe, count
	// a partial (or contested) answer as answered rather than as a failed
	// statement (Judge), as peerq query's flags do.
	AllowPartial, AllowContested bool
	// Follow says what may come next after the text of a script
	// (parser.Follow, injected by the command): the grammar's words and
	// the classes "<name>", "<number>" and "<string>". Completion offers
	// only those: names from the catalog and the subclouds where a name
	// may stand. Without it, completion offers every keyword and name.
	Follow func(prefix string) []string
	// Functions are the language's functions, completed where a name may
	// stand (unless Scope says which).
	Functions []string
	// Scope says, for completion of a name at the end of before (after is
	// the rest of the line), what the type checker takes there
	// (query.CompletionScope): the table whose columns it may be ("peers":
	// the agent's catalog; another: Tables lists its columns), the
	// functions that may stand there (aggregates only where one may), and,
	// if not nil, the only columns that may stand bare (an aggregate
	// statement's GROUP BY keys). Without it, every attribute and function
	// is offered where a name may stand.
	Scope func(before, after string) (table string, functions, keys []string)
	// Help describes a kind of statement for \h (parser.Help): its
	// syntax from the grammar; Topics are the kinds it knows.
	Help   func(statement string) (string, bool)
	Topics []string
	// Tables describes a table the agent does not (\d leases), nil for a
	// name that is no table (query.DescribeTable). \d peers asks the
	// agent's own catalog (SHOW ATTRIBUTES), which knows its tags.
	Tables func(name string) *answer.Answer
	// Agent says who answers, for the first line on a terminal ("agent
	// at 127.0.0.1:7474"); the shell adds the cluster's size.
	Agent string
	// Hint, if set, says what to do about an error, or "": for a refused
	// connection, how to start an agent.
	Hint func(error) string
}

// FailedError is what a session that is not on a terminal returns when
// statements failed: how many, and the first failure (a statement error,
// a partial answer, ...), so that a piped shell exits as `peerq query`
// would. The shell reported each failure as it went on.
type FailedError struct {
	N     int
	First error
}

func (e *FailedError) Error() string {
	if e.N == 1 {
		return fmt.Sprintf("1 statement failed: %v", e.First)
	}
	return fmt.Sprintf("%d statements failed; the first: %v", e.N, e.First)
}

func (e *FailedError) Unwrap() error { return e.First }

// lineReader is the small interface the REPL reads lines through: liner on
// a terminal, bufio otherwise.
type lineReader interface {
	Prompt(prompt string) (string, error)
	AppendHistory(item string)
	Close() error
}

type plainReader struct{ sc *bufio.Scanner }

func (p *plainReader) Prompt(string) (string, error) {
	if p.sc.Scan() {
		return p.sc.Text(), nil
	}
	if err := p.sc.Err(); err != nil {
		return "", err
	}
	return "", io.EOF
}
func (p *plainReader) AppendHistory(string) {}
func (p *plainReader) Close() error         { return nil }

type linerReader struct {
	*liner.State
	history string
}

func (l *linerReader) Close() error {
	if l.history != "" {
		if f, err := os.Create(l.history); err == nil {
			l.WriteHistory(f)
			f.Close()
		}
	}
	return l.State.Close()
}

// maxHistoryLine bounds one history entry read back (a statement's
// limit); a longer line is skipped, not the rest of the file.
const maxHistoryLine = 1 << 20

// loadHistory reads a history file into the line editor. liner's own
// reader stops at the first line over 4 KB, losing every later entry; this
// one reads lines of any length, skipping only those it cannot keep.
func loadHistory(l interface{ AppendHistory(string) }, r io.Reader) (n int) {
	in := bufio.NewReader(r)
	for {
		line, err := in.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line != "" && len(line) <= maxHistoryLine && utf8.ValidString(line) {
			l.AppendHistory(line)
			n++
		}
		if err != nil {
			return n
		}
	}
}

// Session is a running shell.
type Session struct {
	cfg    Config
	exec   api.Executor
	in     lineReader
	format Format
	timing bool
	pager  bool
	// expanded shows tables a record at a time (\x), as psql does.
	expanded bool
	// pending is the text of a statement begun on earlier lines (""
	// when a statement starts), for completion.
	pending string
	// failed counts the statements that failed; first is the first
	// failure.
	failed int
	first  error
	// array holds the JSON answers of a shell that reads a pipe: one
	// array of documents, as a script's (closed when the format changes
	// or the input ends).
	array *jsonArray
}

// Run reads statements until EOF (Ctrl-D) or \quit, runs each, and renders
// the answers. Errors in statements are reported and the shell goes on.
func Run(ctx context.Context, exec api.Executor, cfg Config) error {
	if cfg.Split == nil {
		return errors.New("shell: Config needs Split")
	}
	s := &Session{cfg: cfg, exec: exec, format: cfg.Format, pager: cfg.Terminal && cfg.Pager != "" && cfg.Rows != nil, array: &jsonArray{w: cfg.Out}}
	if cfg.Terminal {
		l := liner.NewLiner()
		l.SetCtrlCAborts(true)
		l.SetMultiLineMode(true)
		l.SetWordCompleter(s.complete)
		if cfg.HistoryFile != "" {
			if f, err := os.Open(cfg.HistoryFile); err == nil {
				loadHistory(l, f)
				f.Close()
			}
		}
		s.in = &linerReader{State: l, history: cfg.HistoryFile}
		s.greet(context.Background())
		fmt.Fprintln(cfg.Err, `peerq shell: statements end with ';'. \? for commands, \h for statements, Ctrl-C cancels, Ctrl-D quits.`)
	} else {
		sc := bufio.NewScanner(cfg.In)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		s.in = &plainReader{sc: sc}
	}
	defer s.in.Close()
	err := s.loop(ctx)
	if cerr := s.array.close(); err == nil && cerr != nil {
		err = fmt.Errorf("shell: %w", cerr)
	}
	if err != nil {
		return err
	}
	if s.failed > 0 && !cfg.Terminal {
		return &FailedError{N: s.failed, First: s.first}
	}
	return nil
}

// fail notes a failed statement.
func (s *Session) fail(err error) {
	if s.failed == 0 {
		s.first = err
	}
	s.failed++
}

// words typed alone at the prompt, as psql takes them: not PQL.
var bareCommands = map[string]string{"help": `\help`, "exit": `\quit`, "quit": `\quit`}

func (s *Session) loop(ctx context.Context) error {
	var buf strings.Builder
	for {
		prompt := "peerq> "
		if buf.Len() > 0 {
			prompt = "   ..> "
		}
		s.pending = buf.String()
		line, err := s.in.Prompt(prompt)
		switch {
		case errors.Is(err, liner.ErrPromptAborted):
			buf.Reset() // Ctrl-C at the prompt drops the statement being typed
			continue
		case errors.Is(err, io.EOF):
			if s.cfg.Terminal {
				fmt.Fprintln(s.cfg.Out) // Ctrl-D: leave the prompt's line
			}
			if strings.TrimSpace(buf.String()) != "" {
				s.runText(ctx, buf.String())
			}
			return nil
		case err != nil:
			return err
		}
		trimmed := strings.TrimSpace(line)
		if cmd, ok := bareCommands[strings.ToLower(strings.TrimSuffix(trimmed, ";"))]; ok && buf.Len() == 0 {
			trimmed = cmd
		}
		if buf.Len() == 0 && strings.HasPrefix(trimmed, `\`) {
			s.in.AppendHistory(trimmed)
			if quit := s.meta(ctx, trimmed); quit {
				return nil
			}
			continue
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
		// Run every statement the buffer now ends; keep the rest.
		text := buf.String()
		ends, blank := s.cfg.Split(text)
		if len(ends) == 0 {
			if blank {
				buf.Reset() // only comments: nothing is being typed
			}
			continue
		}
		last := ends[len(ends)-1]
		done, rest := text[:last+1], text[last+1:]
		buf.Reset()
		if strings.TrimSpace(rest) != "" {
			buf.WriteString(rest)
		}
		s.in.AppendHistory(strings.Join(strings.Fields(done), " "))
		s.runText(ctx, done)
	}
}

// runText runs every statement in text.
func (s *Session) runText(ctx context.Context, text string) {
	for _, stmt := range SplitScript(text, s.cfg.Split) {
		s.run(ctx, stmt.Text)
	}
}

// run runs one statement; Ctrl-C cancels it, not the shell.
func (s *Session) run(ctx context.Context, stmt string) {
	s.runReporting(ctx, stmt, s.report)
}

// runReporting runs one statement, reporting its error with report.
func (s *Session) runReporting(ctx context.Context, stmt string, report func(stmt string, err error)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.cfg.Terminal {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		defer signal.Stop(sig)
		go func() {
			select {
			case <-sig:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	start := time.Now()
	live := false
	progress := func(p answer.Progress) {
		if !s.cfg.Terminal {
			return
		}
		live = true
		fmt.Fprintf(s.cfg.Err, "\r\033[Kround %d/%d · %d peers · %s ±%s", p.Round, p.Budget, p.Peers, p.FirstCell(), answer.FormatPercent(p.ErrEstimate))
	}
	text := strings.TrimSpace(stmt)
	if IsWatch(text) {
		s.watch(ctx, text)
		return
	}
	ans, err := s.exec.Execute(ctx, text, progress)
	elapsed := time.Since(start)
	if live {
		fmt.Fprint(s.cfg.Err, "\r\033[K")
	}
	if judged := Judge(ans, err, s.cfg.AllowPartial, s.cfg.AllowContested); judged != nil {
		if err != nil {
			report(text, err)
		}
		s.fail(judged)
	}
	if ans == nil {
		return
	}
	s.show(TableOf(ans))
	if s.timing {
		// psql's form: the statement's time to its answer, in ms.
		fmt.Fprintf(s.cfg.Err, "Time: %.3f ms\n", float64(elapsed)/float64(time.Millisecond))
	}
}

// show renders a table, through the pager when it is taller than the
// terminal.
func (s *Session) show(t *Table) {
	if !s.cfg.Terminal && s.format == FormatJSON {
		if err := s.array.item(t); err != nil {
			fmt.Fprintln(s.cfg.Err, err)
		}
		return
	}
	if !s.pager {
		if err := s.render(s.cfg.Out, t); err != nil {
			fmt.Fprintln(s.cfg.Err, err)
		}
		return
	}
	var b strings.Builder
	if err := s.render(&b, t); err != nil {
		fmt.Fprintln(s.cfg.Err, err)
		return
	}
	if rows := s.cfg.Rows(); rows <= 0 || strings.Count(b.String(), "\n") < rows-1 {
		fmt.Fprint(s.cfg.Out, b.String())
		return
	}
	if err := page(s.cfg.Pager, b.String(), s.cfg.Out, s.cfg.Err); err != nil {
		fmt.Fprintf(s.cfg.Err, "pager %q: %v (\\pager off shows answers plainly)\n", s.cfg.Pager, err)
		fmt.Fprint(s.cfg.Out, b.String())
	}
}

// render writes t in the session's format: a table a record at a time
// when \x is on.
func (s *Session) render(w io.Writer, t *Table) error {
	if s.expanded && s.format == FormatTable {
		return RenderExpanded(w, t)
	}
	return Render(w, s.format, t)
}

// page runs the pager command (split on spaces) with text on its input.
func page(pager, text string, out, errw io.Writer) error {
	args := strings.Fields(pager)
	if len(args) == 0 {
		return errors.New("no command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(text), out, errw
	// The pager owns the terminal meanwhile: Ctrl-C is its to handle. The
	// shell catches the interrupt on a channel of its own and lets it go
	// (by default it would end the process), and then stops only that
	// channel: whatever else the process does with SIGINT — a caller's
	// own signal.Notify, an ignored SIGINT — is left as it was.
	if !signal.Ignored(os.Interrupt) {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		defer signal.Stop(sig)
	}
	return cmd.Run()
}

// report prints an error; a positioned one with its line and a caret.
func (s *Session) report(stmt string, err error) {
	var pe Positioned
	if !errors.As(err, &pe) || pe.Line() < 1 {
		fmt.Fprintln(s.cfg.Err, "error:", err)
		s.hint(err)
		return
	}
	fmt.Fprintf(s.cfg.Err, "error: %d:%d: %s\n", pe.Line(), pe.Column(), reason(pe))
	if c := Caret(stmt, pe.Line(), pe.Column()); c != "" {
		fmt.Fprintln(s.cfg.Err, "  "+strings.ReplaceAll(c, "\n", "\n  "))
	}
}

const helpText = `Statements end with ';' and may span lines (\h lists them; docs/PQL.md).
  \?, \help                       this text
  \h [STATEMENT]                  the statements; one statement's syntax (\h RESERVE)
  \d                              the attributes (SHOW ATTRIBUTES)
  \d TABLE                        a table's columns: peers, leases
  \d NAME                         one attribute, or a subcloud and its members
  \d SUBCLOUD NAME                a subcloud: size, owner, expiry, every member
  \members                        the members, failed and left ones too (SHOW MEMBERS)
  \x [on|off]                     expanded display: one block per row (toggle)
  \timing [on|off]                print each statement's time (toggle)
  \format table|csv|json|ndjson   output format
  \pager [on|off]                 page answers taller than the screen (toggle)
  \i FILE                         run the statements in FILE
  \explain STATEMENT              how a statement would run
  \q, \quit                       leave (or Ctrl-D; quit and exit work too)
Ctrl-C cancels the running statement, or the one being typed. Tab completes what may come next.`

// toggle sets a setting from \x's, \timing's or \pager's argument: on,
// off, or nothing to flip it. It reports whether the argument was one of
// those.
func toggle(v *bool, arg string) bool {
	switch strings.ToLower(arg) {
	case "":
		*v = !*v
	case "on":
		*v = true
	case "off":
		*v = false
	default:
		return false
	}
	return true
}

func onOff(v bool) string { return map[bool]string{true: "on", false: "off"}[v] }

// meta runs a backslash command; it reports whether to quit.
func (s *Session) meta(ctx context.Context, line string) bool {
	cmd, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch cmd {
	case `\q`, `\quit`:
		return true
	case `\?`, `\help`:
		fmt.Fprintln(s.cfg.Out, helpText)
	case `\h`:
		s.statementHelp(arg)
	case `\format`:
		f := s.format
		if err := f.Set(arg); err != nil {
			fmt.Fprintln(s.cfg.Err, err)
			break
		}
		if f != s.format {
			if err := s.array.close(); err != nil { // the JSON so far is one value
				fmt.Fprintln(s.cfg.Err, err)
			}
		}
		s.format = f
		fmt.Fprintln(s.cfg.Err, "format:", s.format)
	case `\timing`:
		if !toggle(&s.timing, arg) {
			fmt.Fprintln(s.cfg.Err, `usage: \timing [on|off]`)
			break
		}
		fmt.Fprintf(s.cfg.Err, "Timing is %s.\n", onOff(s.timing))
	case `\x`:
		if !toggle(&s.expanded, arg) {
			fmt.Fprintln(s.cfg.Err, `usage: \x [on|off]`)
			break
		}
		fmt.Fprintf(s.cfg.Err, "Expanded display is %s.\n", onOff(s.expanded))
		if s.expanded && s.format != FormatTable {
			fmt.Fprintf(s.cfg.Err, "(it shows in the table format; the format is %s)\n", s.format)
		}
	case `\pager`:
		switch {
		case !s.cfg.Terminal:
			fmt.Fprintln(s.cfg.Err, "pager: off (not a terminal)")
		case s.cfg.Pager == "" || s.cfg.Rows == nil:
			fmt.Fprintln(s.cfg.Err, "pager: none ($PEERQ_PAGER or $PAGER names one)")
		case !toggle(&s.pager, arg):
			fmt.Fprintln(s.cfg.Err, `usage: \pager [on|off]`)
		default:
			fmt.Fprintln(s.cfg.Err, "pager:", map[bool]string{true: "on (" + s.cfg.Pager + ")", false: "off"}[s.pager])
		}
	case `\d`:
		s.describe(ctx, arg)
	case `\i`:
		if arg == "" {
			fmt.Fprintln(s.cfg.Err, `usage: \i FILE`)
			break
		}
		s.include(ctx, arg)
	case `\members`:
		s.run(ctx, "SHOW MEMBERS")
	case `\explain`:
		s.run(ctx, "EXPLAIN "+strings.TrimSuffix(arg, ";"))
	default:
		fmt.Fprintf(s.cfg.Err, "unknown command %s (\\? lists them)\n", cmd)
	}
	return false
}

// statementHelp is \h: the kinds of statement, or one kind's syntax.
func (s *Session) statementHelp(arg string) {
	if s.cfg.Help == nil {
		fmt.Fprintln(s.cfg.Out, helpText)
		return
	}
	arg = strings.TrimSuffix(arg, ";")
	if f := strings.Fields(arg); len(f) > 0 {
		arg = f[0] // \h ALTER SUBCLOUD: the statement's first word
	}
	if arg == "" {
		fmt.Fprintf(s.cfg.Out, "Statements (\\h NAME for one's syntax; \\? for the shell's commands):\n  %s\n", strings.Join(s.cfg.Topics, "  "))
		return
	}
	text, ok := s.cfg.Help(arg)
	if !ok {
		fmt.Fprintf(s.cfg.Err, "no statement begins with %s (\\h lists them)\n", arg)
		return
	}
	fmt.Fprint(s.cfg.Out, text)
}

// include is \i FILE: it runs the file's statements one after the other,
// as a script would, and reports each failure at its file:line:col; the
// shell goes on after errors, as psql does.
func (s *Session) include(ctx context.Context, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		err = fmt.Errorf(`\i: %w`, err)
		fmt.Fprintln(s.cfg.Err, "error:", err)
		s.fail(err)
		return
	}
	src := string(b)
	for i, st := range SplitScript(src, s.cfg.Split) {
		if i > 0 && s.format.separated() {
			fmt.Fprintln(s.cfg.Out)
		}
		// The statement runs without its leading space (run trims it):
		// its positions count from where its text begins.
		lead := len(st.Text) - len(strings.TrimLeft(st.Text, " \t\r\n"))
		st.Text, st.Offset = st.Text[lead:], st.Offset+lead
		st.Line, st.Column = position(src, st.Offset)
		s.runReporting(ctx, st.Text, func(_ string, err error) {
			placed := Place(src, path, st, err)
			var se *StatementError
			if !errors.As(placed, &se) {
				placed = fmt.Errorf("%s:%d: %w", path, st.Line, err)
			}
			fmt.Fprintln(s.cfg.Err, "error:", placed)
			s.hint(err)
		})
	}
}

// describe is \d: the attributes; a table's columns; one attribute; or a
// subcloud with its members, one a line.
func (s *Session) describe(ctx context.Context, arg string) {
	f := strings.Fields(strings.TrimSuffix(arg, ";"))
	switch {
	case len(f) == 0:
		s.run(ctx, "SHOW ATTRIBUTES")
		return
	case len(f) == 2 && strings.EqualFold(f[0], "SUBCLOUD"):
		if !s.describeRow(ctx, "SHOW SUBCLOUDS", f[1]) {
			s.describeFailed(fmt.Errorf("unknown subcloud %s (SHOW SUBCLOUDS lists them)", f[1]))
		}
		return
	case len(f) == 1 && strings.EqualFold(f[0], "peers"):
		// The agent's own catalog: it knows its cluster's tags.
		s.title(`Table "peers": a row per member`)
		s.run(ctx, "SHOW ATTRIBUTES")
		return
	case len(f) == 1 && s.cfg.Tables != nil && s.cfg.Tables(f[0]) != nil:
		s.title(fmt.Sprintf("Table %q", strings.ToLower(f[0])))
		s.show(TableOf(s.cfg.Tables(f[0])))
		return
	case len(f) == 1:
		if !s.describeRow(ctx, "SHOW ATTRIBUTES", f[0]) && !s.describeRow(ctx, "SHOW SUBCLOUDS", f[0]) {
			s.describeFailed(fmt.Errorf("no table, attribute or subcloud is named %s (\\d lists the attributes, SHOW SUBCLOUDS the subclouds; the tables are peers and leases)", f[0]))
		}
		return
	}
	s.describeFailed(errors.New(`usage: \d, \d TABLE, \d NAME or \d SUBCLOUD NAME`))
}

// describeFailed says why a \d found nothing to describe, and counts it
// as a failure: a script that pipes \d exits with it, as with \i.
func (s *Session) describeFailed(err error) {
	fmt.Fprintln(s.cfg.Err, err)
	s.fail(err)
}

// title heads a description in the table format (the machine formats
// carry the rows alone).
func (s *Session) title(text string) {
	if s.format == FormatTable {
		fmt.Fprintln(s.cfg.Out, text)
	}
}

// describeRow runs a SHOW statement and prints the row whose first column
// is name, a field a line (a list of names one item a line); it reports
// whether there was one.
func (s *Session) describeRow(ctx context.Context, show, name string) bool {
	ans, err := s.exec.Execute(ctx, show, nil)
	if err != nil {
		s.report(show, err)
		return true // said why
	}
	raw := ans.Rows
	for k, row := range ans.Text() {
		if len(row) == 0 || row[0] != name || k >= len(raw) {
			continue
		}
		width := 0
		for _, c := range ans.Columns {
			width = max(width, len(c.Name))
		}
		for i, c := range ans.Columns {
			if c.Kind == answer.KindList && i < len(raw[k]) {
				items := raw[k][i].Items()
				fmt.Fprintf(s.cfg.Out, "%-*s  (%d)\n", width, c.Name, len(items))
				for _, it := range items {
					fmt.Fprintf(s.cfg.Out, "  %s\n", it)
				}
				continue
			}
			fmt.Fprintf(s.cfg.Out, "%-*s  %s\n", width, c.Name, row[i])
		}
		return true
	}
	return false
}

// watch shows a WATCH's answers as they come, each drawn over the last on
// a terminal (as watch(1) does), until Ctrl-C; then the shell goes on.
func (s *Session) watch(ctx context.Context, text string) {
	lines := 0
	err := s.exec.Watch(ctx, text, func(ans *answer.Answer, err error) bool {
		if ans != nil && !s.cfg.Terminal && s.format == FormatJSON {
			// A pipe: each epoch an item of the session's one array.
			if err := s.array.item(TableOf(ans)); err != nil {
				fmt.Fprintln(s.cfg.Err, err)
				return false
			}
			return true
		}
		var b strings.Builder
		if ans == nil {
			fmt.Fprintf(&b, "%v\n", err)
		} else {
			if ans.Meta != nil && (s.format == FormatTable || s.cfg.Terminal) { // a pipe of csv or ndjson stays parseable
				fmt.Fprintf(&b, "%s · epoch %d · %s · %s\n", text, ans.Meta.Epoch, ans.Meta.At, ans.Meta.Status)
			}
			if rerr := s.render(&b, TableOf(ans)); rerr != nil {
				fmt.Fprintf(&b, "%v\n", rerr)
			}
		}
		if s.cfg.Terminal && lines > 0 {
			fmt.Fprintf(s.cfg.Out, "\033[%dA\033[J", lines) // up over the last answer, and clear
		}
		fmt.Fprint(s.cfg.Out, b.String())
		lines = strings.Count(b.String(), "\n")
		return true
	})
	if err != nil && ctx.Err() == nil {
		s.report(text, err)
	}
}

// followName is what Config.Follow calls a place where a name may stand
// (parser.FollowName).
const followName = "<name>"

// complete offers, for the word under the cursor, the words that may come
// next there: those Config.Follow finds in the grammar (keywords where the
// statement takes keywords), and where it takes a name, subclouds after
// SUBCLOUD and RELEASE, nothing after AS (a new name), and elsewhere the
// catalog's attributes and the functions. Nothing inside a string.
func (s *Session) complete(line string, pos int) (string, []string, string) {
	start := pos
	for start > 0 && isWordByte(line[start-1]) {
		start--
	}
	word := line[start:pos]
	if strings.Count(s.pending+line[:start], "'")%2 == 1 {
		return line[:pos], nil, line[pos:]
	}
	var cands []string
	if s.cfg.Follow == nil {
		// No grammar to ask: every word there is.
		if word == "" {
			return line[:pos], nil, line[pos:]
		}
		cands = append(append(cands, s.cfg.Keywords...), s.exec.Words(context.Background())...)
	} else {
		prefix := s.pending + line[:start]
		if strings.TrimSpace(prefix) == "" {
			cands = append(cands, "help", "quit", "exit") // bare words the prompt takes
		}
		for _, f := range s.cfg.Follow(prefix) {
			switch {
			case f == followName:
				cands = append(cands, s.names(prefix, line[pos:])...)
			case isWordByte(f[0]) && f[0] != '_':
				cands = append(cands, f) // a keyword; symbols and other classes are typed
			}
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range cands {
		if !strings.HasPrefix(strings.ToLower(c), strings.ToLower(word)) {
			continue
		}
		if word != "" && c == strings.ToUpper(c) && word == strings.ToLower(word) {
			c = strings.ToLower(c) // keep the user's case for keywords
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return line[:start], out, line[pos:]
}

// names are the names that may stand after prefix (rest is the line
// after the cursor): subclouds after SUBCLOUD and RELEASE, nothing after
// AS (a name of the user's own), elsewhere the columns of the table the
// statement reads and the functions, aggregates only where one may stand
// (Config.Scope).
func (s *Session) names(prefix, rest string) []string {
	switch strings.ToUpper(previousWord(prefix)) {
	case "SUBCLOUD", "RELEASE":
		return s.subclouds()
	case "AS":
		return nil
	}
	if s.cfg.Scope == nil {
		return append(s.attributes(), s.cfg.Functions...)
	}
	table, functions, keys := s.cfg.Scope(prefix, rest)
	var cols []string
	if table == "peers" || s.cfg.Tables == nil {
		cols = s.attributes()
	} else if t := s.cfg.Tables(table); t != nil {
		for _, row := range t.Text() {
			if len(row) > 0 {
				cols = append(cols, row[0]) // the table's columns (\d leases)
			}
		}
	}
	var out []string
	for _, c := range cols {
		if keys == nil || slices.ContainsFunc(keys, func(k string) bool { return strings.EqualFold(k, c) }) {
			out = append(out, c)
		}
	}
	return append(out, functions...)
}

// attributes are the agent's catalog's names (Words, less the subclouds):
// the columns of peers.
func (s *Session) attributes() []string {
	subs := map[string]bool{}
	for _, n := range s.subclouds() {
		subs[n] = true
	}
	var out []string
	for _, w := range s.exec.Words(context.Background()) {
		if !subs[w] {
			out = append(out, w) // attributes
		}
	}
	return out
}

// greet says, on a terminal, who answers: the agent, and the size of its
// cluster (SHOW ATTRIBUTES: answered by the agent alone, at once); if it
// cannot be reached, why, and what to do.
func (s *Session) greet(ctx context.Context) {
	if s.cfg.Agent == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ans, err := s.exec.Execute(ctx, "SHOW ATTRIBUTES", nil)
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, s.cfg.Agent) {
			fmt.Fprintf(s.cfg.Err, "peerq shell: %s\n", msg) // the client's errors name the agent already
		} else {
			fmt.Fprintf(s.cfg.Err, "peerq shell: %s: %s\n", s.cfg.Agent, msg)
		}
		s.hint(err)
		return
	}
	size := ""
	if ans.Meta != nil && ans.Meta.Peers > 0 {
		size = fmt.Sprintf(", in a cluster of %d member(s)", ans.Meta.Peers)
	}
	fmt.Fprintf(s.cfg.Err, "peerq shell: connected to %s%s\n", s.cfg.Agent, size)
}

// hint prints what Config.Hint has to say about err, if anything.
func (s *Session) hint(err error) {
	if s.cfg.Hint == nil {
		return
	}
	if h := s.cfg.Hint(err); h != "" {
		fmt.Fprintln(s.cfg.Err, "hint:", h)
	}
}

// previousWord is the last word before the end of text, or the symbol
// there (';', '(', ',' ...).
func previousWord(text string) string {
	t := strings.TrimRight(text, " \t\n")
	if strings.HasSuffix(t, ";") {
		return ";"
	}
	i := len(t)
	for i > 0 && isWordByte(t[i-1]) {
		i--
	}
	if i == len(t) && i > 0 {
		return t[i-1:] // an operator or a parenthesis: an expression goes on
	}
	return t[i:]
}

// subclouds are the subcloud names SHOW SUBCLOUDS lists (answered by the
// agent from its tables, no gossip).
func (s *Session) subclouds() []string {
	ans, err := s.exec.Execute(context.Background(), "SHOW SUBCLOUDS", nil)
	if err != nil {
		return nil
	}
	var out []string
	for _, row := range ans.Text() {
		if len(row) > 0 {
			out = append(out, row[0])
		}
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
