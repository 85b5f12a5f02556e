// Package fakenet is an in-memory cluster for the node runtime's tests:
// the membership and the exchange transport a node needs (node.Network),
// with faults injected by seed — loss, delay and jitter, crashes seen by
// the others only after a failure-detection delay, graceful leaves,
// partitions, and tags that take time to spread (as Serf's do). Each host
// lists the peers it saw fail or leave (Departed), as Serf keeps them,
// but never reaps them. It runs no
// Serf and opens no socket: delays are time.Sleep and timers, so under
// testing/synctest a 200-peer cluster runs in fake time, as fast as the
// CPU allows and without flakiness from a loaded machine.
//
// It is a test double of overlay.Overlay, not a model of Serf: membership
// is exact but for the delays configured here. Like Serf, a host keeps the
// peers it saw fail or leave (Known) until they come back. It imports neither overlay
// nor any Serf package: the members, events, handler and errors it speaks
// are node/network's, the values of node's seam. Integration over real
// Serf stays in the embedded cluster (node.StartEmbedded) and the agent
// tests.
//
// A cloud of pools is several Networks: one a pool, whose peers are its
// members, and one for the cloud pool, on which a gateway is added as a
// new host each time it joins (node's tests: fakeCloud, TestPoolsOnFakenet).
// Faults go to each separately: loss in one pool, a partition of the cloud
// pool.
//
// # Usage
//
//	synctest.Test(t, func(t *testing.T) {
//		nw := fakenet.New(fakenet.DefaultConfig())
//		h := nw.Add("p1", tags)             // a node.Network
//		n, _ := node.New(cfg, h)
//		...
//		nw.Crash("p7")                      // silent; the others see it fail after Detect
//		nw.Stop("p8")                       // its process gone: exchanges refused at once
//		nw.Partition([]string{"p1", "p2"})  // p1, p2 cut from the rest
//	})
package fakenet
