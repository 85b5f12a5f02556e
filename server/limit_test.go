package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/node"
)

// rawRequest sends one request on a connection of its own and reads the
// answer; err is the connection's failure when no answer came.
func rawRequest(addr, request string) (*http.Response, []byte, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	// The agent may answer and shut its side before it reads: a failed
	// write is not the end, the answer may be there.
	c.Write([]byte(request))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// checkBusy says what is wrong with a 429: its Retry-After, its JSON
// error and its message must agree.
func checkBusy(resp *http.Response, body []byte) error {
	if resp.StatusCode != http.StatusTooManyRequests {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || n < 1 || n > maxRetryAfter {
		return fmt.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	var e api.Error
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("%v: %s", err, body)
	}
	if e.Code != api.CodeOverloaded || e.RetryAfter != n || !strings.HasPrefix(e.Message, fmt.Sprintf("busy, retry after %d s: ", n)) {
		return fmt.Errorf("Retry-After %d, body %s", n, body)
	}
	return nil
}

// Connections beyond the cap are answered 429 at once, with Retry-After
// and the JSON error; none is closed without an answer, and a place freed
// serves again.
func TestAPIConnectionLimit(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	const maxConns, flood = 4, 300
	srv := serve(t, nodes[0], Config{Token: "t", MaxConns: maxConns, MaxRequests: 64, HeaderTimeout: time.Minute})
	addr := srv.Addr()

	// Hold every place with a WATCH, which streams until its client goes.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var held []*http.Response
	for range maxConns {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/query",
			strings.NewReader(`{"statement": "WATCH SELECT COUNT(*) FROM peers EVERY 1s"}`))
		req.Header.Set(api.TokenHeader, "t")
		// A transport of its own: the connection must not be shared.
		resp, err := (&http.Transport{}).RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("holding a place: %v %v", resp, err)
		}
		held = append(held, resp)
	}

	health := "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Peerq-Token: t\r\nConnection: close\r\n\r\n"
	var wg sync.WaitGroup
	errs := make(chan error, flood)
	for range flood {
		wg.Go(func() {
			resp, body, err := rawRequest(addr, health)
			if err != nil {
				errs <- fmt.Errorf("no answer: %w", err)
				return
			}
			if err := checkBusy(resp, body); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	var failed int
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections beyond the cap were not answered 429", failed, flood)
	}
	if got := srv.ln.refused.Load(); got < flood {
		t.Errorf("%d refusals counted, want %d", got, flood)
	}

	// Places freed, requests are served again (the agent sees the WATCH
	// connections close soon after the clients close them).
	cancel()
	for _, r := range held {
		r.Body.Close()
	}
	for try := 0; ; try++ {
		resp, body, err := rawRequest(addr, health)
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if try == 100 {
			t.Fatalf("after the places were freed: %v %v %s", resp, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A connection held open without a request is answered 408, not closed in
// silence.
func TestAPIHeaderTimeoutAnswers(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	srv := serve(t, nodes[0], Config{Token: "t", MaxConns: 8, MaxRequests: 8, HeaderTimeout: 100 * time.Millisecond})
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("closed without an answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"code":"bad_request"`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	// The place is free again.
	if n := srv.ln.open.Load(); n != 0 {
		for try := 0; n != 0 && try < 100; try++ {
			time.Sleep(20 * time.Millisecond)
			n = srv.ln.open.Load()
		}
		if n != 0 {
			t.Errorf("%d connections still counted open", n)
		}
	}
}

// A statement the peer will not admit (Peer.Admit: ErrOverloaded) is a
// 429 with Retry-After and "busy, retry after N s: " before the peer's
// reason; the client makes it the overload error.
func TestAPIOverloadedStatement(t *testing.T) {
	nodes := startCluster(t, 6, func(cfg *node.Config) { cfg.MaxAsk, cfg.AskQueue = 1, 0 })
	srv := serveToken(t, nodes[0], "t")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One long gossip query takes the only place.
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+srv.Addr()+"/v1/query",
		strings.NewReader(`{"statement": "SELECT AVG(cpu_load) FROM peers WITH ROUNDS 1000, ACCURACY 0.001%"}`))
	req.Header.Set(api.TokenHeader, "t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%v %v", resp, err)
	}
	defer resp.Body.Close()

	body, _ := json.Marshal(api.QueryRequest{Statement: "SELECT AVG(cpu_load) FROM peers"})
	r2, b2, err := rawRequest(srv.Addr(), fmt.Sprintf("POST /v1/query HTTP/1.1\r\nHost: x\r\nX-Peerq-Token: t\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBusy(r2, b2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b2), "at once (max_ask)") {
		t.Errorf("the peer's reason is missing: %s", b2)
	}

	cl := api.NewClient(srv.Addr(), "t", 10*time.Second)
	_, err = cl.Execute(context.Background(), "SELECT AVG(cpu_load) FROM peers", nil)
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeOverloaded || e.RetryAfter < 1 || !strings.Contains(e.Message, "busy, retry after ") {
		t.Errorf("client error %#v", err)
	}
}

// The pacer spreads the refused clients over the time the agent needs to
// serve them, at the rate it measures, and never says less than 1 s or
// more than maxRetryAfter.
func TestAPIRetryAfterPacer(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	// Nothing measured: 4 held, a quarter of a second each, 16 a second.
	p := newPacer(clock, 4)
	for i := range 17 {
		if n, want := p.retryAfter(), 1+i/16; n != want {
			t.Fatalf("unmeasured refusal %d: %d s, want %d", i, n, want)
		}
	}

	// 8 ended in 100 ms: too soon to tell.
	p = newPacer(clock, 4)
	p.done()
	now = now.Add(100 * time.Millisecond)
	for range 7 {
		p.done()
	}
	if n := p.rate(now); n != p.guess {
		t.Errorf("rate %v after 100 ms, want the guess %v", n, p.guess)
	}
	// 400 ended in 400 ms: 1,000 a second.
	now = now.Add(300 * time.Millisecond)
	for range 392 {
		p.done()
	}
	counts := map[int]int{}
	for range 3000 {
		counts[p.retryAfter()]++
	}
	if counts[1] != 1000 || counts[2] != 1000 || counts[3] != 1000 {
		t.Errorf("3,000 refused at 1,000 a second: %v", counts)
	}
	// Two seconds of 1,000 a second serve 2,000 of them.
	for range 2000 {
		now = now.Add(time.Millisecond)
		p.done()
	}
	if n := p.retryAfter(); n < 1 || n > 2 {
		t.Errorf("after 2 s: %d s, want 1 or 2", n)
	}
	// Never more than maxRetryAfter.
	for range 100_000 {
		if n := p.retryAfter(); n > maxRetryAfter {
			t.Fatalf("%d s", n)
		}
	}
	if n := p.retryAfter(); n != maxRetryAfter {
		t.Errorf("a queue of 100,000 at 1,000 a second: %d s, want %d", n, maxRetryAfter)
	}
}
