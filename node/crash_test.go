package node

import (
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable/crashfs"
	"github.com/peerq/peerq/node/owner"
	"github.com/peerq/peerq/subcloud"
)

// The durable files of a peer, crashed at every step of every write: the
// lease table with its ledger, the names it keeps, the subclouds it owns,
// and its identity. After any crash and any restart a machine could find,
// no lease or name answered "granted" is forgotten, no peer can be granted
// to a second owner while the first holds it, no subcloud answered
// "reserved" is forgotten by its owner, and the identity is the one the
// peer had (it would otherwise become another peer).
func TestCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	const dir = "/data"
	t0 := time.Unix(1_800_000_000, 0)
	keys := map[string]*identity.Key{}
	for _, name := range []string{"o", "p"} {
		k, err := identity.New(mrand.NewChaCha8([32]byte{name[0]}))
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = k
	}
	self := subcloud.Self{Name: "peer", Boot: 1, KeyOf: func(name string) (identity.Public, bool) {
		k, ok := keys[name]
		if !ok {
			return identity.Public{}, false
		}
		return k.Public(), true
	}}
	req := func(owner string, r subcloud.Request) subcloud.Request {
		r.Owner, r.Target, r.Boot = owner, "peer", 1
		r.Sign(keys[owner])
		return r
	}
	tokA, tokB := strings.Repeat("a", 32), strings.Repeat("b", 32)
	// The operations, in order, with what the table must show once each
	// was answered "yes": the lease's subcloud ("" none), and the names
	// held.
	type op struct {
		r     subcloud.Request
		lease string
		names []string
	}
	ops := []op{
		{req("o", subcloud.Request{Op: subcloud.OpClaim, Subcloud: "a", Token: tokA, For: time.Hour}), "a", nil},
		{req("o", subcloud.Request{Op: subcloud.OpName, Subcloud: "a", For: time.Hour}), "a", []string{"a"}},
		{req("o", subcloud.Request{Op: subcloud.OpRenew, Subcloud: "a", Token: tokA, For: time.Hour}), "a", []string{"a"}},
		{req("o", subcloud.Request{Op: subcloud.OpRelease, Subcloud: "a", Token: tokA}), "", []string{"a"}},
		{req("p", subcloud.Request{Op: subcloud.OpClaim, Subcloud: "b", Token: tokB, For: time.Hour}), "b", []string{"a"}},
		{req("p", subcloud.Request{Op: subcloud.OpName, Subcloud: "b", For: time.Hour}), "b", []string{"a", "b"}},
		{req("o", subcloud.Request{Op: subcloud.OpNameRelease, Subcloud: "a"}), "b", []string{"b"}},
	}
	t.Run("lease, ledger and names", func(t *testing.T) {
		rep := crashfs.Explore(t, func(fsys *crashfs.FS, ack func()) error {
			k, _, err := openKeeper(fsys, dir, func(string, ...any) {})
			if err != nil {
				return err
			}
			for i, o := range ops {
				from := o.r.Owner
				if r := k.apply(t0.Add(time.Duration(i)*time.Minute), self, from, o.r, 0); !r.OK || r.Volatile {
					return fmt.Errorf("op %d (%v): %v", i, o.r.Op, r.Err())
				}
				ack()
			}
			return nil
		}, func(after *crashfs.FS, acked int) error {
			k, _, err := openKeeper(after, dir, func(string, ...any) {})
			if err != nil {
				return fmt.Errorf("restart: %w", err)
			}
			now := t0.Add(time.Duration(len(ops)) * time.Minute)
			l, held := k.table.Current(now)
			if acked == 0 {
				return nil
			}
			// The last acked op, or the one in progress.
			okState := func(o op) bool {
				if (o.lease != "") != held || held && l.Subcloud != o.lease {
					return false
				}
				for _, name := range o.names {
					if _, live := k.names.Who(now, name); !live {
						return false
					}
				}
				return true
			}
			if !okState(ops[acked-1]) && (acked == len(ops) || !okState(ops[acked])) {
				return fmt.Errorf("after %d acked ops: lease %+v (held %v), names %d; want op %d's state (lease %q, names %v)",
					acked, l, held, k.names.Len(), acked-1, ops[acked-1].lease, ops[acked-1].names)
			}
			// No second grant while one is held: a claim by the other
			// owner is refused.
			if held {
				other := "o"
				if l.Owner == "o" {
					other = "p"
				}
				r := k.apply(now, self, other, req(other, subcloud.Request{Op: subcloud.OpClaim, Subcloud: "z", Token: strings.Repeat("z", 32), For: time.Hour}), 0)
				if r.OK {
					return fmt.Errorf("after %d acked ops the peer, holding %s's lease, granted %s too", acked, l.Owner, other)
				}
			}
			// The ledger knows every lease it granted.
			rows := k.rows("peer", now)
			if want := min(acked, 5); want >= 1 && len(rows) < 1 || want >= 5 && len(rows) < 2 {
				return fmt.Errorf("after %d acked ops the ledger has %d rows", acked, len(rows))
			}
			return nil
		})
		if rep.Restarts == 0 || rep.Steps < len(ops) {
			t.Fatalf("explored %+v", rep)
		}
		t.Logf("%d steps, %d crashes, %d restarts checked", rep.Steps, rep.Crashes, rep.Restarts)
	})

	t.Run("owned subclouds", func(t *testing.T) {
		subclouds := []string{"s1", "s2", "s3"}
		rep := crashfs.Explore(t, func(fsys *crashfs.FS, ack func()) error {
			n := crashNode(fsys, dir)
			// The owner role's writer stores the whole table at each change.
			table := map[string]subcloud.OwnerState{}
			store := func() error {
				var states []subcloud.OwnerState
				for _, st := range table {
					states = append(states, st)
				}
				return ownerEnv{fs: n.fs, dir: dir, stored: n.keeper.stored}.Store(owner.EncodeTable(states))
			}
			for i, name := range subclouds {
				table[name] = subcloud.OwnerState{Subcloud: name, Token: strings.Repeat(fmt.Sprint(i), 32), Lease: time.Hour,
					Members: map[string]time.Time{"m" + name: t0.Add(time.Hour)}, Target: 1}
				if err := store(); err != nil {
					return err
				}
				ack() // RESERVE answered
			}
			delete(table, "s1")
			if err := store(); err != nil {
				return err
			}
			ack() // RELEASE answered
			return nil
		}, func(after *crashfs.FS, acked int) error {
			states, _, err := openOwned(after, dir)
			if err != nil {
				return fmt.Errorf("restart: %w", err)
			}
			owned := map[string]*subcloud.OwnerState{}
			for i := range states {
				owned[states[i].Subcloud] = &states[i]
			}
			for i := 0; i < min(acked, len(subclouds)); i++ {
				if owned[subclouds[i]] == nil && !(i == 0 && acked >= len(subclouds)) {
					return fmt.Errorf("after %d acks the owner forgot %s", acked, subclouds[i])
				}
			}
			if acked == len(subclouds)+1 && owned["s1"] != nil {
				return fmt.Errorf("s1 back after its RELEASE was answered")
			}
			return nil
		})
		if rep.Restarts == 0 {
			t.Fatalf("explored %+v", rep)
		}
		t.Logf("%d steps, %d crashes, %d restarts checked", rep.Steps, rep.Crashes, rep.Restarts)
	})

	// What the peer observed: after a crash in its second save it reads
	// back the first or the second, never an error, never a torn one.
	t.Run("observed", func(t *testing.T) {
		const w = time.Hour
		restart, later := t0.Add(time.Minute), t0.Add(2*time.Minute)
		// The two saves the workload makes, and a's bound as each
		// restores it: up since t0 (saved at 10 s), then down at 20 s
		// (saved at 40 s).
		saves := func(each func(o *observer, at time.Time) error) error {
			o := newObserver(w, t0)
			o.up("a", t0)
			if err := each(o, t0.Add(10*time.Second)); err != nil {
				return err
			}
			o.down("a", t0.Add(20*time.Second))
			return each(o, t0.Add(40*time.Second))
		}
		var bounds []float64
		if err := saves(func(o *observer, at time.Time) error {
			r, err := decodeObserved(o.encode(at), w, restart)
			if err != nil {
				return err
			}
			x, _ := r.atMost("a", later)
			bounds = append(bounds, x)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if bounds[0] == bounds[1] {
			t.Fatalf("the two saves restore the same bound %v: the test cannot tell them apart", bounds)
		}
		rep := crashfs.Explore(t, func(fsys *crashfs.FS, ack func()) error {
			return saves(func(o *observer, at time.Time) error {
				if err := writeObserved(fsys, dir, o, at); err != nil {
					return err
				}
				ack()
				return nil
			})
		}, func(after *crashfs.FS, acked int) error {
			cfg := DefaultConfig(nil)
			cfg.FS, cfg.DataDir, cfg.ReliabilityWindow, cfg.Clock = after, dir, w, func() time.Time { return restart }
			r, note := openObserved(cfg)
			if strings.Contains(note, "cannot be read") {
				return fmt.Errorf("restart: %s", note)
			}
			got, known := r.atMost("a", later)
			// The last acked save, or the one in progress; before any,
			// nothing (a fresh observer does not know a).
			ok := acked == 0 && !known
			for i := max(acked-1, 0); i <= min(acked, 1); i++ {
				ok = ok || known && math.Abs(got-bounds[i]) < 1e-9
			}
			if !ok {
				return fmt.Errorf("acked %d saves, restored a's bound %v (known %v; the saves restore %v)", acked, got, known, bounds)
			}
			return nil
		})
		if rep.Restarts == 0 {
			t.Fatalf("explored %+v", rep)
		}
	})

	t.Run("identity", func(t *testing.T) {
		var first identity.Public
		rep := crashfs.Explore(t, func(fsys *crashfs.FS, ack func()) error {
			id, _, err := identity.Open(fsys, dir, mrand.NewChaCha8([32]byte{7}))
			if err != nil {
				return err
			}
			first = id.Public()
			ack()
			return nil
		}, func(after *crashfs.FS, acked int) error {
			id, _, err := identity.Open(after, dir, mrand.NewChaCha8([32]byte{8}))
			if err != nil && !errors.Is(err, identity.ErrEphemeral) {
				return fmt.Errorf("restart: %w", err)
			}
			if acked > 0 && id.Public() != first {
				return fmt.Errorf("the peer came back as another identity")
			}
			return nil
		})
		if rep.Restarts == 0 {
			t.Fatalf("explored %+v", rep)
		}
	})

	// A disk that fails at each step (full, read-only): the request is
	// refused and nothing is held that the disk does not know.
	t.Run("failing disk", func(t *testing.T) {
		for _, errno := range []error{syscall.ENOSPC, syscall.EROFS} {
			rep := crashfs.ExploreFaults(t, crashfs.New, errno, func(fsys *crashfs.FS, ack func()) error {
				k, _, err := openKeeper(fsys, dir, func(string, ...any) {})
				if err != nil {
					return err
				}
				if r := k.apply(t0, self, "o", ops[0].r, 0); !r.OK {
					if _, held := k.current(t0); held {
						return errors.New("refused a claim, yet holds the lease")
					}
					return r.Err()
				}
				ack()
				return nil
			}, func(after *crashfs.FS, acked int) error {
				k, _, err := openKeeper(after, dir, func(string, ...any) {})
				if err != nil {
					return err
				}
				// A grant answered "yes" is on disk. One refused may be
				// there too when the failure came at the very end (the
				// directory's fsync: the rename may have reached the disk):
				// the peer then holds a lease its owner does not count,
				// until it asks the owner (askOwner) and frees itself.
				l, held := k.table.Current(t0)
				if acked > 0 && !held || held && l.Owner != "o" {
					return fmt.Errorf("acked %d, held %v on disk (%+v)", acked, held, l)
				}
				return nil
			})
			if rep.Restarts == 0 {
				t.Fatalf("%v: explored %+v", errno, rep)
			}
		}
	})
}

// crashNode is the part of a Node that writes the owner's table.
func crashNode(fsys *crashfs.FS, dir string) *Node {
	k, _, _ := openKeeper(fsys, dir, func(string, ...any) {})
	return &Node{cfg: Config{DataDir: dir}, fs: fsys, keeper: k}
}
