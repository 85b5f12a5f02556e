package query

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/peerq/peerq/parser"
)

func compile(t testing.TB, src string) *Plan {
	t.Helper()
	p, err := CompileText(src, DefaultCatalog(), DefaultConfig())
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return p
}

// The statements of DESIGN.md §1, with what their plans must say.
func TestCompileDesignStatements(t *testing.T) {
	for _, tc := range []struct {
		src      string
		kind     PlanKind
		k        int
		fromTags bool
		columns  []string
		comps    []CompKind
	}{
		{"SELECT node, mem_free, reliability FROM peers WHERE mem_free >= 4GB AND region IN ('eu', 'us') ORDER BY reliability DESC LIMIT 50",
			PlanTopK, 50, false, []string{"node", "mem_free", "reliability"}, nil},
		{"SELECT node, mem_free FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC LIMIT 50",
			PlanTopK, 50, false, []string{"node", "mem_free"}, nil},
		{"SELECT COUNT(*), AVG(cpu_load), SUM(disk_free), MIN(reliability), MAX(mem_free) FROM peers WHERE arch = 'arm64'",
			PlanAggregate, 0, false, []string{"COUNT(*)", "AVG(cpu_load)", "SUM(disk_free)", "MIN(reliability)", "MAX(mem_free)"},
			[]CompKind{CompCount, CompSum, CompCount, CompSum, CompCount, CompMin, CompMax}},
		{"SELECT region, COUNT(*), PERCENTILE(mem_free, 0.9) FROM peers GROUP BY region",
			PlanAggregate, 0, false, []string{"region", "COUNT(*)", "PERCENTILE(mem_free, 0.9)"},
			[]CompKind{CompCount, CompQuantile}},
		{"SELECT region, COUNT(*), AVG(cpu_load) FROM peers GROUP BY region",
			PlanAggregate, 0, false, []string{"region", "COUNT(*)", "AVG(cpu_load)"}, []CompKind{CompCount, CompSum, CompCount}},
		{"RESERVE 50 FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC AS analytics FOR 2h",
			PlanReserve, 75, false, []string{"node"}, nil},
		{"SELECT node, cpu_load FROM SUBCLOUD analytics ORDER BY cpu_load DESC LIMIT 5",
			PlanTopK, 5, false, []string{"node", "cpu_load"}, nil},
		{"SHOW SUBCLOUDS", PlanLocal, 0, false, nil, nil},
		{"SHOW ATTRIBUTES", PlanLocal, 0, false, nil, nil},
		{"RELEASE analytics", PlanLocal, 0, false, nil, nil},
		// Answered from tags alone.
		{"SELECT COUNT(*) FROM peers WHERE region = 'eu'", PlanAggregate, 0, true, []string{"COUNT(*)"}, []CompKind{CompCount}},
		{"SELECT node FROM peers WHERE zone = 'a' AND NOT reserved", PlanTopK, 1000, true, []string{"node"}, nil},
		{"SELECT region, COUNT(DISTINCT zone) FROM peers GROUP BY region", PlanAggregate, 0, true,
			[]string{"region", "COUNT(DISTINCT zone)"}, []CompKind{CompCount, CompDistinct}},
		// Everything else in the aggregate family.
		{"SELECT STDDEV(cpu_load), VARIANCE(cpu_load), MEDIAN(uptime), COUNT(mem_free) FROM peers", PlanAggregate, 0, false,
			[]string{"STDDEV(cpu_load)", "VARIANCE(cpu_load)", "MEDIAN(uptime)", "COUNT(mem_free)"},
			[]CompKind{CompCount, CompSum, CompSumSq, CompCount, CompQuantile, CompCount}},
		{"SELECT AVG(cpu_load) TRIM 1%, MEDIAN(cpu_load) FROM peers", PlanAggregate, 0, false,
			[]string{"AVG(cpu_load) TRIM 1%", "MEDIAN(cpu_load)"}, []CompKind{CompCount, CompQuantile}},
		{"SELECT SUM(mem_free) / COUNT(*) AS per_peer FROM peers", PlanAggregate, 0, false,
			[]string{"per_peer"}, []CompKind{CompCount, CompSum, CompCount}},
		{"SELECT * FROM peers LIMIT 3", PlanTopK, 3, false, DefaultCatalog().Names(), nil},
		{"SELECT region FROM peers GROUP BY region", PlanAggregate, 0, true, []string{"region"}, []CompKind{CompCount}},
	} {
		p := compile(t, tc.src)
		if p.Kind != tc.kind || p.K != tc.k || p.FromTags != tc.fromTags {
			t.Errorf("%s:\n kind %v k %d fromTags %v; want %v %d %v", tc.src, p.Kind, p.K, p.FromTags, tc.kind, tc.k, tc.fromTags)
		}
		var cols []string
		for _, c := range p.Columns {
			cols = append(cols, c.Name)
		}
		if !reflect.DeepEqual(cols, tc.columns) {
			t.Errorf("%s:\n columns %q, want %q", tc.src, cols, tc.columns)
		}
		var comps []CompKind
		for _, c := range p.Components {
			comps = append(comps, c.Kind)
		}
		if !reflect.DeepEqual(comps, tc.comps) {
			t.Errorf("%s:\n components %v, want %v", tc.src, comps, tc.comps)
		}
		if out := Explain(p, 1000); !strings.Contains(out, "plan:") {
			t.Errorf("%s: EXPLAIN gave %q", tc.src, out)
		}
	}
}

func TestCompileDetails(t *testing.T) {
	p := compile(t, "RESERVE 10 AS batch WITH AT LEAST 8, KEY 'job-1'")
	if r := p.Reserve; r.N != 10 || r.AtLeast != 8 || r.Key != "job-1" || r.LeaseSeconds != 3600 || r.Name != "batch" {
		t.Errorf("reserve spec %+v", *r)
	}
	if p.K != 15 || p.Order[0].Expr.Name != "reliability" || !p.Order[0].Desc {
		t.Errorf("reserve without ORDER BY: k %d order %v", p.K, p.Order[0].Expr)
	}
	if !p.Matches(Record{"reserved": Bool(false)}) || p.Matches(Record{"reserved": Bool(true)}) || p.Matches(Record{}) {
		t.Error("reserve filter must keep exactly the free peers")
	}

	p = compile(t, "SELECT COUNT(*) FROM peers WITH ROUNDS 30, TIMEOUT 10s, ACCURACY 0.5%")
	if p.Rounds != 30 || p.TimeoutSeconds != 10 || p.Accuracy != 0.005 || p.RoundBudget(1000) != 30 {
		t.Errorf("options: rounds %d timeout %v accuracy %v", p.Rounds, p.TimeoutSeconds, p.Accuracy)
	}

	p = compile(t, "SELECT node, mem_free AS m FROM peers ORDER BY m DESC, 1")
	if p.Order[0].Expr.Name != "mem_free" || !p.Order[0].Desc || p.Order[1].Expr.Name != "node" {
		t.Errorf("ORDER BY alias and position: %v %v", p.Order[0].Expr, p.Order[1].Expr)
	}
	if p.Limited || p.K != DefaultConfig().MaxRows {
		t.Errorf("no LIMIT: k %d limited %v", p.K, p.Limited)
	}

	p = compile(t, "SELECT region, COUNT(*) AS n FROM peers GROUP BY region ORDER BY n DESC LIMIT 3")
	if p.Order[0].Expr.Op != OpAggRef || p.K != 3 || p.Columns[0].Expr.Op != OpKeyRef {
		t.Errorf("grouped ORDER BY: %v, k %d", p.Order[0].Expr, p.K)
	}

	p = compile(t, "SELECT node FROM SUBCLOUD analytics")
	if p.Subcloud != "analytics" || !p.Matches(Record{"subcloud": Str("analytics")}) || p.Matches(Record{"subcloud": Str("other")}) {
		t.Errorf("FROM SUBCLOUD filter %v", p.Filter)
	}

	// The same aggregate twice is one aggregate; AVG and SUM share a sum.
	p = compile(t, "SELECT AVG(cpu_load), AVG(cpu_load) * 2, SUM(cpu_load) FROM peers")
	if len(p.Aggs) != 2 || len(p.Components) != 3 {
		t.Errorf("dedup: %d aggs, %d components", len(p.Aggs), len(p.Components))
	}

	// Kinds of results.
	for src, want := range map[string]Kind{
		"SELECT mem_free / 1GiB FROM peers":           KindNumber,
		"SELECT mem_free * 2 FROM peers":              KindBytes,
		"SELECT mem_free - 1GB FROM peers":            KindBytes,
		"SELECT uptime + 1h FROM peers":               KindDuration,
		"SELECT mem_free / cpu_cores FROM peers":      KindBytes,
		"SELECT cpu_cores + 1 FROM peers":             KindCount,
		"SELECT -rtt FROM peers":                      KindDuration,
		"SELECT coalesce(zone, region) FROM peers":    KindString,
		"SELECT length(node) FROM peers":              KindCount,
		"SELECT TAG('rack') FROM peers":               KindString,
		"SELECT SUM(cpu_load) FROM peers":             KindNumber,
		"SELECT AVG(cpu_cores) FROM peers":            KindNumber,
		"SELECT MIN(node) FROM peers":                 KindString,
		"SELECT VARIANCE(mem_free) FROM peers":        KindNumber,
		"SELECT STDDEV(mem_free) FROM peers":          KindBytes,
		"SELECT PERCENTILE(rtt, 95%) FROM peers":      KindDuration,
		"SELECT AVG(rtt) TRIM 5% FROM peers":          KindDuration,
		"SELECT AVG(cpu_cores) TRIM 5% FROM peers":    KindNumber,
		"SELECT abs(mem_free - mem_total) FROM peers": KindBytes,
	} {
		if got := compile(t, src).Columns[0].Kind; got != want {
			t.Errorf("%s: kind %v, want %v", src, got, want)
		}
	}
}

// Every type error, pinned word for word, pointing at its column.
func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"SELECT node FROM peers WHERE mem_fre > 4GB", `1:30: unknown attribute "mem_fre" (did you mean mem_free?)`},
		{"SELECT reigon FROM peers", `1:8: unknown attribute "reigon" (did you mean region?)`},
		{"SELECT xyzzy FROM peers", `1:8: unknown attribute "xyzzy"`},
		{"SELECT node FROM peers WHERE mem_free > 2h", `1:39: cannot compare bytes with duration`},
		{"SELECT node FROM peers WHERE region = 5", `1:37: cannot compare string with number`},
		{"SELECT node FROM peers WHERE cpu_cores > 4GB", `1:40: cannot compare count with bytes`},
		{"SELECT node FROM peers WHERE region IN ('eu', 3)", `1:47: cannot compare string with number`},
		{"SELECT node FROM peers WHERE uptime BETWEEN 1h AND 4GB", `1:52: cannot compare duration with bytes`},
		{"SELECT node FROM peers WHERE node LIKE 5", `1:35: LIKE needs strings, found number`},
		{"SELECT mem_free + uptime FROM peers", `1:17: cannot add bytes and duration`},
		{"SELECT mem_free * mem_total FROM peers", `1:17: cannot multiply bytes by bytes`},
		{"SELECT 5 / mem_free FROM peers", `1:10: cannot divide number by bytes`},
		{"SELECT node + 1 FROM peers", `1:13: + needs numbers, found string`},
		{"SELECT -node FROM peers", `1:8: unary minus needs a number, found string`},
		{"SELECT node FROM peers WHERE NOT mem_free", `1:30: NOT needs a condition, found bytes`},
		{"SELECT node FROM peers WHERE mem_free AND reserved", `1:30: AND needs conditions on both sides, found bytes on the left`},
		{"SELECT node FROM peers WHERE mem_free", `1:30: WHERE needs a condition, found bytes`},
		{"SELECT node FROM peers WHERE COUNT(*) > 5", `1:30: aggregate COUNT is not allowed in WHERE`},
		{"SELECT node, COUNT(*) FROM peers", `1:8: column node must appear in GROUP BY or inside an aggregate`},
		{"SELECT region, node, COUNT(*) FROM peers GROUP BY region", `1:16: column node must appear in GROUP BY or inside an aggregate`},
		{"SELECT COUNT(*) FROM peers GROUP BY COUNT(*)", `1:37: aggregates are not allowed in GROUP BY`},
		{"SELECT SUM(AVG(cpu_load)) FROM peers", `1:12: aggregate AVG cannot be nested inside SUM`},
		{"SELECT SUM(*) FROM peers", `1:8: * is only allowed in COUNT(*), not in SUM`},
		{"SELECT SUM(DISTINCT mem_free) FROM peers", `1:8: DISTINCT is only supported in COUNT(DISTINCT x), not in SUM`},
		{"SELECT AVG(region) FROM peers", `1:12: AVG needs a number, found string`},
		{"SELECT MAX(reserved) FROM peers", `1:12: MAX needs a number or a string, found bool`},
		{"SELECT PERCENTILE(mem_free) FROM peers", `1:8: PERCENTILE takes 2 arguments (expression, fraction), found 1`},
		{"SELECT PERCENTILE(mem_free, 1.5) FROM peers", `1:29: PERCENTILE fraction must be between 0 and 1, found 1.5`},
		{"SELECT PERCENTILE(mem_free, cpu_load) FROM peers", `1:29: PERCENTILE needs a constant fraction such as 0.9 or 90%`},
		{"SELECT COUNT(a, b) FROM peers", `1:8: COUNT takes * or 1 argument, found 2`},
		{"SELECT SUM(mem_free) TRIM 1% FROM peers", `1:27: TRIM applies only to AVG, not to SUM`},
		{"SELECT abs(cpu_load) TRIM 1% FROM peers", `1:27: TRIM applies only to AVG, not to ABS`},
		{"SELECT AVG(cpu_load) TRIM 50% FROM peers", `1:27: TRIM share must be above 0 and below 50%, found 50%`},
		{"SELECT AVG(cpu_load) TRIM 0 FROM peers", `1:27: TRIM share must be above 0 and below 50%, found 0`},
		{"SELECT AVG(cpu_load) TRIM 1GB FROM peers", `1:27: TRIM needs a constant share such as 1% or 0.01, found 1GB`},
		{"SELECT flor(cpu_load) FROM peers", `1:8: unknown function flor (did you mean FLOOR?)`},
		{"SELECT lower(mem_free) FROM peers", `1:14: LOWER needs a string, found bytes`},
		{"SELECT abs(1, 2) FROM peers", `1:8: ABS takes 1 argument, found 2`},
		{"SELECT TAG(region) FROM peers", `1:12: TAG needs a tag name in quotes, such as TAG('rack')`},
		{"SELECT * , COUNT(*) FROM peers", `1:8: * cannot be used with GROUP BY or aggregates`},
		{"SELECT node FROM peers LIMIT 2.5", `1:30: LIMIT needs a whole number, found 2.5`},
		{"SELECT node FROM peers LIMIT 4GB", `1:30: LIMIT needs a whole number, found 4GB`},
		{"SELECT node FROM peers LIMIT 100000", `1:30: LIMIT 100000 is above the limit of 2000`},
		{"SELECT node FROM peers ORDER BY 3", `1:33: ORDER BY position 3 is not in the select list (1..1)`},
		{"SELECT node FROM peers ORDER BY NULL", `1:33: ORDER BY NULL orders nothing`},
		{"RESERVE 0 AS x", `1:9: RESERVE must be at least 1, found 0`},
		{"RESERVE 5 AS x FOR 5", `1:20: FOR needs a duration such as 2h, found 5`},
		{"RESERVE 5 AS x FOR 1s", `1:20: lease 1s is outside 10s..30d`},
		{"ALTER SUBCLOUD x RESIZE TO 0", `1:28: RESIZE TO must be at least 1, found 0`},
		{"ALTER SUBCLOUD x RESIZE TO 2.5", `1:28: RESIZE TO needs a whole number, found 2.5`},
		{"ALTER SUBCLOUD x RESIZE TO 5000", `1:28: RESIZE TO 5000 is above the limit of 1000`},
		{"ALTER SUBCLOUD x EXTEND FOR 31d", `1:29: lease 31d is outside 10s..30d`},
		{"ALTER SUBCLOUD x EXTEND FOR 3", `1:29: EXTEND FOR needs a duration such as 2h, found 3`},
		{"RESERVE 5 FROM SUBCLOUD a AS x", `1:16: RESERVE FROM SUBCLOUD is not possible: a peer holds one lease at a time, and the members of a hold theirs`},
		{"RESERVE 5 AS x WITH AT LEAST 6", `1:30: AT LEAST 6 is more than the 5 peers reserved`},
		{"SELECT node FROM peers WITH AT LEAST 2", `1:29: AT LEAST applies only to RESERVE`},
		{"SELECT node FROM peers WITH KEY 'k'", `1:29: KEY applies only to RESERVE`},
		{"SELECT node FROM peers WITH ROUNDS 0", `1:36: ROUNDS must be at least 1, found 0`},
		{"SELECT node FROM peers WITH ROUNDS 5, ROUNDS 6", `1:39: option ROUNDS is given twice`},
		{"SELECT node FROM peers WITH TIMEOUT 5", `1:37: TIMEOUT needs a positive duration such as 10s, found 5`},
		{"SELECT node FROM peers WITH ACCURACY 2", `1:38: ACCURACY needs a relative error between 0 and 1 such as 1% or 0.01, found 2`},
		{"SELECT node FROM peers WHERE " + strings.Repeat("cpu_cores + ", 130) + "1 > 0", `1:64: expression is nested more than 128 deep`},
	} {
		stmt, err := parser.ParseOne(tc.src)
		if err != nil {
			t.Errorf("%s: parse: %v", tc.src, err)
			continue
		}
		_, err = Compile(stmt, DefaultCatalog(), DefaultConfig())
		if err == nil {
			t.Errorf("%s: no error, want %s", tc.src, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.src, err, tc.want)
		}
		if _, ok := err.(*parser.Error); !ok {
			t.Errorf("%s: error is %T, want *parser.Error", tc.src, err)
		}
	}
}

func TestCatalogTags(t *testing.T) {
	cat := DefaultCatalog().WithTags("rack", "node", "peerq_port")
	if a, ok := cat.Lookup("rack"); !ok || a.Kind != KindString || a.Origin != OriginTag {
		t.Errorf("rack: %+v %v", a, ok)
	}
	if a, _ := cat.Lookup("node"); a.Origin != OriginMember {
		t.Error("a tag must not shadow a built-in")
	}
	if _, ok := cat.Lookup("peerq_port"); ok {
		t.Error("peerq's own tags are not attributes")
	}
	if a, ok := cat.Lookup("MEM_FREE"); !ok || a.Name != "mem_free" {
		t.Error("case-insensitive lookup")
	}
	a, _ := cat.Lookup("reliability")
	for _, c := range []struct{ in, want Value }{
		{Num(KindRatio, 1.5), Num(KindRatio, 1)}, {Num(KindNumber, -1), Num(KindRatio, 0)},
		{Str("x"), Null}, {Num(KindRatio, 0.5), Num(KindRatio, 0.5)},
	} {
		if got := a.Clamp(c.in); got != c.want {
			t.Errorf("Clamp(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// FROM leases reads the ledger's catalog, by aggregates only, never from
// tags (its owner column is not the owner tag).
func TestCompileLeases(t *testing.T) {
	p, err := CompileText("SELECT owner, SUM(peer_hours) FROM leases WHERE started_ago <= 1d GROUP BY owner", DefaultCatalog(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if p.Table != TableLeases || p.Kind != PlanAggregate || p.FromTags {
		t.Errorf("table %v kind %v from tags %v", p.Table, p.Kind, p.FromTags)
	}
	if !strings.Contains(Explain(p, 100), "every peer contributes a row per lease") {
		t.Errorf("EXPLAIN:\n%s", Explain(p, 100))
	}
	for src, want := range map[string]string{
		"SELECT node FROM leases":                        "1:18: FROM leases answers aggregates",
		"SELECT COUNT(*) FROM leases WHERE mem_free > 1": "1:35: unknown attribute",
		"SELECT SUM(peer_hours) FROM peers":              "1:12: unknown attribute",
	} {
		if _, err := CompileText(src, DefaultCatalog(), DefaultConfig()); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want %s…", src, err, want)
		}
	}
}

func TestCompileWatch(t *testing.T) {
	p, err := CompileText("WATCH SELECT region, COUNT(*) FROM peers GROUP BY region EVERY 30s", DefaultCatalog(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if p.Watch == nil || p.Watch.EverySeconds != 30 || p.Kind != PlanAggregate || p.Epoch().Watch != nil || p.Watch == nil {
		t.Errorf("watch %+v kind %v", p.Watch, p.Kind)
	}
	if !strings.Contains(Explain(p, 10), "answered anew every 30s") {
		t.Errorf("EXPLAIN:\n%s", Explain(p, 10))
	}
	if d, _ := CompileText("WATCH SELECT COUNT(*) FROM peers", DefaultCatalog(), DefaultConfig()); d.Watch.EverySeconds != DefaultWatchSeconds {
		t.Errorf("default EVERY %v", d.Watch.EverySeconds)
	}
	for src, want := range map[string]string{
		"WATCH SELECT COUNT(*) FROM peers EVERY 10":   "1:40: EVERY needs a duration such as 10s, found 10",
		"WATCH SELECT COUNT(*) FROM peers EVERY 10ms": "1:40: EVERY 10ms is outside 1s..1d",
		"WATCH RESERVE 3 AS x":                        "1:7: unexpected",
	} {
		if _, err := CompileText(src, DefaultCatalog(), DefaultConfig()); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want %s…", src, err, want)
		}
	}
}

// LIMIT 0 compiles (SQL answers no rows) and is never sent to a peer.
func TestLimitZero(t *testing.T) {
	for _, src := range []string{"SELECT node FROM peers LIMIT 0", "SELECT region, COUNT(*) FROM peers GROUP BY region LIMIT 0"} {
		p, err := CompileText(src, DefaultCatalog(), DefaultConfig())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if !p.Empty() || !strings.Contains(Explain(p, 100), "LIMIT 0 has no rows") {
			t.Errorf("%s: Empty %v\n%s", src, p.Empty(), Explain(p, 100))
		}
		b, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: a peer decoded a LIMIT 0 plan", src)
		}
	}
}

// A SELECT without FROM computes constants: one row, answered by the
// asking peer; what needs a table names FROM.
func TestCompileConst(t *testing.T) {
	for _, tc := range []struct {
		src  string
		cols []string
		rows [][]string
	}{
		{"SELECT 1", []string{"1"}, [][]string{{"1"}}},
		{"SELECT 1 + 1 AS two", []string{"two"}, [][]string{{"2"}}},
		{"SELECT 'x', UPPER('ab') AS u, 2GiB AS size, 90s AS d", []string{"'x'", "u", "size", "d"}, [][]string{{"x", "AB", "2.0 GiB", "1m30s"}}},
		{"SELECT 1 / 0, NULL", []string{"1 / 0", "NULL"}, [][]string{{"NULL", "NULL"}}},
		{"SELECT 1 WHERE 1 > 2", []string{"1"}, nil},
		{"SELECT 1 WHERE TRUE LIMIT 5", []string{"1"}, [][]string{{"1"}}},
	} {
		p := compile(t, tc.src)
		if p.Kind != PlanLocal || p.Local == nil || !p.Local.Const {
			t.Fatalf("%s: plan %v %+v, want a local constant", tc.src, p.Kind, p.Local)
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(enc); err != nil {
			t.Errorf("%s: the plan does not decode: %v", tc.src, err)
		}
		ans := p.ConstAnswer()
		var cols []string
		for _, c := range ans.Columns {
			cols = append(cols, c.Name)
		}
		if !reflect.DeepEqual(cols, tc.cols) {
			t.Errorf("%s: columns %q, want %q", tc.src, cols, tc.cols)
		}
		if got := ans.Text(); !reflect.DeepEqual(got, tc.rows) && (len(got) > 0 || len(tc.rows) > 0) {
			t.Errorf("%s: rows %q, want %q", tc.src, got, tc.rows)
		}
		if !strings.Contains(Explain(p, 1), "constants") {
			t.Errorf("%s: EXPLAIN does not say it computes constants:\n%s", tc.src, Explain(p, 1))
		}
	}
	for _, tc := range []struct{ src, want string }{
		{"SELECT mem_free", "1:8: attribute mem_free needs FROM"},
		{"SELECT 1 + cpu_load AS x", "1:12: attribute cpu_load needs FROM"},
		{"SELECT COUNT(*)", "1:8: an aggregate needs FROM"},
		{"SELECT *", "1:8: SELECT * needs FROM"},
		{"SELECT 1 WHERE x = 1", "1:16: attribute x needs FROM"},
		{"SELECT 1 ORDER BY 1", "1:19: ORDER BY needs FROM"},
		{"SELECT 1 WITH ROUNDS 3", "1:15: WITH needs FROM"},
		{"WATCH SELECT 1", "1:7: WATCH needs FROM"},
		{"SELECT 1 + 'a'", "1:"},
	} {
		_, err := CompileText(tc.src, DefaultCatalog(), DefaultConfig())
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q…", tc.src, err, tc.want)
		}
	}
}

// An open catalog (a cloud of pools: Catalog.Open) reads a name it does
// not hold as a tag and lists it with the error a closed one gives, at
// its position; a closed one refuses it; neither opens peerq's own
// prefix, and a name the catalog holds in another case is no stranger.
func TestOpenCatalog(t *testing.T) {
	closed := DefaultCatalog().WithTags("rack")
	cases := []struct {
		text     string
		unlisted []string
		at       string // the closed catalog's error, or "" if it compiles
	}{
		{"SELECT COUNT(*) FROM peers WHERE gpu = 'a100'", []string{"gpu"}, "1:34: unknown attribute \"gpu\""},
		{"SELECT gpu, COUNT(*) FROM peers WHERE gpu <> 'x' AND rak = 'r1' GROUP BY gpu", []string{"gpu", "rak"}, "1:39: unknown attribute \"gpu\""},
		{"SELECT COUNT(*) FROM peers WHERE RACK = 'r1' AND MEM_FREE > 1GB", nil, ""},
		{"SELECT COUNT(*) FROM peers WHERE peerq_x = 'a'", nil, "1:34: unknown attribute \"peerq_x\""},
		{"SELECT COUNT(*) FROM leases WHERE gpu = 'a'", nil, "1:35: unknown attribute \"gpu\""},
	}
	for _, c := range cases {
		_, cerr := CompileText(c.text, closed, DefaultConfig())
		if c.at == "" && cerr != nil || c.at != "" && (cerr == nil || !strings.HasPrefix(cerr.Error(), c.at)) {
			t.Errorf("%s, closed: %v, want %q", c.text, cerr, c.at)
		}
		p, err := CompileText(c.text, closed.Open(), DefaultConfig())
		if len(c.unlisted) == 0 && c.at != "" {
			if err == nil || err.Error() != cerr.Error() {
				t.Errorf("%s, open: %v, want the closed catalog's %v", c.text, err, cerr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s, open: %v", c.text, err)
			continue
		}
		var names []string
		for _, u := range p.Unlisted {
			names = append(names, u.Name)
		}
		if !slices.Equal(names, c.unlisted) {
			t.Errorf("%s: unlisted %v, want %v", c.text, names, c.unlisted)
		}
		if len(p.Unlisted) > 0 && p.Unlisted[0].Err.Error() != cerr.Error() {
			t.Errorf("%s: the first unlisted's error %v, want the closed catalog's %v", c.text, p.Unlisted[0].Err, cerr)
		}
		for _, name := range c.unlisted {
			if !slices.Contains(p.Reads(), name) {
				t.Errorf("%s: Reads %v, without %s", c.text, p.Reads(), name)
			}
		}
	}
}
