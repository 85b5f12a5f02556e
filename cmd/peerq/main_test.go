package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/peerq/peerq/api"
)

// The peerq binary, built once for the tests that start processes.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func peerqBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "peerq-test"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "peerq")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	// The demos that tests run in this process share it: one's memory
	// limit (demoMemoryLimit) must not hold another's peers.
	os.Setenv("GOMEMLIMIT", "off")
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExplain(t *testing.T) {
	code, out, errs := runCLI(t, "", "explain", "--nodes", "10000", "-e",
		"SELECT node, mem_free FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC LIMIT 50")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"plan:        top-k", "k:           50", "N=10000", "reliability DESC"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
}

// explain --pools P shows a pool's run at its size, then the cloud level,
// as an agent with --pool does.
func TestExplainPools(t *testing.T) {
	code, out, errs := runCLI(t, "", "explain", "--nodes", "1000", "--pools", "4", "-e", "SELECT COUNT(*), AVG(mem_free) FROM peers WHERE region = 'eu'")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"N=250", "levels:      two", "4 in the cloud pool as this gateway sees it: pool0, pool1, pool2, pool3", "cloud hops:  4 exchanges", "for the 4 pools"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain --pools 4 lacks %q:\n%s", want, out)
		}
	}
	if code, _, errs := runCLI(t, "", "explain", "--nodes", "10", "--pools", "11", "-e", "SELECT COUNT(*) FROM peers"); code != exitUsage || !strings.Contains(errs, "--pools 11: want 0 (one pool) to --nodes (10)") {
		t.Errorf("--pools 11 of 10 peers: exit %d, %q", code, errs)
	}
}

func TestExplainScriptFromStdin(t *testing.T) {
	code, out, _ := runCLI(t, "SHOW SUBCLOUDS;\nSELECT COUNT(*) FROM peers WHERE region = 'eu';", "explain", "-f", "-")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if strings.Count(out, "statement:") != 2 || !strings.Contains(out, "from tags:   yes") {
		t.Errorf("two plans expected, the second answered from tags:\n%s", out)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pql")
	bad := filepath.Join(dir, "bad.pql")
	os.WriteFile(good, []byte("SELECT COUNT(*) FROM peers;\nRESERVE 5 AS x FOR 1h;\n"), 0o644)
	os.WriteFile(bad, []byte("SELECT COUNT(*) FROM peers;\nSELECT node\n  FROM peers WHERE mem_fre > 4GB;\n"), 0o644)

	code, out, _ := runCLI(t, "", "check", "-f", good)
	if code != exitOK || out != "ok: 2 statement(s)\n" {
		t.Errorf("good script: exit %d, %q", code, out)
	}
	code, _, errs := runCLI(t, "", "check", "-f", bad)
	want := bad + `:3:20: unknown attribute "mem_fre" (did you mean mem_free?)` + "\n" +
		"      FROM peers WHERE mem_fre > 4GB;\n" +
		"                       ^\n" +
		"1 of 2 statement(s) have errors\n"
	if code != exitStatement || errs != want {
		t.Errorf("bad script: exit %d, stderr\n%s\nwant\n%s", code, errs, want)
	}
	code, _, errs = runCLI(t, "", "check", "-e", "SELECT node FORM peers")
	if code != exitStatement || !strings.HasPrefix(errs, `1:13: unexpected "FORM" (expected "FROM")`) {
		t.Errorf("syntax error: exit %d, %q", code, errs)
	}
	// Every statement's error, as a linter lists them; comments alone are
	// no statement.
	code, _, errs = runCLI(t, "", "check", "-e", "SELECT nod FROM peers; -- a note\nSELECT node FORM peers; SELECT COUNT(*) FROM peers LIMIT 0; /* end */")
	if code != exitStatement || !strings.Contains(errs, `1:8: unknown attribute "nod"`) || !strings.Contains(errs, `2:13: unexpected "FORM"`) ||
		!strings.HasSuffix(errs, "2 of 3 statement(s) have errors\n") {
		t.Errorf("several errors: exit %d, %q", code, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"check"},
		{"check", "-f", "/does/not/exist"},
		{"check", "-e", "SHOW MEMBERS", "-f", "x"},
		{"explain", "-e", "SHOW MEMBERS", "--nodes", "1"},
		{"no-such-command"},
	} {
		if code, _, errs := runCLI(t, "", args...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want %d with a message", args, code, errs, exitUsage)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ := runCLI(t, "", args...)
		if code != exitOK || !strings.HasPrefix(out, "peerq "+version) || !strings.Contains(out, "go1.") {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
}

// A refused connection comes with a hint: at the default address, how to
// start an agent or the demo; elsewhere, which flags name the address.
func TestAgentHint(t *testing.T) {
	refused := func(addr string) error {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Errorf("agent at %s: %w", addr, &net.OpError{Op: "dial", Net: "tcp", Addr: a, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	}
	if h := agentHint(refused(api.DefaultAddr)); !strings.Contains(h, "no agent is running at "+api.DefaultAddr) ||
		!strings.Contains(h, "peerq agent --data-dir") || !strings.Contains(h, "peerq demo") {
		t.Errorf("default address: %q", h)
	}
	if h := agentHint(refused("127.0.0.1:1")); !strings.Contains(h, "nothing listens at 127.0.0.1:1") || !strings.Contains(h, "--api") {
		t.Errorf("another address: %q", h)
	}
	if h := agentHint(errors.New("unauthorized")); h != "" {
		t.Errorf("another error: %q", h)
	}
	// peerq query says so too: nothing listens on a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	code, _, errs := runCLI(t, "", "query", "--api", addr, "-e", "SELECT 1")
	if code != exitUsage || !strings.Contains(errs, "hint: nothing listens at "+addr) {
		t.Errorf("exit %d: %s", code, errs)
	}
}

// /dev/null is a character device but no terminal: a shell reading it must
// not prompt.
func TestDevNullIsNoTerminal(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Errorf("%s is taken for a terminal", os.DevNull)
	}
}

// sim refuses what it would drop: the report's flags beside --pools or
// --trials, and an --rtt that is neither a model nor a file; each error
// names the flag (and the file).
func TestSimRefusesWhatItWouldDrop(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "rtts.txt")
	if err := os.WriteFile(bad, []byte("80ms\n# a comment\nabc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pools", "4", "--rtt", "lognormal:80ms"}, "--rtt: not printed by --pools"},
		{[]string{"--pools", "4", "--baseline", "--csv", filepath.Join(dir, "x.csv")}, "--baseline, --csv: not printed by --pools"},
		{[]string{"--session", "1h", "--trials", "3", "--plot", filepath.Join(dir, "x.png")}, "--plot: not printed by --trials"},
		{[]string{"--rtt", filepath.Join(dir, "none.txt")}, "none.txt\": no such file; give a file of round trips"},
		{[]string{"--rtt", "lognormal:fast"}, `--rtt: latency: "lognormal:fast": the median "fast" is not a positive duration`},
		{[]string{"--rtt", bad}, "--rtt " + bad + `: latency: line 3: "abc" is neither a duration nor milliseconds`},
	} {
		args := append([]string{"sim", "--nodes", "100", "--quiet", "-e", "SELECT COUNT(*) FROM peers"}, c.args...)
		code, out, errs := runCLI(t, "", args...)
		if code != exitUsage || !strings.Contains(errs, c.want) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, nothing run, and %q", c.args, code, out, errs, exitUsage, c.want)
		}
	}
}
