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
// Serf is the model of a serf.Query over N members, event by event
// (Serf.Time): the query spreads by memberlist's gossip — every member
// ticks every GossipInterval at its own phase, and from its first tick
// after it holds the query sends it to GossipNodes random members a tick,
// RetransmitMult·⌈log10(N+1)⌉ sends in all (memberlist's retransmit
// limit), each arriving half a drawn round trip later — then every member
// answers the asker directly, half a round trip away, and the answers of
// ReplyBytes queue on the asker's link at Bandwidth as they arrive. The
// time is when the last answer is in (an asker that knows N; Serf's own
// default waits for its timeout, Timeout). DefaultSerf is memberlist's
// LAN profile, Serf's default; WAN its WAN profile, which memberlist
// advises across the internet: the simulator prints both. No loss and no
// drop at the asker's socket favour Serf; memberlist's broadcasts
// piggybacked on its probes (a few a second, beside the ticks' 15) are
// left out, which favours gossip.
//
// Like the simulator's cores it does no I/O and reads no clock; it takes
// a seeded *rand.Rand.
package latency
