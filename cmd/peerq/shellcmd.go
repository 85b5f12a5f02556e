package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/peerq/peerq/parser"
	"github.com/peerq/peerq/shell"
	"github.com/spf13/cobra"
)

func newShellCmd() *cobra.Command {
	var (
		api, token, dataDir, history string
		format                       shell.Format
	)
	cmd := &cobra.Command{
		Use:   "shell [--api 127.0.0.1:7474] [--data-dir DIR]",
		Short: "Interactive shell against the local agent",
		Long: `shell reads statements ended by ';' and answers them through the local agent's API,
with history, completion of keywords and attributes, a live progress line, and \help for its
commands. Ctrl-C cancels the running statement; Ctrl-D quits. When standard input is not a
terminal it reads statements plainly, so it can be scripted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(api, token, dataDir, 10*time.Minute)
			if err != nil {
				return err
			}
			return runShell(cmd, apiExec{c}, format, history)
		},
	}
	f := cmd.Flags()
	f.StringVar(&api, "api", "", "the agent's API address (default $PEERQ_API or 127.0.0.1:7474)")
	f.StringVar(&token, "token", "", "API token (default $PEERQ_TOKEN, or read from --data-dir)")
	f.StringVar(&dataDir, "data-dir", "", "the agent's data dir, to read its token")
	f.VarP(&format, "format", "F", "output format: table, csv, json or ndjson")
	f.StringVar(&history, "history", defaultHistory(), "history file")
	return cmd
}

func defaultHistory() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".peerq_history")
	}
	return ""
}

// runShell runs the REPL on the command's streams: the line editor on a
// terminal, plain reading otherwise.
func runShell(cmd *cobra.Command, exec shell.Executor, format shell.Format, history string) error {
	in := cmd.InOrStdin()
	terminal := false
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		terminal = true
	}
	cfg := shell.Config{In: in, Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr(), Terminal: terminal,
		HistoryFile: history, Format: format, Keywords: parser.Keywords()}
	if !terminal {
		cfg.HistoryFile = ""
	}
	if err := shell.Run(context.Background(), exec, cfg); err != nil {
		return &exitError{exitUsage, err}
	}
	return nil
}
