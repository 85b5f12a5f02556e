package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/parser"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/shell"
)

// embeddedExec runs statements on a peer of the embedded cluster.
type embeddedExec struct{ n *node.Node }

var _ shell.Executor = embeddedExec{}

func (e embeddedExec) Execute(ctx context.Context, text string, progress func(shell.Progress)) (*shell.Table, error) {
	plan, err := query.CompileText(text, e.n.Catalog(), query.DefaultConfig())
	if err != nil {
		return nil, err
	}
	if plan.Explain {
		return explainTable(query.Explain(plan, e.n.Overlay().Size())), nil
	}
	res, err := e.n.Query(ctx, plan, func(p node.Progress) {
		if progress != nil {
			progress(shell.Progress{Round: p.Round, Budget: p.Budget, Peers: p.Peers, ErrEstimate: p.ErrEstimate, Estimate: firstCell(p.Answer)})
		}
	})
	if res == nil {
		return nil, err
	}
	return toTable(plan, res, err), err
}

func (e embeddedExec) Words() []string { return e.n.Catalog().Names() }

func firstCell(r *query.Result) string {
	if r == nil || len(r.Rows) == 0 || len(r.Rows[0]) == 0 {
		return "…"
	}
	return r.Rows[0][0].String()
}

func explainTable(text string) *shell.Table {
	t := &shell.Table{Columns: []shell.Column{{Name: "EXPLAIN", Kind: "string"}}}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		t.Rows = append(t.Rows, []shell.Cell{{Text: l, Raw: l}})
	}
	return t
}

// apiExec runs statements through the local agent's API.
type apiExec struct{ c *apiClient }

var _ shell.Executor = apiExec{}

func (a apiExec) Execute(ctx context.Context, text string, progress func(shell.Progress)) (*shell.Table, error) {
	body, _ := json.Marshal(node.QueryRequest{Statement: text})
	req, err := http.NewRequestWithContext(ctx, "POST", a.c.base+"/v1/query", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set(node.TokenHeader, a.c.token)
	resp, err := a.c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error        string
			Line, Column int
		}
		json.NewDecoder(resp.Body).Decode(&e)
		if e.Line > 0 {
			return nil, &parser.Error{Pos: parser.Pos{Line: e.Line, Column: e.Column},
				Msg: strings.TrimPrefix(e.Error, fmt.Sprintf("%d:%d: ", e.Line, e.Column))}
		}
		return nil, fmt.Errorf("agent: %s: %s", resp.Status, e.Error)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var l node.Line
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("agent sent %q: %w", sc.Text(), err)
		}
		switch l.Type {
		case "progress":
			if progress != nil {
				est := "…"
				if len(l.Text) > 0 && len(l.Text[0]) > 0 {
					est = l.Text[0][0]
				}
				progress(shell.Progress{Round: l.Round, Budget: l.Budget, Peers: l.Peers, ErrEstimate: l.ErrEstimate, Estimate: est})
			}
		case "error":
			if l.Code == "not_enough_peers" {
				return nil, fmt.Errorf("%w: %s", node.ErrNotEnoughPeers, l.Error)
			}
			return nil, errors.New(l.Error)
		case "result":
			if l.Explain != "" {
				return explainTable(l.Explain), nil
			}
			t := lineTable(l)
			if l.Meta != nil && l.Meta.Timeout {
				return t, node.ErrTimeout
			}
			return t, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("the agent closed the answer without a result")
}

func (a apiExec) Words() []string {
	req, err := http.NewRequest("GET", a.c.base+"/v1/attributes", nil)
	if err != nil {
		return nil
	}
	req.Header.Set(node.TokenHeader, a.c.token)
	resp, err := a.c.http.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var attrs []struct{ Name string }
	json.NewDecoder(resp.Body).Decode(&attrs)
	var out []string
	for _, at := range attrs {
		out = append(out, at.Name)
	}
	return out
}

// lineTable turns a result line (the API's, or the embedded runtime's
// through node.ResultLine) into a table for the renderers.
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
	m := l.Meta
	if m == nil {
		return t
	}
	t.Statement = m.Statement
	t.Meta = map[string]any{"peers": m.Peers, "rounds": m.Rounds, "elapsed_seconds": m.Elapsed,
		"plan_hash": m.PlanHash, "from_tags": m.FromTags, "converged": m.Converged}
	t.Footer = fmt.Sprintf("%d row(s) · %d peers", len(t.Rows), m.Peers)
	if m.FromTags {
		t.Footer += " · answered from membership tags, no gossip"
		return t
	}
	t.Meta["error_estimate"] = m.ErrEstimate
	if m.Participants > 0 {
		t.Meta["participants_estimate"] = m.Participants
	}
	t.Footer += fmt.Sprintf(" · %d rounds · %s", m.Rounds, time.Duration(m.Elapsed*float64(time.Second)).Round(time.Millisecond))
	if m.Protocol == query.PlanAggregate.String() {
		t.Footer += fmt.Sprintf(" · error ±%s (estimated)", query.Num(query.KindRatio, m.ErrEstimate))
	}
	if !m.Converged {
		t.Footer += " · NOT converged"
	}
	return t
}
