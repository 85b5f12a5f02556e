package node

import (
	"context"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/peerq/peerq/query"
)

// TestClusterBenchmark measures the embedded cluster for BENCHMARKS.md: the
// time to settle, the latency of COUNT and top-50 at the default round, and
// what the asking peer receives per query, next to a serf.Query that every
// peer answers with its record, on the same cluster. It is a measurement,
// not a test: it runs only with PEERQ_BENCH=N (the number of peers) and
// asserts nothing about time.
//
//	PEERQ_BENCH=200 go test ./node -run TestClusterBenchmark -v -timeout 30m
func TestClusterBenchmark(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PEERQ_BENCH"))
	if n == 0 {
		t.Skip("set PEERQ_BENCH to the number of peers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Nodes: n, Seed: 1, Freeze: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	joined := time.Since(start)
	if err := e.WaitSettled(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("N=%d: joined in %v, settled in %v; %d packets dropped on full queues", n, joined.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond), e.Cluster().Mem.Dropped())
	if n > 300 {
		return
	}
	asker := e.Nodes[0]
	for i, node := range e.Nodes {
		e.Cluster().Peers[i].SetQueryResponder(func(string, []byte) []byte {
			rec := node.record()
			return query.EncodeRow([]query.Value{rec["node"], rec["mem_free"], rec["reliability"]})
		})
	}
	time.Sleep(2 * time.Second) // let the membership go quiet
	for _, src := range []string{
		"SELECT COUNT(*) FROM peers WHERE mem_free >= 4GB",
		"SELECT node, mem_free FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC LIMIT 50",
	} {
		p := compile(t, asker, src)
		var lat []time.Duration
		var msgs, bytes []int64
		for run := 0; run < 5; run++ {
			before := asker.Stats()
			res, err := asker.Query(ctx, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			after := asker.Stats()
			lat = append(lat, res.Elapsed)
			msgs = append(msgs, after.Exchanges-before.Exchanges+after.Served-before.Served)
			bytes = append(bytes, after.BytesReceived-before.BytesReceived)
			time.Sleep(time.Duration(asker.cfg.Linger+2) * asker.cfg.Round) // let the instances expire
		}
		t.Logf("%s: latency median %v (runs %v); asker exchanges %d, bytes received %d (medians)",
			src, median(lat).Round(time.Millisecond), lat, medianInt(msgs), medianInt(bytes))
	}
	// RESERVE 50 against the same SELECT (DESIGN's benchmark for issue 6).
	reserve := compile(t, asker, "RESERVE 50 FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC AS a FOR 1h")
	sel := compile(t, asker, "SELECT node FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC LIMIT 50")
	release := compile(t, asker, "RELEASE a")
	var rt, st []time.Duration
	for run := 0; run < 5; run++ {
		start := time.Now()
		if _, err := asker.Query(ctx, reserve, nil); err != nil {
			t.Fatal(err)
		}
		rt = append(rt, time.Since(start))
		if _, err := asker.Query(ctx, release, nil); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if _, err := asker.Query(ctx, sel, nil); err != nil {
			t.Fatal(err)
		}
		st = append(st, time.Since(start))
		time.Sleep(time.Duration(asker.cfg.Linger+2) * asker.cfg.Round)
	}
	t.Logf("RESERVE 50 (top-k with slack, then claims): median %v (runs %v); the same SELECT: median %v (runs %v)",
		median(rt).Round(time.Millisecond), rt, median(st).Round(time.Millisecond), st)
	for run := 0; run < 3; run++ {
		st, err := e.Cluster().Peers[0].QueryAll("records", nil, n, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("serf.Query answered by every peer: %d responses, %d payload bytes, all in by %v", st.Responses, st.Bytes, st.AllBy.Round(time.Millisecond))
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianInt(xs []int64) int64 {
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
