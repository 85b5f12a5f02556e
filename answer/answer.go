package answer

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Column is an answer's column: its name and the kind of its values.
// Key says the column identifies its row: a GROUP BY key of a grouped
// aggregate's, a top-k's node; the row of the same keys in the next
// epoch of a WATCH is the same group or peer (the console charts each
// as one series).
type Column struct {
	Name string
	Kind Kind
	Key  bool
}

// columnJSON is a Column on the wire: the kind by name (docs/API.md).
type columnJSON struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Key  bool   `json:"key,omitempty"`
}

// MarshalJSON writes {"name": ..., "kind": "bytes"}, and "key": true on a
// key column.
func (c Column) MarshalJSON() ([]byte, error) {
	return Marshal(columnJSON{Name: c.Name, Kind: c.Kind.String(), Key: c.Key})
}

// UnmarshalJSON reads a column; a kind this build does not know reads as
// a plain number, so that a newer agent's answer still shows.
func (c *Column) UnmarshalJSON(b []byte) error {
	var w columnJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("answer: column: %w", err)
	}
	k, ok := KindOf(w.Kind)
	if !ok {
		k = KindNumber
	}
	*c = Column{Name: w.Name, Kind: k, Key: w.Key}
	return nil
}

// Answer is a statement's answer: what the binding reads from a core's
// state (run), what the runtime returns (node), what the API writes and
// its Client reads (JSON), and what the shell renders. The rows are typed
// values, so that the oracles compare them with query.Exact's and the
// shell formats them; the API writes each twice, raw and as text.
type Answer struct {
	Columns []Column
	Rows    [][]Value
	// Nodes names the peer of each row of a top-k answer. The runtime
	// uses it (a top-k leaves out the members it excluded); the API does
	// not carry it (RESERVE's members are a column).
	Nodes []string
	// Explain is EXPLAIN's description, instead of rows.
	Explain string
	// Meta is how the answer was reached and how complete it is; nil for
	// an estimate in progress and for the exact answers the oracles
	// compute.
	*Meta

	// text is the agent's text of the rows when the answer came over the
	// API: a client shows what the agent wrote, whatever its own build
	// would format.
	text [][]string
}

// Text is the rows with units, for people: 4.0 GiB, 2h13m, 97.5%.
func (a *Answer) Text() [][]string {
	if a.text != nil {
		return a.text
	}
	text := make([][]string, len(a.Rows))
	for i, row := range a.Rows {
		text[i] = make([]string, len(row))
		for j, v := range row {
			text[i][j] = v.String()
		}
	}
	return text
}

// TimeFormat is how an answer writes a time: RFC 3339 in UTC to the
// millisecond (2026-11-27T10:04:05.123Z) — a person reads it, a tool
// parses it, and the nanoseconds a clock gives would only be noise.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Protocols a Meta names.
const (
	ProtocolAggregate = "aggregate"
	ProtocolTopK      = "top-k"
	ProtocolReserve   = "reserve"
	ProtocolLocal     = "local"
)

// The statuses of an answer.
const (
	// StatusExact: computed exactly, from the membership (tags) or the
	// asker's own tables.
	StatusExact = "exact"
	// StatusConverged: gossip converged over every member alive when the
	// answer was returned, none unreachable, none refusing (docs/PQL.md,
	// "What an answer promises").
	StatusConverged = "converged"
	// StatusPartial: the answer leaves members out or stopped early —
	// Reason says which; scripts exit 4 unless --allow-partial.
	StatusPartial = "partial"
	// StatusContested: an independent sample of members contradicts the
	// gossip answer, or holds one record that alone bends it (Meta.Check
	// has both figures; Reason says which): a liar may have bent it.
	// Scripts exit 8 unless --allow-contested.
	StatusContested = "contested"
	// StatusSampled: the statement asked for an answer a minority cannot
	// move (every aggregate a trimmed mean or a quantile, run.Robust),
	// the sample contested the gossip's, and the answer is the sample's
	// own: the signed records of Meta.Check.Sampled members chosen by a
	// hash of the query, within ErrEstimate (a relative half-width at
	// 95%). Reason has the gossip's figure. Scripts exit 0.
	StatusSampled = "sampled"
)

// The verdicts of a sample check (Check.Verdict).
const (
	CheckAgrees    = "agrees"
	CheckContested = "contested"
	CheckUnchecked = "unchecked"
)

// Check is how a gossip aggregate was checked against an independent
// sample of members (docs/SECURITY.md, "Answers checked against a
// sample"): the asker picked Asked members by a hash of the query and
// evaluated the statement on the records Sampled of them sent, each
// signed by its member.
type Check struct {
	Asked   int `json:"asked"`
	Sampled int `json:"sampled"`
	// Refused names the sampled members whose reply was not signed by
	// them or held a value outside the catalog's bounds.
	Refused []string `json:"refused,omitempty"`
	// Unverified is, FROM leases, how many sampled ledger rows name an
	// owner that is not a live member at the asker: their receipts are
	// checked against the key the member shows, which nobody ties to
	// the owner.
	Unverified int `json:"unverified,omitempty"`
	// Escalated: the first sample could neither confirm the answer nor
	// contest it, and the asker sampled more members (Asked counts
	// them all) before it judged.
	Escalated bool `json:"escalated,omitempty"`
	// Verdict is agrees, contested or unchecked; Reason says why it is
	// not agrees.
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
	// Rows and Text are the sample's own answer in the answer's columns:
	// raw, and with units.
	Rows [][]any    `json:"rows,omitempty"`
	Text [][]string `json:"text,omitempty"`
}

// SetRows sets the sample's own answer.
func (c *Check) SetRows(a *Answer) {
	j := a.JSON()
	c.Rows, c.Text = j.Rows, j.Text
}

// Flagged says the answer may be wrong, and says so: partial or
// contested. Scripts exit non-zero on it unless told otherwise.
func (m *Meta) Flagged() bool {
	return m != nil && (m.Status == StatusPartial || m.Status == StatusContested)
}

// Contest marks the answer contested, why being the sample check's
// reason; a partial answer's reason is kept after it.
func (m *Meta) Contest(why string) {
	if m.Status == StatusPartial && m.Reason != "" {
		why += "; also partial: " + m.Reason
	}
	m.Status, m.Reason, m.Converged = StatusContested, why, false
}

// StandIn makes the answer the sample's own (StatusSampled): rows its
// figures, width their relative half-width at 95%, why the gossip's
// figure and the sample's. A partial answer's reason is kept after it:
// the sample is of the members the answer is about.
func (a *Answer) StandIn(rows [][]Value, width float64, why string) {
	m := a.Meta
	if m.Status == StatusPartial && m.Reason != "" {
		why += "; the gossip was also partial: " + m.Reason
	}
	a.Rows = rows
	m.Status, m.Reason, m.Converged, m.ErrEstimate = StatusSampled, why, true, width
}

// Meta is how an answer was reached and how complete it is. The JSON
// names are the API's (docs/API.md); the fields marked "-" are the
// runtime's own reading of a running query (the round budget, whether the
// rule made it final), which clients learn from progress and the status
// instead: they stay here so that run hands node one value, not a second
// type beside it.
type Meta struct {
	Statement string `json:"statement"`
	Protocol  string `json:"protocol"` // aggregate, top-k, reserve, local
	// Status is exact, converged, sampled, contested or partial; Reason
	// says why it is not exact or converged.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Peers is the membership the answer is about: the live members when
	// it was returned, less those that refused or were left out.
	Peers int `json:"peers"`
	// MembersStart and MembersEnd are the live members when the query
	// started and ended; Joined and Left those that joined, or left or
	// failed, in between; Unreachable the members the asker could not
	// reach at the end; Refused the peers that would not take part.
	MembersStart int      `json:"members_start,omitempty"`
	MembersEnd   int      `json:"members_end,omitempty"`
	Joined       []string `json:"joined,omitempty"`
	Left         []string `json:"left,omitempty"`
	Unreachable  []string `json:"unreachable,omitempty"`
	Refused      []string `json:"refused,omitempty"`
	// Excluded are members left out of the answer, which is exact or
	// converged over the others (Warning says why, by member): lost while
	// it ran, as the query's peers found (a failed exchange, pings and
	// indirect probes) or as Serf declared, or their clock is off.
	// ExcludedCount is how many; Excluded names the first MaxNamed.
	Excluded      []string `json:"excluded,omitempty"`
	ExcludedCount int      `json:"excluded_count,omitempty"`
	// Participants is, for gossip aggregates, the gossip estimate of the
	// peers whose mass reached the answer (1 / the origin's mass): a
	// cross-check of Peers. 0 otherwise.
	Participants float64 `json:"participants_estimate,omitempty"`
	Rounds       int     `json:"rounds"`
	// Elapsed is in seconds.
	Elapsed float64 `json:"elapsed_seconds"`
	// ErrEstimate is the asker's estimate of the answer's relative error
	// (run.Rule); for a top-k, 0 once it covers every peer.
	ErrEstimate float64 `json:"error_estimate"`
	PlanHash    string  `json:"plan_hash"`
	// Check is the sample check of a gossip aggregate; nil for the
	// others.
	Check *Check `json:"check,omitempty"`
	// Pools is, in a cloud of several pools, each pool's part in the
	// answer (node/pools.go): a pool that did not answer makes the answer
	// partial, one whose gateways disagree contested, naming it.
	Pools []PoolStatus `json:"pools,omitempty"`
	// FromTags says the answer came from the member list, without gossip.
	FromTags bool `json:"from_tags"`
	// Warning is said beside a good answer: that the cluster is this peer
	// alone, say.
	Warning string `json:"warning,omitempty"`
	// Converged is Status exact, converged or sampled (kept for clients
	// of the first API).
	Converged bool `json:"converged"`
	Timeout   bool `json:"timeout,omitempty"`
	// Epoch and At place an answer of a WATCH: its epoch (1, 2, ...) and
	// when it was answered (RFC 3339, UTC, to the millisecond: TimeFormat).
	Epoch int    `json:"epoch,omitempty"`
	At    string `json:"at,omitempty"`

	// Budget is the query's round budget; Final says the answer will not
	// change (converged, out of rounds, or stopped). The asker's runtime
	// reads them from run.
	Budget int  `json:"-"`
	Final  bool `json:"-"`
}

// PoolStatus is one pool's part in an answer: its status and reason as
// its gateways reported, its members, its rounds, and how many of its
// gateways (of those the cloud pool listed) agreed on its partial.
type PoolStatus struct {
	Pool   string `json:"pool"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	Peers  int    `json:"peers"`
	Rounds int    `json:"rounds"`
	// Elapsed is how long the chosen report's gateway ran the statement
	// in its pool, in seconds, as it reported it.
	Elapsed  float64 `json:"elapsed_seconds,omitempty"`
	Gateways int     `json:"gateways"`
	Agreeing int     `json:"agreeing"`
	// GatewayNames are the gateways the cloud pool listed for the pool.
	GatewayNames []string `json:"gateway_names,omitempty"`
	// Check is the verdict of the pool's own sample check, if it made one.
	Check string `json:"check,omitempty"`
	// Owner is, for a statement FROM SUBCLOUD, the owner of that name in
	// the pool, as its gateways found it ("": nobody there owns it).
	Owner string `json:"subcloud_owner,omitempty"`
	// Excluded are the pool's members left out of its partial that a
	// majority of its listed gateways name among its agreeing reports
	// (the first MaxNamed); ExcludedCount is the most such a majority
	// counts (node/pools.go, leftOutBy).
	Excluded      []string `json:"excluded,omitempty"`
	ExcludedCount int      `json:"excluded_count,omitempty"`
}

// MaxNamed is how many excluded members an answer names (Meta.Excluded);
// ExcludedCount counts them all.
const MaxNamed = 64

// Progress is a running statement's state, once a round.
type Progress struct {
	Round, Budget int
	// Peers is the number of live peers in the membership.
	Peers int
	// ErrEstimate is the asker's estimate of Estimate's relative error.
	ErrEstimate float64
	// Estimate is the current answer (columns and rows; no meta).
	Estimate *Answer
}

// FirstCell is the estimate's first value with its unit, or "…".
func (p Progress) FirstCell() string {
	if p.Estimate == nil || len(p.Estimate.Rows) == 0 || len(p.Estimate.Rows[0]) == 0 {
		return "…"
	}
	return p.Estimate.Text()[0][0]
}

// JSON is an answer as the API writes it (docs/API.md): each row twice,
// raw values for scripts (bytes as integers, durations in seconds, ratios
// as fractions, NULL as null) and text with units for people.
type JSON struct {
	Columns []Column   `json:"columns,omitempty"`
	Rows    [][]any    `json:"rows,omitempty"`
	Text    [][]string `json:"text,omitempty"`
	Meta    *Meta      `json:"meta,omitempty"`
	Explain string     `json:"explain,omitempty"`
}

// JSON is a as the API writes it.
func (a *Answer) JSON() JSON {
	j := JSON{Columns: a.Columns, Meta: a.Meta, Explain: a.Explain}
	if len(a.Rows) > 0 {
		j.Rows, j.Text = make([][]any, len(a.Rows)), a.Text()
		for i, row := range a.Rows {
			j.Rows[i] = make([]any, len(row))
			for k, v := range row {
				j.Rows[i][k] = v.Raw()
			}
		}
	}
	return j
}

// Answer reads the answer back: each raw value as its column's kind, the
// agent's text kept as it wrote it.
func (j JSON) Answer() *Answer {
	a := &Answer{Columns: j.Columns, Meta: j.Meta, Explain: j.Explain}
	if len(j.Rows) == 0 {
		return a
	}
	a.Rows = make([][]Value, len(j.Rows))
	for i, row := range j.Rows {
		a.Rows[i] = make([]Value, len(row))
		for k, raw := range row {
			kind := KindNumber
			if k < len(j.Columns) {
				kind = j.Columns[k].Kind
			}
			a.Rows[i][k] = ValueOf(raw, kind)
		}
	}
	if sameShape(j.Text, j.Rows) {
		a.text = j.Text
	}
	return a
}

// sameShape reports whether text has a cell for every raw value: else the
// text is made anew from the values, rather than trusted to index.
func sameShape(text [][]string, rows [][]any) bool {
	if len(text) != len(rows) {
		return false
	}
	for i := range rows {
		if len(text[i]) != len(rows[i]) {
			return false
		}
	}
	return true
}

// MarshalJSON writes a as the API does.
func (a *Answer) MarshalJSON() ([]byte, error) { return Marshal(a.JSON()) }

// UnmarshalJSON reads an answer the API wrote.
func (a *Answer) UnmarshalJSON(b []byte) error {
	var j JSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	*a = *j.Answer()
	return nil
}

// ValueOf is Raw's inverse: a raw value from JSON (decoded with or
// without UseNumber) as a value of kind k. A raw value that does not fit
// k keeps its own type (a string as a string, a number as a plain
// number), so that it reads back as it was written even where a value's
// kind is not its column's.
func ValueOf(raw any, k Kind) Value {
	switch x := raw.(type) {
	case nil:
		return Null
	case bool:
		return Bool(x)
	case string:
		return Str(x)
	case []string:
		return List(x)
	case []any:
		items := make([]string, len(x))
		for i, it := range x {
			if s, ok := it.(string); ok {
				items[i] = s
			} else {
				items[i] = fmt.Sprint(it)
			}
		}
		return List(items)
	}
	f, ok := number(raw)
	if !ok {
		return Str(fmt.Sprint(raw))
	}
	if !k.Numeric() || (k == KindCount || k == KindBytes) && f != math.Trunc(f) {
		// Not what the column says: a count or a size is written whole.
		k = KindNumber
	}
	return Num(k, f)
}

// number reads a raw JSON number.
func number(raw any) (float64, bool) {
	switch x := raw.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil && !math.IsInf(f, 0)
	}
	return 0, false
}

// Took is Elapsed as a duration.
func (m *Meta) Took() time.Duration { return time.Duration(m.Elapsed * float64(time.Second)) }
