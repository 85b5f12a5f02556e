package node

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/identity"
	ownerrole "github.com/peerq/peerq/node/owner"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// An owner that restarts on its data dir still owns its subclouds: it
// renews them, lists them, and can release them. So does an agent upgraded
// on its data dir, which reads the owner's table in the JSON form agents
// wrote before the owner role (version 3, as node wrote it) and writes it
// again in the new form.
func TestOwnerSurvivesRestart(t *testing.T) {
	t.Parallel()
	for _, upgraded := range []bool{false, true} {
		t.Run(fmt.Sprint("upgraded=", upgraded), func(t *testing.T) {
			t.Parallel()
			ownerRestarts(t, upgraded)
		})
	}
}

func ownerRestarts(t *testing.T, upgraded bool) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 10, fakenet.DefaultConfig(), 1, nil)
		rec, tags := SyntheticPeer(1, 10)
		h := c.net.Add("owner", tags)
		cfg := DefaultConfig(func() query.Record { return rec })
		cfg.DataDir, cfg.Tags = dir, tags
		owner, err := New(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		res := ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers ORDER BY mem_free DESC AS kept FOR 12s"))
		members := res.Nodes
		owner.Close() // a restart
		path := filepath.Join(dir, ownedFile)
		if upgraded {
			writeJSONTable(t, path)
		}
		owner, err = New(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		defer owner.Close()
		elapse(30 * time.Second) // past two terms: only renewals keep them
		holding := 0
		for _, n := range c.nodes {
			if l, ok := n.leases.current(); ok && l.Subcloud == "kept" {
				holding++
			}
		}
		if holding != len(members) {
			t.Errorf("%d peers hold the lease 30 s after the owner restarted, want %d (renewals resumed)", holding, len(members))
		}
		if b, _ := os.ReadFile(path); len(b) == 0 || b[0] == '{' {
			t.Errorf("the owner's table after renewals is not in the new form: %.30q", b)
		}
		if again, err := owner.Query(context.Background(), compile(t, owner, "RESERVE 2 AS kept FOR 1m"), nil); err == nil {
			t.Errorf("the name was reused: %v", again.Rows)
		}
		rel := ask(t, owner, compile(t, owner, "RELEASE kept"))
		if rel.Rows[0][1].Num != float64(len(members)) {
			t.Errorf("released %v after the restart", rel.Rows)
		}
	})
}

// writeJSONTable rewrites the owner's table at path as the agent before
// the owner role wrote it: JSON, version 3.
func writeJSONTable(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	states, err := ownerrole.DecodeTable(b)
	if err != nil {
		t.Fatal(err)
	}
	var subclouds []map[string]any
	for _, st := range states {
		subclouds = append(subclouds, map[string]any{
			"name": st.Subcloud, "token": st.Token, "key": st.Key, "lease": st.Lease, "members": st.Members,
			"order": st.Order, "plan": st.Plan, "target": st.Target, "since": st.Since, "keepers": st.Keepers,
			"episodes": map[string][2]time.Time{}, "metered": st.Metered})
	}
	old, err := json.Marshal(map[string]any{"version": 3, "subclouds": subclouds})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A corrupt lease file falls back on the previous copy, and says so; with
// no good copy, the error names the file and how to start afresh.
func TestCorruptLeaseFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		nw := fakenet.New(fakenet.DefaultConfig())
		h := nw.Add("p", nil)
		o := testOwner(nw, "o")
		var logged []string
		cfg := DefaultConfig(func() query.Record { return query.Record{} })
		cfg.DataDir = dir
		cfg.Logf = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
		n, err := New(cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		n.leases.handle("o", o.claim(n, "a", strings.Repeat("t", 32)))
		n.leases.handle("o", o.release(n, "a", strings.Repeat("t", 32)))
		n.leases.handle("o", o.claim(n, "b", strings.Repeat("u", 32)))
		n.Close()
		path := filepath.Join(dir, leaseFile)
		os.WriteFile(path, []byte(`{"subcloud": "b", "tok`), 0o600) // torn
		if n, err = New(cfg, h); err != nil {
			t.Fatalf("with a previous copy: %v", err)
		}
		n.Close()
		if !strings.Contains(strings.Join(logged, " "), "loaded its previous copy") {
			t.Errorf("logged %q", logged)
		}
		if l, ok := n.leases.current(); ok {
			t.Errorf("restored %+v; the previous copy held no lease", l)
		}
		os.WriteFile(path, []byte("garbage"), 0o600)
		os.WriteFile(path+".prev", []byte("garbage"), 0o600)
		_, err = New(cfg, h)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "mv ") {
			t.Errorf("with no good copy: %v", err)
		}
	})
}

// fakeOwner is an identity on a fake network that signs lease requests,
// as an owner's runtime does: a test speaks to a node's table directly.
type fakeOwner struct {
	name string
	key  *identity.Key
}

// testOwner adds an owner named name to the network, with a key the
// others see.
func testOwner(nw *fakenet.Network, name string) *fakeOwner {
	k, err := identity.New(mrand.NewChaCha8([32]byte{byte(len(name)), name[0]}))
	if err != nil {
		panic(err)
	}
	nw.Add(name, nil).SetIdentity(k.Public(), k.Boot())
	return &fakeOwner{name: name, key: k}
}

// req is r signed for peer n, in n's present incarnation.
func (o *fakeOwner) req(n *Node, r subcloud.Request) []byte {
	r.Owner, r.Target, r.Boot = o.name, n.Name(), n.id.Boot()
	r.Sign(o.key)
	return r.Encode()
}

func (o *fakeOwner) claim(n *Node, sub, tok string) []byte {
	return o.req(n, subcloud.Request{Op: subcloud.OpClaim, Subcloud: sub, Token: tok, For: time.Minute})
}

func (o *fakeOwner) release(n *Node, sub, tok string) []byte {
	return o.req(n, subcloud.Request{Op: subcloud.OpRelease, Subcloud: sub, Token: tok})
}

// The ledger decoder refuses what is malformed or too large, and what it
// accepts is bounded.
func FuzzDecodeLedger(f *testing.F) {
	good, _ := json.Marshal(map[string]any{"version": 1, "entries": []ledgerEntry{{Subcloud: "x", Owner: "o",
		Start: time.Unix(1_800_000_000, 0), Until: time.Unix(1_800_000_060, 0), Open: true}}})
	f.Add(good)
	f.Add([]byte(`{"version": 1, "entries": [{"subcloud": "x", "start": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodeLedger(b)
		if err != nil {
			return
		}
		if len(entries) > query.MaxLedgerRows {
			t.Fatalf("%d entries accepted", len(entries))
		}
		for _, e := range entries {
			if e.Subcloud == "" || e.Until.Before(e.Start) {
				t.Fatalf("accepted %+v", e)
			}
		}
	})
}

// The lease file (version 2: the lease and the ledger; version 1: the
// lease alone) is read bounded and checked.
func FuzzDecodeLeaseDoc(f *testing.F) {
	v2, _ := json.Marshal(leaseDoc{Version: 2, Lease: json.RawMessage(`{"subcloud":"x","owner":"o","token":"tttttttttttttttttttttttttttttttt","granted":"2030-01-01T00:00:00Z","expires":"2030-01-01T01:00:00Z"}`),
		Ledger: []ledgerEntry{{Subcloud: "x", Owner: "o", Start: time.Unix(1_800_000_000, 0), Until: time.Unix(1_800_000_060, 0), Open: true}}})
	f.Add(v2)
	f.Add([]byte(`null`))
	f.Add([]byte(`{"subcloud":"x","owner":"o","token":"t","granted":"2030-01-01T00:00:00Z","expires":"2030-01-01T01:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, ledger, err := decodeLeaseDoc(b)
		if err != nil {
			return
		}
		if tb == nil || len(ledger) > query.MaxLedgerRows {
			t.Fatalf("accepted a table %v with %d ledger rows", tb, len(ledger))
		}
	})
}
