package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/peerq/peerq/parser"
	"github.com/peerq/peerq/query"
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

// compileScript parses and compiles every statement of src. A statement
// error comes back as an exitError with code exitStatement, formatted
// "file:line:col: message" (or "line:col: message" for -e) and followed by
// the line and a caret.
func compileScript(src, name string) ([]*query.Plan, error) {
	stmts, err := parser.Parse(name, src)
	if err != nil {
		return nil, statementError(src, name, err)
	}
	cat := query.DefaultCatalog()
	plans := make([]*query.Plan, 0, len(stmts))
	for _, s := range stmts {
		p, err := query.Compile(s, cat, query.DefaultConfig())
		if err != nil {
			return nil, statementError(src, name, err)
		}
		plans = append(plans, p)
	}
	return plans, nil
}

func statementError(src, name string, err error) error {
	perr, ok := err.(*parser.Error)
	if !ok {
		return &exitError{exitStatement, err}
	}
	msg := perr.Error()
	if name != "" {
		msg = name + ":" + msg
	}
	if caret := perr.Caret(src); caret != "" {
		msg += "\n" + indent(caret)
	}
	return &exitError{exitStatement, fmt.Errorf("%s", msg)}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
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
