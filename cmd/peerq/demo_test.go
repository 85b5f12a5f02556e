package main

import (
	"encoding/json"
	"math"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/peerq/peerq/query"
)

// The demo answers by gossip what the same seed's synthetic machines say,
// in machine formats with raw values, one block per statement.
func TestDemoJSON(t *testing.T) {
	const stmts = "SELECT COUNT(*), SUM(mem_total) FROM peers WHERE mem_free >= 4GB; SELECT node FROM peers ORDER BY uptime DESC LIMIT 3"
	code, out, errs := runCLI(t, "", "demo", "--nodes", "20", "--freeze", "--seed", "4", "--round", "50ms", "-e", stmts, "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// Two statements: one JSON array of two documents.
	var docs []struct {
		Rows [][]any
		Meta map[string]any
	}
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(docs) != 2 {
		t.Fatalf("%d JSON documents, want 2:\n%s", len(docs), out)
	}
	var recs []query.Record
	for i := 0; i < 20; i++ {
		recs = append(recs, query.Synthetic(4, i))
	}
	plans, err := query.CompileScript("", stmts, query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range plans {
		want := query.Exact(p, recs)
		got := docs[i].Rows
		if len(got) != len(want.Rows) {
			t.Fatalf("statement %d: %v, want %v", i, got, want.Rows)
		}
		for r := range want.Rows {
			for c, w := range want.Rows[r] {
				switch g := got[r][c].(type) {
				case float64: // raw: bytes and counts as plain numbers
					if d := g - w.Num; d > 0.01*w.Num || d < -0.01*w.Num {
						t.Errorf("statement %d row %d col %d: %v, want %v", i, r, c, g, w.Num)
					}
				case string:
					if g != w.Str {
						t.Errorf("statement %d row %d col %d: %v, want %v", i, r, c, g, w.Str)
					}
				default:
					t.Errorf("statement %d row %d col %d: %T", i, r, c, g)
				}
			}
		}
		if docs[i].Meta["peers"].(float64) != 20 || docs[i].Meta["plan_hash"] == "" {
			t.Errorf("metadata %v", docs[i].Meta)
		}
	}
}

func TestDemoExitCodes(t *testing.T) {
	if code, _, errs := runCLI(t, "", "demo", "--nodes", "5", "-e", "SELECT node FORM peers"); code != exitStatement || !strings.Contains(errs, `1:13: unexpected "FORM"`) {
		t.Errorf("syntax error: exit %d, %q", code, errs)
	}
	code, out, _ := runCLI(t, "", "demo", "--nodes", "8", "--round", "200ms", "--min-round", "200ms", "--format", "csv",
		"-e", "SELECT AVG(cpu_load) FROM peers WITH TIMEOUT 250ms, ACCURACY 0.01%")
	if code != exitTimeout || !strings.HasPrefix(out, "AVG(cpu_load)\n") {
		t.Errorf("timeout: exit %d, output %q", code, out)
	}
	// --allow-partial accepts a partial answer whatever made it partial,
	// WITH TIMEOUT included: in a script and in a shell reading a pipe.
	const timedOut = "SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1 WITH TIMEOUT 1ms"
	code, out, errs := runCLI(t, "", "demo", "--nodes", "8", "--allow-partial", "--format", "csv", "-e", timedOut+"; "+timedOut)
	if code != exitOK || strings.Count(out, "COUNT(*)\n") != 2 {
		t.Errorf("timeout, --allow-partial: exit %d, output %q, stderr %q", code, out, errs)
	}
	code, out, errs = runCLI(t, timedOut+";\n"+timedOut+";\n", "demo", "--nodes", "8", "--allow-partial", "--format", "csv")
	if code != exitOK || strings.Count(out, "COUNT(*)\n") != 2 {
		t.Errorf("timeout, piped shell, --allow-partial: exit %d, output %q, stderr %q", code, out, errs)
	}
	// Without -e, statements come from standard input and errors do not
	// stop it; the exit code is the first error's, as with -e.
	code, out, errs = runCLI(t, "SELECT nod FROM peers;\nSELECT COUNT(*)\n FROM peers WHERE region = 'eu';\n", "demo", "--nodes", "6", "--format", "csv")
	if code != exitStatement || !strings.Contains(errs, "did you mean node?") || !strings.Contains(out, "COUNT(*)\n") {
		t.Errorf("stdin: exit %d\nout %q\nerr %q", code, out, errs)
	}
}

// The shell read through a pipe: multi-line statements, meta-commands, an
// error with its caret that does not stop it, and \quit.
func TestShellThroughPipe(t *testing.T) {
	in := strings.Join([]string{
		`\format csv`,
		`SELECT COUNT(*)`,
		`  FROM peers WHERE mem_free >= 1GB;`,
		`\explain SELECT node FROM peers ORDER BY uptime DESC LIMIT 3`,
		`SELECT nod FROM peers;`,
		`\timing`,
		`SELECT region, COUNT(*) FROM peers GROUP BY region; -- from tags`,
		`SELECT COUNT(*) AS semis FROM peers WHERE region = 'a;`,
		`b'; SELECT COUNT(*) AS two FROM peers /* ; */ WHERE region != 'x';`,
		`-- only a comment`,
		`help`,
		`\format table`,
		`RESERVE 2 AS job FOR 1m;`,
		`\d SUBCLOUD job`,
		`\d cpu_load`,
		`\d nosuch`,
		`exit`,
		`SELECT 1 FROM peers;`,
	}, "\n")
	code, out, errs := runCLI(t, in, "demo", "--nodes", "6", "--freeze", "--round", "50ms")
	// The shell went on after the bad statement and the \d of nothing,
	// and exits as a script would for the first.
	if code != exitStatement || !strings.Contains(errs, "2 statements failed; the first: ") {
		t.Fatalf("exit %d, want %d: %s", code, exitStatement, errs)
	}
	for _, want := range []string{`\\pager`, `(?m)^members +\(2\)\n  peer-0+\d+\n  peer-`, `(?m)^kind +ratio$`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "no table, attribute or subcloud is named nosuch") || strings.Contains(errs, "empty statement") {
		t.Errorf("stderr: %s", errs)
	}
	// A ';' inside a string or a comment ends no statement.
	for _, want := range []string{"COUNT(*)\n", "gossip top-k", "region,COUNT(*)\n", "semis\n0\n", "two\n6\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{`unknown attribute "nod" (did you mean node?)`, "  SELECT nod FROM peers\n         ^", "format: csv", "Timing is on.", "Time: "} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(out, "\n1\n") {
		t.Error("a statement after \\quit ran")
	}
}

// A type error, found by the executor against the live catalog, points at
// its line and column in the script, not in the statement alone.
func TestScriptErrorPosition(t *testing.T) {
	code, out, errs := runCLI(t, "", "demo", "--nodes", "4", "--round", "50ms", "--format", "csv",
		"-e", "SELECT COUNT(*) FROM peers WHERE region = 'eu';\n  SELECT node,\n    mem_fre FROM peers")
	if code != exitStatement || !strings.Contains(errs, "\n3:5: unknown attribute \"mem_fre\" (did you mean mem_free?)\n") ||
		!strings.Contains(errs, "        mem_fre FROM peers\n        ^") {
		t.Errorf("exit %d\nstderr %q", code, errs)
	}
	if !strings.HasPrefix(out, "COUNT(*)\n") {
		t.Errorf("the first statement should have run: %q", out)
	}
}

func TestParseChurnRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		err  bool
	}{
		{"10%/min", 0.1, false}, {"0.1/min", 0.1, false}, {"10% / m", 0.1, false},
		{"1%/s", 0.6, false}, {"30%/h", 0.005, false},
		{"10%", 0, true}, {"10%/day", 0, true}, {"-5%/min", 0, true}, {"x/min", 0, true}, {"200/s", 0, true},
	} {
		got, err := parseChurnRate(c.in)
		if (err != nil) != c.err || !c.err && math.Abs(got-c.want) > 1e-12 {
			t.Errorf("parseChurnRate(%q) = %v, %v; want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

// --churn starts the churn beside the script and says so; the subcloud the
// script reserves is there, kept by this shell's spared peer.
func TestDemoChurn(t *testing.T) {
	code, out, errs := runCLI(t, "", "demo", "--nodes", "12", "--freeze", "--round", "50ms", "--churn", "60%/min", "--churn-down", "2s",
		"-e", "RESERVE 3 AS c FOR 1m; SHOW SUBCLOUDS", "--format", "csv")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "churn: 60% of the peers killed a minute (one every 8.3s)") || !strings.Contains(errs, "peer-000000 (this shell's peer) is spared") {
		t.Errorf("stderr: %s", errs)
	}
	// Leaving says what it stops (churn first, then the peers), and does
	// not wait on them past the grace: its own line, then the bound.
	if !strings.HasSuffix(errs, "peerq demo: stopping 12 embedded peers\n") &&
		!strings.Contains(errs, "peerq demo: 12 peers still stopping after 1.5s") {
		t.Errorf("stderr does not end by saying what it stops: %s", errs)
	}
	if !strings.Contains(out, "c,peer-000000,3,3,0,") {
		t.Errorf("SHOW SUBCLOUDS: %s", out)
	}
}

// WATCH in a script: one block per epoch, as many as --epochs; in ndjson,
// each epoch's rows and a meta line with its epoch.
func TestDemoWatch(t *testing.T) {
	code, out, errs := runCLI(t, "", "demo", "--nodes", "12", "--freeze", "--round", "50ms", "--epochs", "2",
		"-e", "WATCH SELECT COUNT(*) FROM peers WHERE mem_free >= 0B EVERY 1s", "--format", "ndjson")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var epochs []int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if m, ok := l["_meta"].(map[string]any); ok {
			epochs = append(epochs, int(m["epoch"].(float64)))
		} else if l["COUNT(*)"] != json.Number("12") && l["COUNT(*)"] != 12.0 {
			t.Errorf("row %v", l)
		}
	}
	if len(epochs) != 2 || epochs[0] != 1 || epochs[1] != 2 {
		t.Errorf("epochs %v in\n%s", epochs, out)
	}
}

func TestDemoMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int64
	}{
		{0, 128 << 20},
		{40 << 20, 128 << 20},
		{100 << 20, 250 << 20},
		{1 << 30, 5 << 29},
	} {
		if got := demoMemoryLimit(tc.live); got != tc.want {
			t.Errorf("live %d MiB: limit %d MiB, want %d MiB", tc.live>>20, got>>20, tc.want>>20)
		}
	}
	held := make([]byte, 8<<20)
	runtime.GC()
	if live := liveHeap(); live < 8<<20 {
		t.Errorf("live heap %d bytes with 8 MiB held", live)
	}
	runtime.KeepAlive(held)
}
