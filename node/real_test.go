package node

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/query"
)

// Five peers on real sockets on 127.0.0.1 (UDP and TCP gossip, TCP
// exchanges, each on its own ports), with an encryption key, answer a top-k
// and a COUNT.
func TestRealSockets(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	var nodes []*Node
	var recs []query.Record
	for i := 0; i < 5; i++ {
		rec := query.Synthetic(3, i)
		ocfg := overlay.DefaultConfig(fmt.Sprintf("real-%d", i))
		ocfg.BindAddr, ocfg.ExchangeAddr, ocfg.Key = "127.0.0.1:0", "127.0.0.1:0", key
		ocfg.Memberlist = overlay.TunedConfig(5) // local timeouts
		ocfg.Tags = map[string]string{"region": rec["region"].Str}
		r := rec
		cfg := DefaultConfig(ocfg, func() query.Record { return r })
		cfg.Round, cfg.Seed = 50*time.Millisecond, uint64(i+1)
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
		if i > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := n.Join(ctx, []string{nodes[0].Overlay().Addr()}); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for n.Overlay().Size() != 5 {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d peers", n.Name(), n.Overlay().Size())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, n := range nodes {
		recs = append(recs, n.record())
	}
	for _, src := range []string{
		"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 3",
		"SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE cpu_load < 200%",
	} {
		p := compile(t, nodes[2], src)
		sameAnswer(t, ask(t, nodes[2], p).Result, query.Exact(p, recs), src)
	}
	if s := nodes[2].Stats(); s.Exchanges == 0 || s.Malformed != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A peer killed mid-query does not stop the query: it ends. Once the
// failure detector has declared the dead, answers are the survivors', and a
// top-k never returns a peer the membership knows is dead.
func TestKillMidQuery(t *testing.T) {
	e := startEmbedded(t, 30)
	asker := e.Nodes[0]
	count := compile(t, asker, "SELECT COUNT(*), SUM(cpu_cores) FROM peers WITH ROUNDS 150")
	top := compile(t, asker, "SELECT node FROM peers ORDER BY mem_free DESC LIMIT 5")
	best := query.Exact(top, e.Records()).Nodes[0]
	victims := []int{5, 11, 23}
	for i, n := range e.Nodes {
		if n.Name() == best && i != 0 {
			victims = append(victims, i)
		}
	}
	done := make(chan struct{})
	var res *Result
	var err error
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err = asker.Query(ctx, count, nil)
	}()
	time.Sleep(200 * time.Millisecond) // a few rounds in
	for _, i := range victims {
		if err := e.Kill(i); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	n := float64(len(e.Nodes))
	if got := res.Rows[0][0].Num; got < n-float64(len(victims)) || got > n {
		t.Errorf("COUNT during the kill: %v", got)
	}
	// Wait for the failure detector, then ask again.
	deadline := time.Now().Add(60 * time.Second)
	for asker.Overlay().Size() != len(e.Nodes)-len(victims) {
		if time.Now().After(deadline) {
			t.Fatalf("the asker still sees %d peers", asker.Overlay().Size())
		}
		time.Sleep(100 * time.Millisecond)
	}
	survivors := e.Records()
	for _, p := range []*query.Plan{count, top} {
		res := ask(t, asker, p)
		want := query.Exact(p, survivors)
		if fmt.Sprint(res.Rows) != fmt.Sprint(want.Rows) && p == top {
			t.Errorf("top-5 after the deaths: %v, want %v", res.Rows, want.Rows)
		}
		for _, name := range res.Nodes {
			if name == best {
				t.Errorf("the top-k returned %s, which the membership knows is dead", best)
			}
		}
		if p == count && (res.Rows[0][0] != want.Rows[0][0] || math.Abs(res.Rows[0][1].Num-want.Rows[0][1].Num) > 0.01*want.Rows[0][1].Num) {
			t.Errorf("after the deaths: %v, want the survivors' %v", res.Rows, want.Rows)
		}
	}
}
