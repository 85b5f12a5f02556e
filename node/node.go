package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/node/owner"
	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/subcloud"
)

// Membership is a peer's view of the cluster: overlay.Overlay over Serf,
// or fakenet.Host in tests. It must be safe for concurrent use; only
// SetTags may block. The values it deals in are node/network's, so that
// its implementations need not import node (fakenet imports no Serf).
type Membership interface {
	// Name is this peer's name.
	Name() string
	// Members are the live peers, this one included, sorted by name.
	Members() []network.Member
	Member(name string) (network.Member, bool)
	// Size is the number of live peers, this one included.
	Size() int
	// Sample picks a uniformly random live peer other than this one.
	Sample(r *mrand.Rand) (string, bool)
	// Events delivers membership changes.
	Events() <-chan network.Event
	// SetTags replaces this peer's user tags.
	SetTags(tags map[string]string) error
	// Coordinate is this peer's network coordinate, opaque; RTT estimates
	// the round-trip time to the peer with coordinate coord.
	Coordinate() []byte
	RTT(coord []byte) (time.Duration, bool)
}

// Transport carries the exchanges between peers.
type Transport interface {
	// Serve sets the handler of incoming exchanges.
	Serve(h network.Handler) error
	// Exchange sends req to peer and returns its response, giving up when
	// ctx ends.
	Exchange(ctx context.Context, peer string, req []byte) ([]byte, error)
}

// Network is what a node runs on.
type Network interface {
	Membership
	Transport
}

var _ Network = (*overlay.Overlay)(nil) // and fakenet.Host: node_test.go

// Config configures a peer's runtime.
type Config struct {
	// Rounds are paced by the network: a peer starts its next round as soon
	// as the exchanges of the last one are all back, but no sooner than
	// MinRound after its start (so that a fast network does not spin the
	// CPU) and no later than Round (so that a slow or lost exchange does
	// not stall the others; an idle peer, with nothing to exchange, ticks
	// every Round). One exchange per peer per round.
	Round, MinRound time.Duration
	// Record returns the peer's current record: its resources and anything
	// else it reports (the node adds node, addr, its tags and its lease
	// attributes). It must be safe for concurrent use; it is called
	// outside the node's lock, so it may take a few milliseconds (probes).
	Record func() query.Record
	// Tags are the peer's static tags; the node adds its lease's tags to
	// them when it is reserved.
	Tags map[string]string
	// Seed seeds the peer's random choices; 0 draws one.
	Seed uint64
	// MaxQueries bounds the queries a peer takes part in at once (its own
	// finished ones, lingering, do not count): a peer asked to join one
	// more refuses and tells the asker, which stops the query and answers
	// busy (api.ErrOverloaded: retry) rather than a partial answer; and a
	// peer asks a new one only below it. Every query reaches every peer,
	// so the queries a peer takes part in are the cloud's. 8 agents on 2
	// cores answered 504 at once, all converged, and 1000 at once with a
	// quarter partial (BENCHMARKS.md, overload): 512.
	MaxQueries int
	// MaxAsk bounds the gossip queries this peer asks at once; AskQueue
	// how many more may wait up to AskWait for a place (0: refused at
	// once). Beyond, a query is refused with api.ErrOverloaded (the API
	// answers 429 with Retry-After). It keeps a burst at every agent at
	// once within what the peers take (MaxQueries): a peer's count of the
	// cloud's queries lags a burst by the rounds the plans take to spread.
	MaxAsk, AskQueue int
	AskWait          time.Duration
	// HintTTL is how long a failure to reach a peer is remembered and
	// passed on; ProbeTries how many pings an asker sends a suspect before
	// it believes it unreachable (suspect.go).
	HintTTL    time.Duration
	ProbeTries int
	// IndirectProbes is how many other members a peer asks to ping a
	// member it could not reach (SWIM's indirect probes) before it leaves
	// that member out of its queries.
	IndirectProbes int
	// Linger is how many rounds past its budget an instance is kept, so
	// that late messages find it.
	Linger int
	// ExchangeTimeout bounds one exchange (the transport may bound it
	// sooner).
	ExchangeTimeout time.Duration
	// LeaseTick is how often the peer checks its own lease for expiry and
	// renews the subclouds it owns (at a third of their lease).
	LeaseTick time.Duration
	// MemberCheck is how often an owner asks each member of its subclouds
	// whether it still holds the lease (a check changes nothing at the
	// peer): a member that refuses it, or whose address refuses the
	// connection CheckMisses times in a row (its process is gone), is lost
	// and replaced at once, without waiting for the failure detector or
	// the lease's expiry. A check that times out counts for nothing.
	MemberCheck time.Duration
	CheckMisses int
	// DataDir keeps the peer's identity, its lease table and ledger, the
	// names it keeps and the subclouds it owns (each change on disk before
	// the answer); empty keeps them in memory (the embedded cluster).
	DataDir string
	// FS is the file system DataDir is on; nil is the real one (tests
	// crash and fail it: internal/durable/crashfs).
	FS durable.FS
	// Identity is the peer's key (identity.Open in DataDir): it signs the
	// peer's claims, renewals and releases, and its public half must be the
	// one the network shows for this peer. nil: New opens it in DataDir, or
	// makes one from Seed in memory.
	Identity *identity.Key
	// StorageProbe is how often the peer checks that its data dir can be
	// written (a probe file, written durably and removed).
	StorageProbe time.Duration
	// Clock reads the peer's wall clock: the time on its exchanges (given
	// to the overlay by StartPeer), its leases and its answers; nil is
	// time.Now. Tests set one peer's a minute off on real sockets
	// (TestTrustOverSockets), which testing/synctest cannot: its fake time
	// is one for every goroutine. Timers and tickers are not behind it:
	// they are the time package's, which under synctest is fake already,
	// so a seam for them would have no second implementation.
	Clock func() time.Time
	// Logf, if set, receives what an operator should know: members lost
	// by a subcloud, refusals.
	Logf func(format string, args ...any)
}

// DefaultConfig returns the runtime configuration for a peer with the
// given record.
func DefaultConfig(record func() query.Record) Config {
	return Config{Round: 100 * time.Millisecond, MinRound: 10 * time.Millisecond, Record: record, MaxQueries: 512, Linger: 10,
		MaxAsk: 64, AskQueue: 0, AskWait: 10 * time.Second,
		ExchangeTimeout: 2 * time.Second, LeaseTick: time.Second, MemberCheck: 500 * time.Millisecond, CheckMisses: 1,
		HintTTL: 10 * time.Second, ProbeTries: 3, IndirectProbes: query.IndirectProbes, StorageProbe: 10 * time.Second}
}

// Node is a peer's runtime. It is safe for concurrent use.
type Node struct {
	cfg Config
	net Network
	now func() time.Time // cfg.Clock
	// ctx ends when the node closes: exchanges in flight give up.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // the gossip state below
	r         *mrand.Rand
	round     int64
	roundPeer string
	names     map[peer.ID]string
	queries   map[QueryID]*instance
	// gone remembers the queries this peer has collected, until the round
	// in the value: a late message for one must not bring it back (peers
	// that joined later would otherwise keep it alive for ever).
	gone map[QueryID]int64
	// ended are the queries known to be over, with the round until which
	// this peer tells the peers it exchanges with (a rumor), so that
	// everyone drops them long before their budget.
	ended map[QueryID]int64
	// told are the queries whose end this peer has told for its rounds,
	// until the round in the value: hearing it again does not start the
	// rumor anew (it would go round for ever, each peer passing it back
	// to those that had stopped: every exchange carrying every query that
	// ever ended).
	told map[QueryID]int64
	// outTo counts the exchanges in flight to each peer (at most one).
	outTo map[string]int
	stats Stats

	// askSlots bound the queries this peer asks at once; askWaiting
	// counts those queued for a slot.
	askSlots   chan struct{}
	askWaiting atomic.Int64
	// asking counts this peer's own queries not yet answered.
	asking atomic.Int64
	// instances counts the queries this peer takes part in (running()),
	// for admission without n.mu; statementTime is the recent statements'
	// duration (an average, nanoseconds), from which a busy agent says
	// when to retry.
	instances     atomic.Int64
	statementTime atomic.Int64
	// exchangeTime is the recent exchanges' round trip (an average,
	// nanoseconds): how long a round waits for its exchange.
	exchangeTime atomic.Int64
	// inflight counts the exchanges this peer started that are not back;
	// roundDone says they all are: the next round may start. failed says
	// one of the round's exchanges got no answer: the round then lasts its
	// full Round, so that a peer that fails fast (not yet known to the
	// other side, shutting down) does not spin the rounds and burn the
	// query's budget in milliseconds.
	inflight  atomic.Int64
	failed    atomic.Bool
	idle      atomic.Bool // the last round sent nothing
	roundDone chan struct{}

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
	// badTags are the members' lease tags that did not parse (leaseView).
	badTags badTags
	// metrics is the metrics role: the collector, its histograms and the
	// standing queries /metrics shows (Export).
	metrics *metrics
	// owner is the owner role: the subclouds this peer owns.
	owner *owner.Role
	// prober finds the members lost while queries run (suspect.go).
	prober *prober
	// calls are this peer's lease requests: as owner, name client, member.
	calls *leaseCalls
	// claiming are the subclouds a RESERVE is registering the name of, by
	// name, with their tokens, until the owner role has them: an ask about
	// one is answered "held" (guarded by claimMu).
	claimMu  sync.Mutex
	claiming map[string]string

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
	n := &Node{cfg: cfg, net: net, now: cfg.Clock, ctx: ctx, cancel: cancel,
		r:     mrand.New(mrand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		names: map[peer.ID]string{}, queries: map[QueryID]*instance{}, gone: map[QueryID]int64{}, ended: map[QueryID]int64{}, told: map[QueryID]int64{},
		outTo: map[string]int{}, askSlots: make(chan struct{}, cfg.MaxAsk), roundDone: make(chan struct{}, 1),
		id: id, fs: cfg.FS, keeper: keeper, claiming: map[string]string{},
		done: make(chan struct{})}
	// The prober before Serve: an exchange may come in at once.
	n.prober = newProber(ctx, proberConfig{HintTTL: cfg.HintTTL, ProbeTries: cfg.ProbeTries, IndirectProbes: cfg.IndirectProbes,
		ExchangeTimeout: cfg.ExchangeTimeout, MinRound: cfg.MinRound, Now: cfg.Clock, Rand: mrand.New(mrand.NewPCG(seed, 0xbb67ae8584caa73b)),
		ExchangeTime: func() time.Duration { return time.Duration(n.exchangeTime.Load()) }}, net, n.memberLost)
	n.calls = &leaseCalls{name: net.Name(), id: id, net: net, timeout: cfg.ExchangeTimeout,
		bootOf: func(p string) uint64 { return n.leases.bootOf(p) }, self: func(from string, msg []byte) []byte { return n.leases.handle(from, msg) }}
	// The roles of subclouds' peer side (lease.go, names.go); the name
	// keepers' back-off draws from its own source, not the gossip's n.r.
	n.nameKeepers = &nameKeepers{self: n.Name(), members: n.memberNames, call: n.calls, round: cfg.Round, ctx: ctx,
		r: mrand.New(mrand.NewPCG(seed, 0x6a09e667f3bcc909))}
	n.leases = newLeaseKeeper(&leaseKeeper{keeper: keeper, net: net, boot: id.Boot(), now: cfg.Clock, tags: cfg.Tags,
		owner: n, call: n.calls, names: n.nameKeepers, ask: cfg.ExchangeTimeout / 2, tick: cfg.LeaseTick, probeEvery: cfg.StorageProbe, logf: logf})
	keeper.probe() // says so at once if the data dir cannot be written
	if err := net.Serve(n.serve); err != nil {
		cancel()
		return nil, err
	}
	n.owner, err = owner.New(ownerConfig(cfg, n.Name(), n.r.Uint64()), ownerEnv{calls: n.calls, peer: n, names: n.nameKeepers, fs: cfg.FS, dir: cfg.DataDir, stored: keeper.stored, now: n.now, logf: n.logf}, owned, func(p string) bool {
		_, ok := net.Member(p)
		return ok
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("node: owned subclouds: %w", err)
	}
	n.metrics = newMetrics(metricsSource{runtime: n, owner: n.owner, net: net})
	n.wg.Add(2)
	go n.loop()
	go n.watch()
	n.leases.start() // a restarted peer shows the lease it still holds
	for _, note := range append(notes, idNote, ownedNote) {
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
	n.mu.Lock()
	st := n.stats
	st.Running = int64(len(n.queries))
	n.mu.Unlock()
	st.TagFailures, st.BadLeaseTags = n.leases.tagFailures.Load(), n.badTags.count.Load()
	st.Malformed += n.leases.malformed.Load()
	c := &n.prober.counts
	st.Lost, st.FalseLost, st.Probes, st.Indirect = c.lost.Load(), c.falseLost.Load(), c.probes.Load(), c.indirect.Load()
	st.Forged, st.StaleIncarnation, st.OwnerKeyChanged = n.leases.forged.Load(), n.leases.stale.Load(), n.leases.keyChanged.Load()
	st.Asking, st.Queued = n.asking.Load(), n.askWaiting.Load()
	_, st.LeaseHeld = n.leases.current()
	st.StorageFault = n.keeper.fault() != nil
	return st
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
		n.prober.close() // after the node's goroutines, which start probes
	})
	return nil
}

func (n *Node) closed() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

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

// recordFor is the record for a query asked from the peer at coordinate
// coord: with its rtt to the asker.
func (n *Node) recordFor(base query.Record, coord []byte) query.Record {
	rec := make(query.Record, len(base)+1)
	for k, v := range base {
		rec[k] = v
	}
	if d, ok := n.net.RTT(coord); ok {
		rec["rtt"] = query.Num(query.KindDuration, d.Seconds())
	}
	return query.DefaultCatalog().Clamp(rec)
}

// Catalog is the default catalog plus every tag the live members carry.
func (n *Node) Catalog() *query.Catalog {
	seen := map[string]bool{}
	var tags []string
	for _, m := range n.net.Members() {
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

// memberNames are the live members' names: whom a top-k's coverage
// filter must hold. It takes no lock of the node's (it is called under
// n.mu, and without).
func (n *Node) memberNames() []string {
	ms := n.net.Members()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// alive is the top-k cores' view of the membership: the live members, this
// peer included.
func (n *Node) alive(name string) bool {
	if name == n.Name() {
		return true
	}
	_, ok := n.net.Member(name)
	return ok
}

// sampler gives the cores the round's peer: every query of a round
// exchanges with the same peer, in one message. It is called under n.mu.
type sampler struct{ n *Node }

func (s sampler) Sample(*mrand.Rand) (peer.ID, bool) {
	if s.n.roundPeer == "" {
		return 0, false
	}
	return peerID(s.n.roundPeer), true
}

// roundPartner draws the round's peer from the membership, passing over
// (a few times) the members this peer found lost lately: Serf lists them
// until its verdict — seconds, or never for one that came back in time —
// and an exchange with one carries nothing and costs the round. ""
// without one. Called with n.mu held.
func (n *Node) roundPartner() string {
	var peer string
	for try := 0; try < 4; try++ {
		p, ok := n.net.Sample(n.r)
		if !ok {
			return ""
		}
		peer = p
		if !n.prober.isLost(p) {
			break
		}
	}
	return peer
}

// loop drives the rounds.
func (n *Node) loop() {
	defer n.wg.Done()
	last := n.now()
	for {
		select {
		case <-n.done:
			return
		case <-n.roundDone:
			if n.inflight.Load() > 0 || n.failed.Load() {
				// Something new to gossip (a query joined or asked), but
				// the last round's exchanges are still out: a round that
				// started now would count without hearing them, and burn
				// the queries' budgets in rounds that carry nothing new
				// (with many askers, joins come all the time). Wait for
				// them, or Round. An exchange that failed re-arms the
				// wait: that round lasts its full Round.
				continue
			}
			// The last round's exchanges are back: go on, after MinRound.
			if d := n.cfg.MinRound - n.now().Sub(last); d > 0 {
				select {
				case <-n.done:
					return
				case <-time.After(d):
				}
			}
		case <-time.After(max(n.roundLength()-n.now().Sub(last), 0)):
		}
		last = n.now()
		n.tick()
	}
}

// roundLength is how long a round may last: Round, unless its exchanges
// are still out — then three times the recent exchanges' average round
// trip, at least two MinRounds, at most ExchangeTimeout. A round that
// starts before its exchanges are back may count without hearing them
// (on a machine busy enough every round did, and budgets ran out: 13% of
// 200 statements at once on 8 agents), hence the wait, which grows with
// the exchanges' time on a loaded machine or a slow network; rounds that
// heard nothing do not spend the budget (run.Instance). But one dead or
// slow partner must not hold a peer's rounds much longer than a typical
// exchange: waiting two Rounds for it (as before) held a peer that met a
// dead member for 40 of a LAN's 10 ms rounds — three times, with the
// retries — and under churn many peers stopped mixing while the asker,
// calm, answered without their mass mixed in (GROUP BY averages 1–3% off
// at 60 peers, 60%/min).
func (n *Node) roundLength() time.Duration {
	if n.inflight.Load() == 0 || n.idle.Load() || n.failed.Load() {
		// Nothing out, the last round sent nothing (its partners'
		// exchanges still out) or one of its exchanges failed: a full
		// Round, not a spin.
		return n.cfg.Round
	}
	return min(max(2*n.cfg.MinRound, 3*time.Duration(n.exchangeTime.Load())), n.cfg.ExchangeTimeout)
}

// watch applies membership changes to the running queries.
func (n *Node) watch() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case e := <-n.net.Events():
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
				}
			}
			n.mu.Lock()
			for _, q := range n.queries {
				q.membershipChanged(e)
			}
			n.mu.Unlock()
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

// tick runs one round: every live instance takes its turn, the messages go
// out grouped by peer, one exchange each, and the replies come back in.
// Progress and answers are handed to their callers after the lock is let
// go.
func (n *Node) tick() {
	// The member set is read (O(N)) only by a peer that asks something.
	var members map[string]bool
	if n.asking.Load() > 0 {
		members = n.memberSet()
	}
	now := n.now()
	n.mu.Lock()
	n.stats.Rounds++
	n.round++
	peer := n.roundPartner()
	n.roundPeer = peer
	if peer != "" {
		n.names[peerID(peer)] = peer
	}
	for id, until := range n.gone {
		if n.round > until {
			delete(n.gone, id)
		}
	}
	for id, until := range n.told {
		if n.round > until {
			delete(n.told, id)
		}
	}
	n.prober.tick(n.round, now)
	out := map[string][]entry{}
	var reports []report
	for id, q := range n.queries {
		if q.expired(n.round, n.cfg.Linger, now, n.prober.findWithin()) {
			n.collect(id, q)
			continue
		}
		if q.origin && q.run.Final() {
			continue // lingering: counting down, sending nothing
		}
		q.run.Tick()
		for _, env := range q.run.Outbox() {
			if to := n.names[env.To]; to != "" {
				out[to] = append(out[to], q.entry(env.Msg, true, env.To))
			}
		}
		if q.origin {
			if !q.reported {
				q.noteSkew(n.prober.skewed(now, true, func(m string) bool { return members[m] }), members)
			}
			suspects := n.prober.suspects(func(name string) bool { return members[name] && !q.out(name) })
			pending, grace := n.prober.probeSuspects(suspects)
			if q.run.Spent() && q.awaitProbes(suspects, pending, grace, now) {
				continue
			}
			q.run.Hold(now.Sub(q.started) < n.prober.findWithin())
			if len(q.refused) > 0 && !q.reported {
				// A peer at capacity would not join: the answer would
				// leave it out. Stop, and say busy — retry — rather than
				// answer partial.
				q.reported, q.finishedAt = true, n.round
				n.end(q.id, len(members))
				reports = append(reports, report{q: q, busy: n.busy(fmt.Sprintf("%d peer(s) were at capacity and would not take part (%s)",
					len(q.refused), strings.Join(sortedNames(q.refused, nil), ", ")))})
				continue
			}
			if rp, ok := q.report(n.round, n.now(), members, suspects); ok {
				if rp.final != nil {
					n.end(q.id, len(members)) // over: the news spreads
				}
				if rp.unreadable != nil {
					n.stats.Unreadable++
					n.logf("query %s (%s): %s", q.planHash, q.run.Plan().Text, rp.final.Reason)
				}
				reports = append(reports, rp)
			}
		}
	}
	// The news that queries ended goes with the round's exchange.
	if peer != "" {
		for id, until := range n.ended {
			if n.round > until {
				delete(n.ended, id)
				n.told[id] = n.round + int64(4*(query.MaxRounds+n.cfg.Linger))
				continue
			}
			out[peer] = append(out[peer], entry{ID: id, Kind: protoEnd})
		}
	}
	for to := range out {
		if n.outTo[to] > 0 {
			// One exchange in flight per peer: the last one to it is not
			// back (slow, or dead and being verified). This round's
			// messages to it are dropped, as lost ones are (the cores
			// retry); sending more would pile exchanges onto a peer that
			// may be gone, one a round until it is found lost.
			delete(out, to)
			n.stats.Skipped++
			continue
		}
		n.outTo[to]++
	}
	hints := n.prober.hints(now)
	n.instances.Store(int64(n.running()))
	n.mu.Unlock()
	for _, rp := range reports {
		rp.deliver()
	}
	n.failed.Store(false)
	n.idle.Store(len(out) == 0)
	n.inflight.Add(int64(len(out)))
	for to, es := range out {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if !n.exchange(to, batch{Hints: hints, Entries: es}) {
				n.failed.Store(true)
				n.wake() // the round's length changed: the loop re-arms
			}
			if n.inflight.Add(-1) == 0 && !n.failed.Load() {
				n.wake()
			}
		}()
	}
}

// wake lets the next round start after MinRound rather than Round: the
// last round's exchanges are back, or there is something new to gossip
// (a query joined or asked) and an idle peer must not sit out a Round.
func (n *Node) wake() {
	select {
	case n.roundDone <- struct{}{}:
	default:
	}
}

// collect forgets an instance, remembering its id for a while so that late
// messages do not bring it back. Called with n.mu held.
func (n *Node) collect(id QueryID, q *instance) {
	delete(n.queries, id)
	n.gone[id] = n.round + int64(4*(run.MaxRoundsFactor*q.run.Budget()+n.cfg.Linger))
}

// end records that a query is over: this peer drops its instance (unless
// it asked it) and spreads the news for as many rounds as the query took
// to spread, once (not if it has told it already). Called with n.mu held.
func (n *Node) end(id QueryID, peers int) {
	if _, ok := n.ended[id]; ok {
		return
	}
	if _, ok := n.told[id]; !ok { // told already: not anew
		n.ended[id] = n.round + int64(query.SpreadRounds(max(peers, 2)))
	}
	if q := n.queries[id]; q != nil && !q.origin {
		n.collect(id, q)
		n.stats.Ended++
	}
}

// memberSet is the live members by name. Never call it with n.mu held.
func (n *Node) memberSet() map[string]bool {
	ms := n.net.Members()
	set := make(map[string]bool, len(ms))
	for _, m := range ms {
		set[m.Name] = true
	}
	return set
}

// exchange sends one batch and steps the replies; it reports whether the
// round may go on at once: the peer answered, or refused the connection.
func (n *Node) exchange(to string, req batch) bool {
	body := encodeBatch(req)
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ExchangeTimeout)
	sent := n.now()
	slow := n.prober.suspectIfSlow(to)
	resp, err := n.net.Exchange(ctx, to, body)
	close(slow)
	cancel()
	now := n.now()
	if err == nil {
		noteTime(&n.exchangeTime, now.Sub(sent))
	} else {
		n.prober.failedWith(to, err, now) // before n.mu: a refused connection is a loss (memberLost)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.outTo[to]--; n.outTo[to] <= 0 {
		delete(n.outTo, to)
	}
	n.stats.Exchanges++
	n.stats.BytesSent += int64(len(body))
	if err != nil {
		n.stats.Failed++
		// A refused connection is an answer: the peer is gone (and now
		// lost), and the next round need not wait a Round for it.
		return errors.Is(err, network.ErrNoEndpoint)
	}
	n.prober.reached(to, now)
	n.stats.BytesReceived += int64(len(resp))
	replies, err := decodeBatch(resp)
	if err != nil {
		n.stats.Malformed++
		return false
	}
	n.prober.takeHints(replies.Hints, now)
	from := peerID(to)
	answered := make(map[QueryID]bool, len(replies.Entries))
	for _, r := range replies.Entries {
		answered[r.ID] = true
		if r.Kind == protoEnd {
			n.end(r.ID, n.net.Size())
			continue
		}
		if q := n.queries[r.ID]; q != nil && q.kind == r.Kind {
			if !n.takeExcluded(q, r.Excluded, to) {
				continue
			}
			if err := q.run.Step(from, r.Msg); err != nil {
				n.stats.Malformed++
			} else {
				q.heard(from)
			}
		}
	}
	// A peer that answered nothing to a request sent without the plan no
	// longer has the query (it restarted, or let it go): the next request
	// carries the plan again.
	for _, e := range req.Entries {
		if q := n.queries[e.ID]; q != nil && e.Plan == nil && !answered[e.ID] {
			delete(q.has, from)
		}
	}
	return true
}

// serve answers an exchange: lease requests go to the lease table, every
// other entry to its query, joining the queries this peer has not heard
// of, and the replies go back in one batch.
func (n *Node) serve(from string, req []byte) ([]byte, error) {
	if n.closed() {
		return nil, errors.New("node: closed")
	}
	b, err := decodeBatch(req)
	now := n.now()
	n.mu.Lock()
	n.stats.Served++
	n.stats.BytesReceived += int64(len(req))
	if err != nil {
		n.stats.Malformed++
	} else {
		n.prober.reached(from, now)
		n.prober.takeHints(b.Hints, now)
	}
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var replies, gossip []entry
	for _, e := range b.Entries {
		switch e.Kind {
		case protoLease:
			// The lease table persists before it answers: not under n.mu.
			replies = append(replies, entry{Kind: protoLease, Msg: n.leases.handle(from, e.Msg)})
		case protoProbe:
			replies = append(replies, n.prober.answerProbe(e.Asker)) // a ping: not under n.mu
		default:
			gossip = append(gossip, e)
		}
	}
	var rec query.Record
	if n.joins(gossip) {
		rec = n.record()
	}
	peers := n.net.Size()
	src := peerID(from)
	n.mu.Lock()
	n.names[src] = from
	for _, e := range gossip {
		switch e.Kind {
		case protoEnd:
			n.end(e.ID, peers)
			continue
		case protoRefuse:
			if q := n.queries[e.ID]; q != nil && q.origin {
				q.refuse(from)
			}
			continue
		}
		q := n.queries[e.ID]
		if q == nil {
			_, over := n.ended[e.ID]
			if _, told := n.told[e.ID]; over || told {
				replies = append(replies, entry{ID: e.ID, Kind: protoEnd}) // the requester can drop it too
				continue
			}
			if q, err = n.join(e, rec); err != nil {
				continue
			}
		}
		if q.kind != e.Kind {
			n.stats.Malformed++
			continue
		}
		if !n.takeExcluded(q, e.Excluded, from) {
			continue // this peer is left out of it: it gives no more
		}
		if err := q.run.Step(src, e.Msg); err != nil {
			n.stats.Malformed++
			continue
		}
		q.heard(src)
		for _, env := range q.run.Outbox() {
			replies = append(replies, q.entry(env.Msg, false, src))
		}
	}
	resp := encodeBatch(batch{Hints: n.prober.hints(now), Entries: replies})
	n.stats.BytesSent += int64(len(resp))
	n.mu.Unlock()
	return resp, nil
}

// takeExcluded merges the members a peer says are left out of query q, as
// the answer's peers found them, and reports whether this peer still takes
// part (it is not one of them). Called with n.mu held.
func (n *Node) takeExcluded(q *instance, names []string, from string) bool {
	for _, x := range names {
		if x == n.Name() && !q.origin {
			n.collect(q.id, q) // the others undo what it gave: it gives no more
			n.stats.Excluded++
			return false
		}
		q.exclude(x, "lost while it ran, as its peers found")
	}
	return true
}

// memberLost leaves a member the prober found lost out of every query
// this peer takes part in (each spreads the news with its messages). The
// prober calls it without n.mu.
func (n *Node) memberLost(name, why string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, q := range n.queries {
		q.exclude(name, why)
	}
}

// joins reports whether a batch holds a query this peer would join: its
// record must then be read, before taking the lock.
func (n *Node) joins(es []entry) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range es {
		if e.Kind != protoAggregate && e.Kind != protoTopK {
			continue
		}
		if _, ok := n.queries[e.ID]; !ok {
			if _, over := n.gone[e.ID]; !over {
				return true
			}
		}
	}
	return false
}

// running counts the queries that hold a place: all but the asker's own
// finished ones, lingering. Called with n.mu held.
func (n *Node) running() int {
	k := 0
	for _, q := range n.queries {
		if !(q.origin && q.run.Final()) {
			k++
		}
	}
	return k
}

// join creates this peer's instance of a query it hears of. Called with
// n.mu held; rec is the peer's record, read before. A peer at MaxQueries
// refuses, and tells the asker once.
func (n *Node) join(e entry, rec query.Record) (*instance, error) {
	if _, ok := n.gone[e.ID]; ok {
		n.stats.Stale++
		return nil, errors.New("node: query already over here")
	}
	if n.running() >= n.cfg.MaxQueries || n.loaded() != "" {
		n.stats.Refused++
		// Remember the refusal for the query's life, and say it once.
		n.gone[e.ID] = n.round + int64(4*(query.MaxRounds+n.cfg.Linger))
		if e.Asker != "" && e.Asker != n.Name() {
			id, asker := e.ID, e.Asker
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ExchangeTimeout)
				defer cancel()
				body := encodeBatch(batch{Entries: []entry{{ID: id, Kind: protoRefuse}}})
				_, err := n.net.Exchange(ctx, asker, body)
				// Unheard, the asker takes this peer for slow: its answer
				// waits, or is partial, rather than busy. Counted as any
				// exchange that got no answer.
				n.mu.Lock()
				n.stats.Exchanges++
				n.stats.BytesSent += int64(len(body))
				if err != nil {
					n.stats.Failed++
				}
				n.mu.Unlock()
			}()
		}
		return nil, errors.New("node: too many queries")
	}
	if rec == nil {
		return nil, errors.New("node: no record") // the batch changed between the two looks
	}
	plan, err := query.Decode(e.Plan)
	if err != nil {
		n.stats.Malformed++
		return nil, err
	}
	q, err := n.bind(e.ID, plan, e.Plan, e.Origin, e.Asker, e.Coverage, false, n.recordFor(rec, e.Origin), n.net.Size())
	if err != nil || q.kind != e.Kind {
		n.stats.Malformed++
		return nil, fmt.Errorf("cannot join the query: %v", err)
	}
	q.run.JoinAt(int(e.Round))
	n.stats.Joined++
	n.queries[e.ID] = q
	n.instances.Add(1)
	n.wake()
	return q, nil
}

// bind makes this peer's instance of a plan, bound to this runtime — its
// random source, the round's peer, the membership — with rec as its
// contribution, or its ledger's rows FROM leases. Called with n.mu held:
// rec is read before.
func (n *Node) bind(id QueryID, plan *query.Plan, wire, coord []byte, asker string, coverage uint32, origin bool, rec query.Record, peers int) (*instance, error) {
	rows := []query.Record{rec}
	if plan.Table == query.TableLeases {
		rows = n.leases.ledgerRows()
	}
	return newInstance(id, plan, wire, coord, asker, coverage, origin, rows, n.now(), run.Config{Peers: peers, Rand: n.r, Sampler: sampler{n},
		Alive: n.alive, Linger: n.cfg.Linger, CheckReceived: true, Retries: -1, SelfID: peerID(n.Name()), IDOf: peerID, Self: n.Name(), Members: n.memberNames})
}

func newQueryID() QueryID {
	var id QueryID
	rand.Read(id[:])
	return id
}

// ErrTimeout is returned, with the partial answer, when WITH TIMEOUT ends a
// query before it converged.
var ErrTimeout = api.ErrTimeout

// ErrClosed is returned for queries cut short by the node closing.
var ErrClosed = errors.New("the peer is shutting down")

// statement runs a plan: Query without EXPLAIN, WATCH's refusal, the
// metrics and the answer's common meta.
func (n *Node) statement(ctx context.Context, plan *query.Plan, progress func(answer.Progress), start time.Time) (*answer.Answer, error) {
	if plan.Subcloud != "" {
		// A subcloud's members are the leases of its one owner; a name
		// nobody holds is an error, not an empty answer after a gossip run.
		owner, ok := n.subcloudOwner(ctx, plan.Subcloud)
		if !ok {
			return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("unknown subcloud %s: no agent owns it", plan.Subcloud)}
		}
		plan = plan.OwnedBy(owner)
		if plan.FromTags && owner != n.Name() {
			// Only the owner knows its members at once; the tags at any
			// other agent lag behind them. Every member knows its own
			// lease exactly: ask them (gossip) instead.
			fresh := *plan
			fresh.FromTags = false
			plan = &fresh
		}
	}
	switch {
	case plan.Empty():
		return &answer.Answer{Columns: plan.AnswerColumns(), Meta: &answer.Meta{Status: StatusExact, Converged: true, Peers: n.net.Size(), PlanHash: plan.Hash(),
			Elapsed: n.now().Sub(start).Seconds()}}, nil
	case plan.Kind == query.PlanReserve:
		return n.reserve(ctx, plan, progress)
	case plan.Kind == query.PlanLocal && plan.Local.Release != "":
		return n.release(ctx, plan)
	case plan.Kind == query.PlanLocal && plan.Local.Alter != nil:
		return n.alter(ctx, plan)
	case plan.Kind == query.PlanLocal:
		return n.local(ctx, plan, start)
	case plan.FromTags:
		return n.fromMembership(plan, start)
	case n.net.Size() == 1:
		return n.alone(plan, start)
	}
	return n.gossip(ctx, plan, progress)
}

// ErrOverloaded is returned when this peer already asks as many queries
// as it may and its queue is full (or the wait for a place ran out).
var ErrOverloaded = api.ErrOverloaded

// admittedKey marks a context whose query already holds a place.
type admittedKey struct{}

// Admit takes a place for a query this peer asks: at once if one is free,
// else after waiting in a bounded queue; ErrOverloaded when the queue is
// full or the wait runs out. The returned context carries the place, so
// that the query run with it (or the several gossip rounds of a RESERVE)
// takes no other; the function gives it back. The HTTP API admits before
// it answers, so that it can say 429.
func (n *Node) Admit(ctx context.Context) (context.Context, func(), error) {
	if ctx.Value(admittedKey{}) != nil {
		return ctx, func() {}, nil
	}
	release, err := n.admit(ctx)
	if err != nil {
		return ctx, nil, err
	}
	return context.WithValue(ctx, admittedKey{}, true), release, nil
}

func (n *Node) admit(ctx context.Context) (func(), error) {
	if why := n.loaded(); why != "" {
		n.mu.Lock()
		n.stats.Overloaded++
		n.mu.Unlock()
		return nil, n.busy(why)
	}
	var once sync.Once
	release := func() { once.Do(func() { <-n.askSlots }) }
	select {
	case n.askSlots <- struct{}{}:
		return release, nil
	default:
	}
	if n.askWaiting.Add(1) > int64(n.cfg.AskQueue) {
		n.askWaiting.Add(-1)
		n.mu.Lock()
		n.stats.Overloaded++
		n.mu.Unlock()
		return nil, n.busy(fmt.Sprintf("it asks %d queries at once (max_ask), %d more may wait", n.cfg.MaxAsk, n.cfg.AskQueue))
	}
	defer n.askWaiting.Add(-1)
	var wait <-chan time.Time
	if n.cfg.AskWait > 0 {
		wait = time.After(n.cfg.AskWait)
	}
	select {
	case n.askSlots <- struct{}{}:
		return release, nil
	case <-wait:
		n.mu.Lock()
		n.stats.Overloaded++
		n.mu.Unlock()
		return nil, n.busy(fmt.Sprintf("no place for %v (it asks %d queries at once)", n.cfg.AskWait, n.cfg.MaxAsk))
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.done:
		return nil, ErrClosed
	}
}

// loaded says why this peer takes no new query now ("" if it does): it
// takes part in MaxQueries already — the cloud's queries, since every one
// reaches every peer.
func (n *Node) loaded() string {
	if k := n.instances.Load(); k >= int64(n.cfg.MaxQueries) {
		return fmt.Sprintf("%s takes part in %d queries at once (max_queries %d)", n.Name(), k, n.cfg.MaxQueries)
	}
	return ""
}

// busy is the error of a query refused for load, with when to retry: the
// recent statements' duration (at least 1 s).
func (n *Node) busy(why string) error {
	wait := time.Duration(n.statementTime.Load())
	secs := max(int(math.Ceil(2*wait.Seconds())), 1)
	e := api.Busy(min(secs, 60), why)
	e.Cause = ErrOverloaded
	return e
}

// noteTime folds one measure into an average kept in an atomic.
func noteTime(avg *atomic.Int64, d time.Duration) {
	old := avg.Load()
	if old == 0 {
		avg.Store(int64(d))
		return
	}
	avg.Store(old + (int64(d)-old)/8)
}

// gossip runs a plan by gossip from this peer.
func (n *Node) gossip(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, error) {
	ctx, release, err := n.Admit(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	n.asking.Add(1)
	defer n.asking.Add(-1)
	start := n.now()
	wire, err := plan.Encode()
	if err != nil {
		return nil, err
	}
	// This peer's network coordinate travels beside the plan, so that
	// every peer can compute its rtt to the asker.
	coord := n.net.Coordinate()
	rec := n.recordFor(n.record(), coord)
	members := n.memberSet()
	peers := len(members)
	id := newQueryID()
	n.mu.Lock()
	var coverage uint32
	if run.ProtocolOf(plan.Kind) == run.TopK {
		coverage = uint32(run.CoverageFor(peers))
	}
	q, err := n.bind(id, plan, wire, coord, n.Name(), coverage, true, rec, peers)
	if err != nil {
		n.mu.Unlock()
		return nil, err
	}
	q.progress, q.started, q.atStart = progress, start, members
	// Members this peer found lost lately are left out from the start:
	// a query asked now would otherwise wait to find them again.
	for name, why := range n.prober.lostLately(start) {
		if members[name] {
			q.exclude(name, why)
		}
	}
	n.queries[id] = q
	n.instances.Add(1)
	n.mu.Unlock()
	n.wake()

	var deadline <-chan time.Time
	if plan.TimeoutSeconds > 0 {
		deadline = time.After(time.Duration(plan.TimeoutSeconds * float64(time.Second)))
	}
	select {
	case out := <-q.result:
		if out.busy != nil {
			return nil, out.busy
		}
		return out.ans, nil
	case <-deadline:
		return n.partial(q, ErrTimeout)
	case <-ctx.Done():
		return n.partial(q, ctx.Err())
	case <-n.done:
		return n.partial(q, ErrClosed)
	}
}

// stoppedError is a query stopped early: a sentence for people, the cause
// for errors.Is.
type stoppedError struct {
	err error
	msg string
}

func (e *stoppedError) Error() string { return e.msg }
func (e *stoppedError) Unwrap() error { return e.err }

// partial stops a query early and returns its current answer with err.
func (n *Node) partial(q *instance, err error) (*answer.Answer, error) {
	members := n.memberSet()
	n.mu.Lock()
	q.run.Stop()
	if !q.reported {
		q.reported, q.finishedAt = true, n.round
		n.end(q.id, len(members))
	}
	suspects := n.prober.suspects(func(name string) bool { return members[name] && !q.out(name) })
	a, rerr := q.run.Answer(q.population(members))
	n.mu.Unlock()
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	res := q.result1(a, members, suspects, n.now())
	res.Converged, res.Status = false, StatusPartial
	why := err.Error()
	switch {
	case errors.Is(err, context.Canceled):
		why = "canceled" // Ctrl-C, or the client went away
	case errors.Is(err, context.DeadlineExceeded):
		why = "the client's time limit ended it"
	}
	res.Reason = why
	return res, &stoppedError{err: err, msg: fmt.Sprintf("%s after %d rounds", why, a.Rounds)}
}
