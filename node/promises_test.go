package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	mrand "math/rand/v2"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/internal/durable/crashfs"
	"github.com/peerq/peerq/subcloud"
)

// RELEASE, and a RESIZE that shrinks, with a member that cannot be
// reached (cut off, or stopped) exit "incomplete" naming it; once it can
// be reached again it lets go.
func TestUnreachableMemberIsNamed(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"release/partition", "release/stop", "resize/partition"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := startFake(t, 8, fakenet.DefaultConfig(), 1, nil)
				owner := c.nodes[0]
				ask(t, owner, compile(t, owner, "RESERVE 7 AS all FOR 1h"))
				// The member to lose: the lowest-ranked, the one a RESIZE
				// TO 6 lets go.
				ranked := ownedMembers(owner, "all")
				var m *Node
				for _, n := range c.nodes {
					if n.Name() == ranked[len(ranked)-1] {
						m = n
					}
				}
				if l, ok := m.leases.current(); !ok || l.Subcloud != "all" {
					t.Fatalf("%s holds %+v %v", m.Name(), l, ok)
				}
				if strings.HasSuffix(how, "partition") {
					c.net.Partition([]string{m.Name()})
				} else {
					c.net.Stop(m.Name())
				}
				stmt := "RELEASE all"
				if strings.HasPrefix(how, "resize") {
					stmt = "ALTER SUBCLOUD all RESIZE TO 6"
				}
				_, err := owner.Query(context.Background(), compile(t, owner, stmt), nil)
				if !errors.Is(err, api.ErrIncomplete) || !strings.Contains(err.Error(), m.Name()) {
					t.Fatalf("%s with %s unreachable: %v; want incomplete naming it", stmt, m.Name(), err)
				}
				if strings.HasSuffix(how, "partition") {
					c.net.Heal()
					if !until(3*time.Minute, func() bool { _, held := m.leases.current(); return !held }) {
						t.Error("once it can be reached, the member still holds the lease")
					}
				}
			})
		})
	}
}

// A key holder claims a free peer under another owner's name, dated a
// day back: the peer refuses (the name's keepers hold it for the other
// key), and SHOW SUBCLOUDS anywhere names the owner the keepers name. A
// claim under a free name is dated now, whatever it says.
func TestNoClaimIsOlderThanItsName(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 12, fakenet.DefaultConfig(), 1, nil)
		owner, liar, victim := c.nodes[1], c.nodes[2], c.nodes[10]
		ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers WHERE node != 'peer-000002' AND node != 'peer-000010' AS job FOR 10m"))
		claim := func(name string) subcloud.Reply {
			req := subcloud.Request{Op: subcloud.OpClaim, Subcloud: name, Owner: liar.Name(), Token: strings.Repeat("l", 32),
				For: 5 * time.Minute, Since: time.Now().Add(-24 * time.Hour).UnixNano(), Target: victim.Name(), Boot: victim.id.Boot()}
			req.Sign(liar.id)
			return sendLease(t, liar, victim.Name(), req)
		}
		if rep := claim("job"); rep.OK || rep.Refusal != subcloud.RefusedHeld || rep.Holder != owner.Name() {
			t.Errorf("a claim under job, owned by %s, made by %s: %+v; want refused, held by %s", owner.Name(), liar.Name(), rep, owner.Name())
		}
		elapse(10 * time.Second)
		for _, at := range []*Node{c.nodes[5], c.nodes[7]} {
			show := ask(t, at, compile(t, at, "SHOW SUBCLOUDS"))
			found := false
			for _, row := range show.Rows {
				if row[0].Str == "job" {
					found = true
					if row[1].Str != owner.Name() || row[3].Num != 4 {
						t.Errorf("SHOW SUBCLOUDS at %s: %v; want job owned by %s with 4 members", at.Name(), row, owner.Name())
					}
				}
			}
			if !found {
				t.Errorf("SHOW SUBCLOUDS at %s does not list job: %v", at.Name(), show.Rows)
			}
		}
		// A free name: granted, but dated now (no keeper granted it earlier).
		now := time.Now()
		if rep := claim("other"); !rep.OK {
			t.Fatalf("a claim under a free name: %+v", rep)
		}
		if l, ok := victim.leases.current(); !ok || l.Since.Before(now) {
			t.Errorf("the lease under a free name: %+v; want since no earlier than %v", l, now)
		}
	})
}

// syncGate is a disk whose first directory fsync once armed waits until
// released.
type syncGate struct {
	durable.FS
	armed   atomic.Bool
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *syncGate) SyncDir(dir string) error {
	if g.armed.Load() {
		g.once.Do(func() { close(g.entered); <-g.release })
	}
	return g.FS.SyncDir(dir)
}

// Reads at a keeper — the lease, the ledger, a name lookup (OpWho, which
// FROM SUBCLOUD and SHOW SUBCLOUDS at other agents send) — do not wait
// for another request's fsync.
func TestReadsDoNotWaitForAnFsync(t *testing.T) {
	t.Parallel()
	g := &syncGate{FS: durable.OS(), entered: make(chan struct{}), release: make(chan struct{})}
	k, _, err := openKeeper(g, t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	name := signedReq(t, "o", subcloud.Request{Op: subcloud.OpName, Subcloud: "n", For: time.Hour})
	if rep := k.apply(now, keeperSelf, "o", name, 0); rep.Refusal != 0 && !rep.OK {
		t.Fatalf("registering n: %v", rep.Err())
	}
	g.armed.Store(true)
	wrote := make(chan subcloud.Reply, 1)
	go func() { // a second registration: its write blocks in the fsync
		wrote <- k.apply(now, keeperSelf, "o", signedReq(t, "o", subcloud.Request{Op: subcloud.OpName, Subcloud: "m", For: time.Hour}), 0)
	}()
	<-g.entered
	read := make(chan subcloud.Reply, 1)
	go func() {
		k.current(now)
		k.rows("peer", now)
		// These take the keeper's lock for a moment: not held across the
		// write.
		k.due(now, 1)
		k.answered(now, 1)
		read <- k.apply(now, keeperSelf, "x", subcloud.Request{Op: subcloud.OpWho, Subcloud: "n"}, 0)
	}()
	select {
	case rep := <-read:
		if !rep.OK || rep.Holder != "o" {
			t.Errorf("OpWho n during a write: %+v; want held by o", rep)
		}
	case <-time.After(5 * time.Second):
		t.Error("a read waited for another request's fsync")
	}
	close(g.release)
	if rep := <-wrote; !rep.OK {
		t.Errorf("the blocked registration: %v", rep.Err())
	}
}

// The crash the issue found: the lease file left as lease.json.prev only
// (between the two renames of an old write). The lease is read from it,
// and no second owner is granted the peer.
func TestLeaseKeptInThePreviousCopy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, _, err := openKeeper(durable.OS(), dir, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if r := k.apply(now, keeperSelf, "o", signedReq(t, "o", subcloud.Request{Op: subcloud.OpClaim, Subcloud: "a",
		Token: strings.Repeat("a", 32), For: time.Hour}), 0); !r.OK {
		t.Fatal(r.Err())
	}
	p := filepath.Join(dir, leaseFile)
	os.Remove(p + ".prev")
	if err := os.Rename(p, p+".prev"); err != nil {
		t.Fatal(err)
	}
	k2, _, err := openKeeper(durable.OS(), dir, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if l, held := k2.current(now); !held || l.Subcloud != "a" {
		t.Fatalf("the lease in lease.json.prev was forgotten: %+v %v", l, held)
	}
	if r := k2.apply(now, keeperSelf, "p", signedReq(t, "p", subcloud.Request{Op: subcloud.OpClaim, Subcloud: "z",
		Token: strings.Repeat("z", 32), For: time.Hour}), 0); r.OK {
		t.Fatal("the peer was granted to a second owner")
	}
}

// An owner that comes back with a new key (it lost its data dir) answers
// its members with a signature they cannot check: they count it as
// owner_key_changed, not as a forgery, say so once, and ask again only
// after askEvery — not every few seconds until the lease lapses.
func TestOwnerWithANewKey(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		logs := map[uint64]*logged{}
		c := startFake(t, 6, fakenet.DefaultConfig(), 1, func(cfg *Config) {
			logs[cfg.Seed] = &logged{}
			cfg.Logf = logs[cfg.Seed].logf
		})
		owner := c.nodes[0]
		ask(t, owner, compile(t, owner, "RESERVE 3 FROM peers WHERE node != 'peer-000000' AS keyed FOR 1h"))
		c.kill(0)
		elapse(3 * time.Second)
		c.cfgs[0].Seed += 1_000 // a new key: the data dir it came from is gone
		c.restart(t, 0)
		elapse(2 * time.Minute)
		var changed, forged int64
		lines := 0
		for i, n := range c.nodes[1:] {
			changed += n.leases.keyChanged.Load()
			forged += n.leases.forged.Load()
			if _, held := n.leases.current(); held {
				l := logs[c.cfgs[i+1].Seed]
				l.mu.Lock()
				for _, line := range l.lines {
					if strings.Contains(line, "with a new key") {
						lines++
					}
				}
				l.mu.Unlock()
			}
		}
		if changed == 0 || forged != 0 {
			t.Errorf("owner_key_changed %d, forged %d; want some, and none", changed, forged)
		}
		if changed > 3*2 || lines > 3 {
			t.Errorf("in 2 minutes: %d answers with the new key counted, %d log lines, for 3 members; want at most one ask per member per %v", changed, lines, askEvery)
		}
	})
}

var testKeys = func() map[string]*identity.Key {
	m := map[string]*identity.Key{}
	for _, name := range []string{"o", "p", "x"} {
		k, err := identity.New(mrand.NewChaCha8([32]byte{name[0]}))
		if err != nil {
			panic(err)
		}
		m[name] = k
	}
	return m
}()

// keeperSelf is a keeper named "peer", at incarnation 1, that knows the
// keys of o, p and x.
var keeperSelf = subcloud.Self{Name: "peer", Boot: 1, KeyOf: func(name string) (identity.Public, bool) {
	k, ok := testKeys[name]
	if !ok {
		return identity.Public{}, false
	}
	return k.Public(), true
}}

// signedReq is r from owner to keeperSelf, signed.
func signedReq(t testing.TB, owner string, r subcloud.Request) subcloud.Request {
	r.Owner, r.Target, r.Boot = owner, "peer", 1
	r.Sign(testKeys[owner])
	return r
}

// slowOwned is a file system whose commit of the owned subclouds (the
// rename of owned.json), once armed, says when it starts and waits until
// the test lets it end: the window in which a member can be lost while a
// RESERVE is recorded.
type slowOwned struct {
	durable.FS
	armed   atomic.Bool
	writing chan struct{} // closed at the first armed commit
	release chan struct{} // closed by the test: the commit ends
	once    sync.Once
}

func (s *slowOwned) Rename(oldname, newname string) error {
	if s.armed.Load() && filepath.Base(newname) == ownedFile {
		s.once.Do(func() { close(s.writing) })
		<-s.release
	}
	return s.FS.Rename(oldname, newname)
}

// A RESERVE that loses a member while its owner records it (a member
// stopped, seen failed during the write, which ends at that moment)
// keeps its word at the node, as the owner's property test checks it in
// the machine: with a spare it waits for the repair (which needs the
// network, so it ends after the write) and names as many as asked, each
// holding the lease; NO REPAIR, or no spare in time, answers incomplete
// (exit 6) with the members it holds, and the owner keeps those (still
// repairing, unless NO REPAIR).
func TestReserveLosesAMemberAsItIsRecorded(t *testing.T) {
	t.Parallel()
	const detect = 500 * time.Millisecond
	for _, tc := range []struct {
		name, where, suffix string
		done                bool
	}{
		{"repaired", "node != 'peer-000000'", "", true},
		{"no repair", "node != 'peer-000000'", " NO REPAIR", false},
		{"no spare", "node IN ('peer-000001', 'peer-000002', 'peer-000003')", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fsys := &slowOwned{FS: crashfs.New(), writing: make(chan struct{}), release: make(chan struct{})}
				fcfg := fakenet.DefaultConfig()
				fcfg.Detect = detect
				started := 0
				c := startFake(t, 8, fcfg, 1, func(cfg *Config) {
					if started == 0 { // peer 0, the owner
						cfg.FS, cfg.DataDir = fsys, "/data"
					}
					started++
				})
				owner := c.nodes[0]
				fsys.armed.Store(true)
				var lost atomic.Value
				go func() {
					<-fsys.writing
					// A member holding the lease: the claim granted it
					// before the owner's write.
					for _, n := range c.nodes[1:] {
						if l, ok := n.leases.current(); ok && l.Subcloud == "job" {
							lost.Store(n.Name())
							n.Close()
							c.net.Stop(n.Name())
							break
						}
					}
					// The owner sees the loss (and starts what follows
					// it, up to its first message), then its write ends.
					time.Sleep(detect)
					synctest.Wait()
					close(fsys.release)
				}()
				stmt := "RESERVE 3 FROM peers WHERE " + tc.where + " AS job FOR 10m" + tc.suffix
				res, err := owner.Query(context.Background(), compile(t, owner, stmt), nil)
				gone, _ := lost.Load().(string)
				if gone == "" {
					t.Fatalf("%s: no member held the lease as it was recorded (answer %v, %v)", stmt, res, err)
				}
				holders := c.leaseHolders()["job"][owner.Name()]
				members := ownedMembers(owner, "job")
				if res == nil {
					t.Fatalf("%s with %s lost: no answer (%v)", stmt, gone, err)
				}
				named := res.Nodes
				if tc.done {
					if err != nil || len(named) != 3 {
						t.Fatalf("%s with %s lost as it was recorded: %v, named %v; want done, 3 named", stmt, gone, err, named)
					}
					if _, _, repairs := ownedSize(owner, "job"); repairs < 1 {
						t.Errorf("done with 3 named, %d repairs: the loss was not seen as it was recorded", repairs)
					}
				} else {
					if !errors.Is(err, api.ErrIncomplete) || len(named) != 2 {
						t.Fatalf("%s with %s lost as it was recorded: %v, named %v; want incomplete, 2 named", stmt, gone, err, named)
					}
					if !strings.Contains(err.Error(), "reached 3 members") {
						t.Errorf("the incomplete answer does not say what it reached: %v", err)
					}
				}
				for _, m := range named {
					if m == gone {
						t.Errorf("the answer names %s, the member lost as it was recorded", m)
					}
				}
				// What it names is what the peers hold and what the owner
				// keeps: nobody else holds its lease.
				if !sameSet(named, holders) || !sameSet(named, members) {
					t.Errorf("named %v; the peers holding the lease %v; the owner's members %v", named, holders, members)
				}
				t.Logf("%s: %v (lost %s) named %v", tc.name, err, gone, named)
			})
		})
	}
}
