package shell

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// RenderExpanded writes t a record at a time, as psql's expanded display
// (\x) does: a "-[ RECORD n ]-" line, then a line per column with its name
// and the value, so that wide rows stay readable. A list cell shows in
// full. An answer without rows says so; the footer follows, as under a
// table.
//
//	-[ RECORD 1 ]-------
//	node     | peer-000001
//	mem_free | 4.0 GiB
func RenderExpanded(w io.Writer, t *Table) error {
	if t.Plain != "" {
		_, err := io.WriteString(w, t.Plain)
		return err
	}
	name, value := 0, 0
	for _, c := range t.Columns {
		name = max(name, utf8.RuneCountInString(c.Name))
	}
	for _, row := range t.Rows {
		for _, c := range row {
			value = max(value, utf8.RuneCountInString(c.Text))
		}
	}
	var b strings.Builder
	if len(t.Rows) == 0 {
		b.WriteString("(0 rows)\n")
	}
	for i, row := range t.Rows {
		head := fmt.Sprintf("-[ RECORD %d ]", i+1)
		// The header reaches across the widest line, as psql's does.
		fill := max(name+3+value-utf8.RuneCountInString(head), 1)
		b.WriteString(head + strings.Repeat("-", fill) + "\n")
		for j, c := range t.Columns {
			text := ""
			if j < len(row) {
				text = row[j].Text
			}
			fmt.Fprintf(&b, "%-*s | %s\n", name, c.Name, text)
		}
	}
	if t.Footer != "" {
		b.WriteString(t.Footer + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
