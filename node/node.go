package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/node/owner"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// Node is a peer's runtime. It is safe for concurrent use.
type Node struct {
	cfg Config
	net Network
	now func() time.Time // cfg.Clock
	// started is when New made the node: a change of membership, for
	// exports (settled).
	started time.Time
	// ctx ends when the node closes: exchanges in flight give up.
	ctx    context.Context
	cancel context.CancelFunc

	// rt is the query runtime role (runtime.go): instances, rounds,
	// exchanges, the queries this peer asks.
	rt *runtime

	// id is the peer's identity; fs the file system of its data dir.
	id *identity.Key
	fs durable.FS
	// keeper is the peer's own side of subclouds on disk (keeper.go).
	keeper *keeper
	// leases is the lease keeper role, which answers lease and name
	// requests about this peer over keeper (lease.go).
	leases *leaseKeeper
	// nameKeepers asks the keepers of subcloud names (names.go).
	nameKeepers *nameKeepers
	// metrics is the metrics role: the collector, its histograms and the
	// standing queries /metrics shows (Export).
	metrics *metrics
	// owner is the owner role: the subclouds this peer owns.
	owner *owner.Role
	// prober finds the members lost while queries run (suspect.go).
	prober *prober
	// calls are this peer's lease requests: as owner, name client, member.
	calls *leaseCalls
	// sc is the subclouds role: statements about subclouds, the owner's
	// answers to its members (subclouds.go).
	sc *subclouds
	// events are the last membership events, logged as they come
	// (events.go).
	events *eventLog

	done    chan struct{}
	closing sync.Once
	wg      sync.WaitGroup
}

// ownerConfig is the role's configuration from the node's.
func ownerConfig(cfg Config, name string, seed uint64) owner.Config {
	oc := subcloud.DefaultOwnerConfig()
	oc.MaintainEvery, oc.CheckEvery, oc.CheckMisses = cfg.LeaseTick, cfg.MemberCheck, max(cfg.CheckMisses, 1)
	oc.SearchBackoff = 2 * cfg.Round
	oc.ReleaseRetry = max(cfg.MemberCheck, 100*time.Millisecond)
	oc.ReleaseRetryMax = max(oc.ReleaseRetryMax, oc.ReleaseRetry)
	return owner.Config{Name: name, Owner: oc, MinTick: min(cfg.LeaseTick, max(cfg.MemberCheck, 10*time.Millisecond)) / 10,
		Rand: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// New starts a peer's runtime on net: its round ticker, membership watcher,
// lease keeper and tagger. The network's lifecycle (join, leave, shutdown)
// stays the caller's.
func New(cfg Config, net Network) (*Node, error) {
	if cfg.Round <= 0 || cfg.Record == nil {
		return nil, errors.New("node: Config needs Round and Record")
	}
	def := DefaultConfig(nil)
	if cfg.MaxQueries <= 0 {
		cfg.MaxQueries = def.MaxQueries
	}
	if cfg.MaxAsk <= 0 {
		cfg.MaxAsk = def.MaxAsk
	}
	if cfg.AskQueue < 0 {
		cfg.AskQueue = 0
	}
	if cfg.MinRound <= 0 || cfg.MinRound > cfg.Round {
		cfg.MinRound = min(def.MinRound, cfg.Round)
	}
	if cfg.HintTTL <= 0 {
		cfg.HintTTL = def.HintTTL
	}
	if cfg.ProbeTries <= 0 {
		cfg.ProbeTries = def.ProbeTries
	}
	if cfg.IndirectProbes <= 0 {
		cfg.IndirectProbes = def.IndirectProbes
	}
	if cfg.ExchangeTimeout <= 0 {
		cfg.ExchangeTimeout = 2 * time.Second
	}
	if cfg.LeaseTick <= 0 {
		cfg.LeaseTick = time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if err := CheckPoolName(cfg.Pool); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if cfg.Pool != "" {
		// The pool is a tag (an attribute, `pool`), kept beside the lease's.
		tags := map[string]string{TagPool: cfg.Pool}
		for k, v := range cfg.Tags {
			tags[k] = v
		}
		cfg.Tags = tags
	}
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		for _, x := range b {
			seed = seed<<8 | uint64(x)
		}
	}
	if cfg.FS == nil {
		cfg.FS = durable.OS()
	}
	if cfg.StorageProbe <= 0 {
		cfg.StorageProbe = def.StorageProbe
	}
	logf := func(format string, args ...any) {
		if cfg.Logf != nil {
			cfg.Logf(format, args...)
		}
	}
	id, idNote, err := openIdentity(&cfg, seed, net)
	if err != nil {
		return nil, err
	}
	keeper, notes, err := openKeeper(cfg.FS, cfg.DataDir, logf)
	if err != nil {
		return nil, err
	}
	owned, ownedNote, err := openOwned(cfg.FS, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, net: net, now: cfg.Clock, started: cfg.Clock(), ctx: ctx, cancel: cancel,
		id: id, fs: cfg.FS, keeper: keeper, events: newEventLog(cfg.EventLog, cfg.Infof),
		done: make(chan struct{})}
	rt := newRuntime(cfg, net, ctx, n.done, seed)
	n.rt = rt
	// The prober before Serve: an exchange may come in at once.
	n.prober = newProber(ctx, proberConfig{HintTTL: cfg.HintTTL, ProbeTries: cfg.ProbeTries, IndirectProbes: cfg.IndirectProbes,
		ExchangeTimeout: cfg.ExchangeTimeout, MinRound: cfg.MinRound, Now: cfg.Clock, Rand: mrand.New(mrand.NewPCG(seed, 0xbb67ae8584caa73b)),
		ExchangeTime: func() time.Duration { return time.Duration(rt.exchangeTime.Load()) }}, net, rt.memberLost)
	rt.prober, rt.record, rt.logf, rt.seal = n.prober, n.record, n.logf, newSealer(id, net, cfg.Verified)
	rt.seal.off = &rt.undefended
	// The observer of every member's availability, from what it saw
	// before a restart and the members live now: what bounds their
	// reliability claims (observe.go).
	var observedNote string
	rt.observer, observedNote = openObserved(cfg)
	for _, m := range net.Members() {
		rt.observer.up(m.Name, cfg.Clock())
	}
	n.calls = &leaseCalls{name: net.Name(), id: id, net: net, timeout: cfg.ExchangeTimeout, now: cfg.Clock,
		bootOf: func(p string) uint64 { return n.leases.bootOf(p) }, self: func(from string, msg []byte) []byte { return n.leases.handle(from, msg) }}
	// The roles of subclouds' peer side (lease.go, names.go); the name
	// keepers' back-off draws from its own source, not the gossip's n.r.
	n.nameKeepers = &nameKeepers{self: n.Name(), members: func() []string { return memberNames(net) }, call: n.calls, round: cfg.Round, ctx: ctx,
		r: mrand.New(mrand.NewPCG(seed, 0x6a09e667f3bcc909))}
	n.sc = &subclouds{net: net, now: cfg.Clock, id: id, logf: n.logf, rt: rt, calls: n.calls, nameKeepers: n.nameKeepers, keeper: keeper,
		claiming: map[string]string{}}
	n.leases = newLeaseKeeper(&leaseKeeper{keeper: keeper, net: net, boot: id.Boot(), now: cfg.Clock, tags: cfg.Tags,
		owner: n.sc, call: n.calls, names: n.nameKeepers, ask: cfg.ExchangeTimeout / 2, tick: cfg.LeaseTick, probeEvery: cfg.StorageProbe, logf: logf})
	rt.leases = n.leases
	if cfg.Pool != "" {
		if cfg.Gateways <= 0 {
			cfg.Gateways = def.Gateways
		}
		if cfg.GatewayCheck <= 0 {
			cfg.GatewayCheck = def.GatewayCheck
		}
		if cfg.PoolTimeout <= 0 {
			cfg.PoolTimeout = def.PoolTimeout
		}
		if cfg.PollEvery <= 0 {
			cfg.PollEvery = def.PollEvery
		}
		if cfg.PoolMemory <= 0 {
			cfg.PoolMemory = def.PoolMemory
		}
		if cfg.SplitAfter <= 0 {
			cfg.SplitAfter = def.SplitAfter
		}
		if cfg.LearnEvery <= 0 {
			cfg.LearnEvery = def.LearnEvery
		}
		rt.pools = newPools(cfg, net, id, rt, ctx, n.logf)
		// Called by a gateway's pool runs, which start from the pools'
		// loop, after n.sc.owner is set.
		rt.pools.ownerOf = n.sc.subcloudOwner
		rt.pools.fromTags = n.tagsPartial
		rt.pools.serveLease = n.leases.handle
		// Members of other pools are reached, and believed, through the
		// gateways (relay.go).
		n.calls.across, n.leases.across = rt.pools, rt.pools
	}
	keeper.probe() // says so at once if the data dir cannot be written
	if err := net.Serve(rt.serve); err != nil {
		cancel()
		return nil, err
	}
	n.owner, err = owner.New(ownerConfig(cfg, n.Name(), rt.r.Uint64()), ownerEnv{calls: n.calls, peer: rt, names: n.nameKeepers, fs: cfg.FS, dir: cfg.DataDir, stored: keeper.stored, now: n.now, logf: n.logf, contact: rt.leaseContact}, owned, func(p string) bool {
		if _, _, remote := remoteName(p); remote {
			return true // another pool's: the owner's checks find whether it is live
		}
		_, ok := net.Member(p)
		return ok
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("node: owned subclouds: %w", err)
	}
	n.sc.owner = n.owner
	n.metrics = newMetrics(metricsSource{runtime: n, owner: n.owner, net: net, pools: n})
	rt.start()
	if rt.pools != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			rt.pools.loop(n.done)
		}()
	}
	n.wg.Add(2)
	go n.watch()
	go n.saveObserved()
	n.leases.start() // a restarted peer shows the lease it still holds
	for _, note := range append(notes, idNote, ownedNote, observedNote) {
		if note != "" {
			n.logf("%s", note)
		}
	}
	if len(owned) > 0 {
		n.logf("resumed %d subcloud(s) this peer owns; renewing them", len(owned))
	}
	return n, nil
}

// identitySetter is a network that learns the peer's identity from the
// node (fakenet); a real overlay is given it when it is made, for its tags.
type identitySetter interface {
	SetIdentity(key identity.Public, boot uint64)
}

// identityOwner is a network made with the peer's identity (the overlay).
type identityOwner interface {
	Identity() *identity.Key
}

// openIdentity is the peer's identity: cfg.Identity, or the network's, or
// the key in the data dir, or one made from seed for a peer without one.
// It must be the one the network shows for the peer.
func openIdentity(cfg *Config, seed uint64, net Network) (*identity.Key, string, error) {
	id, note := cfg.Identity, ""
	if o, ok := net.(identityOwner); ok && id == nil {
		id = o.Identity()
	}
	if id == nil {
		var err error
		if cfg.DataDir != "" {
			id, note, err = identity.Open(cfg.FS, cfg.DataDir, rand.Reader)
			if errors.Is(err, identity.ErrEphemeral) {
				note, err = fmt.Sprintf("%v: this peer's identity lasts until it stops", err), nil
			}
		} else {
			// The key from the seed (repeatable tests); the incarnation
			// new at every start, as a restarted peer's is.
			var b [32]byte
			binary.LittleEndian.PutUint64(b[:], seed)
			if id, err = identity.New(mrand.NewChaCha8(b)); err == nil {
				id, err = id.Reborn(rand.Reader)
			}
		}
		if err != nil {
			return nil, "", fmt.Errorf("node: %w", err)
		}
	}
	if s, ok := net.(identitySetter); ok {
		s.SetIdentity(id.Public(), id.Boot())
	}
	if m, ok := net.Member(net.Name()); ok && m.Key != id.Public() {
		return nil, "", fmt.Errorf("node: the network shows this peer with identity %s, not %s: give the overlay the same key", m.Key.Short(), id.Public().Short())
	}
	cfg.Identity = id
	return id, note, nil
}

func (n *Node) logf(format string, args ...any) {
	if n.cfg.Logf != nil {
		n.cfg.Logf(format, args...)
	}
}

// Network is the network the peer runs on.
func (n *Node) Network() Network { return n.net }

// Name is the peer's node name.
func (n *Node) Name() string { return n.net.Name() }

// Members are the live peers, this one included, sorted by name.
func (n *Node) Members() []network.Member { return n.net.Members() }

// MemberStates counts the members the network knows by state (alive,
// leaving, left, failed; Serf keeps failed and left members until it
// reaps them), or is nil where the network keeps no states (fakenet).
func (n *Node) MemberStates() map[string]int {
	if s, ok := n.net.(interface{ MemberStates() map[string]int }); ok {
		return s.MemberStates()
	}
	return nil
}

// Stats returns the runtime's counters and gauges, and the lease
// keeper's: what the metrics role reads at scrape time. It takes n.mu.
func (n *Node) Stats() Stats {
	st := n.rt.counters()
	st.TagFailures, st.BadLeaseTags = n.leases.tagFailures.Load(), n.sc.badTags.count.Load()
	st.Malformed += n.leases.malformed.Load()
	c := &n.prober.counts
	st.Lost, st.FalseLost, st.Probes, st.Indirect = c.lost.Load(), c.falseLost.Load(), c.probes.Load(), c.indirect.Load()
	st.Forged, st.StaleIncarnation, st.OwnerKeyChanged = n.leases.forged.Load(), n.leases.stale.Load(), n.leases.keyChanged.Load()
	st.ForgedRecords = n.rt.seal.forged.Load()
	if n.rt.pools != nil {
		st.RelayForged = n.rt.pools.relayForged.Load()
	}
	st.Asking, st.Queued = n.rt.asking.Load(), n.rt.adm.waiting.Load()
	_, st.LeaseHeld = n.leases.current()
	st.StorageFault = n.keeper.fault() != nil
	return st
}

// PoolStats returns what the pools role shows; ok is false in a cloud of
// one pool, which has none.
func (n *Node) PoolStats() (st PoolStats, ok bool) {
	if !n.rt.pools.on() {
		return PoolStats{}, false
	}
	return n.rt.pools.stats(), true
}

// Close stops the runtime: its goroutines end, exchanges in flight give
// up, and it answers no more exchanges. The network stays up.
func (n *Node) Close() error {
	n.closing.Do(func() {
		close(n.done)
		n.cancel()
		n.leases.stop()
		n.owner.Close()
		n.wg.Wait()
		n.rt.wait()
		n.prober.close() // after the node's goroutines, which start probes
	})
	return nil
}

// closed says Close was called (the runtime shares the node's done).
func (n *Node) closed() bool { return n.rt.closed() }

// record is the peer's record with what the node itself knows added. It
// calls the Record function and the membership: never call it with n.mu
// held.
func (n *Node) record() query.Record {
	rec := query.Record{}
	for k, v := range n.cfg.Record() {
		rec[k] = v
	}
	if m, ok := n.net.Member(n.Name()); ok {
		for k, v := range m.Tags {
			rec[k] = query.Str(v)
		}
		rec["addr"] = query.Str(m.Addr)
	}
	rec["node"] = query.Str(n.Name())
	// The lease table, not the tags (which lag), says whether it is held.
	delete(rec, TagSubcloud)
	rec["reserved"] = query.Bool(false)
	delete(rec, tagOwner)
	delete(rec, tagUntil)
	delete(rec, tagSince)
	if l, ok := n.leases.current(); ok {
		rec[TagSubcloud], rec["reserved"] = query.Str(l.Subcloud), query.Bool(true)
		rec[tagOwner] = query.Str(l.Owner)
	}
	return query.DefaultCatalog().Clamp(rec)
}

// Catalog is the default catalog plus every tag the live members carry.
func (n *Node) Catalog() *query.Catalog { return catalogOf(n.net.Members()) }

// catalogOf is the built-in attributes and the tags members have.
func catalogOf(members []network.Member) *query.Catalog {
	seen := map[string]bool{}
	var tags []string
	for _, m := range members {
		for k := range m.Tags {
			if !seen[k] {
				seen[k] = true
				tags = append(tags, k)
			}
		}
	}
	sort.Strings(tags)
	return query.DefaultCatalog().WithTags(tags...)
}

// watch applies membership changes to the running queries.
func (n *Node) watch() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case e := <-n.net.Events():
			n.events.record(e, n.now())
			gone := e.Kind == network.MemberFailed || e.Kind == network.MemberLeft
			if gone {
				// Serf's verdict confirms what the queries' peers found,
				// or tells them first: out of every query at once (the
				// prober calls memberLost: not under n.mu).
				why := "failed (Serf)"
				if e.Kind == network.MemberLeft {
					why = "left"
				}
				for _, name := range e.Members {
					n.prober.declareLost(name, why, n.now())
				}
			}
			if e.Kind == network.MemberJoined {
				for _, name := range e.Members {
					n.prober.back(name) // the queries asked from now on count it
					n.rt.observer.up(name, n.now())
				}
			}
			if gone {
				for _, name := range e.Members {
					n.rt.observer.down(name, n.now())
				}
			}
			n.rt.membershipChanged(e)
			switch {
			case gone:
				why := "it failed"
				if e.Kind == network.MemberLeft {
					why = "it left"
				}
				for _, m := range e.Members {
					n.owner.MemberLost(m, why)
				}
			case e.Kind == network.MemberJoined:
				for _, m := range e.Members {
					n.owner.MemberBack(m) // a former member is back: taken back or released now
				}
			}
		}
	}
}
