package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// The owner's side of subclouds: RESERVE drives a subcloud.Claimer over the
// exchanges; the lease loop renews the members' leases, replaces the
// members it loses (self-repair, after P2PCS: a subcloud keeps its shape
// while its members fail), releases former members that come back, and
// gives up a name that an older subcloud holds; ALTER resizes or extends;
// RELEASE frees.

// repairBackoff is how long the owner waits before it searches again for
// replacements after a repair that found nobody free.
const repairBackoff = 2 * time.Second

// leaseLoop frees an expired lease from the tags, asks the owner of this
// peer's lease about it when the owner restarted (or was not heard from
// for long), checks that the data dir can be written, and renews the
// subclouds this peer owns at a third of their lease.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.LeaseTick)
	defer t.Stop()
	shown, fault := false, n.keeper.fault() != nil
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
			n.keeper.probe()
		}
		if f := n.keeper.fault() != nil; f != fault {
			fault = f
			n.showLease() // the storage tag comes or goes
		}
		n.ownMu.Lock()
		var due []*ownedSubcloud
		for _, o := range n.owned {
			if now.Sub(o.renewed) >= o.lease/3 {
				due = append(due, o)
			}
		}
		n.ownMu.Unlock()
		for _, o := range due {
			n.renew(o)
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
	rep, err := n.callRaw(n.ctx, l.Owner, req)
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
// lease — held if this peer owns the subcloud with that token, or is
// claiming for it — or to a keeper asking about a name (no token): held if
// this peer owns or is reserving it.
func (n *Node) answerAsk(from string, req subcloud.Request) subcloud.Reply {
	n.ownMu.Lock()
	_, claiming := n.claiming[req.Subcloud]
	held := claiming && (req.Token == "" || n.claiming[req.Subcloud] == req.Token)
	if o, ok := n.owned[req.Subcloud]; ok && req.Token == "" {
		held = true
	} else if ok && o.token == req.Token {
		_, member := o.members[from]
		_, dropped := o.dropped[from]
		// A dropped member is released by the owner when seen again; one
		// it never knew (a claim it did not keep) is free.
		held = member || dropped || o.busy
	}
	n.ownMu.Unlock()
	a := subcloud.AskAnswer{Subcloud: req.Subcloud, Token: req.Token, Member: from, Nonce: req.Nonce, Held: held}
	return subcloud.Reply{OK: true, Held: held, Sig: subcloud.SignAsk(n.id, a), Now: n.now().UnixNano()}
}

// every runs f every d, and at once whenever kick fires (nil: never),
// until the node closes. The owner runs three such loops apart, so that
// none waits on another: renewals (the lease loop) may wait on members
// that do not answer; repairs (every lease tick, and as soon as a member
// is lost: a kick from the membership watcher, a renewal or a check);
// checks (every MemberCheck).
func (n *Node) every(d time.Duration, kick <-chan struct{}, f func()) {
	defer n.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		case <-kick:
		}
		f()
	}
}

// checkMembers asks every member whether it still holds its lease. One
// that refuses is lost; so is one whose address refuses the connection
// CheckMisses times in a row (its process is gone; it may hold the lease
// still, on disk: it is released, or taken back, when it returns). A
// check that times out counts for nothing: loss does that too, and a
// member cut off is the failure detector's to judge.
func (n *Node) checkMembers() {
	n.ownMu.Lock()
	type job struct {
		o     *ownedSubcloud
		peers []string
	}
	var jobs []job
	for _, o := range n.owned {
		if len(o.members) > 0 {
			jobs = append(jobs, job{o, o.names()})
		}
	}
	n.ownMu.Unlock()
	lost := false
	for _, j := range jobs {
		o := j.o
		replies := n.callLeases(j.peers, subcloud.Request{Op: subcloud.OpCheck, Subcloud: o.name, Token: o.token})
		now := n.now()
		n.ownMu.Lock()
		if o.misses == nil {
			o.misses = map[string]int{}
		}
		for _, r := range replies {
			exp, still := o.members[r.peer]
			if !still {
				continue
			}
			var why string
			switch {
			case r.err == nil && r.rep.OK:
				delete(o.misses, r.peer)
				continue
			case r.err == nil:
				why = fmt.Sprintf("it no longer holds the lease: %v", r.rep.Err())
			case !errors.Is(r.err, network.ErrNoEndpoint):
				continue
			default:
				if o.misses[r.peer]++; o.misses[r.peer] < max(n.cfg.CheckMisses, 1) {
					continue
				}
				why = fmt.Sprintf("nothing served its address (%d check(s) in a row)", o.misses[r.peer])
			}
			delete(o.misses, r.peer)
			o.drop(r.peer, exp, now)
			lost = true
			n.logf("subcloud %s: lost member %s (%s); %d of %d left", o.name, r.peer, why, len(o.members), o.target)
		}
		n.ownMu.Unlock()
	}
	if lost {
		n.saved()
		n.kickRepair()
	}
}

// owns reports whether this peer owns any subcloud.
func (n *Node) owns() bool {
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	return len(n.owned) > 0
}

// kickRepair asks the lease loop to repair now. It never blocks.
func (n *Node) kickRepair() {
	select {
	case n.repairKick <- struct{}{}:
	default:
	}
}

// membersGone drops the members that the membership says failed or left
// from the subclouds this peer owns, so that their repair starts now, not
// at their lease's expiry. They may still hold the lease (a partition):
// they are released if they come back.
func (n *Node) membersGone(kind network.EventKind, names []string) {
	why := "it failed"
	if kind == network.MemberLeft {
		why = "it left"
	}
	lost := false
	n.ownMu.Lock()
	for _, o := range n.owned {
		for _, m := range names {
			if exp, ok := o.members[m]; ok {
				o.drop(m, exp, n.now())
				lost = true
				n.logf("subcloud %s: lost member %s (%s); %d of %d left", o.name, m, why, len(o.members), o.target)
			}
		}
	}
	n.ownMu.Unlock()
	if lost {
		n.saved()
		n.kickRepair()
	}
}

// wasMember reports whether any of names is a former member of a
// subcloud this peer owns that may still hold its lease.
func (n *Node) wasMember(names []string) bool {
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	for _, o := range n.owned {
		for _, m := range names {
			if _, ok := o.dropped[m]; ok {
				return true
			}
		}
	}
	return false
}

// maintain settles the former members that are back — one the subcloud
// still lacks is taken back (its lease renewed), one it has replaced is
// released — and then starts the repairs that are due.
func (n *Node) maintain() {
	if !n.owns() {
		return // most peers own nothing: no O(N) member set a tick
	}
	now := n.now()
	live := n.memberSet()
	type returned struct {
		o    *ownedSubcloud
		peer string
	}
	var takes, releases []returned
	n.ownMu.Lock()
	for _, o := range n.owned {
		short := o.target - len(o.members)
		for _, m := range keys(o.dropped) {
			switch exp := o.dropped[m]; {
			case !now.Before(exp):
				delete(o.dropped, m) // lapsed by itself
				o.closeEpisode(m)
			case !live[m] || o.busy:
				// Not back; or a repair or RESIZE is claiming: settle it after.
			case short > 0:
				takes = append(takes, returned{o, m})
				short--
			default:
				releases = append(releases, returned{o, m})
			}
		}
	}
	n.ownMu.Unlock()
	// Take back first (one that does not answer is not back yet), so that
	// the repairs below claim only what is still missing.
	for _, b := range takes {
		n.takeBack(b.o, b.peer)
	}
	for _, b := range releases {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			rep, err := n.callLease(n.ctx, b.peer, subcloud.Request{Op: subcloud.OpRelease, Subcloud: b.o.name, Token: b.o.token})
			if err != nil {
				return // tried again at the next tick
			}
			n.ownMu.Lock()
			delete(b.o.dropped, b.peer)
			if rep.OK {
				b.o.renewedAt(b.peer, n.now()) // metered to its release, as its ledger is
			}
			b.o.closeEpisode(b.peer)
			n.ownMu.Unlock()
			n.saved()
			if rep.OK {
				n.logf("subcloud %s: released %s, a former member that came back after it was replaced", b.o.name, b.peer)
			}
		}()
	}
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	for _, o := range n.owned {
		if len(o.members) >= o.target {
			o.lostAt = nil // nothing left to repair (taken back, or resized)
		}
		if o.repair && !o.busy && len(o.members) < o.target && !now.Before(o.retryAt) {
			o.busy = true
			n.wg.Add(1)
			go n.repairRun(o)
		}
	}
}

// takeBack renews the lease of a former member that came back while the
// subcloud still lacks members: if it still holds the lease, it is a
// member again (no search, no new claim).
func (n *Node) takeBack(o *ownedSubcloud, peer string) {
	n.ownMu.Lock()
	lease := o.lease
	n.ownMu.Unlock()
	rep, err := n.callLease(n.ctx, peer, subcloud.Request{Op: subcloud.OpRenew, Subcloud: o.name, Token: o.token, For: lease})
	if err != nil {
		return // tried again at the next tick
	}
	n.ownMu.Lock()
	defer n.saved()
	defer n.ownMu.Unlock()
	delete(o.dropped, peer)
	if rep.OK && n.owned[o.name] == o && len(o.members) < o.target {
		o.add([]string{peer}, map[string]time.Time{peer: rep.ExpiresAt(n.now())}, n.now())
		if len(o.lostAt) > 0 {
			o.lostAt = o.lostAt[1:]
		}
		n.logf("subcloud %s: %s came back holding its lease: a member again; %d of %d members", o.name, peer, len(o.members), o.target)
	} else if rep.OK {
		n.releaseLater(o.name, o.token, []string{peer}, o.lease) // replaced meanwhile
		o.renewedAt(peer, n.now())
		o.closeEpisode(peer)
	} else {
		o.closeEpisode(peer) // it no longer holds the lease: its span ended at its last renewal
	}
}

// repairRun claims replacements for the members o lost, with the
// subcloud's own search, each replacement all-or-nothing (a Claimer with
// AT LEAST 1: what it gets it keeps, the rest is tried again).
func (n *Node) repairRun(o *ownedSubcloud) {
	defer n.wg.Done()
	n.ownMu.Lock()
	need := o.target - len(o.members)
	cfg := subcloud.ClaimerConfig{Subcloud: o.name, Owner: n.Name(), Token: o.token, Key: o.key, N: need, AtLeast: 1,
		Lease: o.lease, Since: o.since, Searches: 2}
	n.ownMu.Unlock()
	got, held, err := n.claimMore(o, cfg)
	now := n.now()
	n.ownMu.Lock()
	defer n.saved()
	defer n.ownMu.Unlock()
	o.busy = false
	if n.owned[o.name] != o {
		// Released (or given up) while it claimed: free what it got.
		n.releaseLater(o.name, o.token, got, o.lease)
		return
	}
	if err != nil {
		o.retryAt = now.Add(repairBackoff)
		n.logf("subcloud %s: repair found no replacement (%v); %d of %d members, trying again in %v",
			o.name, err, len(o.members), o.target, repairBackoff)
		return
	}
	if extra := len(o.members) + len(got) - o.target; extra > 0 {
		// Members came back while it claimed: keep the size.
		n.releaseLater(o.name, o.token, got[len(got)-extra:], o.lease)
		got = got[:len(got)-extra]
	}
	o.add(got, held, now)
	o.repairs += len(got)
	o.lastRepair = now
	for range got {
		if len(o.lostAt) > 0 {
			o.repairTimes = append(o.repairTimes, now.Sub(o.lostAt[0]))
			o.lostAt = o.lostAt[1:]
		}
	}
	if len(o.repairTimes) > 1000 {
		o.repairTimes = o.repairTimes[len(o.repairTimes)-1000:]
	}
	for _, m := range got {
		n.logf("subcloud %s: repaired: claimed %s; %d of %d members", o.name, m, len(o.members), o.target)
	}
}

// claimMore runs a Claimer for more members of an existing subcloud (a
// repair, a RESIZE) with the subcloud's own plan, and returns the peers it
// got, best first, with their leases' expiries.
func (n *Node) claimMore(o *ownedSubcloud, cfg subcloud.ClaimerConfig) ([]string, map[string]time.Time, error) {
	n.ownMu.Lock()
	raw, first := o.plan, o.spares
	n.ownMu.Unlock()
	if raw == nil {
		return nil, nil, errors.New("the subcloud was restored from a table without its search")
	}
	plan, err := query.Decode(raw)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Searches <= 0 {
		cfg.Searches = subcloud.DefaultSearches
	}
	if len(first) > 0 {
		cfg.Searches++ // the spares count as one
	}
	c, err := subcloud.NewClaimer(cfg)
	if err != nil {
		return nil, nil, err
	}
	ctx, leave, err := n.Admit(n.ctx)
	if err != nil {
		return nil, nil, err
	}
	defer leave()
	got, held, _, spares, err := n.claimRun(ctx, plan, c, cfg, first, false, nil)
	n.ownMu.Lock()
	o.spares = spares
	n.ownMu.Unlock()
	return got, held, err
}

// releaseTries is how many times releaseNow sends a release before it
// gives up waiting; the release is then tried in the background.
const releaseTries = 3

// releaseNow releases peers from subcloud name and waits for their
// answers: each release is sent until its peer answers (any answer: one
// that no longer holds the lease says so), up to releaseTries times. It
// returns the peers that never answered; those are tried in the background
// until lease has passed, when their leases lapse on their own.
func (n *Node) releaseNow(name, token string, peers []string, lease time.Duration) (unconfirmed []string) {
	until := n.now().Add(lease)
	req := subcloud.Request{Op: subcloud.OpRelease, Subcloud: name, Token: token}
	done := make([]bool, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done[i] = n.sendRelease(p, req, until, releaseTries)
		}()
	}
	wg.Wait()
	for i, p := range peers {
		if !done[i] {
			unconfirmed = append(unconfirmed, p)
		}
	}
	n.releaseLater(name, token, unconfirmed, lease)
	return unconfirmed
}

// releaseLater releases peers from subcloud name in the background, each
// sent until its peer answers or lease has passed (the peer's lease has
// lapsed by then, released or not). A release that is lost would
// otherwise keep a peer out of every other subcloud until its expiry.
func (n *Node) releaseLater(name, token string, peers []string, lease time.Duration) {
	until := n.now().Add(lease)
	req := subcloud.Request{Op: subcloud.OpRelease, Subcloud: name, Token: token}
	for _, p := range peers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.sendRelease(p, req, until, 0)
		}()
	}
}

// sendRelease sends req to p until p answers, tries times (0: no limit),
// or until has passed; the waits between tries double from MemberCheck up
// to a minute. It reports whether p answered.
func (n *Node) sendRelease(p string, req subcloud.Request, until time.Time, tries int) bool {
	wait := max(n.cfg.MemberCheck, 100*time.Millisecond)
	for i := 1; ; i++ {
		if _, err := n.callLease(n.ctx, p, req); err == nil {
			return true
		}
		if (tries > 0 && i >= tries) || !n.now().Before(until) {
			return false
		}
		select {
		case <-time.After(wait):
		case <-n.ctx.Done():
			return false
		}
		wait = min(2*wait, time.Minute)
	}
}

// unreleasedError is a claim that failed and left peers that did not
// answer their release: they may hold a lease until it lapses.
type unreleasedError struct {
	err   error
	peers []string
	lease time.Duration
}

func (e *unreleasedError) Error() string {
	return fmt.Sprintf("%v; %d peer(s) it claimed did not answer their release (%s): each is released when it answers, or its lease lapses within %v",
		e.err, len(e.peers), strings.Join(e.peers, ", "), e.lease)
}

func (e *unreleasedError) Unwrap() error { return e.err }

// callLease sends one request of this peer's, as owner, to peer to:
// signed, for to's present incarnation as the membership shows it. A peer
// that restarted since the membership said so answers with its new
// incarnation: the request is signed anew for it, once.
func (n *Node) callLease(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	req.Owner, req.Target, req.Boot = n.Name(), to, n.bootOf(to)
	for try := 0; ; try++ {
		req.Sign(n.id)
		rep, err := n.callRaw(ctx, to, req)
		if err != nil || rep.Refusal != subcloud.RefusedIncarnation || rep.Boot == 0 || rep.Boot == req.Boot || try > 0 {
			return rep, err
		}
		req.Boot = rep.Boot
	}
}

// callRaw sends one lease request as it is and returns the peer's reply.
func (n *Node) callRaw(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	if to == n.Name() {
		// This peer's own table or names (it may be a member of its own
		// subcloud, and is a keeper of some names): no exchange.
		return subcloud.DecodeReply(n.handleLease(to, req.Encode()))
	}
	msg, err := n.callEntry(ctx, to, req)
	if err != nil {
		return subcloud.Reply{}, err
	}
	return subcloud.DecodeReply(msg)
}

// callEntry sends one lease-kind request to peer to, within
// ExchangeTimeout, and returns the message of its one answer.
func (n *Node) callEntry(ctx context.Context, to string, req subcloud.Request) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ExchangeTimeout)
	defer cancel()
	resp, err := n.net.Exchange(ctx, to, encodeBatch(batch{Entries: []entry{{Kind: protoLease, Msg: req.Encode()}}}))
	if err != nil {
		return nil, err
	}
	b, err := decodeBatch(resp)
	if err != nil {
		return nil, err
	}
	if len(b.Entries) != 1 || b.Entries[0].Kind != protoLease {
		return nil, fmt.Errorf("node: %s answered a %v request with %d entries", to, req.Op, len(b.Entries))
	}
	return b.Entries[0].Msg, nil
}

type leaseReply struct {
	peer string
	rep  subcloud.Reply
	err  error
}

// callLeases sends the same request to peers in parallel and returns the
// replies.
func (n *Node) callLeases(peers []string, req subcloud.Request) []leaseReply {
	return n.callLeasesCtx(n.ctx, peers, req)
}

// callLeasesCtx is callLeases within ctx.
func (n *Node) callLeasesCtx(ctx context.Context, peers []string, req subcloud.Request) []leaseReply {
	out := make([]leaseReply, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := n.callLease(ctx, p, req)
			out[i] = leaseReply{p, rep, err}
		}()
	}
	wg.Wait()
	return out
}

// renew extends the subcloud's leases. A member that refuses is dropped;
// one that cannot be reached is kept until its last confirmed expiry (it
// may come back), then dropped. Dropped members are repaired.
func (n *Node) renew(o *ownedSubcloud) {
	n.ownMu.Lock()
	peers := o.names()
	lease := o.lease
	n.ownMu.Unlock()
	replies := n.callLeases(peers, subcloud.Request{Op: subcloud.OpRenew, Subcloud: o.name, Token: o.token, For: lease})
	now := n.now()
	n.ownMu.Lock()
	lost := false
	for _, r := range replies {
		exp, still := o.members[r.peer]
		if !still {
			continue // dropped meanwhile (it failed, or RESIZE let it go)
		}
		switch {
		case r.err == nil && r.rep.OK:
			o.members[r.peer] = r.rep.ExpiresAt(now)
			o.renewedAt(r.peer, now)
		case r.err == nil, !now.Before(exp):
			o.drop(r.peer, exp, now)
			lost = true
			why := "its lease lapsed unrenewed"
			if r.err == nil {
				why = fmt.Sprintf("it refused the renewal: %v", r.rep.Err())
			}
			n.logf("subcloud %s: lost member %s (%s); %d of %d left", o.name, r.peer, why, len(o.members), o.target)
		}
	}
	o.renewed = now
	n.ownMu.Unlock()
	n.saved()
	if lost {
		n.kickRepair()
	}
	n.renewName(o)
}

// nameHolder is who holds leases under a subcloud name, as the membership
// shows it.
type nameHolder struct {
	owner   string
	since   int64 // the subcloud's creation, Unix milliseconds; 0 unknown
	members []string
	until   int64 // the earliest expiry among them, Unix seconds
}

// holders groups the live leases by subcloud name and owner.
func holders(view map[string]leaseOf) map[string]map[string]*nameHolder {
	out := map[string]map[string]*nameHolder{}
	for m, l := range view {
		byOwner := out[l.subcloud]
		if byOwner == nil {
			byOwner = map[string]*nameHolder{}
			out[l.subcloud] = byOwner
		}
		h := byOwner[l.owner]
		if h == nil {
			h = &nameHolder{owner: l.owner, since: l.since}
			byOwner[l.owner] = h
		}
		h.members = append(h.members, m)
		if l.since > 0 && (h.since == 0 || l.since < h.since) {
			h.since = l.since
		}
		if l.until > 0 && (h.until == 0 || l.until < h.until) {
			h.until = l.until
		}
	}
	return out
}

// rightful is the owner a name belongs to when several hold leases under
// it: the oldest subcloud (by its creation time), then the owner's name.
// Every peer applies the same rule to what the membership shows, so every
// answer counts the same owner's members.
func rightful(byOwner map[string]*nameHolder) *nameHolder {
	var best *nameHolder
	for _, h := range byOwner {
		if best == nil || older(h, best) {
			best = h
		}
	}
	return best
}

func older(a, b *nameHolder) bool {
	switch {
	case a.since != b.since && a.since != 0 && b.since != 0:
		return a.since < b.since
	case (a.since == 0) != (b.since == 0):
		return a.since != 0
	}
	return a.owner < b.owner
}

// subcloudOwner is the owner of the subcloud name: this peer if it owns
// it, else the owner its keepers name (whoOwns); only if none of them can
// be reached, the rightful holder of the leases the members' tags show.
func (n *Node) subcloudOwner(ctx context.Context, name string) (string, bool) {
	n.ownMu.Lock()
	_, mine := n.owned[name]
	n.ownMu.Unlock()
	if mine {
		return n.Name(), true
	}
	if owner, ok, err := n.whoOwns(ctx, name); err == nil {
		return owner, ok
	}
	if h := rightful(holders(n.leaseView(n.net.Members()))[name]); h != nil {
		return h.owner, true
	}
	return "", false
}

// subcloudNames are the subclouds this peer knows of (owned, or seen in
// the members' tags), for completion.
func (n *Node) subcloudNames() []string {
	names := holders(n.leaseView(n.net.Members()))
	n.ownMu.Lock()
	for name := range n.owned {
		names[name] = nil
	}
	n.ownMu.Unlock()
	out := make([]string, 0, len(names))
	for name := range names {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func keys(m map[string]time.Time) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ErrNotEnoughPeers is returned when a RESERVE could not get the peers it
// needs; nothing stays reserved.
var ErrNotEnoughPeers = api.ErrNotEnoughPeers

// reserve runs RESERVE: candidates by top-k, then a subcloud.Claimer
// claims them in rank order, backfilling refusals, all-or-nothing unless
// AT LEAST.
func (n *Node) reserve(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, error) {
	ctx, leave, err := n.Admit(ctx) // one place for all its searches
	if err != nil {
		return nil, err
	}
	defer leave()
	spec := plan.Reserve
	start := n.now()
	n.ownMu.Lock()
	if o, ok := n.owned[spec.Name]; ok {
		n.ownMu.Unlock()
		if spec.Key != "" && o.key == spec.Key {
			return n.ownedResult(plan, o, start), nil // a retry: the same subcloud
		}
		return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("this agent already owns a subcloud %s; RELEASE it first or choose another name", spec.Name)}
	}
	if spec.Key != "" {
		for _, o := range n.owned {
			if o.key == spec.Key {
				n.ownMu.Unlock()
				// A key names one reservation: a retry must repeat it whole.
				return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf(
					"KEY '%s' already reserved subcloud %s; a key names one reservation (retry it AS %s, or choose a new key)", spec.Key, o.name, o.name)}
			}
		}
	}
	if _, running := n.claiming[spec.Name]; running {
		n.ownMu.Unlock()
		return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("a RESERVE of %s is already running at this agent", spec.Name)}
	}
	var tok [16]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	n.claiming[spec.Name] = token
	n.ownMu.Unlock()
	defer func() {
		n.ownMu.Lock()
		delete(n.claiming, spec.Name)
		n.ownMu.Unlock()
	}()
	// A peer whose data dir cannot be written cannot promise to remember
	// a subcloud: it owns none until it can. A fault seen earlier is
	// probed again first: a disk freed since is usable at once, not at the
	// next periodic probe.
	if n.keeper.fault() != nil {
		n.keeper.probe()
	}
	if f := n.keeper.fault(); f != nil {
		return nil, storageError(fmt.Sprintf("RESERVE %s", spec.Name), n.Name(), f.reason, f.err, "nothing is reserved")
	}
	lease := time.Duration(spec.LeaseSeconds * float64(time.Second))
	raw, err := plan.Encode()
	if err != nil {
		return nil, err
	}
	// The name first: two RESERVEs of one name, anywhere, cannot both
	// get a majority of its keepers.
	vote, err := n.holdName(ctx, spec.Name, lease)
	if err != nil {
		return nil, noted(err, "nothing is reserved")
	}
	o := &ownedSubcloud{name: spec.Name, token: token, key: spec.Key, lease: lease,
		members: map[string]time.Time{}, dropped: map[string]time.Time{}, plan: raw, repair: !spec.NoRepair, since: start,
		keepers: vote.granted}
	cfg := subcloud.ClaimerConfig{Subcloud: spec.Name, Owner: n.Name(), Token: o.token, Key: spec.Key,
		N: spec.N, AtLeast: spec.AtLeast, Lease: lease, Since: start}
	c, err := subcloud.NewClaimer(cfg)
	if err != nil {
		n.releaseName(spec.Name, vote.granted)
		return nil, err
	}
	members, held, cands, spares, err := n.claimRun(ctx, plan, c, cfg, nil, true, progress)
	if err != nil {
		n.releaseName(spec.Name, vote.granted)
		var left *unreleasedError
		if !errors.As(err, &left) {
			err = fmt.Errorf("%w; nothing stays reserved", err)
		}
		if errors.Is(err, subcloud.ErrNotEnoughPeers) {
			return nil, &api.Error{Code: api.CodeNotEnoughPeers, Message: err.Error(), Cause: err}
		}
		return nil, err
	}
	o.add(members, held, n.now())
	o.target, o.spares = len(members), spares
	o.renewed = n.now()
	n.ownMu.Lock()
	n.owned[spec.Name] = o
	delete(n.released, spec.Name)
	n.ownMu.Unlock()
	// Yes only once the owner's record is on disk: a restart must not
	// forget a subcloud that was promised.
	if err := n.saveOwned(); err != nil {
		n.ownMu.Lock()
		delete(n.owned, spec.Name)
		n.ownMu.Unlock()
		// A save of another change, snapshotted while this subcloud was in
		// the table, may still land after this one failed: write the
		// table without it once more, so that a restart does not resume
		// a subcloud the user was told failed.
		if err := n.saveOwned(); err != nil {
			n.logf("subcloud %s: RESERVE could not record it, nor the table without it (%v)", spec.Name, err)
		}
		n.releaseName(spec.Name, vote.granted)
		what := fmt.Sprintf("released its %d member(s); nothing stays reserved", len(members))
		if left := n.releaseNow(spec.Name, token, members, lease); len(left) > 0 {
			what = fmt.Sprintf("released %d of its %d member(s); %s did not answer: each is released when it answers or asks, or its lease lapses within %v",
				len(members)-len(left), len(members), strings.Join(left, ", "), lease)
		}
		return nil, storageError(fmt.Sprintf("RESERVE %s", spec.Name), n.Name(), durable.Reason(err), err, what)
	}
	res := n.ownedResult(plan, o, start)
	res.Rounds, res.Peers = cands.Rounds, cands.Peers
	return res, nil
}

// storageError is a statement that failed because a data dir could not be
// written: "RESERVE big: cannot record it at a5 (disk full); nothing is
// reserved".
func storageError(what, at, reason string, cause error, outcome string) error {
	if reason == "" {
		reason = "write failed"
	}
	return &api.Error{Code: api.CodeStorage, Cause: cause,
		Message: fmt.Sprintf("%s: %s at %s, whose data dir cannot be written (%v); %s", what, reason, at, cause, outcome)}
}

// noted adds what became of the statement to err, keeping its code.
func noted(err error, outcome string) error {
	var e *api.Error
	if errors.As(err, &e) {
		return &api.Error{Code: e.Code, Message: e.Message + "; " + outcome, LineNo: e.LineNo, ColumnNo: e.ColumnNo, Cause: err}
	}
	return fmt.Errorf("%w; %s", err, outcome)
}

// claimRun drives a Claimer to its end: a search with plan whenever it
// needs candidates (backing off a little before each search after the
// first, so that racing owners stop colliding), the claims in parallel,
// the leases it holds renewed while it runs (one that takes longer than a
// lease must not return peers that have lapsed, or been taken by another
// owner since), and its releases sent once every claim in flight is back,
// so that none overtakes the claim it undoes. With confirm (a RESERVE,
// which answers that nothing stays reserved), a failed run waits for its
// releases (releaseNow); otherwise (repairs, RESIZE) they go on in the
// background. It returns the members in
// the rank the searches gave them, with their leases' expiries, and the
// last search.
func (n *Node) claimRun(ctx context.Context, plan *query.Plan, c *subcloud.Claimer, cfg subcloud.ClaimerConfig, first []string, confirm bool,
	progress func(answer.Progress)) (members []string, held map[string]time.Time, cands *answer.Answer, spares []string, err error) {
	replies := make(chan leaseReply)
	inflight := 0
	var free []string // peers to release: every release is of this subcloud with its token
	send := func() {
		for _, m := range c.Outbox() {
			if m.Req.Op != subcloud.OpClaim {
				free = append(free, m.To)
				continue
			}
			inflight++
			go func() {
				rep, err := n.callLease(n.ctx, m.To, m.Req)
				replies <- leaseReply{m.To, rep, err}
			}()
		}
	}
	held = map[string]time.Time{} // member → its lease's expiry
	rank := map[string]int{}      // candidate → first place in a search
	refused := map[string]bool{}
	var last []string // the last candidates given
	keep := time.NewTicker(n.cfg.LeaseTick)
	defer keep.Stop()
	renewHeld := func() {
		now := n.now()
		var due []string
		for m, exp := range held {
			if exp.Sub(now) < 2*cfg.Lease/3 {
				due = append(due, m)
			}
		}
		for _, r := range n.callLeases(due, subcloud.Request{Op: subcloud.OpRenew, Subcloud: cfg.Subcloud, Token: cfg.Token, For: cfg.Lease}) {
			switch {
			case r.err == nil && r.rep.OK:
				held[r.peer] = r.rep.ExpiresAt(n.now())
			case r.err == nil, !now.Before(held[r.peer]):
				delete(held, r.peer)
				c.Lost(r.peer)
			}
		}
	}
	// A search runs beside the loop, which renews what is held meanwhile:
	// on a slow network a search can outlast a short lease.
	type searched struct {
		res *answer.Answer
		err error
	}
	var searching chan searched
	search := func() {
		searching = make(chan searched, 1)
		again := c.Searches() > 0
		go func() {
			if again {
				// Back off a little before each search after the
				// first, so that racing owners stop colliding.
				n.mu.Lock()
				wait := time.Duration(n.r.Int64N(int64(2 * n.cfg.Round)))
				n.mu.Unlock()
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					searching <- searched{err: ctx.Err()}
					return
				}
			}
			res, err := n.gossip(ctx, plan, progress)
			searching <- searched{res, err}
		}()
	}
	for c.State() != subcloud.Done {
		if c.State() == subcloud.NeedCandidates && c.Searches() == 0 && len(first) > 0 {
			// Spares from the last search: claim at once, search only
			// when they run out.
			for _, p := range first {
				rank[p] = len(rank)
			}
			last = first
			c.Candidates(first)
			send()
			continue
		}
		if c.State() == subcloud.NeedCandidates && searching == nil {
			search()
		}
		select {
		case s := <-searching:
			searching = nil
			if s.err != nil {
				c.Abort(s.err)
				continue
			}
			cands = s.res
			for _, p := range cands.Nodes {
				if _, ok := rank[p]; !ok {
					rank[p] = len(rank)
				}
			}
			renewHeld()
			last = cands.Nodes
			c.Candidates(cands.Nodes)
			send()
		case r := <-replies:
			inflight--
			if r.err == nil && r.rep.OK {
				held[r.peer] = r.rep.ExpiresAt(n.now())
			} else {
				refused[r.peer] = true
			}
			c.Step(r.peer, r.rep, r.err)
			send()
		case <-keep.C:
			renewHeld()
			send()
		case <-ctx.Done():
			c.Abort(ctx.Err())
		}
	}
	for ; inflight > 0; inflight-- {
		<-replies
	}
	if searching != nil {
		<-searching // aborted mid-search: it ends with ctx, or its budget
	}
	send()
	if members, err = c.Result(); err != nil {
		if !confirm {
			n.releaseLater(cfg.Subcloud, cfg.Token, free, cfg.Lease)
			return nil, nil, nil, nil, err
		}
		// The caller says nothing stays reserved: make it so before it
		// answers, or say which peers may still hold a lease.
		if left := n.releaseNow(cfg.Subcloud, cfg.Token, free, cfg.Lease); len(left) > 0 {
			err = &unreleasedError{err: err, peers: left, lease: cfg.Lease}
		}
		return nil, nil, nil, nil, err
	}
	n.releaseLater(cfg.Subcloud, cfg.Token, free, cfg.Lease)
	sort.SliceStable(members, func(i, j int) bool { return rank[members[i]] < rank[members[j]] })
	for _, p := range last {
		if _, ok := held[p]; !ok && !refused[p] {
			spares = append(spares, p)
		}
	}
	return members, held, cands, spares, nil
}

// ownedResult is a subcloud this peer owns as an answer: its members, best
// first, with the time their leases have left.
func (n *Node) ownedResult(plan *query.Plan, o *ownedSubcloud, start time.Time) *answer.Answer {
	res := &answer.Answer{Columns: []answer.Column{{Name: "node", Kind: query.KindString},
		{Name: "subcloud", Kind: query.KindString}, {Name: "expires_in", Kind: query.KindDuration}}}
	now := n.now()
	n.ownMu.Lock()
	for _, m := range o.ranked() {
		res.Rows = append(res.Rows, []query.Value{query.Str(m), query.Str(o.name),
			query.Num(query.KindDuration, o.members[m].Sub(now).Seconds())})
		res.Nodes = append(res.Nodes, m)
	}
	n.ownMu.Unlock()
	res.Meta = &answer.Meta{Status: StatusExact, Peers: n.net.Size(), PlanHash: plan.Hash(), Converged: true, Elapsed: now.Sub(start).Seconds()}
	return res
}

// notOwned is the error for RELEASE or ALTER of a subcloud this peer does
// not own: who owns it (its keepers say), if anyone does.
func (n *Node) notOwned(ctx context.Context, verb, name string) error {
	if owner, ok := n.subcloudOwner(ctx, name); ok {
		return &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("subcloud %s is owned by %s — %s it there", name, owner, verb)}
	}
	return &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("unknown subcloud %s: no agent owns it", name)}
}

// release runs RELEASE: the owner forgets the subcloud on disk first (a
// failure changes nothing), then frees every member, waits for their
// answers, and gives the name up. It answers success only when every
// member it reached let the lease go; members that did not answer are
// named (api.CodeIncomplete): each is released when it answers, or when
// it asks this owner about its lease, or its lease lapses.
func (n *Node) release(ctx context.Context, plan *query.Plan) (*answer.Answer, error) {
	start := n.now()
	name := plan.Local.Release
	n.ownMu.Lock()
	o, ok := n.owned[name]
	if ok {
		delete(n.owned, name)
		// Until the members' tags say so, answers from tags must not
		// show what this peer has just released (read your writes).
		n.released[name] = start
	}
	n.ownMu.Unlock()
	if !ok {
		return nil, n.notOwned(ctx, "release", name)
	}
	if err := n.saveOwned(); err != nil {
		n.ownMu.Lock()
		n.owned[name] = o
		delete(n.released, name)
		n.ownMu.Unlock()
		return nil, storageError(fmt.Sprintf("RELEASE %s", name), n.Name(), durable.Reason(err), err,
			"nothing changed: the subcloud is still held, and renewed")
	}
	n.ownMu.Lock()
	members, dropped, token, lease := o.names(), keys(o.dropped), o.token, o.lease
	keepers := mergeNames(o.keepers, nil)
	n.ownMu.Unlock()
	freed := 0
	var silent, volatile []string
	for _, r := range n.callLeases(members, subcloud.Request{Op: subcloud.OpRelease, Subcloud: name, Token: token}) {
		switch {
		case r.err != nil:
			silent = append(silent, r.peer) // tried again until its lease would lapse
		case r.rep.OK:
			freed++
			if r.rep.Volatile {
				volatile = append(volatile, r.peer)
			}
		case r.rep.Refusal == subcloud.RefusedNoLease || r.rep.Refusal == subcloud.RefusedToken:
			freed++ // it no longer held the lease (lapsed, or released): let go all the same
		default:
			// Refused for another reason (it could not check the
			// signature, a malformed frame): it may still hold the lease.
			silent = append(silent, r.peer)
		}
	}
	n.releaseLater(name, token, silent, lease)
	n.releaseLater(name, token, dropped, lease)
	n.releaseName(name, mergeNames(keepers, n.keepersOf(name)))
	if len(volatile) > 0 {
		n.logf("subcloud %s: %s let go, but could not record it (its data dir cannot be written): after a restart it asks this owner again",
			name, strings.Join(volatile, ", "))
	}
	out := &answer.Answer{Columns: []answer.Column{{Name: "subcloud", Kind: query.KindString}, {Name: "released", Kind: query.KindCount},
		{Name: "unreachable", Kind: query.KindCount}},
		Rows: [][]query.Value{{query.Str(name), query.Num(query.KindCount, float64(freed)), query.Num(query.KindCount, float64(len(silent)))}},
		Meta: &answer.Meta{Status: StatusExact, Peers: n.net.Size(), PlanHash: plan.Hash(), Converged: true, FromTags: true,
			Elapsed: n.now().Sub(start).Seconds()}}
	if len(silent) > 0 {
		return out, &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf(
			"RELEASE %s: %d of its %d member(s) let go; %d did not answer (%s): each is released when it answers or asks this owner, or its lease lapses within %v",
			name, freed, len(members), len(silent), strings.Join(silent, ", "), lease)}
	}
	return out, nil
}

// alter runs ALTER SUBCLOUD: RESIZE TO n grows by claiming the next
// candidates (all or nothing) or shrinks by releasing the lowest-ranked
// members; EXTEND FOR d renews every member for d from now (all or
// nothing: if one cannot be renewed, the others are renewed back to the
// old lease length). Only the owner may; one change at a time, and not
// while a repair claims. Each answers success only once the owner's record
// is on disk.
func (n *Node) alter(ctx context.Context, plan *query.Plan) (*answer.Answer, error) {
	start := n.now()
	a := plan.Local.Alter
	n.ownMu.Lock()
	o, ok := n.owned[a.Name]
	if ok && o.busy {
		n.ownMu.Unlock()
		return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("subcloud %s is being repaired or resized; try again in a moment", a.Name)}
	}
	if ok {
		o.busy = true
	}
	n.ownMu.Unlock()
	if !ok {
		return nil, n.notOwned(ctx, "alter", a.Name)
	}
	var err error
	if a.Resize > 0 {
		err = n.resize(ctx, o, a.Resize)
	} else {
		err = n.extend(o, time.Duration(a.ExtendSeconds*float64(time.Second)))
	}
	n.ownMu.Lock()
	o.busy = false
	n.ownMu.Unlock()
	if errors.Is(err, api.ErrIncomplete) {
		return n.ownedResult(plan, o, start), err // it changed, with members to let go later
	}
	if err != nil {
		return nil, err
	}
	if a.Resize > 0 {
		if err := n.awaitSize(ctx, o, a.Resize); err != nil {
			return n.ownedResult(plan, o, start), err
		}
	}
	return n.ownedResult(plan, o, start), nil
}

// resizeWait is how long a RESIZE that reached its size, then lost members
// while it answered, waits for their repair before it says so.
const resizeWait = 10 * time.Second

// awaitSize waits until o has size members again (members lost while it
// grew are repaired once it is no longer busy), or says what it reached.
func (n *Node) awaitSize(ctx context.Context, o *ownedSubcloud, size int) error {
	deadline := n.now().Add(resizeWait)
	for {
		n.ownMu.Lock()
		have, gone := len(o.members), n.owned[o.name] != o
		n.ownMu.Unlock()
		switch {
		case gone:
			return &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf("RESIZE %s TO %d: the subcloud was released meanwhile", o.name, size)}
		case have >= size:
			return nil
		case !n.now().Before(deadline):
			return &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf(
				"RESIZE %s TO %d reached %d members, then lost %d while it answered: %d of %d now, being repaired (SHOW SUBCLOUDS)",
				o.name, size, size, size-have, have, size)}
		}
		n.kickRepair()
		select {
		case <-time.After(n.cfg.LeaseTick):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (n *Node) resize(ctx context.Context, o *ownedSubcloud, size int) error {
	n.ownMu.Lock()
	have, target := len(o.members), o.target
	if size <= have {
		// Shrink: the lowest-ranked go, once the smaller size is on disk.
		ranked := o.ranked()
		gone := map[string]time.Time{}
		for _, m := range ranked[size:] {
			gone[m] = o.members[m]
			delete(o.members, m)
		}
		order := o.order
		o.order, o.target = ranked[:size], size
		n.ownMu.Unlock()
		if err := n.saveOwned(); err != nil {
			n.ownMu.Lock()
			for m, exp := range gone {
				o.members[m] = exp
			}
			o.order, o.target = order, target
			n.ownMu.Unlock()
			return storageError(fmt.Sprintf("RESIZE %s TO %d", o.name, size), n.Name(), durable.Reason(err), err, "nothing changed")
		}
		var silent []string
		for _, r := range n.callLeases(keys(gone), subcloud.Request{Op: subcloud.OpRelease, Subcloud: o.name, Token: o.token}) {
			let := r.err == nil && (r.rep.OK || r.rep.Refusal == subcloud.RefusedNoLease || r.rep.Refusal == subcloud.RefusedToken)
			n.ownMu.Lock()
			if !let {
				o.drop(r.peer, n.now().Add(o.lease), n.now()) // released when it is seen again
				o.lostAt = o.lostAt[:len(o.lostAt)-1]         // not a loss to repair
				silent = append(silent, r.peer)
			} else {
				o.renewedAt(r.peer, n.now()) // metered to its release, as its ledger is
				o.closeEpisode(r.peer)
			}
			n.ownMu.Unlock()
		}
		n.saved()
		n.logf("subcloud %s: resized from %d to %d members", o.name, have, size)
		if len(silent) > 0 {
			sort.Strings(silent)
			// As RELEASE: the smaller size holds, but a member let go may
			// still hold its lease until it answers or it lapses.
			return &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf(
				"RESIZE %s TO %d: it has %d members; %d of the %d let go did not answer (%s): each is released when it answers or asks this owner, or its lease lapses within %v",
				o.name, size, size, len(silent), len(gone), strings.Join(silent, ", "), o.lease)}
		}
		return nil
	}
	cfg := subcloud.ClaimerConfig{Subcloud: o.name, Owner: n.Name(), Token: o.token, Key: o.key, N: size - have,
		Lease: o.lease, Since: o.since}
	n.ownMu.Unlock()
	got, held, err := n.claimMore(o, cfg)
	if err != nil {
		if errors.Is(err, subcloud.ErrNotEnoughPeers) {
			return &api.Error{Code: api.CodeNotEnoughPeers, Message: fmt.Sprintf(
				"RESIZE %s TO %d needs %d more free peers: %v; nothing changed, it keeps %d members", o.name, size, size-have, err, have)}
		}
		return fmt.Errorf("RESIZE %s TO %d: %w; nothing changed", o.name, size, err)
	}
	n.ownMu.Lock()
	if n.owned[o.name] != o {
		n.ownMu.Unlock()
		n.releaseLater(o.name, o.token, got, o.lease)
		return fmt.Errorf("subcloud %s was released while it grew", o.name)
	}
	o.add(got, held, n.now())
	o.target = size
	n.ownMu.Unlock()
	if err := n.saveOwned(); err != nil {
		n.ownMu.Lock()
		for _, m := range got {
			delete(o.members, m)
			delete(o.episodes, m)
		}
		o.target = target
		n.ownMu.Unlock()
		left := n.releaseNow(o.name, o.token, got, o.lease)
		what := fmt.Sprintf("released the %d peer(s) it claimed; nothing changed", len(got))
		if len(left) > 0 {
			what = fmt.Sprintf("released %d of the %d peers it claimed (%s did not answer); it keeps %d members", len(got)-len(left), len(got),
				strings.Join(left, ", "), have)
		}
		return storageError(fmt.Sprintf("RESIZE %s TO %d", o.name, size), n.Name(), durable.Reason(err), err, what)
	}
	n.logf("subcloud %s: resized from %d to %d members", o.name, have, size)
	return nil
}

func (n *Node) extend(o *ownedSubcloud, d time.Duration) error {
	n.ownMu.Lock()
	peers, old := o.names(), o.lease
	n.ownMu.Unlock()
	replies := n.callLeases(peers, subcloud.Request{Op: subcloud.OpRenew, Subcloud: o.name, Token: o.token, For: d})
	var failed []string
	var renewed []string
	for _, r := range replies {
		if r.err == nil && r.rep.OK {
			renewed = append(renewed, r.peer)
		} else {
			failed = append(failed, r.peer)
		}
	}
	rollBack := func() {
		// Back to the old length: what the others hold is then what they
		// would have held with a renewal now.
		n.callLeases(renewed, subcloud.Request{Op: subcloud.OpRenew, Subcloud: o.name, Token: o.token, For: old})
	}
	if len(failed) > 0 {
		rollBack()
		return &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf(
			"EXTEND %s: %d member(s) could not be renewed (%s); nothing changed, the leases stay at %s",
			o.name, len(failed), failed[0], answer.FormatDuration(old.Seconds()))}
	}
	n.ownMu.Lock()
	now := n.now()
	before := map[string]time.Time{}
	for _, r := range replies {
		if exp, ok := o.members[r.peer]; ok {
			before[r.peer] = exp
			o.members[r.peer] = r.rep.ExpiresAt(now)
			o.renewedAt(r.peer, now)
		}
	}
	o.lease, o.renewed = d, now
	n.ownMu.Unlock()
	if err := n.saveOwned(); err != nil {
		n.ownMu.Lock()
		for m, exp := range before {
			if _, ok := o.members[m]; ok {
				o.members[m] = exp
			}
		}
		o.lease = old
		n.ownMu.Unlock()
		rollBack()
		return storageError(fmt.Sprintf("EXTEND %s", o.name), n.Name(), durable.Reason(err), err,
			"nothing changed: the leases stay at "+answer.FormatDuration(old.Seconds()))
	}
	return nil
}
