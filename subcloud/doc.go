// Package subcloud is the lease logic of subclouds, both sides of it, as
// pure code with the clock passed in: the Table each peer keeps about
// itself, the Claimer an owner runs for a RESERVE, and the versioned codec
// of the requests and replies between them.
//
// A RESERVE first registers the subcloud's name with its keepers (Keepers:
// the few live members with the highest hash of the name and theirs; each
// keeper's Names grants a name to one owner's key at a time, the owner
// holds it once a Majority did), then finds candidates with the top-k
// protocol and claims them in rank order. Each peer is the only authority
// over itself: its Table grants a lease to at most one subcloud at a time —
// a compare-and-set that commits only once the caller has persisted it
// (Apply) — with an owner, the owner's identity key, an expiry and a
// random token that the owner chose. Every request is signed by its owner
// (Request.Sign) and names the peer and the incarnation it is for: a claim
// must be signed with the key the membership shows for the owner it names,
// a renewal, release or check with the key the lease was claimed with, and
// a request for another life of the peer is refused, so neither a forged
// owner nor a replay after a restart takes a peer. A claim, renewal or
// release carries the owner's clock (Request.At) under its signature,
// which covers the request's Receipt (the token's digest in its place):
// the member keeps the receipts, and Metered is the span they account
// for, all a member can bill (receipt.go). A lease that is not
// renewed lapses at its expiry and the peer is free again, so a subcloud
// whose owner dies dissolves by itself, with nothing to clean up and no
// central registry; a member asks its owner about its lease (OpAsk) and
// drops it on the owner's signed word (Table.Drop). A retried claim with
// the same subcloud and token gets the same lease back. Two owners racing
// for one peer can never both hold it: the Table serializes them.
//
// The Claimer claims in rank order, backfills each refusal from the next
// candidate at once, asks for fresh candidates when a list runs out, and
// ends holding N peers (or AtLeast) or nothing: on failure it releases
// every peer it holds or may hold. Its property test model-checks that,
// over random schedules with loss and failing disks, what an owner reports
// is exactly what the peers hold.
//
// The Owner is the rest of an owner's life with one subcloud, as a pure
// machine around the Claimer: the RESERVE's record (yes only once it is on
// disk), renewals at a third of the term, member checks, the repair of
// lost members (spares first, each an all-or-nothing claim), take-back or
// release of former members that return, RESIZE TO, EXTEND FOR with its
// roll-back, RELEASE, and giving the name up when a majority of its
// keepers hold it for another owner. Events go in (Tick with the time,
// MemberLost, MemberBack, Reply, Candidates, Persisted, NameVote, and the
// user's Resize, Extend, Release); actions come out of Ready (ActSend,
// ActSearch, ActPersist, ActRegisterName, ActReleaseName, ActReport,
// ActLog). Its caller answers every action it asked an answer for — each
// send once, with the reply or the error when none came in time (wrapping
// ErrUnreachable when the peer cannot be reached) — writes one persist at
// a time (EncodeOwned, versioned and fuzzed like the lease codec) and
// answers it before the next, ticks it at least every MaintainEvery and
// CheckEvery, and drops it once Idle. Its property test drives two Owners
// over one pool of modeled peers through loss, late replies, crashes,
// full disks and random ALTERs, and checks that no Owner counts more
// members than its size or a member that does not hold its lease, that
// a yes comes only after the write that records it, and that a failed
// EXTEND is rolled back. node/owner (the owner role) drives one per
// subcloud a peer owns.
//
// The package does no I/O, reads no clock and starts no goroutine.
//
// # Usage
//
//	// a peer, for each request from an owner:
//	req, err := subcloud.DecodeRequest(b)              // bounded, versioned
//	rep := table.Apply(now, self, from, req, persist)  // checks the signature; persist: durable.Write
//	send(rep.Encode())
//
//	// an owner, for a RESERVE:
//	c, err := subcloud.NewClaimer(cfg)
//	for c.State() != subcloud.Done {
//		if c.State() == subcloud.NeedCandidates {
//			c.Candidates(topk())
//		}
//		for _, m := range c.Outbox() { send m; later c.Step(m.To, reply, err) }
//	}
//	members, err := c.Result()                 // then send the releases left in Outbox
//
// The caller's duties:
//
//  1. Persist the Table in Apply's hook durably: a peer that restarts must
//     still hold what it granted.
//  2. Serialize calls: Table and Claimer are not safe for concurrent use.
//  3. Send a Claimer's releases only after its claims in flight have come
//     back, so that no release overtakes the claim it undoes.
//  4. Pass a monotonic-enough clock; expiries are absolute times.
package subcloud
