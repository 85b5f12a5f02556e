package node

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/strictcbor"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/parser"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// The pools role (docs/PROTOCOLS.md, "Pools"): a cloud of many Serf LAN
// pools, each a few hundred to a few thousand peers, joined by a
// cloud-wide Serf pool of their gateways — Consul's LAN pools and WAN pool
// of servers, Astrolabe's zones and their representatives.
//
// A pool's gateways are the Config.Gateways live members whose names hash
// lowest (Gateways: every member computes the same set from its own
// membership, and a failed gateway is replaced as soon as the pool's
// failure detector declares it). A gateway joins the cloud pool
// (Config.Cloud) and leaves it when it stops being one.
//
// A statement asked in a pooled cloud goes to a gateway of the asker's
// pool (the coordinator), which asks a majority of every pool's gateways
// (the others only when those do not agree: coordinatePool) to run it in
// their own pool as an ordinary asker and polls them for their reports:
// the pool's mergeable partial (run.Partial) with its status, signed by
// the gateway's identity. The asker polls the coordinator, then
// checks every report itself — the signature, the query, the plan, the
// gateway's key against the cloud pool's (and, for its own pool, its own
// membership's) — and counts a pool's partial only when a majority of
// that pool's gateways report agreeing ones (the same rows, numbers
// within the plan's accuracy): one lying gateway is outvoted, two that
// disagree with no majority make the answer contested, naming the pool; a
// pool whose gateways do not answer makes it partial, naming the pool.
// The merge is run.Merge: exactly one contribution per pool.

// CloudNetwork is a gateway's membership of the cloud pool: a network it
// leaves when it stops being a gateway.
type CloudNetwork interface {
	Network
	Leave() error
	Shutdown() error
}

// Cloud joins a gateway to the cloud-wide pool.
type Cloud interface {
	// Join makes the peer named name, of pool, a member of the cloud
	// pool with its identity id and a tag pool=pool, and joins it to the
	// pool's other members (through, among others, the other gateways of
	// its pool, whose gossip addresses in the pool are gateways, and the
	// cloud pool's addresses its pool's gateways told it, learned); the
	// node serves the returned network's exchanges.
	Join(ctx context.Context, name, pool string, id *identity.Key, gateways, learned []string) (CloudNetwork, error)
}

// TagPool is the tag that names a peer's pool, in its pool and in the
// cloud pool; `pool` is an attribute (query.WellKnownTags). TagGateway
// is, in the cloud pool, the gateway's name in its own pool: its name in
// the cloud pool is its own (a gateway that comes back is a new member
// there, as Serf wants).
const (
	TagPool    = "pool"
	TagGateway = "gateway"
)

// CheckPoolName says why name cannot name a pool, or nil: pool/name
// names a member of another pool (relay.go), so a pool's name holds no /
// (and, as a node's name, no space).
func CheckPoolName(name string) error {
	if strings.ContainsAny(name, "/ ") {
		return fmt.Errorf("bad pool name %q: it holds a / or a space (pool/name names a member of another pool)", name)
	}
	return nil
}

// Gateways are the names of a pool's k gateways among its live members:
// those whose names hash lowest (FNV-1a, ties by name). Every member
// computes the same set from the same membership.
func Gateways(members []network.Member, k int) []string {
	g := gatewayPick{k: k}
	for _, m := range members {
		g.add(m.Name)
	}
	return g.names()
}

// gatewayPick keeps the k names that hash lowest, in order, as they are
// offered one at a time: a pool's gateways without copying or sorting its
// members. Every peer checks once a second whether it is one; copying
// and sorting 250 members for it was a tenth of the CPU of a 1,000-peer
// demo in 4 pools (`peerq demo --cpuprofile`), whose peers then suspected
// each other for the lack of the rest.
type gatewayPick struct {
	k  int
	rs []rankedName
}

type rankedName struct {
	h    uint64
	name string
}

func (a rankedName) less(b rankedName) bool { return a.h < b.h || a.h == b.h && a.name < b.name }

func (g *gatewayPick) add(name string) {
	r := rankedName{hash64(name), name} // FNV-1a
	i := len(g.rs)
	for i > 0 && r.less(g.rs[i-1]) {
		i--
	}
	if i >= g.k {
		return
	}
	g.rs = slices.Insert(g.rs, i, r)
	if len(g.rs) > g.k {
		g.rs = g.rs[:g.k]
	}
}

func (g *gatewayPick) names() []string {
	out := make([]string, len(g.rs))
	for i, r := range g.rs {
		out[i] = r.name
	}
	return out
}

// The role's operations: an asker's to a gateway of its pool (over the
// pool's exchanges), a coordinator's to the gateways (over the cloud
// pool's).
const (
	opCloudStart = iota + 1 // coordinate this statement across the pools
	opCloudPoll             // what have the pools reported?
	opPoolStart             // run this statement in your pool
	opPoolPoll              // your pool's report, if it is done
)

type poolReq struct {
	Op   int    `cbor:"1,keyasint"`
	ID   []byte `cbor:"2,keyasint"`
	Plan []byte `cbor:"3,keyasint,omitempty"`
	// Wait makes a poll a long poll: the answer waits until the run (or
	// the coordination) is done, or this many milliseconds have passed
	// (at most half of the asked peer's exchange time: pools.hold), so
	// that a report comes back when it is ready rather than at the next
	// poll. In a relay it is the time the sender's hop has: the gateway
	// answers within most of it (hopTime).
	Wait int64 `cbor:"4,keyasint,omitempty"`
	// Pool, Names: a vouch's (relay.go); Pool, To, Msg, From: a relayed
	// lease request's — the member's pool and name, the request, and the
	// sender as pool/name (set by its pool's gateway).
	Pool  string   `cbor:"5,keyasint,omitempty"`
	Names []string `cbor:"6,keyasint,omitempty"`
	To    string   `cbor:"7,keyasint,omitempty"`
	Msg   []byte   `cbor:"8,keyasint,omitempty"`
	From  string   `cbor:"9,keyasint,omitempty"`
}

type poolResp struct {
	Done    bool         `cbor:"1,keyasint,omitempty"`
	Reports []poolReport `cbor:"2,keyasint,omitempty"`
	Pools   []poolView   `cbor:"3,keyasint,omitempty"`
	Err     string       `cbor:"4,keyasint,omitempty"`
	// Vouch and Sig: a gateway's signed vouchBody; Msg and Sig: a
	// relayed reply, signed by the member; Unreachable: the member is
	// not live in its pool (relay.go).
	Vouch       []byte `cbor:"5,keyasint,omitempty"`
	Sig         []byte `cbor:"6,keyasint,omitempty"`
	Msg         []byte `cbor:"7,keyasint,omitempty"`
	Unreachable bool   `cbor:"8,keyasint,omitempty"`
	// Seeds and Held: what a gateway tells a member of its pool of the
	// cloud pool (opLearn): addresses there of other pools' gateways,
	// and the pools it holds.
	Seeds []string `cbor:"9,keyasint,omitempty"`
	Held  []string `cbor:"10,keyasint,omitempty"`
	// Unchanged says Held is the list the member was told last (its
	// digest in the request's Msg), left out.
	Unchanged bool `cbor:"11,keyasint,omitempty"`
}

// poolView is a pool as the coordinator saw it in the cloud pool: its
// gateways and their keys; a pool seen lately with none has no Gateways.
type poolView struct {
	_        struct{} `cbor:",toarray"`
	Name     string
	Gateways []string // names in their pool
	Keys     [][]byte
	// at are the gateways' names in the cloud pool, by Gateways' index:
	// the coordinator's, not sent.
	at []string
}

// poolReport is a gateway's signed report of its pool's run.
type poolReport struct {
	_       struct{} `cbor:",toarray"`
	Gateway string
	Body    []byte // an encoded reportBody
	Sig     []byte
}

type reportBody struct {
	ID      []byte  `cbor:"1,keyasint"`
	Pool    string  `cbor:"2,keyasint"`
	Plan    string  `cbor:"3,keyasint"` // the plan's hash
	Status  string  `cbor:"4,keyasint"`
	Reason  string  `cbor:"5,keyasint,omitempty"`
	Peers   int     `cbor:"6,keyasint"`
	Rounds  int     `cbor:"7,keyasint"`
	Elapsed float64 `cbor:"8,keyasint"`
	Partial []byte  `cbor:"9,keyasint,omitempty"`
	// Check is the verdict of the pool's own sample check (run.SampleCheck).
	Check string `cbor:"10,keyasint,omitempty"`
	// Owner is, for a statement FROM SUBCLOUD, the owner of that name in
	// the gateway's pool ("": none there); the pool ran it over that
	// owner's members (ownerOf).
	Owner string `cbor:"11,keyasint,omitempty"`
	// Width is, for a pool whose sample stood in for its bent gossip
	// (status sampled), the sample's widest relative half-width at 95%.
	Width float64 `cbor:"12,keyasint,omitempty"`
	// Excluded names the members the gateway's run left out of the
	// partial, lost while it ran (the first answer.MaxNamed, sorted);
	// ExcludedCount is how many it left out.
	Excluded      []string `cbor:"13,keyasint,omitempty"`
	ExcludedCount int      `cbor:"14,keyasint,omitempty"`
	// Members and MembersEnd digest the pool's members, each by name and
	// incarnation, as the gateway found them when its run began and when
	// it ended (membersDigest): two honest runs that disagree because a
	// member restarted between them count as many peers, but not the
	// same members (changed).
	Members    uint64 `cbor:"15,keyasint,omitempty"`
	MembersEnd uint64 `cbor:"16,keyasint,omitempty"`
	// Lacks names the attributes the plan reads that no member of the
	// pool has as a tag, nor is built in (lacking): a tag the asker's
	// pool lacks may be another pool's (Catalog.Open); if every pool
	// lacks it, the asker says it is unknown, as a cloud of one pool
	// does. Sent only then: a report without it is read by agents that
	// predate it.
	Lacks []string `cbor:"17,keyasint,omitempty"`
	// Tags names, for a plan that asks (Plan.ListTags: SHOW ATTRIBUTES),
	// the tags some member of the pool carries, sorted (the first
	// maxPoolTags); MoreTags is how many more there are.
	Tags     []string `cbor:"18,keyasint,omitempty"`
	MoreTags int      `cbor:"19,keyasint,omitempty"`
	// Roster is the pool's gateways as the gateway's pool listed them
	// when its run began (Gateways), sorted by name. The cloud pool lists
	// a gateway that died until its failure detector declares it — 30 s
	// to minutes in the WAN profile — and the pool's new gateways, had
	// they to outvote the dead ones too, could not: its answers were
	// partial all that while (helper-71: 45–75 s). A roster that most of
	// its own gateways report is the pool's (current).
	Roster []string `cbor:"20,keyasint,omitempty"`
}

// maxRoster bounds the gateways a report's Roster names (a pool has
// Config.Gateways, 3 by default).
const maxRoster = 64

// maxPoolTags bounds the tags a pool's report names: Serf gives a member
// 512 bytes of tags, so a pool whose members each carry tags of their own
// could name thousands; past this many, SHOW ATTRIBUTES says how many it
// leaves out.
const maxPoolTags = 256

// tagNames are the tags of cat (catalogOf) that the default catalog does
// not hold — the well-known ones (zone, region, ...) every catalog has — in
// order.
func tagNames(cat *query.Catalog) []string {
	known := query.DefaultCatalog().Names()
	var out []string
	for _, name := range cat.Names() {
		if !slices.Contains(known, name) {
			out = append(out, name)
		}
	}
	return out
}

// poolTags is a pool's Tags and MoreTags, from its member list.
func poolTags(members []network.Member) ([]string, int) {
	tags := tagNames(catalogOf(members))
	if len(tags) > maxPoolTags {
		return tags[:maxPoolTags], len(tags) - maxPoolTags
	}
	return tags, 0
}

// tagsOK says a report's Tags are what an honest gateway sends: only if
// asked, in order, at most maxPoolTags, each a name tagNames would list
// (a user's tag, not in the default catalog).
func tagsOK(plan *query.Plan, tags []string, more int) bool {
	if !plan.ListTags {
		return len(tags) == 0 && more == 0
	}
	known := query.DefaultCatalog().Names()
	return more >= 0 && more <= maxExcludedCount && (more == 0 || len(tags) == maxPoolTags) && len(tags) <= maxPoolTags &&
		inOrder(tags) && !slices.ContainsFunc(tags, func(t string) bool { return !query.UserTag(t) || slices.Contains(known, t) })
}

// statusFailed is a report's status when its pool gave no answer.
const statusFailed = "failed"

// reportDomain separates a report's signatures from the identity's others.
const reportDomain = "peerq pool report v1"

// poolDec reads maps of up to 32 pairs: reportBody has 16 fields, as
// many as a decoder of 16 reads, and the next field would have made
// every full report unreadable.
var poolDec = strictcbor.DecMode(6, 4096, 32)

// reportEnc encodes the report bodies gateways sign: deterministically,
// so that one report is one byte string (crossCheck compares them).
var reportEnc = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// decodePool reads one of the role's messages from the network, bounded.
func decodePool(b []byte, v any) error {
	if len(b) > maxField {
		return fmt.Errorf("%w: a pool message of %d bytes", ErrMalformed, len(b))
	}
	if err := poolDec.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

func encodePool(v any) []byte {
	b, err := cbor.Marshal(v)
	if err != nil {
		panic(err) // our own types: cannot fail
	}
	return b
}

// pools is the role. Its lock guards the maps and cloud; no I/O runs
// under it.
type pools struct {
	cfg  Config
	lan  Network
	id   *identity.Key
	rt   *runtime
	logf func(string, ...any)
	// quiet holds back a gateway's failures logged again within a
	// minute (quietLog): an outage recurs with every statement.
	quiet quietLog
	now   func() time.Time
	ctx   context.Context

	// streak counts the checks in a row that disagreed with what this
	// peer is (a gateway in the cloud pool or not): it changes only after
	// gatewayStreak of them, so that a membership in flux (a pool
	// forming, a member flapping) does not churn the cloud pool.
	streak int
	// healed is when this gateway last joined its seeds again (Heal).
	healed time.Time

	mu    sync.Mutex
	cloud CloudNetwork
	// strange holds, by name, the gateways of this pool that the cloud
	// pool lists and this pool does not hold alive, since when (tend);
	// alone is since when the cloud pool has held no pool but this one
	// while the agent was given seeds of it, and aloneSaid whether that
	// was logged.
	strange   map[string]strangeGateway
	alone     time.Time
	aloneSaid bool
	runs      map[QueryID]*poolRun
	coords    map[QueryID]*coordRun
	joinErr   string
	// learned is what this peer knows of the cloud pool from its pool's
	// gateways, or as one (learn.go): where to join it and which pools it
	// should find there when it becomes a gateway. learning says an ask
	// is out, learnedAt when the last began, asked how many there were
	// (each asks another gateway), told the last list of pools told,
	// learnErr the last ask's failure. held is, at
	// a gateway, what it tells; tries counts its joins and heals that
	// could use a learned address (each uses the next).
	learned   learnedCloud
	learning  bool
	learnedAt time.Time
	asked     int
	told      []string
	learnErr  string
	held      cloudHeld
	tries     int
	// bend, if set, is a lying gateway's lie (tests, and
	// Config.BendPartial): what it does to its pool's partial before it
	// signs it.
	bend func(*run.Partial)
	// ownerOf finds the owner of a subcloud's name in this peer's pool
	// (subclouds.subcloudOwner), for a statement FROM SUBCLOUD; a test's
	// liar changes it (under mu).
	ownerOf func(ctx context.Context, name string) (string, bool)
	// fromTags is this pool's partial of a statement that reads only
	// the membership, from this peer's member list (Node.tagsPartial).
	fromTags func(plan *query.Plan, start time.Time) (*answer.Answer, *run.Partial, error)
	// serveLease is the lease keeper's answer to a lease request
	// (leaseKeeper.handle), for one relayed from another pool.
	serveLease func(from string, msg []byte) []byte
	// lieVouch, if set, is a lying gateway's lie (tests): what it does
	// to the keys it vouches for before it signs.
	lieVouch func(*vouchBody)
	// tags are the other pools' tags as a SHOW ATTRIBUTES here last
	// found them (a majority of each pool's gateways naming them), with
	// when; tagsAsked when one last ran or was started for completion
	// (otherTags).
	tags      map[string]time.Time
	tagsAsked time.Time
	// bendRoster, if set, is a lying gateway's lie (tests, and
	// Config.BendRoster): the roster it reports for its pool instead of
	// its pool's gateways.
	bendRoster func([]string) []string

	// known are the keys this peer believes for other pools' members, as
	// its pool's gateways vouched for them; gateKeys, at a gateway, those
	// it believes as the other pools' gateways did (relay.go).
	known, gateKeys keyring
	// relaying holds a place for each vouch or relay this gateway serves
	// its pool's members, and relayingIn for each relay from another
	// pool it delivers to one of them (maxRelaying each: neither way can
	// take the other's places).
	relaying, relayingIn chan struct{}
	// relayingBy counts, under inMu, the places of relayingIn each
	// sending gateway holds (takeIn).
	inMu       sync.Mutex
	relayingBy map[string]int
	// answered are the relayed lease requests this peer answered lately,
	// with its replies (relay.go: deliver).
	answered replies
	// relayForged counts relayed replies not signed by the member they
	// came from.
	relayForged atomic.Int64
	// failing are the gateways a relay through or a pool run at failed
	// lately, tried last (relay.go: failing).
	failing failing
	// relays counts the relays this peer served as a gateway, by way
	// (relayOut, relayIn) and outcome; busy the vouches and relays it
	// refused at maxRelaying; ran (under mu) the pool runs it made for
	// coordinators, by its partial's status (PoolStats).
	relays [len(relayWays)][len(relayResults)]atomic.Int64
	busy   atomic.Int64
	ran    map[string]int64
}

// The ways and outcomes of a relay a gateway served (PoolStats.Relays).
const (
	relayWayOut = iota // for a member of its pool, to another pool's gateways
	relayWayIn         // from another pool, to a member of its own
)

const (
	relayDelivered   = iota // the member's signed reply
	relayUnreachable        // the member is not live in its pool
	relayFailed             // no answer in time, or refused
)

var (
	relayWays    = [...]string{relayWayOut: "out", relayWayIn: "in"}
	relayResults = [...]string{relayDelivered: "delivered", relayUnreachable: "unreachable", relayFailed: "failed"}
)

// countRelay counts a relay served by way, by its outcome.
func (p *pools) countRelay(way int, r poolResp) {
	result := relayFailed
	switch {
	case len(r.Msg) > 0:
		result = relayDelivered
	case r.Unreachable:
		result = relayUnreachable
	}
	p.relays[way][result].Add(1)
}

type poolRun struct {
	at     time.Time
	report *poolReport   // nil while it runs
	ended  chan struct{} // closed once report is set
}

type coordRun struct {
	at      time.Time
	ended   chan struct{} // closed once every pool reported, failed or timed out
	view    []poolView
	reports []poolReport
}

// closed says whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// pollWait is how long a peer's polls ask to be held for the reports to
// be ready (poolReq.Wait): half an exchange's time, so that a held poll is
// back well within it.
func pollWait(cfg Config) time.Duration { return cfg.ExchangeTimeout / 2 }

// hold holds a poll until ended is closed, wait has passed (capped at
// half an exchange's time: a requester cannot hold this peer's
// connection longer), ctx ends, or the peer stops.
func (p *pools) hold(ctx context.Context, ended <-chan struct{}, waitMillis int64) {
	wait := pollWait(p.cfg) // a wait past it, however large, is capped before it is multiplied
	if waitMillis < wait.Milliseconds() {
		wait = time.Duration(max(waitMillis, 0)) * time.Millisecond
	}
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ended:
	case <-t.C:
	case <-ctx.Done():
	case <-p.ctx.Done():
	}
}

// pace keeps a polling loop from spinning on a peer that does not hold
// its polls (one that answered sooner than PollEvery, not done): it
// sleeps the rest of PollEvery, or until ctx ends.
func (p *pools) pace(ctx context.Context, began time.Time) {
	if rest := p.cfg.PollEvery - time.Since(began); rest > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(rest):
		}
	}
}

func newPools(cfg Config, lan Network, id *identity.Key, rt *runtime, ctx context.Context, logf func(string, ...any)) *pools {
	return &pools{cfg: cfg, lan: lan, id: id, rt: rt, logf: logf, quiet: quietLog{every: time.Minute}, now: cfg.Clock, ctx: ctx, bend: cfg.BendPartial, bendRoster: cfg.BendRoster,
		runs: map[QueryID]*poolRun{}, coords: map[QueryID]*coordRun{},
		relaying: make(chan struct{}, maxRelaying), relayingIn: make(chan struct{}, maxRelaying)}
}

// maxRelaying bounds the vouches and relays a gateway serves its pool's
// members at once (each costs exchanges over the cloud pool), and apart
// the relays from other pools it delivers to them (each an exchange in
// its pool, held up to its hop's time): the next is refused at once,
// busy, and the relay's sender tries another gateway of the pool (a
// refusal is not a gateway that hangs: farError). Without the second
// bound, another pool's gateway — a stranger — could hold any number of
// this one's exchanges waiting on members that do not answer.
const maxRelaying = 64

// maxRelayingFrom bounds the places of relayingIn one sending gateway
// holds at once: a stranger's gateway relaying to members that hang
// cannot take all 64 and have every other pool's relays refused.
const maxRelayingFrom = 16

// takeIn holds a place for a relay from another pool's gateway, from
// (its name in the cloud pool, which its exchange authenticated), or says
// why not: busy, counted.
func (p *pools) takeIn(from string) (release func(), busy string) {
	p.inMu.Lock()
	if p.relayingBy[from] >= maxRelayingFrom {
		p.inMu.Unlock()
		p.busy.Add(1)
		return nil, fmt.Sprintf("%s is busy: %d relays from %s at once; retry in a second, or through another gateway", p.lan.Name(), maxRelayingFrom, from)
	}
	if p.relayingBy == nil {
		p.relayingBy = map[string]int{}
	}
	p.relayingBy[from]++
	p.inMu.Unlock()
	done := func() {
		p.inMu.Lock()
		if p.relayingBy[from]--; p.relayingBy[from] <= 0 {
			delete(p.relayingBy, from)
		}
		p.inMu.Unlock()
	}
	place, busy := p.take(p.relayingIn, "relays from other pools")
	if place == nil {
		done()
		return nil, busy
	}
	return func() { place(); done() }, ""
}

// take holds a place in places for a vouch or a relay, or says why not:
// busy, counted (PoolStats.Busy). what names what the places are for.
func (p *pools) take(places chan struct{}, what string) (release func(), busy string) {
	select {
	case places <- struct{}{}:
		return func() { <-places }, ""
	default:
		p.busy.Add(1)
		return nil, fmt.Sprintf("%s is busy: %d %s at once; retry in a second", p.lan.Name(), cap(places), what)
	}
}

// on says whether the cloud is pooled.
func (p *pools) on() bool { return p != nil && p.cfg.Pool != "" }

// loop keeps this peer in the cloud pool while it is one of its pool's
// gateways, and forgets old runs, until ctx ends.
func (p *pools) loop(done <-chan struct{}) {
	t := time.NewTicker(p.cfg.GatewayCheck)
	defer t.Stop()
	for {
		p.tend()
		select {
		case <-done:
			p.mu.Lock()
			c := p.cloud
			p.cloud = nil
			p.mu.Unlock()
			if c != nil {
				p.logf("pools: leaving the cloud pool: this peer stops")
				_ = c.Leave() // best effort: the others' detector finds it anyway
				if err := c.Shutdown(); err != nil {
					p.logf("pools: leaving the cloud pool: %v", err)
				}
			}
			return
		case <-t.C:
		}
	}
}

// gatewayStreak is how many checks in a row (Config.GatewayCheck apart)
// must find this peer chosen, or not, before it joins or leaves the
// cloud pool. While 1,000 peers formed 4 pools, joining at once made 835
// members of the cloud pool, 3 left.
const gatewayStreak = 3

// healEvery is how often a gateway on sockets joins its seeds again, so
// that cloud pools started apart become one.
const healEvery = 10 * time.Second

// isGateway says whether this peer is one of its pool's gateways now.
func (p *pools) isGateway() bool {
	g := gatewayPick{k: p.cfg.Gateways}
	p.lan.EachMember(g.add)
	return slices.Contains(g.names(), p.lan.Name())
}

func (p *pools) tend() {
	now := p.now()
	gw := p.isGateway()
	p.mu.Lock()
	c := p.cloud
	for id, r := range p.runs {
		if now.Sub(r.at) > 2*p.cfg.PoolTimeout {
			delete(p.runs, id)
		}
	}
	for id, r := range p.coords {
		if now.Sub(r.at) > 2*p.cfg.PoolTimeout {
			delete(p.coords, id)
		}
	}
	p.mu.Unlock()
	if gw != (c != nil) {
		p.streak++
	} else {
		p.streak = 0
	}
	change := p.streak >= gatewayStreak
	switch {
	case gw && c == nil && p.cfg.Cloud != nil && change:
		ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
		var others []string
		ms := p.lan.Members()
		for _, g := range Gateways(ms, p.cfg.Gateways) {
			if m, ok := p.lan.Member(g); ok && g != p.lan.Name() {
				others = append(others, m.Addr)
			}
		}
		p.mu.Lock()
		learned := p.learned.next(p.tries)
		p.tries++
		p.mu.Unlock()
		nc, err := p.cfg.Cloud.Join(ctx, p.lan.Name(), p.cfg.Pool, p.id, others, learned)
		cancel()
		if err == nil {
			err = nc.Serve(p.serveCloud)
			if err != nil {
				_ = nc.Shutdown()
			}
		}
		var line string
		p.mu.Lock()
		if err != nil {
			if p.joinErr != err.Error() {
				line = fmt.Sprintf("pools: this peer is a gateway of pool %s but could not join the cloud pool: %v", p.cfg.Pool, err)
			}
			p.joinErr = err.Error()
		} else {
			p.cloud, p.joinErr = nc, ""
			p.forgetCloud() // nothing said: it was said on leaving
			line = fmt.Sprintf("pools: this peer is a gateway of pool %s: joined the cloud pool (%d members)", p.cfg.Pool, nc.Size())
		}
		p.mu.Unlock()
		if line != "" {
			p.logf("%s", line) // not under p.mu: every pool operation takes it
		}
		if err != nil {
			p.askToLearn(now) // the gateways it was to join through may be gone
		}
	case !gw && c != nil && change:
		p.mu.Lock()
		p.cloud = nil
		alone := p.forgetCloud()
		p.mu.Unlock()
		if alone != "" {
			p.logf("%s", alone)
		}
		p.logf("pools: this peer is no longer a gateway of pool %s: leaving the cloud pool", p.cfg.Pool)
		_ = c.Leave()
		if err := c.Shutdown(); err != nil {
			p.logf("pools: leaving the cloud pool: %v", err)
		}
	case c == nil && p.cfg.Cloud != nil:
		p.askToLearn(now)
	case c != nil:
		if h, ok := c.(interface {
			Heal(context.Context, []string)
		}); ok && now.Sub(p.healed) >= healEvery {
			p.healed = now
			var learned []string
			if !slices.ContainsFunc(c.Members(), func(m network.Member) bool { return m.Tags[TagPool] != p.cfg.Pool }) {
				// No other pool here: one of the addresses learned, a
				// different one each heal.
				p.mu.Lock()
				learned = p.learned.next(p.tries)
				p.tries++
				p.mu.Unlock()
			}
			ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			h.Heal(ctx, learned)
			cancel()
		}
		now = p.now() // Heal may have taken seconds
		members := c.Members()
		// A gateway that died is suspected in the cloud pool within a
		// probe or two, long before it is declared failed there (which in
		// memberlist's WAN profile takes 6·log10(N)·5 s or more: 90 s at
		// 1,000 members); a stray of the same name answers its probes.
		var suspect map[string]bool
		if sc, ok := c.(interface{ Suspects() map[string]bool }); ok {
			suspect = sc.Suspects()
		}
		strange := map[string]strangeGateway{}
		others := false
		for _, m := range members {
			if m.Tags[TagPool] != p.cfg.Pool {
				others = true
			} else if g := m.Tags[TagGateway]; g != "" && !suspect[m.Name] {
				if _, alive := p.lan.Member(g); !alive {
					strange[g] = strangeGateway{at: m.Name, addr: m.Addr, since: now}
				}
			}
		}
		p.mu.Lock()
		for g, sg := range strange {
			if old, ok := p.strange[g]; ok && old.at == sg.at {
				strange[g] = old // listed since then
			}
		}
		p.strange = strange
		line := p.noteAlone(now, others)
		p.holding(members, now)
		p.mu.Unlock()
		if line != "" {
			p.logf("%s", line) // not under p.mu: every pool operation takes it
		}
	}
}

// joinNumber is the count of a gateway's joins of the cloud pool that its
// name there ends with (name.pool.N: socketCloud, EmbeddedCloud); 0 if
// none.
func joinNumber(cloudName string) int {
	n, err := strconv.Atoi(cloudName[strings.LastIndexByte(cloudName, '.')+1:])
	if err != nil {
		return 0
	}
	return n
}

// view is the cloud pool's pools with their gateways, as this gateway
// sees them, and the pools it has known of lately (p.learned.pools:
// seen there within PoolMemory, or told of by its pool's gateways before
// it was one) that have none now — a pool that vanished, or one this
// gateway cannot reach (every gateway of its pool died at once, and none
// of the addresses it learned answers): named, partial, not left out.
func (p *pools) view(c CloudNetwork) []poolView {
	byPool := map[string]*poolView{}
	for _, m := range c.Members() {
		name := m.Tags[TagPool]
		if name == "" {
			continue
		}
		v := byPool[name]
		if v == nil {
			v = &poolView{Name: name}
			byPool[name] = v
		}
		g := m.Tags[TagGateway]
		if g == "" {
			continue
		}
		key := m.Key.Bytes()
		if i := slices.IndexFunc(v.Gateways, func(h string) bool { return h == g }); i >= 0 && bytes.Equal(v.Keys[i], key) {
			// The same gateway twice: a join of the cloud pool that timed
			// out after a seed took its state left that name listed
			// alive, and the gateway joined again under the next
			// (helper-76: "b1.b.2" beside "b1.b.3", b1 counted twice
			// among pool b's gateways until the cloud pool declared the
			// first failed). Its latest join is the one that answers.
			if joinNumber(m.Name) > joinNumber(v.at[i]) {
				v.at[i] = m.Name
			}
			continue
		}
		v.Gateways = append(v.Gateways, g)
		v.Keys = append(v.Keys, key)
		v.at = append(v.at, m.Name)
	}
	for _, name := range p.otherPools() {
		if byPool[name] == nil {
			byPool[name] = &poolView{Name: name}
		}
	}
	out := make([]poolView, 0, len(byPool))
	for _, v := range byPool {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// tagsFresh is how often completion asks the pools for their tags
// (otherTags), at most.
const tagsFresh = time.Minute

// noteTags keeps the other pools' tags a SHOW ATTRIBUTES found at now.
func (p *pools) noteTags(names []string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tags == nil {
		p.tags = map[string]time.Time{}
	}
	for _, t := range names {
		p.tags[t] = now
	}
	for t, at := range p.tags {
		if now.Sub(at) >= p.cfg.PoolMemory {
			delete(p.tags, t)
		}
	}
	p.tagsAsked = now
}

// otherTags are the other pools' tags found within PoolMemory, for
// completion (Node.Words); ask is true when the pools were last asked
// tagsFresh ago or more (or never): the caller asks them, and a minute
// passes before the next is told to.
func (p *pools) otherTags(now time.Time) (names []string, ask bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, at := range p.tags {
		if now.Sub(at) < p.cfg.PoolMemory {
			names = append(names, t)
		}
	}
	slices.Sort(names)
	if ask = p.tagsAsked.IsZero() || now.Sub(p.tagsAsked) >= tagsFresh; ask {
		p.tagsAsked = now
	}
	return names, ask
}

// shape is what this peer knows of the pooled cloud, for EXPLAIN: its
// pool, and at a gateway the pools the cloud pool lists.
func (p *pools) shape() query.CloudShape {
	s := shapeOf(p.cfg, p.lan.Size(), Gateways(p.lan.Members(), p.cfg.Gateways))
	c := p.cloudNet()
	if c != nil {
		s.Pools = []string{}
		for _, v := range p.view(c) {
			s.Pools = append(s.Pools, v.Name)
		}
	}
	return s
}

// shapeOf is EXPLAIN's view of a cloud of pools from a peer of cfg.Pool,
// of peers live members, mine its gateways (the cloud pool's pools are
// the caller's to add).
func shapeOf(cfg Config, peers int, mine []string) query.CloudShape {
	return query.CloudShape{Pool: cfg.Pool, PoolPeers: peers, Gateways: cfg.Gateways, Asked: majority(cfg.Gateways), Mine: mine,
		PollWait: pollWait(cfg).Seconds(), PollEvery: cfg.PollEvery.Seconds(), Timeout: cfg.PoolTimeout.Seconds()}
}

// ExplainShape is EXPLAIN's view of a cloud of n peers spread over pools
// pools as an embedded cluster spreads them (peer i in pool i % pools),
// from a gateway of pool0, with DefaultConfig's gateways, polls and
// timeout: what peerq explain --pools shows without a cloud.
func ExplainShape(n, pools int) query.CloudShape {
	cfg := DefaultConfig(nil)
	cfg.Pool = PoolName(0)
	var members []network.Member
	for i := 0; i < n; i += pools {
		members = append(members, network.Member{Name: query.SyntheticName(i)})
	}
	s := shapeOf(cfg, len(members), Gateways(members, cfg.Gateways))
	for k := range pools {
		s.Pools = append(s.Pools, PoolName(k))
	}
	return s
}

// serveLAN answers an asker of this peer's pool (a protoPool entry).
func (p *pools) serveLAN(from string, msg []byte) []byte { return p.answerLAN(p.ctx, from, msg) }

// answerLAN is serveLAN; a poll is held no longer than ctx (an asker's
// own, when it asks itself).
func (p *pools) answerLAN(ctx context.Context, from string, msg []byte) []byte {
	var req poolReq
	if err := decodePool(msg, &req); err != nil {
		return encodePool(poolResp{Err: err.Error()})
	}
	if req.Op == opLearn {
		return encodePool(p.tell(from, req.Msg))
	}
	if req.Op == opDeliver {
		// To any member, from a gateway of its pool: within half an
		// exchange, or most of what the gateway's hop has (relay.go).
		ctx, cancel := context.WithTimeout(ctx, hopTime(p.cfg.ExchangeTimeout/2, req.Wait))
		defer cancel()
		return encodePool(p.deliver(ctx, req))
	}
	var id QueryID
	if len(req.ID) != len(id) {
		return encodePool(poolResp{Err: "a pool request without a query id"})
	}
	copy(id[:], req.ID)
	c := p.cloudNet()
	if c == nil {
		if slices.Contains(Gateways(p.lan.Members(), p.cfg.Gateways), p.lan.Name()) {
			return encodePool(poolResp{Err: fmt.Sprintf("%s is a gateway of pool %s but %s (a gateway joins it after %d checks, %v apart; "+
				"if this lasts, its log says why)", p.lan.Name(), p.cfg.Pool, notJoinedYet, gatewayStreak, p.cfg.GatewayCheck)})
		}
		return encodePool(poolResp{Err: fmt.Sprintf("%s is not a gateway of pool %s now", p.lan.Name(), p.cfg.Pool)})
	}
	if req.Op == opVouch || req.Op == opRelay {
		release, busy := p.take(p.relaying, "vouches and relays for its pool's members")
		if release == nil {
			return encodePool(poolResp{Err: busy})
		}
		defer release()
	}
	switch req.Op {
	case opVouch:
		ctx, cancel := context.WithTimeout(ctx, p.cfg.ExchangeTimeout/2)
		defer cancel()
		if len(req.Names) == 0 || len(req.Names) > maxVouch {
			return encodePool(poolResp{Err: fmt.Sprintf("a vouch asks about 1 to %d members, not %d", maxVouch, len(req.Names))})
		}
		return encodePool(p.vouchFor(ctx, c, req.Pool, req.Names))
	case opRelay:
		ctx, cancel := context.WithTimeout(ctx, hopTime(p.cfg.ExchangeTimeout*3/4, req.Wait))
		defer cancel()
		resp := p.relayOut(ctx, c, from, req)
		p.countRelay(relayWayOut, resp)
		return encodePool(resp)
	case opCloudStart:
		plan, err := query.Decode(req.Plan)
		if err != nil {
			return encodePool(poolResp{Err: err.Error()})
		}
		view := p.view(c)
		p.mu.Lock()
		if p.coords[id] == nil {
			cr := &coordRun{at: p.now(), view: view, ended: make(chan struct{})}
			p.coords[id] = cr
			go p.coordinate(c, id, req.Plan, plan, cr)
		}
		p.mu.Unlock()
		return encodePool(poolResp{})
	case opCloudPoll:
		p.mu.Lock()
		cr := p.coords[id]
		p.mu.Unlock()
		if cr == nil {
			return encodePool(poolResp{Err: "no such statement"})
		}
		p.hold(ctx, cr.ended, req.Wait) // not under p.mu
		p.mu.Lock()
		defer p.mu.Unlock()
		return encodePool(poolResp{Done: closed(cr.ended), Reports: slices.Clone(cr.reports), Pools: cr.view})
	}
	return encodePool(poolResp{Err: fmt.Sprintf("operation %d is not for a pool's members", req.Op)})
}

// serveCloud answers another gateway in the cloud pool.
func (p *pools) serveCloud(from string, msg []byte) ([]byte, error) {
	return p.answerCloud(p.ctx, from, msg)
}

// answerCloud is serveCloud; a poll is held no longer than ctx (a
// coordinator's own, when it asks itself).
func (p *pools) answerCloud(ctx context.Context, from string, msg []byte) ([]byte, error) {
	var req poolReq
	if err := decodePool(msg, &req); err != nil {
		return nil, err
	}
	var id QueryID
	if len(req.ID) != len(id) {
		return nil, fmt.Errorf("%w: a pool request without a query id", ErrMalformed)
	}
	copy(id[:], req.ID)
	switch req.Op {
	case opVouch:
		if req.Pool != p.cfg.Pool || len(req.Names) == 0 || len(req.Names) > maxVouch {
			return nil, fmt.Errorf("%w: a vouch for pool %s of %d members, at a gateway of pool %s", ErrMalformed, req.Pool, len(req.Names), p.cfg.Pool)
		}
		return encodePool(p.vouchOwn(req.Names)), nil
	case opRelay:
		release, busy := p.takeIn(from)
		if release == nil {
			return encodePool(poolResp{Err: busy}), nil
		}
		defer release()
		ctx, cancel := context.WithTimeout(ctx, hopTime(p.cfg.ExchangeTimeout/2, req.Wait))
		defer cancel()
		resp := p.relayIn(ctx, req)
		p.countRelay(relayWayIn, resp)
		return encodePool(resp), nil
	case opPoolStart:
		plan, err := query.Decode(req.Plan)
		if err != nil {
			// Said, not a closed connection: a gateway of another build
			// refuses a plan it cannot read, and must not look hung.
			return encodePool(poolResp{Err: fmt.Sprintf("this gateway cannot read the plan: %v", err)}), nil
		}
		p.startRun(id, plan)
		return encodePool(poolResp{}), nil
	case opPoolPoll:
		p.mu.Lock()
		r := p.runs[id]
		p.mu.Unlock()
		if r == nil {
			return encodePool(poolResp{Err: "no such statement"}), nil
		}
		p.hold(ctx, r.ended, req.Wait) // not under p.mu
		p.mu.Lock()
		defer p.mu.Unlock()
		if r.report == nil {
			return encodePool(poolResp{}), nil
		}
		return encodePool(poolResp{Done: true, Reports: []poolReport{*r.report}}), nil
	}
	return nil, fmt.Errorf("%w: operation %d is not for the cloud pool", ErrMalformed, req.Op)
}

// startRun runs plan in this gateway's pool, once per query.
func (p *pools) startRun(id QueryID, plan *query.Plan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runs[id] != nil {
		return
	}
	r := &poolRun{at: p.now(), ended: make(chan struct{})}
	p.runs[id] = r
	go func() {
		rep, status := p.runPool(id, plan)
		p.mu.Lock()
		r.report = &rep
		if p.ran == nil {
			p.ran = map[string]int64{}
		}
		p.ran[status]++ // a few statuses: the map stays small
		p.mu.Unlock()
		close(r.ended)
	}()
}

// runHere runs plan in this peer's pool as its asker: the pool's answer
// and partial, and for a statement FROM SUBCLOUD the owner whose members
// it ran over. A gateway reports it (runPool); an asker whose pool's
// gateways all fail answers with it (Node.ownPoolOnly).
func (p *pools) runHere(ctx context.Context, id QueryID, plan *query.Plan, start time.Time) (a *answer.Answer, part *run.Partial, owner string, err error) {
	if plan.Owner != "" {
		// The asker fixed the owner (pool/name): its members are in any
		// pool, and their leases name it by name in its own pool and as
		// pool/name in the others (relay.go).
		owner = plan.Owner
		plan = plan.OwnedBy(nameIn(plan.Owner, p.cfg.Pool))
	} else if plan.Subcloud != "" {
		// A subcloud lives in its owner's pool (its leases and its name's
		// keepers are there): the pool runs the statement over the members
		// of the owner its keepers name, and says which; a pool where
		// nobody owns the name runs it over nobody (owner ""), which
		// gives its partial the plan's shape with nothing in it.
		p.mu.Lock()
		ownerOf := p.ownerOf
		p.mu.Unlock()
		owner, _ = ownerOf(ctx, plan.Subcloud)
		plan = plan.OwnedBy(owner)
	}
	switch {
	case plan.Subcloud != "" && owner == "":
		// Nobody here owns the name: the partial of a pool whose members
		// hold none of it has the plan's shape and nothing in it, which
		// this peer computes alone (its own record fails the filter)
		// rather than run gossip rounds over the whole pool for nothing.
		a, part, err = p.rt.alonePartial(plan)
	case plan.FromMemberLists():
		// What the membership shows is at hand: the pool's answer is its
		// member list's, exact and at once, as it is in a cloud of one
		// pool (Node.fromMembership).
		a, part, err = p.fromTags(plan, start)
	default:
		a, part, err = p.rt.gossipPartial(ctx, plan, id)
	}
	return a, part, owner, err
}

// runPool runs plan in this peer's pool as its asker and reports the
// pool's partial, signed, and its status.
func (p *pools) runPool(id QueryID, plan *query.Plan) (poolReport, string) {
	start := p.now()
	members := p.lan.Members()
	body := reportBody{ID: id[:], Pool: p.cfg.Pool, Plan: plan.Hash(), Members: membersDigest(members), Lacks: lacking(plan, members)}
	if plan.ListTags {
		body.Tags, body.MoreTags = poolTags(members)
	}
	body.Roster = Gateways(members, p.cfg.Gateways)
	p.mu.Lock()
	bend, bendPartial := p.bendRoster, p.bend
	p.mu.Unlock()
	if bend != nil {
		body.Roster = bend(body.Roster)
	}
	slices.Sort(body.Roster)
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.PoolTimeout)
	defer cancel()
	a, part, owner, err := p.runHere(ctx, id, plan, start)
	body.Owner = owner
	switch {
	case a == nil || a.Meta == nil || part == nil:
		body.Status, body.Reason = statusFailed, fmt.Sprint(err)
	default:
		body.Status, body.Reason, body.Peers, body.Rounds = a.Meta.Status, a.Meta.Reason, part.Peers, a.Meta.Rounds
		if why := p.split(); why != "" && body.Status != answer.StatusContested {
			body.Status, body.Reason = answer.StatusPartial, joinReason(why, body.Reason)
		}
		body.Excluded, body.ExcludedCount = a.Meta.Excluded, a.Meta.ExcludedCount
		if a.Meta.Status == answer.StatusSampled {
			body.Width = a.Meta.ErrEstimate
		}
		if a.Meta.Check != nil {
			body.Check = a.Meta.Check.Verdict
		}
		if bendPartial != nil {
			bendPartial(part)
		}
		if b, perr := part.Encode(); perr != nil {
			body.Status, body.Reason = statusFailed, perr.Error()
		} else {
			body.Partial = b
		}
	}
	body.Elapsed = p.now().Sub(start).Seconds()
	body.MembersEnd = membersDigest(p.lan.Members())
	bb, err := reportEnc.Marshal(body)
	if err != nil {
		panic(err)
	}
	return poolReport{Gateway: p.lan.Name(), Body: bb, Sig: p.id.Sign(reportDomain, bb)}, body.Status
}

// lacking are the attributes plan reads that members do not have as tags
// and that are not built in (reportBody.Lacks).
func lacking(plan *query.Plan, members []network.Member) []string {
	var tags []string // not built in: the members' tags, if any has them
	builtIn := query.DefaultCatalog()
	for _, name := range plan.Reads() {
		if _, ok := builtIn.Lookup(name); !ok {
			tags = append(tags, name)
		}
	}
	if len(tags) == 0 {
		return nil // most statements: no member list read
	}
	cat := catalogOf(members)
	var out []string
	for _, name := range tags {
		if _, ok := cat.Lookup(name); !ok {
			out = append(out, name)
		}
	}
	return out
}

// subset says every name of xs is in of.
func subset(xs, of []string) bool {
	return !slices.ContainsFunc(xs, func(x string) bool { return !slices.Contains(of, x) })
}

// notJoinedYet is what a gateway chosen in its pool answers while it has
// not joined the cloud pool: the asker answers busy when all say it.
const notJoinedYet = "has not joined the cloud pool yet"

// split says why this gateway's pool may be only part of the pool of its
// name: the cloud pool has listed, for SplitAfter, a gateway of it that
// this peer's pool does not hold alive (tend) — a second Serf pool of the
// same name, formed by an agent given --pool without a --join of its
// pool (or restarted with it on another pool's data dir, or a machine
// back under the name of a member that left). Its members are in neither
// half's answer, and each half answered exact over its own. A gateway
// that died is suspected in the cloud pool within seconds, and not
// counted while it is (tend), until the cloud pool declares it failed;
// one newly chosen is alive here by the time the cloud pool lists it. A
// member of the cloud pool that claims a pool it is not in can make that
// pool's answers partial, not wrong.
func (p *pools) split() string {
	now := p.now()
	p.mu.Lock()
	var strangers []string
	after := p.cfg.SplitAfter
	if after <= 0 {
		after = DefaultConfig(nil).SplitAfter
	}
	for g, sg := range p.strange {
		if now.Sub(sg.since) >= after {
			strangers = append(strangers, fmt.Sprintf("%s (%s at %s)", g, sg.at, sg.addr))
		}
	}
	p.mu.Unlock()
	if len(strangers) == 0 {
		return ""
	}
	sort.Strings(strangers)
	return fmt.Sprintf("pool %s may be split: the cloud pool lists %s as its gateway(s), which %s's pool does not hold alive — a second Serf pool of the name "+
		"(an agent given --pool %s without a --join of its pool?); its members are not in this answer", p.cfg.Pool, strings.Join(strangers, ", "), p.lan.Name(), p.cfg.Pool)
}

// strangeGateway is a gateway of this peer's pool, by the cloud pool's
// word, that the pool does not hold alive: its name in the cloud pool, its
// address, and since when it has been listed so.
type strangeGateway struct {
	at, addr string
	since    time.Time
}

// noteAlone returns, once, the line that says the cloud pool has held no
// pool but this one for two heals while the agent was given seeds of it
// (--cloud-join), and once the line that says it holds others again;
// else "". p.mu is held; the caller logs it after.
func (p *pools) noteAlone(now time.Time, others bool) string {
	seeds := p.seeds()
	if len(seeds) == 0 || others {
		return p.endAlone()
	}
	if p.alone.IsZero() {
		p.alone = now
	}
	if !p.aloneSaid && now.Sub(p.alone) >= 2*healEvery {
		p.aloneSaid = true
		return fmt.Sprintf("pools: the cloud pool has held no pool but %s for %v, though this agent was given --cloud-join %s: "+
			"other pools, if any, are not in its answers, which are partial while it lasts — check those addresses (agents of other pools, HOST:GOSSIP_PORT+2); "+
			"this gateway joins them again every %v", p.cfg.Pool, now.Sub(p.alone).Round(time.Second), strings.Join(seeds, ", "), healEvery)
	}
	return ""
}

// forgetCloud drops what this peer noted of the cloud pool as a gateway
// (the strange gateways, since when it has been alone there) when it
// stops or starts being one, and returns the line that ends an "alone"
// said, if one was; p.mu is held.
func (p *pools) forgetCloud() string {
	p.strange = nil
	return p.endAlone()
}

// endAlone ends an "alone" noted, returning the line that says so if it
// was said; p.mu is held.
func (p *pools) endAlone() string {
	line := ""
	if p.aloneSaid {
		line = fmt.Sprintf("pools: the cloud pool holds other pools than %s again, or this peer is no longer its gateway", p.cfg.Pool)
	}
	p.alone, p.aloneSaid = time.Time{}, false
	return line
}

// seeds are the cloud pool's addresses this agent was given
// (--cloud-join: socketCloud.Seeds), where other pools are expected; none
// in one process (the embedded cloud) or without the flag.
func (p *pools) seeds() []string {
	if s, ok := p.cfg.Cloud.(interface{ Seeds() []string }); ok {
		return s.Seeds()
	}
	return nil
}

// cloudNet is this peer's network in the cloud pool while it is a
// gateway, else nil.
func (p *pools) cloudNet() CloudNetwork {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cloud
}

// strangers are the names among names that this peer's pool does not
// hold alive.
func (p *pools) strangers(names []string) []string {
	var out []string
	for _, g := range names {
		if _, alive := p.lan.Member(g); !alive {
			out = append(out, g)
		}
	}
	return out
}

// stats is what this peer shows of the pools role (Node.PoolStats).
func (p *pools) stats() PoolStats {
	st := PoolStats{Pool: p.cfg.Pool, Busy: p.busy.Load()}
	st.Failing, st.Failures = p.failing.count(p.now())
	for way := range p.relays {
		for i := range p.relays[way] {
			st.Relays[way][i] = p.relays[way][i].Load()
		}
	}
	p.mu.Lock()
	c := p.cloud
	st.Runs = maps.Clone(p.ran)
	p.mu.Unlock()
	if c != nil { // the view reads Serf's members, not under p.mu
		st.Gateway = true
		for _, v := range p.view(c) {
			st.Pools++
			if len(v.Gateways) < p.cfg.Gateways {
				st.Short++
			}
		}
	}
	return st
}

// coordinate asks the gateways in the view to run the statement in their
// pools (coordinatePool) and polls them until each reported, failed, or
// the time is up.
func (p *pools) coordinate(c CloudNetwork, id QueryID, wire []byte, plan *query.Plan, cr *coordRun) {
	timeout := p.cfg.PoolTimeout
	if plan.TimeoutSeconds > 0 {
		timeout = min(timeout, time.Duration(plan.TimeoutSeconds*float64(time.Second)))
	}
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, v := range cr.view {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.coordinatePool(ctx, c, id, wire, plan, v, cr)
		}()
	}
	wg.Wait()
	close(cr.ended)
}

// coordinatePool asks a majority of pool v's gateways first, and the
// others only when those do not make one. Agreeing reports from a
// majority of the gateways listed decide the pool whatever the others
// would say (choose, at the asker), so an honest pool runs the statement
// ⌊G/2⌋+1 times (2 of 3), not G; a liar among the first, or one that
// fails, brings the others in, and the pool's verdict is the one all G
// would have given, a few polls later. The first are those whose names
// rank lowest by a hash with the query's ID: the same at both
// coordinators (each gateway runs a query once, whoever asks), and not
// the same gateways every time — but a gateway whose exchange failed
// lately comes last (failing): one that hangs while both pools' Serf
// list it alive would otherwise cost two statements in three an
// exchange's timeout, until nobody knows when. A coordinator that has
// such a note and one that has not may then ask different first pairs
// (a pool may run the statement three times), and the asker waits for
// the slower: each coordinator pays for a hung gateway again each time
// its note runs out (30 s, then twice as long each time: failing). A
// statement whose whole time is shorter than an exchange's notes
// nothing (failedAlone): it pays its own time.
func (p *pools) coordinatePool(ctx context.Context, c CloudNetwork, id QueryID, wire []byte, plan *query.Plan, v poolView, cr *coordRun) {
	order := make([]int, len(v.at))
	for i := range order {
		order[i] = i
	}
	rank := func(i int) uint64 { return hash64(string(id[:]) + "\x00" + v.at[i]) }
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(rank(a), rank(b)) })
	order = failedLast(&p.failing, order, func(i int) string { return v.at[i] }, p.now())
	first := majority(len(order))
	got := p.askGateways(ctx, c, id, wire, plan, v, order[:min(first, len(order))], cr)
	if len(order) > first && ctx.Err() == nil && !p.decided(plan, id, v, got) {
		p.askGateways(ctx, c, id, wire, plan, v, order[first:], cr)
	}
}

// askGateways asks pool v's gateways at the indexes which, at once, and
// returns their reports (also added to cr as they come).
func (p *pools) askGateways(ctx context.Context, c CloudNetwork, id QueryID, wire []byte, plan *query.Plan, v poolView, which []int, cr *coordRun) []poolReport {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var got []poolReport
	for _, i := range which {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, ok := p.askGateway(ctx, c, v.at[i], id, wire, plan)
			if !ok || rep.Gateway != v.Gateways[i] {
				return // a gateway answers for itself, not for another
			}
			p.mu.Lock()
			cr.reports = append(cr.reports, rep)
			p.mu.Unlock()
			mu.Lock()
			got = append(got, rep)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return got
}

// decided says whether reports from pool v's gateways already make the
// pool's verdict: verified as the asker verifies them (check), a
// majority of the gateways listed agreeing (choose).
func (p *pools) decided(plan *query.Plan, id QueryID, v poolView, reports []poolReport) bool {
	keyOf := gatewayKeys{}
	addKeys(keyOf, v)
	var mine map[string]identity.Public
	var own []string
	if v.Name == p.cfg.Pool {
		members := p.lan.Members()
		mine, own = memberKeys(members), Gateways(members, p.cfg.Gateways)
	}
	views := map[string]poolView{v.Name: v}
	var vs []verified
	for _, r := range reports {
		if ver, why := p.check(plan, id, r, keyOf, mine, own, views); why == "" {
			vs = append(vs, ver)
		}
	}
	var refused []string
	v, vs = current(v, onePerGateway(vs, &refused), p.cfg.Gateways)
	chosen, _, why := choose(plan, vs, len(v.Gateways))
	return chosen != nil && why != statusesSplit
}

// current is pool v as its own gateways say it is now, and the reports of
// vs that count for it: the listed gateways of a roster
// (reportBody.Roster) that a majority of that roster's own gateways
// report, of at least k gateways (the asker's Config.Gateways, the
// cloud's convention) or all those listed, if fewer — else v and vs as
// they are. A pool whose gateways all died is answered for by its new
// ones while the cloud pool still lists the dead (they do not report).
// The roster is the largest that qualifies; two of that size leave v
// as listed. Why it is safe: one lying gateway reports a roster alone,
// which is no majority of any roster of k or more, so it can drop no
// honest gateway from its pool; a roster of names not listed, or of
// gateways that do not report it, does not qualify.
func current(v poolView, vs []verified, k int) (poolView, []verified) {
	type roster struct {
		names []string
		n     int
	}
	seen := map[string]*roster{}
	for _, r := range vs {
		if !slices.Contains(r.body.Roster, r.gateway) {
			continue // not its pool's gateway as it says
		}
		key := strings.Join(r.body.Roster, "\x00")
		if seen[key] == nil {
			seen[key] = &roster{names: r.body.Roster}
		}
		seen[key].n++
	}
	var best *roster
	tie := false
	for _, r := range seen {
		if r.n < majority(len(r.names)) || len(r.names) < min(k, len(v.Gateways)) || !subset(r.names, v.Gateways) {
			continue
		}
		switch {
		case best == nil || len(r.names) > len(best.names):
			best, tie = r, false
		case len(r.names) == len(best.names):
			tie = true
		}
	}
	if best == nil || tie || len(best.names) == len(v.Gateways) {
		return v, vs
	}
	out := poolView{Name: v.Name}
	for i, g := range v.Gateways {
		if slices.Contains(best.names, g) {
			out.Gateways, out.Keys = append(out.Gateways, g), append(out.Keys, v.Keys[i])
			if i < len(v.at) {
				out.at = append(out.at, v.at[i])
			}
		}
	}
	var kept []verified
	for _, r := range vs {
		if slices.Contains(best.names, r.gateway) {
			kept = append(kept, r)
		}
	}
	return out, kept
}

// majority is how many of n gateways make a pool's verdict.
func majority(n int) int { return n/2 + 1 }

// memberKeys are members' keys by name, as a membership pinned them.
func memberKeys(members []network.Member) map[string]identity.Public {
	out := make(map[string]identity.Public, len(members))
	for _, m := range members {
		out[m.Name] = m.Key
	}
	return out
}

// gatewayKeys are the keys the cloud pool shows for gateways, by name:
// a name is a gateway's within its pool, and another pool may have a
// gateway of the same name, so a name has a key in each pool that lists
// one by it.
type gatewayKeys map[string][]poolKey

type poolKey struct {
	pool string
	key  identity.Public
}

// addKeys adds the keys the cloud pool shows for v's gateways to keyOf;
// a key that does not parse is left out.
func addKeys(keyOf gatewayKeys, v poolView) {
	for i, g := range v.Gateways {
		if i < len(v.Keys) {
			if k, err := identity.PublicOf(v.Keys[i]); err == nil && !k.IsZero() {
				keyOf[g] = append(keyOf[g], poolKey{v.Name, k})
			}
		}
	}
}

// askGateway starts the statement at gateway g (itself without an
// exchange) and polls it until it reports.
func (p *pools) askGateway(ctx context.Context, c CloudNetwork, g string, id QueryID, wire []byte, plan *query.Plan) (poolReport, bool) {
	call := func(op int) (poolResp, error) {
		r := poolReq{Op: op, ID: id[:]}
		if op == opPoolStart {
			r.Plan = wire
		} else {
			r.Wait = pollWait(p.cfg).Milliseconds()
		}
		return p.callCloud(ctx, c, g, r)
	}
	if _, err := call(opPoolStart); err != nil {
		if failedAlone(ctx, err) {
			p.failing.note(g, p.now()) // asked last for a while: it may hang
		}
		p.quiet.logf(p.logf, p.now(), "take\x00"+g, "pools: gateway %s did not take query %s: %v", g, id, err)
		return poolReport{}, false
	}
	misses := 0
	for {
		if ctx.Err() != nil {
			return poolReport{}, false
		}
		began := time.Now()
		resp, err := call(opPoolPoll) // held until the report is ready (pollWait)
		if err != nil || !resp.Done {
			p.pace(ctx, began)
		}
		switch {
		case err != nil:
			if misses++; misses >= 3 {
				if failedAlone(ctx, err) {
					p.failing.note(g, p.now())
				}
				p.quiet.logf(p.logf, p.now(), "poll\x00"+g, "pools: gateway %s stopped answering for query %s: %v", g, id, err)
				return poolReport{}, false
			}
		case resp.Done && len(resp.Reports) == 1:
			return resp.Reports[0], true
		default:
			misses = 0
		}
	}
}

// ask runs a statement in every pool (the asker's side): it starts it at a
// gateway of this peer's pool, polls that gateway, and checks and merges
// what the pools reported.
func (p *pools) ask(ctx context.Context, plan *query.Plan, progress func(answer.Progress), start time.Time) (*answer.Answer, error) {
	a, _, err := p.askWhere(ctx, plan, progress, start)
	return a, err
}

// askWhere is ask, and what the asker learns beside its answer.
func (p *pools) askWhere(ctx context.Context, plan *query.Plan, progress func(answer.Progress), start time.Time) (*answer.Answer, asked, error) {
	wire, err := plan.Encode()
	if err != nil {
		return nil, asked{}, err
	}
	ctx, release, err := p.rt.adm.Admit(ctx)
	if err != nil {
		return nil, asked{}, err
	}
	defer release()
	id := newQueryID()
	members := p.lan.Members()
	gws := selfFirst(p.failing.last(Gateways(members, p.cfg.Gateways), p.now()), p.lan.Name()) // itself first: no exchange
	// Two coordinators, when the pool has them: each tells the asker
	// which gateways the cloud pool lists for every pool and with which
	// keys, and the asker believes only what both say (crossCheck), so
	// that one lying gateway of its own pool cannot make up another
	// pool's gateways. The pools' runs are one per query at each gateway,
	// whoever asks.
	var coords []string
	var errs []error
	for _, g := range gws {
		if len(coords) == 2 {
			break
		}
		if _, err := p.callLAN(ctx, g, poolReq{Op: opCloudStart, ID: id[:], Plan: wire}); err != nil {
			if failedAlone(ctx, err) {
				p.failing.note(g, p.now()) // tried last for a while: it may hang
			}
			errs = append(errs, fmt.Errorf("%s: %w", g, err))
			continue
		}
		coords = append(coords, g)
	}
	if len(coords) == 0 {
		err := &noGateway{pool: p.cfg.Pool, errs: errs}
		if len(errs) > 0 && !slices.ContainsFunc(errs, func(e error) bool { return !strings.Contains(e.Error(), notJoinedYet) }) {
			// Every gateway is one that has not joined the cloud pool yet:
			// a pool forming, ready in a few checks — busy, not a failure
			// of the statement (it exited 1, as a usage error would).
			return nil, asked{}, api.Busy(int(math.Ceil((gatewayStreak * p.cfg.GatewayCheck).Seconds())), err.Error())
		}
		return nil, asked{}, err
	}
	last := make([]*poolResp, len(coords))
	misses := make([]int, len(coords))
	var stopped error
	for {
		if ctx.Err() != nil {
			stopped = ctx.Err()
			break
		}
		if p.ctx.Err() != nil {
			stopped = ErrClosed
			break
		}
		began := time.Now()
		waiting, alive := false, false
		for i, c := range coords {
			if misses[i] >= 3 || last[i] != nil && last[i].Done {
				alive = alive || misses[i] < 3
				continue
			}
			// Held until the coordinator is done (pollWait); the second
			// coordinator, asked after the first is done, mostly is too.
			resp, err := p.callLAN(ctx, c, poolReq{Op: opCloudPoll, ID: id[:], Wait: pollWait(p.cfg).Milliseconds()})
			if err != nil {
				if misses[i]++; misses[i] < 3 {
					waiting, alive = true, true
				} else {
					errs = append(errs, fmt.Errorf("the gateway %s stopped answering: %w", c, err))
				}
				continue
			}
			misses[i], last[i] = 0, &resp
			waiting, alive = waiting || !resp.Done, true
		}
		if progress != nil {
			progress(answer.Progress{Peers: len(members)})
		}
		if !alive {
			stopped = errors.Join(errs...)
			break
		}
		if !waiting {
			break
		}
		p.pace(ctx, began)
	}
	resp, note := crossCheck(coords, last)
	a, where, err := p.combine(plan, id, resp, members, start)
	if err != nil {
		return nil, asked{}, err
	}
	if note != "" {
		a.Meta.Warning = joinReason(a.Meta.Warning, note)
	}
	if stopped != nil {
		why := stopped.Error()
		if errors.Is(stopped, context.Canceled) {
			why = "canceled"
		}
		a.Meta.Status, a.Meta.Converged = StatusPartial, false
		a.Meta.Reason = joinReason(a.Meta.Reason, why)
		return a, where, &stoppedError{err: stopped, msg: why}
	}
	return a, where, nil
}

// noGateway is the error of a statement that no gateway of the asker's
// pool took: each one failed or refused (errs) — all of them killed at
// once, or hung, and still listed alive until the pool's failure
// detector says otherwise. A statement's asker answers it over its own
// pool alone, partial (Node.ownPoolOnly).
type noGateway struct {
	pool string
	errs []error // one a gateway
}

func (e *noGateway) Error() string {
	return fmt.Sprintf("node: no gateway of pool %s took the statement (%s)", e.pool, e.why())
}

// why is what each gateway did, on one line.
func (e *noGateway) why() string {
	var s []string
	for _, err := range e.errs {
		s = append(s, err.Error())
	}
	return strings.Join(s, "; ")
}

func (e *noGateway) Unwrap() []error { return e.errs }

// heardOf keeps the names of the pools views list, those well formed
// (poolNameOK), as pools this peer knows of.
func (p *pools) heardOf(views []poolView) {
	var names []string
	for _, v := range views {
		if poolNameOK(v.Name) && len(names) < maxLearnedPools {
			names = append(names, v.Name)
		}
	}
	if len(names) == 0 {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.learned.heard(names, p.cfg.Pool, now, p.cfg.PoolMemory)
}

// otherPools are the pools other than this peer's that it has known of
// within PoolMemory (learn.go: told by its pool's gateways, or seen in
// the cloud pool as one), sorted.
func (p *pools) otherPools() []string {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name, at := range p.learned.pools {
		if name != p.cfg.Pool && now.Sub(at) < p.cfg.PoolMemory {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// crossCheck is what the coordinators that answered agree on: the
// gateways both list for each pool with the same key, and the reports
// (one per gateway: a gateway that signed two different ones is dropped).
// With one coordinator it is its word, said so in note.
func crossCheck(coords []string, last []*poolResp) (poolResp, string) {
	var got []*poolResp
	var from []string
	for i, r := range last {
		if r != nil {
			got, from = append(got, r), append(from, coords[i])
		}
	}
	switch len(got) {
	case 0:
		return poolResp{}, ""
	case 1:
		return *got[0], fmt.Sprintf("the other pools' gateways as %s alone listed them", from[0])
	}
	a, b := got[0], got[1]
	listed := map[string]string{} // gateway name → key, as b lists it
	for _, v := range b.Pools {
		for k, g := range v.Gateways {
			if k < len(v.Keys) {
				listed[v.Name+"\x00"+g] = string(v.Keys[k])
			}
		}
	}
	out := poolResp{Done: a.Done && b.Done}
	var dropped []string
	for _, v := range a.Pools {
		both := poolView{Name: v.Name}
		for k, g := range v.Gateways {
			if k < len(v.Keys) && listed[v.Name+"\x00"+g] == string(v.Keys[k]) {
				both.Gateways, both.Keys = append(both.Gateways, g), append(both.Keys, v.Keys[k])
			} else {
				dropped = append(dropped, v.Name+"/"+g)
			}
		}
		out.Pools = append(out.Pools, both)
	}
	for _, v := range b.Pools {
		if !slices.ContainsFunc(out.Pools, func(x poolView) bool { return x.Name == v.Name }) {
			out.Pools = append(out.Pools, poolView{Name: v.Name}) // one saw it: none of its gateways is agreed
		}
	}
	// Both coordinators' reports, each once. Two different ones in one
	// gateway's name are both passed on: which of them that gateway signed
	// is for combine to find (check, then onePerGateway), since a lying
	// coordinator can make one up in an honest gateway's name.
	seen := map[string]bool{}
	for _, r := range append(slices.Clone(a.Reports), b.Reports...) {
		if k := r.Gateway + "\x00" + string(r.Body); !seen[k] {
			seen[k] = true
			out.Reports = append(out.Reports, r)
		}
	}
	var note string
	if len(dropped) > 0 {
		note = fmt.Sprintf("gateways %s and %s do not both list %s (left out)", from[0], from[1], strings.Join(dropped, ", "))
	}
	return out, note
}

// callLAN sends one request to a gateway of this peer's pool.
func (p *pools) callLAN(ctx context.Context, to string, req poolReq) (poolResp, error) {
	var out []byte
	if to == p.lan.Name() {
		out = p.answerLAN(ctx, to, encodePool(req))
	} else {
		cctx, cancel := context.WithTimeout(ctx, p.cfg.ExchangeTimeout)
		resp, err := p.lan.Exchange(cctx, to, encodeBatch(batch{Entries: []entry{{ID: QueryID(req.ID), Kind: protoPool, Msg: encodePool(req)}}}))
		cancel()
		if err != nil {
			return poolResp{}, err
		}
		b, err := decodeBatch(resp)
		if err != nil {
			return poolResp{}, err
		}
		if len(b.Entries) != 1 || b.Entries[0].Kind != protoPool {
			return poolResp{}, fmt.Errorf("node: %s answered a pool request with %d entries", to, len(b.Entries))
		}
		out = b.Entries[0].Msg
	}
	var r poolResp
	if err := decodePool(out, &r); err != nil {
		return poolResp{}, err
	}
	if r.Err != "" {
		return r, farError(r.Err)
	}
	return r, nil
}

// verified is a report that passed the asker's checks.
type verified struct {
	gateway string
	raw     []byte // the body as it was signed
	body    reportBody
	part    *run.Partial
	ans     *answer.Answer // the pool's partial alone, for agreement
	// votes is, for the report settle chose, how many of the reports
	// that agree with it give its status.
	votes int
}

// sameRun says two reports of a pool give the same answer (agree) over
// the same members (a subcloud's owner).
func sameRun(plan *query.Plan, a, b verified) bool {
	return agree(plan, a.ans, b.ans) && a.body.Owner == b.body.Owner
}

// combine checks the reports and merges one partial per pool.
func (p *pools) combine(plan *query.Plan, id QueryID, resp poolResp, members []network.Member, start time.Time) (*answer.Answer, asked, error) {
	mine, own := memberKeys(members), Gateways(members, p.cfg.Gateways)
	views := map[string]poolView{}
	keyOf := gatewayKeys{}
	for _, v := range resp.Pools {
		if len(v.Keys) != len(v.Gateways) {
			return nil, asked{}, fmt.Errorf("node: the gateway's view of pool %s is malformed", v.Name)
		}
		views[v.Name] = v
		addKeys(keyOf, v)
	}
	if _, ok := views[p.cfg.Pool]; !ok {
		views[p.cfg.Pool] = poolView{Name: p.cfg.Pool}
	}
	// The pools this peer knows of (otherPools) that its coordinators'
	// views leave out, named partial: a coordinator dying as it answered
	// listed no pool, and the answer named pool a alone (helper-73,
	// SHOW POOLS 0.3 s after pool a's gateways were killed). What they
	// list is known from now on, as what its gateways tell (learn.go):
	// a member asks them first 30–60 s after it starts, and one whose
	// gateways all died before that knew of no other pool (helper-74).
	p.heardOf(resp.Pools)
	for _, name := range p.otherPools() {
		if _, ok := views[name]; !ok {
			views[name] = poolView{Name: name}
		}
	}
	byPool := map[string][]verified{}
	var refused []string
	var vs []verified // those whose checks pass, their signatures first
	for _, r := range resp.Reports {
		v, why := p.check(plan, id, r, keyOf, mine, own, views)
		if why != "" {
			refused = append(refused, fmt.Sprintf("%s: %s", r.Gateway, why))
			continue
		}
		vs = append(vs, v)
	}
	for _, v := range onePerGateway(vs, &refused) {
		byPool[v.body.Pool] = append(byPool[v.body.Pool], v)
	}
	names := make([]string, 0, len(views))
	for name := range views {
		names = append(names, name)
	}
	sort.Strings(names)
	decided := make([]pooled, 0, len(names))
	for _, name := range names {
		v, vs := current(views[name], byPool[name], p.cfg.Gateways)
		byPool[name] = vs
		ps := answer.PoolStatus{Pool: name, Gateways: len(v.Gateways), GatewayNames: v.Gateways}
		chosen, agreeing, why := choose(plan, vs, len(v.Gateways))
		ps.Agreeing = agreeing
		decided = append(decided, pooled{ps: ps, chosen: chosen, why: why})
	}
	var note string
	if plan.Subcloud != "" && plan.Owner == "" {
		var err error
		if note, err = p.subcloudPool(plan.Subcloud, decided); err != nil {
			return nil, asked{}, err
		}
	}
	// A statement that reads only tags is answered from the gateways'
	// member lists (runPool), as one pool's would be from its own.
	meta := &answer.Meta{Status: StatusExact, Converged: true, PlanHash: plan.Hash(), Warning: note, FromTags: plan.FromMemberLists()}
	var parts []*run.Partial
	var partial, contested, sampled, left, stale []string
	width := 0.0 // the widest sample that stood in for a pool
	for _, d := range decided {
		ps, chosen, why, name := d.ps, d.chosen, d.why, d.ps.Pool
		if listed := len(views[name].Gateways); listed > ps.Gateways {
			stale = append(stale, fmt.Sprintf("pool %s: %d (its gateways %s agree on who they are)", name, listed-ps.Gateways, strings.Join(ps.GatewayNames, ", ")))
		}
		switch {
		case d.aside != "" && chosen == nil:
			ps.Status, ps.Reason = StatusPartial, d.aside // it does not make the answer partial
		case d.aside != "":
			// Its members are not the answer's: no peers counted.
			ps.Status, ps.Reason, ps.Rounds, ps.Owner = answer.StatusExact, d.aside, chosen.body.Rounds, chosen.body.Owner
		case chosen == nil && why == "disagree":
			ps.Status, ps.Reason = answer.StatusContested, fmt.Sprintf("its %d gateways' reports disagree and no majority agrees", len(byPool[name]))
			contested = append(contested, fmt.Sprintf("pool %s: %s", name, ps.Reason))
		case chosen == nil:
			ps.Status, ps.Reason = StatusPartial, why
			partial = append(partial, fmt.Sprintf("pool %s: %s", name, why))
		default:
			ps.Status, ps.Reason, ps.Peers, ps.Rounds, ps.Check, ps.Owner = chosen.body.Status, chosen.body.Reason, chosen.body.Peers, chosen.body.Rounds, chosen.body.Check, chosen.body.Owner
			ps.Elapsed, ps.Excluded, ps.ExcludedCount = chosen.body.Elapsed, chosen.body.Excluded, chosen.body.ExcludedCount
			if why == statusesSplit {
				// settle took the status most of them give (the worse of
				// a tie), which fewer than a majority of the listed give.
				ps.Reason = joinReason(ps.Reason, fmt.Sprintf("its gateways' statuses split: %d of the %d that agree on its rows say %s, fewer than the %d a majority needs", chosen.votes, ps.Agreeing, ps.Status, majority(max(ps.Gateways, len(byPool[name])))))
			}
			if ps.ExcludedCount > 0 {
				meta.ExcludedCount += ps.ExcludedCount
				meta.Excluded = append(meta.Excluded, ps.Excluded[:min(len(ps.Excluded), answer.MaxNamed-len(meta.Excluded))]...)
				left = append(left, fmt.Sprintf("%d in pool %s (%s)", ps.ExcludedCount, name, strings.Join(ps.Excluded[:min(len(ps.Excluded), 10)], ", ")))
			}
			parts = append(parts, chosen.part)
			meta.Peers += chosen.body.Peers
			meta.Rounds = max(meta.Rounds, chosen.body.Rounds)
			switch chosen.body.Status {
			case StatusPartial:
				partial = append(partial, fmt.Sprintf("pool %s: %s", name, chosen.body.Reason))
			case answer.StatusContested:
				contested = append(contested, fmt.Sprintf("pool %s: %s", name, chosen.body.Reason))
			case StatusConverged:
				meta.Status = StatusConverged
			case answer.StatusSampled:
				sampled = append(sampled, fmt.Sprintf("pool %s: %s", name, chosen.body.Reason))
				width = max(width, chosen.body.Width)
			}
		}
		meta.Pools = append(meta.Pools, ps)
	}
	if len(sampled) > 0 {
		// A pool's sample stood in for its bent gossip (gossipPartial):
		// the answer is as good as the widest of those samples.
		meta.Status, meta.Reason, meta.ErrEstimate = answer.StatusSampled, strings.Join(sampled, "; "), width
	}
	a, err := run.Merge(plan, parts)
	if err != nil {
		return nil, asked{}, err
	}
	facts := asked{owner: plan.Owner}
	where := make(map[string]string, len(a.Nodes))
	for _, n := range a.Nodes {
		where[n] = ""
	}
	for _, d := range decided {
		if d.chosen != nil && d.chosen.part != nil && d.aside == "" {
			for _, e := range d.chosen.part.Top {
				if p, in := where[e.Node]; in && p == "" {
					where[e.Node] = d.ps.Pool // the first pool's, as the merge keeps it
				}
			}
			if facts.owner == "" && d.chosen.body.Owner != "" {
				facts.owner = qualify(d.ps.Pool, d.chosen.body.Owner) // subcloudPool's choice
			}
		}
	}
	facts.where = where
	if plan.ListTags {
		facts.tags = tagsByPool(decided, byPool)
	}
	if err := unknownEverywhere(plan, decided, byPool, &meta.Warning); err != nil {
		return nil, asked{}, err
	}
	contested = append(contested, clashes(decided)...)
	if why := p.cutOff(views); why != "" && len(resp.Pools) > 0 {
		partial = append(partial, why) // with no view, the answer says so already
	}
	if len(partial) > 0 {
		meta.Status, meta.Converged, meta.Reason = StatusPartial, false, strings.Join(partial, "; ")
	}
	if len(refused) > 0 {
		meta.Warning = joinReason(meta.Warning, "reports refused: "+strings.Join(refused, "; "))
	}
	if len(stale) > 0 {
		meta.Warning = joinReason(meta.Warning, "gateways the cloud pool still lists that are no longer their pools' (failed, not yet declared so): "+strings.Join(stale, "; "))
	}
	if len(left) > 0 {
		// As a cloud of one pool's answer names them (leftOut); the pools'
		// Peers already leave them out.
		meta.Warning = joinReason(meta.Warning, fmt.Sprintf("%d member(s) left out of the answer, which is about the others, lost while their pools ran it: %s", meta.ExcludedCount, strings.Join(left, "; ")))
	}
	meta.MembersStart, meta.MembersEnd = meta.Peers, meta.Peers
	meta.Elapsed = p.now().Sub(start).Seconds()
	a.Meta = meta
	if len(contested) > 0 {
		a.Contest(strings.Join(contested, "; "))
	}
	return a, facts, nil
}

// unknownEverywhere is, for a statement that reads a tag the asker's pool
// lacks (Plan.Unlisted), the error a cloud of one pool would give when no
// pool has it either: each pool that answered lacks it by a majority of
// its listed gateways (reportBody.Lacks; one lying gateway cannot make a
// pool lack a tag, nor have one). While some pool did not answer, the
// answer is partial already, and warning says which tags no pool that
// answered has.
func unknownEverywhere(plan *query.Plan, decided []pooled, byPool map[string][]verified, warning *string) error {
names:
	for _, u := range plan.Unlisted {
		everywhere, answered := true, 0
		for _, d := range decided {
			if d.chosen == nil || d.aside != "" {
				everywhere = false
				continue
			}
			answered++
			lack := 0
			for _, v := range byPool[d.ps.Pool] {
				if slices.Contains(v.body.Lacks, u.Name) {
					lack++
				}
			}
			if lack < majority(max(d.ps.Gateways, len(byPool[d.ps.Pool]))) {
				continue names // a pool has it
			}
		}
		switch {
		case everywhere:
			return parser.Errorf(u.Err.Pos, "%s: no member of any of the %d pools has it", u.Err.Msg, answered)
		case answered > 0:
			*warning = joinReason(*warning, fmt.Sprintf("attribute %q: no member of the %d pools that answered has it (read as a tag, NULL where a peer lacks it)", u.Name, answered))
		}
	}
	return nil
}

// cutOff says why an answer over views, the cloud pool's pools as this
// peer's coordinators see them, may leave pools out: the views hold no
// pool but this peer's own, and no gateway of it that its pool does not
// hold alive, although the agent was given seeds of the cloud pool
// (--cloud-join) — none answered, so other pools, if any, are not in the
// answer. Before, such a pool answered exact over itself. An agent given
// no --cloud-join can tell only from what it learned (learn.go): the
// addresses of other pools' gateways it was told, kept until it learns
// others or restarts. When every gateway of two pools died at once, each
// pool's new gateways knew only the other's dead ones: the two never met
// again, and once PoolMemory had passed, a pool answered exact over
// itself (helper-71, among agents).
func (p *pools) cutOff(views map[string]poolView) string {
	if len(views) != 1 {
		return ""
	}
	seeds := p.seeds()
	p.mu.Lock()
	learned := slices.Clone(p.learned.seeds)
	p.mu.Unlock()
	if len(seeds) == 0 && len(learned) == 0 {
		return ""
	}
	if v, own := views[p.cfg.Pool]; !own || len(p.strangers(v.Gateways)) > 0 {
		return "" // others of its name are there: its gateways' split says so
	}
	if len(seeds) > 0 {
		return fmt.Sprintf("the cloud pool holds no pool but this one (%s) as its gateways see it, though this agent was given --cloud-join %s: "+
			"other pools, if any, are not in this answer", p.cfg.Pool, strings.Join(seeds, ", "))
	}
	return fmt.Sprintf("the cloud pool holds no pool but this one (%s) as its gateways see it, though this peer learned of other pools' gateways at %s: "+
		"other pools, if any, are not in this answer (if they are gone for good, restart this pool's agents)", p.cfg.Pool, strings.Join(learned, ", "))
}

// asked is what an asker learns beside a pooled answer: for a top-k the
// pool of each node in it (where[node]), and for FROM SUBCLOUD its
// owner as pool/name.
type asked struct {
	where map[string]string
	owner string
	tags  map[string]poolTagSet // by pool, for a plan that lists them
}

// poolTagSet is what a pool's gateways said of its tags (reportBody.Tags).
type poolTagSet struct {
	names []string
	more  int
}

// tagsByPool are, for each pool that answered (decided), the tags a
// majority of its listed gateways name, and how many more a majority says
// there are: one lying gateway can neither add a tag to its pool nor hide
// one (unknownEverywhere reads Lacks the same way).
func tagsByPool(decided []pooled, byPool map[string][]verified) map[string]poolTagSet {
	out := map[string]poolTagSet{}
	for _, d := range decided {
		if d.chosen == nil || d.aside != "" {
			continue
		}
		vs := byPool[d.ps.Pool]
		need := majority(max(d.ps.Gateways, len(vs)))
		named := map[string]int{}
		var more []int
		for _, v := range vs {
			for _, t := range v.body.Tags {
				named[t]++
			}
			more = append(more, v.body.MoreTags)
		}
		var set poolTagSet
		for t, c := range named {
			if c >= need {
				set.names = append(set.names, t)
			}
		}
		slices.Sort(set.names)
		if len(more) >= need {
			slices.Sort(more)
			set.more = more[len(more)-need] // a majority says at least this many
		}
		out[d.ps.Pool] = set
	}
	return out
}

// onePerGateway keeps one report per gateway of a pool: a coordinator
// that lists a gateway's report more than once would otherwise count it
// as that many gateways in its pool's majority. vs passed check, their
// signatures first: a gateway with two different ones signed both, which
// an honest one never does (it runs a statement once), and both are
// refused, said in refused — a report made up in its name fails its
// signature before this, and cannot get its own refused. A name is a
// gateway's within its pool (another pool may have one of the same).
func onePerGateway(vs []verified, refused *[]string) []verified {
	type gw struct{ pool, name string }
	bodies := map[gw][][]byte{}
	for _, v := range vs {
		k := gw{v.body.Pool, v.gateway}
		if !slices.ContainsFunc(bodies[k], func(b []byte) bool { return bytes.Equal(b, v.raw) }) {
			bodies[k] = append(bodies[k], v.raw)
		}
	}
	out := make([]verified, 0, len(bodies))
	for _, v := range vs {
		k := gw{v.body.Pool, v.gateway}
		switch n := len(bodies[k]); {
		case n == 0:
			continue // kept already
		case n > 1:
			*refused = append(*refused, fmt.Sprintf("%s: %d different reports signed for one statement", v.gateway, n))
		default:
			out = append(out, v)
		}
		delete(bodies, k)
	}
	return out
}

// clashes are the names that two pools' partials (a top-k's lists)
// both hold. A name is one member of the cloud (docs/CLI.md: unique in
// the cluster), but each Serf pool keeps its names unique only within
// itself: a member of one pool — or its gateways, lying alike — can take
// the name of a member of another, and the merge, which keeps one row a
// name, would then show one machine's figures under the other's name, or
// drop the other's row. Such an answer is contested, naming the pools,
// whether or not the name made the merged list: which copy the merge kept
// decided that.
func clashes(decided []pooled) []string {
	in := map[string][]string{}
	for _, d := range decided {
		if d.chosen == nil || d.chosen.part == nil || d.aside != "" {
			continue
		}
		for _, e := range d.chosen.part.Top {
			in[e.Node] = append(in[e.Node], d.ps.Pool)
		}
	}
	var out []string
	for n, pools := range in {
		if len(pools) > 1 {
			out = append(out, fmt.Sprintf("node %s is in pools %s: a name is one member of the cloud, so one of them is not who it says", n, strings.Join(pools, " and ")))
		}
	}
	sort.Strings(out)
	return out
}

// pooled is one pool's verdict at the asker: the report a majority of
// its gateways agree on (nil: none, and why), and, for a statement FROM
// SUBCLOUD, why the pool is set aside (it does not hold the subcloud).
type pooled struct {
	ps     answer.PoolStatus
	chosen *verified
	why    string
	aside  string
}

// subcloudPool picks the pool whose subcloud a statement FROM SUBCLOUD
// name is about, and sets the others aside. A subcloud lives in its
// owner's pool, and a name is unique within a pool, not across pools: the
// asker's own pool's comes first; else the one pool whose gateways agree
// that a member of theirs owns the name. Two such pools make the name
// ambiguous and none makes it unknown: both are errors in the statement,
// not answers. note says which pools did not answer, and so might hold
// another subcloud of that name.
func (p *pools) subcloudPool(name string, ds []pooled) (note string, err error) {
	var holding, silent []string
	at := -1
	for i, d := range ds {
		switch {
		case d.chosen == nil:
			silent = append(silent, d.ps.Pool)
		case d.chosen.body.Owner != "":
			holding = append(holding, fmt.Sprintf("%s (owner %s)", d.ps.Pool, d.chosen.body.Owner))
			if at < 0 || d.ps.Pool == p.cfg.Pool {
				at = i
			}
		}
	}
	switch {
	case at < 0 && len(silent) == 0:
		return "", &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("unknown subcloud %s: no agent owns it in any of the %d pools", name, len(ds))}
	case at < 0:
		return "", &api.Error{Code: api.CodePartial, Message: fmt.Sprintf("unknown subcloud %s in the pools that answered; pools %s did not answer, and one of them may hold it", name, strings.Join(silent, ", "))}
	case len(holding) > 1 && ds[at].ps.Pool != p.cfg.Pool:
		return "", &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("subcloud %s is ambiguous: %d pools hold one of that name, %s; ask from a peer of the pool you mean (its own pool's comes first)", name, len(holding), strings.Join(holding, ", "))}
	}
	for i := range ds {
		switch {
		case i == at:
		case ds[i].chosen == nil:
			why := ds[i].why
			if why == "disagree" {
				why = "its gateways disagree"
			}
			ds[i].aside = fmt.Sprintf("did not answer (%s): subcloud %s is pool %s's", why, name, ds[at].ps.Pool)
		case ds[i].chosen.body.Owner != "":
			ds[i].aside = fmt.Sprintf("holds another subcloud %s (owner %s): this peer's pool's comes first", name, ds[i].chosen.body.Owner)
		default:
			ds[i].aside = fmt.Sprintf("holds no subcloud %s", name)
		}
	}
	if len(silent) > 0 {
		note = fmt.Sprintf("subcloud %s is pool %s's; pools %s did not answer, and could hold another of that name", name, ds[at].ps.Pool, strings.Join(silent, ", "))
	}
	return note, nil
}

// check verifies one report: signed by the key the cloud pool shows for
// the gateway of that name in the pool the report names (keyOf: another
// pool's gateway of the same name neither speaks for it nor gets its
// report refused), for this query and plan, with a partial that fits the
// plan. In this peer's pool the key is the one its own membership pinned
// (mine), which the coordinator cannot substitute, and a gateway is one
// the view lists there or one of own, the gateways this peer computes:
// not any member.
func (p *pools) check(plan *query.Plan, id QueryID, r poolReport, keyOf gatewayKeys, mine map[string]identity.Public, own []string, views map[string]poolView) (verified, string) {
	var cands []poolKey // the report counts for the pool whose key signed it
	for _, pk := range keyOf[r.Gateway] {
		if pk.pool != p.cfg.Pool {
			cands = append(cands, pk)
		}
	}
	if pinned, in := mine[r.Gateway]; in && !pinned.IsZero() && (slices.Contains(views[p.cfg.Pool].Gateways, r.Gateway) || slices.Contains(own, r.Gateway)) {
		for _, pk := range keyOf[r.Gateway] {
			if pk.pool == p.cfg.Pool && pk.key != pinned {
				return verified{}, "its key in the cloud pool is not the one this pool knows"
			}
		}
		cands = append(cands, poolKey{p.cfg.Pool, pinned})
	}
	if len(cands) == 0 {
		return verified{}, "no key known for it"
	}
	signer := slices.IndexFunc(cands, func(c poolKey) bool { return identity.Verify(c.key, reportDomain, r.Body, r.Sig) })
	if signer < 0 {
		return verified{}, "a bad signature"
	}
	var body reportBody
	if err := decodePool(r.Body, &body); err != nil {
		return verified{}, err.Error()
	}
	switch {
	case string(body.ID) != string(id[:]):
		return verified{}, "a report of another query"
	case body.Plan != plan.Hash():
		return verified{}, "a report of another plan"
	case plan.Owner != "" && body.Owner != plan.Owner:
		return verified{}, fmt.Sprintf("a run over the members of %q, not of %s", body.Owner, plan.Owner)
	case body.Pool != cands[signer].pool:
		// Signed by the key of a gateway of that name in another pool.
		return verified{}, fmt.Sprintf("not a gateway of pool %s", body.Pool)
	case body.Peers < 0 || body.Rounds < 0:
		return verified{}, "negative counts"
	case !slices.Contains([]string{answer.StatusExact, StatusConverged, answer.StatusSampled, StatusPartial, answer.StatusContested, statusFailed}, body.Status):
		return verified{}, fmt.Sprintf("a status of %q", body.Status)
	case !(body.Width >= 0 && body.Width <= query.FallbackMaxWidth) || body.Width > 0 && body.Status != answer.StatusSampled:
		// A sample that stood in is within FallbackMaxWidth, and only a
		// sampled report has one.
		return verified{}, fmt.Sprintf("a sample's width of %v with status %s", body.Width, body.Status)
	case !(body.Elapsed >= 0 && body.Elapsed <= max(maxReportElapsed, p.cfg.PoolTimeout.Seconds())):
		return verified{}, fmt.Sprintf("a run of %v s", body.Elapsed)
	case len(body.Excluded) > answer.MaxNamed || body.ExcludedCount < len(body.Excluded) || body.ExcludedCount > maxExcludedCount:
		return verified{}, fmt.Sprintf("%d members named left out of %d", len(body.Excluded), body.ExcludedCount)
	case !inOrder(body.Excluded):
		return verified{}, "the members it left out are not distinct names in order"
	case !inOrder(body.Lacks) || len(body.Lacks) > 0 && !subset(body.Lacks, plan.Reads()):
		return verified{}, "the attributes its pool lacks are not distinct names the statement reads, in order"
	case len(body.Roster) > maxRoster || !inOrder(body.Roster):
		return verified{}, "the gateways it names for its pool are not distinct names in order, as many as a report may name"
	case !tagsOK(plan, body.Tags, body.MoreTags):
		return verified{}, "the tags it names are not distinct tags in order, as many as a report may name, and asked for"
	}
	v := verified{gateway: r.Gateway, raw: r.Body, body: body}
	if body.Status == statusFailed {
		return v, ""
	}
	part, err := run.DecodePartial(body.Partial)
	if err != nil {
		return verified{}, err.Error()
	}
	if part.Peers != body.Peers {
		return verified{}, "its partial's members are not its report's"
	}
	a, err := run.Merge(plan, []*run.Partial{part})
	if err != nil {
		return verified{}, err.Error()
	}
	v.part, v.ans = part, a
	return v, ""
}

// maxReportElapsed bounds how long a report may say its pool's run took,
// in seconds (or the asker's PoolTimeout, if longer: it waits no longer
// for a report): a gateway's run is bounded by its PoolTimeout (a minute
// by default), and NaN or infinite times would make the answer's JSON
// fail.
const maxReportElapsed = 3600

// maxExcludedCount bounds how many members a pool's report may say its
// run left out: a member is left out once, and a Serf pool past a
// million members is beyond what peerq is built for.
const maxExcludedCount = 1 << 20

// inOrder says names are non-empty, distinct and in order, as a
// run's leftOut gives them.
func inOrder(names []string) bool {
	for i, n := range names {
		if n == "" || len(n) > maxName || i > 0 && names[i-1] >= n {
			return false
		}
	}
	return true
}

// choose is a pool's partial: one that a majority of its listed
// gateways report, agreeing. Without one it says why: "disagree" when
// reports that would make a majority together disagree.
func choose(plan *query.Plan, vs []verified, listed int) (*verified, int, string) {
	var ok []verified
	failed, why := 0, ""
	for _, v := range vs {
		if v.part == nil {
			if failed++; why == "" {
				why = v.body.Reason
			}
			continue
		}
		ok = append(ok, v)
	}
	need := majority(max(listed, len(vs)))
	best, bestN := -1, 0
	for i := range ok {
		n := 0
		for j := range ok {
			if sameRun(plan, ok[i], ok[j]) {
				n++
			}
		}
		if n > bestN {
			best, bestN = i, n
		}
	}
	switch {
	case bestN >= need:
		v, settled := settle(plan, ok, best, need)
		if !settled {
			// Their rows agree, their statuses do not: the answer's is the
			// worse, and a coordinator asks the pool's other gateways.
			return v, bestN, statusesSplit
		}
		return v, bestN, ""
	case listed == 0 && len(vs) == 0:
		return nil, 0, "it has no gateway in the cloud pool now"
	case len(ok) >= need && changed(ok):
		// Honest gateways that ran while a member failed or joined count
		// it or not, each as its run found it (a netns run: a gateway
		// killed mid-statement made 4 of 10 answers disagree so): the
		// pool changed, which makes it partial, not a lie.
		var ns []string
		for _, v := range ok {
			ns = append(ns, strconv.Itoa(v.body.Peers))
		}
		same := ""
		if !slices.ContainsFunc(ok, func(v verified) bool { return v.body.Peers != ok[0].body.Peers }) {
			same = " peers, not the same ones" // a member restarted, or one left as another came
		}
		return nil, bestN, fmt.Sprintf("its gateways' reports differ and so do their members (%s%s): the pool changed while they ran", strings.Join(ns, ", "), same)
	case len(ok) >= need:
		return nil, bestN, "disagree"
	case failed > 0:
		return nil, bestN, fmt.Sprintf("%d of its %d gateways reported, %d failed to answer (%s)", len(ok), listed, failed, why)
	}
	return nil, bestN, fmt.Sprintf("%d of its %d gateways reported in time", len(ok), listed)
}

// statusesSplit is choose's why for a pool whose gateways' rows agree
// but whose statuses do not: the chosen report carries the worse, and a
// coordinator asks the pool's other gateways (decided).
const statusesSplit = "statuses split"

// settle is the report a pool's agreeing gateways speak for, the rows
// of ok[best]'s: its status is the one most of them report (a tie goes to
// the worse, by statusRank), a sampled pool's width the widest any of
// them reports with that status, and the members it left out those need
// of them name (leftOutBy), whatever their statuses; settled says need of
// them report that status. agree compares rows alone, so that a liar whose partial
// agrees with the others' would otherwise speak for the pool's status
// and width by arriving first: calling a stood-in answer converged, or
// an honest one contested.
func settle(plan *query.Plan, ok []verified, best, need int) (out *verified, settled bool) {
	votes := map[string]int{}
	var agreeing []verified
	for _, v := range ok {
		if sameRun(plan, ok[best], v) {
			agreeing = append(agreeing, v)
			votes[v.body.Status]++
		}
	}
	status := ok[best].body.Status
	for st, n := range votes {
		if m := votes[status]; n > m || n == m && statusRank(st) > statusRank(status) {
			status = st
		}
	}
	bodies := make([]reportBody, 0, len(agreeing))
	for _, v := range agreeing {
		bodies = append(bodies, v.body)
		if v.body.Status != status {
			continue
		}
		if out == nil {
			c := v
			out = &c
			continue
		}
		out.body.Width = max(out.body.Width, v.body.Width)
	}
	// Who was left out is about the run, whatever status each gave it.
	out.body.Excluded, out.body.ExcludedCount = leftOutBy(bodies, need)
	out.votes = votes[status]
	return out, out.votes >= need
}

// leftOutBy is who a pool's reports say their runs left out, as k of
// them say it: that a member was left out is a word about another peer,
// which one gateway's report does not make (unless the pool lists one
// gateway) — the first MaxNamed of the names k of them give, and the most
// members k of them count (at least those names). A liar among them can
// leave names out (and the count down to the others' least), not add one.
func leftOutBy(bodies []reportBody, k int) ([]string, int) {
	named := map[string]int{}
	counts := make([]int, 0, len(bodies))
	for _, b := range bodies {
		for _, n := range b.Excluded {
			named[n]++
		}
		counts = append(counts, b.ExcludedCount)
	}
	var names []string
	for n, c := range named {
		if c >= k {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	slices.SortFunc(counts, func(a, b int) int { return b - a })
	count := 0
	if k > 0 && k <= len(counts) {
		count = counts[k-1]
	}
	return names[:min(len(names), answer.MaxNamed)], max(count, len(names))
}

// statusRank orders a pool's statuses from the best an answer can have
// to the worst: a tie between a pool's agreeing gateways goes to the
// worse.
func statusRank(status string) int {
	switch status {
	case answer.StatusExact:
		return 0
	case StatusConverged:
		return 1
	case answer.StatusSampled:
		return 2
	case StatusPartial:
		return 3
	}
	return 4 // contested, or one this peer does not know
}

// agree says whether two pools' answers are the same answer: the same
// rows, numbers within the plan's accuracy (two runs of flow updating in
// one pool converge each to its own last digits); for a statement
// answered from member lists, the same to the last digit.
//
// A top-k's rows agree rank by rank on their values, not on the names: a
// member's figures move between two runs (free memory, load), and
// members with nearly equal ones trade places (a netns run contested 2
// top-5s in 14 so, nothing failing). The members must be the same: a
// gateway can reorder them, not bring in another or change a value.
func agree(plan *query.Plan, a, b *answer.Answer) bool {
	if len(a.Rows) != len(b.Rows) || len(a.Nodes) != len(b.Nodes) {
		return false
	}
	an, bn := slices.Clone(a.Nodes), slices.Clone(b.Nodes)
	slices.Sort(an)
	slices.Sort(bn)
	if !slices.Equal(an, bn) {
		return false // the same members, in whatever order their values put them
	}
	tol := max(plan.Accuracy, 1e-9)
	if plan.FromMemberLists() {
		// From member lists (runPool): honest gateways that see the same
		// members report the same partial to the bit, so any difference
		// is a disagreement — else a liar's, within the accuracy, would
		// pass for the pool's exact answer; and ties are in name order.
		tol = 1e-12
		if !slices.Equal(a.Nodes, b.Nodes) {
			return false
		}
	}
	for i := range a.Rows {
		if len(a.Rows[i]) != len(b.Rows[i]) {
			return false
		}
		for j, x := range a.Rows[i] {
			y := b.Rows[i][j]
			if i < len(a.Nodes) && x.Str == a.Nodes[i] && y.Str == b.Nodes[i] {
				continue // the node's name
			}
			if x.Kind != y.Kind || x.Str != y.Str || x.Bool != y.Bool {
				return false
			}
			if d := math.Abs(x.Num - y.Num); d > tol*max(math.Abs(x.Num), math.Abs(y.Num)) && d > 1e-9 {
				return false
			}
		}
	}
	return true
}

// changed says whether reports count different members: their pool's
// membership moved while they ran.
func changed(vs []verified) bool {
	for _, v := range vs {
		if v.body.Members != v.body.MembersEnd {
			return true // while it ran
		}
	}
	for _, v := range vs[1:] {
		if v.body.Peers != vs[0].body.Peers || v.body.Members != vs[0].body.Members {
			return true
		}
	}
	return false
}

// membersDigest is a digest of a pool's members, each by name and
// incarnation (Boot: new at every start), whatever their order: a sum
// over them of the name's FNV-1a with the incarnation, mixed (mix64) so
// that two members' changes do not cancel out.
func membersDigest(ms []network.Member) uint64 {
	var sum uint64
	for _, m := range ms {
		sum += mix64(hash64(m.Name) ^ m.Boot)
	}
	return sum
}

// mix64 spreads x's bits (the first half of MurmurHash3's finalizer):
// hashes combined by a sum or compared by order need it.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	return x ^ x>>33
}

// joinReason joins two reasons or warnings, either of which may be empty.
func joinReason(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
