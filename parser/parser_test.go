package parser

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The statements of DESIGN.md §1 and every construct of the grammar, with the
// canonical text each prints as.
var validCases = []struct {
	in, want string
}{
	{"SELECT node, mem_free FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC LIMIT 50",
		"SELECT node, mem_free FROM peers WHERE (mem_free >= 4GB) ORDER BY reliability DESC LIMIT 50"},
	{"SELECT region, COUNT(*), AVG(cpu_load) FROM peers GROUP BY region",
		"SELECT region, COUNT(*), AVG(cpu_load) FROM peers GROUP BY region"},
	{"SELECT node, mem_free, reliability FROM peers\n  WHERE mem_free >= 4GB AND region IN ('eu', 'us') ORDER BY reliability DESC LIMIT 50;",
		"SELECT node, mem_free, reliability FROM peers WHERE ((mem_free >= 4GB) AND (region IN ('eu', 'us'))) ORDER BY reliability DESC LIMIT 50"},
	{"SELECT COUNT(*), AVG(cpu_load), SUM(disk_free), MIN(reliability), MAX(mem_free) FROM peers WHERE arch = 'arm64'",
		"SELECT COUNT(*), AVG(cpu_load), SUM(disk_free), MIN(reliability), MAX(mem_free) FROM peers WHERE (arch = 'arm64')"},
	{"SELECT region, COUNT(*), PERCENTILE(mem_free, 0.9) FROM peers GROUP BY region",
		"SELECT region, COUNT(*), PERCENTILE(mem_free, 0.9) FROM peers GROUP BY region"},
	{"select avg(cpu_load) trim 1%, AVG(mem_free) TRIM 0.05 as m from peers",
		"SELECT avg(cpu_load) TRIM 1%, AVG(mem_free) TRIM 0.05 AS m FROM peers"},
	{"RESERVE 50 FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC AS analytics FOR 2h",
		"RESERVE 50 FROM peers WHERE (mem_free >= 4GB) ORDER BY reliability DESC AS analytics FOR 2h"},
	{"SELECT node, cpu_load FROM SUBCLOUD analytics ORDER BY cpu_load DESC LIMIT 5",
		"SELECT node, cpu_load FROM SUBCLOUD analytics ORDER BY cpu_load DESC LIMIT 5"},
	{"SHOW SUBCLOUDS", "SHOW SUBCLOUDS"},
	{"show attributes", "SHOW ATTRIBUTES"},
	{"Show Members", "SHOW MEMBERS"},
	{"show events", "SHOW EVENTS"},
	{"RELEASE analytics", "RELEASE analytics"},
	{"select owner, SUM(peer_hours) from Leases group by owner", "SELECT owner, SUM(peer_hours) FROM leases GROUP BY owner"},
	{"reserve 20 as batch for 1h no repair with key 'j'", "RESERVE 20 AS batch FOR 1h NO REPAIR WITH KEY 'j'"},
	{"alter subcloud batch resize to 30", "ALTER SUBCLOUD batch RESIZE TO 30"},
	{"watch select region, COUNT(*) from peers group by region every 30s", "WATCH SELECT region, COUNT(*) FROM peers GROUP BY region EVERY 30s"},
	{"WATCH SELECT node FROM peers ORDER BY cpu_load DESC LIMIT 3 WITH ROUNDS 20", "WATCH SELECT node FROM peers ORDER BY cpu_load DESC LIMIT 3 WITH ROUNDS 20"},
	{"ALTER SUBCLOUD \"my batch\" EXTEND FOR 2h30m", "ALTER SUBCLOUD \"my batch\" EXTEND FOR 2h30m"},
	{"EXPLAIN ALTER SUBCLOUD x RESIZE TO 2", "EXPLAIN ALTER SUBCLOUD x RESIZE TO 2"},
	// The words of ALTER and NO REPAIR stay names elsewhere.
	{"SELECT repair, extend FROM peers WHERE no = 1", "SELECT repair, extend FROM peers WHERE (no = 1)"},
	{"EXPLAIN SELECT COUNT(*) FROM peers", "EXPLAIN SELECT COUNT(*) FROM peers"},
	{"explain reserve 3 as x", "EXPLAIN RESERVE 3 AS x"},
	// Keywords in any case; names keep theirs.
	{"select Node from PEERS where REGION = 'eu'", "SELECT Node FROM peers WHERE (REGION = 'eu')"},
	// Star, aliases, every aggregate.
	{"SELECT * FROM peers LIMIT 10", "SELECT * FROM peers LIMIT 10"},
	{"SELECT mem_free / 1GiB AS gib FROM peers", "SELECT (mem_free / 1GiB) AS gib FROM peers"},
	{"SELECT COUNT(cpu_load), COUNT(DISTINCT region), STDDEV(cpu_load), VARIANCE(cpu_load), MEDIAN(uptime) FROM peers",
		"SELECT COUNT(cpu_load), COUNT(DISTINCT region), STDDEV(cpu_load), VARIANCE(cpu_load), MEDIAN(uptime) FROM peers"},
	// Precedence: chains, * over +, unary minus, NOT over AND over OR.
	{"SELECT a + b - c * d FROM peers", "SELECT ((a + b) - (c * d)) FROM peers"},
	{"SELECT a - b - c FROM peers", "SELECT ((a - b) - c) FROM peers"},
	{"SELECT a * b / c % d FROM peers", "SELECT (((a * b) / c) % d) FROM peers"},
	{"SELECT -a * b FROM peers", "SELECT ((-a) * b) FROM peers"},
	{"SELECT - - a FROM peers", "SELECT (-(-a)) FROM peers"},
	{"SELECT (a + b) * c FROM peers", "SELECT ((a + b) * c) FROM peers"},
	{"SELECT a FROM peers WHERE a OR b AND c", "SELECT a FROM peers WHERE (a OR (b AND c))"},
	{"SELECT a FROM peers WHERE NOT a = 1 AND b", "SELECT a FROM peers WHERE ((NOT (a = 1)) AND b)"},
	{"SELECT a FROM peers WHERE NOT NOT a", "SELECT a FROM peers WHERE (NOT (NOT a))"},
	{"SELECT a FROM peers WHERE a + 1 > b * 2", "SELECT a FROM peers WHERE ((a + 1) > (b * 2))"},
	// Predicates.
	{"SELECT a FROM peers WHERE a <> 1 OR a != 2", "SELECT a FROM peers WHERE ((a != 1) OR (a != 2))"},
	{"SELECT a FROM peers WHERE a < 1 OR a <= 2 OR a > 3 OR a >= 4 OR a = 5",
		"SELECT a FROM peers WHERE (((((a < 1) OR (a <= 2)) OR (a > 3)) OR (a >= 4)) OR (a = 5))"},
	{"SELECT a FROM peers WHERE mem_free BETWEEN 1GB AND 2GB AND b",
		"SELECT a FROM peers WHERE ((mem_free BETWEEN 1GB AND 2GB) AND b)"},
	{"SELECT a FROM peers WHERE x NOT BETWEEN 1 + 1 AND 5", "SELECT a FROM peers WHERE (x NOT BETWEEN (1 + 1) AND 5)"},
	{"SELECT a FROM peers WHERE node LIKE 'home-%'", "SELECT a FROM peers WHERE (node LIKE 'home-%')"},
	{"SELECT a FROM peers WHERE node NOT LIKE '_x'", "SELECT a FROM peers WHERE (node NOT LIKE '_x')"},
	{"SELECT a FROM peers WHERE region NOT IN ('eu')", "SELECT a FROM peers WHERE (region NOT IN ('eu'))"},
	{"SELECT a FROM peers WHERE zone IS NULL OR zone IS NOT NULL", "SELECT a FROM peers WHERE ((zone IS NULL) OR (zone IS NOT NULL))"},
	{"SELECT a FROM peers WHERE reserved = TRUE OR reserved = false OR x = null",
		"SELECT a FROM peers WHERE (((reserved = TRUE) OR (reserved = FALSE)) OR (x = NULL))"},
	// Literals with units.
	{"SELECT a FROM peers WHERE m > 512MB AND m < 4GiB AND u > 30s AND u < 2h30m AND r >= 95% AND d > 1.5TB",
		"SELECT a FROM peers WHERE ((((((m > 512MB) AND (m < 4GiB)) AND (u > 30s)) AND (u < 2h30m)) AND (r >= 95%)) AND (d > 1.5TB))"},
	{"SELECT 'it''s', 'a\\'b', 'tab\\t' FROM peers", "SELECT 'it''s', 'a''b', 'tab\\t' FROM peers"},
	{`SELECT "my-tag", "node" FROM peers`, `SELECT "my-tag", node FROM peers`},
	{`SELECT "select" FROM peers`, `SELECT "select" FROM peers`},
	// Functions, GROUP BY on several keys, ORDER BY several keys, WITH options.
	{"SELECT lower(region) AS r, abs(-1), coalesce(zone, 'none') FROM peers",
		"SELECT lower(region) AS r, abs((-1)), coalesce(zone, 'none') FROM peers"},
	{"SELECT region, zone, COUNT(*) FROM peers GROUP BY region, zone ORDER BY region ASC, COUNT(*) DESC LIMIT 3",
		"SELECT region, zone, COUNT(*) FROM peers GROUP BY region, zone ORDER BY region, COUNT(*) DESC LIMIT 3"},
	{"SELECT COUNT(*) FROM peers WITH ROUNDS 30, TIMEOUT 10s, ACCURACY 0.5%",
		"SELECT COUNT(*) FROM peers WITH ROUNDS 30, TIMEOUT 10s, ACCURACY 0.5%"},
	{"RESERVE 10 AS batch FOR 30m WITH AT LEAST 8, KEY 'job-17'",
		"RESERVE 10 AS batch FOR 30m WITH AT LEAST 8, KEY 'job-17'"},
	{"RESERVE 5 FROM SUBCLOUD pool AS inner_pool", "RESERVE 5 FROM SUBCLOUD pool AS inner_pool"},
	// Comments and empty statements.
	{"-- the count\nSELECT COUNT(*) /* all of them */ FROM peers -- done", "SELECT COUNT(*) FROM peers"},
	{";; SELECT a FROM peers ;;", "SELECT a FROM peers"},
	// Words of the language that are not reserved stay usable as names.
	{"SELECT subcloud, peers, rounds FROM peers WHERE subcloud = 'x'",
		"SELECT subcloud, peers, rounds FROM peers WHERE (subcloud = 'x')"},
}

// treeString is s with every compound expression in parentheses.
func treeString(s Statement) string { return s.print(printer{tree: true}) }

func TestParseValid(t *testing.T) {
	// The wanted texts show the tree: every compound expression in
	// parentheses. TestCanonicalPrint checks the minimal form.
	for _, tc := range validCases {
		stmts, err := Parse("", tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if len(stmts) != 1 {
			t.Errorf("Parse(%q): %d statements, want 1", tc.in, len(stmts))
			continue
		}
		if got := treeString(stmts[0]); got != tc.want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", tc.in, got, tc.want)
		}
		assertRoundTrip(t, stmts[0])
	}
}

// The canonical print has only the parentheses the grammar needs.
func TestCanonicalPrint(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"select a+b-c*d from peers", "SELECT a + b - c * d FROM peers"},
		{"SELECT a - (b - c) FROM peers", "SELECT a - (b - c) FROM peers"},
		{"SELECT (a - b) - c FROM peers", "SELECT a - b - c FROM peers"},
		{"SELECT (a + b) * c FROM peers", "SELECT (a + b) * c FROM peers"},
		{"SELECT - - a, -(-1), -(a+b) FROM peers", "SELECT - -a, - -1, -(a + b) FROM peers"},
		{"SELECT a FROM peers WHERE NOT (a = 1 AND b) OR c", "SELECT a FROM peers WHERE NOT (a = 1 AND b) OR c"},
		{"SELECT a FROM peers WHERE (a OR b) AND c", "SELECT a FROM peers WHERE (a OR b) AND c"},
		{"SELECT a FROM peers WHERE (a = b) = c", "SELECT a FROM peers WHERE (a = b) = c"},
		{"SELECT a FROM peers WHERE (x BETWEEN 1 AND 2) IS NULL", "SELECT a FROM peers WHERE (x BETWEEN 1 AND 2) IS NULL"},
		{"SELECT a FROM peers WHERE x IN ((1), 1 + 2, a OR b)", "SELECT a FROM peers WHERE x IN (1, 1 + 2, a OR b)"},
	} {
		s, err := ParseOne(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := s.String(); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
		assertRoundTrip(t, s)
	}
	// A statement at the nesting limit prints within it.
	deep := "SELECT a FROM peers WHERE " + strings.Repeat("NOT ", 32) + strings.Repeat("(", 31) + "a" + strings.Repeat(")", 31)
	s, err := ParseOne(deep)
	if err != nil {
		t.Fatal(err)
	}
	assertRoundTrip(t, s)
}

func TestParseScript(t *testing.T) {
	src := "SELECT COUNT(*) FROM peers;\nRESERVE 2 AS x;\n\nRELEASE x"
	stmts, err := Parse("s.pql", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts) != 3 {
		t.Fatalf("got %d statements, want 3", len(stmts))
	}
	if p := stmts[2].Position(); p.Line != 4 || p.Column != 1 || p.Filename != "s.pql" {
		t.Errorf("third statement at %v, want s.pql:4:1", p)
	}
	if _, err := ParseOne(src); err == nil || err.Error() != "2:1: expected one statement, found 3" {
		t.Errorf("ParseOne of three statements: %v", err)
	}
	if stmts, err := Parse("", " -- nothing\n ;"); err != nil || len(stmts) != 0 {
		t.Errorf("empty script: %v %v", stmts, err)
	}
}

func TestPositions(t *testing.T) {
	s, err := ParseOne("SELECT node\nFROM peers\nWHERE mem_free >= 4GB AND  x")
	if err != nil {
		t.Fatal(err)
	}
	sel := s.(*Select)
	and := sel.Where.(*Binary)
	cmp := and.L.(*Binary)
	lit := cmp.R.(*Literal)
	x := and.R.(*Ident)
	for _, c := range []struct {
		what      string
		pos       Pos
		line, col int
	}{
		{"select", sel.Pos, 1, 1}, {"item", sel.Items[0].Expr.Position(), 1, 8},
		{"from", sel.From.Pos, 2, 6}, {">=", cmp.Pos, 3, 16}, {"4GB", lit.Pos, 3, 19},
		{"x", x.Pos, 3, 28},
	} {
		if c.pos.Line != c.line || c.pos.Column != c.col {
			t.Errorf("%s at %d:%d, want %d:%d", c.what, c.pos.Line, c.pos.Column, c.line, c.col)
		}
	}
}

func TestLiterals(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		num  float64
		unit Unit
	}{
		{"4GB", 4e9, UnitBytes}, {"4gb", 4e9, UnitBytes}, {"4GiB", 4 << 30, UnitBytes},
		{"512MB", 512e6, UnitBytes}, {"512MiB", 512 << 20, UnitBytes}, {"1TB", 1e12, UnitBytes},
		{"1TiB", 1 << 40, UnitBytes}, {"2KB", 2000, UnitBytes}, {"2KiB", 2048, UnitBytes},
		{"10B", 10, UnitBytes}, {"1.5GB", 1.5e9, UnitBytes}, {"1PB", 1e15, UnitBytes},
		{"30s", 30, UnitDuration}, {"15m", 900, UnitDuration}, {"2h", 7200, UnitDuration},
		{"7d", 7 * 86400, UnitDuration}, {"250ms", 0.25, UnitDuration}, {"2h30m", 9000, UnitDuration},
		{"1d12h", 129600, UnitDuration}, {"95%", 0.95, UnitPercent}, {"0.5%", 0.005, UnitPercent},
		{"0.95", 0.95, UnitNone}, {"50", 50, UnitNone}, {"1e3", 1000, UnitNone}, {".5", 0.5, UnitNone},
	} {
		lit, err := parseNumber(Pos{Line: 1, Column: 1}, tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if lit.Num != tc.num || lit.Unit != tc.unit {
			t.Errorf("%s = %v %v, want %v %v", tc.raw, lit.Num, lit.Unit, tc.num, tc.unit)
		}
	}
}

// Every syntax error, pinned word for word.
var errorCases = []struct {
	in, want string
}{
	{"SELECT node FORM peers", `1:13: unexpected "FORM" (expected "FROM")`},
	{"SELECT node, mem_free, reliability FROM peers ORDER reliability", `1:53: unexpected "reliability" (expected "BY")`},
	{"SELECT FROM peers", `1:8: unexpected "FROM" (expected "*" or an expression)`},
	{"SELECT a, FROM peers", `1:11: unexpected "FROM" (expected "*" or an expression)`},
	{"SELECT a FROM peers WHERE", `1:26: unexpected end of input (expected an expression)`},
	{"SELECT a FROM peers WHERE a = = 3", `1:31: unexpected "=" (expected an expression)`},
	{"SELECT a FROM peers WHERE a = 1 = 2", `1:33: unexpected "="`},
	{"SELECT a FROM peers WERE x > 1", `1:21: unexpected "WERE" (did you mean WHERE?)`},
	{"SELECT a FROM peers LIMIT x", `1:27: unexpected "x" (expected a number)`},
	{"SELECT a FROM peers LIMIT -1", `1:27: unexpected "-" (expected a number)`},
	{"SELECT a FROM nodes", `1:15: unexpected "nodes" (expected "PEERS", "SUBCLOUD" or "LEASES")`},
	{"SELECT a FROM peers WITH ROUNS 5", `1:26: unexpected "ROUNS" (expected "ROUNDS", "TIMEOUT", "ACCURACY", "AT LEAST" or "KEY")`},
	{"SELECT f(1 FROM peers", `1:12: unexpected "FROM" (expected ")")`},
	{"SELECT a FROM peers WHERE x NOT y", `1:33: unexpected "y" (expected "IN", "BETWEEN" or "LIKE")`},
	{"SELECT a FROM peers WHERE x IN ()", `1:33: unexpected ")" (expected an expression)`},
	{"SELECT a FROM peers WHERE x BETWEEN 1", `1:38: unexpected end of input (expected "AND")`},
	{"SELECT a FROM peers WHERE x IS 5", `1:32: unexpected "5" (expected "NULL")`},
	{"SELECT a b FROM peers", `1:10: unexpected "b" (expected "FROM")`},
	{"RESERVE 5 FROM peers", `1:21: unexpected end of input (expected "AS")`},
	{"RESERVE AS x", `1:9: unexpected "AS" (expected a number)`},
	{"RELEASE", `1:8: unexpected end of input (expected a name)`},
	{"SHOW FOO", `1:6: unexpected "FOO" (expected "SUBCLOUDS", "ATTRIBUTES", "MEMBERS", "POOLS" or "EVENTS")`},
	{"ALTER SUBCLOUD x RESIZE 3", `1:25: unexpected "3" (expected "TO")`},
	{"ALTER SUBCLOUD x GROW TO 3", `1:18: unexpected "GROW" (expected "RESIZE" or "EXTEND")`},
	{"RESERVE 3 AS x NO FIX", `1:19: unexpected "FIX" (expected "REPAIR")`},
	{"EXPLAIN EXPLAIN SELECT a FROM peers", `1:9: unexpected "EXPLAIN" (expected "SELECT", "RESERVE", "RELEASE", "SHOW", "ALTER" or "WATCH")`},
	{"SELEC a FROM peers", `1:1: unexpected "SELEC" (did you mean SELECT?)`},
	{"SELECT a FROM peers; garbage", `1:22: unexpected "garbage"`},
	{"SELECT a FROM peers SELECT b FROM peers", `1:21: unexpected "SELECT"`},
	{"SELECT COUNT(DISTINCT) FROM peers", `1:22: unexpected ")" (expected an expression)`},
	{"SELECT * AS x FROM peers", `1:10: unexpected "AS" (expected "FROM")`},
	// Lexical errors.
	{"SELECT a FROM peers WHERE b = 'x", `1:31: unterminated string (a string ends with ')`},
	{`SELECT "x FROM peers`, `1:8: unterminated quoted name (a quoted name ends with ")`},
	{"SELECT a FROM peers /* x", `1:21: unterminated comment (a comment ends with */)`},
	{"SELECT # FROM peers", `1:8: unexpected character '#'`},
	{"SELECT a FROM peers WHERE\n  b = 'a\\q'", `2:9: unknown escape \q in string (expected \\, \', \n, \t or \r)`},
	{`SELECT "" FROM peers`, `1:8: empty quoted name ""`},
	// Units.
	{"SELECT 4GX FROM peers", `1:8: unknown unit "GX" in 4GX (expected B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB, ms, s, m, h, d or %)`},
	{"SELECT 1GB5MB FROM peers", `1:8: size 1GB5MB cannot be chained (write one unit, as in 1536MB)`},
	{"SELECT 2h30x FROM peers", `1:8: unknown unit "x" in duration 2h30x (expected ms, s, m, h or d)`},
	{"SELECT 1e999 FROM peers", `1:8: number 1e999 is out of range`},
	// Limits.
	{"SELECT " + strings.Repeat("(", 70) + "1" + strings.Repeat(")", 70) + " FROM peers", `1:72: expression nested more than 64 deep`},
	{"SELECT " + strings.Repeat("- ", 70) + "1 FROM peers", `1:136: expression nested more than 64 deep`},
	{"SELECT a FROM peers WHERE " + strings.Repeat("NOT ", 70) + "b", `1:283: expression nested more than 64 deep`},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		_, err := Parse("", tc.in)
		if err == nil {
			t.Errorf("Parse(%q): no error, want %s", tc.in, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", tc.in, err, tc.want)
		}
		if _, ok := err.(*Error); !ok {
			t.Errorf("Parse(%q): error is %T, want *Error", tc.in, err)
		}
	}
}

func TestCaret(t *testing.T) {
	src := "SELECT node\n\tFORM peers"
	_, err := Parse("", src)
	perr, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v is not *Error", err)
	}
	want := "\tFORM peers\n\t^"
	if got := perr.Caret(src); got != want {
		t.Errorf("Caret:\n%q\nwant\n%q", got, want)
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"mem_free", "mem_total", "region", "reliability", "node"}
	for _, c := range []struct{ word, want string }{
		{"mem_fre", "mem_free"}, {"reigon", "region"}, {"MEM_FREE", "mem_free"},
		{"relability", "reliability"}, {"nod", "node"}, {"xyz", ""}, {"mem_free", ""},
	} {
		if got := Suggest(c.word, cands); got != c.want {
			t.Errorf("Suggest(%q) = %q, want %q", c.word, got, c.want)
		}
	}
}

func TestGrammarGolden(t *testing.T) {
	const golden = "testdata/grammar.ebnf"
	got := EBNF() + "\n"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./parser -update)", err)
	}
	if got != string(want) {
		t.Errorf("grammar changed; run go test ./parser -update and update docs/PQL.md\n%s", got)
	}
	doc, err := os.ReadFile("../docs/PQL.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), strings.TrimSpace(got)) {
		t.Errorf("docs/PQL.md does not hold the current grammar (testdata/grammar.ebnf)")
	}
}

// assertRoundTrip checks that printing s and parsing the print gives the
// same AST, positions aside.
func assertRoundTrip(t *testing.T, s Statement) {
	t.Helper()
	text := s.String()
	again, err := ParseOne(text)
	if err != nil {
		t.Fatalf("reparse of %q: %v", text, err)
	}
	if !EqualIgnoringPos(s, again) {
		t.Fatalf("round trip changed the AST:\n first %s\nsecond %s", text, again.String())
	}
}

// EqualIgnoringPos compares two ASTs field by field, skipping positions and
// the raw text of string literals (whose quoting the printer normalizes).
func EqualIgnoringPos(a, b any) bool {
	return equalValue(reflect.ValueOf(a), reflect.ValueOf(b))
}

var posType = reflect.TypeOf(Pos{})

func equalValue(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValue(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !equalValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		if a.Type() == posType {
			return true
		}
		for i := 0; i < a.NumField(); i++ {
			if a.Type() == reflect.TypeOf(Literal{}) && a.Type().Field(i).Name == "Raw" &&
				a.FieldByName("Kind").Int() == int64(LitString) {
				continue
			}
			if !equalValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Float64:
		x, y := a.Float(), b.Float()
		return x == y || x != x && y != y
	default:
		return a.Interface() == b.Interface()
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		src      string
		ends     []int
		complete bool
	}{
		{"", nil, true},
		{"SELECT 1 FROM peers;", []int{19}, true},
		{"SELECT node FROM peers WHERE owner = 'a;\nb';", []int{43}, true},
		{"SELECT node FROM peers WHERE owner = 'a;", nil, false},
		{"SELECT a FROM peers -- x;\n", nil, false},
		{"SELECT a FROM peers; -- done;\n", []int{19}, true},
		{"SELECT \"a;b\" FROM peers; SHOW", []int{23}, false},
		{"SELECT 1; /* a; b", []int{8}, false},
		{"SELECT 1; /* a; b */", []int{8}, true},
		{";;", []int{0, 1}, true},
	} {
		ends, complete := Split(c.src)
		if fmt.Sprint(ends) != fmt.Sprint(c.ends) || complete != c.complete {
			t.Errorf("Split(%q) = %v, %v; want %v, %v", c.src, ends, complete, c.ends, c.complete)
		}
	}
}
