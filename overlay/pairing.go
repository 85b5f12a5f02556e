package overlay

import (
	"crypto/cipher"
	"fmt"
	"sync"
	"time"

	"github.com/peerq/peerq/identity"
)

// maxPairs bounds the pair keys a peer keeps; beyond, the cache starts
// anew (a key is one X25519 and one HKDF to compute again, ~60 µs).
const maxPairs = 8192

// pairing seals exchange bodies with the key this peer shares with each
// other peer (identity.Key.Pair), the other's public key taken from the
// membership, never from the frame.
type pairing struct {
	self  *identity.Key
	keyOf func(name string) (identity.Public, bool)

	mu    sync.Mutex
	byKey map[identity.Public]cipher.AEAD
}

func (p *pairing) aead(name string) (cipher.AEAD, error) {
	pub, ok := p.keyOf(name)
	if !ok {
		return nil, fmt.Errorf("no identity known for %q (not a member, or one without a key)", name)
	}
	p.mu.Lock()
	a, ok := p.byKey[pub]
	p.mu.Unlock()
	if ok {
		return a, nil
	}
	k, err := p.self.Pair(pub)
	if err != nil {
		return nil, err
	}
	if a, err = newAEAD(k[:]); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.byKey == nil || len(p.byKey) >= maxPairs {
		p.byKey = map[identity.Public]cipher.AEAD{}
	}
	p.byKey[pub] = a
	p.mu.Unlock()
	return a, nil
}

// clockBook is what this peer learned of the others' clocks: the offset
// of each (its clock minus this one's) from the last exchange with it.
type clockBook struct {
	mu     sync.Mutex
	offset map[string]clockReading
	logged map[string]time.Time
}

type clockReading struct {
	off time.Duration
	at  time.Time
}

// maxClocks bounds the peers whose clock is remembered.
const maxClocks = 1 << 16

func (b *clockBook) note(peer string, off time.Duration, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.offset == nil || len(b.offset) >= maxClocks {
		b.offset = map[string]clockReading{}
	}
	b.offset[peer] = clockReading{off, now}
}

// shouldLog says whether a skew with peer is worth a log line now: one a
// minute a peer.
func (b *clockBook) shouldLog(peer string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.logged == nil || len(b.logged) >= maxClocks {
		b.logged = map[string]time.Time{}
	}
	if last, ok := b.logged[peer]; ok && now.Sub(last) < time.Minute {
		return false
	}
	b.logged[peer] = now
	return true
}

// offsets are the peers' clock offsets read within the last maxAge.
func (b *clockBook) offsets(now time.Time, maxAge time.Duration) map[string]time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]time.Duration, len(b.offset))
	for p, r := range b.offset {
		if now.Sub(r.at) <= maxAge {
			out[p] = r.off
		}
	}
	return out
}
