package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
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
	t.Parallel()
	fake(t, 30, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner := c.nodes[2]
		res := ask(t, owner, compile(t, owner, "RESERVE 5 FROM peers WHERE mem_free >= 1GB ORDER BY reliability DESC AS batch FOR 1m WITH KEY 'k1'"))
		if len(res.Nodes) != 5 {
			t.Fatalf("members %v", res.Nodes)
		}
		held := 0
		for _, n := range c.nodes {
			if l, ok := n.leases.current(); ok {
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
		// The key under another name is an error, not a second subcloud.
		if _, err := owner.Query(context.Background(), compile(t, owner, "RESERVE 2 AS other FOR 1m WITH KEY 'k1'"), nil); err == nil ||
			!strings.Contains(err.Error(), "KEY 'k1' already reserved subcloud batch") {
			t.Errorf("the key reused under another name: %v", err)
		}
		// The tags spread; then membership answers see the subcloud.
		sub := compile(t, owner, "SELECT node FROM SUBCLOUD batch")
		if !until(20*time.Second, func() bool { return len(ask(t, owner, sub).Nodes) == 5 }) {
			t.Fatalf("FROM SUBCLOUD batch: %v", ask(t, owner, sub).Nodes)
		}
		var show *answer.Answer
		until(20*time.Second, func() bool {
			show = ask(t, c.nodes[9], compile(t, c.nodes[9], "SHOW SUBCLOUDS"))
			return len(show.Rows) == 1 && show.Rows[0][3].Num == 5
		})
		if len(show.Rows) != 1 || show.Rows[0][0].Str != "batch" || show.Rows[0][3].Num != 5 || show.Rows[0][1].Str != owner.Name() {
			t.Errorf("SHOW SUBCLOUDS: %v", show.Rows)
		}
		for _, n := range []*Node{owner, c.nodes[9]} {
			if words := n.Words(context.Background()); !slices.Contains(words, "batch") || !slices.Contains(words, "mem_free") {
				t.Errorf("%s completes %v: want the subcloud and the attributes", n.Name(), words)
			}
		}
		// Another owner asking for more than the free peers gets nothing.
		other := c.nodes[7]
		_, err := other.Query(context.Background(), compile(t, other, "RESERVE 26 AS greedy FOR 1m"), nil)
		if !errors.Is(err, ErrNotEnoughPeers) {
			t.Errorf("greedy RESERVE: %v", err)
		}
		elapse(time.Second) // the releases
		for _, n := range c.nodes {
			if l, ok := n.leases.current(); ok && l.Subcloud != "batch" {
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
			if _, ok := n.leases.current(); ok {
				t.Errorf("%s still holds a lease after RELEASE", n.Name())
			}
		}
	})
}

// A member cut off for a moment as RELEASE starts is sent its release
// again while the user waits: once the cut heals, RELEASE frees every
// member and exits 0, not 6 naming it (one try each, before, named it;
// it let go only at its next ask or when its lease lapsed).
func TestReleaseRetriesAMemberCutOffForAMoment(t *testing.T) {
	t.Parallel()
	fake(t, 12, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner := c.nodes[0]
		res := ask(t, owner, compile(t, owner, "RESERVE 3 AS brief FOR 10m"))
		cut := res.Nodes[0]
		c.net.Partition([]string{cut})
		_, before := c.net.Stats()
		type result struct {
			a   *answer.Answer
			err error
		}
		done := make(chan result, 1)
		release := compile(t, owner, "RELEASE brief")
		go func() {
			a, err := owner.Query(context.Background(), release, nil)
			done <- result{a, err}
		}()
		// Heal as soon as an exchange was lost to the cut (the first try,
		// after the network's timeout), well before the others would see
		// the member fail (Detect).
		for _, lost := c.net.Stats(); lost == before; _, lost = c.net.Stats() {
			elapse(10 * time.Millisecond)
		}
		c.net.Heal()
		r := <-done
		if r.err != nil {
			t.Fatalf("RELEASE with %s cut off for one try: %v", cut, r.err)
		}
		if r.a.Rows[0][1].Num != 3 || r.a.Rows[0][2].Num != 0 {
			t.Errorf("released, unreachable: %v, want 3 and 0", r.a.Rows)
		}
		for _, n := range c.nodes {
			if l, ok := n.leases.current(); ok {
				t.Errorf("%s still holds %+v after RELEASE", n.Name(), l)
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
	t.Parallel()
	for _, seed := range seeds(1, 2) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				fcfg := fakenet.DefaultConfig()
				fcfg.Seed, fcfg.Jitter, fcfg.Loss, fcfg.ReplyLoss = seed, 20*time.Millisecond, 0.02, 0.02
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
				// The releases of the failed, and of the claims that took
				// hold unseen (the reply lost: 2% here) at a RESERVE that
				// succeeded without them: its owner releases them after the
				// answer, within a second or two (ReleaseRetry, doubling);
				// at 1 s, one run in five to ten found such a peer still
				// holding a subcloud that does not list it.
				elapse(5 * time.Second)
				holders := map[string]string{}
				for _, n := range c.nodes {
					if l, ok := n.leases.current(); ok {
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
						// Only peers the error names as unanswered may hold it.
						var left *unreleasedError
						if !errors.As(o.err, &left) || count > len(left.peers) {
							t.Errorf("%s failed (%v) but %d peers hold it", o.name, o.err, count)
						}
					}
				}
				t.Logf("%d of 8 RESERVE 20 on 200 peers succeeded in %v, %d peers reserved", ok, took, len(holders))
			})
		})
	}
}

// A RESERVE that fails over a lossy network (requests and replies lost, so
// some claims took hold unseen and some releases are lost) answers honestly:
// "nothing stays reserved" only if no peer holds its lease when it answers,
// otherwise the error names the peers that did not answer their release;
// those are released once the network heals, long before the lease lapses.
func TestFailedReserveReleasesUnderLoss(t *testing.T) {
	t.Parallel()
	for _, seed := range seeds(1, 2, 3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				fcfg := fakenet.DefaultConfig()
				fcfg.Seed = seed
				c := startFake(t, 30, fcfg, seed, nil)
				elapse(time.Second)
				c.net.SetLoss(0.3)
				c.net.SetReplyLoss(0.3)
				owner := c.nodes[0]
				_, err := owner.Query(context.Background(), compile(t, owner, "RESERVE 40 AS big FOR 10m"), nil)
				held := func() (k int) {
					for _, n := range c.nodes {
						if l, ok := n.leases.current(); ok && l.Subcloud == "big" {
							k++
						}
					}
					return k
				}
				var left *unreleasedError
				switch {
				case err == nil:
					t.Fatal("RESERVE 40 of 30 peers succeeded")
				case errors.As(err, &left):
					if k := held(); k > len(left.peers) {
						t.Errorf("%d peers hold the lease, the error names %d: %v", k, len(left.peers), err)
					}
				case !strings.Contains(err.Error(), "nothing stays reserved"):
					t.Errorf("error does not say what stays reserved: %v", err)
				default:
					if k := held(); k != 0 {
						t.Errorf("%q but %d peers hold the lease", err, k)
					}
				}
				c.net.SetLoss(0)
				c.net.SetReplyLoss(0)
				elapse(2 * time.Minute) // back-off: at most a minute between tries
				if k := held(); k != 0 {
					t.Errorf("%d peers still hold the failed subcloud's lease two minutes after the network healed", k)
				}
				t.Logf("%v", err)
			})
		})
	}
}

// The owner renews its leases; when it dies, they lapse at their expiry and
// the peers are free again, within expiry plus one lease tick.
func TestLeaseRenewAndLapse(t *testing.T) {
	t.Parallel()
	fake(t, 12, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner := c.nodes[1]
		res := ask(t, owner, compile(t, owner, "RESERVE 3 AS short FOR 10s"))
		members := map[string]bool{}
		for _, m := range res.Nodes {
			members[m] = true
		}
		elapse(25 * time.Second) // past two expiries: renewed
		for _, n := range c.nodes {
			if l, ok := n.leases.current(); members[n.Name()] && (!ok || l.Subcloud != "short") {
				t.Errorf("%s lost its lease though the owner renews it", n.Name())
			}
		}
		killed := time.Now()
		c.kill(1)
		held := func() int {
			k := 0
			for i, n := range c.nodes {
				if _, ok := n.leases.current(); ok && i != 1 {
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
	t.Parallel()
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		nw := fakenet.New(fakenet.DefaultConfig())
		h := nw.Add("keeper", nil)
		owner := testOwner(nw, "someone")
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
			r, err := subcloud.DecodeReply(n.leases.handle(owner.name, owner.req(n, subcloud.Request{Op: op, Subcloud: "kept", Token: tok, For: time.Minute})))
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
		if l, ok := n.leases.current(); !ok || l.Subcloud != "kept" || l.Token != token {
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
		n.keeper.dir = dir + "/no/such/dir"
		if r := call(subcloud.OpClaim, token); r.OK || !errors.Is(r.Err(), subcloud.ErrStorage) {
			t.Errorf("claim with a broken disk: %+v", r)
		}
		if _, ok := n.leases.current(); ok {
			t.Error("the peer holds a lease it could not persist")
		}
	})
}

// leaseHolders is, for each subcloud, the live peers that hold its lease,
// by owner: the truth that the owner's account is judged against.
func (c *cluster) leaseHolders() map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for _, n := range c.nodes {
		if n.closed() {
			continue
		}
		if l, ok := n.leases.current(); ok {
			if out[l.Subcloud] == nil {
				out[l.Subcloud] = map[string][]string{}
			}
			out[l.Subcloud][l.Owner] = append(out[l.Subcloud][l.Owner], n.Name())
		}
	}
	return out
}

func (c *cluster) index(name string) int {
	for i, n := range c.nodes {
		if n.Name() == name {
			return i
		}
	}
	return -1
}

// ownedSize is the owner's count of a subcloud's members and its target.
func ownedSize(n *Node, name string) (size, target, repairs int) {
	v, ok := n.owner.Lookup(name)
	if !ok {
		return -1, -1, -1
	}
	return len(v.Members), v.Info.Target, v.Info.Repairs
}

// ownedMembers are the owner's members of a subcloud, best first.
func ownedMembers(n *Node, name string) []string {
	v, _ := n.owner.Lookup(name)
	var out []string
	for _, m := range v.Members {
		out = append(out, m.Name)
	}
	return out
}

// Self-repair: members that crash are replaced within the failure
// detection time and a claim round; one cut off by a partition is
// replaced too, and released when it comes back; NO REPAIR only shrinks.
// Through it all, what the owner counts is what the peers hold.
func TestSubcloudRepair(t *testing.T) {
	t.Parallel()
	fake(t, 30, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner := c.nodes[2]
		res := ask(t, owner, compile(t, owner, "RESERVE 5 FROM peers ORDER BY reliability DESC AS r FOR 1m"))
		keep := ask(t, owner, compile(t, owner, "RESERVE 3 FROM peers ORDER BY reliability ASC AS k FOR 1m NO REPAIR"))
		agree := func(name string, want int) bool {
			size, _, _ := ownedSize(owner, name)
			h := c.leaseHolders()[name]
			return size == want && len(h) == 1 && len(h[owner.Name()]) == want
		}
		crashed := time.Now()
		c.kill(c.index(res.Nodes[0]))
		c.kill(c.index(res.Nodes[1]))
		c.kill(c.index(keep.Nodes[0]))
		detect := fakenet.DefaultConfig().Detect
		if !until(detect+5*time.Second, func() bool { return agree("r", 5) }) {
			size, _, _ := ownedSize(owner, "r")
			t.Fatalf("after two members crashed: the owner counts %d, the peers hold %v", size, c.leaseHolders()["r"])
		}
		t.Logf("two crashed members replaced %v after the crash (failure detection %v)", time.Since(crashed), detect)
		if size, target, repairs := ownedSize(owner, "r"); size != 5 || target != 5 || repairs != 2 {
			t.Errorf("r: size %d, target %d, repairs %d; want 5, 5, 2", size, target, repairs)
		}
		if !agree("k", 2) {
			size, _, _ := ownedSize(owner, "k")
			t.Errorf("NO REPAIR: the owner counts %d, the peers hold %v; want 2", size, c.leaseHolders()["k"])
		}
		show := ask(t, owner, compile(t, owner, "SHOW SUBCLOUDS"))
		want := map[string]string{"k": "3 2 0 true", "r": "5 5 2 false"}
		for _, row := range show.Rows {
			got := fmt.Sprintf("%v %v %v %v", row[2].Num, row[3].Num, row[4].Num, row[5].Kind == query.KindNull)
			if got != want[row[0].Str] {
				t.Errorf("SHOW SUBCLOUDS %s: target, size, repairs, no repair yet = %s; want %s", row[0].Str, got, want[row[0].Str])
			}
		}
		// A member cut off from everyone keeps its lease until it
		// lapses; the owner replaces it, and releases it when it is back.
		cut := c.nodes[c.index(res.Nodes[2])]
		c.net.Partition([]string{cut.Name()})
		if !until(detect+5*time.Second, func() bool {
			size, _, repairs := ownedSize(owner, "r")
			return size == 5 && repairs == 3
		}) {
			t.Fatalf("the cut-off member was not replaced: %v", c.leaseHolders()["r"])
		}
		if l, ok := cut.leases.current(); !ok || l.Subcloud != "r" {
			t.Fatalf("the cut-off member should still hold its lease: %+v", l)
		}
		c.net.Heal()
		if !until(5*time.Second, func() bool { _, held := cut.leases.current(); return !held }) {
			t.Errorf("the replaced member came back and kept its lease")
		}
		if !agree("r", 5) {
			t.Errorf("after the heal: the peers hold %v", c.leaseHolders()["r"])
		}
	})
}

// A former member that comes back while the subcloud still lacks it (no
// free peer could replace it) is taken back, not released.
func TestSubcloudTakesBackAReturningMember(t *testing.T) {
	t.Parallel()
	fake(t, 6, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner := c.nodes[0]
		res := ask(t, owner, compile(t, owner, "RESERVE 6 AS all FOR 1m"))
		cut := res.Nodes[0]
		c.net.Partition([]string{cut})
		if !until(10*time.Second, func() bool { size, _, _ := ownedSize(owner, "all"); return size == 5 }) {
			t.Fatal("the cut-off member was never dropped")
		}
		c.net.Heal()
		if !until(5*time.Second, func() bool { size, _, _ := ownedSize(owner, "all"); return size == 6 }) {
			size, _, _ := ownedSize(owner, "all")
			t.Fatalf("the returning member was not taken back: %d members, holders %v", size, c.leaseHolders()["all"])
		}
		if _, _, repairs := ownedSize(owner, "all"); repairs != 0 {
			t.Errorf("%d repairs: the member should have been taken back, not released and claimed again", repairs)
		}
		if h := c.leaseHolders()["all"][owner.Name()]; len(h) != 6 {
			t.Errorf("holders %v", h)
		}
	})
}

// Two owners reserve one name at once, faster than tags spread, twenty
// times: each time exactly one says yes; the other is told who took the
// name and holds nothing, at once (the name's keepers decide before any
// peer is claimed); every answer counts the winner's members. A later
// RESERVE of the name is refused the same way.
func TestSubcloudNameIsUnique(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		fcfg.TagDelay = 3 * time.Second
		c := startFake(t, 30, fcfg, 1, nil)
		for trial := 0; trial < 20; trial++ {
			a, b := c.nodes[1+trial%7], c.nodes[10+trial%11]
			name := fmt.Sprint("dup", trial)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for k, n := range []*Node{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[k] = n.Query(context.Background(), compile(t, n, "RESERVE 3 AS "+name+" FOR 1m"), nil)
				}()
			}
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) {
				t.Fatalf("trial %d: %v and %v: want exactly one yes", trial, errs[0], errs[1])
			}
			winner, loser, lerr := a, b, errs[1]
			if errs[0] != nil {
				winner, loser, lerr = b, a, errs[0]
			}
			if !errors.Is(lerr, api.ErrStatement) || !strings.HasPrefix(lerr.Error(), "name "+name+" taken by "+winner.Name()) ||
				!strings.HasSuffix(lerr.Error(), "nothing is reserved") {
				t.Errorf("trial %d: the loser was told %q", trial, lerr)
			}
			if h := c.leaseHolders()[name]; len(h) != 1 || len(h[winner.Name()]) != 3 {
				t.Errorf("trial %d: holders of %s: %v; want only %s's 3", trial, name, h, winner.Name())
			}
			if size, _, _ := ownedSize(loser, name); size != -1 {
				t.Errorf("trial %d: %s owns %s (%d members)", trial, loser.Name(), name, size)
			}
			if trial > 0 {
				ask(t, winner, compile(t, winner, "RELEASE "+name)) // the peers for the next trial
			}
		}
		owner, _ := c.nodes[0].sc.subcloudOwner(context.Background(), "dup0")
		for _, n := range []*Node{c.nodes[1], c.nodes[10], c.nodes[9]} {
			elapse(4 * time.Second) // the tags
			show := ask(t, n, compile(t, n, "SHOW SUBCLOUDS"))
			found := false
			for _, row := range show.Rows {
				if row[0].Str == "dup0" {
					found = row[1].Str == owner && row[3].Num == 3
				}
			}
			if !found {
				t.Errorf("SHOW SUBCLOUDS at %s: %v; want dup0 of %s with 3", n.Name(), show.Rows, owner)
			}
			if got := ask(t, n, compile(t, n, "SELECT COUNT(*) FROM SUBCLOUD dup0")); got.Rows[0][0].Num != 3 {
				t.Errorf("COUNT FROM SUBCLOUD dup0 at %s: %v", n.Name(), got.Rows)
			}
		}
		_, err := c.nodes[5].Query(context.Background(), compile(t, c.nodes[5], "RESERVE 2 AS dup0 FOR 1m"), nil)
		if err == nil || !strings.HasPrefix(err.Error(), "name dup0 taken by "+owner) {
			t.Errorf("a third RESERVE of dup0: %v", err)
		}
		c.close()
	})
}

// ALTER SUBCLOUD: RESIZE grows by the next candidates and shrinks from
// the lowest-ranked; a RESIZE that cannot be met changes nothing; EXTEND
// renews every member for the new length; only the owner may.
func TestAlterSubcloud(t *testing.T) {
	t.Parallel()
	fake(t, 20, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner, other := c.nodes[3], c.nodes[4]
		res := ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers ORDER BY reliability DESC AS a FOR 1m"))
		best := res.Nodes[:2]
		if got := ask(t, owner, compile(t, owner, "ALTER SUBCLOUD a RESIZE TO 7")); len(got.Nodes) != 7 {
			t.Fatalf("RESIZE TO 7: %v", got.Nodes)
		}
		if h := c.leaseHolders()["a"][owner.Name()]; len(h) != 7 {
			t.Errorf("after RESIZE TO 7 the peers hold %v", h)
		}
		got := ask(t, owner, compile(t, owner, "ALTER SUBCLOUD a RESIZE TO 2"))
		if fmt.Sprint(got.Nodes) != fmt.Sprint(best) {
			t.Errorf("RESIZE TO 2 kept %v, want the two best %v", got.Nodes, best)
		}
		if h := c.leaseHolders()["a"][owner.Name()]; len(h) != 2 {
			t.Errorf("after RESIZE TO 2 the peers hold %v", h)
		}
		_, err := owner.Query(context.Background(), compile(t, owner, "ALTER SUBCLOUD a RESIZE TO 25"), nil)
		if !errors.Is(err, ErrNotEnoughPeers) || !strings.Contains(err.Error(), "nothing changed") {
			t.Errorf("RESIZE above the free peers: %v", err)
		}
		elapse(time.Second) // its releases
		if size, target, _ := ownedSize(owner, "a"); size != 2 || target != 2 || len(c.leaseHolders()["a"][owner.Name()]) != 2 {
			t.Errorf("after a failed RESIZE: size %d target %d, holders %v", size, target, c.leaseHolders()["a"])
		}
		ask(t, owner, compile(t, owner, "ALTER SUBCLOUD a EXTEND FOR 2h"))
		for _, m := range best {
			if l, _ := c.nodes[c.index(m)].leases.current(); l.Expires.Sub(time.Now()) < 119*time.Minute {
				t.Errorf("%s expires in %v after EXTEND FOR 2h", m, l.Expires.Sub(time.Now()))
			}
		}
		for src, want := range map[string]string{
			"ALTER SUBCLOUD a EXTEND FOR 1h": "subcloud a is owned by " + owner.Name() + " — alter it there",
			"RELEASE a":                      "subcloud a is owned by " + owner.Name() + " — release it there",
			"ALTER SUBCLOUD b RESIZE TO 3":   "unknown subcloud b: no agent owns it",
		} {
			if _, err := other.Query(context.Background(), compile(t, other, src), nil); err == nil || err.Error() != want {
				t.Errorf("%s at another agent: %v, want %q", src, err, want)
			}
		}
	})
}

// Safety under churn: three owners reserve at once on a lossy, jittery
// network, then peers crash and restart on their own data dirs for a
// 40 s while the owners repair. No peer is ever counted by two owners;
// once the churn stops, every subcloud that succeeded is back at its size,
// and what each owner counts is exactly the peers that hold its lease.
func TestReserveRaceUnderChurn(t *testing.T) {
	t.Parallel()
	for _, seed := range seeds(1, 2) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			synctest.Test(t, func(t *testing.T) {
				fcfg := fakenet.DefaultConfig()
				fcfg.Seed, fcfg.Jitter, fcfg.Loss = seed, 20*time.Millisecond, 0.02
				c := startFake(t, 40, fcfg, seed, func(cfg *Config) {
					cfg.DataDir = filepath.Join(root, fmt.Sprint(cfg.Seed))
					if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
						t.Fatal(err)
					}
				})
				owners := []int{0, 1, 2}
				var wg sync.WaitGroup
				for _, i := range owners {
					wg.Add(1)
					go func() {
						defer wg.Done()
						n := c.nodes[i]
						n.Query(context.Background(), compile(t, n, fmt.Sprintf("RESERVE 8 FROM peers ORDER BY reliability DESC AS sc%d FOR 30s", i)), nil)
					}()
				}
				wg.Wait()
				r := rand.New(rand.NewPCG(seed, 99))
				down := map[int]time.Time{}
				for step := 0; step < 40; step++ {
					for i, at := range down {
						if time.Since(at) >= 5*time.Second {
							c.restart(t, i)
							delete(down, i)
						}
					}
					if i := 3 + r.IntN(len(c.nodes)-3); down[i].IsZero() {
						c.kill(i)
						down[i] = time.Now()
					}
					elapse(time.Second)
					counted := map[string]string{}
					for _, i := range owners {
						o := c.nodes[i]
						for name, sc := range o.owner.Held() {
							if len(sc.Members) > sc.Info.Target {
								t.Errorf("step %d: %s has %d members, more than its %d", step, name, len(sc.Members), sc.Info.Target)
							}
							for _, m := range sc.Members {
								if prev, ok := counted[m.Name]; ok {
									t.Errorf("step %d: %s is counted by %s and by %s", step, m.Name, prev, name)
								}
								counted[m.Name] = name
							}
						}
					}
				}
				for i := range down {
					c.restart(t, i)
				}
				ok := 0
				if !until(30*time.Second, func() bool {
					ok = 0
					holders := c.leaseHolders()
					for _, i := range owners {
						o := c.nodes[i]
						name := fmt.Sprint("sc", i)
						size, target, _ := ownedSize(o, name)
						if size < 0 {
							if len(holders[name]) > 0 {
								return false // a failed RESERVE's releases still on their way
							}
							continue
						}
						if size != target || len(holders[name]) != 1 || len(holders[name][o.Name()]) != size {
							return false
						}
						ok++
					}
					return true
				}) {
					for _, i := range owners {
						size, target, repairs := ownedSize(c.nodes[i], fmt.Sprint("sc", i))
						t.Errorf("sc%d: size %d target %d repairs %d; holders %v", i, size, target, repairs, c.leaseHolders()[fmt.Sprint("sc", i)])
					}
				}
				t.Logf("seed %d: %d of 3 subclouds held through 40 s of churn", seed, ok)
			})
		})
	}
}

// A member whose process stops (its machine answers, refusing the
// connection) is replaced after a check, long before a slow failure
// detector says so; a check lost to the network counts for nothing.
func TestSubcloudRepairsAStoppedMemberAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		fcfg.Detect = time.Minute // the failure detector will not help
		fcfg.Loss = 0.25          // nor will lost checks count against anyone
		c := startFake(t, 20, fcfg, 1, func(cfg *Config) { cfg.Logf = t.Logf })
		owner := c.nodes[0]
		res := ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers WHERE node != 'peer-000000' ORDER BY reliability DESC AS s FOR 1m"))
		elapse(10 * time.Second) // lossy checks: nobody is dropped
		if _, _, repairs := ownedSize(owner, "s"); repairs != 0 {
			t.Fatalf("%d repairs of healthy members under 25%% loss", repairs)
		}
		c.net.SetLoss(0.02) // a search that can succeed
		stopped := time.Now()
		c.nodes[c.index(res.Nodes[0])].Close()
		c.net.Stop(res.Nodes[0])
		if !until(5*time.Second, func() bool {
			size, _, repairs := ownedSize(owner, "s")
			return size == 4 && repairs == 1
		}) {
			size, _, repairs := ownedSize(owner, "s")
			t.Fatalf("a stopped member: size %d, repairs %d", size, repairs)
		}
		t.Logf("replaced %v after its process stopped", time.Since(stopped))
		c.close()
	})
}

// Metering: every peer's ledger, read cloud-wide by gossip (FROM leases),
// agrees with the owner's own account; released leases stay in the
// ledger, closed.
func TestMetering(t *testing.T) {
	t.Parallel()
	fake(t, 20, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner, asker := c.nodes[1], c.nodes[7]
		ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers WHERE node != 'peer-000007' ORDER BY reliability DESC AS m FOR 30s"))
		elapse(65 * time.Second) // renewals every 10 s
		ask(t, owner, compile(t, owner, "ALTER SUBCLOUD m RESIZE TO 3"))
		elapse(40 * time.Second)
		v, _ := owner.owner.Lookup("m")
		account := v.Info.PeerHours
		res := ask(t, asker, compile(t, asker, "SELECT owner, SUM(peer_hours), COUNT(*) FROM leases GROUP BY owner"))
		if len(res.Rows) != 1 || res.Rows[0][0].Str != owner.Name() {
			t.Fatalf("FROM leases by owner: %v", res.Rows)
		}
		gossip, rows := res.Rows[0][1].Num, res.Rows[0][2].Num
		t.Logf("peer-hours: gossip %.5f, owner's account %.5f; %v ledger rows", gossip, account, rows)
		if account < 4*60/3600.0 || math.Abs(gossip-account) > 0.01*account {
			t.Errorf("gossip says %.5f peer-hours, the owner %.5f: want within 1%%", gossip, account)
		}
		if math.Abs(rows-4) > 0.05 {
			t.Errorf("%v ledger rows, want 4 (3 held, 1 released)", rows)
		}
		open := ask(t, asker, compile(t, asker, "SELECT COUNT(*) FROM leases WHERE open AND started_ago <= 1h"))
		if math.Abs(open.Rows[0][0].Num-3) > 0.05 {
			t.Errorf("open leases: %v, want 3", open.Rows)
		}
		show := ask(t, owner, compile(t, owner, "SHOW SUBCLOUDS"))
		if got := show.Rows[0][7].Num; math.Abs(got-account) > 1e-9 {
			t.Errorf("SHOW SUBCLOUDS peer_hours %v, want the account %v", got, account)
		}
	})
}

// EXTEND is all or nothing: with a member cut off, it fails, says which,
// and the others are renewed back to the old length.
func TestExtendRollsBack(t *testing.T) {
	t.Parallel()
	fake(t, 12, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner := c.nodes[0]
		res := ask(t, owner, compile(t, owner, "RESERVE 3 FROM peers WHERE node != 'peer-000000' ORDER BY reliability DESC AS e FOR 1m NO REPAIR"))
		cut := res.Nodes[0]
		c.net.Partition([]string{cut})
		_, err := owner.Query(context.Background(), compile(t, owner, "ALTER SUBCLOUD e EXTEND FOR 2h"), nil)
		if err == nil || !strings.Contains(err.Error(), "could not be renewed ("+cut+")") || !strings.Contains(err.Error(), "nothing changed") {
			t.Fatalf("EXTEND with a member cut off: %v", err)
		}
		// The owner's machine (subcloud.Owner) sends the roll-backs as it
		// answers and sends each again until it lands, where the old
		// owner waited for one try of each: they land within an exchange.
		elapse(time.Second)
		for _, m := range res.Nodes[1:] {
			if l, _ := c.nodes[c.index(m)].leases.current(); l.Expires.Sub(time.Now()) > 2*time.Minute {
				t.Errorf("%s kept the 2h lease after a failed EXTEND: expires in %v", m, l.Expires.Sub(time.Now()))
			}
		}
		v, _ := owner.owner.Lookup("e")
		lease := v.Lease
		if lease != time.Minute {
			t.Errorf("the owner's lease length is %v after a failed EXTEND", lease)
		}
	})
}

// A member that hangs — silent to every exchange while the membership,
// whose verdict is an hour away, lists it — is replaced once this peer's
// probes have found it silent for HintTTL, not kept until its lease
// lapses unrenewed. A slow member (its pings time out, its checks are
// answered) under 5% loss for 3 minutes, and a member cut off for 6 s,
// are replaced by nobody. Mutations: without the probes' word (ownerEnv
// contact nil) the hung member is still counted after a minute (and the
// phases before find nobody lost: they would test nothing); with no time
// silent required (silentFor's d >= 0), the member cut off is replaced.
func TestSubcloudReplacesAHungMember(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c, owner, res := heldForAnHour(t, 20, 3)
		// Slow: its pings (a few typical exchanges long) time out, its
		// checks (an exchange timeout long) are answered.
		slow := res.Nodes[2]
		c.net.SetSlow(slow, 400*time.Millisecond)
		c.net.SetLoss(0.05)
		elapse(3 * time.Minute)
		c.net.SetSlow(slow, 0)
		if size, _, repairs := ownedSize(owner, "s"); size != 4 || repairs != 0 {
			t.Fatalf("a slow member under 5%% loss: size %d, %d repairs; want 4 members, none replaced", size, repairs)
		}
		lost := owner.Stats().Lost
		if lost == 0 {
			t.Errorf("the owner's probes never found a member lost in 3 minutes of loss and a slow member: the phase tested nothing")
		}
		// Cut off for a few seconds: found lost, then back before they
		// have found it silent for long.
		cut := res.Nodes[1]
		c.net.Partition([]string{cut})
		elapse(6 * time.Second)
		c.net.Heal()
		elapse(20 * time.Second)
		if owner.Stats().Lost == lost {
			t.Errorf("a member cut off for 6 s was never found lost: the cut tested nothing")
		}
		if size, _, repairs := ownedSize(owner, "s"); size != 4 || repairs != 0 {
			t.Fatalf("a member cut off for 6 s: size %d, %d repairs; want 4 members, none replaced", size, repairs)
		}
		c.net.SetLoss(0.02) // a search that can succeed
		hung := res.Nodes[0]
		c.kill(c.index(hung))
		start := time.Now()
		if !until(time.Minute, func() bool {
			size, _, repairs := ownedSize(owner, "s")
			return size == 4 && repairs == 1 && !slices.Contains(c.leaseHolders()["s"][owner.Name()], hung)
		}) {
			size, _, repairs := ownedSize(owner, "s")
			t.Fatalf("a hung member after a minute: size %d, %d repairs, holders %v", size, repairs, c.leaseHolders()["s"])
		}
		took := time.Since(start)
		t.Logf("the hung member replaced %v after it hung", took)
		if hint := DefaultConfig(nil).HintTTL; took < hint {
			t.Errorf("replaced after %v, before the probes could find it silent for %v", took, hint)
		}
		c.close()
	})
}

// A member the owner reaches only slowly — its pings time out, and no
// other member can reach it to vouch (they are cut off from it, or as
// slow to it), but its checks are answered — is found lost again and
// again, and kept: an answer clears the probes' note (leaseContact), and
// each finding that an answer proves wrong stretches the owner's pings
// (Lifeguard) until they reach it. (With answers not clearing the note it
// is kept too, by the second alone: the test does not tell them apart.)
func TestSubcloudKeepsASlowMemberItReaches(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c, owner, res := heldForAnHour(t, 12, 4)
		slow := res.Nodes[0]
		// The owner and its subcloud on one side: the helpers the owner
		// asks to reach the slow member are its fellow members (as slow
		// to it) or across the cut.
		c.net.Partition(append([]string{owner.Name()}, res.Nodes...))
		c.net.SetSlow(slow, 400*time.Millisecond)
		c.net.SetLoss(0.05)
		elapse(3 * time.Minute)
		if owner.Stats().Lost == 0 {
			t.Errorf("the owner's probes never found the slow member lost: the test tested nothing")
		}
		if size, _, repairs := ownedSize(owner, "s"); size != 4 || repairs != 0 {
			t.Errorf("a slow member whose checks are answered: size %d, %d repairs; want 4, none", size, repairs)
		}
		c.close()
	})
}

// heldForAnHour starts n peers on the fake network with Serf's verdict an
// hour away (a member that hangs stays listed), and has peer 0 reserve 4
// of the others AS s FOR 1h.
func heldForAnHour(t *testing.T, n int, seed uint64) (*cluster, *Node, *answer.Answer) {
	t.Helper()
	fcfg := fakenet.DefaultConfig()
	fcfg.Detect = time.Hour
	c := startFake(t, n, fcfg, seed, nil)
	owner := c.nodes[0]
	return c, owner, ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers WHERE node != 'peer-000000' ORDER BY reliability DESC AS s FOR 1h"))
}
