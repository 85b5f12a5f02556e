package shell

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/answer"
)

// TableOf turns an answer into a table for the renderers: cells with text
// and raw values, the metadata, and a footer that says how complete the
// answer is.
func TableOf(a *answer.Answer) *Table {
	if a.Explain != "" {
		return explainTable(a.Explain)
	}
	t := &Table{}
	for _, c := range a.Columns {
		t.Columns = append(t.Columns, Column{Name: c.Name, Kind: c.Kind.String()})
	}
	text := a.Text()
	for i, row := range a.Rows {
		cells := make([]Cell, len(row))
		for j, v := range row {
			cells[j] = Cell{Text: text[i][j], Raw: v.Raw()}
		}
		t.Rows = append(t.Rows, cells)
	}
	m := a.Meta
	if m == nil {
		return t
	}
	t.Statement = m.Statement
	t.Meta = map[string]any{"status": m.Status, "peers": m.Peers, "rounds": m.Rounds, "elapsed_seconds": m.Elapsed,
		"plan_hash": m.PlanHash, "from_tags": m.FromTags, "converged": m.Converged}
	for k, v := range map[string]any{"reason": m.Reason, "members_start": m.MembersStart, "members_end": m.MembersEnd,
		"joined": m.Joined, "left": m.Left, "unreachable": m.Unreachable, "refused": m.Refused, "excluded": m.Excluded,
		"excluded_count": m.ExcludedCount, "epoch": m.Epoch, "at": m.At} {
		if v != "" && v != 0 && !isEmptyList(v) {
			t.Meta[k] = v
		}
	}
	t.Footer = fmt.Sprintf("%d row(s) · %d peers", len(t.Rows), m.Peers)
	if m.FromTags {
		t.Footer += " · answered from membership tags, no gossip"
		return t
	}
	t.Meta["error_estimate"] = m.ErrEstimate
	if m.Participants > 0 {
		t.Meta["participants_estimate"] = m.Participants
	}
	t.Footer += fmt.Sprintf(" · %d rounds · %s", m.Rounds, m.Took().Round(time.Millisecond))
	if len(m.Pools) > 0 {
		t.Meta["pools"] = m.Pools
		answered := 0
		for _, p := range m.Pools {
			if p.Status == answer.StatusExact || p.Status == answer.StatusConverged {
				answered++
			}
		}
		t.Footer += fmt.Sprintf(" · %d of %d pools", answered, len(m.Pools))
	}
	if m.Protocol == answer.ProtocolAggregate {
		t.Footer += fmt.Sprintf(" · error ±%s (estimated)", percent(m.ErrEstimate))
	}
	if changed := len(m.Joined) + len(m.Left); changed > 0 {
		t.Footer += fmt.Sprintf(" · %d joined, %d left during the query", len(m.Joined), len(m.Left))
	}
	if m.Warning != "" {
		t.Footer += " · " + m.Warning
		t.Meta["warning"] = m.Warning
	}
	if c := m.Check; c != nil {
		t.Meta["check"] = c
		if c.Verdict == answer.CheckAgrees {
			t.Footer += fmt.Sprintf(" · %d sampled members agree", c.Sampled)
			if c.Escalated {
				t.Footer += " (the first sample could not tell: more were asked)"
			}
			if c.Unverified > 0 {
				t.Footer += fmt.Sprintf(" (%d of their rows name owners not live here: receipts unverified)", c.Unverified)
			}
		} else if c.Verdict == answer.CheckUnchecked {
			t.Footer += " · unchecked: " + c.Reason
		}
	}
	switch {
	case m.Status == answer.StatusContested:
		t.Footer += " · CONTESTED: " + m.Reason
		if c := m.Check; c != nil && len(c.Text) > 0 {
			rows := make([]string, len(c.Text))
			for i, r := range c.Text {
				rows[i] = strings.Join(r, " | ")
			}
			t.Footer += fmt.Sprintf(" · the %d sampled members alone say: %s", c.Sampled, strings.Join(rows, "; "))
		}
	case m.Status == answer.StatusPartial || !m.Converged:
		t.Footer += " · PARTIAL"
		if m.Reason != "" {
			t.Footer += ": " + m.Reason
		}
	}
	return t
}

func isEmptyList(v any) bool {
	l, ok := v.([]string)
	return ok && len(l) == 0
}

// percent writes a ratio as a percentage, as the engine writes ratios.
func percent(x float64) string { return strconv.FormatFloat(x*100, 'g', 4, 64) + "%" }

func explainTable(text string) *Table {
	t := &Table{Columns: []Column{{Name: "EXPLAIN", Kind: "string"}}, Plain: strings.TrimRight(text, "\n") + "\n"}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		t.Rows = append(t.Rows, []Cell{{Text: l, Raw: l}})
	}
	return t
}
