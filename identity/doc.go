// Package identity is a peer's own key: an ed25519 key pair made in the
// peer's data dir on its first start and kept across restarts, with the
// peer's incarnation (a counter raised at every start).
//
// A P2P cloud is machines that strangers run: the cluster key admits them,
// it does not make them honest, and it does not say who is who — any key
// holder can put any name on a message. So each peer signs what only it may
// say (a claim on another peer, a renewal, a release, an owner's answer)
// and its public key is bound to its Serf membership (the overlay's
// identity tag, pinned by every peer the first time it sees the name): a
// message in another peer's name is refused unless that peer signed it.
// Exchanges between two peers are sealed with a key only they can compute
// (X25519 of their identity keys, through HKDF), so the sender of every
// exchange is checked too.
//
// The incarnation binds what is sent to a peer to its present life: a
// claim recorded before a peer restarted names the old incarnation and is
// refused after the restart, although the peer keeps no memory of the
// messages it saw.
//
// What a key holder can still do, and what happens to a peer that loses
// its key, is in docs/SECURITY.md: a peer with m identities counts as m
// peers (the Sybil limit; admission is the cluster key), and a peer whose
// key is lost is a new identity — what others hold in its old one (leases
// it owned) lapses at its expiry.
//
// # Usage
//
//	id, note, err := identity.Open(durable.OS(), dir, rand.Reader) // creates or loads; raises the incarnation
//	sig := id.Sign(identity.DomainLease, msg)
//	ok := identity.Verify(pub, identity.DomainLease, msg, sig)
//	k, err := id.Pair(peerPub)                                    // the exchange key shared with one peer
//
// The caller's duties:
//
//  1. Keep the data dir private: the key file is 0600 and whoever reads it
//     is this peer.
//  2. Publish Public() and Boot() in the membership (the overlay does), and
//     check a peer's signature against the key its membership shows, never
//     against a key the message itself carries.
//  3. Use one domain string per kind of message, so that a signature on one
//     can never be passed off as another.
package identity
