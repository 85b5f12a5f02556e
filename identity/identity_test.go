package identity

import (
	"errors"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/internal/durable/crashfs"
)

func seeded(b byte) *rand.ChaCha8 { return rand.NewChaCha8([32]byte{b}) }

// A signature verifies only under its key, for its domain, over its
// message.
func TestSignVerify(t *testing.T) {
	a, _ := New(seeded(1))
	b, _ := New(seeded(2))
	msg := []byte("claim peer-3 for analytics")
	sig := a.Sign(DomainLease, msg)
	for _, c := range []struct {
		name   string
		pub    Public
		domain string
		msg    []byte
		sig    []byte
		want   bool
	}{
		{"good", a.Public(), DomainLease, msg, sig, true},
		{"another key", b.Public(), DomainLease, msg, sig, false},
		{"another domain", a.Public(), DomainOwner, msg, sig, false},
		{"another message", a.Public(), DomainLease, []byte("claim peer-4 for analytics"), sig, false},
		{"no key", Public{}, DomainLease, msg, sig, false},
		{"short signature", a.Public(), DomainLease, msg, sig[:10], false},
	} {
		if got := Verify(c.pub, c.domain, c.msg, c.sig); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// Two peers compute the same pair key; a third computes another; a key
// that is not a point of the curve, or of small order, is refused.
func TestPair(t *testing.T) {
	a, _ := New(seeded(1))
	b, _ := New(seeded(2))
	c, _ := New(seeded(3))
	ab, err1 := a.Pair(b.Public())
	ba, err2 := b.Pair(a.Public())
	ac, err3 := a.Pair(c.Public())
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	if ab != ba {
		t.Error("a and b do not agree on their key")
	}
	if ab == ac {
		t.Error("a shares the same key with b and c")
	}
	var small Public // the identity point's encoding: of order 1
	small[0] = 1
	if _, err := a.Pair(small); err == nil {
		t.Error("a small-order key was accepted")
	}
	// A y whose x² is not a square: no point of the curve.
	off := 0
	for y := byte(2); y < 255; y++ {
		var p Public
		p[0] = y
		if _, err := a.Pair(p); err != nil {
			off++
		}
	}
	if off == 0 {
		t.Error("no encoding off the curve was refused")
	}
}

// The key is made once and kept across restarts, 0600; each start is a new
// incarnation; a key file that cannot be read is an error, never a new
// identity; a disk that cannot store a new key gives one that lasts the
// process, and says so.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	k1, note, err := Open(durable.OS(), dir, seeded(1))
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	k2, _, err := Open(durable.OS(), dir, seeded(2))
	if err != nil {
		t.Fatal(err)
	}
	if k1.Public() != k2.Public() || k1.Boot() == k2.Boot() {
		t.Errorf("restart: key %v → %v, boot %x → %x; want the same key, a new boot", k1.Public().Short(), k2.Public().Short(), k1.Boot(), k2.Boot())
	}
	if p, err := ParsePublic(k1.Public().String()); err != nil || p != k1.Public() || len(k1.Public().String()) != 43 {
		t.Errorf("ParsePublic(String): %v %v", p, err)
	}

	fs := crashfs.New()
	fs.Put("/d/"+File, []byte(`{"version": 1, "seed": "short"}`))
	if _, _, err := Open(fs, "/d", seeded(1)); err == nil || !strings.Contains(err.Error(), "mv ") {
		t.Errorf("a corrupt key file: %v", err)
	}
	ro := crashfs.New()
	ro.SetReadOnly(true)
	k, _, err := Open(ro, "/d", seeded(1))
	if !errors.Is(err, ErrEphemeral) || !errors.Is(err, syscall.EROFS) || k == nil {
		t.Errorf("a read-only disk: %v %v", k, err)
	}
	r1, _ := k.Reborn(seeded(9))
	if r1.Public() != k.Public() || r1.Boot() == k.Boot() {
		t.Error("Reborn changed the key, or kept the incarnation")
	}
}

func FuzzParsePublic(f *testing.F) {
	k, _ := New(seeded(1))
	f.Add(k.Public().String())
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublic(s)
		if err == nil && p.String() != s {
			t.Fatalf("%q parsed as %v", s, p)
		}
	})
}
