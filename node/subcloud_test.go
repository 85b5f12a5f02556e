package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// until polls cond every 100 ms of fake time, up to d.
func until(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); elapse(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// RESERVE: the members hold leases, the tags show them, FROM SUBCLOUD and
// SHOW SUBCLOUDS see them, a second RESERVE cannot take them, a retry with
// the key gets the same subcloud, RELEASE frees them.
func TestReserveRelease(t *testing.T) {
	fake(t, 30, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner := c.nodes[2]
		res := ask(t, owner, compile(t, owner, "RESERVE 5 FROM peers WHERE mem_free >= 1GB ORDER BY reliability DESC AS batch FOR 1m WITH KEY 'k1'"))
		if len(res.Nodes) != 5 {
			t.Fatalf("members %v", res.Nodes)
		}
		held := 0
		for _, n := range c.nodes {
			if l, ok := n.currentLease(); ok {
				held++
				if l.Subcloud != "batch" || l.Owner != owner.Name() {
					t.Errorf("%s holds %+v", n.Name(), l)
				}
			}
		}
		if held != 5 {
			t.Errorf("%d peers hold a lease, want 5", held)
		}
		again := ask(t, owner, compile(t, owner, "RESERVE 5 FROM peers WHERE mem_free >= 1GB ORDER BY reliability DESC AS batch FOR 1m WITH KEY 'k1'"))
		if fmt.Sprint(again.Nodes) != fmt.Sprint(res.Nodes) {
			t.Errorf("retry with the key: %v, want %v", again.Nodes, res.Nodes)
		}
		// The tags spread; then membership answers see the subcloud.
		sub := compile(t, owner, "SELECT node FROM SUBCLOUD batch")
		if !until(20*time.Second, func() bool { return len(ask(t, owner, sub).Nodes) == 5 }) {
			t.Fatalf("FROM SUBCLOUD batch: %v", ask(t, owner, sub).Nodes)
		}
		var show *Result
		until(20*time.Second, func() bool {
			show = ask(t, c.nodes[9], compile(t, c.nodes[9], "SHOW SUBCLOUDS"))
			return len(show.Rows) == 1 && show.Rows[0][2].Num == 5
		})
		if len(show.Rows) != 1 || show.Rows[0][0].Str != "batch" || show.Rows[0][2].Num != 5 || show.Rows[0][1].Str != owner.Name() {
			t.Errorf("SHOW SUBCLOUDS: %v", show.Rows)
		}
		// Another owner asking for more than the free peers gets nothing.
		other := c.nodes[7]
		_, err := other.Query(context.Background(), compile(t, other, "RESERVE 26 AS greedy FOR 1m"), nil)
		if !errors.Is(err, ErrNotEnoughPeers) {
			t.Errorf("greedy RESERVE: %v", err)
		}
		elapse(time.Second) // the releases
		for _, n := range c.nodes {
			if l, ok := n.currentLease(); ok && l.Subcloud != "batch" {
				t.Errorf("%s kept a lease of a failed RESERVE: %+v", n.Name(), l)
			}
		}
		// AT LEAST accepts fewer: 25 are free, 26 asked, 20 enough.
		part := ask(t, other, compile(t, other, "RESERVE 26 AS partial FOR 1m WITH AT LEAST 20"))
		if len(part.Nodes) != 25 {
			t.Errorf("AT LEAST 20 of 26 with 25 free: got %d", len(part.Nodes))
		}
		ask(t, other, compile(t, other, "RELEASE partial"))
		rel := ask(t, owner, compile(t, owner, "RELEASE batch"))
		if rel.Rows[0][1].Num != 5 {
			t.Errorf("released %v", rel.Rows)
		}
		for _, n := range c.nodes {
			if _, ok := n.currentLease(); ok {
				t.Errorf("%s still holds a lease after RELEASE", n.Name())
			}
		}
	})
}

// Safety: eight RESERVEs at once from eight peers of a 200-peer cluster,
// competing for overlapping candidates (all rank by reliability), over a
// network with jitter and loss. No peer ends in two subclouds; each
// subcloud that succeeded has exactly its n members, each holding its
// lease; each that failed holds nothing.
func TestReserveRace(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fcfg := fakenet.DefaultConfig()
				fcfg.Seed, fcfg.Jitter, fcfg.Loss = seed, 20*time.Millisecond, 0.02
				c := startFake(t, 200, fcfg, seed, nil)
				type outcome struct {
					name    string
					members []string
					err     error
				}
				out := make([]outcome, 8)
				start := time.Now()
				var wg sync.WaitGroup
				for i := 0; i < 8; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						n := c.nodes[i*23]
						name := fmt.Sprint("sc", i)
						res, err := n.Query(context.Background(), compile(t, n, fmt.Sprintf("RESERVE 20 FROM peers ORDER BY reliability DESC AS %s FOR 1m", name)), nil)
						out[i] = outcome{name: name, err: err}
						if res != nil {
							out[i].members = res.Nodes
						}
					}()
				}
				wg.Wait()
				took := time.Since(start)
				elapse(time.Second) // the releases of the failed
				holders := map[string]string{}
				for _, n := range c.nodes {
					if l, ok := n.currentLease(); ok {
						holders[n.Name()] = l.Subcloud
					}
				}
				ok := 0
				for _, o := range out {
					count := 0
					for _, sc := range holders {
						if sc == o.name {
							count++
						}
					}
					switch {
					case o.err == nil:
						ok++
						if len(o.members) != 20 || count != 20 {
							t.Errorf("%s succeeded with %d members, %d peers hold it", o.name, len(o.members), count)
						}
						for _, m := range o.members {
							if holders[m] != o.name {
								t.Errorf("%s lists %s, which holds %q", o.name, m, holders[m])
							}
						}
					case !errors.Is(o.err, ErrNotEnoughPeers):
						t.Errorf("%s: %v", o.name, o.err)
					case count != 0:
						t.Errorf("%s failed (%v) but %d peers hold it", o.name, o.err, count)
					}
				}
				t.Logf("%d of 8 RESERVE 20 on 200 peers succeeded in %v, %d peers reserved", ok, took, len(holders))
			})
		})
	}
}

// The owner renews its leases; when it dies, they lapse at their expiry and
// the peers are free again, within expiry plus one lease tick.
func TestLeaseRenewAndLapse(t *testing.T) {
	fake(t, 12, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner := c.nodes[1]
		res := ask(t, owner, compile(t, owner, "RESERVE 3 AS short FOR 10s"))
		members := map[string]bool{}
		for _, m := range res.Nodes {
			members[m] = true
		}
		elapse(25 * time.Second) // past two expiries: renewed
		for _, n := range c.nodes {
			if l, ok := n.currentLease(); members[n.Name()] && (!ok || l.Subcloud != "short") {
				t.Errorf("%s lost its lease though the owner renews it", n.Name())
			}
		}
		killed := time.Now()
		c.kill(1)
		held := func() int {
			k := 0
			for i, n := range c.nodes {
				if _, ok := n.currentLease(); ok && i != 1 {
					k++
				}
			}
			return k
		}
		if !until(10*time.Second+owner.cfg.LeaseTick, func() bool { return held() == 0 }) {
			t.Fatalf("%d peers still held leases %v after the owner died", held(), time.Since(killed))
		}
		t.Logf("leases lapsed %v after the owner died", time.Since(killed).Round(100*time.Millisecond))
		// And the tags say so.
		if !until(5*time.Second, func() bool {
			return len(ask(t, c.nodes[0], compile(t, c.nodes[0], "SHOW SUBCLOUDS")).Rows) == 0
		}) {
			t.Error("SHOW SUBCLOUDS still lists the lapsed subcloud")
		}
	})
}

// A reserved peer restarted on the same data dir still holds its lease,
// and refuses a renewal with a wrong token and a second claim; a peer
// that cannot persist refuses and holds nothing.
func TestLeaseSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		nw := fakenet.New(fakenet.DefaultConfig())
		h := nw.Add("keeper", nil)
		newPeer := func() *Node {
			cfg := DefaultConfig(func() query.Record { return query.Record{} })
			cfg.DataDir = dir
			n, err := New(cfg, h)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		n := newPeer()
		token := strings.Repeat("t", 32)
		call := func(op subcloud.Op, tok string) subcloud.Reply {
			r, err := subcloud.DecodeReply(n.handleLease(subcloud.Request{Op: op, Subcloud: "kept", Owner: "someone", Token: tok, For: time.Minute}.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := call(subcloud.OpClaim, token); !r.OK {
			t.Fatalf("claim: %+v", r)
		}
		n.Close()
		n = newPeer()
		defer n.Close()
		if l, ok := n.currentLease(); !ok || l.Subcloud != "kept" || l.Token != token {
			t.Fatalf("after a restart: %+v %v", l, ok)
		}
		if r := call(subcloud.OpRenew, strings.Repeat("x", 32)); r.OK || !errors.Is(r.Err(), subcloud.ErrToken) {
			t.Errorf("renewal with a wrong token: %+v", r)
		}
		if r := call(subcloud.OpClaim, strings.Repeat("y", 32)); r.OK || !errors.Is(r.Err(), subcloud.ErrHeld) {
			t.Errorf("a second claim: %+v", r)
		}
		if rec := n.record(); rec["reserved"] != query.Bool(true) || rec["subcloud"] != query.Str("kept") {
			t.Errorf("record %v", rec)
		}
		if r := call(subcloud.OpRelease, token); !r.OK {
			t.Errorf("release: %+v", r)
		}
		// A peer whose table cannot be written refuses, and keeps nothing.
		n.leases.path = dir + "/no/such/dir/lease.json"
		if r := call(subcloud.OpClaim, token); r.OK || !errors.Is(r.Err(), subcloud.ErrStorage) {
			t.Errorf("claim with a broken disk: %+v", r)
		}
		if _, ok := n.currentLease(); ok {
			t.Error("the peer holds a lease it could not persist")
		}
	})
}
