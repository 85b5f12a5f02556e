package main

import (
	"context"
	"os"
	"os/signal"
	"time"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/shell"
	"github.com/spf13/cobra"
)

func newQueryCmd() *cobra.Command {
	var (
		expr, file     string
		opts           api.Options
		format         shell.Format
		allowPartial   bool
		allowContested bool
		epochs         int
	)
	cmd := &cobra.Command{
		Use:   "query -e STATEMENT | -f FILE [--format table|csv|json|ndjson]",
		Short: "Run statements through the local agent's API",
		Long: `query sends each statement to the local agent (--api, or PEERQ_API) with its token
(--token, PEERQ_TOKEN, or the file in --data-dir) and prints the answers.

` + exitCodesText(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, name, err := readStatements(cmd, expr, file)
			if err != nil {
				return err
			}
			c, err := api.Locate(opts)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			// Ctrl-C ends a WATCH (and the script) cleanly.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			return exitFor(shell.RunScript(ctx, c, src,
				shell.ScriptOptions{Name: name, Split: query.Split, Format: format, Out: cmd.OutOrStdout(), AllowPartial: allowPartial, AllowContested: allowContested, Epochs: epochs}))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&expr, "execute", "e", "", "statement(s) to run")
	f.StringVarP(&file, "file", "f", "", "script of statements (- for stdin)")
	apiFlags(cmd, &opts)
	f.VarP(&format, "format", "F", "output format: table, csv, json or ndjson")
	f.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "give up on the agent after this long")
	allowFlags(cmd, &allowPartial, &allowContested, "")
	f.IntVar(&epochs, "epochs", 0, "end a WATCH after this many answers (default: until Ctrl-C)")
	return cmd
}

// allowFlags are --allow-partial and --allow-contested; when names the
// case they apply in ("with -e or -f: "), or is empty.
func allowFlags(cmd *cobra.Command, partial, contested *bool, when string) {
	f := cmd.Flags()
	f.BoolVar(partial, "allow-partial", false, when+"go on, and exit 0, after a partial answer, whatever made it partial (WITH TIMEOUT, the budget, missing members; default: exit 4)")
	f.BoolVar(contested, "allow-contested", false, when+"go on, and exit 0, after an answer an independent sample contested (default: exit 8)")
}

// apiFlags are the flags that find the agent.
func apiFlags(cmd *cobra.Command, opts *api.Options) {
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "api", "", "the agent's API address (default: the one in --data-dir, else $PEERQ_API, else "+api.DefaultAddr+")")
	f.StringVar(&opts.Token, "token", "", "API token (default $PEERQ_TOKEN, or read from --data-dir)")
	f.StringVar(&opts.DataDir, "data-dir", "", "the agent's data dir: its API address and token are read from it")
}
