package shell

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/api"
)

// TableOf turns an answer into a table for the renderers: cells with text
// and raw values, the metadata, and a footer that says how complete the
// answer is.
func TableOf(a *api.Answer) *Table {
	if a.Explain != "" {
		return explainTable(a.Explain)
	}
	t := &Table{}
	for _, c := range a.Columns {
		t.Columns = append(t.Columns, Column{Name: c.Name, Kind: c.Kind})
	}
	for i, row := range a.Rows {
		cells := make([]Cell, len(row))
		for j, v := range row {
			cells[j] = Cell{Text: a.Text[i][j], Raw: v}
		}
		t.Rows = append(t.Rows, cells)
	}
	m := a.Meta
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
	if m.Protocol == api.ProtocolAggregate {
		t.Footer += fmt.Sprintf(" · error ±%s (estimated)", percent(m.ErrEstimate))
	}
	if !m.Converged {
		t.Footer += " · NOT converged"
	}
	return t
}

// percent writes a ratio as a percentage, as the engine writes ratios.
func percent(x float64) string { return strconv.FormatFloat(x*100, 'g', 4, 64) + "%" }

func explainTable(text string) *Table {
	t := &Table{Columns: []Column{{Name: "EXPLAIN", Kind: "string"}}}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		t.Rows = append(t.Rows, []Cell{{Text: l, Raw: l}})
	}
	return t
}
