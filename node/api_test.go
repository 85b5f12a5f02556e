package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/fakenet"
)

// The API's tests run on a fake cluster in real time: an HTTP client
// blocked on a socket would stop synctest's clock.
func realTimeCluster(t *testing.T, n int) *cluster {
	return startFake(t, n, fakenet.DefaultConfig(), 1, func(c *Config) { c.Round = 20 * time.Millisecond })
}

func TestAPI(t *testing.T) {
	c := realTimeCluster(t, 12)
	dir := t.TempDir()
	tok, err := api.LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, api.TokenFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", st.Mode().Perm())
	}
	if again, _ := api.LoadOrCreateToken(dir); again != tok {
		t.Error("the token changed on reload")
	}
	srv, err := c.nodes[0].ServeAPI("127.0.0.1:0", tok)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := "http://" + srv.Addr()
	do := func(method, path, body, token string) *http.Response {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set(api.TokenHeader, token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, c := range []struct {
		method, path, body, token string
		status                    int
		contains                  string
	}{
		{"GET", "/v1/health", "", "", 401, "token"},
		{"GET", "/v1/health", "", "wrong", 401, "token"},
		{"GET", "/v1/health", "", tok, 200, `"peers":12`},
		{"GET", "/v1/members", "", tok, 200, "peer-000011"},
		{"GET", "/v1/health", "", "wrong", 401, "agent peer-000000"},
		{"POST", "/v1/query", `{"statement": "SELECT node FORM peers"}`, tok, 400, `"code":"statement"`},
		{"GET", "/v1/attributes", "", tok, 200, "mem_free"},
		{"POST", "/v1/query", "{bad json", tok, 400, "bad JSON"},
		{"POST", "/v1/query", `{"statement": "SELECT node FORM peers"}`, tok, 400, `"column":13`},
		{"POST", "/v1/query", `{"statement": "SELECT mem_fre FROM peers"}`, tok, 400, "did you mean mem_free?"},
		{"POST", "/v1/query", `{"statement": "RELEASE nothing"}`, tok, 200, `"error":"unknown subcloud nothing: no agent owns it","code":"statement"`},
		{"POST", "/v1/query", `{"statement": "RESERVE 100 AS x"}`, tok, 200, `"code":"not_enough_peers"`},
		{"POST", "/v1/query", `{"statement": "EXPLAIN SELECT COUNT(*) FROM peers"}`, tok, 200, "gossip aggregation"},
	} {
		resp := do(c.method, c.path, c.body, c.token)
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(b.String(), c.contains) {
			t.Errorf("%s %s %s: %d %s; want %d and %q", c.method, c.path, c.body, resp.StatusCode, b.String(), c.status, c.contains)
		}
	}

	// Streaming: progress lines, then the result.
	resp := do("POST", "/v1/query", `{"statement": "SELECT COUNT(*), AVG(cpu_load) FROM peers WHERE mem_free >= 1GB"}`, tok)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var progress int
	var last api.Line
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if last.Type == "progress" {
			progress++
		}
	}
	if progress == 0 || last.Type != "result" || last.Meta == nil || last.Meta.Peers != 12 || len(last.Rows) != 1 {
		t.Errorf("%d progress lines, last %+v", progress, last)
	}
}

// A client that goes away cancels its query.
func TestAPICancel(t *testing.T) {
	c := realTimeCluster(t, 8)
	srv, err := c.nodes[0].ServeAPI("127.0.0.1:0", "t")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+srv.Addr()+"/v1/query",
		strings.NewReader(`{"statement": "SELECT AVG(cpu_load) FROM peers WITH ROUNDS 1000, ACCURACY 0.001%"}`))
	req.Header.Set(api.TokenHeader, "t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(resp.Body).ReadString('\n') // the first progress line
	cancel()
	resp.Body.Close()
	n := c.nodes[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		n.mu.Lock()
		running := 0
		for _, q := range n.queries {
			if q.origin && !q.run.Final() {
				running++
			}
		}
		n.mu.Unlock()
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the query still runs after its client went away")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// GET /metrics: the Prometheus text format, behind the token, with the
// runtime's counters, the subclouds this peer owns and the latency of the
// statements it asked.
func TestMetricsEndpoint(t *testing.T) {
	c := realTimeCluster(t, 8)
	tok := "metrics-token-0123456789abcdef"
	srv := serveAPI(t, c.nodes[0], tok)
	ask(t, c.nodes[0], compile(t, c.nodes[0], "SELECT COUNT(*) FROM peers WHERE mem_free >= 1GB"))
	ask(t, c.nodes[0], compile(t, c.nodes[0], "SELECT COUNT(*) FROM peers"))
	ask(t, c.nodes[0], compile(t, c.nodes[0], "RESERVE 2 AS watched FOR 1m"))
	get := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		return resp.StatusCode, b.String()
	}
	if code, _ := get("wrong"); code != 401 {
		t.Errorf("a wrong token: %d", code)
	}
	code, body := get(tok)
	if code != 200 {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	for _, want := range []string{
		`peerq_exchanges_total{direction="out"} `,
		`peerq_members{state="alive"} 8`,
		`peerq_subclouds_owned 1`,
		`peerq_subcloud_members{subcloud="watched"} 2`,
		`peerq_subcloud_target{subcloud="watched"} 2`,
		`peerq_query_duration_seconds_count{kind="aggregate"} 1`,
		`peerq_query_duration_seconds_count{kind="reserve"} 1`,
		`peerq_query_duration_seconds_count{kind="membership"} 1`,
		`peerq_query_rounds_count 2`,
		`peerq_decoder_rejections_total 0`,
		`peerq_lease_tags_malformed_total 0`,
		`peerq_queries_unreadable_total 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, `peerq_exchanges_total{direction="out"} 0`+"\n") {
		t.Error("no exchanges counted after a gossip query")
	}
}

// WATCH over the API: an answer per epoch, each with its epoch and time,
// until the client lets go; then no instance of it is left running at any
// peer. A WATCH whose epoch is shorter than a round is refused.
func TestWatchAPI(t *testing.T) {
	c := realTimeCluster(t, 8)
	tok := "watch-token-0123456789abcdef"
	srv := serveAPI(t, c.nodes[0], tok)
	client := api.NewClient(srv.Addr(), tok, 5*time.Second)
	var got []*answer.Answer
	start := time.Now()
	err := client.Watch(context.Background(), "WATCH SELECT COUNT(*) FROM peers WHERE mem_free >= 0B EVERY 1s", func(a *answer.Answer, err error) bool {
		if err != nil {
			t.Errorf("epoch %d: %v", len(got)+1, err)
		}
		got = append(got, a)
		return len(got) < 3
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d answers", len(got))
	}
	for i, a := range got {
		if a.Meta.Epoch != i+1 || a.Meta.At == "" || a.Meta.Status == answer.StatusPartial || a.Rows[0][0].Raw() != int64(8) {
			t.Errorf("epoch %d: %+v rows %v", i+1, a.Meta, a.Rows)
		}
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("3 epochs of 1s in %v", took)
	}
	// The client let go: the asker stops, and every peer's instance of the
	// last epoch ends with it.
	deadline := time.Now().Add(20 * time.Second)
	for running := -1; running != 0; {
		running = 0
		for _, n := range c.nodes {
			n.mu.Lock()
			running += len(n.queries)
			n.mu.Unlock()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d query instances still running after the watch stopped", running)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.nodes[0].Execute(context.Background(), "WATCH SELECT COUNT(*) FROM peers EVERY 5s", nil); err == nil || !strings.Contains(err.Error(), "once every epoch") {
		t.Errorf("Execute of a WATCH: %v", err)
	}
}

func TestWatchEveryBelowRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 2, fakenet.DefaultConfig(), 1, func(cfg *Config) { cfg.Round, cfg.MinRound = 2*time.Second, time.Second })
		err := c.nodes[0].Watch(context.Background(), "WATCH SELECT COUNT(*) FROM peers EVERY 1s", func(*answer.Answer, error) bool { return true })
		if err == nil || !strings.Contains(err.Error(), "shorter than this agent's round") {
			t.Errorf("EVERY 1s with 2s rounds: %v", err)
		}
		c.close()
	})
}

// --export: a standing query's latest answer as gauges, a group a gauge.
func TestExportGauges(t *testing.T) {
	c := realTimeCluster(t, 8)
	tok := "export-token-0123456789abcdef"
	srv := serveAPI(t, c.nodes[0], tok)
	if err := c.nodes[0].Export("SELECT SUM(peer_hours) FROM leases"); err != nil {
		t.Fatalf("an aggregate export: %v", err)
	}
	if err := c.nodes[0].Export("SELECT node FROM peers LIMIT 3 EVERY 1s"); err == nil {
		t.Error("a top-k export was accepted")
	}
	if err := c.nodes[0].Export("SELECT region, COUNT(*), AVG(cpu_load) FROM peers WHERE mem_free >= 0B GROUP BY region EVERY 1s"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/metrics", nil)
		req.Header.Set(api.TokenHeader, tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		total := 0.0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, `peerq_export_value{column="COUNT(*)",export="1",group="`) {
				var v float64
				fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v)
				total += v
			}
		}
		resp.Body.Close()
		if total > 7.9 && total < 8.1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exported counts add up to %v, want 8", total)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// serveAPI serves n's API on loopback until the test ends.
func serveAPI(t *testing.T, n *Node, tok string) *APIServer {
	t.Helper()
	srv, err := n.ServeAPI("127.0.0.1:0", tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}
