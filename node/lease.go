package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// Subclouds, this peer's side: the lease keeper role below; the owner's
// side is the owner role (node/owner, wired in owner.go).

// Tags a reserved peer shows, so that FROM SUBCLOUD and SHOW SUBCLOUDS are
// answered from the membership.
const (
	TagSubcloud = "subcloud"
	tagOwner    = "subcloud_owner"
	tagUntil    = "subcloud_until" // Unix seconds
	tagSince    = "subcloud_since" // the subcloud's creation, Unix milliseconds
	// TagStorage is shown while the peer's data dir cannot be written:
	// "disk full", "read-only", ... (absent when it can).
	TagStorage = "storage"
)

// leaseKeeper is the lease keeper role, this peer's side of subclouds: it
// answers the lease and name requests other peers make about this peer
// (claims, renewals, releases, checks; registrations and lookups of the
// names it keeps) from its keeper (keeper.go: the table, the names and the
// ledger, on disk before it answers), shows its lease and its storage
// fault in its tags, frees the peer from a lease that lapsed or that its
// owner no longer holds, checks that the data dir can be written, and
// gives its ledger's rows to FROM leases.
//
// It has no lock of its own: the table is the keeper's (its lock, taken
// per change, and atomic snapshots for the readers), the counters are
// atomic, and its goroutines share nothing else: the tagger, fed by a
// channel of one slot, the lease loop, and the asks the loop starts.
// Nothing it does holds a lock across a request or a write. It talks to
// the membership through keeperNet, sends its asks through leaseCaller,
// and passes what is asked of the subclouds this peer owns to ownerSide.
type leaseKeeper struct {
	keeper *keeper
	net    keeperNet
	boot   uint64 // this peer's incarnation, which requests must name
	now    func() time.Time
	// tags are the peer's static tags, shown with its lease.
	tags  map[string]string
	owner ownerSide
	call  leaseCaller
	names *nameKeepers
	// across, in a cloud of pools, are the keys of other pools' members
	// (owners named pool/name) as this pool's gateways vouch for them
	// (relay.go); nil in a cloud of one pool.
	across interface {
		remoteKey(q string) (identity.Public, uint64, bool)
		lastBoot(q string) uint64
		poolName() string
	}
	// ask bounds a lookup of a name's owner for a dated claim: half an
	// exchange, so that the claim's answer is not late.
	ask time.Duration
	// tick is how often the lease loop checks the lease for expiry and
	// its owner (Config.LeaseTick); probeEvery how often it checks that
	// the data dir can be written (Config.StorageProbe).
	tick, probeEvery time.Duration
	logf             func(string, ...any)

	// forged counts lease and name requests refused as not signed by the
	// owner they name (and owners' answers about this peer's lease with
	// a bad signature); stale those made for an earlier incarnation;
	// malformed those that did not decode; tagFailures the tag updates
	// the network refused; keyChanged the owners' answers signed by
	// another key than the lease was claimed with (the owner lost its
	// data dir).
	forged, stale, malformed, tagFailures, keyChanged atomic.Int64

	// ctx ends when the keeper stops: asks in flight give up.
	ctx    context.Context
	cancel context.CancelFunc
	tagCh  chan struct{} // asks the tagger to show the lease
	done   chan struct{}
	wg     sync.WaitGroup
}

// keeperNet is the membership as the lease keeper sees it: who a member is
// (its key and incarnation) and this peer's tags. It must be safe for
// concurrent use; SetTags may block (the tagger calls it).
type keeperNet interface {
	Name() string
	Member(name string) (network.Member, bool)
	SetTags(tags map[string]string) error
}

// ownerSide answers what a lease request asks of the subclouds this peer
// owns: whether it still holds one (an ask from a member or a keeper,
// signed), and its account of one (for another agent's SHOW SUBCLOUDS).
// Both must be safe for concurrent use and must not block on a request.
type ownerSide interface {
	answerAsk(from string, req subcloud.Request) subcloud.Reply
	answerInfo(name string) []byte
}

// newLeaseKeeper makes the role over keeper; start starts it. Its fields
// are given in lk, as New has them.
func newLeaseKeeper(lk *leaseKeeper) *leaseKeeper {
	lk.ctx, lk.cancel = context.WithCancel(context.Background())
	lk.tagCh, lk.done = make(chan struct{}, 1), make(chan struct{})
	lk.keeper.faultChanged = lk.show // the storage tag comes or goes with the fault
	return lk
}

// start starts the tagger and the lease loop, and shows the lease a
// restarted peer still holds.
func (lk *leaseKeeper) start() {
	lk.wg.Add(2)
	go lk.tagger()
	go lk.loop()
	if _, held := lk.current(); held {
		lk.show()
	}
}

// stop ends the tagger, the lease loop and the asks in flight, and waits
// for them.
func (lk *leaseKeeper) stop() {
	close(lk.done)
	lk.cancel()
	lk.wg.Wait()
}

// current is the peer's live lease. It takes no lock.
func (lk *leaseKeeper) current() (subcloud.Lease, bool) {
	return lk.keeper.current(lk.now())
}

// self is this peer as a lease request must name it.
func (lk *leaseKeeper) self() subcloud.Self {
	return subcloud.Self{Name: lk.net.Name(), Boot: lk.boot, KeyOf: lk.keyOf}
}

// keyOf is the identity the membership shows for a live member, or,
// for a member of another pool (pool/name), the one its gateways vouched
// for.
func (lk *leaseKeeper) keyOf(name string) (identity.Public, bool) {
	if _, _, remote := remoteName(name); remote {
		if lk.across == nil {
			return identity.Public{}, false
		}
		key, _, ok := lk.across.remoteKey(name)
		return key, ok && !key.IsZero()
	}
	m, ok := lk.net.Member(name)
	return m.Key, ok && !m.Key.IsZero()
}

// bootOf is a live member's incarnation (0: unknown), as keyOf finds it.
func (lk *leaseKeeper) bootOf(name string) uint64 {
	if _, _, remote := remoteName(name); remote {
		if lk.across == nil {
			return 0
		}
		_, boot, _ := lk.across.remoteKey(name)
		return boot
	}
	m, _ := lk.net.Member(name)
	return m.Boot
}

// ownerBoot is the incarnation of the owner of this peer's lease, as the
// lease loop compares it with the last it asked about: for an owner of
// another pool, the one last vouched for (however long ago: a vouch is
// believed 30 s, and the incarnation changes only when the owner
// restarts), 1 if none since this peer started, so that it is asked at
// once after a restart, then every askEvery or when a vouch shows a new
// incarnation.
func (lk *leaseKeeper) ownerBoot(owner string) uint64 {
	if _, _, remote := remoteName(owner); remote && lk.across != nil {
		if b := lk.across.lastBoot(owner); b != 0 {
			return b
		}
		return 1
	}
	return lk.bootOf(owner)
}

// selfFor is this peer's name as the owner named owner knows it: pool/name
// for an owner of another pool, which claimed it so.
func (lk *leaseKeeper) selfFor(owner string) string {
	if _, _, remote := remoteName(owner); remote && lk.across != nil {
		return qualify(lk.across.poolName(), lk.net.Name())
	}
	return lk.net.Name()
}

// handle answers a lease or name request from the peer named from:
// this peer's table and names persist before answering; an ask goes to the
// owner's side. A refusal that says another peer forged or replayed
// something is counted and logged.
func (lk *leaseKeeper) handle(from string, raw []byte) []byte {
	req, err := subcloud.DecodeRequest(raw)
	if err != nil {
		lk.malformed.Add(1)
		return subcloud.Reply{Refusal: subcloud.RefusedMalformed}.Encode()
	}
	switch req.Op {
	case subcloud.OpAsk:
		return lk.owner.answerAsk(from, req).Encode()
	case subcloud.OpInfo:
		return lk.owner.answerInfo(req.Subcloud)
	}
	if req.Op == subcloud.OpName {
		lk.clearStaleName(req)
	}
	now := lk.now()
	var ownerBoot uint64
	if req.Op == subcloud.OpClaim || req.Op == subcloud.OpRenew {
		ownerBoot = lk.bootOf(from)
	}
	self := lk.self()
	// A claim dated back (a repair of an old subcloud, or a liar) is
	// checked with the name's keepers: no claim is older than its name.
	// A fresh RESERVE's claims are dated now and need no lookup, which
	// would cost each claim a round trip.
	// An owner of another pool (pool/name) registered the name with its
	// own pool's keepers, which this peer cannot ask: a name is unique
	// within its owner's pool (relay.go).
	_, _, remote := remoteName(req.Owner)
	if req.Op == subcloud.OpClaim && req.Since > 0 && now.Sub(time.Unix(0, req.Since)) > sinceSlack && !remote {
		if _, held := lk.current(); !held {
			// Asked before the keeper's lock is taken: no lock across I/O.
			h, known := lk.holderOf(req.Subcloud)
			self.NameHolder = func(string) (subcloud.NameHolder, bool) { return h, known }
			now = lk.now()
		}
	}
	rep := lk.keeper.apply(now, self, from, req, ownerBoot)
	switch rep.Refusal {
	case subcloud.RefusedForged:
		lk.forged.Add(1)
		lk.logf("refused a %v of subcloud %q from %s: not signed by the owner it names (owner %q) — a forgery, or a relay", req.Op, req.Subcloud, from, req.Owner)
	case subcloud.RefusedIncarnation:
		lk.stale.Add(1)
	}
	if rep.OK && req.Op != subcloud.OpCheck && req.Op != subcloud.OpWho && req.Op != subcloud.OpName && req.Op != subcloud.OpNameRelease {
		lk.show()
	}
	return rep.Encode()
}

// sinceSlack is how far back a claim may be dated without a lookup of
// its name: about a RESERVE's own time (its claims are dated when it
// started).
const sinceSlack = 30 * time.Second

// holderOf asks the keepers of a subcloud's name who holds it, for a
// claim about to be granted (subcloud.Self.NameHolder), within half an
// exchange's time so that the claim's answer is not late.
func (lk *leaseKeeper) holderOf(name string) (subcloud.NameHolder, bool) {
	ctx, cancel := context.WithTimeout(lk.ctx, lk.ask)
	defer cancel()
	o, held, err := lk.names.ownerOf(ctx, name)
	if err != nil {
		return subcloud.NameHolder{}, false
	}
	if !held {
		return subcloud.NameHolder{}, true
	}
	return subcloud.NameHolder{Owner: o.owner, Key: o.key, Since: o.since}, true
}

// clearStaleName runs at a keeper before it answers a registration of a
// name it holds for another owner: it asks that owner whether it still
// holds the name, and drops the record if the owner answers, signed, that
// it does not (it restarted without its records, or a RESERVE that failed
// could not give the name back). A name nobody holds is then free at once,
// not at its record's expiry.
func (lk *leaseKeeper) clearStaleName(req subcloud.Request) {
	now := lk.now()
	rec, live := lk.keeper.who(now, req.Subcloud)
	if !live || rec.Owner == req.Owner {
		return
	}
	if _, alive := lk.net.Member(rec.Owner); !alive {
		return // cannot ask: the majority rule, or the record's expiry
	}
	var b [8]byte
	rand.Read(b[:])
	ask := subcloud.Request{Op: subcloud.OpAsk, Subcloud: req.Subcloud, Target: rec.Owner, Nonce: binary.BigEndian.Uint64(b[:])}
	rep, err := lk.call.callRaw(lk.ctx, rec.Owner, ask)
	if err != nil || !rep.OK || rep.Held {
		return
	}
	a := subcloud.AskAnswer{Subcloud: req.Subcloud, Member: lk.net.Name(), Nonce: ask.Nonce}
	if !subcloud.VerifyAsk(rec.OwnerKey, a, rep.Sig) {
		return
	}
	if lk.keeper.dropName(now, req.Subcloud, rec.OwnerKey) {
		lk.logf("name %s: %s no longer holds it (it says so, signed): its record here is dropped", req.Subcloud, rec.Owner)
	}
}

// ledgerRows are the peer's rows of FROM leases (ledger.go); they take no
// lock.
func (lk *leaseKeeper) ledgerRows() []query.Record {
	return lk.keeper.rows(lk.net.Name(), lk.now())
}

// ledgerShown is the ledger as a sampled member shows it (ledger.go); it
// takes no lock.
func (lk *leaseKeeper) ledgerShown(p *query.Plan) []shownRow {
	return lk.keeper.shown(p, lk.net.Name(), lk.now())
}

// show asks the tagger to put the peer's lease in its Serf tags. It
// never blocks: requests made while one is pending are one request.
func (lk *leaseKeeper) show() {
	select {
	case lk.tagCh <- struct{}{}:
	default:
	}
}

// tagger applies the lease to the Serf tags, one SetTags at a time (it
// blocks while Serf re-broadcasts), always with the latest lease.
func (lk *leaseKeeper) tagger() {
	defer lk.wg.Done()
	for {
		select {
		case <-lk.done:
			return
		case <-lk.tagCh:
		}
		tags := map[string]string{}
		for k, v := range lk.tags {
			tags[k] = v
		}
		if f := lk.keeper.fault(); f != nil {
			tags[TagStorage] = f.reason
		}
		if l, ok := lk.current(); ok {
			tags[TagSubcloud], tags[tagOwner] = l.Subcloud, l.Owner
			tags[tagUntil] = strconv.FormatInt(l.Expires.Unix(), 10)
			since := l.Since
			if since.IsZero() {
				since = l.Granted
			}
			tags[tagSince] = strconv.FormatInt(since.UnixMilli(), 10)
		}
		if err := lk.net.SetTags(tags); err != nil {
			lk.tagFailures.Add(1)
			lk.logf("cannot show this peer's lease in its tags: %v (others see the old tags until the next change)", err)
		}
	}
}

// loop frees an expired lease from the tags, asks the owner of this
// peer's lease about it when the owner restarted (or was not heard from
// for long), and checks that the data dir can be written.
func (lk *leaseKeeper) loop() {
	defer lk.wg.Done()
	t := time.NewTicker(lk.tick)
	defer t.Stop()
	shown := false
	lastProbe := lk.now()
	for {
		select {
		case <-lk.done:
			return
		case <-t.C:
		}
		now := lk.now()
		l, held := lk.current()
		if shown && !held {
			lk.show() // lapsed: the peer is free again
			lk.keeper.closeLapsed(now)
		}
		shown = held
		if held {
			if l2, due := lk.keeper.due(now, lk.ownerBoot(l.Owner)); due {
				lk.wg.Add(1)
				go lk.askOwner(l2)
			}
		}
		if now.Sub(lastProbe) >= lk.probeEvery {
			lastProbe = now
			lk.keeper.probe() // a change of the fault shows in the tags (keeper.faultChanged)
		}
	}
}

// askOwner asks the owner of this peer's lease whether it still holds it,
// and frees the peer if the owner answers, signed with the key the lease
// was claimed with, that it does not: an owner that restarted without its
// records, or a claim replayed or made by a RESERVE that failed, leaves
// no lease that nobody can release.
func (lk *leaseKeeper) askOwner(l subcloud.Lease) {
	defer lk.wg.Done()
	var nonce [8]byte
	rand.Read(nonce[:])
	req := subcloud.Request{Op: subcloud.OpAsk, Subcloud: l.Subcloud, Token: l.Token, Target: l.Owner,
		Nonce: binary.BigEndian.Uint64(nonce[:])}
	rep, err := lk.call.callRaw(lk.ctx, l.Owner, req)
	if err != nil || !rep.OK {
		return // asked again later
	}
	a := subcloud.AskAnswer{Subcloud: l.Subcloud, Token: l.Token, Member: lk.selfFor(l.Owner), Nonce: req.Nonce, Held: rep.Held}
	now := lk.now()
	if !subcloud.VerifyAsk(l.OwnerKey, a, rep.Sig) {
		// Asked again only after askEvery, and said once per lease: an
		// owner that lost its key answers every time with its new one.
		first := lk.keeper.unverified(now, lk.ownerBoot(l.Owner), l)
		if key, _ := lk.keyOf(l.Owner); key != l.OwnerKey {
			lk.keyChanged.Add(1)
			if first {
				lk.logf("%s answered about this peer's lease of subcloud %s with a new key (%s; the lease was claimed by %s): it lost its data dir, and nobody can renew or release the lease — it lapses at %s",
					l.Owner, l.Subcloud, key.Short(), l.OwnerKey.Short(), l.Expires.Format(time.RFC3339))
			}
			return
		}
		lk.forged.Add(1)
		if first {
			lk.logf("%s answered about this peer's lease of subcloud %s without the signature of the key that claimed it: ignored (asked again in %v)", l.Owner, l.Subcloud, askEvery)
		}
		return
	}
	if rep.Held {
		lk.keeper.answered(now, lk.ownerBoot(l.Owner))
		return
	}
	err = lk.keeper.drop(now, l)
	lk.logf("freed this peer from subcloud %s: its owner %s says it no longer holds it (it restarted without it, or released it)", l.Subcloud, l.Owner)
	if err != nil {
		lk.logf("the release is in memory only: %v (after a restart this peer asks %s again)", err, l.Owner)
	}
	lk.show()
}
