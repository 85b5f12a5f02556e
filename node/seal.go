package node

import (
	"crypto/sha256"
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
// another node is refused, and counted (Stats.ForgedRecords). Each
// signature is verified once per peer: an entry travels to every peer,
// and reaches each several times.
type sealer struct {
	id  *identity.Key
	net Membership

	mu       sync.Mutex
	verified map[[sha256.Size]byte]struct{}
	forged   atomic.Int64
}

// sealDomain separates these signatures from the peer's others (leases).
const sealDomain = "peerq record v1"

// maxVerified bounds the signatures a sealer remembers: past it, it
// forgets them all (a query's entries are verified again, once).
const maxVerified = 1 << 14

func newSealer(id *identity.Key, net Membership) *sealer {
	return &sealer{id: id, net: net, verified: map[[sha256.Size]byte]struct{}{}}
}

// Sign is this peer's signature over msg, as node: nil for another node
// (a peer signs only what it says about itself).
func (s *sealer) Sign(node string, msg []byte) []byte {
	if node != s.net.Name() {
		return nil
	}
	return s.id.Sign(sealDomain, msg)
}

// Verify says whether sig is node's signature over msg: nil, or an error
// wrapping run.ErrForged — no signature, a node the membership does not
// show with a key, or another key's.
func (s *sealer) Verify(node string, msg, sig []byte) error {
	h := sha256.New()
	for _, f := range [][]byte{[]byte(node), {0}, msg, sig} {
		h.Write(f)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	s.mu.Lock()
	_, ok := s.verified[sum]
	s.mu.Unlock()
	if ok {
		return nil
	}
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
	s.mu.Lock()
	if len(s.verified) >= maxVerified {
		clear(s.verified)
	}
	s.verified[sum] = struct{}{}
	s.mu.Unlock()
	return nil
}
