package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// Integration over real Serf. These tests run in real time; they wait for
// conditions with generous deadlines, never for fixed times, so that a
// loaded machine only makes them slower.

func startEmbedded(t testing.TB, n int) *Embedded {
	t.Helper()
	return startEmbeddedWith(t, EmbeddedConfig{Nodes: n, Seed: 1, Freeze: true, Round: 50 * time.Millisecond})
}

// startEmbeddedWith starts an embedded cluster and waits until it settles
// (up to 3 minutes); it is closed when the test ends.
func startEmbeddedWith(t testing.TB, cfg EmbeddedConfig) *Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e, err := StartEmbedded(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := e.WaitSettled(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// The embedded cluster's test-only views.

// Records returns every live peer's current record as the peers
// themselves would report it: the test oracle.
func (e *Embedded) Records() []query.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []query.Record
	for _, n := range e.Nodes {
		if !n.closed() {
			out = append(out, n.record())
		}
	}
	return out
}

// Cluster is the overlays of the peers, in the order of Nodes.
func (e *Embedded) Cluster() *overlay.Cluster { return e.clusters[0] }

// Node is peer i's runtime now (Restart replaces it).
func (e *Embedded) Node(i int) *Node {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Nodes[i]
}

// The embedded cluster: real Serf peers on the in-memory memberlist
// transport answer every kind of statement; a killed peer is declared dead
// by Serf's failure detector, and the next answers are the survivors'.
func TestEmbedded(t *testing.T) {
	t.Parallel()
	e := startEmbedded(t, 24)
	asker := e.Nodes[3]
	for _, src := range []string{
		"SELECT COUNT(*), AVG(cpu_load), MAX(mem_free) FROM peers WHERE mem_free >= 4GB",
		"SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 10",
		"SELECT region, COUNT(*) FROM peers GROUP BY region",
		"SELECT COUNT(*) FROM peers WHERE region = 'eu'",
	} {
		p := compile(t, asker, src)
		res := ask(t, asker, p)
		t.Logf("%s: %d rounds, %v, converged %v, from tags %v", src, res.Rounds, res.Took(), res.Converged, res.FromTags)
		sameAnswer(t, res, query.Exact(p, e.Records()), src)
	}
	top := compile(t, asker, "SELECT node FROM peers ORDER BY mem_free DESC LIMIT 3")
	best := ask(t, asker, top).Nodes[0]
	for i, n := range e.Nodes {
		if n.Name() == best && n != asker {
			e.Kill(i)
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for asker.Network().Size() == len(e.Nodes) {
		if time.Now().After(deadline) {
			t.Fatal("Serf did not declare the killed peer dead")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The metrics' members by state: the killed one is failed.
	if states := asker.MemberStates(); states["failed"] != 1 || states["alive"] != len(e.Nodes)-1 {
		t.Errorf("members by state: %v", states)
	}
	res := ask(t, asker, top)
	sameAnswer(t, res, query.Exact(top, e.Records()), top.Text)
}

// Five peers on real sockets on 127.0.0.1 (UDP and TCP gossip, TCP
// exchanges, each on its own ports), with an encryption key, answer a top-k
// and a COUNT.
func TestRealSockets(t *testing.T) {
	t.Parallel()
	peers := startSocketPeers(t, 5, "real", 3, func(i int, rec query.Record, cfg *Config) {
		cfg.Tags = map[string]string{"region": rec["region"].Str}
	})
	var recs []query.Record
	for _, p := range peers {
		recs = append(recs, p.record())
	}
	asker := peers[2].Node
	for _, src := range []string{
		"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 3",
		"SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE cpu_load < 200%",
		"SELECT node, rtt FROM peers ORDER BY rtt LIMIT 5",
	} {
		p := compile(t, asker, src)
		res := ask(t, asker, p)
		if src == "SELECT node, rtt FROM peers ORDER BY rtt LIMIT 5" {
			// Serf's coordinates give every peer an rtt to the asker.
			for _, row := range res.Rows {
				if row[1].IsNull() {
					t.Errorf("rtt NULL: %v", res.Rows)
				}
			}
			continue
		}
		sameAnswer(t, res, query.Exact(p, recs), src)
	}
	if s := asker.Stats(); s.Exchanges == 0 || s.Malformed != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A killed member of a subcloud restarts on its own data dir, at its old
// address: it rejoins, still holds its lease, and the owner — who may have
// dropped it meanwhile — ends with the subcloud at its size, every member
// holding the lease.
func TestEmbeddedRestartKeepsItsLease(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startEmbeddedWith(t, EmbeddedConfig{Nodes: 8, Seed: 1, Freeze: true, Round: 50 * time.Millisecond, DataDir: t.TempDir()})
	owner := e.Node(0)
	res := ask(t, owner, compile(t, owner, "RESERVE 3 FROM peers WHERE node != 'peer-000000' ORDER BY reliability DESC AS kept FOR 1m"))
	victim := -1
	for i := range e.Nodes {
		if e.Node(i).Name() == res.Nodes[0] {
			victim = i
		}
	}
	if err := e.Kill(victim); err != nil {
		t.Fatal(err)
	}
	if err := e.Restart(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if l, ok := e.Node(victim).leases.current(); !ok || l.Subcloud != "kept" {
		t.Fatalf("restarted without its lease: %+v", l)
	}
	for ctx.Err() == nil {
		holders := 0
		for i := range e.Nodes {
			if l, ok := e.Node(i).leases.current(); ok && l.Subcloud == "kept" {
				holders++
			}
		}
		if size, _, _ := ownedSize(owner, "kept"); size == 3 && holders == 3 && len(owner.net.Members()) == 8 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	size, _, _ := ownedSize(owner, "kept")
	t.Fatalf("after the restart: the owner counts %d members; %d peers are alive", size, len(owner.net.Members()))
}

// startSocketPeers starts n peers named prefix-i on real sockets on
// 127.0.0.1, with a cluster key and synthetic records of seed, tuned by
// tune, and waits until each sees all (up to 90 s).
func startSocketPeers(t *testing.T, n int, prefix string, seed uint64, tune func(i int, rec query.Record, cfg *Config)) []*Peer {
	t.Helper()
	return startSocketPeersWrapped(t, n, prefix, seed, tune, nil)
}

// startSocketPeersWrapped is startSocketPeers with peer i's network
// wrapped by wrap(i, …) where it returns one (a lying peer's wire).
func startSocketPeersWrapped(t *testing.T, n int, prefix string, seed uint64, tune func(i int, rec query.Record, cfg *Config), wrap func(i int, nw Network) Network) []*Peer {
	t.Helper()
	key := []byte("0123456789abcdef0123456789abcdef")
	var peers []*Peer
	for i := 0; i < n; i++ {
		rec := query.Synthetic(seed, i)
		cfg := DefaultConfig(func() query.Record { return rec })
		cfg.Round, cfg.Seed = 50*time.Millisecond, uint64(i+1)
		tune(i, rec, &cfg)
		var w func(Network) Network
		if wrap != nil {
			w = func(nw Network) Network { return wrap(i, nw) }
		}
		p, err := startPeer(PeerConfig{Name: fmt.Sprintf("%s-%d", prefix, i), Bind: "127.0.0.1:0", Exchange: "127.0.0.1:0",
			Key: key, Local: true, Runtime: cfg}, w)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		peers = append(peers, p)
		if i > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := p.Join(ctx, []string{peers[0].Addr()}); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, p := range peers {
		for p.Network().Size() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d peers", p.Name(), p.Network().Size())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return peers
}

// Eight peers on real sockets with a cluster key, one of whose clocks is
// a minute ahead and one of which lies: the skewed peer's exchanges are
// refused with the time on them (not silence), the others' answers leave
// it out and name it, exact over the rest, and its own are partial with
// the reason; the liar, holding the cluster key, cannot release another
// owner's member, nor speak in its name.
func TestTrustOverSockets(t *testing.T) {
	t.Parallel()
	const n, skewed, liarAt = 8, 6, 7
	peers := startSocketPeers(t, n, "trust", 5, func(i int, _ query.Record, cfg *Config) {
		cfg.DataDir = t.TempDir()
		if i == skewed {
			cfg.Clock = func() time.Time { return time.Now().Add(time.Minute) }
		}
	})
	// Skew: answers at a peer with the right time leave the skewed one out.
	asker := peers[0].Node
	src := "SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 0"
	var res *answer.Answer
	for try := 0; try < 20; try++ {
		res = ask(t, asker, compile(t, asker, src))
		if res.Status != StatusPartial && len(res.Excluded) == 1 {
			break
		}
		time.Sleep(500 * time.Millisecond) // the first exchanges find the skew
	}
	if res.Status == StatusPartial || len(res.Excluded) != 1 || res.Excluded[0] != peers[skewed].Name() || res.Rows[0][0].Num != n-1 {
		t.Errorf("at a peer with the right time: %s %q, excluded %v, rows %v", res.Status, res.Reason, res.Excluded, res.Rows)
	}
	own, _ := peers[skewed].Query(context.Background(), compile(t, peers[skewed].Node, src), nil)
	if own == nil || own.Status != StatusPartial || !strings.Contains(own.Reason, "clock skew at trust-6 (+60 s)") {
		t.Errorf("at the skewed peer: %+v", own)
	}
	if _, _, _, skews, _ := peers[0].ov.ExchangeStats(); skews == 0 {
		t.Error("no exchange was counted as refused for clock skew")
	}

	// The liar: an owner reserves; the liar sends a release of one of its
	// members, signed with the liar's own key, in the owner's name.
	owner, liar := peers[1].Node, peers[liarAt].Node
	got := ask(t, owner, compile(t, owner, "RESERVE 3 FROM peers WHERE node != 'trust-6' AND node != 'trust-7' AS job FOR 10m"))
	var victim *Node
	for _, p := range peers {
		if p.Name() == got.Nodes[0] {
			victim = p.Node
		}
	}
	l, _ := victim.leases.current()
	forged := subcloud.Request{Op: subcloud.OpRelease, Subcloud: "job", Owner: owner.Name(), Token: l.Token,
		Target: victim.Name(), Boot: victim.id.Boot()}
	forged.Sign(liar.id)
	if rep := sendLease(t, liar, victim.Name(), forged); !errors.Is(rep.Err(), subcloud.ErrForged) {
		t.Errorf("a release in the owner's name over sockets: %v", rep.Err())
	}
	if cur, ok := victim.leases.current(); !ok || cur.Owner != owner.Name() {
		t.Errorf("the victim's lease after the forged release: %+v %v", cur, ok)
	}
}
