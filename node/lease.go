package node

import (
	"context"
	"strconv"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/subcloud"
)

// Subclouds, this peer's side: its lease table (the keeper, persisted
// before it answers), shown in Serf tags, and the lease requests it
// answers; the owner's side is the owner role (owner.go).

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
