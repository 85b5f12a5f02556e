package node

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/query"
)

// Most of the runtime's tests run on fakenet inside testing/synctest: the
// cluster lives in fake time, so rounds, timeouts and lease expiries cost
// only CPU, and a loaded machine slows a test down without changing what
// it sees. The embedded cluster of real Serf peers and the peers on real
// sockets have their own tests (real_test.go).
//
// Every test of the package calls t.Parallel (go test runs GOMAXPROCS of
// them at once): each builds its own cluster — fake network, embedded Serf
// on its own in-memory transport, or sockets on ports the system picks —
// and the package has no state they share. A test in fake time runs in a
// bubble of its own, its clock untouched by the others; one in real time
// waits for conditions with deadlines. The measurements (PEERQ_* set:
// bench_test.go, churnbench_test.go, TestFaultTable's full table) run
// alone.

var _ Network = (*fakenet.Host)(nil)

// cluster is a fake cluster of peers with synthetic records.
type cluster struct {
	net   *fakenet.Network
	nodes []*Node
	cfgs  []Config
	// verified is the peers' one signature cache, as the embedded
	// cluster's (Config.Verified): a signature checked by one is checked.
	// With a cache each, the 200-peer RESERVE race spent a fifth of its
	// time under -race (270 s) in ed25519 checks of the same entries.
	verified *SignatureCache
}

// startFake starts n peers on a fake network. Inside synctest.Test it runs
// in fake time; outside, in real time (for standing queries, whose epochs
// wait on the wall clock).
func startFake(t testing.TB, n int, fcfg fakenet.Config, seed uint64, tune func(*Config)) *cluster {
	t.Helper()
	c := &cluster{net: fakenet.New(fcfg), verified: NewSignatureCache()}
	for i := 0; i < n; i++ {
		c.add(t, seed, tune)
	}
	t.Cleanup(c.close)
	return c
}

// add starts the next peer, len(c.nodes), on c's network: every live peer
// sees it join.
func (c *cluster) add(t testing.TB, seed uint64, tune func(*Config)) {
	t.Helper()
	i := len(c.nodes)
	rec, tags := SyntheticPeer(seed, i)
	h := c.net.Add(query.SyntheticName(i), tags)
	cfg := DefaultConfig(func() query.Record { return rec })
	cfg.Tags, cfg.Seed, cfg.Verified = tags, seed*1_000_003+uint64(i)+1, c.verified
	if tune != nil {
		tune(&cfg)
	}
	node, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes = append(c.nodes, node)
	c.cfgs = append(c.cfgs, cfg)
}

// seeds are the seeds a test runs its schedule with — under the race
// detector, the first only. The schedule, sizes and checks are the same;
// the other seeds are other random schedules of it, which go test ./...
// runs, and under -race each costs two to three times its time (the
// RESERVE races at 200 peers, 50 s a seed on 2 cores), which the race run
// of CI's 15 minutes cannot pay.
func seeds(all ...uint64) []uint64 {
	if raceDetector {
		return all[:1]
	}
	return all
}

// restart brings a killed peer back on its own configuration (and data
// dir, if it has one), as a restarted agent.
func (c *cluster) restart(t testing.TB, i int) {
	t.Helper()
	h := c.net.Revive(c.nodes[i].Name())
	n, err := New(c.cfgs[i], h)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[i] = n
}

func (c *cluster) close() {
	for _, n := range c.nodes {
		n.Close()
	}
}

// kill crashes peer i: it stops at once, the others see it fail after the
// network's detection delay.
func (c *cluster) kill(i int) {
	c.nodes[i].Close()
	c.net.Crash(c.nodes[i].Name())
}

// records is every live peer's record as it reports it: the oracle.
func (c *cluster) records() []query.Record { return liveRecords(c.nodes) }

// liveRecords are the records of the nodes not closed, as each reports it.
func liveRecords(nodes []*Node) []query.Record {
	var out []query.Record
	for _, n := range nodes {
		if !n.closed() {
			out = append(out, n.record())
		}
	}
	return out
}

// fake runs f in a synctest bubble on a fresh fake cluster of n peers.
func fake(t *testing.T, n int, fcfg fakenet.Config, f func(t *testing.T, c *cluster)) {
	synctest.Test(t, func(t *testing.T) {
		f(t, startFake(t, n, fcfg, 1, nil))
	})
}

// elapse lets d of fake time pass: only inside a synctest bubble, where
// synctest.Wait (which panics outside one) holds, and the whole cluster
// runs meanwhile at the speed of the CPU. Nothing in these tests sleeps
// for real longer than a poll.
func elapse(d time.Duration) {
	synctest.Wait()
	time.Sleep(d)
}

func compile(t testing.TB, n *Node, src string) *query.Plan {
	t.Helper()
	p, err := n.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// queryLater asks p at n in the background; wait blocks until the answer
// is back, and returns it.
func queryLater(n *Node, p *query.Plan) (wait func() (*answer.Answer, error)) {
	var res *answer.Answer
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err = n.Query(context.Background(), p, nil)
	}()
	return func() (*answer.Answer, error) {
		<-done
		return res, err
	}
}

// ask runs a plan from n and fails the test on error.
func ask(t testing.TB, n *Node, p *query.Plan) *answer.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := n.Query(ctx, p, nil)
	if err != nil {
		t.Fatalf("%s: %v", p.Text, err)
	}
	return res
}

// sameAnswer checks a gossip answer against the exact one: the same rows,
// numbers within 1%, everything else equal.
func sameAnswer(t testing.TB, got, want *answer.Answer, label string) {
	t.Helper()
	if len(got.Rows) != len(want.Rows) {
		t.Fatalf("%s: %d rows, want %d\n got %v\nwant %v", label, len(got.Rows), len(want.Rows), got.Rows, want.Rows)
	}
	for i := range want.Rows {
		for j, w := range want.Rows[i] {
			g := got.Rows[i][j]
			if w.Kind.Numeric() && math.Abs(g.Num-w.Num) > 0.01*math.Abs(w.Num)+1e-9 || !w.Kind.Numeric() && g != w {
				t.Errorf("%s: row %d col %d: %v, want %v", label, i, j, g, w)
			}
		}
	}
}

func TestQueries(t *testing.T) {
	t.Parallel()
	fake(t, 40, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		asker := c.nodes[3]
		for _, src := range []string{
			"SELECT COUNT(*), AVG(cpu_load), MAX(mem_free) FROM peers WHERE mem_free >= 4GB",
			"SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 10",
			"SELECT region, COUNT(*) FROM peers GROUP BY region",
			"SELECT COUNT(*) FROM peers WHERE region = 'eu'",
			"SELECT node, rtt FROM peers ORDER BY rtt LIMIT 3",
		} {
			p := compile(t, asker, src)
			res := ask(t, asker, p)
			t.Logf("%s: %d rounds, %v (fake time), converged %v: %v", src, res.Rounds, res.Took(), res.Converged, res.Rows)
			if !res.Converged {
				t.Errorf("%s: not converged", src)
			}
			want := query.Exact(p, c.records())
			if src == "SELECT node, rtt FROM peers ORDER BY rtt LIMIT 3" {
				// rtt is to the asker: the oracle computes it the same way.
				var recs []query.Record
				for _, n := range c.nodes {
					recs = append(recs, recordFor(n.net, n.record(), asker.net.Coordinate()))
				}
				want = query.Exact(p, recs)
				if res.Rows[0][1].IsNull() {
					t.Errorf("rtt is NULL: %v", res.Rows)
				}
			}
			sameAnswer(t, res, want, src)
		}
	})
}

// TestOutOfRoundsSaysWhy: an answer the rule did not call final within
// its budget says which of the rule's conditions it waited for.
func TestOutOfRoundsSaysWhy(t *testing.T) {
	for _, c := range []struct{ rule, want string }{
		{"", "not converged within the budget of 49 rounds"},
		{"participants 244.603, not within half the accuracy of 250 members", "not converged within the budget of 49 rounds (the rule waited for: participants 244.603, not within half the accuracy of 250 members)"},
	} {
		if got := outOfRounds(49, c.rule); got != c.want {
			t.Errorf("outOfRounds(49, %q) = %q, want %q", c.rule, got, c.want)
		}
	}
}

func TestConcurrentQueries(t *testing.T) {
	t.Parallel()
	fake(t, 40, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		srcs := []string{
			"SELECT COUNT(*) FROM peers WHERE mem_free >= 4GB",
			"SELECT AVG(cpu_load) FROM peers",
			"SELECT node FROM peers ORDER BY uptime DESC LIMIT 5",
			"SELECT region, SUM(cpu_cores) FROM peers WHERE cpu_load < 50% GROUP BY region",
			"SELECT MAX(disk_free), MIN(mem_total) FROM peers",
			"SELECT node FROM peers ORDER BY mem_free LIMIT 3",
		}
		type asked struct {
			src string
			res *answer.Answer
			err error
		}
		out := make(chan asked, len(srcs))
		recs := c.records()
		for i, src := range srcs {
			asker := c.nodes[i*5]
			p := compile(t, asker, src)
			go func() {
				res, err := asker.Query(context.Background(), p, nil)
				out <- asked{src, res, err}
			}()
		}
		for range srcs {
			a := <-out
			if a.err != nil {
				t.Fatalf("%s: %v", a.src, a.err)
			}
			t.Logf("%s: %d rounds, converged %v, %v", a.src, a.res.Rounds, a.res.Converged, a.res.Rows)
			sameAnswer(t, a.res, query.Exact(compile(t, c.nodes[0], a.src), recs), a.src)
		}
		// Every peer took part in every query, and the instances were
		// collected once their budget and linger had passed.
		n0 := c.nodes[0]
		elapse(time.Duration(4*(n0.cfg.Linger+60)) * n0.cfg.Round)
		for _, n := range c.nodes {
			if s := n.Stats(); s.Joined < int64(len(srcs)-1) {
				t.Errorf("%s joined %d queries", n.Name(), s.Joined)
			}
			n.rt.mu.Lock()
			left := len(n.rt.queries)
			n.rt.mu.Unlock()
			if left != 0 {
				t.Errorf("%s still holds %d query instances", n.Name(), left)
			}
		}
	})
}

// The news that a query ended spreads for a few rounds from each peer that
// hears it, then stops: a peer that has told it does not start again when
// a later peer passes it back. It once went round for ever — every
// exchange of an idle cluster carried every query that had ever ended,
// and 30 idle peers spent 7 s of CPU a minute after 40 queries.
func TestEndedNewsStops(t *testing.T) {
	t.Parallel()
	fake(t, 30, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		asker := c.nodes[0]
		for k := range 10 {
			ask(t, asker, compile(t, asker, fmt.Sprintf("SELECT COUNT(*) FROM peers WHERE cpu_cores >= %d", k)))
		}
		elapse(time.Minute)
		told := 0
		for _, n := range c.nodes {
			n.rt.mu.Lock()
			if len(n.rt.ended) != 0 {
				t.Errorf("%s still tells %d ended queries a minute after the last", n.Name(), len(n.rt.ended))
			}
			told += len(n.rt.told)
			n.rt.mu.Unlock()
		}
		if told == 0 {
			t.Error("no peer told the news of an ended query")
		}
	})
}

// A top-k is announced to 3 more peers a round while it is young (an
// aggregate too from 32 peers); a peer that held it already says so,
// and the announcer counts it (run.StopAnnouncing of them stop it). The
// answers are exact.
func TestAnnouncementsFindHolders(t *testing.T) {
	t.Parallel()
	fake(t, 60, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		asker := c.nodes[5]
		for _, src := range []string{
			"SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 2GB",
			"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 10",
		} {
			p := compile(t, asker, src)
			sameAnswer(t, ask(t, asker, p), query.Exact(p, c.records()), src)
		}
		var announced, holders int64
		for _, n := range c.nodes {
			st := n.Stats()
			announced += st.Announced
			holders += st.AnnouncedHolders
			if st.AnnouncedHolders > st.Announced {
				t.Errorf("%s: %d announcements found holders, of %d sent", n.Name(), st.AnnouncedHolders, st.Announced)
			}
		}
		if announced == 0 || holders == 0 {
			t.Errorf("%d announcements, %d of them to peers that held the query", announced, holders)
		}
		t.Logf("%d announcements, %d to peers that held the query", announced, holders)
		if st, shown := asker.Stats().AnnouncedHolders, metric(t, asker, "peerq_queries_announced_holders_total"); shown != strconv.FormatInt(st, 10) {
			t.Errorf("/metrics shows %s, Stats %d", shown, st)
		}
	})
}

// A peer killed mid-query does not stop the query: it ends. Once the
// failure detector has declared the dead, answers are the survivors', and a
// top-k never returns a peer the membership knows is dead.
func TestKillMidQuery(t *testing.T) {
	t.Parallel()
	fake(t, 30, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		asker := c.nodes[0]
		count := compile(t, asker, "SELECT COUNT(*), SUM(cpu_cores) FROM peers WITH ROUNDS 150")
		top := compile(t, asker, "SELECT node FROM peers ORDER BY mem_free DESC LIMIT 5")
		best := query.Exact(top, c.records()).Nodes[0]
		victims := []int{5, 11, 23}
		for i, n := range c.nodes {
			if n.Name() == best && i != 0 {
				victims = append(victims, i)
			}
		}
		wait := queryLater(asker, count)
		elapse(200 * time.Millisecond) // a few rounds in
		for _, i := range victims {
			c.kill(i)
		}
		res, err := wait()
		if err != nil {
			t.Fatal(err)
		}
		n := float64(len(c.nodes))
		if got := res.Rows[0][0].Num; got < n-float64(len(victims)) || got > n {
			t.Errorf("COUNT during the kill: %v", got)
		}
		elapse(3 * time.Second) // the failure detector
		if asker.net.Size() != len(c.nodes)-len(victims) {
			t.Fatalf("the asker still sees %d peers", asker.net.Size())
		}
		survivors := c.records()
		for _, p := range []*query.Plan{count, top} {
			res := ask(t, asker, p)
			want := query.Exact(p, survivors)
			sameAnswer(t, res, want, p.Text)
			for _, name := range res.Nodes {
				if name == best {
					t.Errorf("the top-k returned %s, which the membership knows is dead", best)
				}
			}
		}
	})
}

// SHOW MEMBERS lists the members that failed or left beside the live
// ones, with their status, when they were last seen alive, and their zone.
func TestShowMembersStatus(t *testing.T) {
	t.Parallel()
	fake(t, 5, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		start := time.Now()
		c.kill(1)
		c.nodes[2].Close()
		c.net.Leave(c.nodes[2].Name())
		elapse(5 * time.Second) // past the fake network's detection delay
		ans := ask(t, c.nodes[0], compile(t, c.nodes[0], "SHOW MEMBERS"))
		col := map[string]int{}
		for i, k := range ans.Columns {
			col[k.Name] = i
		}
		want := map[string]string{c.nodes[0].Name(): "alive", c.nodes[1].Name(): "failed", c.nodes[2].Name(): "left",
			c.nodes[3].Name(): "alive", c.nodes[4].Name(): "alive"}
		if len(ans.Rows) != len(want) {
			t.Fatalf("SHOW MEMBERS has %d rows, want %d: %v", len(ans.Rows), len(want), ans.Text())
		}
		for _, row := range ans.Rows {
			name := row[col["node"]].Str
			if got := row[col["status"]].Str; got != want[name] {
				t.Errorf("%s: status %q, want %q", name, got, want[name])
			}
			seen, err := time.Parse(time.RFC3339, row[col["last_seen"]].Str)
			if err != nil || seen.Before(start.Add(-time.Second)) || seen.After(time.Now()) {
				t.Errorf("%s: last_seen %q (%v), want a time since the test began", name, row[col["last_seen"]].Str, err)
			}
			// Left at once, failed once detected (2 s): 3 s ago or more.
			if want[name] != "alive" && seen.After(time.Now().Add(-3*time.Second)) {
				t.Errorf("%s (%s): last seen %v, want when it went (3 s ago or more)", name, want[name], seen)
			}
			if z := row[col["zone"]]; z.Kind != query.KindString || z.Str == "" {
				t.Errorf("%s: zone %v", name, z)
			}
		}
	})
}

// Quiet peers: with nothing to do, a peer's rounds last QuietRound (an
// hour here); a query asked anywhere wakes every peer it reaches at once,
// so answers take no longer than with busy peers, and once the query and
// the news of its end are gone, the peers are quiet again. With a member
// crashed while all were quiet — seen failed, and, the second time, not
// yet — the answer is right or flagged. Mutation: with the wake on a
// joined query removed, the peers it reaches sit out their quiet
// round and the answer comes back partial, not converged.
func TestQuietPeersWake(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n = 12
		c := startFake(t, n, fakenet.DefaultConfig(), 1, func(cfg *Config) { cfg.QuietRound = time.Hour })
		quiet := func() int {
			q := 0
			for _, node := range c.nodes {
				if !node.closed() && node.rt.quiet.Load() {
					q++
				}
			}
			return q
		}
		elapse(10 * time.Second)
		if q := quiet(); q != n {
			t.Fatalf("%d of %d peers quiet with nothing to do", q, n)
		}
		asker := c.nodes[0]
		p := compile(t, asker, "SELECT COUNT(*) FROM peers WHERE cpu_cores >= 1")
		for step, crash := range []int{-1, 5, 7} {
			if crash >= 0 {
				c.kill(crash)
				if step == 1 {
					elapse(30 * time.Second) // seen failed by all, then quiet again
				}
			}
			start := time.Now()
			res := ask(t, asker, p)
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("step %d: answered in %v: the quiet peers were not woken", step, took)
			}
			t.Logf("step %d: %v %s in %v", step, res.Rows[0][0], res.Status, time.Since(start))
			exact := query.Exact(p, c.records())
			switch {
			case step < 2 && (res.Status != StatusConverged || res.Rows[0][0].Num != exact.Rows[0][0].Num):
				// Every live member known live: nothing to flag.
				t.Errorf("step %d: %v (%s: %s), want %v converged", step, res.Rows[0][0], res.Status, res.Reason, exact.Rows[0][0])
			case res.Status != StatusPartial && res.Rows[0][0].Num != exact.Rows[0][0].Num:
				t.Errorf("step %d: %v (%s), want %v or partial", step, res.Rows[0][0], res.Status, exact.Rows[0][0])
			}
			elapse(time.Minute)
			if q, live := quiet(), n-step; q != live {
				t.Errorf("step %d: %d of %d live peers quiet a minute after the answer", step, q, live)
			}
		}
	})
}

// A peer that exchanges with a peer holding a query it lacks, for a query
// of its own, learns the query from the reply (runtime.handOver) and joins
// it; the holder does not hand it over to it again. A lease request's
// reply hands nothing over, and a liar's reply no more than an honest
// one's.
func TestHandOverToAPeerThatPulls(t *testing.T) {
	t.Parallel()
	fake(t, 30, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		// held reports query id's instance at n, if n holds it.
		held := func(n *Node, id QueryID) *instance {
			n.rt.mu.Lock()
			defer n.rt.mu.Unlock()
			return n.rt.queries[id]
		}
		// started waits until n starts a query other than not, and
		// returns its ID.
		started := func(n *Node, not QueryID) QueryID {
			for range 1000 {
				n.rt.mu.Lock()
				for id, q := range n.rt.queries {
					if id != not && q.origin {
						n.rt.mu.Unlock()
						return id
					}
				}
				n.rt.mu.Unlock()
				elapse(time.Millisecond)
			}
			t.Fatalf("%s started no query", n.Name())
			return QueryID{}
		}
		asker, other := c.nodes[0], c.nodes[1]
		// A long query of other's, which every peer then runs: the
		// exchanges a peer pulls with.
		long := compile(t, other, "SELECT SUM(cpu_cores), COUNT(*) FROM peers WITH ROUNDS 150")
		go other.Query(context.Background(), long, nil)
		id2 := started(other, QueryID{})
		for all, try := false, 0; !all; try++ {
			if try == 1000 {
				t.Fatal("the long query did not reach every peer in 1 s")
			}
			elapse(time.Millisecond)
			all = true
			for _, n := range c.nodes {
				all = all && held(n, id2) != nil
			}
		}
		p := compile(t, asker, "SELECT COUNT(*), SUM(mem_free) FROM peers WITH ROUNDS 150")
		wait := queryLater(asker, p)
		id := started(asker, id2)
		q := held(asker, id)
		var lacker *Node
		for _, n := range c.nodes[2:] {
			asker.rt.mu.Lock()
			known := q.has[peerID(n.Name())]
			asker.rt.mu.Unlock()
			if held(n, id) == nil && !known && held(n, id2) != nil {
				lacker = n
				break
			}
		}
		if lacker == nil {
			n1, n2 := 0, 0
			for _, n := range c.nodes {
				if held(n, id) != nil {
					n1++
				}
				if held(n, id2) != nil {
					n2++
				}
			}
			t.Fatalf("no peer lacks the query and holds the long one: %d hold it, %d the long one", n1, n2)
		}
		// handed says whether the asker handed its query to the lacker.
		handed := func() bool {
			asker.rt.mu.Lock()
			defer asker.rt.mu.Unlock()
			return q.handed[peerID(lacker.Name())]
		}

		// A lease request (a release of nothing) pulls nothing.
		lease := encodeBatch(batch{Entries: []entry{{Kind: protoLease, Msg: []byte{0}}}})
		lacker.rt.exchange(asker.Name(), nil, lease, true)
		if held(lacker, id) != nil || handed() {
			t.Fatal("a lease request's reply handed the query over")
		}

		// An announcement of the long query, as a young query's exchange
		// carries: the reply hands the new one over.
		long2 := held(lacker, id2)
		lacker.rt.mu.Lock()
		e := long2.entry(nil, true, peerID(asker.Name()))
		e.Plan, e.Excluded = long2.planBytes, nil
		lacker.rt.mu.Unlock()
		entries := []entry{e}
		if !lacker.rt.exchange(asker.Name(), entries, encodeBatch(batch{Entries: entries}), true) {
			t.Fatal("the exchange failed")
		}
		if held(lacker, id) == nil || !handed() {
			t.Errorf("%s exchanged with the asker and did not learn its query (handed %v)", lacker.Name(), handed())
		}
		// Once handed, not again: the asker's reply to a second exchange
		// carries no plan of it (read off the wire).
		var again []entry
		if resp, err := asker.rt.serve(lacker.Name(), encodeBatch(batch{Entries: entries})); err != nil {
			t.Fatal(err)
		} else if b, err := decodeBatch(resp); err != nil {
			t.Fatal(err)
		} else {
			again = b.Entries
		}
		if announced(again, id) {
			t.Errorf("a second exchange handed the query over again")
		}
		res, err := wait()
		if err != nil {
			t.Fatal(err)
		}
		sameAnswer(t, res, query.Exact(p, c.records()), p.Text)

		// A liar's reply hands over more queries than an honest peer's
		// does: those past handOverMax go no further.
		wire, err := compile(t, asker, "SELECT SUM(cpu_cores) FROM peers").Encode()
		if err != nil {
			t.Fatal(err)
		}
		var lies []entry
		for range handOverMax + 2 {
			lies = append(lies, entry{ID: newQueryID(), Kind: protoAggregate, Plan: wire, Round: 1})
		}
		c.net.Add("liar", nil).Serve(func(string, []byte) ([]byte, error) { return encodeBatch(batch{Entries: lies}), nil })
		st := lacker.Stats()
		lacker.rt.exchange("liar", entries, encodeBatch(batch{Entries: entries}), true)
		if joined, malformed := lacker.Stats().Joined-st.Joined, lacker.Stats().Malformed-st.Malformed; joined != handOverMax || malformed != 2 {
			t.Errorf("a reply handing over %d queries: %d joined, %d refused as malformed; want %d and 2", len(lies), joined, malformed, handOverMax)
		}
	})
}
