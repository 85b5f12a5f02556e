package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/shell"
	"github.com/spf13/cobra"
)

// readStatements returns the script given by -e or -f, and the name to put
// in error positions.
func readStatements(cmd *cobra.Command, expr, file string) (src, name string, err error) {
	switch {
	case expr != "" && file != "":
		return "", "", &exitError{exitUsage, fmt.Errorf("peerq: give -e or -f, not both")}
	case expr != "":
		return expr, "", nil
	case file == "-":
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return "", "", &exitError{exitUsage, fmt.Errorf("peerq: read stdin: %w", err)}
		}
		return string(b), "<stdin>", nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", "", &exitError{exitUsage, fmt.Errorf("peerq: %w", err)}
		}
		return string(b), file, nil
	}
	return "", "", &exitError{exitUsage, fmt.Errorf("peerq: give a statement with -e or a script with -f")}
}

// compileScript parses and compiles every statement of src against the
// default catalog. A statement error comes back as an exitError with code
// exitStatement, "file:line:col: message" and the line with a caret.
func compileScript(src, name string) ([]*query.Plan, error) {
	plans, err := query.CompileScript(name, src, query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		return nil, exitFor(shell.Place(src, name, shell.Statement{Line: 1, Column: 1}, err))
	}
	return plans, nil
}

// exitFor gives an error from running statements its exit code
// (docs/AGENT.md).
func exitFor(err error) error {
	var se *shell.StatementError
	var pe shell.Positioned
	var un *shell.Unanswered
	switch {
	case err == nil:
		return nil
	case errors.As(err, &un):
		// The code its error has; but not the words "the answer above"
		// and "--allow-partial accepts it", for nothing came back
		// (helper-75: a FROM SUBCLOUD at a peer whose owner's pool did
		// not answer).
		var ee *exitError
		errors.As(exitFor(un.Err), &ee)
		return &exitError{ee.code, fmt.Errorf("peerq: %w; no answer came back, so there is none to accept: ask again", un.Err)}
	case errors.As(err, &se), errors.Is(err, api.ErrStatement), errors.As(err, &pe) && pe.Line() > 0:
		return &exitError{exitStatement, err}
	case errors.Is(err, api.ErrNotEnoughPeers):
		return &exitError{exitNotEnough, fmt.Errorf("peerq: %w", err)}
	case errors.Is(err, api.ErrTimeout):
		return &exitError{exitTimeout, fmt.Errorf("peerq: %w; the answer above is partial", err)}
	case errors.Is(err, api.ErrContested):
		return &exitError{exitContested, fmt.Errorf("peerq: %w; --allow-contested accepts it", err)}
	case errors.Is(err, api.ErrPartial):
		return &exitError{exitTimeout, fmt.Errorf("peerq: %w; --allow-partial accepts it", err)}
	case errors.Is(err, api.ErrOverloaded):
		// The agent's message says when to retry ("busy, retry after N s:
		// ..."); the node's own error (peerq demo) does not.
		var ae *api.Error
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			return &exitError{exitOverloaded, fmt.Errorf("peerq: %w", err)}
		}
		return &exitError{exitOverloaded, fmt.Errorf("peerq: %w; try again shortly", err)}
	case errors.Is(err, api.ErrIncomplete):
		return &exitError{exitIncomplete, fmt.Errorf("peerq: %w", err)}
	case errors.Is(err, api.ErrStorage):
		return &exitError{exitStorage, fmt.Errorf("peerq: %w", err)}
	}
	if h := agentHint(err); h != "" {
		return &exitError{exitUsage, fmt.Errorf("peerq: %w\nhint: %s", err, h)}
	}
	return &exitError{exitUsage, fmt.Errorf("peerq: %w", err)}
}

func newExplainCmd() *cobra.Command {
	var expr, file string
	var nodes, pools int
	cmd := &cobra.Command{
		Use:   "explain -e STATEMENT | -f FILE",
		Short: "Print how statements would run: protocol, components, expected rounds and messages",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, name, err := readStatements(cmd, expr, file)
			if err != nil {
				return err
			}
			if nodes < 2 {
				return &exitError{exitUsage, fmt.Errorf("peerq: --nodes must be at least 2")}
			}
			if pools < 0 || pools > nodes {
				return &exitError{exitUsage, fmt.Errorf("peerq: --pools %d: want 0 (one pool) to --nodes (%d)", pools, nodes)}
			}
			plans, err := compileScript(src, name)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for i, p := range plans {
				if i > 0 {
					fmt.Fprintln(out)
				}
				if pools > 1 {
					// One pool's run at its size, then the cloud level, as
					// an agent with --pool explains it.
					shape := node.ExplainShape(nodes, pools)
					fmt.Fprint(out, query.Explain(p, shape.PoolPeers)+query.ExplainPools(p, shape))
					continue
				}
				fmt.Fprint(out, query.Explain(p, nodes))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&expr, "execute", "e", "", "the statement(s) to explain")
	cmd.Flags().StringVarP(&file, "file", "f", "", "a script of statements (- for stdin)")
	cmd.Flags().IntVar(&nodes, "nodes", 1000, "membership size N to estimate rounds and messages for")
	cmd.Flags().IntVar(&pools, "pools", 0, "explain for a cloud of this many pools (N spread over them), as a gateway of one sees it: a pool's run, then the cloud level")
	return cmd
}

func newCheckCmd() *cobra.Command {
	var expr, file string
	cmd := &cobra.Command{
		Use:   "check -f FILE | -e STATEMENT",
		Short: "Parse and type-check a script; list every statement's error as file:line:col and exit 2",
		Long: `check parses and type-checks each statement of a script on its own, as a linter does,
and prints every error with its file:line:col and the line with a caret. It checks against the
built-in catalog: attributes that only a live cluster's tags define are not known here (the
agent checks those). Exit codes: 0 every statement is fine, 1 usage or I/O, 2 errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, name, err := readStatements(cmd, expr, file)
			if err != nil {
				return err
			}
			stmts := shell.SplitScript(src, query.Split)
			bad := 0
			for _, st := range stmts {
				if _, err := query.CompileText(st.Text, query.DefaultCatalog(), query.DefaultConfig()); err != nil {
					bad++
					fmt.Fprintln(cmd.ErrOrStderr(), shell.Place(src, name, st, err))
				}
			}
			if bad > 0 {
				return &exitError{exitStatement, fmt.Errorf("%d of %d statement(s) have errors", bad, len(stmts))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %d statement(s)\n", len(stmts))
			return nil
		},
	}
	cmd.Flags().StringVarP(&expr, "execute", "e", "", "the statement(s) to check")
	cmd.Flags().StringVarP(&file, "file", "f", "", "a script of statements (- for stdin)")
	return cmd
}
