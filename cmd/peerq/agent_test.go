package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port nobody listens on now, TCP or UDP (Serf
// binds both). It is drawn from 20000–32767, below every system's range of
// ephemeral ports (Linux 32768–60999, macOS and Windows 49152–65535): a
// port from :0 is an ephemeral one, which an agent's own outgoing
// connections could take between this pick and the agent's bind ("address
// already in use" when the machine was busy).
func freePort(t *testing.T) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		port := 20000 + rand.IntN(12768)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no free loopback port in 20000–32767 after 200 tries")
	return 0
}

// agentAddrs waits (up to 60 s: a loaded machine) for an agent's line
// "gossip on A, exchanges on B, API on C" in its log and returns A and C,
// the addresses it bound.
func agentAddrs(t *testing.T, log string) (gossip, api string) {
	t.Helper()
	line := regexp.MustCompile(`gossip on (\S+), exchanges on \S+, API on (\S+) `)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(log)
		if m := line.FindSubmatch(b); m != nil {
			return string(m[1]), string(m[2])
		}
		if time.Now().After(deadline) {
			t.Fatalf("no addresses in the agent's log in 60 s:\n%s", b)
		}
	}
}

// Three `peerq agent` processes on loopback ports join and answer a query
// through `peerq query`, in JSON, with the token from the data dir; then
// they leave on SIGTERM.
func TestThreeAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts processes")
	}
	dir := t.TempDir()
	bin := peerqBinary(t)
	type agent struct {
		cmd       *exec.Cmd
		api, data string
		log       string // its standard error, a file the process writes itself
	}
	var agents []agent
	var seed string
	for i := 0; i < 3; i++ {
		// Every listener on port 0: the agent binds what the kernel gives
		// and prints it, so no other process can take a port between a
		// pick and the bind (a test that picked free ports first failed
		// with "address already in use" beside other packages' tests).
		a := agent{data: filepath.Join(dir, fmt.Sprint("a", i))}
		args := []string{"agent", "--node", fmt.Sprint("agent-", i), "--bind", "127.0.0.1:0",
			"--exchange", "127.0.0.1:0", "--api", "127.0.0.1:0", "--data-dir", a.data,
			"--tag", "region=" + []string{"eu", "us", "eu"}[i], "--round", "50ms"}
		switch i {
		case 0: // the group any user may give its own files
			args = append(args, "--token-group", strconv.Itoa(os.Getgid()))
		case 2:
			args = append(args, "--export", "peers=SELECT COUNT(*) FROM peers EVERY 1s")
		}
		if seed != "" {
			args = append(args, "--join", seed)
		}
		a.cmd = exec.Command(bin, args...)
		a.log = filepath.Join(dir, fmt.Sprint("agent-", i, ".log"))
		logf, err := os.Create(a.log)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close() // the child keeps its own descriptor
		a.cmd.Stderr = logf
		if err := a.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.cmd.Process.Kill(); a.cmd.Wait() })
		var gossip string
		gossip, a.api = agentAddrs(t, a.log)
		if seed == "" {
			seed = gossip
		}
		agents = append(agents, a)
	}
	// Wait until the first agent's API says three peers.
	var token string
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(agents[0].data, "api-token"))
		token = strings.TrimSpace(string(b))
		peers := 0
		if token != "" {
			req, _ := http.NewRequest("GET", "http://"+agents[0].api+"/v1/health", nil)
			req.Header.Set("X-Peerq-Token", token)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				var h struct{ Peers int }
				json.NewDecoder(resp.Body).Decode(&h)
				resp.Body.Close()
				peers = h.Peers
			}
		}
		if peers == 3 {
			break
		}
		if time.Now().After(deadline) {
			for i, a := range agents {
				b, _ := os.ReadFile(a.log)
				t.Logf("agent %d's log:\n%s", i, b)
			}
			t.Fatalf("agents did not form a cluster of 3 in 60 s (last: %d)", peers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, errs := runCLI(t, "", "query", "--api", agents[0].api, "--data-dir", agents[0].data, "--format", "json",
		"-e", "SELECT COUNT(*), MIN(cpu_cores) FROM peers WHERE mem_total > 0; SELECT region, COUNT(*) FROM peers GROUP BY region")
	if code != exitOK {
		for i, a := range agents {
			b, _ := os.ReadFile(a.log)
			t.Logf("agent %d's log:\n%s", i, b)
		}
		t.Fatalf("query: exit %d: %s", code, errs)
	}
	var docs []struct{ Rows [][]any }
	if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 2 {
		t.Fatalf("output: %v\n%s", err, out)
	}
	if docs[0].Rows[0][0].(float64) != 3 || len(docs[1].Rows) != 2 {
		t.Errorf("answers %v %v", docs[0].Rows, docs[1].Rows)
	}
	// --data-dir alone finds the agent (the address it left there) and its
	// token; another agent's token at an address gets a 401 that says
	// whose address it tried and where the token came from.
	if code, out, errs := runCLI(t, "", "query", "--data-dir", agents[1].data, "-e", "SHOW MEMBERS"); code != exitOK || !strings.Contains(out, "agent-1") {
		t.Errorf("--data-dir alone: exit %d %q %q", code, out, errs)
	}
	code, _, errs = runCLI(t, "", "query", "--api", agents[0].api, "--token", "nope", "-e", "SHOW MEMBERS")
	if code != exitUsage || !strings.Contains(errs, agents[0].api) || !strings.Contains(errs, "--token is not this agent's") {
		t.Errorf("wrong token: exit %d %q", code, errs)
	}
	code, _, errs = runCLI(t, "", "query", "--api", agents[0].api, "--data-dir", agents[1].data, "-e", "SHOW MEMBERS")
	if code != exitUsage || !strings.Contains(errs, filepath.Join(agents[1].data, "api-token")) {
		t.Errorf("another agent's data dir: exit %d %q", code, errs)
	}
	// Through the API too, --allow-partial accepts an answer WITH TIMEOUT
	// ended (printed, exit 0); without it, exit 4.
	const timedOut = "SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1 WITH TIMEOUT 1ms"
	for _, c := range []struct {
		flags []string
		code  int
	}{{nil, exitTimeout}, {[]string{"--allow-partial"}, exitOK}} {
		args := append([]string{"query", "--data-dir", agents[0].data, "--format", "csv", "-e", timedOut}, c.flags...)
		if code, out, errs := runCLI(t, "", args...); code != c.code || !strings.HasPrefix(out, "COUNT(*)\n") {
			t.Errorf("%v: exit %d, want %d: %q %q", c.flags, code, c.code, out, errs)
		}
	}
	if code, _, errs := runCLI(t, "", "query", "--api", agents[0].api, "--token", token, "-e", "SELECT cpu_lod FROM peers"); code != exitStatement || !strings.Contains(errs, "did you mean cpu_load?") {
		t.Errorf("bad statement: exit %d %q", code, errs)
	}
	// --token-group: the group may read the token; without it, only the
	// agent's user.
	for i, want := range []os.FileMode{0o640, 0o600} {
		if st, err := os.Stat(filepath.Join(agents[i].data, "api-token")); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != want {
			t.Errorf("agent %d's token: mode %v, want %v", i, st.Mode().Perm(), want)
		}
	}
	// /metrics: what the agent runs, and the export under its name, once
	// the three have settled (node's TestExportSettles: never what an
	// agent counted while members still arrived).
	var metrics string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(agents[2].data, "api-token"))
		req, _ := http.NewRequest("GET", "http://"+agents[2].api+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(body)
		}
		if strings.Contains(metrics, `peerq_export_value{column="COUNT(*)",export="peers",group=""} 3`+"\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent 2 shows no export of 3 peers in 60 s:\n%s", metrics)
		}
	}
	for _, want := range []string{
		`peerq_build_info{commit="`,
		`",go_version="` + runtime.Version() + `",version="` + version + `"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("agent 2's /metrics lacks %q", want)
		}
	}
	// The membership's log: agent 0 logged the others' joins (at the
	// default level) and shows them in SHOW EVENTS.
	if code, out, errs := runCLI(t, "", "query", "--data-dir", agents[0].data, "-F", "csv", "-e", "SHOW EVENTS"); code != exitOK ||
		!strings.Contains(out, ",agent-1,member-join,127.0.0.1:") || !strings.Contains(out, ",agent-2,member-join,127.0.0.1:") {
		t.Errorf("SHOW EVENTS: exit %d %q %q", code, out, errs)
	}
	waitLog := func(i int, line string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			b, _ := os.ReadFile(agents[i].log)
			if strings.Contains(string(b), line) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %d did not log %q in 60 s:\n%s", i, line, b)
			}
		}
	}
	waitLog(0, "[INFO] peerq: member joined: agent-1 127.0.0.1:")
	waitLog(0, "[INFO] peerq: member joined: agent-2 127.0.0.1:")
	if b, _ := os.ReadFile(agents[0].log); strings.Contains(string(b), "serf: EventMember") {
		t.Errorf("Serf's own member lines beside peerq's:\n%s", b)
	}
	// SIGTERM: each agent leaves gracefully and exits 0; the last one
	// first, and the first logs that it left.
	agents[2].cmd.Process.Signal(syscall.SIGTERM)
	waitLog(0, "[INFO] peerq: member left: agent-2 127.0.0.1:")
	for _, a := range agents[:2] {
		a.cmd.Process.Signal(syscall.SIGTERM)
	}
	for i, a := range agents {
		done := make(chan error, 1)
		go func() { done <- a.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent %d: %v", i, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("agent %d did not stop on SIGTERM", i)
		}
	}
}

func TestAgentSettings(t *testing.T) {
	dir := t.TempDir()
	// The name: given, then remembered in the data dir.
	if n, err := nodeName(dir, "alpha"); err != nil || n != "alpha" {
		t.Fatalf("%q %v", n, err)
	}
	if n, _ := nodeName(dir, ""); n != "alpha" {
		t.Errorf("restart without --node: %q, want alpha", n)
	}
	// A config file, HCL or JSON by its extension, fills the settings the
	// command line left alone, each decoded by its type; the HCL one spells
	// a name as Consul does (retry_join).
	for name, body := range map[string]string{
		"agent.json": `{"bind": "127.0.0.1:9000", "tag": ["region=eu", "zone=a"], "round": "300ms", "max-queries": 1000000, "retry-join": true}`,
		"agent.hcl":  "# an agent\nbind = \"127.0.0.1:9000\"\ntag  = [\"region=eu\", \"zone=a\"]\nround = \"300ms\"\nmax-queries = 1000000\nretry_join = true\n",
	} {
		cfg := filepath.Join(dir, name)
		os.WriteFile(cfg, []byte(body), 0o644)
		s := &agentSettings{}
		cmd := agentCmd(s)
		cmd.Flags().Parse([]string{"--bind", "127.0.0.1:9999"})
		if err := applyConfigFile(cmd, cfg, s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Bind != "127.0.0.1:9999" {
			t.Errorf("%s: bind %s: the command line must win", name, s.Bind)
		}
		if fmt.Sprint(s.Tag) != "[region=eu zone=a]" || s.Round != 300*time.Millisecond || s.MaxQueries != 1000000 || !s.RetryJoin {
			t.Errorf("%s: settings %+v", name, s)
		}
	}
	// Errors name the format, and the file, line and column.
	for _, c := range []struct{ file, body, want string }{
		{"a.json", `{"bnid": "x"}`, `peerq: config (JSON): ` + dir + `/a.json:1:2: unknown setting "bnid" (settings are named as the flags: advertise, api,`},
		{"a.json", `{"round": "fast"}`, `a.json:1:2: setting "round": "fast" is not a duration`},
		{"a.json", `{"max-queries": "many"}`, `a.json:1:2: setting "max-queries": want a whole number, found a string`},
		{"a.json", "{\n  \"bind\": 1,,\n}", `peerq: config (JSON): ` + dir + `/a.json:2:13: `},
		{"a.json", "{\n  \"bind\" \"x\"}", `peerq: config (JSON): ` + dir + `/a.json:2:10: Missing property value colon`},
		{"a.json", `{"join": "x", "join": "y"}`, `a.json:1:15: Duplicate attribute definition: The argument "join" was already set at `},
		{"a.hcl", "bind = \"x\"\n\nbnid = 1\n", `peerq: config (HCL): ` + dir + `/a.hcl:3:1: unknown setting "bnid"`},
		{"a.hcl", "bind = \"x\"\njoin = [\"a\"\n  tag = 1\n", `peerq: config (HCL): ` + dir + `/a.hcl:3:3: Missing item separator`},
		{"a.hcl", "round = 2\nretry-join = \"yes please\"\n", `a.hcl:2:1: setting "retry-join": want true or false, found a string`},
		{"a.hcl", "join = [var.seed]\n", `a.hcl:1:9: Variables not allowed`},
		{"a.hcl", "join = [\"x\"]\nretry {\n}\n", `a.hcl:2:1: Unexpected "retry" block`},
		{"a.hcl", "retry_join = true\nretry-join = false\n", `a.hcl:2:1: "retry-join" sets "retry-join" again (as "retry_join" did)`},
		{"agent.yaml", "bind: x\n", `peerq: config ` + dir + `/agent.yaml: unknown format ".yaml": the file's extension says its format, .hcl (HCL) or .json (JSON)`},
	} {
		cfg := filepath.Join(dir, c.file)
		os.WriteFile(cfg, []byte(c.body), 0o644)
		s := &agentSettings{}
		if err := applyConfigFile(agentCmd(s), cfg, s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: %v\nwant %q", c.file, c.body, err, c.want)
		}
	}
	// The log filter.
	var b strings.Builder
	w, _ := newLevelFilter(&b, "warn")
	w.Write([]byte("2026/11/26 [DEBUG] memberlist: x\n"))
	w.Write([]byte("2026/11/26 [WARN] memberlist: y\n"))
	if b.String() != "2026/11/26 [WARN] memberlist: y\n" {
		t.Errorf("filtered logs %q", b.String())
	}
	// Serf's own member lines give way to peerq's, but at debug.
	for level, want := range map[string]string{
		"info":  "2026/11/26 [INFO] peerq: member joined: n2 10.0.0.5:7946\n",
		"debug": "2026/11/26 [INFO] serf: EventMemberJoin: n2 10.0.0.5\n2026/11/26 [INFO] peerq: member joined: n2 10.0.0.5:7946\n",
	} {
		var b strings.Builder
		w, _ := newLevelFilter(&b, level)
		w.Write([]byte("2026/11/26 [INFO] serf: EventMemberJoin: n2 10.0.0.5\n"))
		w.Write([]byte("2026/11/26 [INFO] peerq: member joined: n2 10.0.0.5:7946\n"))
		if b.String() != want {
			t.Errorf("--log-level %s: logged %q, want %q", level, b.String(), want)
		}
	}
}

// TestKeylessFlood measures what a host without the key costs a keyed
// agent: 1,000 connections from 250 loopback addresses, each announcing an
// 8 MiB frame (the old transport allocated it on trust) and sending it,
// against the agent's resident memory. A measurement: it runs only with
// PEERQ_FLOOD=1, and fails only if the agent grows by more than 50 MB.
//
//	PEERQ_FLOOD=1 go test ./cmd/peerq -run TestKeylessFlood -v
//	PEERQ_FLOOD=1 PEERQ_FLOOD_BIN=/tmp/peerq-old go test ./cmd/peerq -run TestKeylessFlood -v
func TestKeylessFlood(t *testing.T) {
	if os.Getenv("PEERQ_FLOOD") == "" {
		t.Skip("set PEERQ_FLOOD=1")
	}
	dir := t.TempDir()
	exch := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	bin := os.Getenv("PEERQ_FLOOD_BIN") // another build to compare with, e.g. before issue 11
	if bin == "" {
		bin = peerqBinary(t)
	}
	cmd := exec.Command(bin, "agent", "--node", "victim", "--bind", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--exchange", exch, "--api", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--data-dir", dir,
		"--encrypt", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	rss := func(field string) int64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, field+":") {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(l, field+":"), "kB")), &kb)
				return kb
			}
		}
		return 0
	}
	for rss("VmRSS") == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	idle := rss("VmRSS")
	junk := make([]byte, 8<<20)
	junk[0], junk[1], junk[2], junk[3] = 0x00, 0x80, 0x00, 0x00 // "8 MiB follow"
	var wg sync.WaitGroup
	var refused, cut int64
	var mu sync.Mutex
	start := time.Now()
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%250))}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", exch)
			if err != nil {
				mu.Lock()
				refused++
				mu.Unlock()
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(junk); err != nil {
				mu.Lock()
				cut++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	time.Sleep(time.Second)
	peak, after := rss("VmHWM"), rss("VmRSS")
	t.Logf("idle %d MB; 1000 keyless connections announcing 8 MiB each (%d cut off mid-send, %d refused) in %v: peak %d MB, after %d MB",
		idle/1024, cut, refused, took.Round(time.Millisecond), peak/1024, after/1024)
	if peak-idle > 50*1024 {
		t.Errorf("the flood grew the agent by %d MB", (peak-idle)/1024)
	}
}

// A pool's name that cannot be one is refused before anything starts,
// naming the flag.
func TestAgentRefusesABadPoolName(t *testing.T) {
	dir := t.TempDir()
	for _, pool := range []string{"eu/west", "eu west"} {
		code, _, errs := runCLI(t, "", "agent", "--data-dir", dir, "--bind", "127.0.0.1:0", "--pool", pool)
		want := fmt.Sprintf("peerq: --pool: bad pool name %q: it holds a / or a space", pool)
		if code != exitUsage || !strings.Contains(errs, want) || strings.Contains(errs, "serf") {
			t.Errorf("--pool %q: exit %d, stderr %q; want exit %d and %q, before Serf starts", pool, code, errs, exitUsage, want)
		}
	}
}
