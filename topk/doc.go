// Package topk is the gossip top-k core: a pure state machine with which
// every peer learns the k best entries over all peers (ORDER BY ... LIMIT k,
// and the candidates of RESERVE).
//
// Every peer that passes the filter offers one entry: its node name, an
// order-preserving byte key of its ORDER BY values, and its projected row.
// Each round a peer exchanges its bounded candidate list with one random
// peer (push-pull); both keep the best of the union. The best entry spreads
// like a rumour, so every peer holds the exact top-k after about
// log₃(N) + ln ln N rounds (Karp, Schindelhauer, Shenker, Vöcking,
// "Randomized rumor spreading", FOCS 2000; the push-pull bound). Ties are
// broken by node name, so the answer is deterministic.
//
// Stability alone does not say a list is final: it can stay still for
// rounds while the last peer's entry is on its way. Each list therefore
// carries a coverage filter (coverage.go), a Bloom filter of the peers it
// has absorbed, merged by OR with the lists; once the asker's filter holds
// every live member, its list is the exact top-k of the live peers (up to
// the filter's false positives, ~6·10⁻⁴ a missing peer).
//
// Peers that die are dropped from the lists of the peers that learn of it
// (Config.Alive and Prune), and entries of dead nodes are refused from then on; each
// list keeps Reserve entries beyond k so that the k-th place can be
// backfilled.
//
// Lists are replaced, never modified, so peers may share them: a message
// handed over in the same process (the simulator's) carries the sender's
// whole list beside what it sends, and a peer whose merge yields exactly
// that list keeps the sender's slice rather than a copy of it, as does one
// whose list holds the same entries already. Converged peers then hold a
// few lists between them, not one each (a list each, 512 bytes, was half
// of a forging top-k's heap at 10^5 simulated peers). The peers of a query
// in one process share their Config too (NewAs). A message that went over
// the wire carries no list to share.
//
// The package does no I/O, reads no clock, starts no goroutine and uses only
// the random source it is given.
//
// # Usage
//
//	n := topk.New(cfg, ownEntry)          // ownEntry nil if the peer does not match
//	                                      // or topk.NewAs(&shared, self, ownEntry)
//	each round:      n.Tick(); send n.Outbox()
//	on message m:    n.Step(from, m); send n.Outbox()
//	                 (from the wire: m, err := n.Decode(b): the entries this
//	                 peer holds are taken as its own, not made again)
//	on nodes dead:   n.Prune()            // Config.Alive now says so
//	answer:          n.Top(), n.Covers(name) for every live member
//
// The caller's duties:
//
//  1. Call Tick once per round and Step for every message; send every
//     envelope of Outbox after each call.
//  2. Never call two methods of one Node at the same time.
//  3. Treat entries, the lists of messages and a Config given to NewAs as
//     immutable: lists and peers share them.
package topk
