package shell

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var sample = &Table{
	Statement: "SELECT node, mem_free FROM peers",
	Columns:   []Column{{"node", "string"}, {"mem_free", "bytes"}, {"load", "ratio"}},
	Rows: [][]Cell{
		{{"peer-1", "peer-1"}, {"4.0 GiB", int64(4 << 30)}, {"25%", 0.25}},
		{{"peer-2", "peer-2"}, {"NULL", nil}, {"97.5%", 0.975}},
	},
	Meta:   map[string]any{"peers": 2, "rounds": 7},
	Footer: "2 row(s) · 2 peers",
}

func TestRenderFormats(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, FormatTable, sample); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node", "mem_free", "4.0 GiB", "97.5%", "2 row(s) · 2 peers"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}

	b.Reset()
	Render(&b, FormatCSV, sample)
	if got, want := b.String(), "node,mem_free,load\npeer-1,4294967296,0.25\npeer-2,,0.975\n"; got != want {
		t.Errorf("csv:\n%q\nwant\n%q", got, want)
	}

	b.Reset()
	Render(&b, FormatJSON, sample)
	var doc struct {
		Statement string
		Columns   []Column
		Rows      [][]any
		Meta      map[string]any
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, b.String())
	}
	if doc.Rows[0][1].(float64) != 4<<30 || doc.Rows[1][1] != nil || doc.Meta["rounds"].(float64) != 7 || doc.Columns[1].Kind != "bytes" {
		t.Errorf("json document %+v", doc)
	}

	b.Reset()
	Render(&b, FormatNDJSON, sample)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"mem_free":4294967296`) || !strings.Contains(lines[2], `"_meta"`) {
		t.Errorf("ndjson:\n%s", b.String())
	}
}

func TestFormatFlag(t *testing.T) {
	var f Format
	for _, s := range []string{"table", "CSV", "json", "ndjson"} {
		if err := f.Set(s); err != nil || !strings.EqualFold(f.String(), s) {
			t.Errorf("Set(%q): %v %v", s, f, err)
		}
	}
	if err := f.Set("xml"); err == nil {
		t.Error("xml accepted")
	}
}
