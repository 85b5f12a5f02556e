package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	addr, token, dataDir string
	conns                int
	statement            string
	health               bool
	timeout, dialTimeout time.Duration
	sources              int
	connectFirst         bool
	hold                 time.Duration
	pid                  int
	out                  io.Writer
}

func run(args []string, out, errOut io.Writer) int {
	c := config{out: out}
	f := flag.NewFlagSet("apiload", flag.ContinueOnError)
	f.SetOutput(errOut)
	f.StringVar(&c.addr, "addr", "", "the agent's API address (default: DIR/api-addr with --data-dir, else 127.0.0.1:7474)")
	f.StringVar(&c.token, "token", "", "the API token (default: DIR/api-token with --data-dir, else $PEERQ_TOKEN)")
	f.StringVar(&c.dataDir, "data-dir", "", "the agent's data dir: its API address and token are read from it")
	f.IntVar(&c.conns, "c", 10000, "connections, all at once, one request each")
	f.StringVar(&c.statement, "statement", "SELECT COUNT(*) FROM peers", "the statement each POST /v1/query sends")
	f.BoolVar(&c.health, "health", false, "send GET /v1/health instead of a statement")
	f.DurationVar(&c.timeout, "timeout", 60*time.Second, "give up on a connection's answer after this long (from its dial)")
	f.DurationVar(&c.dialTimeout, "dial-timeout", 30*time.Second, "give up on a connection's dial after this long")
	f.IntVar(&c.sources, "sources", 1, "spread the connections over source addresses 127.0.0.1 … 127.0.0.N (loopback targets only)")
	f.BoolVar(&c.connectFirst, "connect-first", false, "dial every connection before the barrier; only the requests start together")
	f.DurationVar(&c.hold, "hold", 0, "a slow client: wait this long between connecting and sending the request")
	f.IntVar(&c.pid, "pid", 0, "the agent's process id: reset its peak RSS before the run and report it after (Linux)")
	if err := f.Parse(args); err != nil {
		return 2
	}
	if err := c.locate(); err != nil {
		fmt.Fprintln(errOut, "apiload:", err)
		return 1
	}
	if c.conns < 1 || c.sources < 1 || c.sources > 254 {
		fmt.Fprintln(errOut, "apiload: -c must be at least 1 and --sources between 1 and 254")
		return 2
	}
	if msg := checkFileLimit(c.conns); msg != "" {
		fmt.Fprintln(errOut, "apiload:", msg)
	}
	locals, err := c.localAddrs()
	if err != nil {
		fmt.Fprintln(errOut, "apiload:", err)
		return 2
	}
	if c.pid > 0 {
		resetPeakRSS(c.pid)
	}
	req := c.request()
	what := fmt.Sprintf("POST /v1/query %q", c.statement)
	if c.health {
		what = "GET /v1/health"
	}
	fmt.Fprintf(out, "apiload: %d connections to %s, %s, %d source address(es)%s\n", c.conns, c.addr, what, c.sources,
		map[bool]string{true: ", connected first", false: ""}[c.connectFirst])
	start := time.Now()
	results := load(c, req, locals)
	wall := time.Since(start)
	report(out, results, wall)
	if c.pid > 0 {
		if hwm, rss, err := peakRSS(c.pid); err == nil {
			fmt.Fprintf(out, "agent pid %d: peak RSS (VmHWM) %s, now (VmRSS) %s\n", c.pid, hwm, rss)
		} else {
			fmt.Fprintf(out, "agent pid %d: no memory figures: %v\n", c.pid, err)
		}
	}
	return 0
}

// locate fills the address and token as the CLI does.
func (c *config) locate() error {
	if c.dataDir != "" {
		if c.addr == "" {
			b, err := os.ReadFile(filepath.Join(c.dataDir, "api-addr"))
			if err != nil {
				return fmt.Errorf("no API address: %w", err)
			}
			c.addr = strings.TrimSpace(string(b))
		}
		if c.token == "" {
			b, err := os.ReadFile(filepath.Join(c.dataDir, "api-token"))
			if err != nil {
				return fmt.Errorf("no API token: %w", err)
			}
			c.token = strings.TrimSpace(string(b))
		}
	}
	if c.addr == "" {
		c.addr = "127.0.0.1:7474"
	}
	if c.token == "" {
		c.token = os.Getenv("PEERQ_TOKEN")
	}
	return nil
}

// localAddrs are the source addresses to dial from: nil (the kernel's
// choice) for one, else 127.0.0.1 … 127.0.0.N.
func (c *config) localAddrs() ([]*net.TCPAddr, error) {
	if c.sources == 1 {
		return []*net.TCPAddr{nil}, nil
	}
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("--sources needs a loopback target, not %s", host)
	}
	out := make([]*net.TCPAddr, c.sources)
	for i := range out {
		out[i] = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))}
	}
	return out, nil
}

// request is the bytes every connection sends.
func (c *config) request() []byte {
	var b bytes.Buffer
	if c.health {
		fmt.Fprintf(&b, "GET /v1/health HTTP/1.1\r\nHost: %s\r\nX-Peerq-Token: %s\r\nConnection: close\r\n\r\n", c.addr, c.token)
		return b.Bytes()
	}
	body, _ := json.Marshal(map[string]string{"statement": c.statement})
	fmt.Fprintf(&b, "POST /v1/query HTTP/1.1\r\nHost: %s\r\nX-Peerq-Token: %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", c.addr, c.token, len(body), body)
	return b.Bytes()
}

// result is one connection's outcome.
type result struct {
	status     int    // 0: no reply
	kind       string // why no reply, or how a 200 ended
	retryAfter string
	body       string // a 429's or other status's body
	answer     string // a result's status: exact, converged or partial
	latency    time.Duration
}

func load(c config, req []byte, locals []*net.TCPAddr) []result {
	began := time.Now()
	results := make([]result, c.conns)
	var ready, done sync.WaitGroup
	barrier := make(chan struct{})
	ready.Add(c.conns)
	done.Add(c.conns)
	for i := range c.conns {
		go func() {
			defer done.Done()
			d := net.Dialer{Timeout: c.dialTimeout, LocalAddr: locals[i%len(locals)]}
			if locals[i%len(locals)] == nil {
				d.LocalAddr = nil // not a typed nil
			}
			var conn net.Conn
			var t0 time.Time
			var err error
			if c.connectFirst {
				t0 = time.Now()
				conn, err = d.Dial("tcp", c.addr)
				ready.Done()
				<-barrier
				t0 = time.Now()
			} else {
				ready.Done()
				<-barrier
				t0 = time.Now()
				conn, err = d.Dial("tcp", c.addr)
			}
			if err != nil {
				results[i] = result{kind: "dial: " + kindOf(err), latency: time.Since(t0)}
				return
			}
			if c.hold > 0 {
				time.Sleep(c.hold)
			}
			results[i] = exchange(conn, req, t0.Add(c.timeout))
			results[i].latency = time.Since(t0)
		}()
	}
	ready.Wait()
	if c.connectFirst {
		fmt.Fprintf(c.out, "connected in %v\n", time.Since(began).Round(time.Millisecond))
	}
	close(barrier)
	done.Wait()
	return results
}

// exchange sends the request and reads the whole answer. A failed write
// does not end it: the agent may have answered (a 429) and closed before
// reading the request.
func exchange(conn net.Conn, req []byte, deadline time.Time) result {
	defer conn.Close()
	conn.SetDeadline(deadline)
	_, werr := conn.Write(req)
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		if werr != nil && !isEOF(err) {
			err = werr
		}
		return result{kind: kindOf(err)}
	}
	defer resp.Body.Close()
	r := result{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		r.kind = "cut mid-answer: " + kindOf(err)
	case resp.StatusCode == http.StatusOK && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson"):
		r.kind = "ok"
	case resp.StatusCode == http.StatusOK:
		r.kind, r.answer = lastLineType(body)
	default:
		r.body = strings.TrimSpace(string(body))
	}
	return r
}

// lastLineType says how a streamed answer ended: "ok" for a result line,
// with the answer's status, else "error line: <code>".
func lastLineType(body []byte) (kind, answer string) {
	lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
	var l struct {
		Type, Code string
		Meta       struct{ Status, Reason string }
	}
	if json.Unmarshal(lines[len(lines)-1], &l) != nil {
		return "unreadable last line", ""
	}
	if l.Type == "result" {
		if l.Meta.Reason != "" {
			// The reason's kind, not its names: "3 member(s) unreachable".
			reason, _, _ := strings.Cut(l.Meta.Reason, ":")
			return "ok", l.Meta.Status + " (" + reason + ")"
		}
		return "ok", l.Meta.Status
	}
	return "error line: " + l.Code, ""
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }

// kindOf names a connection's failure. The errno tests hold on Unix; on
// Windows the texts do.
func kindOf(err error) string {
	var ne net.Error
	s := err.Error()
	switch {
	case isEOF(err):
		return "closed, no reply"
	case errors.Is(err, errRefused) || strings.Contains(s, "refused"):
		return "refused"
	case errors.Is(err, errReset) || errors.Is(err, errPipe) || strings.Contains(s, "reset") || strings.Contains(s, "broken pipe"):
		return "reset, no reply"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, errNoPort) || strings.Contains(s, "assign requested address"):
		return "no local port (ephemeral ports: use --sources)"
	case errors.Is(err, errTooManyFiles) || strings.Contains(s, "too many open files"):
		return "client file limit"
	}
	return "other: " + s
}

func report(out io.Writer, rs []result, wall time.Duration) {
	var ok, with, without, answered int
	statuses := map[int]int{}
	kinds := map[string]int{}
	answers := map[string]int{}
	retry := map[string]int{}
	samples := map[int]string{}
	var lat, lat200, lat429 []time.Duration
	for _, r := range rs {
		if r.status == 0 {
			kinds[r.kind]++
			continue
		}
		answered++
		statuses[r.status]++
		lat = append(lat, r.latency)
		switch r.status {
		case http.StatusOK:
			lat200 = append(lat200, r.latency)
			if r.kind == "ok" {
				ok++
				answers[r.answer]++
			} else {
				kinds["200, then "+r.kind]++
			}
		case http.StatusTooManyRequests:
			lat429 = append(lat429, r.latency)
			if r.retryAfter != "" {
				with++
				retry[r.retryAfter]++
			} else {
				without++
			}
		}
		if _, seen := samples[r.status]; !seen && r.body != "" {
			samples[r.status] = r.body
		}
	}
	fmt.Fprintf(out, "answered %d of %d in %v: 200 %d (%d with a result), 429 %d (Retry-After: %d with, %d without)",
		answered, len(rs), wall.Round(time.Millisecond), statuses[200], ok, statuses[429], with, without)
	var others []int
	for s := range statuses {
		if s != 200 && s != 429 {
			others = append(others, s)
		}
	}
	sort.Ints(others)
	for _, s := range others {
		fmt.Fprintf(out, ", %d %d", s, statuses[s])
	}
	fmt.Fprintln(out)
	if len(answers) > 0 {
		fmt.Fprint(out, "results by status:")
		for _, k := range sortedKeys(answers) {
			fmt.Fprintf(out, " %s %d", k, answers[k])
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "no reply %d", len(rs)-answered)
	for _, k := range sortedKeys(kinds) {
		fmt.Fprintf(out, "; %s %d", k, kinds[k])
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "latency, dial to the answer's end: all answered %s; 200 %s; 429 %s\n", quantiles(lat), quantiles(lat200), quantiles(lat429))
	if len(retry) > 0 {
		keys := sortedKeys(retry)
		slices.SortFunc(keys, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
		fmt.Fprint(out, "Retry-After (s: answers):")
		for _, k := range keys {
			fmt.Fprintf(out, " %s: %d", k, retry[k])
		}
		fmt.Fprintln(out)
	}
	for _, s := range sortedKeys(samples) {
		fmt.Fprintf(out, "a %d body: %s\n", s, samples[s])
	}
}

func quantiles(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))].Round(time.Millisecond) }
	return fmt.Sprintf("p50 %v p99 %v max %v", q(0.5), q(0.99), d[len(d)-1].Round(time.Millisecond))
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// resetPeakRSS resets a process's VmHWM to its current RSS (Linux: "5" to
// /proc/PID/clear_refs), so that the peak is this run's.
func resetPeakRSS(pid int) {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// peakRSS reads a process's VmHWM and VmRSS (Linux).
func peakRSS(pid int) (hwm, rss string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "VmHWM":
			hwm = mb(v)
		case "VmRSS":
			rss = mb(v)
		}
	}
	return hwm, rss, nil
}

// mb turns "  12345 kB" into "12.1 MB" (MiB).
func mb(v string) string {
	kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
	if err != nil {
		return strings.TrimSpace(v)
	}
	return fmt.Sprintf("%.1f MB", float64(kb)/1024)
}
