package shell

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/peerq/peerq/answer"
)

// Format is an output format. It is also a flag value (pflag.Value).
type Format int

// The output formats.
const (
	FormatTable  Format = iota // aligned table with units, for people
	FormatCSV                  // header line, then raw values
	FormatJSON                 // one JSON document per statement, with metadata
	FormatNDJSON               // one JSON object per row, then one metadata line
)

var formatNames = []string{"table", "csv", "json", "ndjson"}

func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "unknown"
}

// Set parses a format name (pflag.Value).
func (f *Format) Set(s string) error {
	for i, n := range formatNames {
		if strings.EqualFold(s, n) {
			*f = Format(i)
			return nil
		}
	}
	return fmt.Errorf("unknown format %q (expected %s)", s, strings.Join(formatNames, ", "))
}

// separated says whether answers in f are separated by an empty line:
// tables and CSV (each answer has its own header); JSON documents and
// NDJSON lines delimit themselves.
func (f Format) separated() bool { return f == FormatTable || f == FormatCSV }

// Type names the flag's type (pflag.Value).
func (f *Format) Type() string { return "format" }

// Column is a result column: its name and kind (bytes, duration, ...).
type Column struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Cell is one value: Text for people, Raw for machines (nil, bool,
// string, int64 or float64).
type Cell struct {
	Text string
	Raw  any
}

// Table is one statement's answer.
type Table struct {
	Statement string
	Columns   []Column
	Rows      [][]Cell
	// Meta is reported beside the rows: peers, rounds, elapsed seconds,
	// error estimate, plan hash ... in JSON and NDJSON, and as a footer
	// line (Footer) under a table.
	Meta   map[string]any
	Footer string
	// Plain is text a table shows as it is, instead of rows (EXPLAIN).
	Plain string
}

// Render writes t in format f.
func Render(w io.Writer, f Format, t *Table) error {
	switch f {
	case FormatCSV:
		return renderCSV(w, t)
	case FormatJSON:
		return renderJSON(w, t, "")
	case FormatNDJSON:
		return renderNDJSON(w, t)
	}
	return renderTable(w, t)
}

// maxListItems is how many items of a list cell (SHOW SUBCLOUDS' members)
// a table shows; the rest are counted (\d SUBCLOUD name lists them all,
// as do the machine formats).
const maxListItems = 6

// cellText is a cell as a table shows it: a list (a Raw []string, from a
// list column) joined by ", ", cut after maxListItems items.
func cellText(c Cell) string {
	items, ok := c.Raw.([]string)
	if !ok {
		return c.Text
	}
	if len(items) <= maxListItems+1 {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:maxListItems], ", ") + fmt.Sprintf(", … (%d more)", len(items)-maxListItems)
}

func renderTable(w io.Writer, t *Table) error {
	if t.Plain != "" {
		_, err := io.WriteString(w, t.Plain)
		return err
	}
	// Text (names, lists of names, booleans) reads from the left, numbers
	// line up on the right (psql; docs/CLI.md).
	align := make([]tw.Align, len(t.Columns))
	header := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		header[i] = c.Name
		align[i] = tw.AlignRight
		if c.Kind == "string" || c.Kind == "bool" || c.Kind == "list" || c.Kind == "" {
			align[i] = tw.AlignLeft
		}
	}
	tbl := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{Global: tw.AlignRight, PerColumn: align}))
	tbl.Header(header...)
	for _, row := range t.Rows {
		cells := make([]any, len(row))
		for i, c := range row {
			cells[i] = cellText(c)
		}
		if err := tbl.Append(cells...); err != nil {
			return fmt.Errorf("table: %w", err)
		}
	}
	if err := tbl.Render(); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	if t.Footer != "" {
		_, err := fmt.Fprintln(w, t.Footer)
		return err
	}
	return nil
}

func renderCSV(w io.Writer, t *Table) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		header[i] = c.Name
	}
	cw.Write(header)
	for _, row := range t.Rows {
		rec := make([]string, len(row))
		for i, c := range row {
			rec[i] = rawText(c.Raw)
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// rawText writes a raw value for CSV: integers without exponent, NULL empty.
func rawText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []string:
		return strings.Join(x, ",") // one cell: the writer quotes it
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64) // never an exponent
	case json.Number:
		if f, err := x.Float64(); err == nil && strings.ContainsAny(string(x), "eE") {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	return fmt.Sprint(v)
}

func raws(row []Cell) []any {
	out := make([]any, len(row))
	for i, c := range row {
		out[i] = c.Raw
	}
	return out
}

// renderJSON writes t as one JSON document, each line after the first
// indented by prefix (an array's item).
func renderJSON(w io.Writer, t *Table, prefix string) error {
	rows := make([][]any, len(t.Rows))
	for i, r := range t.Rows {
		rows[i] = raws(r)
	}
	doc := struct {
		Statement string         `json:"statement,omitempty"`
		Columns   []Column       `json:"columns"`
		Rows      [][]any        `json:"rows"`
		Meta      map[string]any `json:"meta,omitempty"`
	}{t.Statement, t.Columns, rows, t.Meta}
	if prefix != "" {
		if _, err := io.WriteString(w, prefix); err != nil {
			return err
		}
	}
	enc := answer.NewEncoder(w)
	enc.SetIndent(prefix, "  ")
	return enc.Encode(doc)
}

// objectKeys are the columns' names as object keys: a name that repeats
// (SELECT node, node) gets _2, _3 ... so that no value is lost.
func objectKeys(cols []Column) []string {
	seen := map[string]int{}
	keys := make([]string, len(cols))
	for i, c := range cols {
		seen[c.Name]++
		keys[i] = c.Name
		if n := seen[c.Name]; n > 1 {
			keys[i] = fmt.Sprintf("%s_%d", c.Name, n)
		}
	}
	return keys
}

func renderNDJSON(w io.Writer, t *Table) error {
	enc := answer.NewEncoder(w)
	keys := objectKeys(t.Columns)
	var b bytes.Buffer
	for _, r := range t.Rows {
		// An object with its keys in the columns' order (a map would
		// sort them).
		b.Reset()
		b.WriteByte('{')
		for i, c := range r {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := answer.Marshal(keys[i])
			v, err := answer.Marshal(c.Raw)
			if err != nil {
				return err
			}
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteString("}\n")
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
	}
	meta := map[string]any{"statement": t.Statement, "rows": len(t.Rows)}
	for k, v := range t.Meta {
		meta[k] = v
	}
	return enc.Encode(map[string]any{"_meta": meta})
}
