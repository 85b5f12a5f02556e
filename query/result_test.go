package query

import (
	"bytes"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

func synthetic(n int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		rs[i] = Synthetic(1, i)
	}
	return rs
}

// The byte sort key orders records exactly as CompareKeys does.
func TestSortKeyOrder(t *testing.T) {
	p := compile(t, "SELECT node FROM peers ORDER BY region DESC, mem_free, zone DESC, reserved, cpu_load * -1")
	rs := synthetic(300)
	rs = append(rs, Record{"node": Str("x")}, Record{"node": Str("y"), "region": Str("eu\x00z")}, Record{"region": Str("eu")})
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 5000; i++ {
		a, b := rs[r.IntN(len(rs))], rs[r.IntN(len(rs))]
		want := p.CompareKeys(p.OrderValues(a), p.OrderValues(b))
		got := bytes.Compare(p.SortKey(a), p.SortKey(b))
		if sign(want) != sign(got) {
			t.Fatalf("order of\n%v\n%v\nCompareKeys %d, bytes %d", a, b, want, got)
		}
	}
	// Negative numbers, zero, and -0.
	q := compile(t, "SELECT node FROM peers ORDER BY -cpu_cores")
	vals := []float64{-5, -0.5, 0, math.Copysign(0, -1), 0.25, 7}
	var keys [][]byte
	for _, v := range vals {
		keys = append(keys, q.SortKey(Record{"cpu_cores": Num(KindCount, v)}))
	}
	if !sort.SliceIsSorted(keys, func(i, j int) bool { return bytes.Compare(keys[j], keys[i]) < 0 }) {
		t.Error("numbers do not sort by value")
	}
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func TestEncodeRow(t *testing.T) {
	row := []Value{Str("eu"), Num(KindBytes, 4e9), Null, Bool(true), Num(KindRatio, 0.5)}
	got, err := DecodeRow(EncodeRow(row))
	if err != nil || len(got) != len(row) {
		t.Fatal(err)
	}
	for i := range row {
		if got[i] != row[i] {
			t.Errorf("value %d: %v, want %v", i, got[i], row[i])
		}
	}
	if _, err := DecodeRow([]byte{0xff}); err == nil {
		t.Error("malformed row decoded")
	}
}

func TestExact(t *testing.T) {
	rs := []Record{
		{"node": Str("a"), "region": Str("eu"), "mem_free": Num(KindBytes, 1e9), "cpu_load": Num(KindRatio, 0.1)},
		{"node": Str("b"), "region": Str("eu"), "mem_free": Num(KindBytes, 3e9), "cpu_load": Num(KindRatio, 0.3)},
		{"node": Str("c"), "region": Str("us"), "mem_free": Num(KindBytes, 8e9)},
		{"node": Str("d"), "region": Str("us"), "mem_free": Num(KindBytes, 2e9), "cpu_load": Num(KindRatio, 0.5)},
		{"node": Str("e"), "mem_free": Num(KindBytes, 5e9), "cpu_load": Num(KindRatio, 0.9)},
	}
	res := Exact(compile(t, "SELECT region, COUNT(*), AVG(cpu_load), SUM(mem_free), MAX(node), MEDIAN(mem_free), STDDEV(cpu_load) AS s FROM peers GROUP BY region ORDER BY region"), rs)
	want := [][]Value{
		{Str("eu"), Num(KindCount, 2), Num(KindRatio, 0.2), Num(KindBytes, 4e9), Str("b"), Num(KindBytes, 1e9), Num(KindRatio, math.Sqrt(0.02))},
		{Str("us"), Num(KindCount, 2), Num(KindRatio, 0.5), Num(KindBytes, 10e9), Str("d"), Num(KindBytes, 2e9), Null},
		{Null, Num(KindCount, 1), Num(KindRatio, 0.9), Num(KindBytes, 5e9), Str("e"), Num(KindBytes, 5e9), Null},
	}
	if len(res.Rows) != len(want) {
		t.Fatalf("%d rows, want %d: %v", len(res.Rows), len(want), res.Rows)
	}
	for i := range want {
		for j := range want[i] {
			g, w := res.Rows[i][j], want[i][j]
			if g.Kind != w.Kind || g.Str != w.Str || math.Abs(g.Num-w.Num) > 1e-9*math.Abs(w.Num) {
				t.Errorf("row %d col %d (%s): %v, want %v", i, j, res.Columns[j].Name, g, w)
			}
		}
	}
	top := Exact(compile(t, "SELECT node FROM peers WHERE mem_free > 1GB ORDER BY cpu_load DESC LIMIT 3"), rs)
	if got := top.Nodes; len(got) != 3 || got[0] != "e" || got[1] != "d" || got[2] != "b" {
		t.Errorf("top-3 by load (NULL last): %v", got)
	}
	empty := Exact(compile(t, "SELECT COUNT(*), SUM(mem_free) FROM peers WHERE region = 'mars'"), rs)
	if len(empty.Rows) != 1 || empty.Rows[0][0] != Num(KindCount, 0) || !empty.Rows[0][1].IsNull() {
		t.Errorf("aggregate over no peers: %v", empty.Rows)
	}
}

func TestSynthetic(t *testing.T) {
	a, b := Synthetic(7, 42), Synthetic(7, 42)
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("Synthetic is not deterministic in %s", k)
		}
	}
	cat := DefaultCatalog()
	rs := synthetic(2000)
	classes := map[string]int{}
	for _, r := range rs {
		classes[r["class"].Str]++
		for name, v := range r {
			a, ok := cat.Lookup(name)
			if !ok {
				t.Fatalf("synthetic attribute %s is not in the catalog", name)
			}
			if got := a.Clamp(v); got != v {
				t.Fatalf("%s = %v is outside its range (clamps to %v)", name, v, got)
			}
		}
		if r["mem_free"].Num > r["mem_total"].Num {
			t.Fatal("mem_free above mem_total")
		}
	}
	if len(classes) != 4 {
		t.Errorf("classes %v", classes)
	}
	rec := Synthetic(1, 1)
	up := rec["uptime"].Num
	Drift(rec, rand.New(rand.NewPCG(1, 2)), 60)
	if rec["uptime"].Num != up+60 || rec["mem_free"].Num > rec["mem_total"].Num {
		t.Error("drift")
	}
}

func TestTrimmedMean(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		p    float64
		want float64
		ok   bool
	}{
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.1, 5.5, true},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.05, 5.5, true}, // 1 and 10 count half
		{[]float64{1, 2, 3, 4, 100}, 0.2, 3, true},                  // the outlier left out
		{[]float64{1, 2, 3, 4, 100}, 0.1, (0.5*1 + 2 + 3 + 4 + 0.5*100) / 4, true},
		{[]float64{7}, 0.25, 7, true},
		{nil, 0.1, 0, false},
	} {
		got, ok := TrimmedMean(c.xs, c.p)
		if ok != c.ok || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("TrimmedMean(%v, %v) = %v, %v; want %v, %v", c.xs, c.p, got, ok, c.want, c.ok)
		}
	}
}

// The columns that identify a row are marked Key: a grouped aggregate's
// GROUP BY keys (aliased or not, not mixed with an aggregate), a top-k's
// node; an ungrouped aggregate has none. The console charts a WATCH's
// series by them.
func TestAnswerColumnKeys(t *testing.T) {
	for _, c := range []struct {
		stmt string
		keys string // the key columns' names
	}{
		{"SELECT region, COUNT(*), AVG(cpu_load) FROM peers GROUP BY region", "region"},
		{"SELECT cpu_cores AS c, region, COUNT(*) FROM peers GROUP BY cpu_cores, region", "c,region"},
		{"SELECT COUNT(*), cpu_cores FROM peers GROUP BY cpu_cores", "cpu_cores"},
		{"SELECT COUNT(*) AS n, MAX(cpu_cores) FROM peers", ""},
		{"SELECT node, cpu_load FROM peers ORDER BY cpu_load DESC LIMIT 5", "node"},
		{"SELECT cpu_load FROM peers ORDER BY cpu_load DESC LIMIT 5", ""},
	} {
		p, err := CompileText(c.stmt, DefaultCatalog(), DefaultConfig())
		if err != nil {
			t.Fatalf("%s: %v", c.stmt, err)
		}
		var keys []string
		for _, col := range p.AnswerColumns() {
			if col.Key {
				keys = append(keys, col.Name)
			}
		}
		if got := strings.Join(keys, ","); got != c.keys {
			t.Errorf("%s: keys %q, want %q", c.stmt, got, c.keys)
		}
	}
}
