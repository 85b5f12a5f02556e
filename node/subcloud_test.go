package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/query"
)

// RESERVE on the embedded cluster: the members hold leases, the tags show
// them, FROM SUBCLOUD and SHOW SUBCLOUDS see them, a second RESERVE cannot
// take them, a retry with the key gets the same subcloud, RELEASE frees
// them.
func TestReserveRelease(t *testing.T) {
	e := startEmbedded(t, 30)
	owner := e.Nodes[2]
	res := ask(t, owner, compile(t, owner, "RESERVE 5 FROM peers WHERE mem_free >= 1GB ORDER BY reliability DESC AS batch FOR 1m WITH KEY 'k1'"))
	if len(res.Nodes) != 5 {
		t.Fatalf("members %v", res.Nodes)
	}
	held := 0
	for _, n := range e.Nodes {
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
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := ask(t, owner, compile(t, owner, "SELECT node FROM SUBCLOUD batch"))
		if len(r.Nodes) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FROM SUBCLOUD batch: %v", r.Nodes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var show *Result
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		show = ask(t, e.Nodes[9], compile(t, e.Nodes[9], "SHOW SUBCLOUDS"))
		if len(show.Rows) == 1 && show.Rows[0][2].Num == 5 {
			break
		}
	}
	if len(show.Rows) != 1 || show.Rows[0][0].Str != "batch" || show.Rows[0][2].Num != 5 || show.Rows[0][1].Str != owner.Name() {
		t.Errorf("SHOW SUBCLOUDS: %v", show.Rows)
	}
	// Another owner asking for more than the free peers gets nothing.
	other := e.Nodes[7]
	_, err := other.Query(context.Background(), compile(t, other, "RESERVE 26 AS greedy FOR 1m"), nil)
	if !errors.Is(err, ErrNotEnoughPeers) {
		t.Errorf("greedy RESERVE: %v", err)
	}
	for _, n := range e.Nodes {
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
	for _, n := range e.Nodes {
		if _, ok := n.currentLease(); ok {
			t.Errorf("%s still holds a lease after RELEASE", n.Name())
		}
	}
}

// Safety: eight RESERVEs at once from eight peers of a 200-peer cluster,
// competing for overlapping candidates (all rank by reliability). No peer ends in two subclouds; each subcloud that succeeded
// has exactly its n members; each that failed holds nothing.
func TestReserveRace(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
		e, err := StartEmbedded(ctx, EmbeddedConfig{Nodes: 200, Seed: seed, Freeze: true, Round: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.WaitSettled(ctx, nil); err != nil {
			t.Fatal(err)
		}
		cancel()
		type outcome struct {
			name    string
			members []string
			err     error
		}
		out := make([]outcome, 8)
		raceStart := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := e.Nodes[i*23]
				name := fmt.Sprint("sc", i)
				res, err := n.Query(context.Background(), compile(t, n, fmt.Sprintf("RESERVE 20 FROM peers ORDER BY reliability DESC AS %s FOR 1m", name)), nil)
				out[i] = outcome{name: name, err: err}
				if res != nil {
					out[i].members = res.Nodes
				}
			}()
		}
		wg.Wait()
		t.Logf("seed %d: the RESERVEs took %v", seed, time.Since(raceStart))
		holders := map[string]string{}
		for _, n := range e.Nodes {
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
					t.Errorf("seed %d: %s succeeded with %d members, %d peers hold it", seed, o.name, len(o.members), count)
				}
				for _, m := range o.members {
					if holders[m] != o.name {
						t.Errorf("seed %d: %s lists %s, which holds %q", seed, o.name, m, holders[m])
					}
				}
			case count != 0:
				t.Errorf("seed %d: %s failed (%v) but %d peers hold it", seed, o.name, o.err, count)
			}
		}
		t.Logf("seed %d: %d of 8 RESERVE 20 on 200 peers succeeded, %d peers reserved", seed, ok, len(holders))
		closeStart := time.Now()
		e.Close()
		t.Logf("seed %d: close took %v", seed, time.Since(closeStart))
	}
}

// The owner renews its leases; when it dies, they lapse at their expiry and
// the peers are free again, within expiry plus one renewal interval.
func TestLeaseRenewAndLapse(t *testing.T) {
	e := startEmbedded(t, 12)
	owner := e.Nodes[1]
	res := ask(t, owner, compile(t, owner, "RESERVE 3 AS short FOR 10s"))
	members := map[string]bool{}
	for _, m := range res.Nodes {
		members[m] = true
	}
	time.Sleep(12 * time.Second) // past the first expiry: renewed
	for _, n := range e.Nodes {
		if l, ok := n.currentLease(); members[n.Name()] && (!ok || l.Subcloud != "short") {
			t.Errorf("%s lost its lease though the owner renews it", n.Name())
		}
	}
	killed := time.Now()
	e.Kill(1)
	deadline := killed.Add(10*time.Second + 2*time.Second)
	for {
		held := 0
		for i, n := range e.Nodes {
			if i == 1 {
				continue
			}
			if _, ok := n.currentLease(); ok {
				held++
			}
		}
		if held == 0 {
			t.Logf("leases lapsed %v after the owner died", time.Since(killed).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d peers still held leases %v after the owner died", held, time.Since(killed))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A reserved peer restarted on the same data dir still holds its lease,
// and refuses a renewal with a wrong token.
func TestLeaseSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	newPeer := func() *Node {
		ocfg := overlay.DefaultConfig("keeper")
		ocfg.BindAddr, ocfg.ExchangeAddr = "127.0.0.1:0", "127.0.0.1:0"
		ocfg.Memberlist = overlay.TunedConfig(2)
		cfg := DefaultConfig(ocfg, func() query.Record { return query.Record{} })
		cfg.DataDir = dir
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := newPeer()
	token := strings.Repeat("t", 32)
	msg := func(op, tok string) []byte {
		b, _ := json.Marshal(leaseMsg{Op: op, Subcloud: "kept", Owner: "someone", Token: tok, For: time.Minute})
		return b
	}
	var r leaseReply
	json.Unmarshal(n.handleLease(msg("claim", token)), &r)
	if !r.OK {
		t.Fatalf("claim: %+v", r)
	}
	n.Close()
	n = newPeer()
	defer n.Close()
	if l, ok := n.currentLease(); !ok || l.Subcloud != "kept" || l.Token != token {
		t.Fatalf("after a restart: %+v %v", l, ok)
	}
	json.Unmarshal(n.handleLease(msg("renew", strings.Repeat("x", 32))), &r)
	if r.OK || !strings.Contains(r.Error, "wrong lease token") {
		t.Errorf("renewal with a wrong token: %+v", r)
	}
	json.Unmarshal(n.handleLease(msg("claim", strings.Repeat("y", 32))), &r)
	if r.OK || !strings.Contains(r.Error, "already reserved") {
		t.Errorf("a second claim: %+v", r)
	}
	if rec := n.record(); rec["reserved"] != query.Bool(true) || rec["subcloud"] != query.Str("kept") {
		t.Errorf("record %v", rec)
	}
}
