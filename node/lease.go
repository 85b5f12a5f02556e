package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/subcloud"
)

// Subclouds, this peer's side: its lease table (the keeper, persisted
// before it answers), shown in Serf tags, and the lease requests it
// answers, and the asks about its lease, both sides (leaseLoop, askOwner,
// answerAsk); the owner's side is the owner role (owner.go).

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

// leaseLoop frees an expired lease from the tags, asks the owner of this
// peer's lease about it when the owner restarted (or was not heard from
// for long), and checks that the data dir can be written.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.LeaseTick)
	defer t.Stop()
	shown := false
	lastProbe := n.now()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		now := n.now()
		l, held := n.currentLease()
		if shown && !held {
			n.showLease() // lapsed: the peer is free again
			n.keeper.closeLapsed(now)
		}
		shown = held
		if held {
			if l2, due := n.keeper.due(now, n.bootOf(l.Owner)); due {
				n.wg.Add(1)
				go n.askOwner(l2)
			}
		}
		if now.Sub(lastProbe) >= n.cfg.StorageProbe {
			lastProbe = now
			n.keeper.probe() // a change of the fault shows in the tags (keeper.faultChanged)
		}
	}
}

// askOwner asks the owner of this peer's lease whether it still holds it,
// and frees the peer if the owner answers, signed with the key the lease
// was claimed with, that it does not: an owner that restarted without its
// records, or a claim replayed or made by a RESERVE that failed, leaves
// no lease that nobody can release.
func (n *Node) askOwner(l subcloud.Lease) {
	defer n.wg.Done()
	var nonce [8]byte
	rand.Read(nonce[:])
	req := subcloud.Request{Op: subcloud.OpAsk, Subcloud: l.Subcloud, Token: l.Token, Target: l.Owner,
		Nonce: binary.BigEndian.Uint64(nonce[:])}
	rep, err := n.calls.raw(n.ctx, l.Owner, req)
	if err != nil || !rep.OK {
		return // asked again later
	}
	a := subcloud.AskAnswer{Subcloud: l.Subcloud, Token: l.Token, Member: n.Name(), Nonce: req.Nonce, Held: rep.Held}
	now := n.now()
	if !subcloud.VerifyAsk(l.OwnerKey, a, rep.Sig) {
		// Asked again only after askEvery, and said once per lease: an
		// owner that lost its key answers every time with its new one.
		first := n.keeper.unverified(now, n.bootOf(l.Owner), l)
		if key, _ := n.keyOf(l.Owner); key != l.OwnerKey {
			n.keyChanged.Add(1)
			if first {
				n.logf("%s answered about this peer's lease of subcloud %s with a new key (%s; the lease was claimed by %s): it lost its data dir, and nobody can renew or release the lease — it lapses at %s",
					l.Owner, l.Subcloud, key.Short(), l.OwnerKey.Short(), l.Expires.Format(time.RFC3339))
			}
			return
		}
		n.forged.Add(1)
		if first {
			n.logf("%s answered about this peer's lease of subcloud %s without the signature of the key that claimed it: ignored (asked again in %v)", l.Owner, l.Subcloud, askEvery)
		}
		return
	}
	if rep.Held {
		n.keeper.answered(now, n.bootOf(l.Owner))
		return
	}
	err = n.keeper.drop(now, l)
	n.logf("freed this peer from subcloud %s: its owner %s says it no longer holds it (it restarted without it, or released it)", l.Subcloud, l.Owner)
	if err != nil {
		n.logf("the release is in memory only: %v (after a restart this peer asks %s again)", err, l.Owner)
	}
	n.showLease()
}

// answerAsk is the owner's signed answer to a member asking about its
// lease — held if this peer owns the subcloud with that token and counts
// it (a member, a former one not yet settled, or while a claim runs) — or
// to a keeper asking about a name (no token): held if this peer owns or is
// reserving it.
func (n *Node) answerAsk(from string, req subcloud.Request) subcloud.Reply {
	n.claimMu.Lock()
	tok, claiming := n.claiming[req.Subcloud]
	n.claimMu.Unlock()
	held := claiming && (req.Token == "" || tok == req.Token) || n.owner.Holds(req.Subcloud, req.Token, from)
	a := subcloud.AskAnswer{Subcloud: req.Subcloud, Token: req.Token, Member: from, Nonce: req.Nonce, Held: held}
	return subcloud.Reply{OK: true, Held: held, Sig: subcloud.SignAsk(n.id, a), Now: n.now().UnixNano()}
}
