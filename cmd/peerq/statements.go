package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/peerq/peerq/api"
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
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se), errors.Is(err, api.ErrStatement), errors.As(err, &pe) && pe.Line() > 0:
		return &exitError{exitStatement, err}
	case errors.Is(err, api.ErrNotEnoughPeers):
		return &exitError{exitNotEnough, fmt.Errorf("peerq: %w", err)}
	case errors.Is(err, api.ErrTimeout):
		return &exitError{exitTimeout, fmt.Errorf("peerq: %w; the answer above is partial", err)}
	case errors.Is(err, api.ErrPartial):
		return &exitError{exitTimeout, fmt.Errorf("peerq: %w; --allow-partial accepts it", err)}
	case errors.Is(err, api.ErrOverloaded):
		return &exitError{exitOverloaded, fmt.Errorf("peerq: %w; try again shortly", err)}
	}
	return &exitError{exitUsage, fmt.Errorf("peerq: %w", err)}
}

func newExplainCmd() *cobra.Command {
	var expr, file string
	var nodes int
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
			plans, err := compileScript(src, name)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for i, p := range plans {
				if i > 0 {
					fmt.Fprintln(out)
				}
				fmt.Fprint(out, query.Explain(p, nodes))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&expr, "execute", "e", "", "the statement(s) to explain")
	cmd.Flags().StringVarP(&file, "file", "f", "", "a script of statements (- for stdin)")
	cmd.Flags().IntVar(&nodes, "nodes", 1000, "membership size N to estimate rounds and messages for")
	return cmd
}

func newCheckCmd() *cobra.Command {
	var expr, file string
	cmd := &cobra.Command{
		Use:   "check -f FILE | -e STATEMENT",
		Short: "Parse and type-check a script; exit 2 with file:line:col on the first error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, name, err := readStatements(cmd, expr, file)
			if err != nil {
				return err
			}
			plans, err := compileScript(src, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %d statement(s)\n", len(plans))
			return nil
		},
	}
	cmd.Flags().StringVarP(&expr, "execute", "e", "", "the statement(s) to check")
	cmd.Flags().StringVarP(&file, "file", "f", "", "a script of statements (- for stdin)")
	return cmd
}
