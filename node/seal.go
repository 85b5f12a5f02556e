package node

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/run"
)

// sealer is the runtime's run.Sealer: this peer's identity signs the
// records it gives a query (its top-k entry), and a record another peer
// sends counts only if the node it names signed it, with the key the
// membership pinned for that node (network.Member.Key). A peer can then
// lie about itself only: an entry written, altered or replayed for
// another node is refused, and counted (Stats.ForgedRecords).
//
// Each signature is verified once by the cache the peer is given
// (Config.Verified): an entry travels to every peer and reaches each
// several times. A real agent is one peer with its own cache: ~100
// verifications (64 µs each on the 2-core machine, BenchmarkSealer) for a
// top-50 over 200 peers. The embedded cluster's peers share one: 200
// peers each verifying every entry made a top-50 over 200 of them on 2
// cores 4× slower (1.1 s against 0.26 s), a cost that 200 real machines
// pay one two-hundredth each.
type sealer struct {
	id       *identity.Key
	net      Membership
	verified *SignatureCache

	// off, when set and true, makes it sign nothing and take every
	// signature: the runtime's undefended switch, which only the cluster
	// benchmark's A/B sets (bench_test.go).
	off *atomic.Bool

	forged atomic.Int64
	// verifies counts the signatures this peer checked itself (not
	// found in the cache).
	verifies atomic.Int64
}

// SignatureCache remembers signatures found good, by the signature,
// with the node and message it was found good for: a signature counts as
// verified again only for exactly those bytes (an ed25519 signature is
// deterministic, so a record sent again carries the same one). Up to
// maxVerified signatures and maxVerifiedBytes of what they sign; past
// either, it forgets them all (a query's entries are checked again,
// once). It is safe for concurrent use.
//
// It was keyed by a SHA-256 of (node, message, signature), which every
// lookup had to compute: a record found again took 250 ns, now 34–40 ns
// (BenchmarkSealer/verified-before, a 120-byte message), and the check is
// exact rather than up to a hash.
type SignatureCache struct {
	mu    sync.RWMutex
	m     map[[identity.SignatureSize]byte]signed // signature → what it was found good for
	bytes int                                     // of the nodes and messages in m
}

// signed is the node and message a signature was found good for.
type signed struct{ node, msg string }

// NewSignatureCache returns an empty cache.
func NewSignatureCache() *SignatureCache {
	return &SignatureCache{m: map[[identity.SignatureSize]byte]signed{}}
}

// has reports whether sig was found good as node's signature over msg.
func (c *SignatureCache) has(node string, msg, sig []byte) bool {
	if len(sig) != identity.SignatureSize {
		return false
	}
	c.mu.RLock()
	v, ok := c.m[[identity.SignatureSize]byte(sig)]
	c.mu.RUnlock()
	return ok && v.node == node && v.msg == string(msg)
}

func (c *SignatureCache) add(node string, msg, sig []byte) {
	if len(sig) != identity.SignatureSize {
		return
	}
	v := signed{node, string(msg)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxVerified || c.bytes+len(v.node)+len(v.msg) > maxVerifiedBytes {
		clear(c.m)
		c.bytes = 0
	}
	c.bytes += len(v.node) + len(v.msg)
	c.m[[identity.SignatureSize]byte(sig)] = v
}

// sealDomain separates these signatures from the peer's others (leases).
const sealDomain = "peerq record v1"

// maxVerified bounds the signatures a cache remembers, and
// maxVerifiedBytes the nodes and messages it keeps with them (a record
// is a few hundred bytes; a member may sign larger ones of itself, within
// the catalog's bounds). A top-50 over 200 peers verifies a few hundred
// distinct signatures.
const (
	maxVerified      = 1 << 14
	maxVerifiedBytes = 8 << 20
)

func newSealer(id *identity.Key, net Membership, verified *SignatureCache) *sealer {
	if verified == nil {
		verified = NewSignatureCache()
	}
	return &sealer{id: id, net: net, verified: verified}
}

// Sign is this peer's signature over msg, as node: nil for another node
// (a peer signs only what it says about itself).
func (s *sealer) Sign(node string, msg []byte) []byte {
	if node != s.net.Name() || s.off != nil && s.off.Load() {
		return nil
	}
	return s.id.Sign(sealDomain, msg)
}

// Verify says whether sig is node's signature over msg: nil, or an error
// wrapping run.ErrForged — no signature, a node the membership does not
// show with a key, or another key's.
func (s *sealer) Verify(node string, msg, sig []byte) error {
	if s.off != nil && s.off.Load() {
		return nil
	}
	if s.verified.has(node, msg, sig) {
		return nil
	}
	s.verifies.Add(1)
	why := ""
	switch m, live := s.net.Member(node); {
	case len(sig) == 0:
		why = "unsigned"
	case !live || m.Key.IsZero():
		why = "no key is known for it"
	case !identity.Verify(m.Key, sealDomain, msg, sig):
		why = "its signature does not match its key"
	}
	if why != "" {
		s.forged.Add(1)
		return fmt.Errorf("%w: %s (%s)", run.ErrForged, node, why)
	}
	s.verified.add(node, msg, sig)
	return nil
}
