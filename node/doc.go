// Package node is the peer agent's query runtime: it runs plans over the
// overlay with the protocol cores.
//
// The asking peer compiles a statement, starts a protocol instance and
// streams progress; the plan spreads epidemically, as part of the protocol
// messages: a peer that receives a message for a query it does not know
// decodes the plan (refusing anything malformed), evaluates it on its own
// record and joins. The originator never contacts every peer. A ticker
// drives rounds: each round a peer picks one random live peer and sends it
// one exchange that carries the messages of every active query (a Flow
// Updating retry goes to the peer it retries). Instances are collected once
// their round budget has passed. Statements whose every attribute is in
// Serf's membership are answered from the member list without gossip.
//
// # Usage
//
//	n, err := node.New(cfg)                 // the overlay and the runtime
//	n.Join(ctx, seeds)
//	res, err := n.Query(ctx, plan, func(p node.Progress) { ... })
//	n.Close()
//
// The caller's duties:
//
//  1. Give a Record function that is cheap and safe for concurrent use:
//     it is read when a query reaches the peer.
//  2. Close the Node; it owns goroutines (the round ticker, the overlay's).
package node
