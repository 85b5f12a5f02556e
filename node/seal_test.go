package node

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/run"
)

// sealPair is a signer and a peer that checks its signatures, over a
// fake network that shows the signer's key.
func sealPair(tb testing.TB) (signer, checker *sealer) {
	tb.Helper()
	net := fakenet.New(fakenet.DefaultConfig())
	a, b := net.Add("a", nil), net.Add("b", nil)
	ka, err := identity.New(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := identity.New(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	a.SetIdentity(ka.Public(), ka.Boot())
	b.SetIdentity(kb.Public(), kb.Boot())
	return newSealer(ka, a, nil), newSealer(kb, b, nil)
}

// A sealer accepts its members' signatures (once verified, from its
// cache), and refuses and counts any other: none, another's, over another
// message, for a name without a key.
func TestSealer(t *testing.T) {
	a, b := sealPair(t)
	msg := []byte("entry")
	sig := a.Sign("a", msg)
	for i := 0; i < 2; i++ { // the second from the cache
		if err := b.Verify("a", msg, sig); err != nil {
			t.Fatalf("a's own signature: %v", err)
		}
	}
	if n := b.verifies.Load(); n != 1 {
		t.Fatalf("a signature checked twice was verified %d times, want 1 (the second from the cache)", n)
	}
	for name, c := range map[string]struct {
		node     string
		msg, sig []byte
	}{
		"unsigned":           {"a", msg, nil},
		"another's":          {"a", msg, b.Sign("b", msg)},
		"another message":    {"a", []byte("other"), sig},
		"a node without key": {"ghost", msg, sig},
	} {
		if err := b.Verify(c.node, c.msg, c.sig); !errors.Is(err, run.ErrForged) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if a.Sign("b", msg) != nil {
		t.Error("a signs as b")
	}
	if got := b.forged.Load(); got != 4 {
		t.Errorf("forged counted %d, want 4", got)
	}
}

// What sealing costs a peer: a signature for its own entry per query, a
// verification per entry another peer sends that enters its list (first
// time), a cache lookup for each one seen again.
//
//	go test ./node -run '^$' -bench BenchmarkSealer
func BenchmarkSealer(b *testing.B) {
	signer, checker := sealPair(b)
	msg := make([]byte, 120) // a top-k entry's EntryMessage is ~60-200 bytes
	sig := signer.Sign("a", msg)
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			signer.Sign("a", msg)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			checker.verified = NewSignatureCache()
			if err := checker.Verify("a", msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verified-before", func(b *testing.B) {
		for b.Loop() {
			if err := checker.Verify("a", msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
