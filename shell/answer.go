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
		t := explainTable(a.Explain)
		if a.Meta != nil {
			t.Statement = a.Meta.Statement
		}
		return t
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
	t.Meta = map[string]any{"status": m.Status, "protocol": m.Protocol, "peers": m.Peers, "rounds": m.Rounds, "elapsed_seconds": m.Elapsed,
		"plan_hash": m.PlanHash, "from_tags": m.FromTags, "converged": m.Converged}
	for k, v := range map[string]any{"reason": m.Reason, "members_start": m.MembersStart, "members_end": m.MembersEnd,
		"joined": m.Joined, "left": m.Left, "unreachable": m.Unreachable, "refused": m.Refused, "excluded": m.Excluded,
		"excluded_count": m.ExcludedCount, "epoch": m.Epoch, "at": m.At, "warning": m.Warning, "timeout": m.Timeout} {
		if v != "" && v != 0 && v != false && !isEmptyList(v) {
			t.Meta[k] = v
		}
	}
	// Each pool's part, whether the pools ran gossip or read their
	// member lists: in a cloud of pools a statement of tags alone is
	// answered by each pool's gateways too, a majority of them agreeing
	// (node/pools.go), and a script reads which did as the footer says.
	if len(m.Pools) > 0 {
		t.Meta["pools"] = m.Pools
	}
	if !m.FromTags {
		t.Meta["error_estimate"] = m.ErrEstimate
		if m.Participants > 0 {
			t.Meta["participants_estimate"] = m.Participants
		}
		if m.Check != nil {
			t.Meta["check"] = m.Check
		}
	}
	t.Footer = Footer(len(t.Rows), m)
	return t
}

// Footer is the line under a table, as psql's "(3 rows)": the rows, the
// status (exact, converged, sampled, partial or contested: always said), the peers,
// the rounds and the time, then what else the answer says — the error
// estimate, pools, members that came and went, a warning, the sample
// check, and why it is partial or contested:
//
//	(1 row) · converged · 200 peers · 12 rounds · 210 ms · error ±0.5% (estimated)
func Footer(rows int, m *answer.Meta) string {
	var b strings.Builder
	b.WriteString("(" + count(rows, "row") + ")")
	status := m.Status
	if status == "" {
		status = answer.StatusConverged
		if !m.Converged {
			status = answer.StatusPartial
		}
	}
	fmt.Fprintf(&b, " · %s · %s", status, count(m.Peers, "peer"))
	if m.FromTags {
		b.WriteString(" · from membership tags, no gossip · " + took(m.Took()))
	} else {
		fmt.Fprintf(&b, " · %s · %s", count(m.Rounds, "round"), took(m.Took()))
	}
	if len(m.Pools) > 0 {
		answered := 0
		for _, p := range m.Pools {
			if p.Status == answer.StatusExact || p.Status == answer.StatusConverged {
				answered++
			}
		}
		fmt.Fprintf(&b, " · %d of %d pools", answered, len(m.Pools))
	}
	if m.Protocol == answer.ProtocolAggregate && !m.FromTags {
		how := "estimated"
		if status == answer.StatusSampled {
			how = "95%, the sample's"
		}
		fmt.Fprintf(&b, " · error ±%s (%s)", answer.FormatPercent(m.ErrEstimate), how)
	}
	if changed := len(m.Joined) + len(m.Left); changed > 0 {
		fmt.Fprintf(&b, " · %d joined, %d left during the query", len(m.Joined), len(m.Left))
	}
	if m.Warning != "" {
		b.WriteString(" · " + m.Warning)
	}
	if c := m.Check; c != nil && !m.FromTags {
		if c.Verdict == answer.CheckAgrees {
			fmt.Fprintf(&b, " · %d sampled members agree", c.Sampled)
			if c.Escalated {
				b.WriteString(" (the first sample could not tell: more were asked)")
			}
			if c.Unverified > 0 {
				fmt.Fprintf(&b, " (%d of their rows name owners not live here: receipts unverified)", c.Unverified)
			}
		} else if c.Verdict == answer.CheckUnchecked {
			b.WriteString(" · unchecked: " + c.Reason)
		}
	}
	switch {
	case status == answer.StatusContested:
		b.WriteString(" · CONTESTED: " + m.Reason)
		if c := m.Check; c != nil && len(c.Text) > 0 {
			rows := make([]string, len(c.Text))
			for i, r := range c.Text {
				rows[i] = strings.Join(r, " | ")
			}
			fmt.Fprintf(&b, " · the %d sampled members alone say: %s", c.Sampled, strings.Join(rows, "; "))
		}
	case status == answer.StatusSampled:
		b.WriteString(" · SAMPLED: " + m.Reason)
	case status == answer.StatusPartial:
		b.WriteString(" · PARTIAL")
		if m.Reason != "" {
			b.WriteString(": " + m.Reason)
		}
	}
	return b.String()
}

// count is n things: "1 row", "3 rows".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// took is a statement's time as psql's \timing writes it: 210 ms, 1.52 s.
func took(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
}

func isEmptyList(v any) bool {
	l, ok := v.([]string)
	return ok && len(l) == 0
}

func explainTable(text string) *Table {
	t := &Table{Columns: []Column{{Name: "explain", Kind: "string"}}, Plain: strings.TrimRight(text, "\n") + "\n"}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		t.Rows = append(t.Rows, []Cell{{Text: l, Raw: l}})
	}
	return t
}
