package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/shell"
	"github.com/spf13/cobra"
)

func newShellCmd() *cobra.Command {
	var (
		opts    api.Options
		history string
		cfg     shell.Config
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
			opts.Timeout = 0 // a statement may run long; Ctrl-C ends it
			c, err := api.Locate(opts)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			cfg.HistoryFile = history
			return runShell(cmd, c, "agent at "+c.Addr(), cfg)
		},
	}
	apiFlags(cmd, &opts)
	f := cmd.Flags()
	f.VarP(&cfg.Format, "format", "F", "output format: table, csv, json or ndjson")
	f.StringVar(&history, "history", defaultHistory(), "history file")
	allowFlags(cmd, &cfg.AllowPartial, &cfg.AllowContested, "reading a pipe: ")
	return cmd
}

func defaultHistory() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".peerq_history")
	}
	return ""
}

// runShell runs the REPL on the command's streams: the line editor on a
// terminal, plain reading otherwise. agent names what it talks to (its
// first line); cfg holds the flags' settings (format, history file, what a
// piped shell accepts); the rest is filled in here.
func runShell(cmd *cobra.Command, exec api.Executor, agent string, cfg shell.Config) error {
	in := cmd.InOrStdin()
	terminal := isTerminal(in)
	cfg.In, cfg.Out, cfg.Err, cfg.Terminal = in, cmd.OutOrStdout(), cmd.ErrOrStderr(), terminal
	cfg.Keywords, cfg.Split = query.Keywords(), query.Split
	cfg.Follow, cfg.Functions, cfg.Help, cfg.Topics = query.Follow, query.Functions(), query.Help, query.HelpTopics()
	cfg.Scope = query.CompletionScope
	cfg.Tables, cfg.Agent, cfg.Hint = query.DescribeTable, agent, agentHint
	if !terminal {
		cfg.HistoryFile = ""
	}
	if out := cmd.OutOrStdout(); terminal && terminalRows(out) > 0 {
		cfg.Pager, cfg.Rows = pagerCommand(), func() int { return terminalRows(out) }
	}
	err := shell.Run(context.Background(), exec, cfg)
	var failed *shell.FailedError
	if errors.As(err, &failed) {
		// Piped statements failed: exit as `peerq query` would for the
		// first (each was reported as the shell went on).
		code := exitUsage
		var ee *exitError
		if errors.As(exitFor(failed.First), &ee) {
			code = ee.code
		}
		return &exitError{code, fmt.Errorf("peerq shell: %v", failed)}
	}
	if err != nil {
		return &exitError{exitUsage, err}
	}
	return nil
}

// agentHint says, for a refused connection, that no agent runs at the
// address and how to start one; "" for other errors.
func agentHint(err error) string {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Addr == nil {
		return ""
	}
	// Windows's refusal is WSAECONNREFUSED, which is not ECONNREFUSED:
	// its text says it.
	if !errors.Is(err, syscall.ECONNREFUSED) && !strings.Contains(err.Error(), "actively refused") {
		return ""
	}
	addr := oe.Addr.String()
	if addr == api.DefaultAddr {
		return fmt.Sprintf("no agent is running at %s, the default address. Start one with `peerq agent --data-dir ~/.peerq` "+
			"(docs/AGENT.md), or try `peerq demo`: 200 peers in this process, with this shell", addr)
	}
	return fmt.Sprintf("nothing listens at %s: is an agent running there? (`peerq agent --data-dir DIR` starts one; "+
		"--api or $PEERQ_API names its address, --data-dir finds it)", addr)
}

// pagerCommand is the pager for answers taller than the terminal:
// $PEERQ_PAGER, else $PAGER, else less if it is installed (-F: quit if
// the answer fits, -R: colours, -X: leave it on the screen). An empty
// PEERQ_PAGER turns paging off.
func pagerCommand() string {
	if p, ok := os.LookupEnv("PEERQ_PAGER"); ok {
		return p
	}
	if p := os.Getenv("PAGER"); p != "" {
		return p
	}
	if _, err := osexec.LookPath("less"); err == nil {
		return "less -FRX"
	}
	return ""
}
