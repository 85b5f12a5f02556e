package subcloud

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// A claim, renewal, release or check is carried out only if the owner it
// names signed it (a claim: with the key the membership shows; the rest:
// with the key the lease was claimed with), it came from that owner, it is
// for this peer, and for this peer's present life.
func TestApplyRefusesForgeries(t *testing.T) {
	claimReq := Request{Op: OpClaim, Subcloud: "x", Token: tokA, For: time.Hour}
	for _, c := range []struct {
		name string
		req  func() (Request, string) // the request and the peer it comes from
		want error
	}{
		{"signed by its owner", func() (Request, string) { return signed("o", "p", claimReq), "o" }, nil},
		{"in another's name, signed by the sender", func() (Request, string) {
			r := signed("liar", "p", claimReq)
			r.Owner = "o" // the signature no longer matches o's key
			return r, "liar"
		}, ErrForged},
		{"another's name, relayed by the sender", func() (Request, string) { return signed("o", "p", claimReq), "liar" }, ErrForged},
		{"altered after signing", func() (Request, string) {
			r := signed("o", "p", claimReq)
			r.For = 30 * 24 * time.Hour
			return r, "o"
		}, ErrForged},
		{"unsigned", func() (Request, string) {
			r := signed("o", "p", claimReq)
			r.Sig = nil
			return r, "o"
		}, ErrForged},
		{"for another peer", func() (Request, string) { return signed("o", "q", claimReq), "o" }, ErrBadClaim},
		{"for an earlier life of the peer", func() (Request, string) {
			r := claimReq
			r.Owner, r.Target, r.Boot = "o", "p", 7
			r.Sign(keyOf("o"))
			return r, "o"
		}, ErrIncarnation},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tb Table
			req, from := c.req()
			rep := tb.Apply(t0, self("p"), from, req, func(*Table) error { return nil })
			if err := rep.Err(); !errors.Is(err, c.want) && !(err == nil && c.want == nil) {
				t.Fatalf("%v, want %v", err, c.want)
			}
			if _, held := tb.Current(t0); held != (c.want == nil) {
				t.Errorf("held %v", held)
			}
			if errors.Is(c.want, ErrIncarnation) && rep.Boot != 1 {
				t.Errorf("the refusal gives incarnation %d, want the present one (1)", rep.Boot)
			}
		})
	}
	// A held lease: only its owner's key renews, releases or checks it,
	// even with the token (which a member that was asked to relay, or a
	// former owner's leak, could know).
	var tb Table
	if rep := apply(&tb, "o", "p", claimReq, nil); !rep.OK {
		t.Fatal(rep.Err())
	}
	for _, op := range []Op{OpRenew, OpCheck, OpRelease} {
		r := Request{Op: op, Subcloud: "x", Token: tokA, For: time.Hour}
		if rep := apply(&tb, "liar", "p", r, nil); !errors.Is(rep.Err(), ErrForged) {
			t.Errorf("%v by another identity with the token: %v", op, rep.Err())
		}
	}
	if l, ok := tb.Current(t0); !ok || l.Owner != "o" || l.OwnerKey != keyOf("o").Public() {
		t.Errorf("lease %+v %v after the forgeries", l, ok)
	}
	if rep := apply(&tb, "o", "p", Request{Op: OpRelease, Subcloud: "x", Token: tokA}, nil); !rep.OK {
		t.Errorf("release by its owner: %v", rep.Err())
	}
}

// A release frees the peer even when its disk cannot record it (the reply
// says so); a claim that cannot be recorded is refused and leaves nothing.
func TestReleaseWithoutDisk(t *testing.T) {
	var tb Table
	apply(&tb, "o", "p", Request{Op: OpClaim, Subcloud: "x", Token: tokA, For: time.Hour}, nil)
	broken := func(*Table) error { return errors.New("read-only file system") }
	rep := apply(&tb, "o", "p", Request{Op: OpRelease, Subcloud: "x", Token: tokA}, broken)
	if !rep.OK || !rep.Volatile {
		t.Fatalf("release on a read-only disk: %+v", rep)
	}
	if _, held := tb.Current(t0); held {
		t.Error("still held after the release")
	}
	if rep := apply(&tb, "o", "p", Request{Op: OpClaim, Subcloud: "y", Token: tokB, For: time.Hour}, broken); rep.OK || !errors.Is(rep.Err(), ErrStorage) {
		t.Errorf("claim on a read-only disk: %+v", rep)
	}
}

// Keepers: the same for everyone who sees the same members, odd, at most
// KeeperCount, and spread: over many names every member keeps some.
func TestKeepers(t *testing.T) {
	var ms []string
	for i := 0; i < 40; i++ {
		ms = append(ms, fmt.Sprintf("peer-%03d", i))
	}
	for n, want := range map[int]int{0: 0, 1: 1, 2: 1, 3: 3, 4: 3, 5: 5, 40: 5} {
		if got := len(Keepers("x", ms[:n])); got != want {
			t.Errorf("%d members: %d keepers, want %d", n, got, want)
		}
	}
	reversed := make([]string, len(ms))
	for i, m := range ms {
		reversed[len(ms)-1-i] = m
	}
	if a, b := Keepers("analytics", ms), Keepers("analytics", reversed); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("order of the member list changed the keepers: %v vs %v", a, b)
	}
	load := map[string]int{}
	for i := 0; i < 2000; i++ {
		for _, k := range Keepers(fmt.Sprint("name-", i), ms) {
			load[k]++
		}
	}
	for _, m := range ms {
		if load[m] < 150 || load[m] > 350 { // 250 expected
			t.Errorf("%s keeps %d of 2000 names' keeper places (expected ~250)", m, load[m])
		}
	}
}

// A keeper grants a name to one owner's key at a time: a second owner is
// told who holds it; the holder renews it (keeping its registration time)
// and releases it; a stranger cannot release it; an expired name is free.
func TestNames(t *testing.T) {
	var nt Names
	ok := func(*Names) error { return nil }
	name := func(owner string, op Op, now time.Time) Reply {
		return nt.Apply(now, self("k"), owner, signed(owner, "k", Request{Op: op, Subcloud: "x", For: time.Hour}), ok)
	}
	if rep := name("a", OpName, t0); !rep.OK || rep.Since != t0.UnixNano() {
		t.Fatalf("first registration: %+v", rep)
	}
	if rep := name("b", OpName, t0); rep.OK || rep.Holder != "a" || !errors.Is(rep.Err(), ErrHeld) {
		t.Errorf("second owner: %+v", rep)
	}
	if rep := name("a", OpName, t0.Add(30*time.Minute)); !rep.OK || rep.Since != t0.UnixNano() ||
		rep.Expires != t0.Add(90*time.Minute).UnixNano() {
		t.Errorf("renewal: %+v", rep)
	}
	who := nt.Apply(t0, self("k"), "anyone", Request{Op: OpWho, Subcloud: "x"}, ok)
	if !who.OK || who.Holder != "a" || string(who.OwnerKey) != string(keyOf("a").Public().Bytes()) {
		t.Errorf("who: %+v", who)
	}
	if rep := name("b", OpNameRelease, t0); !errors.Is(rep.Err(), ErrForged) {
		t.Errorf("release by a stranger: %+v", rep)
	}
	// A registration in a's name by b is refused.
	forged := signed("b", "k", Request{Op: OpName, Subcloud: "y", For: time.Hour})
	forged.Owner = "a"
	if rep := nt.Apply(t0, self("k"), "b", forged, ok); !errors.Is(rep.Err(), ErrForged) {
		t.Errorf("a name registered in another's name: %+v", rep)
	}
	if rep := name("a", OpNameRelease, t0); !rep.OK {
		t.Errorf("release: %+v", rep)
	}
	if rep := name("b", OpName, t0); !rep.OK {
		t.Errorf("after the release: %+v", rep)
	}
	if rep := name("a", OpName, t0.Add(2*time.Hour)); !rep.OK {
		t.Errorf("after b's registration expired: %+v", rep)
	}
	b, err := nt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalNames(b)
	if err != nil {
		t.Fatal(err)
	}
	if r, live := back.Who(t0.Add(2*time.Hour), "x"); !live || r.Owner != "a" {
		t.Errorf("restored: %+v %v", r, live)
	}
}

func FuzzUnmarshalNames(f *testing.F) {
	var nt Names
	nt.Apply(t0, self("k"), "a", signed("a", "k", Request{Op: OpName, Subcloud: "x", For: time.Hour}), func(*Names) error { return nil })
	b, _ := nt.Marshal()
	f.Add(b)
	f.Add([]byte(`{"version":1,"names":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		nt, err := UnmarshalNames(b)
		if err != nil {
			return
		}
		if _, err := nt.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}

// An owner's account round-trips, and whatever decodes is bounded.
func FuzzDecodeInfo(f *testing.F) {
	f.Add(Info{Subcloud: "x", Owner: "o", Target: 3, Repairs: 1, Expiry: time.Minute, PeerHours: 1.5, Members: []string{"a", "b"}}.Encode())
	f.Add(Reply{Refusal: RefusedNoLease}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		i, err := DecodeInfo(b)
		if err != nil {
			return
		}
		if i.Subcloud == "" || len(i.Members) > 4096 || i.Target < 0 || i.PeerHours < 0 {
			t.Fatalf("accepted %+v", i)
		}
		if again, err := DecodeInfo(i.Encode()); err != nil || fmt.Sprint(again) != fmt.Sprint(i) {
			t.Fatalf("%+v re-decodes as %+v, %v", i, again, err)
		}
	})
}

func TestDecodeInfo(t *testing.T) {
	in := Info{Subcloud: "x", Owner: "o", Target: 3, Members: []string{"a", "b"}}
	if got, err := DecodeInfo(in.Encode()); err != nil || fmt.Sprint(got) != fmt.Sprint(in) {
		t.Fatalf("%+v %v", got, err)
	}
	for name, bad := range map[string]Info{
		"no name":          {Owner: "o"},
		"negative target":  {Subcloud: "x", Target: -1},
		"empty member":     {Subcloud: "x", Members: []string{""}},
		"negative expiry":  {Subcloud: "x", Expiry: -time.Second},
		"negative account": {Subcloud: "x", PeerHours: -1},
	} {
		if _, err := DecodeInfo(bad.Encode()); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
