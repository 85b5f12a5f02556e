// Package network holds the values that cross node's network seam: the
// members a peer sees and the events that change them (Member, Event,
// EventKind; Departed, a member known to have failed or left), the log
// of those events a peer keeps (MemberEvent, which the API's server names
// too), the handler of incoming exchanges (Handler), and what an
// exchange can fail with that the node acts on (ErrNoEndpoint: the peer's
// process is gone; SkewError: the two clocks disagree by more than
// ReplayWindow).
//
// The interfaces themselves, node.Membership and node.Transport (together
// node.Network), are node's: it is their only user, and states their
// rules there. This package is split from node only so that the two
// implementations can name these values without importing node, which
// imports overlay and with it Serf: overlay.Overlay implements the
// interfaces over Serf and memberlist, fakenet.Host in memory for tests,
// and fakenet imports no Serf package. It imports nothing of peerq but
// identity (a member's public key), and starts nothing: values only.
//
// # Usage
//
//	for e := range nw.Events() { // nw is a node.Network
//		switch e.Kind {
//		case network.MemberFailed, network.MemberLeft: ...
//		}
//	}
//	_, err := nw.Exchange(ctx, peer, req)
//	var skew *network.SkewError
//	switch {
//	case errors.As(err, &skew):                 // reachable; its clock is off by skew.Offset
//	case errors.Is(err, network.ErrNoEndpoint): // its process is gone
//	}
//
// An implementation's duties:
//
//  1. Report the members a peer believes alive, itself included, with the
//     identity it pinned for each (Member.Key, Member.Boot).
//  2. Return ErrNoEndpoint only when the peer's address refused the
//     connection (never for a timeout, which loss can cause), and a
//     *SkewError only when the peer refused the exchange for its time.
package network
