package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/query"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The commands the docs show run as written: every `peerq …` in README.md,
// BENCHMARKS.md and docs/*.md — in code blocks, and in inline code — names
// a command that exists and only flags it has, with values those flags
// take; the cheap ones (check, explain, version, completion, --help) run
// and exit 0 (check may exit 2: finding errors is its work), and where a
// block shows a "$ peerq …" prompt, the lines under it are what it prints.
// A flag renamed or removed in the code fails here until the docs follow.
func TestDocsCommands(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md", "../../BENCHMARKS.md"}, files...)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, "../../")
		for _, c := range docCommands(string(b)) {
			checked++
			where := fmt.Sprintf("%s:%d: %s", name, c.line, c.text)
			if err := checkDocCommand(t, c); err != nil {
				t.Errorf("%s\n\t%v", where, err)
			}
		}
	}
	if checked < 50 {
		t.Errorf("found %d peerq commands in the docs; the extraction is broken", checked)
	}
}

// docCommand is one `peerq …` the docs show.
type docCommand struct {
	line   int
	text   string   // as written, continuation lines joined
	args   []string // the words after peerq, shell quoting undone
	inline bool     // in inline code (prose), not in a code block
	// output is what a "$ peerq …" prompt in a block shows under it.
	output []string
}

var (
	inlineCode = regexp.MustCompile("`([^`]+)`")
	fence      = regexp.MustCompile("^\\s*```")
	metaVar    = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`) // DIR, N, STATEMENT
)

// docCommands finds the peerq commands in a Markdown text.
func docCommands(md string) []docCommand {
	var out []docCommand
	lines := strings.Split(md, "\n")
	inBlock, prose := false, []string{}
	proseStart := 0
	flushProse := func() {
		// Inline code may wrap across lines of a paragraph.
		text := strings.Join(prose, "\n")
		for _, m := range inlineCode.FindAllStringSubmatchIndex(text, -1) {
			code := strings.ReplaceAll(text[m[2]:m[3]], "\n", " ")
			code = strings.ReplaceAll(code, `\|`, "|") // a table's escaped bar
			line := proseStart + strings.Count(text[:m[0]], "\n")
			for _, seg := range shellSegments(code) {
				out = append(out, docCommand{line: line, text: code, args: seg, inline: true})
			}
		}
		prose = prose[:0]
	}
	var last *docCommand // the "$ peerq" command whose output follows
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if fence.MatchString(l) {
			if !inBlock {
				flushProse()
			}
			inBlock, last = !inBlock, nil
			continue
		}
		if !inBlock {
			if len(prose) == 0 {
				proseStart = i + 1
			}
			prose = append(prose, l)
			if strings.TrimSpace(l) == "" {
				flushProse()
			}
			continue
		}
		start := i
		for strings.HasSuffix(strings.TrimRight(l, " "), `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(strings.TrimRight(l, " "), `\`) + " " + strings.TrimSpace(lines[i])
		}
		text := strings.TrimSpace(l)
		if strings.HasPrefix(text, "peerq>") {
			last = nil // the shell's prompt: a statement, not a command
			continue
		}
		prompt := strings.HasPrefix(text, "$ ")
		if !prompt && last != nil {
			if text != "" {
				out[len(out)-1].output = append(out[len(out)-1].output, strings.TrimRight(l, " "))
			}
			continue
		}
		last = nil
		for _, seg := range shellSegments(strings.TrimPrefix(text, "$ ")) {
			out = append(out, docCommand{line: start + 1, text: text, args: seg})
			if prompt {
				last = &out[len(out)-1]
			}
		}
	}
	flushProse()
	return out
}

// shellSegments splits a shell line into its simple commands (at |, ||,
// &&, ;, &, redirections and comments) and returns, for each that runs
// peerq (peerq, ./peerq, go run ./cmd/peerq), its arguments. A segment
// after a | that starts with a flag is not a pipe but a usage line's
// alternative (-e STATEMENTS | -f FILE): it joins the command before.
func shellSegments(line string) [][]string {
	var segs [][]string
	var cur []string
	pipe := false
	end := func(op string) {
		if len(cur) > 0 {
			if pipe && strings.HasPrefix(cur[0], "-") && len(segs) > 0 {
				segs[len(segs)-1] = append(segs[len(segs)-1], cur...)
			} else {
				segs = append(segs, cur)
			}
		}
		cur, pipe = nil, op == "|"
	}
	words := shellWords(line)
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w.op == "#":
			i = len(words)
		case w.op == ">" || w.op == "<":
			i++ // the file
		case w.op != "":
			end(w.op)
		default:
			cur = append(cur, w.text)
		}
	}
	end("")
	var out [][]string
	for _, s := range segs {
		for len(s) > 0 && strings.Contains(s[0], "=") && !strings.HasPrefix(s[0], "-") {
			s = s[1:] // PEERQ_API=… peerq shell
		}
		switch {
		case len(s) >= 1 && (s[0] == "peerq" || s[0] == "./peerq"):
			out = append(out, s[1:])
		case len(s) >= 3 && s[0] == "go" && s[1] == "run" && s[2] == "./cmd/peerq":
			out = append(out, s[3:])
		}
	}
	return out
}

type shellWord struct{ text, op string }

// shellWords splits a line as a POSIX shell would, enough for the docs:
// quotes, backslashes, $(…) and <(…) kept whole, and the operators.
func shellWords(line string) []shellWord {
	var out []shellWord
	var b strings.Builder
	in := false
	flush := func() {
		if in {
			out = append(out, shellWord{text: b.String()})
		}
		b.Reset()
		in = false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			b.WriteString(line[i+1 : i+1+j])
			in, i = true, i+1+j
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte(`"\$`+"`", line[i+1]) >= 0 {
					i++
				}
				b.WriteByte(line[i])
			}
			in = true
		case c == '\\' && i+1 < len(line):
			i++
			b.WriteByte(line[i])
			in = true
		case (c == '$' || c == '<') && i+1 < len(line) && line[i+1] == '(':
			depth, j := 0, i+1
			for ; j < len(line); j++ {
				if line[j] == '(' {
					depth++
				} else if line[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			b.WriteString(line[i:min(j+1, len(line))])
			in, i = true, j
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !in:
			flush()
			out = append(out, shellWord{op: "#"})
		case c == '|' || c == '&' || c == ';' || c == '>' || c == '<':
			if c == '>' && in && (b.String() == "2" || b.String() == "1") {
				b.Reset() // 2>file
				in = false
			}
			flush()
			op := string(c)
			if i+1 < len(line) && (line[i+1] == c || c == '>' && line[i+1] == '&') {
				i++
				op += string(line[i])
			}
			switch op {
			case ">>", ">&":
				op = ">"
			case "<<":
				op = "<"
			}
			out = append(out, shellWord{op: op})
		default:
			b.WriteByte(c)
			in = true
		}
	}
	flush()
	return out
}

// placeholder says whether a word the docs show stands for a value the
// reader gives (DIR, N, HOST:PORT, NAME=STATEMENT, "...", ADDR]...): its
// flag is checked, its value is not.
func placeholder(w string) bool {
	w = strings.TrimRight(strings.TrimLeft(w, "["), "].…")
	if w == "" || strings.ContainsAny(w, "$…") || strings.Contains(w, "...") {
		return true
	}
	for _, part := range strings.FieldsFunc(strings.Trim(w, "[]"), func(r rune) bool { return r == '=' || r == ':' }) {
		if !metaVar.MatchString(part) {
			return false
		}
	}
	return true // NAME=STATEMENT, HOST:PORT
}

// checkDocCommand checks one command against the real command tree, and
// runs it if it is cheap.
func checkDocCommand(t *testing.T, c docCommand) error {
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	cmd, args := root, c.args
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub := findSub(cmd, args[0])
		if sub == nil {
			break
		}
		cmd, args = sub, args[1:]
	}
	if cmd == root && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if c.inline {
			return nil // prose: "peerq extreme v1" is a signature's context, not a command
		}
		return fmt.Errorf("no command %q (peerq has %s)", args[0], strings.Join(subNames(root), ", "))
	}
	cmd.InitDefaultHelpFlag()
	cmd.InitDefaultVersionFlag()
	usage := false // a usage line: [optional], alternatives, placeholders
	var positional []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "[")
		if a != args[i] || strings.HasSuffix(a, "]") || a == "|" {
			usage = true
		}
		a = strings.TrimRight(a, "].…")
		a = strings.TrimSuffix(a, "..")
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			if a != "|" && a != "" {
				positional = append(positional, args[i])
			}
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		var f *pflag.Flag
		if long, ok := strings.CutPrefix(name, "--"); ok {
			f = cmd.Flag(long)
		} else if len(name) == 2 {
			f = shorthand(cmd, name[1:])
		}
		if f == nil {
			return fmt.Errorf("peerq %s has no flag %s", cmd.Name(), name)
		}
		if f.NoOptDefVal != "" && !hasValue {
			continue // a bool
		}
		if !hasValue {
			if i+1 >= len(args) {
				if c.inline {
					break // prose names the flag: "peerq demo --churn"
				}
				return fmt.Errorf("flag %s wants a value", name)
			}
			i++
			value = args[i]
		}
		if v := strings.TrimRight(value, "].…"); v != value {
			value, usage = strings.TrimSuffix(v, ".."), true // [--nodes 200]...
		}
		if placeholder(value) {
			continue
		}
		for _, v := range alternatives(value) {
			if err := f.Value.Set(v); err != nil {
				return fmt.Errorf("%s %q: %v", name, v, err)
			}
		}
		if f.Name == "export" && cmd.Name() == "agent" {
			if err := checkExport(value); err != nil {
				return err
			}
		}
	}
	switch {
	case usage:
		return nil
	case c.inline && (len(positional) > 0 || len(args) == 0):
		return nil // prose: "peerq sim" names the command, "peerq COMMAND --help" a form
	case !c.inline:
		if err := cmd.ValidateArgs(positional); err != nil {
			return fmt.Errorf("peerq %s: %v", cmd.Name(), err)
		}
	}
	return runCheap(t, c, cmd)
}

// checkExport checks an agent's --export as the agent does before it
// joins: a snake_case name, and an aggregate that compiles.
func checkExport(flag string) error {
	name, stmt := exportName(flag)
	if err := node.CheckExportName(name); err != nil {
		return err
	}
	if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(stmt)), "WATCH") {
		stmt = "WATCH " + stmt
	}
	plan, err := query.CompileText(stmt, query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		return fmt.Errorf("--export %q: %w", flag, err)
	}
	if plan.Kind != query.PlanAggregate {
		return fmt.Errorf("--export %q: not an aggregate", flag)
	}
	return nil
}

// The config files docs/AGENT.md shows (its hcl and json blocks) are ones
// the agent reads, every setting and export in them valid.
func TestDocsConfigFiles(t *testing.T) {
	b, err := os.ReadFile("../../docs/AGENT.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(hcl|json)\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/AGENT.md shows %d config files, want an HCL and a JSON one", len(blocks))
	}
	for i, m := range blocks {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("agent%d.%s", i, m[1]))
		if err := os.WriteFile(path, []byte(m[2]), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &agentSettings{}
		if err := applyConfigFile(agentCmd(s), path, s); err != nil {
			t.Errorf("docs/AGENT.md's %s config: %v\n%s", m[1], err, m[2])
			continue
		}
		if s.Node == "" || len(s.Join) == 0 {
			t.Errorf("docs/AGENT.md's %s config read as %+v", m[1], s)
		}
		for _, e := range s.Export {
			if err := checkExport(e); err != nil {
				t.Errorf("docs/AGENT.md's %s config: %v", m[1], err)
			}
		}
	}
}

// alternatives are the values a|b|c stands for (a usage line's choices);
// a value with spaces (a statement) is one value.
func alternatives(v string) []string {
	if strings.ContainsAny(v, " '") {
		return []string{v}
	}
	return strings.Split(v, "|")
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, s := range cmd.Commands() {
		if s.Name() == name || slices.Contains(s.Aliases, name) {
			return s
		}
	}
	return nil
}

func subNames(cmd *cobra.Command) []string {
	var out []string
	for _, s := range cmd.Commands() {
		out = append(out, s.Name())
	}
	return out
}

// shorthand finds a one-letter flag on cmd or the commands above it.
func shorthand(cmd *cobra.Command, letter string) *pflag.Flag {
	for c := cmd; c != nil; c = c.Parent() {
		if f := c.Flags().ShorthandLookup(letter); f != nil {
			return f
		}
		if f := c.PersistentFlags().ShorthandLookup(letter); f != nil {
			return f
		}
	}
	return nil
}

// runCheap runs the commands that cost nothing (no agent, no cluster, no
// simulation), as written, and checks the output a prompt shows.
func runCheap(t *testing.T, c docCommand, cmd *cobra.Command) error {
	help := slices.Contains(c.args, "--help") || slices.Contains(c.args, "-h") || slices.Contains(c.args, "--version")
	cheap := help || slices.Contains([]string{"check", "explain", "version", "bash", "zsh", "fish", "powershell"}, cmd.Name())
	for i, a := range c.args {
		if (a == "-f" || a == "--file") && i+1 < len(c.args) && c.args[i+1] != "-" {
			if _, err := os.Stat(c.args[i+1]); err != nil {
				cheap = false // a script of the reader's (script.pql)
			}
		}
	}
	if !cheap {
		return nil
	}
	code, stdout, stderr := runCLI(t, "", c.args...)
	t.Logf("ran peerq %s: exit %d", strings.Join(c.args, " "), code)
	if code != exitOK && !(cmd.Name() == "check" && code == exitStatement) {
		return fmt.Errorf("exit %d: %s", code, stderr)
	}
	for _, want := range c.output {
		if !strings.Contains(stdout+stderr, want) {
			return fmt.Errorf("the docs show %q under it; it printed:\n%s%s", want, stdout, stderr)
		}
	}
	return nil
}
