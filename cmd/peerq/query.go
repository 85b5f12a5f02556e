package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/shell"
	"github.com/spf13/cobra"
)

func newQueryCmd() *cobra.Command {
	var (
		expr, file, api, token, dataDir string
		format                          shell.Format
		timeout                         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "query -e STATEMENT | -f FILE [--format table|csv|json|ndjson]",
		Short: "Run statements through the local agent's API",
		Long: `query sends each statement to the local agent (--api, or PEERQ_API) with its token
(--token, PEERQ_TOKEN, or the file in --data-dir) and prints the answers. Exit codes: 0 ok,
1 usage or I/O (agent unreachable), 2 a statement error, 4 a timeout with a partial answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, name, err := readStatements(cmd, expr, file)
			if err != nil {
				return err
			}
			c, err := newAPIClient(api, token, dataDir, timeout)
			if err != nil {
				return err
			}
			return runScript(cmd.OutOrStdout(), apiExec{c}, src, name, format)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&expr, "execute", "e", "", "statement(s) to run")
	f.StringVarP(&file, "file", "f", "", "script of statements (- for stdin)")
	f.StringVar(&api, "api", "", "the agent's API address (default $PEERQ_API or 127.0.0.1:7474)")
	f.StringVar(&token, "token", "", "API token (default $PEERQ_TOKEN, or read from --data-dir)")
	f.StringVar(&dataDir, "data-dir", "", "the agent's data dir, to read its token")
	f.VarP(&format, "format", "F", "output format: table, csv, json or ndjson")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up on the agent after this long")
	return cmd
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type apiClient struct {
	base, token string
	http        *http.Client
}

// newAPIClient finds the agent and its token: the flags, else PEERQ_API and
// PEERQ_TOKEN, else the token file in the data dir.
func newAPIClient(api, token, dataDir string, timeout time.Duration) (*apiClient, error) {
	if api == "" {
		api = envOr("PEERQ_API", "127.0.0.1:7474")
	}
	if token == "" {
		token = os.Getenv("PEERQ_TOKEN")
	}
	if token == "" && dataDir != "" {
		b, err := os.ReadFile(filepath.Join(dataDir, node.TokenFile))
		if err != nil {
			return nil, &exitError{exitUsage, fmt.Errorf("peerq: token: %w", err)}
		}
		token = strings.TrimSpace(string(b))
	}
	return &apiClient{base: "http://" + api, token: token, http: &http.Client{Timeout: timeout}}, nil
}
