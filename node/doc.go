// Package node is a peer's runtime: it runs plans over the network with
// run.Instances, keeps the peer's own lease table and drives the subclouds
// it owns. It serves no HTTP: package server serves a Node's statements,
// members and metrics (Metrics: the metrics role, a Prometheus collector
// that reads each role's counters and gauges at scrape time) over the
// local API.
//
// A Node hosts roles, each a type with its own state and lock, made and
// stopped by it (node.go: New, Close) and talking to the others through
// narrow interfaces: the query runtime (runtime.go: the instances of the
// queries the peer takes part in, its rounds and exchanges, the queries it
// asks, admitted by admission.go; sample.go: the asker's check of an
// answer against members' signed records, and this peer's reply when
// sampled, the record it contributed to the query), the prober (suspect.go), the lease
// keeper (lease.go, over keeper.go), the name keepers' client (names.go),
// the owner (node/owner, reached through owner.go and calls.go), the
// subclouds' statements and the owner's answers to its members
// (subclouds.go) and metrics (metrics.go). Statements enter at execute.go
// (Query), which hands them to the runtime (gossip), the subclouds role,
// or answers them at once (local.go: SHOW, the member list, a constant
// SELECT without FROM). The membership watcher (node.go's watch) also
// keeps the last membership events in a ring and logs each (events.go:
// SHOW EVENTS, Node.Events, Config.Infof). config.go holds Config and the
// seams the node runs on.
//
// The asking peer compiles a statement (Compile) and runs it with Query,
// the one entry point for statements (Execute and Watch compile text and
// call it), which returns an answer.Answer and streams answer.Progress.
// A gossip statement starts the asker's instance; the plan spreads
// epidemically inside the protocol messages, with the asker's network
// coordinate and the top-k's coverage size beside it in the batch entry: a peer that receives a
// message for a query it does not know decodes the plan (refusing anything
// malformed), evaluates it on its own record and joins. The originator
// never contacts every peer. A ticker drives rounds: each round a peer
// picks one random live peer — or, asking a top-k near its end, a member
// its coverage still lacks (run's Straggler) — and sends it one exchange
// that carries the messages of every active query; while a query is young, a peer also
// announces it (the plan alone) to Config.Fanout more peers in exchanges
// of their own that the round does not wait for (announce, run's
// Announce), until run.StopAnnouncing of them were answered by peers that
// held it already. Instances are collected some rounds after
// their budget. Statements whose every attribute is in the membership are
// answered from the member list without gossip; SHOW is local.
//
// Pools (pools.go): with Config.Pool, the peer's Network is one Serf
// pool of a cloud of pools. The pools role keeps the peer in the
// cloud-wide Serf pool (Config.Cloud) while it is one of its pool's
// Gateways, runs other pools' statements in its pool as their gateway
// and reports its pool's run.Partial signed — from its member list for a
// statement that reads only tags (Node.tagsPartial), or its sample's
// records where the sample stood in for bent gossip (gossipPartial, the
// sample drawn by the statement's cloud-wide ID) — and answers a gossip
// statement asked here by having a gateway of this pool coordinate it
// across the pools (a majority of each pool's gateways run it, the others
// only when those disagree on rows or status), then checking every
// pool's reports and merging one partial per pool that most of its
// gateways agree on (run.Merge; a name two pools hold contests the
// answer: clashes). A statement FROM SUBCLOUD runs in every pool over
// the members of an owner the asker fixes first (its own pool's, else
// the pool whose gateways find the name's owner there: subcloudPool;
// Plan.Owner); SHOW SUBCLOUDS adds the other pools' subclouds, counted
// in every pool (local.go). Leases cross pools (relay.go): RESERVE's
// search runs in every pool, and its owner claims, renews, checks and
// releases a member of another pool, named pool/name, through a gateway
// of each pool (opRelay, opDeliver), each end believing the other's key
// as a majority of its own pool's gateways vouch for it (opVouch, each
// vouch signed), the member's reply signed over the request, and its
// loss believed only from majorities. A member that is not a gateway
// learns from one of its pool's gateways what the cloud pool holds
// (learn.go: opLearn), to join it through those addresses, and miss its
// pools aloud, if it becomes one; its answers name the pools it knows of
// that its coordinators leave out, and when no gateway of its pool takes
// a statement it answers over its own pool alone, partial
// (Node.ownPoolOnly). A tag only some pools have is read at any peer
// (query.Catalog.Open), unknown only if every pool's gateways say their
// pool lacks it (reportBody.Lacks); a pool's gateways that died, listed
// until the cloud pool declares them, are set aside once a majority of
// its current ones agree on who they are (reportBody.Roster, current);
// SHOW ATTRIBUTES lists every pool's
// tags, as a majority of each pool's gateways name them (reportBody.Tags).
// EmbeddedConfig.Pools makes an embedded cloud of pools (cloud.go: the
// cloud pool on its own in-memory network).
//
// Each peer has an identity (identity.Key: an ed25519 key in its data
// dir, a new incarnation at every start) that the network shows beside it;
// every lease request it sends as an owner is signed with it and names the
// target's incarnation.
//
// Subclouds, the peer's side (the lease keeper role, lease.go, over the
// keeper's table on disk, keeper.go): a peer applies claims, renewals
// and releases to its lease table (subcloud.Table.Apply, which checks
// their signatures), and registrations of names it keeps
// (subcloud.Names.Apply); each change is written durably
// (internal/durable: write, fsync, previous copy, rename, fsync the
// directory) before it takes effect and before the peer answers, and read
// back without a lock (atomic snapshots). It shows its lease in its tags,
// enters each lease it served in its ledger with its owner's signed
// receipts (FROM leases: metering by gossip, ledger.go; a sampled member
// shows its receipts to the asker's check, sample.go), asks its lease's owner whether it still holds it when either
// restarted (OpAsk, lease.go), and checks every 10 s that its data dir
// can be written. The owner's side is the owner role (node/owner: one
// subcloud.Owner per subcloud, with its own lock and goroutines, reached
// through owner.Env: ownerEnv, owner.go; lease requests go through
// leaseCalls, calls.go; its statements are in subclouds.go; names.go asks the
// keepers of names, for the role, RESERVE and SHOW SUBCLOUDS): RESERVE
// registers the name with its keepers, then the role claims the top-k's
// candidates and says yes only once its record is on disk; it renews the
// leases and the name at a third of their term, checks the members, keeps
// the subcloud at its size (members that fail, leave or refuse are replaced with the
// subcloud's own search, former members that return are taken back or
// released), gives up a name a majority of its keepers hold for another
// owner; the subclouds role answers members' asks and other agents' requests for
// its account (SHOW SUBCLOUDS) from it; ALTER SUBCLOUD resizes and
// extends, RELEASE waits for its members' answers.
//
// The operator's view (nodes.go): besides the events (events.go), the
// members that failed or left and that its network still knows (Serf,
// until it reaps them), with when it saw each go (the observer),
// Departed; and a member's page for the console (NodeInfo: its tags,
// status, the lease it holds, the subclouds it owns as their members'
// leases show them), all from local state, without gossip.
//
// Load: a peer asks at most MaxAsk statements at once and none while it
// takes part in MaxQueries (every query reaches every peer: that is the
// cloud's load); the rest are refused at once, busy with when to retry. A
// round waits for its exchange (three typical exchanges, at least two
// MinRounds), one exchange is in flight per peer, a round that could send
// nothing lasts Round, and rounds in which nothing reached the asker do
// not spend the query's budget. A peer with nothing to do ticks every
// QuietRound.
// An exchange refused for clock skew names the skewed
// member: answers leave it out and say so (suspect.go).
//
// Churn (suspect.go, instance.go): a member lost while a query runs is
// excluded by the query's own peers, not waited for. An exchange that takes
// longer than eight recent ones (suspectAfter) is followed by a ping and
// indirect probes through IndirectProbes others (SWIM's, per query); if
// none reaches the member, the peer leaves it out of every query it takes
// part in, and the set (grow-only, MaxExcluded names) travels in every
// message of the query: each peer that hears it undoes its flows with the
// member and drops its rows (run.Instance.Exclude), and a member that hears
// it is left out stops contributing. Serf's verdict only confirms. The
// asker's answer is converged over the others and names them; partial only
// for what exclusion cannot fix (losses unconfirmed or beyond MaxExcluded
// that could move it past the accuracy, run.Blocking; a lost majority; the
// budget). Excluded is not released: leases follow Serf's verdict. The
// finding is the prober's (suspect.go), a role with its own lock and
// goroutines, on the network's exchanges: it tells the runtime of a loss,
// which leaves the member out of the instances it runs (instance.go).
//
// The runtime depends on small interfaces — Membership and Transport
// (together a Network), whose values (members, events, the exchange
// handler and its errors) are node/network's, and its data dir's
// durable.FS — implemented by overlay.Overlay over Serf, by fakenet.Host
// in tests (it imports no Serf), which run under testing/synctest in fake
// time, and by crashfs, which crashes a write at any step. Timers are the
// time package's (fake under synctest); only the wall clock is injected
// (Config.Clock), so that a test can set one real peer's off. Record
// functions (probes) and progress callbacks are called outside the node's
// lock. StartPeer wires a real peer on sockets; StartEmbedded an embedded
// cluster of real Serf peers in one process, whose shortest round is what
// the process needs to run every peer's round once (EmbeddedMinRound: past
// 200 peers a core, a round at 10 ms could not be kept by them all).
//
// # Usage
//
//	p, err := node.StartPeer(node.PeerConfig{Name: "a1", Bind: "0.0.0.0:7946", Runtime: node.DefaultConfig(record)})
//	err = p.Join(ctx, seeds)
//	ans, err := p.Execute(ctx, "SELECT COUNT(*) FROM peers", progress)
//	p.Leave()
//
// or, on any Network:
//
//	n, err := node.New(cfg, network)
//	res, err := n.Query(ctx, plan, func(answer.Progress) { ... })  // res.Status, res.Rows, ...
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
