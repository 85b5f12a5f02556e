package shell

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/peerq/peerq/answer"
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

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./shell -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// The renderers against golden files: text left and numbers right in a
// table (lists are text), a long list cut, EXPLAIN as plain text; raw values without
// exponents in CSV; lists as arrays in JSON; no HTML escaping (>= as
// written); NDJSON keys in the columns' order, a repeated name kept;
// answers separated in tables and CSV.
func TestRenderGolden(t *testing.T) {
	var members []string
	for i := range 12 {
		members = append(members, fmt.Sprintf("peer-%02d", i))
	}
	tbl := &Table{
		Statement: "SELECT node, mem_free, load, AVG(x), node, members FROM peers WHERE mem_free >= 4GB",
		Columns:   []Column{{"node", "string"}, {"mem_free", "bytes"}, {"load", "ratio"}, {"big", "number"}, {"node", "string"}, {"members", "list"}},
		Rows: [][]Cell{
			{{"peer-1", "peer-1"}, {"4.0 GiB", int64(4 << 30)}, {"25%", 0.25}, {"1.2e+21", 1.2e21}, {"a<b&c", "a<b&c"}, {strings.Join(members, ", "), members}},
			{{"a-much-longer-name", "a-much-longer-name"}, {"NULL", nil}, {"97.5%", 0.975}, {"0.5", 0.5}, {"x", "x"}, {"peer-07", []string{"peer-07"}}},
			{{"c", "c"}, {"NULL", nil}, {"NULL", nil}, {"NULL", nil}, {"y", "y"}, {"", []string{}}},
		},
		Meta:   map[string]any{"peers": 2, "rounds": 7},
		Footer: "3 row(s) · 2 peers",
	}
	explain := TableOf(&answer.Answer{Explain: "protocol: flow updating\n  rounds: 23\n"})
	for _, f := range []Format{FormatTable, FormatCSV, FormatJSON, FormatNDJSON} {
		var b bytes.Buffer
		for i, tb := range []*Table{tbl, explain} {
			if i > 0 && f.separated() {
				b.WriteString("\n")
			}
			if err := Render(&b, f, tb); err != nil {
				t.Fatal(err)
			}
		}
		golden(t, "render."+f.String(), b.String())
	}
}

// An answer of tags alone in a cloud of pools says in JSON which pools
// answered and how many of their gateways agreed, as one by gossip does
// and as the table's footer says. Mutation: pools kept for gossip
// answers alone, as they were, leaves "pools" out of the first.
func TestPoolsInJSON(t *testing.T) {
	pools := []answer.PoolStatus{{Pool: "a", Status: answer.StatusExact, Peers: 4, Gateways: 3, Agreeing: 2}, {Pool: "b", Status: answer.StatusExact, Peers: 4, Gateways: 3, Agreeing: 3}}
	for _, fromTags := range []bool{true, false} {
		a := &answer.Answer{Columns: []answer.Column{{Name: "count", Kind: answer.KindNumber}}, Rows: [][]answer.Value{{answer.Num(answer.KindNumber, 8)}},
			Meta: &answer.Meta{Status: answer.StatusExact, Peers: 8, Converged: true, FromTags: fromTags, Pools: pools}}
		var b strings.Builder
		Render(&b, FormatJSON, TableOf(a))
		var doc struct {
			Meta struct {
				Pools []answer.PoolStatus `json:"pools"`
			}
		}
		if err := json.Unmarshal([]byte(b.String()), &doc); err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(doc.Meta.Pools, pools, func(x, y answer.PoolStatus) bool {
			return x.Pool == y.Pool && x.Agreeing == y.Agreeing && x.Gateways == y.Gateways
		}) {
			t.Errorf("from tags %v: meta.pools %+v, want %+v", fromTags, doc.Meta.Pools, pools)
		}
		if footer := Footer(1, a.Meta); !strings.Contains(footer, "2 of 2 pools") {
			t.Errorf("from tags %v: footer %q", fromTags, footer)
		}
	}
}
