// Package overlay is everything peerq takes from Serf: membership, failure
// detection and tags (hashicorp/serf over hashicorp/memberlist, not
// re-implemented), a uniform random sampler over the live peerq peers, and a
// request/response exchange transport for the protocols' point-to-point
// messages, which Serf cannot carry (its delegate drops or misreads foreign
// bytes; docs/SERF-NOTES.md).
//
// Two modes share the code: real peers over UDP/TCP sockets (memberlist's
// NetTransport and a TCP exchange listener whose address is advertised in a
// tag, the way Consul and Nomad advertise their RPC port), and an embedded
// cluster of many real Serf instances in one process over MemNetwork, an
// in-memory memberlist transport that, unlike memberlist's MockNetwork,
// never blocks: each node has a buffered packet queue, a full queue drops
// the packet as UDP would, streams are net.Pipe pairs with a dial timeout,
// and Shutdown unregisters the node. Its faults, for tests and benchmarks:
// Partition, SetLoss, and Stall (a host whose exchanges wait d, or until
// the caller's deadline if that comes first, before its handler runs, while
// its Serf traffic flows: with d long, a hung process that looks alive).
// A caller waits for a handler however long it runs, unless a test asks
// for TCP's behaviour (SetCallerDeadlines: the caller returns at its
// deadline, the handler's reply unread).
//
// Config.Admit, if set, is Serf's merge delegate: a peerq member whose tags
// it refuses is kept out of the membership (node: a pool admits its own
// members, the cloud pool gateways only), and a join whose every seed it
// refuses ends at once with the refusal rather than retrying.
//
// Identities: a peer made with an identity.Key shows its public key and
// incarnation in reserved tags; every peer pins the first key it sees for
// a member while that member is alive (network.Member's Key and Boot), and
// on sockets every exchange's body is sealed with the key the two peers
// share (pairing.go), so that its sender is checked. A request whose time is
// beyond the replay window is answered with a skew frame, not dropped: the
// caller gets a network.SkewError with the offset, both sides log it, and
// ClockOffsets keeps what each exchange measured.
//
// The overlay moves opaque bytes and knows nothing of queries. Nothing
// above it imports Serf or memberlist: network coordinates leave it as
// opaque bytes (Coordinate) and come back to RTT; members, events, the
// exchange handler and its errors are node/network's types. It implements
// node.Network. Known lists the members Serf still keeps after they failed
// or left (until it reaps them), with their status and when this peer last
// knew them alive, for SHOW MEMBERS. Alone says, while no other member has
// been live here since it started, how many peers it was to join (Serf's
// snapshot's, or the seeds given to Expect): a peer that met none of them
// answers partial (node).
//
// # Usage
//
//	ov, err := overlay.New(cfg)              // Serf + exchange listener
//	ov.Serve(func(from string, req []byte) ([]byte, error) { ... })
//	n, err := ov.Join(ctx, seeds)            // retried with backoff, bounded by ctx
//	peer, ok := ov.Sample(r)                 // a random live peerq peer
//	resp, err := ov.Exchange(ctx, peer, req) // point-to-point, within ExchangeTimeout
//	d, ok := ov.RTT(coord)                   // to the peer whose Coordinate() is coord
//	ov.Leave(); ov.Shutdown()
//
// The caller's duties:
//
//  1. Call Serve before Join: a peer may be asked to exchange as soon as it
//     is known.
//  2. Keep handlers short and safe for concurrent use; they run on the
//     transport's goroutines.
//  3. Read Events (member changes) promptly: the overlay drains Serf's
//     event channel itself, and drops events a slow reader leaves behind.
//     Each event carries its members' addresses and tags as Serf showed
//     them (network.Event.Info: a failed member is no longer in Members),
//     and tells a reap from a leave (Reap), for the node's log of events.
package overlay
