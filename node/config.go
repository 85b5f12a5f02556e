package node

import (
	"context"
	mrand "math/rand/v2"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
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
	// EachMember calls fn with each live peer's name, this one included,
	// in no order and without copying the members (fn must not call the
	// membership): for the checks every peer makes every second, which
	// copying and sorting 250 members made a tenth of a 1,000-peer
	// demo's CPU.
	EachMember(fn func(name string))
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
	// not stall the others). One exchange per peer per round.
	Round, MinRound time.Duration
	// QuietRound is how long the round of a quiet peer lasts — one in no
	// query, with no news of an ended one to pass on, nothing in flight and
	// no member it suspects — when no query reaches it sooner (a query that
	// reaches a peer, or one it asks, starts its next round at once). 0 is
	// Round. A quiet round has nothing to send; ticking it every Round cost
	// the 200 peers of the demo a share of a core for nothing.
	QuietRound time.Duration
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
	// passed on (renewed while the membership lists it and a look at it
	// again finds it silent: a member that hangs stays left out, and a
	// subcloud's owner replaces a member silent that long); ProbeTries
	// how many pings an asker sends a suspect before it believes it
	// unreachable (suspect.go).
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
	// Infof, if set, receives what happens in the normal course, for the
	// operator's log at INFO: a member joined, failed, left or was reaped
	// (events.go). The embedded cluster leaves it nil: 200 peers in one
	// process would each log every other's join.
	Infof func(format string, args ...any)
	// ExportSettle is how long the membership must have been still (no
	// member joined, failed or left, nor the node started) before an
	// export's first answer is shown (Export): an answer taken while
	// members still arrive is not the cloud's — an agent that has just
	// started counts itself alone. Longer waits out slower joins; the
	// gauges are absent meanwhile. 0 shows the first complete answer.
	ExportSettle time.Duration
	// EventLog is how many membership events the peer keeps for SHOW
	// EVENTS and the API's /v1/events (Node.Events); 0 is DefaultEventLog.
	EventLog int
	// Verified remembers the signatures the peer has checked (seal.go);
	// nil gives the peer its own. Peers of one process may share one:
	// what a signature proves does not depend on who checks it (the
	// embedded cluster does, so that its 200 peers on one machine do not
	// pay 200 machines' checks).
	Verified *SignatureCache
	// ReliabilityWindow is the trailing window over which this peer
	// watches every member's availability (observe.go): a member may
	// claim no more reliability than the share of it this peer saw it
	// alive. The catalog's reliability is over 7 days.
	ReliabilityWindow time.Duration
	// ObserveSaveEvery is how often the peer saves what it observed
	// (<data-dir>/observed.json; also on Close), so that a restart keeps
	// it. 0 takes the default; without a DataDir nothing is saved.
	ObserveSaveEvery time.Duration
	// Sample is the check of this peer's gossip aggregates against an
	// independent sample of members (run.SampleCheck; sample.go):
	// Sample.Size members, chosen by a hash of the query, asked for
	// their records, signed. Size 0 checks nothing.
	Sample run.SampleCheck
	// Fanout is how many peers beyond its round's partner this peer
	// tells of a query each round while the query is young (the plan
	// alone, to peers not known to hold it: run.Instance.Announce), so
	// that a query reaches N peers in about log_{Fanout+2} N rounds
	// rather than log₂ N + ln N. 0 tells none; query.AutoFanout (the
	// default) takes the engine's for each plan (query.FanoutFor: 3 for a
	// top-k; for an aggregate, 3 from 32 peers, else 0).
	Fanout int

	// Pool names the Serf pool this peer's Network is (pools.go); "" is
	// a cloud of one pool, where every statement runs over Network alone.
	// In a pooled cloud Gateways of each pool's live members are its
	// gateways, checked every GatewayCheck, and join the cloud pool
	// through Cloud. A statement waits up to PoolTimeout for the pools
	// (less with WITH TIMEOUT), by polls each held until the reports are
	// ready (up to half of ExchangeTimeout), and one every PollEvery at
	// most of a peer that does not hold them; a pool seen in the cloud
	// pool within PoolMemory that has no gateway now makes an answer
	// partial, naming it. A gateway of this peer's pool that the cloud
	// pool has listed, unsuspected, for SplitAfter while the pool does not
	// hold it alive makes the pool's answers partial ("may be split"); a
	// dead gateway is suspected in the cloud pool within seconds. A
	// member not in the cloud pool asks a gateway of its pool every
	// LearnEvery which pools the cloud pool holds and where (learn.go),
	// to join it through them, and miss them aloud, once it is a gateway.
	Pool                                                                     string
	Gateways                                                                 int
	Cloud                                                                    Cloud
	GatewayCheck, PoolTimeout, PollEvery, PoolMemory, SplitAfter, LearnEvery time.Duration

	// BendPartial, if set, is what this peer does to its pool's partial
	// before it signs its report as a gateway: a lie, for red-team runs
	// among real agents (scripts/liar --lie gateway,
	// scripts/netns-pools-liar.sh). No agent sets it — peerq has no flag
	// for it — and a pool's partial counts only when a majority of its
	// gateways report agreeing ones, so one gateway that bends it is
	// outvoted (pools.go).
	BendPartial func(*run.Partial)
	// BendRoster, if set, is what this peer names as its pool's gateways
	// now (a report's roster, which lets a pool whose gateways died be
	// answered for by its new ones) when it reports as a gateway: a lie,
	// for red-team runs among real agents (scripts/liar --roster). No
	// agent sets it; a roster counts only when a majority of its own
	// gateways report it, and only of as many gateways as the cloud's
	// convention and all listed in the cloud pool (pools.go, current).
	BendRoster func(roster []string) []string
}

// DefaultConfig returns the runtime configuration for a peer with the
// given record.
func DefaultConfig(record func() query.Record) Config {
	return Config{Round: 100 * time.Millisecond, MinRound: 10 * time.Millisecond, QuietRound: time.Second, Record: record, MaxQueries: 512, Linger: 10,
		MaxAsk: 64, AskQueue: 0, AskWait: 10 * time.Second,
		ExchangeTimeout: 2 * time.Second, LeaseTick: time.Second, MemberCheck: 500 * time.Millisecond, CheckMisses: 1,
		HintTTL: 10 * time.Second, ProbeTries: 3, IndirectProbes: query.IndirectProbes, StorageProbe: 10 * time.Second,
		ExportSettle: 5 * time.Second, ReliabilityWindow: 7 * 24 * time.Hour, ObserveSaveEvery: time.Minute, Sample: run.DefaultSampleCheck(), Fanout: query.AutoFanout,
		Gateways: 3, GatewayCheck: time.Second, PoolTimeout: time.Minute, PollEvery: 100 * time.Millisecond, PoolMemory: 10 * time.Minute,
		SplitAfter: 90 * time.Second, LearnEvery: 30 * time.Second}
}
