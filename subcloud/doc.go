// Package subcloud is the lease logic of subclouds: pure code, with the
// clock passed in, that each peer runs about itself.
//
// A RESERVE finds candidates with the top-k protocol, then claims them in
// rank order. Each peer is the only authority over itself: its Table grants
// a lease to at most one subcloud at a time — a compare-and-set the node
// persists (fsync) before it answers — with an owner, an expiry and a
// random token that the owner chose. Only the token's holder may renew or
// release; a lease that is not renewed lapses at its expiry and the peer is
// free again, so a subcloud whose owner dies dissolves by itself, with
// nothing to clean up and no central registry. A retried claim with the same
// idempotency key, subcloud and token gets the same lease back. Two owners
// racing for one peer can never both hold it: the Table serializes them.
//
// The package does no I/O, reads no clock and starts no goroutine.
//
// # Usage
//
//	var t subcloud.Table                       // one per peer, restored from disk
//	lease, err := t.Claim(now, claim)          // persist t, then answer
//	err = t.Renew(now, name, token, until)      // persist, answer
//	err = t.Release(now, name, token)           // persist, answer
//	l, ok := t.Current(now)                    // what the peer's tags show
//
// The caller's duties:
//
//  1. Persist the Table (Marshal) durably before answering a claim, a
//     renewal or a release: a peer that restarts must still hold its lease.
//  2. Serialize calls: a Table is not safe for concurrent use.
//  3. Pass a monotonic-enough clock; expiries are absolute times.
package subcloud
