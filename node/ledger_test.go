package node

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/subcloud"
)

// testKey is a seeded identity for name.
func testKey(t testing.TB, name string) *identity.Key {
	t.Helper()
	var seed [32]byte
	copy(seed[:], "ledger test "+name)
	k, err := identity.New(rand.NewChaCha8(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var ledgerT0 = time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)

// leaseReq is a request of owner (signed with k) to member at at.
func leaseReq(k *identity.Key, op subcloud.Op, owner, member, token string, at time.Time) subcloud.Request {
	r := subcloud.Request{Op: op, Subcloud: "s", Owner: owner, Token: token, Target: member, Boot: 1, At: at.UnixNano()}
	if op != subcloud.OpRelease {
		r.For = time.Minute
	}
	r.Sign(k)
	return r
}

// The ledger keeps the owner's receipts of a lease's grant and of its
// last renewal (or release), and bills what they span on the owner's
// clock: an owner's retried renewal signed before the last one does not
// shorten it, a release the peer made itself (no receipt) ends it at the
// last renewal, and an entry without receipts bills nothing.
func TestLedgerBillsReceipts(t *testing.T) {
	ok := testKey(t, "o")
	const tok = "0123456789abcdef0123"
	tb := &subcloud.Table{}
	self := subcloud.Self{Name: "m", Boot: 1, KeyOf: func(string) (identity.Public, bool) { return ok.Public(), true }}
	var ledger []ledgerEntry
	apply := func(now time.Time, r subcloud.Request) {
		t.Helper()
		rep := tb.Apply(now, self, "o", r, func(next *subcloud.Table) error {
			ledger = metered(ledger, tb, next, r, now)
			return nil
		})
		if !rep.OK {
			t.Fatalf("%s refused: %+v", r.Op, rep)
		}
	}
	// The owner's clock runs 3 s behind the peer's: hours are its.
	skew := -3 * time.Second
	apply(ledgerT0, leaseReq(ok, subcloud.OpClaim, "o", "m", tok, ledgerT0.Add(skew)))
	if h, receipted := ledger[0].hours("m"); !receipted || h != 0 {
		t.Fatalf("after the grant: %v hours, receipted %v", h, receipted)
	}
	late := leaseReq(ok, subcloud.OpRenew, "o", "m", tok, ledgerT0.Add(20*time.Second+skew))
	apply(ledgerT0.Add(30*time.Second), leaseReq(ok, subcloud.OpRenew, "o", "m", tok, ledgerT0.Add(30*time.Second+skew)))
	apply(ledgerT0.Add(31*time.Second), late) // signed before the last one, answered after it
	if h, _ := ledger[0].hours("m"); math.Abs(h-30.0/3600) > 1e-12 {
		t.Fatalf("after renewals: %v hours, want 30 s", h*3600)
	}
	if h, _ := ledger[0].hours("x"); h != 0 {
		t.Fatalf("another member bills %v hours with m's receipts", h)
	}
	ledger = metered(ledger, tb, &subcloud.Table{}, subcloud.Request{Op: subcloud.OpRelease, Subcloud: "s"}, ledgerT0.Add(50*time.Second))
	if h, _ := ledger[0].hours("m"); ledger[0].Open || math.Abs(h-30.0/3600) > 1e-12 {
		t.Fatalf("after a release of the peer's own: open %v, %v s", ledger[0].Open, h*3600)
	}
	if h, receipted := (ledgerEntry{Subcloud: "s", Start: ledgerT0, Until: ledgerT0.Add(time.Hour)}).hours("m"); receipted || h != 0 {
		t.Fatalf("an entry without receipts bills %v hours (receipted %v)", h, receipted)
	}
}

// checkShown takes a sampled member's hours from its owners' receipts
// and names what they do not back.
func TestCheckShown(t *testing.T) {
	owner, other := testKey(t, "owner"), testKey(t, "member")
	const tok = "0123456789abcdef0123"
	p, err := query.CompileText("SELECT SUM(peer_hours) FROM leases", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	row := func(hours float64) []byte {
		return run.SampleRow(p, query.Record{"subcloud": query.Str("s"), "peer_hours": query.Num(query.KindNumber, hours)})
	}
	grant := leaseReq(owner, subcloud.OpClaim, "owner", "m", tok, ledgerT0).Receipt().Encode()
	renew := leaseReq(owner, subcloud.OpRenew, "owner", "m", tok, ledgerT0.Add(2*time.Hour)).Receipt().Encode()
	byMember := leaseReq(other, subcloud.OpClaim, "owner", "m", tok, ledgerT0).Receipt().Encode()
	byMemberRenew := leaseReq(other, subcloud.OpRenew, "owner", "m", tok, ledgerT0.Add(5*time.Hour)).Receipt().Encode()
	forX := leaseReq(owner, subcloud.OpClaim, "owner", "x", tok, ledgerT0).Receipt().Encode()
	forXRenew := leaseReq(owner, subcloud.OpRenew, "owner", "x", tok, ledgerT0.Add(2*time.Hour)).Receipt().Encode()
	live := func(name string) (identity.Public, bool) {
		if name == "owner" {
			return owner.Public(), true
		}
		return identity.Public{}, false
	}
	gone := func(string) (identity.Public, bool) { return identity.Public{}, false }
	cases := []struct {
		name       string
		rows       []shownRow
		keyOf      func(string) (identity.Public, bool)
		hours      float64
		unverified int
		lie        string
	}{
		{"receipted", []shownRow{{row: row(2), key: owner.Public(), grant: grant, last: renew}}, live, 2, 0, ""},
		{"a row under its claim", []shownRow{{row: row(1), key: owner.Public(), grant: grant, last: renew}}, live, 2, 0, ""},
		{"no lease", nil, live, 0, 0, ""},
		{"hours above the receipts", []shownRow{{row: row(3), key: owner.Public(), grant: grant, last: renew}}, live, 2, 0, "bills 3 peer-hours of s, and owner's receipts show 2"},
		{"hours with no receipt", []shownRow{{row: row(3)}}, live, 0, 0, "that no owner signed for"},
		{"receipts the member signed", []shownRow{{row: row(5), key: other.Public(), grant: byMember, last: byMemberRenew}}, live, 0, 0, "not signed by owner's key"},
		{"another member's receipts", []shownRow{{row: row(2), key: owner.Public(), grant: forX, last: forXRenew}}, live, 0, 0, `the grant is for "x"`},
		{"one grant twice", []shownRow{{row: row(2), key: owner.Public(), grant: grant, last: renew}, {row: row(2), key: owner.Public(), grant: grant, last: renew}}, live, 2, 0, "one grant of s twice"},
		{"an owner not live here", []shownRow{{row: row(5), key: other.Public(), grant: byMember, last: byMemberRenew}}, gone, 5, 1, ""},
		{"not live, and not of the key shown", []shownRow{{row: row(2), key: other.Public(), grant: grant, last: renew}}, gone, 0, 1, "not signed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, err := decodeShown(encodeShown(c.rows))
			if err != nil {
				t.Fatal(err)
			}
			l, err := checkShown(p, "m", rows, c.keyOf)
			if err != nil {
				t.Fatal(err)
			}
			hours := 0.0
			for _, r := range l.recs {
				hours += r["peer_hours"].Num
			}
			if c.lie == "" && l.lie != "" || c.lie != "" && !strings.Contains(l.lie, c.lie) {
				t.Fatalf("lie %q, want %q", l.lie, c.lie)
			}
			if math.Abs(hours-c.hours) > 1e-9 || l.unverified != c.unverified {
				t.Fatalf("%v receipted hours, %d unverified; want %v, %d", hours, l.unverified, c.hours, c.unverified)
			}
		})
	}
}

// A peer whose ledger bills a lease its owner never granted it (a grant
// it signed itself, naming the owner: its disk is its own to doctor) is
// named by the sample check of FROM leases, and the answer is contested;
// before it lies, the same statement agrees with every member's receipts.
// Mutation: with the check's receipts not verified (keyOf the key the
// member shows) the lie passes as converged, and this fails.
func TestLedgerLiarIsContested(t *testing.T) {
	t.Parallel()
	fake(t, 16, fakenet.DefaultConfig(), func(t *testing.T, c *cluster) {
		owner, asker, liar := c.nodes[1], c.nodes[7], c.nodes[9]
		ask(t, owner, compile(t, owner, "RESERVE 4 FROM peers WHERE node NOT IN ('peer-000007', 'peer-000009') ORDER BY reliability DESC AS m FOR 30s"))
		elapse(45 * time.Second)
		p := compile(t, asker, "SELECT SUM(peer_hours), COUNT(*) FROM leases WHERE receipted")
		honest := ask(t, asker, p)
		if honest.Status != StatusConverged || honest.Check == nil || honest.Check.Verdict != answer.CheckAgrees || honest.Check.Sampled != len(c.nodes) {
			t.Fatalf("honest ledgers: %s (%s), check %+v", honest.Status, honest.Reason, honest.Check)
		}
		// The liar adds a day's lease of m to its ledger, "granted" by
		// the owner under its own signature.
		k := liar.keeper
		now := time.Now()
		g := subcloud.Request{Op: subcloud.OpClaim, Subcloud: "m", Owner: owner.Name(), Token: "0123456789abcdef0123", For: time.Minute,
			Target: liar.Name(), Boot: 1, At: now.Add(-24 * time.Hour).UnixNano()}
		g.Sign(liar.id)
		r := g
		r.Op, r.At = subcloud.OpRenew, now.UnixNano()
		r.Sign(liar.id)
		k.mu.Lock()
		k.ledger = append(k.ledger, ledgerEntry{Subcloud: "m", Owner: owner.Name(), Start: now.Add(-24 * time.Hour), Until: now,
			OwnerKey: liar.id.Public(), Grant: g.Receipt().Encode(), Last: r.Receipt().Encode()})
		k.publish()
		k.mu.Unlock()
		res := ask(t, asker, p)
		if res.Status != answer.StatusContested || !strings.Contains(res.Reason, "sampled member "+liar.Name()) || !strings.Contains(res.Reason, "not signed by "+owner.Name()) {
			t.Fatalf("a ledger billing a day no owner granted: %s (%s), %v peer-hours", res.Status, res.Reason, res.Rows)
		}
		t.Logf("honest: %v peer-hours; with the liar: %v, %s", honest.Rows[0][0], res.Rows[0][0], res.Reason)
	})
}

// FuzzDecodeShown: a shown ledger's decoder never panics, and what it
// accepts re-encodes to what decodes the same.
func FuzzDecodeShown(f *testing.F) {
	k := testKey(f, "owner")
	f.Add(encodeShown([]shownRow{{row: []byte{1}, key: k.Public(), grant: leaseReq(k, subcloud.OpClaim, "o", "m", "0123456789abcdef", ledgerT0).Receipt().Encode()}}))
	f.Add(encodeShown(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := decodeShown(b)
		if err != nil {
			return
		}
		again, err := decodeShown(encodeShown(rows))
		if err != nil || len(again) != len(rows) {
			t.Fatalf("re-decoding: %d rows, %v", len(again), err)
		}
	})
}
