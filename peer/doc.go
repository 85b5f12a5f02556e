// Package peer holds the few names the protocol cores (aggregate, topk)
// and their drivers (run, node, sim) share: a peer's ID as a core sees it,
// the Sampler that picks the next peer to gossip with, and the Envelope a
// core puts in its outbox. It has no logic and imports only the standard
// library, so that the cores stay independent of each other and of any
// transport.
package peer
