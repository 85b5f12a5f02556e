package peertest

import (
	"math/rand/v2"

	"github.com/peerq/peerq/peer"
)

// Core is what the network drives: a protocol core's raft-like surface.
type Core[M any] interface {
	Tick()
	Step(from peer.ID, m M)
	Outbox() []peer.Envelope[M]
}

// Network is a round-based network of cores exchanging messages of type M.
// Peer i is the i-th core added. It is not safe for concurrent use.
type Network[M any] struct {
	Nodes []Core[M]
	Alive []bool
	// Loss is the probability that a message is lost.
	Loss float64
	// Size, if set, measures a message for Bytes.
	Size func(M) int
	// Messages and Bytes count what was sent, lost or not; Received
	// counts, per peer, the bytes delivered to it.
	Messages, Bytes int
	Received        []int
	// JoinOnContact, when set, starts only peer 0 (the asker); every other
	// peer ticks only once a message has reached it, as a query spreads
	// through the runtime: a peer joins when it first hears of it.
	JoinOnContact bool
	joined        []bool
	// R draws the order of the rounds, the losses and the samples.
	R *rand.Rand
}

// New returns an empty network seeded with seed.
func New[M any](seed uint64) *Network[M] {
	return &Network[M]{R: rand.New(rand.NewPCG(seed, 0x7e57))}
}

// Add adds a core as the next peer and returns its ID.
func (nw *Network[M]) Add(c Core[M]) peer.ID {
	nw.Nodes = append(nw.Nodes, c)
	nw.Alive = append(nw.Alive, true)
	nw.Received = append(nw.Received, 0)
	nw.joined = append(nw.joined, len(nw.joined) == 0)
	return peer.ID(len(nw.Nodes) - 1)
}

// Crash stops peer i: it neither ticks nor receives from now on.
func (nw *Network[M]) Crash(i int) { nw.Alive[i] = false }

// Round ticks every live peer once, in a random order, delivering each
// one's messages (and the replies they cause) at once.
func (nw *Network[M]) Round() {
	for _, i := range nw.R.Perm(len(nw.Nodes)) {
		if nw.Alive[i] && (nw.joined[i] || !nw.JoinOnContact) {
			nw.Nodes[i].Tick()
			nw.deliver(peer.ID(i))
		}
	}
}

func (nw *Network[M]) deliver(from peer.ID) {
	for _, env := range nw.Nodes[from].Outbox() {
		nw.Messages++
		if nw.Size != nil {
			nw.Bytes += nw.Size(env.Msg)
		}
		if int(env.To) >= len(nw.Nodes) || !nw.Alive[env.To] || nw.Loss > 0 && nw.R.Float64() < nw.Loss {
			continue
		}
		if nw.Size != nil {
			nw.Received[env.To] += nw.Size(env.Msg)
		}
		nw.joined[env.To] = true
		nw.Nodes[env.To].Step(from, env.Msg)
		nw.deliver(env.To)
	}
}

// Sampler returns the peer sampling service of peer self: a uniformly
// random live peer other than self.
func (nw *Network[M]) Sampler(self peer.ID) peer.Sampler { return sampler[M]{self, nw} }

type sampler[M any] struct {
	self peer.ID
	nw   *Network[M]
}

func (s sampler[M]) Sample(r *rand.Rand) (peer.ID, bool) {
	n := len(s.nw.Nodes)
	if n < 2 {
		return 0, false
	}
	for tries := 0; tries < 8*n+100; tries++ {
		p := peer.ID(r.IntN(n))
		if p != s.self && s.nw.Alive[p] {
			return p, true
		}
	}
	return 0, false
}
