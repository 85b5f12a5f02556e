// Package probe is a real agent's description of its own machine: the
// record it contributes to queries. Resources come from gopsutil (not
// hand-parsed /proc), uptime from the agent's start, and reliability from
// the agent's own up/down journal in its data dir (the formula is at
// ReliabilityWindow). The embedded demo does not use it: its peers have
// synthetic records (query.Synthetic).
//
// # Usage
//
//	p, err := probe.New(dataDir, time.Now())  // opens the journal
//	rec := p.Record()                         // cached for a second
//	p.Heartbeat(time.Now())                   // every HeartbeatEvery
//	p.Close()
//
// The caller's duties:
//
//  1. Call Heartbeat every HeartbeatEvery: a crash loses at most one
//     interval of up time.
//  2. Record may block on the system for a few milliseconds: call it
//     outside any lock that the gossip rounds need.
package probe
