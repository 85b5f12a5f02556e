package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/query"
	"github.com/prometheus/client_golang/prometheus"
)

var _ Peer = (*node.Node)(nil)

// The API's tests serve real nodes on a fake network, in real time: an
// HTTP client blocked on a socket would stop synctest's clock. Peer i is
// node.SyntheticPeer(1, i) with 20 ms rounds, as in node's own tests.
func startCluster(t *testing.T, n int, tune func(*node.Config)) []*node.Node {
	t.Helper()
	return startClusterOn(t, fakenet.New(fakenet.DefaultConfig()), n, tune)
}

// startClusterOn starts the cluster on nw, for a test that fails its
// peers.
func startClusterOn(t *testing.T, nw *fakenet.Network, n int, tune func(*node.Config)) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	for i := range n {
		rec, tags := node.SyntheticPeer(1, i)
		cfg := node.DefaultConfig(func() query.Record { return rec })
		cfg.Round, cfg.Tags, cfg.Seed = 20*time.Millisecond, tags, 1_000_003+uint64(i)+1
		if tune != nil {
			tune(&cfg)
		}
		nd, err := node.New(cfg, nw.Add(query.SyntheticName(i), tags))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		nodes = append(nodes, nd)
	}
	return nodes
}

// serve serves n's API on loopback until the test ends.
func serve(t *testing.T, n Peer, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := Start(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// serveToken serves n's API with the default limits.
func serveToken(t *testing.T, n Peer, tok string) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Token = tok
	return serve(t, n, cfg)
}

// execute runs a statement at n, as a user of the peer would, and fails
// the test on error.
func execute(t *testing.T, n *node.Node, statement string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := n.Execute(ctx, statement, nil); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

// metric is the value of n's gauge name with the labels given (name,
// value, ...), and whether n shows it, read from its collector.
func metric(t *testing.T, n *node.Node, name string, labels ...string) (float64, bool) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(n.Metrics()); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// running is how many query instances the nodes take part in now, asked
// or joined (peerq_queries_running).
func running(t *testing.T, nodes []*node.Node) int {
	t.Helper()
	total := 0
	for _, n := range nodes {
		v, ok := metric(t, n, "peerq_queries_running")
		if !ok {
			t.Fatalf("%s shows no peerq_queries_running", n.Name())
		}
		total += int(v)
	}
	return total
}

func TestAPI(t *testing.T) {
	nodes := startCluster(t, 12, nil)
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
	srv := serveToken(t, nodes[0], tok)
	url := "http://" + srv.Addr()
	// The membership's events reach an agent's log on a goroutine of its
	// own (the node's watch): on a busy machine the log lagged the joins
	// (6 of 11 shown), so the events asked below wait for the last one.
	for deadline := time.Now().Add(30 * time.Second); !slices.ContainsFunc(nodes[0].Events(0), func(e node.MemberEvent) bool { return e.Node == "peer-000011" }); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("peer-000011's join is not in the event log after 30 s: %v", nodes[0].Events(0))
		}
	}
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
		{"GET", "/v1/members?status=alive", "", tok, 200, `"status":"alive"`},
		{"GET", "/v1/members?status=gone", "", tok, 400, "want alive, failed, left or leaving"},
		{"GET", "/v1/nodes/peer-000003", "", "", 401, "token"},
		{"GET", "/v1/nodes/peer-000003", "", tok, 200, `"name":"peer-000003"`},
		{"GET", "/v1/nodes/peer-000000?events=0", "", tok, 200, `"self":true,"identity":`},
		{"GET", "/v1/nodes/peer-000000?events=0", "", tok, 200, `"owns":[],"events":[]}`},
		{"GET", "/v1/nodes/peer-000000?events=1", "", tok, 200, `"events":[{"at":`},
		{"GET", "/v1/nodes/peer-000003?events=257", "", tok, 400, "want 0 to 256"},
		{"GET", "/v1/nodes/nobody", "", tok, 404, `"code":"not_found"`},
		{"GET", "/v1/health", "", "wrong", 401, "agent peer-000000"},
		{"POST", "/v1/query", `{"statement": "SELECT node FORM peers"}`, tok, 400, `"code":"statement"`},
		{"GET", "/v1/attributes", "", tok, 200, "mem_free"},
		{"GET", "/v1/events", "", "", 401, "token"},
		{"GET", "/v1/events", "", tok, 200, `"node":"peer-000011","event":"member-join","addr":"fake:peer-000011"}]`},
		{"GET", "/v1/events?node=peer-000003", "", tok, 200, `"node":"peer-000003","event":"member-join"`},
		{"GET", "/v1/events?limit=x", "", tok, 400, `"code":"bad_request"`},
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

	// The events: peer 0 saw the 11 others join, in order; limit keeps
	// the newest.
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"peer-000001", "peer-000002", "peer-000003", "peer-000004", "peer-000005", "peer-000006", "peer-000007", "peer-000008", "peer-000009", "peer-000010", "peer-000011"}},
		{"?limit=2", []string{"peer-000010", "peer-000011"}},
		{"?node=peer-000004&limit=5", []string{"peer-000004"}},
		{"?node=nobody", []string{}},
	} {
		resp := do("GET", "/v1/events"+c.query, "", tok)
		var evs []api.MemberEvent
		err := json.NewDecoder(resp.Body).Decode(&evs)
		resp.Body.Close()
		got := []string{}
		for _, e := range evs {
			got = append(got, e.Node)
			if e.Event != "member-join" || e.At.IsZero() {
				t.Errorf("/v1/events%s: %+v", c.query, e)
			}
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("/v1/events%s: %v %v, want %v", c.query, got, err, c.want)
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

// /v1/health over real Serf peers: the peers, and Serf's members by state
// (a fake network keeps no states, and health leaves them out).
func TestHealthMemberStates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := node.StartEmbedded(ctx, node.EmbeddedConfig{Nodes: 3, Seed: 1, Freeze: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.WaitSettled(ctx, nil); err != nil {
		t.Fatal(err)
	}
	srv := serveToken(t, e.Nodes[0], "t")
	resp, body, err := rawRequest(srv.Addr(), "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Peerq-Token: t\r\nConnection: close\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Node    string
		Peers   int
		Members map[string]int
	}
	if err := json.Unmarshal(body, &h); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
	}
	if h.Node != e.Nodes[0].Name() || h.Peers != 3 || len(h.Members) != 1 || h.Members["alive"] != 3 {
		t.Errorf("health %s", body)
	}

	// A member that fails stays in /v1/members, failed, with when this
	// agent saw it go; its node page says so, with the event.
	victim := e.Nodes[2].Name()
	if err := e.Kill(2); err != nil {
		t.Fatal(err)
	}
	var members []api.Member
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, body, err := rawRequest(srv.Addr(), "GET /v1/members?status=failed HTTP/1.1\r\nHost: x\r\nX-Peerq-Token: t\r\nConnection: close\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, &members); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if len(members) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed member listed 45 s after %s was killed", victim)
		}
	}
	if len(members) != 1 || members[0].Name != victim || members[0].Status != "failed" || members[0].LastSeen == nil || members[0].Tags["region"] == "" {
		t.Errorf("failed members: %+v", members)
	}
	_, body, err = rawRequest(srv.Addr(), "GET /v1/nodes/"+victim+" HTTP/1.1\r\nHost: x\r\nX-Peerq-Token: t\r\nConnection: close\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	var page api.Node
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if n := len(page.Events); page.Status != "failed" || n == 0 || page.Events[n-1].Event != "member-failed" || page.Events[n-1].Addr == "" {
		t.Errorf("the failed member's page: %s", body)
	}
}

// A client that goes away cancels its query: the peer asks nothing any
// more (peerq_queries_asking counts the statements it asks until each
// stops).
func TestAPICancel(t *testing.T) {
	nodes := startCluster(t, 8, nil)
	srv := serveToken(t, nodes[0], "t")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+srv.Addr()+"/v1/query",
		strings.NewReader(`{"statement": "SELECT AVG(cpu_load) FROM peers WITH ROUNDS 1000, ACCURACY 0.001%"}`))
	req.Header.Set(api.TokenHeader, "t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bufio.NewReader(resp.Body).ReadString('\n') // the first progress line
	if asking, _ := metric(t, nodes[0], "peerq_queries_asking"); asking != 1 {
		t.Fatalf("the peer asks %v statements while the client reads, want 1", asking)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		asking, ok := metric(t, nodes[0], "peerq_queries_asking")
		if !ok {
			t.Fatal("no peerq_queries_asking")
		}
		if asking == 0 {
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
	nodes := startCluster(t, 8, nil)
	tok := "metrics-token-0123456789abcdef"
	srv := serveToken(t, nodes[0], tok)
	execute(t, nodes[0], "SELECT COUNT(*) FROM peers WHERE mem_free >= 1GB")
	execute(t, nodes[0], "SELECT COUNT(*) FROM peers")
	execute(t, nodes[0], "RESERVE 2 AS watched FOR 1m")
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
		`peerq_answers_total{status="exact"} 2`,
		`peerq_answers_total{status="converged"} 1`,
		`peerq_decoder_rejections_total 0`,
		`peerq_lease_tags_malformed_total 0`,
		`peerq_queries_unreadable_total 0`,
		`go_goroutines `,
		`peerq_build_info{commit="unknown",go_version="` + runtime.Version() + `",version="unknown"} 1`,
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
	nodes := startCluster(t, 8, nil)
	tok := "watch-token-0123456789abcdef"
	srv := serveToken(t, nodes[0], tok)
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
	for left := -1; left != 0; {
		left = running(t, nodes)
		if time.Now().After(deadline) {
			t.Fatalf("%d query instances still running after the watch stopped", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := nodes[0].Execute(context.Background(), "WATCH SELECT COUNT(*) FROM peers EVERY 5s", nil); err == nil || !strings.Contains(err.Error(), "once every epoch") {
		t.Errorf("Execute of a WATCH: %v", err)
	}
}

func FuzzDecodeQueryRequest(f *testing.F) {
	f.Add([]byte(`{"statement": "SELECT COUNT(*) FROM peers"}`))
	f.Add([]byte(`{"statement": ""}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeQueryRequest(strings.NewReader(string(b)))
		if err == nil && strings.TrimSpace(req.Statement) == "" {
			t.Fatal("accepted a request without a statement")
		}
	})
}
