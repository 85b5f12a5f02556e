// Package latency turns the simulator's rounds into seconds on a model of
// the network, and puts beside them the time a serf.Query would take on
// the same model: internet scale on paper (issue 24), not a measurement.
//
// A Model draws round-trip times: log-normal with a median and a spread
// (Parse("lognormal:80ms") or "lognormal:80ms:0.6"), or drawn from
// measured ones (FromText: one per line). The runtime's round lasts until
// its exchange is back, and at least MinRound (node.Config), so a round of
// a query costs E[max(MinRound, rtt)] (RoundTime, by sampling).
//
// Serf is the model of a serf.Query over N members: the query spreads by
// memberlist's gossip — every GossipInterval each member that holds it
// sends it to GossipNodes random members, so it reaches all N in about
// log_{GossipNodes+1} N + ln N / GossipNodes hops (Pittel's push rumor
// with a fanout), each hop half an interval's wait (the next tick, on
// average) and half a round trip — then every member answers the asker
// directly, and the N answers of ReplyBytes cross the asker's link at
// Bandwidth. The time is when the last answer is in (an asker that knows
// N; Serf's own default waits for its timeout, Timeout). Every choice
// favours Serf: no loss, no queueing at the asker's socket, no retransmit
// limit (memberlist stops retransmitting after RetransmitMult·log N).
//
// Like the simulator's cores it does no I/O and reads no clock; it takes
// a seeded *rand.Rand.
package latency
