package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/internal/durable/crashfs"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// sendLease sends a raw lease request from peer n to peer to, as a member
// that holds the cluster key can: its own signature or none, any owner
// named, any fields.
func sendLease(t testing.TB, n *Node, to string, req subcloud.Request) subcloud.Reply {
	t.Helper()
	rep, err := n.calls.callRaw(context.Background(), to, req)
	if err != nil {
		t.Fatalf("%s to %s: %v", n.Name(), to, err)
	}
	return rep
}

// logged collects a node's log lines.
type logged struct {
	mu    sync.Mutex
	lines []string
}

func (l *logged) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logged) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// A member that holds the cluster key (here: any peer of the fake
// network) and sends claims, renewals or releases in another owner's name
// — signed with its own key, relayed, or with an earlier creation time —
// takes nothing: each is refused, counted and logged, and the owner's
// subcloud keeps its members. Its own RESERVE of the name is told who
// holds it.
func TestForgedClaimsAreRefused(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		logs := make([]*logged, 12)
		c := startFake(t, 12, fakenet.DefaultConfig(), 1, func(cfg *Config) {
			l := &logged{}
			logs[cfg.Seed%12] = l
			cfg.Logf = l.logf
		})
		owner, liar := c.nodes[1], c.nodes[2]
		res := ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers WHERE node != 'peer-000002' AS job FOR 10m"))
		victim := c.nodes[c.index(res.Nodes[0])]
		cur, _ := victim.leases.current()
		token := cur.Token // the worst case: the liar learned the token
		forged := func(r subcloud.Request) subcloud.Request {
			r.Target, r.Boot = victim.Name(), victim.id.Boot()
			r.Sign(liar.id) // the liar's own key
			return r
		}
		for _, r := range []subcloud.Request{
			// In the owner's name, with the liar's signature.
			forged(subcloud.Request{Op: subcloud.OpRelease, Subcloud: "job", Owner: owner.Name(), Token: token}),
			forged(subcloud.Request{Op: subcloud.OpRenew, Subcloud: "job", Owner: owner.Name(), Token: token, For: subcloud.MaxLease}),
			// Under its own name, the owner's token.
			forged(subcloud.Request{Op: subcloud.OpRelease, Subcloud: "job", Owner: liar.Name(), Token: token}),
		} {
			if rep := sendLease(t, liar, victim.Name(), r); !errors.Is(rep.Err(), subcloud.ErrForged) {
				t.Errorf("%v in %s's name: %v, want refused as forged", r.Op, r.Owner, rep.Err())
			}
		}
		// A claim signed by the owner, relayed by the liar: refused too.
		relayed := subcloud.Request{Op: subcloud.OpClaim, Subcloud: "job2", Owner: owner.Name(), Token: strings.Repeat("r", 32),
			For: time.Minute, Target: c.nodes[11].Name(), Boot: c.nodes[11].id.Boot()}
		relayed.Sign(owner.id)
		if rep := sendLease(t, liar, c.nodes[11].Name(), relayed); !errors.Is(rep.Err(), subcloud.ErrForged) {
			t.Errorf("a claim relayed by another peer: %v", rep.Err())
		}
		if got := victim.leases.forged.Load(); got != 3 {
			t.Errorf("the victim counted %d forgeries, want 3", got)
		}
		if !logs[victim.cfg.Seed%12].has("not signed by the owner it names") {
			t.Error("the victim logged nothing about the forgeries")
		}
		if l, ok := victim.leases.current(); !ok || l.Owner != owner.Name() || l.Expires.Sub(time.Now()) > 11*time.Minute {
			t.Errorf("the victim's lease after the forgeries: %+v %v", l, ok)
		}
		// The liar reserves the name with an earlier creation time on its
		// claims: the keepers say who holds it.
		_, err := liar.Query(context.Background(), compile(t, liar, "RESERVE 2 AS job FOR 10m"), nil)
		if err == nil || !strings.Contains(err.Error(), "taken by "+owner.Name()) {
			t.Errorf("the liar's RESERVE of job: %v", err)
		}
		early := subcloud.Request{Op: subcloud.OpClaim, Subcloud: "job", Owner: liar.Name(), Token: strings.Repeat("l", 32),
			For: time.Minute, Since: time.Now().Add(-24 * time.Hour).UnixNano(), Target: c.nodes[10].Name(), Boot: c.nodes[10].id.Boot()}
		early.Sign(liar.id)
		sendLease(t, liar, c.nodes[10].Name(), early) // a peer it may take, under its own name
		elapse(10 * time.Second)                      // renewals, tags, and the owner's checks of its name
		if h := c.leaseHolders()["job"][owner.Name()]; len(h) != 4 {
			t.Errorf("the owner's subcloud after the liar's claims: %v", c.leaseHolders()["job"])
		}
		if size, _, _ := ownedSize(owner, "job"); size != 4 {
			t.Errorf("the owner keeps %d members", size)
		}
		for _, at := range []*Node{c.nodes[5], owner} {
			if got := ask(t, at, compile(t, at, "SELECT COUNT(*) FROM SUBCLOUD job")); got.Rows[0][0].Num != 4 {
				t.Errorf("COUNT FROM SUBCLOUD job at %s: %v, want the owner's 4", at.Name(), got.Rows)
			}
		}
	})
}

// A claim recorded in one life of a peer and replayed after it restarted
// is refused: it names the old incarnation.
func TestReplayAfterRestartIsRefused(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 6, fakenet.DefaultConfig(), 1, func(cfg *Config) {
			cfg.DataDir = fmt.Sprintf("%s/%d", root, cfg.Seed)
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				t.Fatal(err)
			}
		})
		owner, target := c.nodes[0], c.nodes[3]
		claim := subcloud.Request{Op: subcloud.OpClaim, Subcloud: "rec", Owner: owner.Name(), Token: strings.Repeat("q", 32),
			For: 30 * time.Minute, Target: target.Name(), Boot: target.id.Boot()}
		claim.Sign(owner.id)
		if rep := sendLease(t, owner, target.Name(), claim); !rep.OK {
			t.Fatalf("the original claim: %v", rep.Err())
		}
		release := subcloud.Request{Op: subcloud.OpRelease, Subcloud: "rec", Owner: owner.Name(), Token: claim.Token,
			Target: target.Name(), Boot: target.id.Boot()}
		release.Sign(owner.id)
		sendLease(t, owner, target.Name(), release)
		c.kill(3)
		elapse(3 * time.Second)
		c.restart(t, 3)
		target = c.nodes[3]
		rep := sendLease(t, c.nodes[1], target.Name(), claim) // replayed by anyone
		if rep.OK || !errors.Is(rep.Err(), subcloud.ErrIncarnation) {
			t.Errorf("the replayed claim: %+v", rep)
		}
		if _, held := target.leases.current(); held {
			t.Error("the restarted peer holds the replayed lease")
		}
	})
}

// An owner that restarts without its records (its owned file lost) leaves
// no lease that nobody can release: its members see it restart, ask it,
// and free themselves once it answers, signed, that it does not hold them;
// its keepers free the name when another owner asks for it.
func TestOwnerWithoutRecordsFreesItsMembers(t *testing.T) {
	t.Parallel()
	fsys := map[uint64]*crashfs.FS{}
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 10, fakenet.DefaultConfig(), 1, func(cfg *Config) {
			fsys[cfg.Seed] = crashfs.New()
			cfg.FS, cfg.DataDir = fsys[cfg.Seed], "/data"
		})
		owner := c.nodes[0]
		ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers WHERE node != 'peer-000000' AS big FOR 30m"))
		if h := c.leaseHolders()["big"][owner.Name()]; len(h) != 4 {
			t.Fatalf("holders %v", c.leaseHolders())
		}
		c.kill(0)
		// The owner's records are gone: its disk lost the file.
		fs := fsys[c.cfgs[0].Seed]
		fs.Remove("/data/" + ownedFile)
		fs.Remove("/data/" + ownedFile + ".prev")
		elapse(3 * time.Second)
		c.restart(t, 0)
		start := time.Now()
		if !until(time.Minute, func() bool { return len(c.leaseHolders()["big"]) == 0 }) {
			t.Fatalf("a minute after the owner restarted without its records, peers still hold: %v", c.leaseHolders()["big"])
		}
		t.Logf("members freed %v after the owner restarted", time.Since(start).Round(time.Second))
		other := c.nodes[5]
		if _, err := other.Query(context.Background(), compile(t, other, "RESERVE 3 AS big FOR 1m"), nil); err != nil {
			t.Errorf("RESERVE big at another agent after that: %v", err)
		}
	})
}

// An owner whose disk is full or read-only never says yes: with the fault
// known (its probe) RESERVE is refused at once; with a disk that fills up
// after the claims, RESERVE fails, releases what it took and says so; in
// both cases no peer holds anything. The agent shows the fault in its
// tags.
func TestReserveOnAFailingDisk(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		early bool // the fault is there when the agent starts
		set   func(*crashfs.FS)
	}{
		{"full from the start", true, func(f *crashfs.FS) { f.SetFull(true) }},
		{"read-only from the start", true, func(f *crashfs.FS) { f.SetReadOnly(true) }},
		{"full after its probe", false, func(f *crashfs.FS) { f.SetFull(true) }},
		{"read-only after its probe", false, func(f *crashfs.FS) { f.SetReadOnly(true) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				disk := crashfs.New()
				if c.early {
					c.set(disk)
				}
				cl := startFake(t, 8, fakenet.DefaultConfig(), 1, func(cfg *Config) {
					if cfg.Seed == 1*1_000_003+1 { // peer 0, the owner
						cfg.FS, cfg.DataDir = disk, "/data"
					}
				})
				owner := cl.nodes[0]
				if !c.early {
					c.set(disk)
				}
				_, err := owner.Query(context.Background(), compile(t, owner, "RESERVE 3 FROM peers WHERE node != 'peer-000000' AS big FOR 1h"), nil)
				if err == nil || !errors.Is(err, api.ErrStorage) || !strings.Contains(err.Error(), " at peer-000000, whose data dir cannot be written") {
					t.Fatalf("RESERVE on a failing disk: %v", err)
				}
				t.Log(err)
				elapse(2 * time.Second)
				if h := cl.leaseHolders()["big"]; len(h) != 0 {
					t.Errorf("after the failed RESERVE, peers hold %v", h)
				}
				if size, _, _ := ownedSize(owner, "big"); size != -1 {
					t.Errorf("the owner keeps %d members", size)
				}
				elapse(2 * time.Second) // the tag
				if m, _ := cl.nodes[3].net.Member(owner.Name()); m.Tags[TagStorage] == "" {
					t.Errorf("the owner's tags do not show the fault: %v", m.Tags)
				}
			})
		})
	}
}

// A member whose disk turned read-only lets go of its lease on RELEASE
// (the answer says it could not record it; RELEASE says yes); restarted on
// the same disk, it finds the old lease there, asks the owner, and frees
// itself.
func TestReleaseOfAReadOnlyMember(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		disk := crashfs.New()
		c := startFake(t, 8, fakenet.DefaultConfig(), 1, func(cfg *Config) {
			if cfg.Seed == 1*1_000_003+4 { // peer 3
				cfg.FS, cfg.DataDir = disk, "/data"
			}
		})
		owner, member := c.nodes[0], c.nodes[3]
		ask(t, owner, compile(t, owner, "RESERVE 7 AS all FOR 1h"))
		if l, ok := member.leases.current(); !ok || l.Subcloud != "all" {
			t.Fatalf("peer 3 holds %+v %v", l, ok)
		}
		disk.SetReadOnly(true)
		if _, err := owner.Query(context.Background(), compile(t, owner, "RELEASE all"), nil); err != nil {
			t.Errorf("RELEASE with a read-only member: %v", err)
		}
		if _, held := member.leases.current(); held {
			t.Error("the read-only member still holds the lease after RELEASE")
		}
		c.kill(3)
		elapse(3 * time.Second)
		c.restart(t, 3)
		member = c.nodes[3]
		if _, held := member.leases.current(); !held {
			t.Error("the lease did not come back from the disk: the release was never recorded there, so the restart must find it")
		}
		if !until(time.Minute, func() bool { _, held := member.leases.current(); return !held }) {
			t.Error("a minute after its restart the read-only member still holds the released lease")
		}
	})
}

// A RESERVE that failed leaves nothing that blocks the next one: a retry
// right after it, with a size that can be met, succeeds.
func TestRetryRightAfterAFailedReserve(t *testing.T) {
	t.Parallel()
	fake(t, 12, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		n := c.nodes[0]
		if _, err := n.Query(context.Background(), compile(t, n, "RESERVE 40 AS retry FOR 10m"), nil); !errors.Is(err, ErrNotEnoughPeers) {
			t.Fatalf("RESERVE 40 of 12: %v", err)
		}
		if _, err := n.Query(context.Background(), compile(t, n, "RESERVE 5 AS retry FOR 10m"), nil); err != nil {
			t.Errorf("the retry: %v", err)
		}
		if h := c.leaseHolders()["retry"][n.Name()]; len(h) != 5 {
			t.Errorf("holders %v", c.leaseHolders()["retry"])
		}
	})
}

var _ = query.DefaultCatalog

// A peer whose clock is a minute off: its exchanges are refused for the
// time on them. The others' answers leave it out and name it, exact or
// converged over the rest; its own answers are partial and say that its
// clock is off.
func TestClockSkewIsNamed(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 8, fakenet.DefaultConfig(), 1, nil)
		skewed := c.nodes[5]
		c.net.SetClockOffset(skewed.Name(), time.Minute)
		elapse(2 * time.Second) // the gossip of idle rounds meets the skew
		// (Answers from the membership alone, COUNT(*) FROM peers, need no
		// exchange: they count the skewed peer, whose tags are known.)
		for _, src := range []string{"SELECT COUNT(*) FROM peers WHERE mem_free >= 0", "SELECT node FROM peers ORDER BY mem_free DESC LIMIT 8"} {
			res := ask(t, c.nodes[0], compile(t, c.nodes[0], src))
			if res.Status == StatusPartial || fmt.Sprint(res.Excluded) != "["+skewed.Name()+"]" || res.Peers != 7 ||
				!strings.Contains(res.Warning, skewed.Name()+" (clock skew +60 s)") {
				t.Errorf("%s at a peer with the right time: %s %q, excluded %v (%s), peers %d", src, res.Status, res.Reason, res.Excluded, res.Warning, res.Peers)
			}
			if strings.HasPrefix(src, "SELECT COUNT") && res.Rows[0][0].Num != 7 {
				t.Errorf("COUNT(*) over the others: %v, want 7", res.Rows)
			}
			for _, name := range res.Nodes {
				if name == skewed.Name() {
					t.Errorf("the top-k names the skewed peer")
				}
			}
		}
		res, err := skewed.Query(context.Background(), compile(t, skewed, "SELECT COUNT(*) FROM peers WHERE mem_free >= 0"), nil)
		if res == nil || res.Status != StatusPartial || !strings.Contains(res.Reason, "clock skew at "+skewed.Name()+" (+60 s)") || len(res.Excluded) != 0 {
			t.Errorf("at the skewed peer: %+v %v", res, err)
		}
	})
}

// Right after a RESERVE and a RELEASE, an agent that does not own the
// subcloud sees what its owner sees — asked, not read from tags that lag
// (here by 3 s) — and says where each row comes from.
func TestReadsAtAnotherAgentAreFresh(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		fcfg.TagDelay = 3 * time.Second
		c := startFake(t, 16, fcfg, 1, nil)
		owner, other := c.nodes[0], c.nodes[7]
		ask(t, owner, compile(t, owner, "RESERVE 10 FROM peers WHERE node != 'peer-000007' AS ten FOR 10m"))
		if got := ask(t, other, compile(t, other, "SELECT COUNT(*) FROM SUBCLOUD ten")); got.Rows[0][0].Num != 10 || got.Status == StatusPartial {
			t.Errorf("COUNT FROM SUBCLOUD ten at another agent right after RESERVE: %v (%s)", got.Rows, got.Status)
		}
		if got := ask(t, other, compile(t, other, "SELECT node FROM SUBCLOUD ten")); len(got.Rows) != 10 {
			t.Errorf("the members at another agent right after RESERVE: %d rows", len(got.Rows))
		}
		// SHOW SUBCLOUDS finds subclouds by their tags, and says so; once
		// it knows one, its row is the owner's.
		show := ask(t, other, compile(t, other, "SHOW SUBCLOUDS"))
		if !strings.Contains(show.Warning, "within a few seconds") {
			t.Errorf("SHOW SUBCLOUDS at another agent does not say how old it may be: %q", show.Warning)
		}
		elapse(4 * time.Second)
		show = ask(t, other, compile(t, other, "SHOW SUBCLOUDS"))
		if len(show.Rows) != 1 || show.Rows[0][3].Num != 10 || show.Rows[0][2].Num != 10 || show.Rows[0][9].Str != "its owner" {
			t.Errorf("SHOW SUBCLOUDS at another agent once the tags spread: %v", show.Rows)
		}
		ask(t, owner, compile(t, owner, "RELEASE ten"))
		if _, err := other.Query(context.Background(), compile(t, other, "SELECT COUNT(*) FROM SUBCLOUD ten"), nil); err == nil ||
			!strings.Contains(err.Error(), "unknown subcloud ten") {
			t.Errorf("FROM SUBCLOUD ten at another agent right after RELEASE: %v", err)
		}
		show = ask(t, other, compile(t, other, "SHOW SUBCLOUDS"))
		for _, row := range show.Rows {
			if row[9].Str != "members' tags" {
				t.Errorf("SHOW SUBCLOUDS at another agent right after RELEASE: %v", row)
			}
		}
		elapse(4 * time.Second)
		if show = ask(t, other, compile(t, other, "SHOW SUBCLOUDS")); len(show.Rows) != 0 {
			t.Errorf("SHOW SUBCLOUDS once the tags caught up: %v", show.Rows)
		}
	})
}
