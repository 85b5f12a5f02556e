package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// Subclouds: this peer's side (its lease table, persisted before it
// answers, shown in Serf tags) and the owner's side (RESERVE drives a
// subcloud.Claimer over the exchanges, renews the leases, RELEASE frees
// them).

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

// ownedSubcloud is a subcloud this peer reserved and keeps: it renews
// its members' leases and, unless NO REPAIR, replaces members it loses.
// Its fields are guarded by Node.ownMu.
type ownedSubcloud struct {
	name, token, key string
	lease            time.Duration
	// members and the expiry each one last confirmed.
	members map[string]time.Time
	renewed time.Time
	// order is the members best first: in the rank the search gave them,
	// replacements after. RESIZE releases from the end.
	order []string
	// plan is the RESERVE's plan, encoded: repairs and RESIZE search with
	// its WHERE and ORDER BY. nil for a subcloud restored from an older
	// table, which then cannot grow.
	plan   []byte
	target int  // the size the owner keeps it at
	repair bool // replace lost members (not NO REPAIR)
	since  time.Time
	// repairs counts the members claimed in place of lost ones.
	repairs    int
	lastRepair time.Time
	// dropped are former members that may still hold this subcloud's lease
	// (they failed, or were cut off, before they could be told): each is
	// released when it is seen again, and forgotten at its lease's expiry.
	dropped map[string]time.Time
	// busy: a repair or RESIZE is claiming (one at a time); no repair is
	// tried before retryAt (a back-off after one that found nobody).
	busy    bool
	retryAt time.Time
	// lostAt are the times members were lost and not yet replaced, oldest
	// first; repairTimes how long each replacement took from its loss
	// (the last 1000), for the churn benchmark.
	lostAt      []time.Time
	repairTimes []time.Duration
	// misses counts each member's checks in a row that got no answer.
	misses map[string]int
	// episodes and metered are the owner's account of the subcloud, by the
	// ledger's rule (ledger.go): each member's span from its claim to the
	// last renewal it answered (kept while it is dropped, as it may come
	// back), and the spans closed.
	episodes map[string]*episode
	metered  time.Duration
	// spares are the last search's candidates that were neither claimed
	// nor refused, best first: a repair claims from them at once, and
	// searches only when they run out (not kept across restarts).
	spares []string
	// keepers are the peers that granted the subcloud's name, now or
	// before (the set moves with the membership): RELEASE gives it up at
	// every one.
	keepers []string
}

// episode is a member's metered span.
type episode struct{ start, until time.Time }

// renewedAt moves a member's metered span to now.
func (o *ownedSubcloud) renewedAt(m string, now time.Time) {
	if e := o.episodes[m]; e != nil {
		e.until = now
	}
}

// closeEpisode ends a member's metered span at its last renewal: it was
// released, or its lease lapsed.
func (o *ownedSubcloud) closeEpisode(m string) {
	if e := o.episodes[m]; e != nil {
		o.metered += e.until.Sub(e.start)
		delete(o.episodes, m)
	}
}

// peerHours is the owner's account of the subcloud.
func (o *ownedSubcloud) peerHours() float64 {
	d := o.metered
	for _, e := range o.episodes {
		d += e.until.Sub(e.start)
	}
	return d.Hours()
}

func (o *ownedSubcloud) names() []string {
	out := make([]string, 0, len(o.members))
	for m := range o.members {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// ranked is the members, best first.
func (o *ownedSubcloud) ranked() []string {
	out := make([]string, 0, len(o.members))
	seen := map[string]bool{}
	for _, m := range o.order {
		if _, ok := o.members[m]; ok && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	// Members the order does not know (an older table) go last, by name.
	for _, m := range o.names() {
		if !seen[m] {
			out = append(out, m)
		}
	}
	return out
}

// add makes peers members (after the ones it has), with their expiries.
func (o *ownedSubcloud) add(peers []string, held map[string]time.Time, now time.Time) {
	o.order = o.ranked()
	if o.episodes == nil {
		o.episodes = map[string]*episode{}
	}
	for _, m := range peers {
		o.members[m] = held[m]
		o.order = append(o.order, m)
		delete(o.dropped, m)
		if e := o.episodes[m]; e != nil {
			e.until = now // taken back: its span goes on
		} else {
			o.episodes[m] = &episode{start: now, until: now}
		}
	}
}

// drop removes a member lost at now; it may still hold the lease until exp.
func (o *ownedSubcloud) drop(m string, exp, now time.Time) {
	delete(o.members, m)
	o.lostAt = append(o.lostAt, now)
	if o.dropped == nil {
		o.dropped = map[string]time.Time{}
	}
	o.dropped[m] = exp
	o.order = o.ranked()
}

// ownedJSON is an owned subcloud on disk.
type ownedJSON struct {
	Name    string               `json:"name"`
	Token   string               `json:"token"`
	Key     string               `json:"key,omitempty"`
	Lease   time.Duration        `json:"lease"`
	Members map[string]time.Time `json:"members"` // member → expiry it last confirmed
	// Version 2 on.
	Order      []string             `json:"order,omitempty"`
	Plan       []byte               `json:"plan,omitempty"`
	Target     int                  `json:"target,omitempty"`
	NoRepair   bool                 `json:"no_repair,omitempty"`
	Since      time.Time            `json:"since,omitzero"`
	Repairs    int                  `json:"repairs,omitempty"`
	LastRepair time.Time            `json:"last_repair,omitzero"`
	Dropped    map[string]time.Time `json:"dropped,omitempty"`
	// The owner's account: open spans (member → [start, until]) and the
	// closed ones' total.
	Episodes map[string][2]time.Time `json:"episodes,omitempty"`
	Metered  time.Duration           `json:"metered,omitempty"`
	// Version 3 on: the name's keepers.
	Keepers []string `json:"keepers,omitempty"`
}

type ownedDoc struct {
	Version   int         `json:"version"`
	Subclouds []ownedJSON `json:"subclouds"`
}

// ownedVersion is the owner's table's version: 2 added the size it keeps,
// the plan it repairs with, its repairs and the members it dropped; 3 the
// name's keepers.
const ownedVersion = 3

// openOwned restores the subclouds this peer owns from dataDir ("" for
// none), so that a restarted owner renews and can release them.
func openOwned(fsys durable.FS, dataDir string) (map[string]*ownedSubcloud, string, error) {
	owned := map[string]*ownedSubcloud{}
	if dataDir == "" {
		return owned, "", nil
	}
	note, _, err := durable.Read(fsys, filepath.Join(dataDir, ownedFile), func(b []byte) error {
		got, err := decodeOwned(b)
		if err == nil {
			owned = got
		}
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("node: owned subclouds: %w (the subclouds this peer owned are no longer renewed and lapse at their expiry)", err)
	}
	return owned, note, nil
}

// decodeOwned reads the owner's table, bounded and checked. A version 1
// table (no plan) gives subclouds that keep their size but are not
// repaired.
func decodeOwned(b []byte) (map[string]*ownedSubcloud, error) {
	var doc ownedDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc.Version < 1 || doc.Version > ownedVersion {
		return nil, fmt.Errorf("version %d, want 1 to %d", doc.Version, ownedVersion)
	}
	out := map[string]*ownedSubcloud{}
	for _, j := range doc.Subclouds {
		switch {
		case j.Name == "" || len(j.Name) > subcloud.MaxNameBytes || len(j.Token) < 16 || len(j.Token) > subcloud.MaxTokenBytes ||
			len(j.Key) > subcloud.MaxTokenBytes || j.Lease < subcloud.MinLease || j.Lease > subcloud.MaxLease ||
			len(j.Members) > query.MaxReserve || len(j.Order) > 2*query.MaxReserve || len(j.Dropped) > 4*query.MaxReserve ||
			j.Target < 0 || j.Target > query.MaxReserve || j.Repairs < 0 || j.Metered < 0 || len(j.Episodes) > 4*query.MaxReserve || out[j.Name] != nil ||
			len(j.Keepers) > 4*subcloud.KeeperCount:
			return nil, fmt.Errorf("subcloud %q out of bounds", j.Name)
		}
		o := &ownedSubcloud{name: j.Name, token: j.Token, key: j.Key, lease: j.Lease, members: map[string]time.Time{},
			order: j.Order, target: j.Target, since: j.Since, repairs: j.Repairs, lastRepair: j.LastRepair,
			dropped: map[string]time.Time{}, episodes: map[string]*episode{}, metered: j.Metered, keepers: j.Keepers}
		for m, span := range j.Episodes {
			if m == "" || len(m) > subcloud.MaxNameBytes || span[1].Before(span[0]) {
				return nil, fmt.Errorf("subcloud %q: a bad account entry", j.Name)
			}
			o.episodes[m] = &episode{start: span[0], until: span[1]}
		}
		for m, exp := range j.Members {
			if m == "" || len(m) > subcloud.MaxNameBytes {
				return nil, fmt.Errorf("subcloud %q: a bad member name", j.Name)
			}
			o.members[m] = exp
		}
		for m, exp := range j.Dropped {
			if m == "" || len(m) > subcloud.MaxNameBytes {
				return nil, fmt.Errorf("subcloud %q: a bad member name", j.Name)
			}
			o.dropped[m] = exp
		}
		if len(j.Plan) > 0 {
			if _, err := query.Decode(j.Plan); err != nil {
				return nil, fmt.Errorf("subcloud %q: its plan: %w", j.Name, err)
			}
			o.plan, o.repair = j.Plan, !j.NoRepair
		}
		if o.target == 0 {
			o.target = len(o.members)
		}
		out[j.Name] = o
	}
	return out, nil
}

// ownedStore writes the owner's table: one write at a time (turn), the
// newest snapshot wins, and no lock is held while it writes — not ownMu,
// which leaseView, SHOW SUBCLOUDS and FROM SUBCLOUD take, and not mu.
type ownedStore struct {
	seq     uint64 // the last snapshot taken (guarded by Node.ownMu)
	mu      sync.Mutex
	turn    turn   // the write under way (its cond is on mu)
	written uint64 // the last snapshot on disk (guarded by mu)
	// tried is the last snapshot whose write was tried, and failed the
	// error it failed with, if it did (guarded by mu).
	tried  uint64
	failed error
}

// saveOwned writes the subclouds this peer owns durably, and returns when
// the state as it was at the call is on disk (or could not be). It takes
// ownMu only to copy the table: call it without ownMu held.
func (n *Node) saveOwned() error {
	if n.cfg.DataDir == "" {
		return nil
	}
	n.ownMu.Lock()
	b := n.marshalOwned()
	n.store.seq++
	seq := n.store.seq
	n.ownMu.Unlock()
	return n.store.write(seq, func() error {
		return n.keeper.stored(durable.Write(n.fs, filepath.Join(n.cfg.DataDir, ownedFile), b))
	})
}

// write runs w, the write of snapshot seq, in its turn and with no lock
// held, unless a later snapshot is on disk already (then it is done) or a
// later one's write failed (then an older snapshot must not overwrite what
// may be on disk of it: seq's state is not stored, and the error says so).
// The zero ownedStore is ready: its turn's cond is bound on first use.
func (s *ownedStore) write(seq uint64, w func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.turn.free.L == nil {
		s.turn.free.L = &s.mu
	}
	defer s.turn.take()()
	if s.written >= seq {
		return nil // a later snapshot, which holds this one's changes, is on disk
	}
	if s.tried > seq {
		return fmt.Errorf("node: a later state of the owned subclouds could not be stored: %w", s.failed)
	}
	s.tried = seq
	s.mu.Unlock()
	err := w()
	s.mu.Lock()
	if err != nil {
		s.failed = err
		return err
	}
	s.written = seq
	return nil
}

// saved is saveOwned for the owner's background work (renewals, repairs,
// checks): a failure is logged, and the peer's storage fault says it.
func (n *Node) saved() {
	if err := n.saveOwned(); err != nil {
		n.logf("cannot store the subclouds this peer owns: %v (a restart would forget the last change; its members would ask, and be released)", err)
	}
}

// marshalOwned is the owner's table on disk. Called with n.ownMu held.
func (n *Node) marshalOwned() []byte {
	doc := ownedDoc{Version: ownedVersion}
	for _, o := range n.owned {
		j := ownedJSON{Name: o.name, Token: o.token, Key: o.key, Lease: o.lease, Members: map[string]time.Time{},
			Order: o.ranked(), Plan: o.plan, Target: o.target, NoRepair: !o.repair, Since: o.since,
			Repairs: o.repairs, LastRepair: o.lastRepair, Dropped: o.dropped, Metered: o.metered, Episodes: map[string][2]time.Time{},
			Keepers: o.keepers}
		for m, e := range o.episodes {
			j.Episodes[m] = [2]time.Time{e.start, e.until}
		}
		for m, exp := range o.members {
			j.Members[m] = exp
		}
		doc.Subclouds = append(doc.Subclouds, j)
	}
	sort.Slice(doc.Subclouds, func(i, j int) bool { return doc.Subclouds[i].Name < doc.Subclouds[j].Name })
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // plain structs of strings, times and numbers always encode
	}
	return b
}

// currentLease is the peer's live lease. It takes no lock.
func (n *Node) currentLease() (subcloud.Lease, bool) {
	return n.keeper.current(n.now())
}

// self is this peer as a lease request must name it.
func (n *Node) self() subcloud.Self {
	return subcloud.Self{Name: n.Name(), Boot: n.id.Boot(), KeyOf: n.keyOf}
}

// keyOf is the identity the membership shows for a live member.
func (n *Node) keyOf(name string) (identity.Public, bool) {
	m, ok := n.net.Member(name)
	return m.Key, ok && !m.Key.IsZero()
}

// bootOf is a live member's incarnation (0: unknown).
func (n *Node) bootOf(name string) uint64 {
	m, _ := n.net.Member(name)
	return m.Boot
}

// handleLease answers a lease or name request from the peer named from:
// this peer's table and names persist before answering; an ask goes to the
// owner's side. A refusal that says another peer forged or replayed
// something is counted and logged.
func (n *Node) handleLease(from string, raw []byte) []byte {
	req, err := subcloud.DecodeRequest(raw)
	if err != nil {
		n.mu.Lock()
		n.stats.Malformed++
		n.mu.Unlock()
		return subcloud.Reply{Refusal: subcloud.RefusedMalformed}.Encode()
	}
	switch req.Op {
	case subcloud.OpAsk:
		return n.answerAsk(from, req).Encode()
	case subcloud.OpInfo:
		return n.answerInfo(req.Subcloud)
	}
	if req.Op == subcloud.OpName {
		n.clearStaleName(req)
	}
	now := n.now()
	var ownerBoot uint64
	if req.Op == subcloud.OpClaim || req.Op == subcloud.OpRenew {
		ownerBoot = n.bootOf(from)
	}
	self := n.self()
	// A claim dated back (a repair of an old subcloud, or a liar) is
	// checked with the name's keepers: no claim is older than its name.
	// A fresh RESERVE's claims are dated now and need no lookup, which
	// would cost each claim a round trip.
	if req.Op == subcloud.OpClaim && req.Since > 0 && now.Sub(time.Unix(0, req.Since)) > sinceSlack {
		if _, held := n.currentLease(); !held {
			// Asked before the keeper's lock is taken: no lock across I/O.
			h, known := n.nameHolder(req.Subcloud)
			self.NameHolder = func(string) (subcloud.NameHolder, bool) { return h, known }
			now = n.now()
		}
	}
	rep := n.keeper.apply(now, self, from, req, ownerBoot)
	switch rep.Refusal {
	case subcloud.RefusedForged:
		n.forged.Add(1)
		n.logf("refused a %v of subcloud %q from %s: not signed by the owner it names (owner %q) — a forgery, or a relay", req.Op, req.Subcloud, from, req.Owner)
	case subcloud.RefusedIncarnation:
		n.stale.Add(1)
	}
	if rep.OK && req.Op != subcloud.OpCheck && req.Op != subcloud.OpWho && req.Op != subcloud.OpName && req.Op != subcloud.OpNameRelease {
		n.showLease()
	}
	return rep.Encode()
}

// sinceSlack is how far back a claim may be dated without a lookup of
// its name: about a RESERVE's own time (its claims are dated when it
// started).
const sinceSlack = 30 * time.Second

// nameHolder asks the keepers of a subcloud's name who holds it, for a
// claim about to be granted (subcloud.Self.NameHolder), within half an
// exchange's time so that the claim's answer is not late.
func (n *Node) nameHolder(name string) (subcloud.NameHolder, bool) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ExchangeTimeout/2)
	defer cancel()
	o, held, err := n.nameOwnerOf(ctx, name)
	if err != nil {
		return subcloud.NameHolder{}, false
	}
	if !held {
		return subcloud.NameHolder{}, true
	}
	return subcloud.NameHolder{Owner: o.owner, Key: o.key, Since: o.since}, true
}

// showLease asks the tagger to put the peer's lease in its Serf tags. It
// never blocks: requests made while one is pending are one request.
func (n *Node) showLease() {
	select {
	case n.tagCh <- struct{}{}:
	default:
	}
}

// tagger applies the lease to the Serf tags, one SetTags at a time (it
// blocks while Serf re-broadcasts), always with the latest lease.
func (n *Node) tagger() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case <-n.tagCh:
		}
		tags := map[string]string{}
		for k, v := range n.cfg.Tags {
			tags[k] = v
		}
		if f := n.keeper.fault(); f != nil {
			tags[TagStorage] = f.reason
		}
		if l, ok := n.currentLease(); ok {
			tags[TagSubcloud], tags[tagOwner] = l.Subcloud, l.Owner
			tags[tagUntil] = strconv.FormatInt(l.Expires.Unix(), 10)
			since := l.Since
			if since.IsZero() {
				since = l.Granted
			}
			tags[tagSince] = strconv.FormatInt(since.UnixMilli(), 10)
		}
		if err := n.net.SetTags(tags); err != nil {
			n.tagFailures.Add(1)
			n.logf("cannot show this peer's lease in its tags: %v (others see the old tags until the next change)", err)
		}
	}
}
