package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/query"
)

// Right or flagged: under every fault below, an answer the asker calls
// converged is exact (top-k) or within 1% (aggregates) over the members
// alive when it was returned — the population docs/PQL.md promises — and
// names no dead peer; any other answer says it is partial.

// check judges one answer against the survivors' records: it returns
// "right", "flagged" or fails the test on "wrong and unflagged".
func check(t *testing.T, p *query.Plan, res *answer.Answer, err error, survivors []query.Record, dead map[string]bool, label string) string {
	t.Helper()
	if res == nil {
		t.Fatalf("%s: no answer: %v", label, err)
	}
	for _, name := range res.Nodes {
		if dead[name] && !res.Flagged() {
			t.Errorf("%s: a converged answer names %s, which is dead", label, name)
		}
	}
	if res.Flagged() {
		if res.Converged || res.Reason == "" {
			t.Errorf("%s: partial without a reason (%+v)", label, res)
		}
		// Who was left out, unreachable or refused, and the answer's own
		// figures: what a rare flag needs to be understood.
		t.Logf("%s: flagged: %s (peers %d of %d, %d rounds, excluded %v, unreachable %v, refused %v, participants %.2f, error estimate %.3g)", label, res.Reason,
			res.Peers, res.MembersStart, res.Rounds, res.Excluded, res.Unreachable, res.Refused, res.Participants, res.ErrEstimate)
		return "flagged"
	}
	if err != nil {
		t.Errorf("%s: %s answer with an error: %v", label, res.Status, err)
	}
	// Right over the members that took part: those the answer left out
	// (and names) do not count.
	var took []query.Record
	for _, r := range survivors {
		if !slices.Contains(res.Excluded, r["node"].Str) {
			took = append(took, r)
		}
	}
	for _, name := range res.Nodes {
		if slices.Contains(res.Excluded, name) {
			t.Errorf("%s: the answer names %s, which it left out", label, name)
		}
	}
	if len(res.Excluded) > 0 {
		t.Logf("%s: left out %v (%s)", label, res.Excluded, res.Warning)
	}
	want := query.Exact(p, took)
	if !closeTo(res, want) {
		t.Errorf("%s: WRONG AND UNFLAGGED (%s): %v, want %v (members %d→%d, left %v)", label, res.Status, res.Rows, want.Rows,
			res.MembersStart, res.MembersEnd, res.Left)
		return "wrong"
	}
	return "right"
}

// closeTo says whether got is the exact answer, numbers within 1%.
func closeTo(got, want *answer.Answer) bool {
	if len(got.Rows) != len(want.Rows) {
		return false
	}
	for i := range want.Rows {
		for j, w := range want.Rows[i] {
			g := got.Rows[i][j]
			if w.Kind.Numeric() && math.Abs(g.Num-w.Num) > 0.01*math.Abs(w.Num)+1e-9 || !w.Kind.Numeric() && g != w {
				return false
			}
		}
	}
	return true
}

// noticeWithin is how soon after a crash the asker can know of it: an
// exchange must meet the dead peer (a round or two among eight) and time
// out (fakenet's Timeout, 1 s), its verifying ping too (ExchangeTimeout/4,
// 0.5 s), and the hint reach the asker (a round or two): the window in
// which docs/PQL.md says an answer may still count a dead peer.
const noticeWithin = time.Second + 500*time.Millisecond + 5*100*time.Millisecond

var faultQueries = []string{
	"SELECT COUNT(*), SUM(cpu_cores) FROM peers",
	"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 3",
}

// Two of eight peers killed mid-query (kill -9: no leave): the answers are
// the survivors' or flagged, and once the failure detector has spoken, the
// next ones are the survivors', converged.
func TestCrashMidQuery(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fcfg := fakenet.DefaultConfig()
				fcfg.Seed, fcfg.Jitter = seed, 5*time.Millisecond
				c := startFake(t, 8, fcfg, seed, nil)
				asker := c.nodes[0]
				plans := make([]*query.Plan, len(faultQueries))
				for i, src := range faultQueries {
					plans[i] = compile(t, asker, src)
				}
				type out struct {
					res *answer.Answer
					err error
					at  time.Time
				}
				outs := make([]out, len(plans))
				var wg sync.WaitGroup
				for i, p := range plans {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := asker.Query(context.Background(), p, nil)
						outs[i] = out{res, err, time.Now()}
					}()
				}
				elapse(time.Duration(seed%8) * 100 * time.Millisecond) // a few rounds in
				before := c.records()
				dead := map[string]bool{}
				for _, i := range []int{3, 6} {
					dead[c.nodes[i].Name()] = true
					c.kill(i)
				}
				killed := time.Now()
				wg.Wait()
				survivors := c.records()
				for i, p := range plans {
					o := outs[i]
					// An answer returned within a few rounds of the crash
					// may be the one from before it: nobody could know yet
					// (the failure must first be met by an exchange). After
					// that it is the survivors', or flagged.
					if o.at.Sub(killed) < noticeWithin && o.res != nil && o.res.Status != StatusPartial && closeTo(o.res, query.Exact(p, before)) {
						continue
					}
					v := check(t, p, o.res, o.err, survivors, dead, fmt.Sprintf("%s (answered %v after the kill; before it %v)", p.Text, o.at.Sub(killed), query.Exact(p, before).Rows))
					t.Logf("%s: %s, %v after the kill (%s)", p.Text, v, o.at.Sub(killed), o.res.Reason)
				}
				elapse(fcfg.Detect + time.Second)
				for _, p := range plans {
					res, err := asker.Query(context.Background(), p, nil)
					if check(t, p, res, err, survivors, dead, "after detection: "+p.Text) != "right" {
						t.Errorf("after detection: %s not converged: %s", p.Text, res.Reason)
					}
				}
			})
		})
	}
}

// A partition into halves during a query: each side's answers are about
// the members it can reach — exact or flagged — never the old whole, and
// never its own half scaled by members it cannot hear.
func TestPartitionMidQuery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		c := startFake(t, 8, fcfg, 3, nil)
		asker := c.nodes[1]
		p := compile(t, asker, faultQueries[0])
		wait := queryLater(asker, p)
		elapse(300 * time.Millisecond)
		var half []string
		for _, n := range c.nodes[:4] {
			half = append(half, n.Name())
		}
		c.net.Partition(half)
		res, err := wait()
		var side []query.Record
		for _, n := range c.nodes[:4] {
			side = append(side, n.record())
		}
		if res.Status != StatusPartial && !closeTo(res, query.Exact(p, side)) && !closeTo(res, query.Exact(p, c.records())) {
			t.Errorf("during the partition: %v, %s (%s)", res.Rows, res.Status, res.Reason)
		}
		// Once the sides have declared each other failed: this side's.
		elapse(fcfg.Detect + time.Second)
		res, err = asker.Query(context.Background(), p, nil)
		if check(t, p, res, err, side, nil, "after the partition") != "right" {
			t.Errorf("after the partition: not converged: %s", res.Reason)
		}
		if res.Peers != 4 {
			t.Errorf("after the partition the asker scales by %d peers, want 4", res.Peers)
		}
		// Healed: the whole again.
		c.net.Heal()
		elapse(time.Second)
		res, err = asker.Query(context.Background(), p, nil)
		check(t, p, res, err, c.records(), nil, "healed")
	})
}

// Loss, duplication and jitter: right or flagged, and mostly right; with
// the engine's fanout for 30 peers (an aggregate's is 0) and with every
// query announced to 3 more peers a round, whose announcements and
// replies that the query is held are lost and duplicated too.
func TestLossyNetwork(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		loss   float64
		fanout int
	}{{0.05, query.AutoFanout}, {0.2, query.AutoFanout}, {0.05, 3}, {0.2, 3}} {
		loss, fanout := tc.loss, tc.fanout
		t.Run(fmt.Sprintf("loss%v fanout%d", loss, fanout), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				fcfg := fakenet.DefaultConfig()
				fcfg.Loss, fcfg.Duplicate, fcfg.Jitter = loss, 0.05, 20*time.Millisecond
				c := startFake(t, 30, fcfg, 5, func(cfg *Config) { cfg.Fanout = fanout })
				recs := c.records()
				right := 0
				for i := 0; i < 6; i++ {
					src := faultQueries[i%2]
					p := compile(t, c.nodes[i], src)
					res, err := c.nodes[i].Query(context.Background(), p, nil)
					if check(t, p, res, err, recs, nil, fmt.Sprintf("%s at %.0f%% loss", src, 100*loss)) == "right" {
						right++
					}
				}
				t.Logf("%.0f%% loss: %d of 6 right, the rest flagged", 100*loss, right)
				if right < 3 {
					t.Errorf("only %d of 6 converged at %.0f%% loss", right, 100*loss)
				}
			})
		})
	}
}

// Capacity: 200 concurrent queries from one peer of 8 are all answered
// right; a cluster whose peers take part in only a few queries at once
// refuses the rest explicitly, and the answers that miss a refusing peer
// say so.
func TestConcurrency(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 8, fakenet.DefaultConfig(), 7, func(cfg *Config) { cfg.MaxAsk = 256 })
		if right := rightOfConcurrent(t, c, faultQueries[0], 200, 1); right < 180 {
			t.Errorf("%d of 200 concurrent queries right", right)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 8, fakenet.DefaultConfig(), 7, func(cfg *Config) { cfg.MaxQueries, cfg.MaxAsk, cfg.AskQueue = 4, 6, 2 })
		recs := c.records()
		p := compile(t, c.nodes[0], faultQueries[0])
		var wg sync.WaitGroup
		var mu sync.Mutex
		count := map[string]int{}
		for i := 0; i < 12; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := c.nodes[i%2].Query(context.Background(), p, nil)
				v := "overloaded"
				if res != nil {
					v = check(t, p, res, err, recs, nil, fmt.Sprint("query ", i))
					if v == "flagged" && len(res.Refused) == 0 && len(res.Unreachable) == 0 {
						t.Errorf("query %d flagged without naming who refused: %s", i, res.Reason)
					}
				} else if !errorsIsOverloaded(err) {
					t.Errorf("query %d: %v", i, err)
				}
				mu.Lock()
				count[v]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		t.Logf("12 queries, places for 4 a peer: %v", count)
		if count["flagged"]+count["overloaded"] == 0 {
			t.Error("no query was refused or flagged, though peers take part in only 4 at once")
		}
	})
}

// Many askers at once on a slow network (30 ms each way): every answer
// converges. A peer that joins a query wakes its loop to gossip it, but a
// round must not start while the last one's exchange is out — rounds that
// hear nothing burned the budgets (125 of 200 answers partial before).
func TestManyAskersConverge(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fc := fakenet.DefaultConfig()
		fc.Latency, fc.Jitter = 30*time.Millisecond, 60*time.Millisecond
		c := startFake(t, 8, fc, 7, func(cfg *Config) { cfg.Round = 200 * time.Millisecond })
		if right := rightOfConcurrent(t, c, "SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 0", 200, 8); right != 200 {
			t.Errorf("%d of 200 concurrent queries from 8 askers right", right)
			// Seen in CI (e05ab70) and beside other runs, about once in
			// 300 runs of this test: every query of one asker flagged at
			// 35 rounds (its budget of 31 and 4 quiet ones), 8 of 8 peers,
			// "calm 2 of 3 heard rounds (error estimate 0.00341)" — the
			// 25 queries of an asker share its one exchange a round, so
			// they are one trajectory, and that one was a round short of
			// confirming an answer already within its accuracy. An answer
			// the rule is calming now gets up to CalmRounds past the
			// budget (run.Instance.Report): 0 failures in 600 runs beside
			// two busy loops since.
			for _, n := range c.nodes {
				t.Logf("%s: lost lately %v, stats %+v", n.Name(), n.rt.prober.lostLately(n.now()), n.rt.counters())
				n.rt.mu.Lock()
				for id, q := range n.rt.queries {
					if agg := q.run.Aggregate(); q.origin && agg != nil {
						t.Logf("  asked %x: round %d, final %v, rule waits for: %s; core %+v, links %d", id[:4], q.run.Round(), q.run.Final(), q.run.RuleWhy(), agg.Stats(), agg.Links())
					}
				}
				n.rt.mu.Unlock()
			}
		}
	})
}

// rightOfConcurrent asks src n times at once, spread over the first askers
// peers, and counts the answers that are right.
func rightOfConcurrent(t *testing.T, c *cluster, src string, n, askers int) int {
	recs := c.records()
	p := compile(t, c.nodes[0], src)
	var wg sync.WaitGroup
	verdicts := make([]string, n)
	for i := range verdicts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.nodes[i%askers].Query(context.Background(), p, nil)
			verdicts[i] = check(t, p, res, err, recs, nil, fmt.Sprint("query ", i))
		}()
	}
	wg.Wait()
	right := 0
	for _, v := range verdicts {
		if v == "right" {
			right++
		}
	}
	return right
}

// A RESERVE is read back at once by its owner, whatever the tags say; a
// RELEASE too.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		fcfg.TagDelay = 5 * time.Second // tags slower than the statements
		c := startFake(t, 20, fcfg, 2, nil)
		owner := c.nodes[0]
		res := ask(t, owner, compile(t, owner, "RESERVE 6 FROM peers ORDER BY reliability DESC AS x FOR 10m"))
		if len(res.Nodes) != 6 {
			t.Fatalf("members %v", res.Nodes)
		}
		for src, want := range map[string]float64{
			"SELECT COUNT(*) FROM SUBCLOUD x":                   6,
			"SELECT COUNT(*) FROM peers WHERE reserved = TRUE":  6,
			"SELECT COUNT(*) FROM peers WHERE subcloud = 'x'":   6,
			"SELECT COUNT(*) FROM peers WHERE reserved = FALSE": 14,
		} {
			if got := ask(t, owner, compile(t, owner, src)); got.Rows[0][0].Num != want {
				t.Errorf("%s right after RESERVE: %v, want %v", src, got.Rows, want)
			}
		}
		if show := ask(t, owner, compile(t, owner, "SHOW SUBCLOUDS")); len(show.Rows) != 1 || show.Rows[0][3].Num != 6 {
			t.Errorf("SHOW SUBCLOUDS right after RESERVE: %v", show.Rows)
		}
		ask(t, owner, compile(t, owner, "RELEASE x"))
		if show := ask(t, owner, compile(t, owner, "SHOW SUBCLOUDS")); len(show.Rows) != 0 {
			t.Errorf("SHOW SUBCLOUDS right after RELEASE: %v", show.Rows)
		}
		if _, err := owner.Query(context.Background(), compile(t, owner, "SELECT COUNT(*) FROM SUBCLOUD x"), nil); err == nil || err.Error() != "unknown subcloud x: no agent owns it" {
			t.Errorf("FROM SUBCLOUD x after RELEASE: %v, want unknown subcloud x: no agent owns it", err)
		}
	})
}

// A RESERVE slower than its leases (a slow, lossy network; leases of 10 s)
// returns 10 peers that hold its lease, and no other peer holds it unless
// the answer names it (a release that went unanswered). Peers whose
// claim's answer was lost used to be released after the yes: 2 of 400
// runs under load found 11–15 holding it (the owner's property test,
// TestOwnerProperty, and TestOwnerReserveReleasesTheUncertain are the
// sharp checks of that; this one catches it a few times in 400).
func TestSlowReserveKeepsItsLeases(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		fcfg.Latency, fcfg.Jitter, fcfg.Loss = 300*time.Millisecond, 300*time.Millisecond, 0.05
		c := startFake(t, 30, fcfg, 4, nil)
		owner := c.nodes[5]
		start := time.Now()
		res, err := owner.Query(context.Background(), compile(t, owner, "RESERVE 10 FROM peers ORDER BY mem_free DESC AS slow FOR 10s"), nil)
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		holding := map[string]bool{}
		for _, n := range c.nodes {
			if l, ok := n.leases.current(); ok && l.Subcloud == "slow" {
				holding[n.Name()] = true
			}
		}
		for _, m := range res.Nodes {
			if !holding[m] {
				t.Errorf("RESERVE (took %v) returned %s, which does not hold its lease", took, m)
			}
		}
		// A peer outside the answer may hold the lease only while its
		// release goes unanswered, and the answer then names it.
		named := strings.FieldsFunc(res.Meta.Warning, func(r rune) bool { return strings.ContainsRune(" ,;:", r) })
		for p := range holding {
			if !slices.Contains(res.Nodes, p) && !slices.Contains(named, p) {
				t.Errorf("%s holds the lease, and RESERVE (took %v) neither returned it nor named it (warning %q)", p, took, res.Meta.Warning)
			}
		}
		if len(res.Nodes) != 10 {
			t.Errorf("RESERVE 10 returned %d", len(res.Nodes))
		}
		t.Logf("RESERVE 10 with 10 s leases took %v (%d hold it; %s)", took, len(holding), res.Meta.Warning)
	})
}

// A peer restarted on its data dir comes back holding its lease, and the
// cluster's answers count it again.
func TestRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 6, fakenet.DefaultConfig(), 1, func(cfg *Config) { cfg.DataDir = ""; cfg.Logf = t.Logf })
		rec, tags := SyntheticPeer(1, 6)
		h := c.net.Add("phoenix", tags)
		cfg := DefaultConfig(func() query.Record { return rec })
		cfg.DataDir, cfg.Tags = dir, tags
		n, err := New(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		owner := c.nodes[0]
		ask(t, owner, compile(t, owner, "RESERVE 7 AS all FOR 1m"))
		n.Close()
		c.net.Crash("phoenix")
		elapse(3 * time.Second)
		c.net.Revive("phoenix")
		n, err = New(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		if l, ok := n.leases.current(); !ok || l.Subcloud != "all" {
			t.Errorf("restarted without its lease: %+v", l)
		}
		elapse(time.Second)
		res := ask(t, owner, compile(t, owner, "SELECT COUNT(*) FROM peers WHERE reserved = TRUE WITH ROUNDS 60"))
		if res.Rows[0][0].Num != 7 {
			l, ok := n.leases.current()
			t.Errorf("after the restart: %v reserved (status %v, peers %d, excluded %v; phoenix holds %+v %v)", res.Rows, res.Status, res.Peers, res.Excluded, l, ok)
		}
	})
}

func errorsIsOverloaded(err error) bool { return errors.Is(err, ErrOverloaded) }

// A peer restarted mid-query, before anyone could notice (same name, same
// address): its partners had stopped sending it the plan, since it had
// the query; the first request it leaves unanswered makes them send the
// plan again, and it takes part anew. The answer is right or flagged.
func TestRestartMidQuery(t *testing.T) {
	t.Parallel()
	for _, src := range faultQueries {
		t.Run(src, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fcfg := fakenet.DefaultConfig()
				fcfg.Latency = 40 * time.Millisecond
				c := startFake(t, 3, fcfg, 1, nil)
				asker, phoenix := c.nodes[0], c.nodes[1]
				p := compile(t, asker, src+" WITH ACCURACY 0.01%")
				var res *answer.Answer
				var err error
				done := make(chan struct{})
				go func() {
					defer close(done)
					res, err = asker.Query(context.Background(), p, nil)
				}()
				// Wait until the asker knows phoenix has the query.
				for knows := false; !knows; {
					elapse(10 * time.Millisecond)
					asker.rt.mu.Lock()
					for _, q := range asker.rt.queries {
						knows = knows || q.origin && q.has[peerID(phoenix.Name())]
					}
					asker.rt.mu.Unlock()
				}
				phoenix.Close()
				reborn, nerr := New(phoenix.cfg, phoenix.net)
				if nerr != nil {
					t.Fatal(nerr)
				}
				c.nodes[1] = reborn // closed with the cluster
				select {
				case <-done:
					t.Fatal("the query ended before the restart: make it longer")
				default:
				}
				<-done
				// A top-k whose list already covers every member may end
				// before anyone asks the reborn peer; an aggregate at
				// 0.01% runs on, and must bring it back.
				if j := reborn.Stats().Joined; j > 1 || j == 0 && p.Kind == query.PlanAggregate {
					t.Errorf("the restarted peer joined %d queries, want 1: nobody sent it the plan again", reborn.Stats().Joined)
				}
				recs := c.records()
				v := check(t, p, res, err, recs, nil, src)
				t.Logf("%s: %s (%s)", src, v, res.Reason)
			})
		})
	}
}

// A round whose exchange fails at once (a peer shutting down, or one that
// does not know this one yet) lasts its full Round: paced rounds must not
// spin on failures and spend the query's budget in milliseconds, before
// the membership has had time to catch up. The answer is flagged.
func TestFastFailuresDoNotSpinRounds(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 3, fakenet.DefaultConfig(), 1, nil)
		asker := c.nodes[0]
		elapse(time.Second)
		c.nodes[1].Close() // still a member: every exchange with it fails at once
		c.nodes[2].Close()
		start := time.Now()
		res := ask(t, asker, compile(t, asker, "SELECT AVG(cpu_load) FROM peers"))
		took := time.Since(start)
		if res.Status != StatusPartial || len(res.Unreachable)+len(res.Excluded) != 2 {
			t.Errorf("an answer without the other peers says %s (%s), unreachable %v, excluded %v", res.Status, res.Reason, res.Unreachable, res.Excluded)
		}
		if min := time.Duration(res.Rounds) * asker.cfg.Round / 2; took < min {
			t.Errorf("%d rounds in %v: rounds spun on failed exchanges (want at least %v)", res.Rounds, took, min)
		}
	})
}

// A peer alone in its cluster answers exactly at once, from its own record,
// and says it is alone.
func TestAloneIsExact(t *testing.T) {
	t.Parallel()
	fake(t, 1, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		n := c.nodes[0]
		for _, src := range []string{"SELECT COUNT(*), SUM(cpu_cores) FROM peers", "SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 3"} {
			p := compile(t, n, src)
			res := ask(t, n, p)
			if res.Status != StatusExact || !closeTo(res, query.Exact(p, c.records())) || res.Rounds != 0 {
				t.Errorf("%s: %s after %d rounds: %v", src, res.Status, res.Rounds, res.Rows)
			}
			if !strings.Contains(res.Warning, "only this peer") {
				t.Errorf("%s: no warning that the peer is alone: %+v", src, res.Meta)
			}
		}
	})
}
