package peer

import "math/rand/v2"

// ID names a peer to a protocol core. The driver maps it to an address
// (node: a hash of the member name; sim: the peer's index).
type ID uint64

// Sampler picks a uniformly random live peer other than the caller
// (Jelasity et al.'s peer sampling service). It is called from inside a
// core's Tick, so it must not block; ok is false when there is no other
// peer.
type Sampler interface {
	Sample(r *rand.Rand) (p ID, ok bool)
}

// Envelope is a message of type M and the peer it goes to.
type Envelope[M any] struct {
	To  ID
	Msg M
}
