// Package node is a peer's runtime: it runs plans over the network with
// run.Instances, answers the local HTTP API, keeps the peer's own lease
// table and drives the subclouds it owns.
//
// The asking peer compiles a statement (Compile, Execute), starts its
// instance and streams progress; the plan spreads epidemically inside the
// protocol messages, with the asker's network coordinate and the top-k's
// coverage size beside it in the batch entry: a peer that receives a
// message for a query it does not know decodes the plan (refusing anything
// malformed), evaluates it on its own record and joins. The originator
// never contacts every peer. A ticker drives rounds: each round a peer
// picks one random live peer and sends it one exchange that carries the
// messages of every active query. Instances are collected some rounds after
// their budget. Statements whose every attribute is in the membership are
// answered from the member list without gossip; SHOW is local.
//
// Subclouds: a peer applies claims, renewals and releases to its lease
// table (subcloud.Table.Apply), which persists (write, fsync, rename)
// before the change takes effect and before it answers, and shows its lease
// in its tags, and enters each lease it served in its ledger (FROM
// leases: metering by gossip). An owner drives a subcloud.Claimer with the
// top-k's candidates, renews its leases at a third of their term, checks
// its members, and keeps the subcloud at its size (owner.go): members that
// fail, leave or refuse are replaced with the subcloud's own search,
// former members that return are taken back or released, a name held by
// an older subcloud is given up; ALTER SUBCLOUD resizes and extends.
//
// The runtime depends on small interfaces — Membership, Transport (together
// a Network) and Clock — implemented by overlay.Overlay over Serf, and by
// fakenet in tests, which run under testing/synctest in fake time. Record
// functions (probes) and progress callbacks are called outside the node's
// lock. StartPeer wires a real peer on sockets; StartEmbedded an embedded
// cluster of real Serf peers in one process.
//
// # Usage
//
//	p, err := node.StartPeer(node.PeerConfig{Name: "a1", Bind: "0.0.0.0:7946", Runtime: node.DefaultConfig(record)})
//	err = p.Join(ctx, seeds)
//	ans, err := p.Execute(ctx, "SELECT COUNT(*) FROM peers", progress)
//	srv, err := p.ServeAPI("127.0.0.1:7474", token)
//	p.Leave()
//
// or, on any Network:
//
//	n, err := node.New(cfg, network)
//	res, err := n.Query(ctx, plan, func(node.Progress) { ... })
//	n.Close()
//
// The caller's duties:
//
//  1. Give a Record function that is safe for concurrent use; it is read
//     when a query reaches the peer, outside the node's lock.
//  2. Keep progress callbacks short: they run on the round's goroutine.
//  3. Close the Node (it owns goroutines); the Network's lifecycle (join,
//     leave, shutdown) is the caller's, or the Peer's.
package node
