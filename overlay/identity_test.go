package overlay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/node/network"
)

// seededKey is a key from a seeded source: tests are repeatable.
func seededKey(t testing.TB, seed uint64) *identity.Key {
	k, err := identity.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Exchanges between identities: a member's exchanges are sealed with the
// key it shares with the other end, so one that speaks in another's name
// (holding the cluster key, not the other's identity) is refused; a
// sender the membership does not know is refused; a request whose clock
// is off by more than the replay window is answered with a skew frame,
// not silence, and the caller gets a network.SkewError with the offset.
func TestTCPExchangeIdentity(t *testing.T) {
	const key = "0123456789abcdef"
	keys := map[string]*identity.Key{"srv": seededKey(t, 1), "good": seededKey(t, 2), "liar": seededKey(t, 3)}
	// Everybody's view of the membership: the liar is a member under its
	// own name; "good" is pinned to good's key.
	keyOf := func(name string) (identity.Public, bool) {
		k, ok := keys[name]
		if !ok {
			return identity.Public{}, false
		}
		return k.Public(), true
	}
	node := func(name string, self *identity.Key) *tcpExchange {
		ex, err := newTCPExchange(name, "127.0.0.1:0", "", keyring(t, key), &pairing{self: self, keyOf: keyOf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ex.Close() })
		return ex
	}
	srv := node("srv", keys["srv"])
	srv.Serve(func(from string, req []byte) ([]byte, error) { return append([]byte(from+":"), req...), nil })

	good := node("good", keys["good"])
	if resp, err := good.Call(ctxSecond(t), "srv", srv.Addr(), []byte("hi")); err != nil || string(resp) != "good:hi" {
		t.Fatalf("good: %q %v", resp, err)
	}
	// The liar holds the cluster key and says it is "good".
	impostor := node("good", keys["liar"])
	if _, err := impostor.Call(ctxSecond(t), "srv", srv.Addr(), []byte("claim")); err == nil {
		t.Error("a member speaking in another's name was answered")
	}
	// A sender the membership does not know.
	stranger := node("stranger", seededKey(t, 4))
	if _, err := stranger.Call(ctxSecond(t), "srv", srv.Addr(), []byte("x")); err == nil {
		t.Error("a sender without a known identity was answered")
	}
	waitFor(t, func() bool { r, _, _, _ := srv.stats(); return r == 2 })
	// The liar under its own name is answered: identities say who, not
	// whether to trust what is said.
	liar := node("liar", keys["liar"])
	if resp, err := liar.Call(ctxSecond(t), "srv", srv.Addr(), []byte("x")); err != nil || string(resp) != "liar:x" {
		t.Errorf("liar under its own name: %q %v", resp, err)
	}
	// An answer must come from the peer called: good calls "liar"'s
	// address believing it is srv.
	if _, err := good.Call(ctxSecond(t), "srv", liar.Addr(), []byte("x")); err == nil {
		t.Error("an answer from another identity than the one called was taken")
	}

	// Clock skew: good's clock runs 60 s ahead.
	var logged, callerLogged []string
	srv.logf = func(format string, args ...any) { logged = append(logged, format) }
	good.logf = func(format string, args ...any) { callerLogged = append(callerLogged, fmt.Sprintf(format, args...)) }
	good.clock = func() time.Time { return time.Now().Add(time.Minute) }
	_, err := good.Call(ctxSecond(t), "srv", srv.Addr(), []byte("late"))
	var skew *network.SkewError
	if !errors.As(err, &skew) || !errors.Is(err, network.ErrSkew) {
		t.Fatalf("skewed request: %v, want a SkewError", err)
	}
	if off := skew.Offset; off > -55*time.Second || off < -65*time.Second {
		t.Errorf("offset %v, want about -60s (srv's clock minus good's)", off)
	}
	if _, _, _, skewed := srv.stats(); skewed != 1 {
		t.Errorf("srv counted %d skewed requests, want 1", skewed)
	}
	if len(logged) != 1 {
		t.Errorf("srv logged %d lines about the skew, want 1", len(logged))
	}
	// The caller says so too, naming the peer that refused and the offset.
	if len(callerLogged) != 1 || !strings.Contains(callerLogged[0], "srv refused an exchange") || !strings.Contains(callerLogged[0], "-60 s") {
		t.Errorf("the caller logged %q, want one line naming srv and -60 s", callerLogged)
	}
	good.logf = nil
	// Back in time: answered again on the same connection.
	good.clock = time.Now
	if resp, err := good.Call(ctxSecond(t), "srv", srv.Addr(), []byte("again")); err != nil || string(resp) != "good:again" {
		t.Errorf("after the clock was set right: %q %v", resp, err)
	}
	if off, ok := good.clocks.offsets(time.Now(), time.Minute)["srv"]; !ok || off > 2*time.Second || off < -2*time.Second {
		t.Errorf("good's reading of srv's clock: %v %v, want about 0", off, ok)
	}
}

// The identity tag carries the key and the incarnation; anything else in
// it reads as no identity, never as half of one.
func TestIdentityTag(t *testing.T) {
	k := seededKey(t, 9).Public()
	tag := identityTag(k, 0xbeef)
	if key, boot := parseIdentityTag(tag); key != k || boot != 0xbeef {
		t.Errorf("%q read as %v, %x", tag, key, boot)
	}
	for _, v := range []string{"", k.String(), k.String() + ".", k.String() + ".xyz", "." + "beef",
		k.String()[1:] + ".beef", k.String() + ".beef.1", k.String() + "." + strings.Repeat("f", 17)} {
		if key, boot := parseIdentityTag(v); !key.IsZero() || boot != 0 {
			t.Errorf("%q read as %v, %x: want no identity", v, key, boot)
		}
	}
}
