// Package owner is a peer's owner role: the subclouds it owns, each kept by
// a subcloud.Owner (the pure machine of the owner's lifecycle: RESERVE,
// renewals, member checks, repair, take-back, release of the replaced,
// RESIZE, EXTEND with its roll-back, RELEASE, name yielding), driven here
// with real time, the membership's events and the peer's exchanges,
// searches, name keepers and data dir, all reached through Env.
//
// The role has one lock, which guards the machines and the table and is
// never held across I/O: a step feeds one machine an event under the lock
// and carries out its actions after — each exchange, search and name
// registration on a goroutine of its own whose answer is the next step;
// the owner's table by one writer goroutine, one write at a time, always
// of the newest table, whose answer goes to every persist the written
// table carries. A change is answered (its Report) only once its record is
// on disk. A ticker goroutine ticks each machine at its Wake.
//
// The table on disk is subcloud.EncodeOwned's (versioned CBOR);
// DecodeTable also reads the JSON tables agents wrote before (versions 1
// to 3).
//
// # Usage
//
//	states, err := owner.DecodeTable(b)           // from durable.Read
//	r, err := owner.New(cfg, env, states, live)    // renews at once
//	rep, err := r.Reserve(ctx, spec, search)       // after the name is held
//	on Serf's failed/left: r.MemberLost(peer, why); joined: r.MemberBack(peer)
//	rep, err = r.Resize(ctx, name, size)           // Extend, Release
//	r.Holds(name, token, from); r.Held(); r.Lookup(name)
//	r.Close()
//
// The caller's duties:
//
//  1. Give an Env whose methods are safe for concurrent use and whose
//     Store returns nil only once the table is on disk (durable.Write).
//  2. Register a RESERVE's name with its keepers before Reserve, and give
//     the keepers that granted it in the spec.
//  3. Tell the role every membership loss and return.
//  4. Close the role (it owns goroutines) before the Env's transport.
package owner
