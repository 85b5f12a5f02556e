package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/parser"
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
			stmts, err := parser.Parse(name, src)
			if err != nil {
				return statementError(src, name, err)
			}
			c, err := newAPIClient(api, token, dataDir, timeout)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for i, s := range stmts {
				if i > 0 && format == shell.FormatTable {
					fmt.Fprintln(out)
				}
				if err := c.run(out, s.String(), format); err != nil {
					var ee *exitError
					if errors.As(err, &ee) && ee.code == exitStatement {
						if pe, ok := ee.err.(*parser.Error); ok {
							// The agent checked the canonical text; point into ours.
							pe.Pos = s.Position()
						}
						return statementError(src, name, ee.err)
					}
					return err
				}
			}
			return nil
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

// run sends one statement and renders its answer, with the exit codes of
// docs/AGENT.md.
func (c *apiClient) run(out io.Writer, stmt string, format shell.Format) error {
	t, err := apiExec{c}.Execute(context.Background(), stmt, nil)
	if err != nil {
		var pe *parser.Error
		switch {
		case errors.As(err, &pe):
			return &exitError{exitStatement, pe}
		case errors.Is(err, node.ErrNotEnoughPeers):
			return &exitError{exitNotEnough, fmt.Errorf("peerq: %w", err)}
		case t == nil:
			return &exitError{exitUsage, fmt.Errorf("peerq: %w", err)}
		}
	}
	if rerr := shell.Render(out, format, t); rerr != nil {
		return &exitError{exitUsage, rerr}
	}
	if errors.Is(err, errPartial) {
		return &exitError{exitTimeout, errors.New("peerq: the statement timed out; the answer is partial")}
	}
	return nil
}

// lineTable turns the API's result line into a table for the renderers.
func lineTable(l node.Line) *shell.Table {
	t := &shell.Table{}
	for _, c := range l.Columns {
		t.Columns = append(t.Columns, shell.Column{Name: c.Name, Kind: c.Kind})
	}
	for i, row := range l.Rows {
		cells := make([]shell.Cell, len(row))
		for j, v := range row {
			cells[j] = shell.Cell{Text: l.Text[i][j], Raw: v}
		}
		t.Rows = append(t.Rows, cells)
	}
	if m := l.Meta; m != nil {
		t.Statement = m.Statement
		t.Meta = map[string]any{"peers": m.Peers, "rounds": m.Rounds, "elapsed_seconds": m.Elapsed,
			"plan_hash": m.PlanHash, "from_tags": m.FromTags, "converged": m.Converged, "error_estimate": m.ErrEstimate}
		t.Footer = fmt.Sprintf("%d row(s) · %d peers · %d rounds · %.2fs", len(t.Rows), m.Peers, m.Rounds, m.Elapsed)
		if m.FromTags {
			t.Footer = fmt.Sprintf("%d row(s) · %d peers · answered from membership tags, no gossip", len(t.Rows), m.Peers)
		}
	}
	return t
}
