package owner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/subcloud"
)

// cloud is a fake set of peers for the role: each holds at most one lease,
// as a keeper's table would; a peer that is down does not answer.
type cloud struct {
	mu     sync.Mutex
	peers  []string
	leases map[string]held // by peer
	down   map[string]bool
	disk   []byte
	full   bool // the disk refuses writes
	sent   map[subcloud.Op]int
	logs   []string
}

type held struct {
	subcloud, token string
	until           time.Time
}

func newCloud(n int) *cloud {
	c := &cloud{leases: map[string]held{}, down: map[string]bool{}, sent: map[subcloud.Op]int{}}
	for i := 1; i <= n; i++ {
		c.peers = append(c.peers, fmt.Sprintf("p%d", i))
	}
	return c
}

var errNoAnswer = errors.New("no answer")

func (c *cloud) Send(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	time.Sleep(10 * time.Millisecond) // an exchange
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent[req.Op]++
	if c.down[to] {
		return subcloud.Reply{}, fmt.Errorf("%s: %w", to, errNoAnswer)
	}
	now := time.Now()
	l, ok := c.leases[to]
	if ok && !now.Before(l.until) {
		delete(c.leases, to)
		ok = false
	}
	mine := ok && l.subcloud == req.Subcloud && l.token == req.Token
	rep := subcloud.Reply{Now: now.UnixNano()}
	switch req.Op {
	case subcloud.OpClaim:
		if ok && !mine {
			return subcloud.Reply{Refusal: subcloud.RefusedHeld, Holder: l.subcloud, Now: now.UnixNano()}, nil
		}
		c.leases[to] = held{req.Subcloud, req.Token, now.Add(req.For)}
		rep.OK, rep.Expires = true, now.Add(req.For).UnixNano()
	case subcloud.OpRenew:
		if !mine {
			return subcloud.Reply{Refusal: subcloud.RefusedNoLease, Now: now.UnixNano()}, nil
		}
		c.leases[to] = held{req.Subcloud, req.Token, now.Add(req.For)}
		rep.OK, rep.Expires = true, now.Add(req.For).UnixNano()
	case subcloud.OpCheck:
		if !mine {
			return subcloud.Reply{Refusal: subcloud.RefusedNoLease, Now: now.UnixNano()}, nil
		}
		rep.OK, rep.Expires = true, l.until.UnixNano()
	case subcloud.OpRelease:
		if !mine {
			return subcloud.Reply{Refusal: subcloud.RefusedNoLease, Now: now.UnixNano()}, nil
		}
		delete(c.leases, to)
		rep.OK = true
	default:
		return subcloud.Reply{}, fmt.Errorf("unexpected %v", req.Op)
	}
	return rep, nil
}

// Search gives the free peers that answer, by name.
func (c *cloud) Search(ctx context.Context, plan []byte) ([]string, error) {
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.peers {
		if _, ok := c.leases[p]; !ok && !c.down[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

func (c *cloud) RegisterName(ctx context.Context, name string, lease time.Duration) subcloud.Vote {
	return subcloud.Vote{Keepers: []string{"k1", "k2", "k3"}, Granted: []string{"k1", "k2", "k3"}}
}

func (c *cloud) ReleaseName(ctx context.Context, name string, peers []string) {}

func (c *cloud) Store(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full {
		return errors.New("disk full")
	}
	c.disk = append([]byte(nil), b...)
	return nil
}

func (c *cloud) Now() time.Time { return time.Now() }

func (c *cloud) Logf(format string, args ...any) {
	c.mu.Lock()
	c.logs = append(c.logs, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

// onDisk is the owner's table as written.
func (c *cloud) onDisk(t *testing.T) map[string]subcloud.OwnerState {
	c.mu.Lock()
	b := c.disk
	c.mu.Unlock()
	out := map[string]subcloud.OwnerState{}
	if b == nil {
		return out
	}
	states, err := DecodeTable(b)
	if err != nil {
		t.Fatalf("the table on disk: %v", err)
	}
	for _, s := range states {
		out[s.Subcloud] = s
	}
	return out
}

func (c *cloud) holders(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for p, l := range c.leases {
		if l.subcloud == name && time.Now().Before(l.until) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func testConfig() Config {
	return Config{Name: "me", Owner: subcloud.DefaultOwnerConfig(), MinTick: 10 * time.Millisecond, Rand: rand.New(rand.NewPCG(7, 7))}
}

// start is a role over env, closed when the test ends.
func start(t *testing.T, env Env, restored []subcloud.OwnerState, live func(string) bool) *Role {
	t.Helper()
	r, err := New(testConfig(), env, restored, live)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func reserve(t *testing.T, r *Role, c *cloud, name string, n int) *subcloud.Report {
	t.Helper()
	spec := subcloud.Reserve{Subcloud: name, Owner: "me", Token: "0123456789abcdef" + name, N: n, Lease: 12 * time.Second,
		Plan: []byte("plan"), Keepers: []string{"k1", "k2", "k3"}}
	rep, err := r.Reserve(context.Background(), spec, func(ctx context.Context) ([]string, error) { return c.Search(ctx, spec.Plan) })
	if err != nil {
		t.Fatalf("RESERVE %s: %v", name, err)
	}
	return rep
}

// RESERVE answers once the subcloud is on disk; the role keeps it renewed
// past several terms, repairs a member the membership loses (from the
// search's spares), and RELEASE frees every member and removes it from
// the table.
func TestRoleLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCloud(6)
		r := start(t, c, nil, nil)
		if rep := reserve(t, r, c, "s", 3); rep.Outcome != subcloud.OutcomeDone {
			t.Fatalf("RESERVE: %+v", rep)
		}
		st, ok := c.onDisk(t)["s"]
		if !ok || len(st.Members) != 3 {
			t.Fatalf("on disk after RESERVE answered: %+v", st)
		}
		time.Sleep(40 * time.Second) // past three terms: only renewals keep them
		if got := c.holders("s"); len(got) != 3 {
			t.Errorf("holders after 40 s: %v; want 3 (renewed)", got)
		}
		v, _ := r.Lookup("s")
		lost := v.Members[0].Name
		c.mu.Lock()
		c.down[lost] = true
		c.mu.Unlock()
		r.MemberLost(lost, "it failed")
		time.Sleep(5 * time.Second)
		v, _ = r.Lookup("s")
		if len(v.Members) != 3 || v.Info.Repairs != 1 {
			t.Errorf("after losing %s: members %v, repairs %d; want 3 members, 1 repair", lost, v.Members, v.Info.Repairs)
		}
		for _, m := range v.Members {
			if m.Name == lost {
				t.Errorf("%s is still a member after it was lost", lost)
			}
		}
		if st := c.onDisk(t)["s"]; len(st.Members) != 3 || st.Repairs != 1 {
			t.Errorf("on disk after the repair: %d members, %d repairs", len(st.Members), st.Repairs)
		}
		rep, err := r.Release(context.Background(), "s")
		if err != nil || rep.Outcome != subcloud.OutcomeDone || rep.Freed != 3 {
			t.Fatalf("RELEASE: %+v, %v", rep, err)
		}
		if got := c.holders("s"); len(got) > 1 || len(got) == 1 && got[0] != lost {
			t.Errorf("holders after RELEASE: %v; want none but %s, which is down", got, lost)
		}
		c.mu.Lock()
		c.down[lost] = false // back: its release, retried, now lands
		c.mu.Unlock()
		time.Sleep(3 * time.Second)
		if got := c.holders("s"); len(got) != 0 {
			t.Errorf("holders after RELEASE once %s is back: %v", lost, got)
		}
		if _, ok := c.onDisk(t)["s"]; ok {
			t.Error("the released subcloud is still in the table on disk")
		}
		if r.Owns() {
			t.Error("the role still owns something after RELEASE")
		}
	})
}

// A RESERVE the disk cannot record is refused, and leaves no peer held.
func TestRoleReserveOnAFullDisk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCloud(4)
		c.full = true
		r := start(t, c, nil, nil)
		rep := reserve(t, r, c, "s", 2)
		if rep.Outcome != subcloud.OutcomeStorage {
			t.Fatalf("RESERVE on a full disk: %+v; want a storage failure", rep)
		}
		if got := c.holders("s"); len(got) != 0 {
			t.Errorf("holders after the failed RESERVE: %v", got)
		}
		if _, ok := r.Lookup("s"); ok {
			t.Error("the failed RESERVE is held")
		}
	})
}

// readTable decodes the owner's table in file.
func readTable(t *testing.T, file string) []subcloud.OwnerState {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	states, err := DecodeTable(b)
	if err != nil {
		t.Fatal(err)
	}
	return states
}

// A table in the JSON form agents wrote before the machine's codec is read
// whole; the role renews its subcloud at once, and writes the table in the
// new form.
func TestTableFromTheJSONForm(t *testing.T) {
	states := readTable(t, "testdata/owned-v3.json")
	if len(states) != 1 {
		t.Fatalf("read %d subclouds", len(states))
	}
	s := states[0]
	want := func(what string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	want("name", s.Subcloud, "kept")
	want("token", s.Token, "0123456789abcdef0123456789abcdef")
	want("key", s.Key, "k1")
	want("lease", s.Lease, 12*time.Second)
	want("members", len(s.Members), 2)
	want("order", s.Order, []string{"p2", "p1"})
	want("plan", string(s.Plan), "plan")
	want("target", s.Target, 3)
	want("repairs", s.Repairs, 1)
	want("dropped", len(s.Dropped), 1)
	want("spans", len(s.Episodes), 2)
	want("metered", s.Metered, time.Hour)
	want("keepers", s.Keepers, []string{"p4", "p5", "p6"})
	want("since", s.Since.UTC().Format(time.RFC3339), "2026-12-03T11:00:00Z")

	v1 := readTable(t, "testdata/owned-v1.json")
	if len(v1) != 1 || v1[0].Target != 1 || v1[0].Plan != nil {
		t.Errorf("version 1: %+v; want its one member as its size, and no plan", v1)
	}
	if _, err := DecodeTable([]byte(`{"version":4,"subclouds":[]}`)); !errors.Is(err, subcloud.ErrMalformedOwned) {
		t.Errorf("a JSON table of version 4: %v", err)
	}

	synctest.Test(t, func(t *testing.T) {
		c := newCloud(6)
		now := time.Now()
		st := states[0]
		st.Members = map[string]time.Time{"p1": now.Add(5 * time.Second), "p2": now.Add(5 * time.Second)}
		st.Dropped = map[string]time.Time{}
		for m := range st.Members {
			c.leases[m] = held{st.Subcloud, st.Token, now.Add(5 * time.Second)}
		}
		start(t, c, []subcloud.OwnerState{st}, func(string) bool { return true })
		time.Sleep(30 * time.Second)
		if got := c.holders("kept"); len(got) < 2 {
			t.Errorf("holders 30 s after the restart: %v; want its members renewed", got)
		}
		c.mu.Lock()
		disk := c.disk
		c.mu.Unlock()
		if len(disk) == 0 || bytes.HasPrefix(disk, []byte("{")) {
			t.Errorf("the table after the restart is not in the new form: %.40q", disk)
		}
	})
}

// gatedStore is a cloud whose next write waits, once armed, until
// released.
type gatedStore struct {
	*cloud
	armed            chan struct{}
	once             sync.Once
	entered, release chan struct{}
}

func (g *gatedStore) Store(b []byte) error {
	select {
	case <-g.armed:
		g.once.Do(func() {
			close(g.entered)
			<-g.release
		})
	default:
	}
	return g.cloud.Store(b)
}

// The owner's table is written with no lock of the role's held: while a
// write waits, what reads the owned subclouds (Held, Lookup, an OpAsk's
// Holds) answers; the next write stores the newest table.
func TestRoleWriteHoldsNoLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCloud(6)
		g := &gatedStore{cloud: c, armed: make(chan struct{}), entered: make(chan struct{}), release: make(chan struct{})}
		r := start(t, g, nil, nil)
		if rep := reserve(t, r, c, "s", 2); rep.Outcome != subcloud.OutcomeDone {
			t.Fatalf("RESERVE: %+v", rep)
		}
		close(g.armed)
		<-g.entered // a renewal round's write, blocked
		v, ok := r.Lookup("s")
		if !ok || len(r.Held()) != 1 || !r.Holds("s", v.Token, v.Members[0].Name) {
			t.Errorf("reads during a write: %+v %v", v, ok)
		}
		resized := make(chan *subcloud.Report, 1)
		go func() {
			rep, _ := r.Resize(context.Background(), "s", 1)
			resized <- rep
		}()
		time.Sleep(time.Second) // the RESIZE waits for its record
		select {
		case rep := <-resized:
			t.Fatalf("RESIZE answered before its record could be written: %+v", rep)
		default:
		}
		close(g.release)
		if rep := <-resized; rep.Outcome != subcloud.OutcomeDone {
			t.Fatalf("RESIZE: %+v", rep)
		}
		if st := c.onDisk(t)["s"]; st.Target != 1 {
			t.Errorf("on disk after the RESIZE: target %d, want the newest table's 1", st.Target)
		}
	})
}
