package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/parser"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/shell"
	"github.com/spf13/cobra"
)

// More exit codes (docs/AGENT.md).
const (
	exitNotEnough = 3 // a RESERVE could not get the peers it needs; nothing is reserved
	exitTimeout   = 4 // a statement hit its TIMEOUT; the partial answer was printed
)

func newDemoCmd() *cobra.Command {
	var (
		nodes        int
		seed         uint64
		freeze       bool
		round        time.Duration
		expr, file   string
		format       shell.Format
		settleTimout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo [--nodes 200] [-e STATEMENT | -f FILE]",
		Short: "Start an embedded cluster of real Serf peers in this process and query it",
		Long: `demo starts an embedded cluster: --nodes real Serf peers in one process over an in-memory
network, each with a synthetic machine (phone, laptop, desktop or home server; the same seed gives
the same machines), and answers statements by gossip. With -e or -f it runs the statements and
exits; otherwise it reads statements, ended by ';', from standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 2 {
				return &exitError{exitUsage, errors.New("peerq: --nodes must be at least 2")}
			}
			var src, name string
			if expr != "" || file != "" {
				var err error
				if src, name, err = readStatements(cmd, expr, file); err != nil {
					return err
				}
				// Check the whole script before starting anything.
				if _, err := parser.Parse(name, src); err != nil {
					return statementError(src, name, err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), settleTimout)
			defer cancel()
			e, err := startDemo(ctx, cmd.ErrOrStderr(), node.EmbeddedConfig{Nodes: nodes, Seed: seed, Freeze: freeze, Round: round})
			if err != nil {
				return &exitError{exitUsage, err}
			}
			defer e.Close()
			asker := e.Nodes[0]
			out := cmd.OutOrStdout()
			if src != "" {
				return runScript(out, cmd.ErrOrStderr(), asker, src, name, format)
			}
			if f, ok := cmd.InOrStdin().(*os.File); ok && isTerminal(f) {
				fmt.Fprintf(cmd.ErrOrStderr(), "Try:\n"+
					"  SELECT node, class, mem_free FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC LIMIT 10;\n"+
					"  SELECT region, COUNT(*), AVG(cpu_load), PERCENTILE(mem_free, 0.9) FROM peers GROUP BY region;\n")
			}
			return runShell(cmd, embeddedExec{asker}, format, defaultHistory())
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 200, "number of peers")
	f.Uint64Var(&seed, "seed", 1, "seed of the peers' machines")
	f.BoolVar(&freeze, "freeze", false, "keep the machines' load and free memory still (answers can be checked)")
	f.DurationVar(&round, "round", 100*time.Millisecond, "gossip round")
	f.StringVarP(&expr, "execute", "e", "", "statement(s) to run, then exit")
	f.StringVarP(&file, "file", "f", "", "script of statements to run, then exit (- for stdin)")
	f.VarP(&format, "format", "F", "output format: table, csv, json or ndjson")
	f.DurationVar(&settleTimout, "settle-timeout", 3*time.Minute, "how long to wait for the cluster to form")
	return cmd
}

// startDemo starts the cluster with a progress line on w.
func startDemo(ctx context.Context, w io.Writer, cfg node.EmbeddedConfig) (*node.Embedded, error) {
	tty := isTerminal(w)
	start := time.Now()
	bar := func(stage string, done, total int) {
		if !tty {
			return
		}
		width := 30
		fill := width * done / max(total, 1)
		fmt.Fprintf(w, "\r%-8s [%s%s] %d/%d peers  %.1fs ", stage, strings.Repeat("#", fill), strings.Repeat(".", width-fill),
			done, total, time.Since(start).Seconds())
	}
	cfg.OnJoin = func(joined, total int) { bar("joining", joined, total) }
	e, err := node.StartEmbedded(ctx, cfg)
	if err != nil {
		return nil, err
	}
	joined := time.Since(start)
	if err := e.WaitSettled(ctx, func(s, total int) { bar("settling", s, total) }); err != nil {
		e.Close()
		return nil, err
	}
	if tty {
		fmt.Fprint(w, "\r\033[K")
	}
	fmt.Fprintf(w, "peerq demo: %d peers joined in %.1fs, settled in %.1fs (every peer sees every other)\n",
		cfg.Nodes, joined.Seconds(), time.Since(start).Seconds())
	return e, nil
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runScript runs every statement of a script; the first error stops it.
func runScript(out, errw io.Writer, n *node.Node, src, name string, format shell.Format) error {
	stmts, err := parser.Parse(name, src)
	if err != nil {
		return statementError(src, name, err)
	}
	for i, s := range stmts {
		if i > 0 && format == shell.FormatTable {
			fmt.Fprintln(out)
		}
		if err := runOne(out, errw, n, s, format); err != nil {
			var ee *exitError
			if errors.As(err, &ee) && ee.code == exitStatement {
				return statementError(src, name, ee.err)
			}
			return err
		}
	}
	return nil
}

// runOne runs one statement on n and renders its answer.
func runOne(out, errw io.Writer, n *node.Node, stmt parser.Statement, format shell.Format) error {
	plan, err := query.Compile(stmt, n.Catalog(), query.DefaultConfig())
	if err != nil {
		return &exitError{exitStatement, err}
	}
	if plan.Explain {
		fmt.Fprint(out, query.Explain(plan, n.Overlay().Size()))
		return nil
	}
	res, err := n.Query(context.Background(), plan, nil)
	code := exitOK
	if err != nil {
		if errors.Is(err, node.ErrNotEnoughPeers) {
			return &exitError{exitNotEnough, err}
		}
		if res == nil {
			return &exitError{exitUsage, err}
		}
		if errors.Is(err, node.ErrTimeout) {
			code = exitTimeout
		}
		fmt.Fprintln(errw, "peerq:", err)
	}
	if err := shell.Render(out, format, toTable(plan, res)); err != nil {
		return &exitError{exitUsage, err}
	}
	if code != exitOK {
		return &exitError{code, err}
	}
	return nil
}

// toTable converts an answer for the renderers: text with units for
// people, raw values for scripts.
func toTable(plan *query.Plan, res *node.Result) *shell.Table {
	t := &shell.Table{Statement: plan.Text}
	for _, c := range res.Columns {
		t.Columns = append(t.Columns, shell.Column{Name: c.Name, Kind: c.Kind.String()})
	}
	for _, row := range res.Rows {
		cells := make([]shell.Cell, len(row))
		for i, v := range row {
			cells[i] = shell.Cell{Text: v.String(), Raw: v.Raw()}
		}
		t.Rows = append(t.Rows, cells)
	}
	t.Meta = map[string]any{
		"peers": res.Peers, "rounds": res.Rounds, "elapsed_seconds": res.Elapsed.Seconds(),
		"plan_hash": res.PlanHash, "from_tags": res.FromTags, "converged": res.Converged,
	}
	if !res.FromTags {
		t.Meta["error_estimate"] = res.ErrEstimate
	}
	if res.Participants > 0 {
		t.Meta["participants_estimate"] = res.Participants
	}
	footer := fmt.Sprintf("%d row(s) · %d peers", len(res.Rows), res.Peers)
	if res.FromTags {
		footer += " · answered from membership tags, no gossip"
	} else {
		footer += fmt.Sprintf(" · %d rounds · %s", res.Rounds, res.Elapsed.Round(time.Millisecond))
		if plan.Kind == query.PlanAggregate {
			footer += fmt.Sprintf(" · error ±%s (estimated)", query.Num(query.KindRatio, res.ErrEstimate))
		}
		if !res.Converged {
			footer += " · NOT converged"
		}
	}
	t.Footer = footer
	return t
}
