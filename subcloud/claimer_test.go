package subcloud

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/identity"
)

var errLost = errors.New("lost")

// The claim protocol, model-checked: owners race for the peers of a small
// cluster over a network that delivers messages in a random order, loses
// claims and replies, and peers whose disk sometimes fails. Whatever the
// schedule, every Claimer ends, and once its releases are delivered what it
// reports is exactly what the peers hold: a success names between AtLeast
// (or N) and N members, each holding its lease, and no other peer holds
// it; a failure leaves no peer holding it.
func TestClaimerProperty(t *testing.T) {
	for seed := uint64(1); seed <= 400; seed++ {
		checkClaimers(t, seed)
	}
}

type flight struct {
	owner int
	msg   Message
}

func checkClaimers(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	nPeers, nOwners := 3+r.IntN(25), 1+r.IntN(4)
	loss, diskFail := []float64{0, 0.1, 0.3}[r.IntN(3)], []float64{0, 0.05}[r.IntN(2)]
	names := make([]string, nPeers)
	for i := range names {
		names[i] = fmt.Sprintf("p%02d", i)
	}
	tables := map[string]*Table{}
	for _, n := range names {
		tables[n] = &Table{}
	}
	var owners []*Claimer
	var cfgs []ClaimerConfig
	for k := 0; k < nOwners; k++ {
		n := 1 + r.IntN(nPeers)
		atLeast := 0
		if r.IntN(2) == 0 {
			atLeast = 1 + r.IntN(n)
		}
		cfg := ClaimerConfig{Subcloud: fmt.Sprint("sc", k), Owner: fmt.Sprint("o", k), Token: strings.Repeat(string(rune('a'+k)), 32),
			N: n, AtLeast: atLeast, Lease: time.Hour, Searches: 1 + r.IntN(5)}
		c, err := NewClaimer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		owners, cfgs = append(owners, c), append(cfgs, cfg)
	}
	persist := func(*Table) error {
		if r.Float64() < diskFail {
			return errors.New("disk full")
		}
		return nil
	}
	var inflight []flight
	for step := 0; ; step++ {
		if step > 100_000 {
			t.Fatalf("seed %d: the claimers did not finish", seed)
		}
		for k, c := range owners {
			if c.State() == NeedCandidates {
				// A search: the peers that look free (a stale view lets
				// some held ones through), in a random rank order.
				var cands []string
				for _, n := range r.Perm(nPeers) {
					if _, held := tables[names[n]].Current(t0); !held || r.IntN(4) == 0 {
						cands = append(cands, names[n])
					}
				}
				c.Candidates(cands[:r.IntN(len(cands)+1)])
			}
			for _, m := range c.Outbox() {
				inflight = append(inflight, flight{k, m})
			}
		}
		if len(inflight) == 0 {
			done := true
			for _, c := range owners {
				done = done && c.State() == Done
			}
			if done {
				break
			}
			continue
		}
		i := r.IntN(len(inflight))
		f := inflight[i]
		inflight = append(inflight[:i], inflight[i+1:]...)
		c, tb := owners[f.owner], tables[f.msg.To]
		if f.msg.Req.Op != OpClaim {
			// Releases are delivered, and stored (a peer that cannot
			// store one keeps the lease until it lapses).
			apply(tb, cfgs[f.owner].Owner, f.msg.To, f.msg.Req, nil)
			continue
		}
		switch x := r.Float64(); {
		case x < loss/2: // the claim is lost
			c.Step(f.msg.To, Reply{}, errLost)
		case x < loss: // the claim is granted, the reply lost
			apply(tb, cfgs[f.owner].Owner, f.msg.To, f.msg.Req, persist)
			c.Step(f.msg.To, Reply{}, errLost)
		default:
			c.Step(f.msg.To, apply(tb, cfgs[f.owner].Owner, f.msg.To, f.msg.Req, persist), nil)
		}
	}
	for k, c := range owners {
		members, err := c.Result()
		var holding []string
		for _, n := range names {
			if l, ok := tables[n].Current(t0); ok && l.Subcloud == cfgs[k].Subcloud && l.Token == cfgs[k].Token {
				holding = append(holding, n)
			}
		}
		sort.Strings(holding)
		need := cfgs[k].N
		if cfgs[k].AtLeast > 0 {
			need = cfgs[k].AtLeast
		}
		switch {
		case err == nil && (len(members) < need || len(members) > cfgs[k].N):
			t.Errorf("seed %d: owner %d succeeded with %d members, wants %d..%d", seed, k, len(members), need, cfgs[k].N)
		case err == nil && fmt.Sprint(members) != fmt.Sprint(holding):
			t.Errorf("seed %d: owner %d reports %v, the peers holding its lease are %v", seed, k, members, holding)
		case err != nil && (!errors.Is(err, ErrNotEnoughPeers) || len(members) != 0 || len(holding) != 0):
			t.Errorf("seed %d: owner %d failed (%v) with members %v, yet %v hold its lease", seed, k, err, members, holding)
		}
	}
}

// Abort releases what is held and what is in flight.
func TestClaimerAbort(t *testing.T) {
	c, err := NewClaimer(ClaimerConfig{Subcloud: "x", Owner: "o", Token: tokA, N: 3, Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c.Candidates([]string{"a", "b", "c", "d"})
	out := c.Outbox()
	if len(out) != 3 || out[0].To != "a" || out[0].Req.Op != OpClaim {
		t.Fatalf("claims %+v", out)
	}
	c.Step("a", Reply{OK: true}, nil)
	c.Step("b", Reply{Refusal: RefusedHeld}, nil) // backfilled at once from d
	if next := c.Outbox(); len(next) != 1 || next[0].To != "d" {
		t.Fatalf("backfill %+v", next)
	}
	c.Abort(errors.New("cancelled"))
	var released []string
	for _, m := range c.Outbox() {
		if m.Req.Op != OpRelease {
			t.Errorf("after Abort: %+v", m)
		}
		released = append(released, m.To)
	}
	if fmt.Sprint(released) != "[a c d]" {
		t.Errorf("released %v, want a (held) and c, d (in flight)", released)
	}
	if m, err := c.Result(); err == nil || m != nil {
		t.Errorf("result %v %v", m, err)
	}
}

// A peer lost while the claim runs is claimed again; one that may still
// hold the lease is released at the end unless claimed again, or at once
// when the claim is already done; one that said it holds none is not.
func TestClaimerLost(t *testing.T) {
	released := func(c *Claimer) (out []string) {
		for _, m := range c.Outbox() {
			if m.Req.Op == OpRelease {
				out = append(out, m.To)
			}
		}
		return out
	}
	for _, mayHold := range []bool{false, true} {
		c, err := NewClaimer(ClaimerConfig{Subcloud: "x", Owner: "o", Token: tokA, N: 2, Lease: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c.Candidates([]string{"a", "b", "c", "d"})
		c.Outbox()
		c.Step("a", Reply{OK: true}, nil)
		c.Lost("a", mayHold) // c is claimed in its place
		c.Step("b", Reply{OK: true}, nil)
		c.Step("c", Reply{OK: true}, nil)
		if c.State() != Done {
			t.Fatalf("mayHold %v: %v", mayHold, c.State())
		}
		if got, want := fmt.Sprint(released(c)), map[bool]string{false: "[]", true: "[a]"}[mayHold]; got != want {
			t.Errorf("mayHold %v, lost while claiming: released %s, want %s", mayHold, got, want)
		}
		c.Lost("b", mayHold) // after Done
		if got, want := fmt.Sprint(released(c)), map[bool]string{false: "[]", true: "[b]"}[mayHold]; got != want {
			t.Errorf("mayHold %v, lost once done: released %s, want %s", mayHold, got, want)
		}
	}
}

func TestClaimerConfig(t *testing.T) {
	for _, cfg := range []ClaimerConfig{
		{Subcloud: "x", Owner: "o", Token: "short", N: 1, Lease: time.Hour},
		{Subcloud: "x", Owner: "o", Token: tokA, N: 0, Lease: time.Hour},
		{Subcloud: "x", Owner: "o", Token: tokA, N: 2, AtLeast: 3, Lease: time.Hour},
		{Subcloud: "x", Owner: "o", Token: tokA, N: 2, Lease: time.Second},
	} {
		if _, err := NewClaimer(cfg); !errors.Is(err, ErrBadClaim) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// A peer whose disk fails refuses, and keeps nothing.
func TestApplyPersistsFirst(t *testing.T) {
	var tb Table
	rep := apply(&tb, "o", "p", Request{Op: OpClaim, Subcloud: "x", Token: tokA, For: time.Hour}, func(*Table) error { return errors.New("disk") })
	if rep.OK || !errors.Is(rep.Err(), ErrStorage) {
		t.Errorf("reply %+v", rep)
	}
	if _, ok := tb.Current(t0); ok {
		t.Error("the peer kept a lease it could not persist")
	}
	var saved *Table
	rep = apply(&tb, "o", "p", Request{Op: OpClaim, Subcloud: "x", Token: tokA, For: time.Hour}, func(n *Table) error { saved = n; return nil })
	if !rep.OK || saved == nil {
		t.Fatalf("reply %+v", rep)
	}
	if l, _ := saved.Current(t0); l.Subcloud != "x" {
		t.Errorf("persisted %+v", l)
	}
	// A retry changes nothing and is not persisted again.
	saved = nil
	if rep := apply(&tb, "o", "p", Request{Op: OpClaim, Subcloud: "x", Token: tokA, For: time.Hour}, func(n *Table) error { saved = n; return nil }); !rep.OK || saved != nil {
		t.Errorf("retry: %+v, persisted %v", rep, saved != nil)
	}
	if rep := apply(&tb, "q", "p", Request{Op: OpClaim, Subcloud: "y", Token: tokB, For: time.Hour}, nil); rep.OK || rep.Holder != "x" || !errors.Is(rep.Err(), ErrHeld) {
		t.Errorf("second claim: %+v", rep)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	req := signed("a1", "p1", Request{Op: OpRenew, Subcloud: "analytics", Token: tokA, Key: "k", For: 90 * time.Second})
	got, err := DecodeRequest(req.Encode())
	if err != nil || !reflect.DeepEqual(got, req) || !got.SignedBy(keyOf("a1").Public()) {
		t.Fatalf("request: %+v %v", got, err)
	}
	rep := Reply{Refusal: RefusedHeld, Holder: "batch", OwnerKey: make([]byte, identity.PublicSize)}
	if got, err := DecodeReply(rep.Encode()); err != nil || !reflect.DeepEqual(got, rep) {
		t.Fatalf("reply: %+v %v", got, err)
	}
	for _, b := range [][]byte{nil, {2}, append([]byte{msgVersion}, 0xff), append(req.Encode(), 0)} {
		if _, err := DecodeRequest(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", b, err)
		}
	}
	if _, err := DecodeRequest(Request{Op: opEnd, Subcloud: "x"}.Encode()); !errors.Is(err, ErrMalformed) {
		t.Errorf("op %d: %v", opEnd, err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(signed("a1", "p", Request{Op: OpClaim, Subcloud: "analytics", Token: tokA, Key: "k", For: time.Hour}).Encode())
	f.Add(signed("a1", "p", Request{Op: OpName, Subcloud: "analytics", For: time.Hour}).Encode())
	f.Add(Request{Op: OpWho, Subcloud: "analytics"}.Encode())
	f.Add(Request{Op: OpRelease, Subcloud: "x", Token: tokB}.Encode())
	f.Add(Request{Op: OpCheck, Subcloud: "x", Token: tokB}.Encode())
	f.Add(Request{Op: OpClaim, Subcloud: "x", Owner: "o", Token: tokA, For: time.Minute, Since: 1_800_000_000_000_000_000}.Encode())
	f.Add(Reply{OK: true, Expires: 5}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeRequest(b); err == nil {
			// Whatever decodes re-encodes to something that decodes the same.
			if again, err := DecodeRequest(r.Encode()); err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("request %+v re-decodes as %+v, %v", r, again, err)
			}
			var tb Table
			tb.Apply(t0, self("p"), r.Owner, r, func(*Table) error { return nil })
			var names Names
			names.Apply(t0, self("p"), r.Owner, r, func(*Names) error { return nil })
		}
		if r, err := DecodeReply(b); err == nil {
			if again, err := DecodeReply(r.Encode()); err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("reply %+v re-decodes as %+v, %v", r, again, err)
			}
			r.Err()
		}
	})
}
