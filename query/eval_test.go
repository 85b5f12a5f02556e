package query

import (
	"testing"
)

var rec = Record{
	"node":      Str("home-7"),
	"region":    Str("eu"),
	"mem_free":  Num(KindBytes, 6e9),
	"mem_total": Num(KindBytes, 16e9),
	"cpu_cores": Num(KindCount, 8),
	"cpu_load":  Num(KindRatio, 0.25),
	"uptime":    Num(KindDuration, 7200),
	"reserved":  Bool(false),
	// zone is missing: NULL.
}

func evalSrc(t *testing.T, expr string) Value {
	t.Helper()
	p := compile(t, "SELECT "+expr+" FROM peers")
	return Eval(p.Columns[0].Expr, rec)
}

func TestEval(t *testing.T) {
	T, F := Bool(true), Bool(false)
	for _, tc := range []struct {
		expr string
		want Value
	}{
		{"mem_free >= 4GB", T},
		{"mem_free >= 4GiB AND mem_free < 8GiB", T},
		{"region IN ('eu', 'us')", T},
		{"region NOT IN ('us')", T},
		{"uptime BETWEEN 1h AND 2h", T},
		{"uptime NOT BETWEEN 1h AND 2h", F},
		{"node LIKE 'home-%'", T},
		{"node LIKE 'home-_'", T},
		{"node LIKE 'home'", F},
		{"node LIKE '%7'", T},
		{"node LIKE '%o%e%'", T},
		{"node NOT LIKE 'x%'", T},
		{"mem_free / mem_total", Num(KindNumber, 0.375)},
		{"mem_free - 1GB", Num(KindBytes, 5e9)},
		{"cpu_cores * 2 + 1", Num(KindCount, 17)},
		{"cpu_cores % 3", Num(KindCount, 2)},
		{"-cpu_load", Num(KindRatio, -0.25)},
		{"cpu_load = 25%", T},
		{"upper(region)", Str("EU")},
		{"lower('AbC')", Str("abc")},
		{"length(node)", Num(KindCount, 6)},
		{"round(2.5)", Num(KindNumber, 3)},
		{"floor(-1.5)", Num(KindNumber, -2)},
		{"ceil(1.2)", Num(KindNumber, 2)},
		{"abs(-3)", Num(KindNumber, 3)},
		{"TAG('region')", Str("eu")},
		{"TAG('rack')", Null},
		// NULL: a missing tag.
		{"zone", Null},
		{"zone = 'a'", Null},
		{"zone != 'a'", Null},
		{"zone IS NULL", T},
		{"zone IS NOT NULL", F},
		{"NOT (zone = 'a')", Null},
		{"zone = 'a' AND FALSE", F},
		{"zone = 'a' AND TRUE", Null},
		{"zone = 'a' OR TRUE", T},
		{"zone = 'a' OR FALSE", Null},
		{"region IN ('us', NULL)", Null},
		{"region IN ('eu', NULL)", T},
		{"zone IN ('eu')", Null},
		{"coalesce(zone, region)", Str("eu")},
		{"coalesce(zone, TAG('rack'))", Null},
		{"cpu_cores + NULL", Null},
		{"upper(zone)", Null},
		// Division by zero is NULL, not an error.
		{"cpu_cores / 0", Null},
		{"cpu_cores % 0", Null},
	} {
		if got := evalSrc(t, tc.expr); got != tc.want {
			t.Errorf("%s = %#v, want %#v", tc.expr, got, tc.want)
		}
	}
}

func TestFilterNullIsFalse(t *testing.T) {
	p := compile(t, "SELECT node FROM peers WHERE zone = 'a' OR zone != 'a'")
	if p.Matches(rec) {
		t.Error("a NULL filter must not keep the peer")
	}
	p = compile(t, "SELECT node FROM peers WHERE zone IS NULL AND mem_free >= 4GB")
	if !p.Matches(rec) {
		t.Error("filter should keep the peer")
	}
}

func TestProjectAndOrder(t *testing.T) {
	p := compile(t, "SELECT node, mem_free / 1GB AS gb FROM peers ORDER BY cpu_load DESC, zone")
	row := p.Project(rec)
	if row[0] != Str("home-7") || row[1] != Num(KindNumber, 6) {
		t.Errorf("Project = %v", row)
	}
	a := p.OrderValues(rec)
	b := p.OrderValues(Record{"cpu_load": Num(KindRatio, 0.5)})
	c := p.OrderValues(Record{})
	if p.CompareKeys(b, a) >= 0 || p.CompareKeys(a, b) <= 0 {
		t.Error("DESC: higher load first")
	}
	if p.CompareKeys(a, c) >= 0 || p.CompareKeys(c, a) <= 0 {
		t.Error("NULLs sort last even in DESC")
	}
	if p.CompareKeys(a, a) != 0 {
		t.Error("equal keys")
	}
}

func TestEvalRow(t *testing.T) {
	p := compile(t, "SELECT region, SUM(mem_free) / COUNT(*) AS avg_free FROM peers GROUP BY region")
	keys := []Value{Str("eu")}
	aggs := []Value{Num(KindBytes, 10e9), Num(KindCount, 4)}
	if got := EvalRow(p.Columns[0].Expr, keys, aggs); got != Str("eu") {
		t.Errorf("key column = %v", got)
	}
	if got := EvalRow(p.Columns[1].Expr, keys, aggs); got != Num(KindBytes, 2.5e9) {
		t.Errorf("computed column = %v", got)
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		v    Value
		want string
	}{
		{Num(KindBytes, 4<<30), "4.0 GiB"}, {Num(KindBytes, 512), "512 B"}, {Num(KindBytes, 1536), "1.5 KiB"},
		{Num(KindDuration, 7980), "2h13m"}, {Num(KindDuration, 7200), "2h"}, {Num(KindDuration, 1.5), "1.5s"},
		{Num(KindDuration, 0.25), "250ms"}, {Num(KindDuration, 90061), "1d1h"}, {Num(KindDuration, 2710), "45m10s"},
		{Num(KindRatio, 0.975), "97.5%"}, {Num(KindCount, 8), "8"}, {Num(KindNumber, 0.125), "0.125"},
		{Null, "NULL"}, {Bool(true), "true"}, {Str("eu"), "eu"},
	} {
		if got := c.v.String(); got != c.want {
			t.Errorf("%#v prints %q, want %q", c.v, got, c.want)
		}
	}
}

func TestExpectedRounds(t *testing.T) {
	// The table's own points, and monotonic growth with N.
	for i, n := range []int{1000, 10000, 100000, 1000000} {
		if got, want := ExpectedRounds(PlanAggregate, n, 0.01), int(roundsAggregate1pct[i]); got != want {
			t.Errorf("aggregate N=%d: %d rounds, want %d", n, got, want)
		}
	}
	if ExpectedRounds(PlanTopK, 1000000, 0.01) != 17 {
		t.Error("top-k at 10^6 should be 17")
	}
	prev := 0
	for n := 2; n < 10_000_000; n *= 3 {
		r := ExpectedRounds(PlanTopK, n, 0.01)
		if r < prev {
			t.Errorf("rounds fell from %d to %d at N=%d", prev, r, n)
		}
		prev = r
	}
	if ExpectedRounds(PlanAggregate, 10000, 0.001) <= ExpectedRounds(PlanAggregate, 10000, 0.01) {
		t.Error("a tighter accuracy must need more rounds")
	}
}
