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
				return runScript(out, embeddedExec{asker}, src, name, format)
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

// runScript runs every statement of a script through exec; the first
// error stops it, with its exit code. Each statement is sent as the user
// wrote it, so that an error found by the executor (a type error, found
// against the live catalog) points into the script.
func runScript(out io.Writer, exec shell.Executor, src, name string, format shell.Format) error {
	stmts, err := parser.Parse(name, src)
	if err != nil {
		return statementError(src, name, err)
	}
	for i, s := range stmts {
		start, end := s.Position().Offset, len(src)
		if i+1 < len(stmts) {
			end = stmts[i+1].Position().Offset
		}
		if i > 0 && format == shell.FormatTable {
			fmt.Fprintln(out)
		}
		err := runStatement(out, exec, src[start:end], format)
		var pe *parser.Error
		if errors.As(err, &pe) {
			at := s.Position() // the statement's text starts here
			pos := parser.Pos{Filename: name, Line: at.Line + pe.Pos.Line - 1, Column: pe.Pos.Column}
			if pe.Pos.Line == 1 {
				pos.Column += at.Column - 1
			}
			return statementError(src, name, &parser.Error{Pos: pos, Msg: pe.Msg})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// runStatement runs one statement and renders its answer, with the exit
// codes of docs/AGENT.md; a statement error comes back as the
// *parser.Error for the caller to place.
func runStatement(out io.Writer, exec shell.Executor, text string, format shell.Format) error {
	t, err := exec.Execute(context.Background(), text, nil)
	var pe *parser.Error
	switch {
	case err == nil:
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, node.ErrNotEnoughPeers):
		return &exitError{exitNotEnough, fmt.Errorf("peerq: %w", err)}
	case t == nil:
		return &exitError{exitUsage, fmt.Errorf("peerq: %w", err)}
	}
	if rerr := shell.Render(out, format, t); rerr != nil {
		return &exitError{exitUsage, rerr}
	}
	if errors.Is(err, node.ErrTimeout) {
		return &exitError{exitTimeout, fmt.Errorf("peerq: %w; the answer above is partial", err)}
	}
	return nil
}

// toTable converts an embedded answer for the renderers, through the same
// result line the agent's API sends.
func toTable(plan *query.Plan, res *node.Result, err error) *shell.Table {
	return lineTable(node.ResultLine(plan, res, err))
}
