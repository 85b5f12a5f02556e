package overlay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerq/peerq/node/network"
)

// startMem starts n peers on one in-memory network and waits until every
// peer sees all n.
func startMem(t testing.TB, n int) ([]*Overlay, *MemNetwork) {
	t.Helper()
	var cfgs []Config
	for i := 0; i < n; i++ {
		cfgs = append(cfgs, Config{Name: fmt.Sprintf("p%03d", i), Tags: map[string]string{"region": []string{"eu", "us"}[i%2]}})
	}
	c := startConfigs(t, cfgs, func(i int, o *Overlay) {
		name := cfgs[i].Name
		o.Serve(func(from string, req []byte) ([]byte, error) { return append([]byte(name+"<-"+from+":"), req...), nil })
	})
	return c.Peers, c.Mem
}

// startConfigs starts a peer for each of cfgs on one in-memory network
// and waits until every peer sees all.
func startConfigs(t testing.TB, cfgs []Config, serve func(i int, o *Overlay)) *Cluster {
	t.Helper()
	c, err := StartCluster(context.Background(), cfgs, serve, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := c.WaitSettled(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMemCluster(t *testing.T) {
	start := time.Now()
	peers, _ := startMem(t, 30)
	t.Logf("30 peers settled in %v", time.Since(start))
	r := rand.New(rand.NewPCG(1, 1))
	seen := map[string]bool{}
	for i := 0; i < 300; i++ {
		p, ok := peers[0].Sample(r)
		if !ok || p == "p000" {
			t.Fatalf("sample %q %v", p, ok)
		}
		seen[p] = true
	}
	if len(seen) != 29 {
		t.Errorf("sampled %d distinct peers of 29", len(seen))
	}
	resp, err := peers[3].Exchange(context.Background(), "p007", []byte("hi"))
	if err != nil || string(resp) != "p007<-p003:hi" {
		t.Errorf("exchange: %q %v", resp, err)
	}
	m, _ := peers[1].Member("p004")
	if m.Tags["region"] != "eu" || m.Tags[TagExchange] != "" {
		t.Errorf("member tags %v", m.Tags)
	}
	// A peer that stops is seen to fail.
	peers[29].Shutdown()
	killed := time.Now()
	deadline := time.Now().Add(90 * time.Second)
	for peers[0].Size() != 29 {
		if time.Now().After(deadline) {
			t.Fatal("failure not detected")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("failure detected after %v", time.Since(killed))
	// Serf keeps it, failed, until it reaps it: Known shows it so.
	alive, failed := 0, 0
	for _, k := range peers[0].Known() {
		switch {
		case k.Status == network.StatusAlive:
			alive++
		case k.Name == "p029" && k.Status == network.StatusFailed:
			failed++
			if k.Tags["region"] != "us" || k.Tags[TagExchange] != "" {
				t.Errorf("failed member %+v: tags wrong", k)
			}
		default:
			t.Errorf("unexpected member %+v", k)
		}
	}
	if alive != 29 || failed != 1 {
		t.Errorf("Known: %d alive, %d failed; want 29 and 1", alive, failed)
	}
	got := false
	for !got {
		select {
		case e := <-peers[0].Events():
			got = e.Kind == network.MemberFailed && e.Members[0] == "p029"
			// The failed member as the event showed it: no longer in
			// the member table, but its address and tags are told.
			if got && (len(e.Info) != 1 || e.Info[0].Name != "p029" || e.Info[0].Addr == "" || e.Info[0].Tags["region"] != "us" || e.Reap) {
				t.Errorf("failed event %+v: want p029's address and tags, not a reap", e)
			}
		case <-time.After(time.Second):
			t.Fatal("no failed event")
		}
	}
}

// Peers in one process (one MemNetwork) share a member's tags although
// each member's are its own: without it, 200 embedded peers held 40,000
// maps of 200 members' tags.
func TestTagsSharedInProcess(t *testing.T) {
	var cfgs []Config
	for i := range 6 {
		cfgs = append(cfgs, Config{Name: fmt.Sprintf("p%03d", i), Tags: map[string]string{"n": strconv.Itoa(i), "zone": "z"}})
	}
	c := startConfigs(t, cfgs, nil)
	for _, name := range []string{"p000", "p003", "p005"} {
		var held uintptr
		for _, o := range c.Peers {
			m, ok := o.Member(name)
			if !ok {
				t.Fatalf("%s does not see %s", o.cfg.Name, name)
			}
			if m.Tags["n"] != name[3:] || m.Tags["zone"] != "z" {
				t.Fatalf("%s shows %s's tags as %v", o.cfg.Name, name, m.Tags)
			}
			if p := reflect.ValueOf(m.Tags).Pointer(); held == 0 {
				held = p
			} else if p != held {
				t.Errorf("%s holds its own copy of %s's tags", o.cfg.Name, name)
			}
		}
	}
}

// Members that show the same user tags share one map; others keep their
// own; the held sets start again past twice the members.
func TestTagSetsIntern(t *testing.T) {
	var s tagSets
	a := s.intern(map[string]string{"zone": "a", "region": "eu"}, 10)
	b := s.intern(map[string]string{"region": "eu", "zone": "a"}, 10)
	c := s.intern(map[string]string{"zone": "b", "region": "eu"}, 10)
	d := s.intern(map[string]string{"zone": "a\x00region"}, 10) // not confused with a's key
	if reflect.ValueOf(a).Pointer() != reflect.ValueOf(b).Pointer() {
		t.Error("equal tags not shared")
	}
	if reflect.ValueOf(a).Pointer() == reflect.ValueOf(c).Pointer() || c["zone"] != "b" || len(d) != 1 {
		t.Errorf("different tags shared: %v %v", c, d)
	}
	for i := range 100 {
		s.intern(map[string]string{"n": strconv.Itoa(i)}, 10)
	}
	if len(s.byKey) > 2*10+17 {
		t.Errorf("%d sets held for 10 members", len(s.byKey))
	}
}

// A member that joins while a refresh reads Serf's list is kept: its join
// event, applied in that window, is newer than the list. A refresh that
// rebuilt the table from the list lost it for good (no later event brings
// it back), and a demo on a loaded machine never settled.
func TestRefreshKeepsNewerEvents(t *testing.T) {
	c := startConfigs(t, []Config{{Name: "p000"}, {Name: "p001"}}, nil)
	a := c.Peers[0]
	var late *Overlay
	a.afterSnapshot = func() {
		var err error
		if late, err = New(Config{Name: "p002", Mem: c.Mem, ClusterSize: 3}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := late.Join(ctx, []string{c.Peers[1].JoinAddr()}); err != nil {
			t.Fatal(err)
		}
		// Wait until a's event loop applied the join: the list read
		// before it does not hold p002.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, ok := a.Member("p002"); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("p000 never heard of p002's join")
			}
		}
	}
	a.refresh()
	a.afterSnapshot = nil
	t.Cleanup(func() {
		if err := late.Shutdown(); err != nil {
			t.Logf("p002: %v", err)
		}
	})
	if _, ok := a.Member("p002"); !ok || a.Size() != 3 {
		t.Errorf("after the refresh p000 sees %d members, p002 %v; want 3, p002 among them", a.Size(), ok)
	}
	// A refresh with nothing in flight still brings the table to Serf's.
	a.refresh()
	if a.Size() != 3 {
		t.Errorf("p000 sees %d members, want 3", a.Size())
	}
}

// A cluster that does not settle says, per unsettled peer, whom it lacks
// and what its Serf knows of them. (Its deadline, 200 ms, comes before
// WaitSettled's first push-pulls of the unsettled, a second in, which
// would bring the lone peer in: TestWaitSettledSyncs.)
func TestWaitSettledSaysWhatIsMissing(t *testing.T) {
	c := startConfigs(t, []Config{{Name: "p000"}, {Name: "p001"}}, nil)
	alone, err := New(Config{Name: "p002", Mem: c.Mem, ClusterSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	c.Peers = append(c.Peers, alone) // never joined; shut down with the cluster
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = c.WaitSettled(ctx, nil)
	if err == nil {
		t.Fatal("a peer that never joined, yet the cluster settled")
	}
	for _, want := range []string{"0 of 3 peers settled", "p000 sees 2, lacks p002 (unknown)", "p002 sees 1, lacks p000 (unknown), p001 (unknown)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// A cluster that gossip alone would leave unsettled — a peer whose join
// never happened, which nobody knows and which knows nobody, so that
// memberlist's anti-entropy never reaches it — settles while WaitSettled
// waits: its unsettled peers push and pull their state with others
// (syncUnsettled). Mutation: without the sync, it is still unsettled at
// the deadline.
func TestWaitSettledSyncs(t *testing.T) {
	c := startConfigs(t, []Config{{Name: "p000"}, {Name: "p001"}}, nil)
	alone, err := New(Config{Name: "p002", Mem: c.Mem, ClusterSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	c.Peers = append(c.Peers, alone) // shut down with the cluster
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.WaitSettled(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("settled %v after the lone peer came", time.Since(start).Round(10*time.Millisecond))
	for _, p := range c.Peers {
		if p.Size() != 3 {
			t.Errorf("%s sees %d of 3", p.cfg.Name, p.Size())
		}
	}
}

// Config.Admit keeps out the peerq members whose tags it refuses: after a
// join that would bring one, the peer that refuses it does not list it; a
// member it admits joins as before. Mutation: without the merge delegate the
// refused member joins (the two lists hold 2).
func TestAdmitRefusesMembers(t *testing.T) {
	onlyPoolA := func(tags map[string]string) error {
		if tags["pool"] != "a" {
			return fmt.Errorf("pool %q", tags["pool"])
		}
		return nil
	}
	c := startConfigs(t, []Config{{Name: "p000", Tags: map[string]string{"pool": "a"}, Admit: onlyPoolA}}, nil)
	a := c.Peers[0]
	join := func(name, pool string) (*Overlay, error) {
		cfg := Config{Name: name, Mem: c.Mem, ClusterSize: 3, Tags: map[string]string{"pool": pool}}
		if pool == "a" {
			cfg.Admit = onlyPoolA
		}
		o, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = o.Shutdown() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = o.Join(ctx, []string{a.JoinAddr()})
		return o, err
	}
	_, _ = join("p001", "b")           // it admits anyone: only p000 refuses
	time.Sleep(500 * time.Millisecond) // any gossip of it would have come
	if _, ok := a.Member("p001"); ok || a.Size() != 1 {
		t.Errorf("after a refused join: p000 lists %d (p001 %v); want itself alone", a.Size(), ok)
	}
	if _, err := join("p002", "a"); err != nil {
		t.Fatalf("a member of pool a: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); a.Size() != 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("p000 lists %d after p002 of pool a joined, want 2", a.Size())
		}
	}
}

// Admit refuses only a state with no member it admits: a peer that holds
// one stray member (an older peer, without Admit) is still joined, and
// only the stray is kept out; and a peer whose own tags it would refuse
// is not started (it would never list itself). Mutation: refusing a whole
// state for one member fails the join through the older peer.
func TestAdmitKeepsOutStraysOnly(t *testing.T) {
	onlyPoolA := func(tags map[string]string) error {
		if tags["pool"] != "a" {
			return fmt.Errorf("pool %q", tags["pool"])
		}
		return nil
	}
	c := startConfigs(t, []Config{{Name: "p000", Tags: map[string]string{"pool": "a"}}, {Name: "p001", Tags: map[string]string{"pool": "b"}}}, nil)
	o, err := New(Config{Name: "p002", Mem: c.Mem, ClusterSize: 3, Tags: map[string]string{"pool": "a"}, Admit: onlyPoolA})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := o.Join(ctx, []string{c.Peers[0].JoinAddr()}); err != nil {
		t.Fatalf("joining a pool-a peer that lists one stray of pool b: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := o.Member("p000"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("p002 never listed p000")
		}
	}
	time.Sleep(500 * time.Millisecond) // gossip of the stray would have come
	if _, ok := o.Member("p001"); ok {
		t.Errorf("p002 lists p001, of pool b")
	}
	if _, err := New(Config{Name: "p003", Mem: c.Mem, Tags: map[string]string{"pool": "b"}, Admit: onlyPoolA}); err == nil {
		t.Errorf("a peer whose own tags its Admit refuses was started")
	}
}

// rememberedPeers reads Serf's snapshot as Serf's replay does: members
// alive less those not alive since, a leave ignored (RejoinAfterLeave),
// this peer itself not counted, and a snapshot that cannot be read
// remembering none.
func TestRememberedPeers(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		want       int
	}{
		{"none", "", 0},
		{"two others", "alive: me 10.0.0.1:7946\nalive: a 10.0.0.2:7946\nalive: b 10.0.0.3:7946\nclock: 4\n", 2},
		{"one gone", "alive: a 10.0.0.2:7946\nalive: b 10.0.0.3:7946\nnot-alive: a\n", 1},
		{"back again", "alive: a 10.0.0.2:7946\nnot-alive: a\nalive: a 10.0.0.9:7946\n", 1},
		{"a leave kept", "alive: a 10.0.0.2:7946\nleave\nclock: 9\n", 1},
		{"a name with spaces", "alive: a b 10.0.0.2:7946\n", 1},
		{"a torn last line", "alive: a 10.0.0.2:7946\nalive: b 10.0.0.3:79", 1},
		{"junk", "# comment\ncoordinate: x\nalive:nospace\n", 0},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := rememberedPeers(path, "me"); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := rememberedPeers(filepath.Join(dir, "missing"), "me"); got != 0 {
		t.Errorf("no snapshot: %d", got)
	}
}

// A join waits no longer than its context, whatever memberlist's TCP
// timeout: four seeds that accept a connection and never answer held a
// join for a TCP timeout each, one after the other (a minute for two in
// the WAN profile), though its caller had given it 5 s. The next join
// waits for the try given up on rather than starting a second beside it.
func TestJoinBoundedByItsContext(t *testing.T) {
	var seeds []string
	var mu sync.Mutex
	var held []net.Conn // open, never answered
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	for range 4 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
		seeds = append(seeds, l.Addr().String())
	}
	cfg := DefaultConfig("hanging-seeds")
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Memberlist = TunedConfig(8) // a TCP timeout of 5 s a seed: 20 s for the four
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Shutdown() })
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		_, err := o.Join(ctx, seeds)
		took := time.Since(start)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("join through seeds that never answer: %v", err)
		}
		// The bound is the context's; 20 s is the four TCP timeouts.
		if took > 10*time.Second {
			t.Errorf("a join given 300 ms took %v", took)
		}
	}
	o.joinMu.Lock()
	defer o.joinMu.Unlock()
	if o.joining == nil {
		t.Error("no try under way: the first, given up on, should still be (the seeds hold it for 20 s)")
	}
}

// An exchange ends at the earlier of the caller's deadline and
// ExchangeTimeout: a caller's later deadline does not lift the bound, and
// an earlier one is kept (Exchange makes no second context for it).
// Mutation: an Exchange that trusts any caller's deadline waits out the
// stall (an hour) in the first case.
func TestExchangeBoundedByTimeoutAndCaller(t *testing.T) {
	var cfgs []Config
	for i := 0; i < 2; i++ {
		cfgs = append(cfgs, Config{Name: fmt.Sprintf("p%03d", i), ExchangeTimeout: 300 * time.Millisecond})
	}
	c := startConfigs(t, cfgs, func(i int, o *Overlay) {
		o.Serve(func(from string, req []byte) ([]byte, error) { return req, nil })
	})
	c.Mem.Stall(time.Hour, "p001")
	defer c.Mem.Stall(0, "p001")
	for _, tc := range []struct {
		name     string
		deadline time.Duration
	}{
		{"the caller's deadline is later", time.Hour},
		{"the caller's deadline is earlier", 50 * time.Millisecond},
		{"no deadline", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.Peers[0].Exchange(ctx, "p001", []byte("hi"))
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("a stalled exchange ended with %v, want a deadline exceeded", err)
				}
			case <-time.After(30 * time.Second): // far beyond 300 ms, even on a busy machine
				t.Fatal("a stalled exchange outlived ExchangeTimeout")
			}
		})
	}
}
