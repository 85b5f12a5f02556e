package subcloud

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

func claim(name, owner, token string) Claim {
	return Claim{Subcloud: name, Owner: owner, Token: token, For: time.Hour}
}

const tokA, tokB = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func TestLeaseLifecycle(t *testing.T) {
	var tb Table
	l, err := tb.Claim(t0, claim("analytics", "owner-1", tokA))
	if err != nil || l.Expires != t0.Add(time.Hour) || l.Owner != "owner-1" {
		t.Fatalf("claim: %+v %v", l, err)
	}
	// The same claim again (a retry) gets the same lease back.
	if again, err := tb.Claim(t0.Add(time.Minute), claim("analytics", "owner-1", tokA)); err != nil || again != l {
		t.Errorf("retry: %+v %v", again, err)
	}
	// Anyone else is refused while it lives.
	if _, err := tb.Claim(t0.Add(time.Minute), claim("batch", "owner-2", tokB)); !errors.Is(err, ErrHeld) {
		t.Errorf("second owner: %v", err)
	}
	if _, err := tb.Claim(t0.Add(time.Minute), claim("analytics", "owner-2", tokB)); !errors.Is(err, ErrHeld) {
		t.Errorf("same name, other token: %v", err)
	}
	// Renew and release need the token.
	if _, err := tb.Renew(t0.Add(30*time.Minute), "analytics", tokB, time.Hour); !errors.Is(err, ErrToken) {
		t.Errorf("renew with a wrong token: %v", err)
	}
	if err := tb.Release(t0.Add(30*time.Minute), "analytics", tokB); !errors.Is(err, ErrToken) {
		t.Errorf("release with a wrong token: %v", err)
	}
	if l, err := tb.Renew(t0.Add(30*time.Minute), "analytics", tokA, time.Hour); err != nil || l.Expires != t0.Add(90*time.Minute) {
		t.Errorf("renew: %+v %v", l, err)
	}
	// Expiry frees the peer: the next claim wins, the old token is gone.
	late := t0.Add(91 * time.Minute)
	if _, ok := tb.Current(late); ok {
		t.Error("an expired lease is still current")
	}
	if _, err := tb.Renew(late, "analytics", tokA, time.Hour); !errors.Is(err, ErrNoLease) {
		t.Errorf("renew after expiry: %v", err)
	}
	if _, err := tb.Claim(late, claim("batch", "owner-2", tokB)); err != nil {
		t.Errorf("claim after expiry: %v", err)
	}
	if err := tb.Release(late, "batch", tokB); err != nil {
		t.Errorf("release: %v", err)
	}
	if _, ok := tb.Current(late); ok {
		t.Error("released, still held")
	}
}

func TestBadClaims(t *testing.T) {
	var tb Table
	for name, c := range map[string]Claim{
		"no name":     claim("", "o", tokA),
		"no owner":    claim("x", "", tokA),
		"short token": claim("x", "o", "short"),
		"short lease": {Subcloud: "x", Owner: "o", Token: tokA, For: time.Second},
		"long lease":  {Subcloud: "x", Owner: "o", Token: tokA, For: 60 * 24 * time.Hour},
	} {
		if _, err := tb.Claim(t0, c); !errors.Is(err, ErrBadClaim) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Many owners claiming, renewing and releasing one peer at random times: the
// Table agrees at every step with a deliberately simple model of who holds
// the peer until when, so at most one owner ever holds it.
func TestRaceProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tokens := []string{tokA, tokB, "cccccccccccccccccccccccccccccccc"}
	for trial := 0; trial < 300; trial++ {
		var tb Table
		holder, until := -1, time.Time{} // the model
		now := t0
		for step := 0; step < 60; step++ {
			now = now.Add(time.Duration(r.IntN(40)) * time.Minute)
			if holder >= 0 && !now.Before(until) {
				holder = -1 // expired
			}
			i := r.IntN(len(tokens))
			name := string(rune('a' + i))
			switch r.IntN(3) {
			case 0:
				_, err := tb.Claim(now, claim(name, name, tokens[i]))
				if want := holder < 0 || holder == i; (err == nil) != want {
					t.Fatalf("trial %d step %d: claim by %d: %v (model holder %d)", trial, step, i, err, holder)
				}
				if holder < 0 {
					holder, until = i, now.Add(time.Hour)
				}
			case 1:
				_, err := tb.Renew(now, name, tokens[i], time.Hour)
				if (err == nil) != (holder == i) {
					t.Fatalf("trial %d step %d: renew by %d: %v (model holder %d)", trial, step, i, err, holder)
				}
				if holder == i {
					until = now.Add(time.Hour)
				}
			case 2:
				err := tb.Release(now, name, tokens[i])
				if (err == nil) != (holder == i) {
					t.Fatalf("trial %d step %d: release by %d: %v (model holder %d)", trial, step, i, err, holder)
				}
				if holder == i {
					holder = -1
				}
			}
			l, ok := tb.Current(now)
			if ok != (holder >= 0) || ok && (l.Token != tokens[holder] || l.Expires != until) {
				t.Fatalf("trial %d step %d: table %+v %v, model holder %d until %v", trial, step, l, ok, holder, until)
			}
		}
	}
}

func TestMarshal(t *testing.T) {
	var tb Table
	tb.Claim(t0, claim("analytics", "o", tokA))
	b, err := tb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := back.Current(t0.Add(time.Minute)); !ok || l.Subcloud != "analytics" || l.Token != tokA {
		t.Errorf("restored %+v %v", l, ok)
	}
	empty, _ := (&Table{}).Marshal()
	if tb2, err := Unmarshal(empty); err != nil || tb2.lease != nil {
		t.Errorf("empty table: %v", err)
	}
	for _, bad := range []string{"{", `{"subcloud":""}`, `[1]`} {
		if _, err := Unmarshal([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// FuzzUnmarshal: a lease table read back from disk never panics, and what
// is accepted marshals again.
func FuzzUnmarshal(f *testing.F) {
	var tb Table
	tb.Claim(t0, claim("analytics", "o", tokA))
	b, _ := tb.Marshal()
	f.Add(b)
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := Unmarshal(b)
		if err != nil {
			return
		}
		tb.Current(t0)
		if _, err := tb.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}

// A check says whether the token holds the lease, and changes nothing:
// nothing is persisted. A claim carries the subcloud's creation time.
func TestApplyCheckAndSince(t *testing.T) {
	var tb Table
	persisted := 0
	persist := func(*Table) error { persisted++; return nil }
	since := t0.Add(-time.Hour)
	rep := apply(&tb, "o", "p", Request{Op: OpClaim, Subcloud: "a", Token: tokA, For: time.Minute, Since: since.UnixNano()}, persist)
	if !rep.OK || persisted != 1 {
		t.Fatalf("claim: %+v, persisted %d", rep, persisted)
	}
	if l, _ := tb.Current(t0); !l.Since.Equal(since) || !l.Granted.Equal(t0) {
		t.Errorf("since %v granted %v", l.Since, l.Granted)
	}
	for _, c := range []struct {
		req  Request
		want error
	}{
		{Request{Op: OpCheck, Subcloud: "a", Token: tokA}, nil},
		{Request{Op: OpCheck, Subcloud: "a", Token: tokB}, ErrToken},
		{Request{Op: OpCheck, Subcloud: "b", Token: tokA}, ErrNoLease},
	} {
		rep := applyAt(&tb, t0.Add(time.Second), "o", "p", c.req, persist)
		if err := rep.Err(); !errors.Is(err, c.want) && !(err == nil && c.want == nil) {
			t.Errorf("%+v: %v, want %v", c.req, err, c.want)
		}
		if c.want == nil && rep.Expires != t0.Add(time.Minute).UnixNano() {
			t.Errorf("check: expires %d", rep.Expires)
		}
	}
	if persisted != 1 {
		t.Errorf("checks persisted %d times", persisted-1)
	}
	if rep := applyAt(&tb, t0.Add(2*time.Minute), "o", "p", Request{Op: OpCheck, Subcloud: "a", Token: tokA}, persist); !errors.Is(rep.Err(), ErrNoLease) {
		t.Errorf("check after expiry: %+v", rep)
	}
}
