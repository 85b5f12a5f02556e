package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
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
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// subclouds is the peer's statements about subclouds and its answers to
// other peers about the ones it owns: RESERVE (a gossip search through
// the runtime, the name registered with its keepers, the claims made by
// the owner role), RELEASE, ALTER, SHOW SUBCLOUDS and FROM SUBCLOUD's
// owner, and, for the lease keeper, the owner's signed answers to a
// member asking about its lease (answerAsk, answerInfo). The view of the
// members' leases it reads (leaseView) is the members' tags, except for
// the subclouds this peer owns, which the owner role knows at once.
//
// Locks: claimMu guards claiming only; the roles it calls take their own.
type subclouds struct {
	net  Network
	now  func() time.Time
	id   *identity.Key
	logf func(format string, args ...any)

	rt          *runtime     // the gossip searches of RESERVE, and its place (Admit)
	owner       *owner.Role  // the subclouds this peer owns
	calls       *leaseCalls  // this peer's lease requests
	nameKeepers *nameKeepers // the keepers of subcloud names
	keeper      *keeper      // this peer's own lease (a RESERVE checks its storage)

	// badTags are the members' lease tags that did not parse (leaseView).
	badTags badTags
	// claiming are the subclouds a RESERVE is registering the name of, by
	// name, with their tokens, until the owner role has them: an ask about
	// one is answered "held" (guarded by claimMu).
	claimMu  sync.Mutex
	claiming map[string]string
}

// leaseOf is what is known of a member's lease.
type leaseOf struct {
	subcloud, owner string
	until           int64 // Unix seconds
	since           int64 // the subcloud's creation, Unix milliseconds; 0 unknown
}

// leaseView is every member's lease as this peer knows it: from the members'
// tags, except for the subclouds this peer owns, which its own table
// knows exactly and at once, and those it released lately, whose tags may
// lag (read your writes).
func (sc *subclouds) leaseView(members []network.Member) map[string]leaseOf {
	byTags := sc.leaseTags(members)
	now := sc.now()
	mine := sc.owner.Held()
	released := sc.owner.Released(subcloud.MaxLease)
	view := map[string]leaseOf{}
	mineByTags := map[string]leaseOf{} // leases of this peer's subclouds, as members' tags show them
	stale := map[string]bool{}
	for _, m := range members {
		l, ok := byTags[m.Name]
		if !ok {
			continue
		}
		if _, _, remote := remoteName(l.owner); remote {
			continue // another pool's subcloud, held here across pools (relay.go): its pool lists it
		}
		if _, ok := mine[l.subcloud]; ok && l.owner == sc.net.Name() {
			mineByTags[m.Name] = l
			continue
		}
		if _, gone := released[l.subcloud]; gone && l.owner == sc.net.Name() {
			stale[l.subcloud] = true
			continue
		}
		view[m.Name] = l
	}
	// A released subcloud is forgotten once no tag shows it any more, or
	// after its leases would have lapsed anyway.
	for sub := range released {
		if !stale[sub] {
			sc.owner.ForgetReleased(sub)
		}
	}
	live := map[string]bool{}
	for _, m := range members {
		live[m.Name] = true
	}
	for _, o := range mine {
		for _, m := range o.Members {
			if live[m.Name] && m.Expires.After(now) {
				view[m.Name] = leaseOf{subcloud: o.Subcloud, owner: sc.net.Name(), until: m.Expires.Unix(), since: o.Since.UnixMilli()}
			}
		}
		// A former member back from a restart holds the lease until this
		// peer takes it back or releases it: its tags say so, and they are
		// right.
		for m, exp := range o.Dropped {
			if l, ok := mineByTags[m]; ok && l.subcloud == o.Subcloud && live[m] && exp.After(now) {
				view[m] = l
			}
		}
	}
	return view
}

// leaseTags reads the leases the members show in their tags. A time that
// does not parse is read as unknown (0), as an absent one is, and noted:
// logged and counted once per member and tag (badTags).
func (sc *subclouds) leaseTags(members []network.Member) map[string]leaseOf {
	out := map[string]leaseOf{}
	var bad map[string]string
	parse := func(m network.Member, tag string) int64 {
		s, ok := m.Tags[tag]
		if !ok {
			return 0
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			if bad == nil {
				bad = map[string]string{}
			}
			bad[m.Name+"\x00"+tag] = s
			return 0
		}
		return v
	}
	for _, m := range members {
		if sub, ok := m.Tags[TagSubcloud]; ok {
			out[m.Name] = leaseOf{subcloud: sub, owner: m.Tags[tagOwner], until: parse(m, tagUntil), since: parse(m, tagSince)}
		}
	}
	for _, msg := range sc.badTags.note(bad) {
		sc.logf("%s", msg)
	}
	return out
}

// badTags are the members' lease tags that did not parse when last read,
// by member and tag. Each is logged and counted when it is first seen, not
// at every read of the tags (each membership answer and SHOW SUBCLOUDS
// reads them all); one that parses again, or whose member is gone, is
// forgotten, and told again if it breaks again.
type badTags struct {
	mu    sync.Mutex
	seen  map[string]bool // member + "\x00" + tag
	count atomic.Int64
}

// note takes the malformed tags of one reading (key → value) and returns
// what to log of those not seen at the last.
func (b *badTags) note(bad map[string]string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(bad) == 0 && len(b.seen) == 0 {
		return nil
	}
	var msgs []string
	for key, value := range bad {
		if b.seen[key] {
			continue
		}
		if b.seen == nil {
			b.seen = map[string]bool{}
		}
		b.seen[key] = true
		b.count.Add(1)
		member, tag, _ := strings.Cut(key, "\x00")
		if len(value) > 40 {
			value = value[:40] + "…"
		}
		msgs = append(msgs, fmt.Sprintf("member %s shows a malformed lease tag %s=%q (not a time): its lease is read with that time unknown", member, tag, value))
	}
	for key := range b.seen {
		if _, still := bad[key]; !still {
			delete(b.seen, key)
		}
	}
	sort.Strings(msgs)
	return msgs
}

// showSubclouds lists the subclouds this agent knows of: those it owns,
// from its own table (exact, at once); the others from their owners, asked
// now (OpInfo: exact, as old as the exchange), or — for an owner that does
// not answer — from the members' tags, which lag behind by Serf's gossip
// (a few seconds), and the source column says which. The owner of a name
// is the one its keepers name (whoOwns), never the one a lease's creation
// time favours: any member can write that on its claims. Only when no
// keeper answers is it the rightful holder of the leases in the tags.
// Leases under a name held for another owner, or for none (a subcloud
// just released), are not counted; the notes say so. The columns: name,
// owner, the size the owner keeps it at, its size now, the repairs done
// and how long ago the last one was, the earliest expiry among its
// members, the owner's account of its peer-hours (the ledger's rule), the
// members, and where the row comes from.
func (sc *subclouds) showSubclouds(ctx context.Context) (cols []answer.Column, rows [][]query.Value, notes []string) {
	col := func(name string, k query.Kind) answer.Column { return answer.Column{Name: name, Kind: k} }
	cols = []answer.Column{col("subcloud", query.KindString), col("owner", query.KindString),
		col("target", query.KindCount), col("size", query.KindCount), col("repairs", query.KindCount),
		col("last_repair", query.KindDuration), col("earliest_expiry", query.KindDuration), col("peer_hours", query.KindNumber),
		col("members", answer.KindList), col("source", query.KindString)}
	now := sc.now()
	byName := holders(sc.leaseView(sc.net.Members()))
	infos := map[string]subcloud.Info{}
	for name, v := range sc.owner.Held() {
		infos[name] = v.Info
	}
	// Ask the keepers of the others who owns them, then those owners, at
	// once.
	type asked struct {
		name  string
		owner string // "": nobody owns it
		info  subcloud.Info
		ok    bool // info is the owner's answer
	}
	var wg sync.WaitGroup
	answers := make(chan asked, len(byName))
	for name, owners := range byName {
		if _, mine := infos[name]; mine {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner, held, err := sc.nameKeepers.whoOwns(ctx, name)
			keepersSaidNone := err == nil && !held
			if !held {
				// No keeper answered, or none (as this agent sees the
				// membership) holds the name: the holder the tags favour
				// is asked, and a row is shown only if it says it owns it.
				owner = rightful(owners).owner
			}
			info, err := sc.callInfo(ctx, owner, name)
			if errors.Is(err, subcloud.ErrNoLease) || err != nil && keepersSaidNone {
				owner = "" // its owner says it holds it no longer, or nobody vouches for it
			}
			answers <- asked{name, owner, info, err == nil && info.Owner == owner}
		}()
	}
	wg.Wait()
	close(answers)
	fromOwner := map[string]bool{}
	ownerOf := map[string]string{}
	var unowned, silent, foreign []string
	for a := range answers {
		ownerOf[a.name] = a.owner
		switch {
		case a.owner == "":
			unowned = append(unowned, a.name)
		case a.ok:
			infos[a.name], fromOwner[a.name] = a.info, true
		default:
			silent = append(silent, a.name)
		}
		for o, h := range byName[a.name] {
			if o != a.owner && a.owner != "" {
				foreign = append(foreign, fmt.Sprintf("%d under %s held for %s", len(h.members), a.name, o))
			}
		}
	}
	names := make([]string, 0, len(byName)+len(infos))
	for name := range infos {
		names = append(names, name)
	}
	names = append(names, silent...)
	sort.Strings(names)
	for _, name := range names {
		if info, ok := infos[name]; ok {
			source := "its owner"
			if !fromOwner[name] {
				source = "this agent"
			}
			last, expiry := query.Null, query.Null
			if info.LastRepair > 0 {
				last = query.Num(query.KindDuration, info.LastRepair.Seconds())
			}
			if len(info.Members) > 0 {
				expiry = query.Num(query.KindDuration, info.Expiry.Seconds())
			}
			rows = append(rows, []query.Value{query.Str(name), query.Str(info.Owner), query.Num(query.KindCount, float64(info.Target)),
				query.Num(query.KindCount, float64(len(info.Members))), query.Num(query.KindCount, float64(info.Repairs)), last, expiry,
				query.Num(query.KindNumber, info.PeerHours), answer.List(info.Members), query.Str(source)})
			continue
		}
		// The owner did not answer: its leases in the tags, as old as
		// Serf's gossip.
		owner := ownerOf[name]
		var members []string
		expiry := query.Null
		if h := byName[name][owner]; h != nil {
			members = append(members, h.members...)
			if h.until > 0 {
				expiry = query.Num(query.KindDuration, math.Max(0, time.Unix(h.until, 0).Sub(now).Seconds()))
			}
		}
		sort.Strings(members)
		rows = append(rows, []query.Value{query.Str(name), query.Str(owner), query.Null,
			query.Num(query.KindCount, float64(len(members))), query.Null, query.Null, expiry, query.Null,
			answer.List(members), query.Str("members' tags")})
	}
	if len(silent) > 0 {
		sort.Strings(silent)
		notes = append(notes, fmt.Sprintf("the owner of %s did not answer: its row is from members' tags, as old as they are", strings.Join(silent, ", ")))
	}
	if len(unowned) > 0 {
		sort.Strings(unowned)
		notes = append(notes, fmt.Sprintf("leases under %s are held for no owner (released, or a RESERVE that failed): not listed; they are let go within seconds, or lapse",
			strings.Join(unowned, ", ")))
	}
	if len(foreign) > 0 {
		sort.Strings(foreign)
		notes = append(notes, fmt.Sprintf("leases not counted because the name's keepers name another owner: %s", strings.Join(foreign, "; ")))
	}
	return cols, rows, notes
}

// answerInfo is the owner's account of name for an agent that asks, or a
// refusal if this peer does not own it.
func (sc *subclouds) answerInfo(name string) []byte {
	v, ok := sc.owner.Lookup(name)
	if !ok {
		return subcloud.Reply{Refusal: subcloud.RefusedNoLease}.Encode()
	}
	return v.Info.Encode()
}

// callInfo asks owner for its account of subcloud name.
func (sc *subclouds) callInfo(ctx context.Context, owner, name string) (subcloud.Info, error) {
	if owner == sc.net.Name() {
		return subcloud.Info{}, errors.New("not owned here")
	}
	msg, err := sc.calls.entry(ctx, owner, subcloud.Request{Op: subcloud.OpInfo, Subcloud: name, Target: owner})
	if err != nil {
		return subcloud.Info{}, err
	}
	if info, err := subcloud.DecodeInfo(msg); err == nil {
		return info, nil
	}
	rep, err := subcloud.DecodeReply(msg)
	if err != nil {
		return subcloud.Info{}, err
	}
	return subcloud.Info{}, fmt.Errorf("node: %s does not own subcloud %s: %w", owner, name, rep.Err())
}

// answerAsk is the owner's signed answer to a member asking about its
// lease — held if this peer owns the subcloud with that token and counts
// it (a member, a former one not yet settled, or while a claim runs) — or
// to a keeper asking about a name (no token): held if this peer owns or is
// reserving it.
func (sc *subclouds) answerAsk(from string, req subcloud.Request) subcloud.Reply {
	sc.claimMu.Lock()
	tok, claiming := sc.claiming[req.Subcloud]
	sc.claimMu.Unlock()
	held := claiming && (req.Token == "" || tok == req.Token) || sc.owner.Holds(req.Subcloud, req.Token, from)
	a := subcloud.AskAnswer{Subcloud: req.Subcloud, Token: req.Token, Member: from, Nonce: req.Nonce, Held: held}
	return subcloud.Reply{OK: true, Held: held, Sig: subcloud.SignAsk(sc.id, a), Now: sc.now().UnixNano()}
}

// Subclouds as statements see them: who owns a name, and RESERVE, RELEASE
// and ALTER SUBCLOUD, which drive the owner role (owner.go) and answer
// with what it reports.

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
func (sc *subclouds) subcloudOwner(ctx context.Context, name string) (string, bool) {
	if _, mine := sc.owner.Lookup(name); mine {
		return sc.net.Name(), true
	}
	if owner, ok, err := sc.nameKeepers.whoOwns(ctx, name); err == nil {
		return owner, ok
	}
	if h := rightful(holders(sc.leaseView(sc.net.Members()))[name]); h != nil {
		if _, _, remote := remoteName(h.owner); !remote { // another pool's owner is not this pool's
			return h.owner, true
		}
	}
	return "", false
}

// subcloudNames are the subclouds this peer knows of (owned, or seen in
// the members' tags), for completion.
func (sc *subclouds) subcloudNames() []string {
	names := holders(sc.leaseView(sc.net.Members()))
	for name := range sc.owner.Held() {
		names[name] = nil
	}
	out := make([]string, 0, len(names))
	for name := range names {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// ErrNotEnoughPeers is returned when a RESERVE could not get the peers it
// needs; nothing stays reserved.
var ErrNotEnoughPeers = api.ErrNotEnoughPeers

// reserve runs RESERVE: the name first (two RESERVEs of one name, anywhere,
// cannot both get a majority of its keepers), then the owner role claims
// the top-k's candidates in rank order, backfilling refusals, all or
// nothing unless AT LEAST, and answers once the subcloud is on disk.
func (sc *subclouds) reserve(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, error) {
	ctx, leave, err := sc.rt.adm.Admit(ctx) // one place for all its searches
	if err != nil {
		return nil, err
	}
	defer leave()
	spec := plan.Reserve
	start := sc.now()
	if v, ok := sc.owner.Lookup(spec.Name); ok {
		if spec.Key != "" && v.Key == spec.Key {
			// A retry: the same subcloud, as it is now — incomplete while
			// it holds fewer than its first answer promised (members lost
			// and not yet repaired), as that answer would have been.
			res := sc.ownedResult(plan, v, start)
			need := spec.N
			if spec.AtLeast > 0 {
				need = spec.AtLeast
			}
			if have := len(v.Members); have < need {
				return res, &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf("RESERVE %s (a retry of KEY '%s'): %d of %d members hold it now, being repaired (SHOW SUBCLOUDS)",
					spec.Name, spec.Key, have, spec.N)}
			}
			return res, nil
		}
		return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("this agent already owns a subcloud %s; RELEASE it first or choose another name", spec.Name)}
	}
	if name, ok := sc.owner.ByKey(spec.Key); ok && name != spec.Name {
		// A key names one reservation: a retry must repeat it whole.
		return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf(
			"KEY '%s' already reserved subcloud %s; a key names one reservation (retry it AS %s, or choose a new key)", spec.Key, name, name)}
	}
	var tok [16]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	// claiming holds the name at this agent from before its registration
	// until the role has the subcloud: a keeper asking about the name
	// meanwhile is answered "held".
	sc.claimMu.Lock()
	if _, running := sc.claiming[spec.Name]; running {
		sc.claimMu.Unlock()
		return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("a RESERVE of %s is already running at this agent", spec.Name)}
	}
	sc.claiming[spec.Name] = token
	sc.claimMu.Unlock()
	defer func() {
		sc.claimMu.Lock()
		delete(sc.claiming, spec.Name)
		sc.claimMu.Unlock()
	}()
	// A peer whose data dir cannot be written cannot promise to remember
	// a subcloud: it owns none until it can. A fault seen earlier is
	// probed again first: a disk freed since is usable at once, not at the
	// next periodic probe.
	if sc.keeper.fault() != nil {
		sc.keeper.probe()
	}
	if f := sc.keeper.fault(); f != nil {
		return nil, storageError(fmt.Sprintf("RESERVE %s", spec.Name), sc.net.Name(), f.reason, f.err, "nothing is reserved")
	}
	lease := time.Duration(spec.LeaseSeconds * float64(time.Second))
	raw, err := plan.Encode()
	if err != nil {
		return nil, err
	}
	vote, err := sc.nameKeepers.hold(ctx, spec.Name, lease)
	if err != nil {
		return nil, noted(err, "nothing is reserved")
	}
	var mu sync.Mutex
	var cands *answer.Answer // the last search, for the answer's rounds and peers
	search := func(context.Context) ([]string, error) {
		res, names, err := sc.rt.search(ctx, plan, progress)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		cands = res
		mu.Unlock()
		return names, nil
	}
	rep, err := sc.owner.Reserve(ctx, subcloud.Reserve{Subcloud: spec.Name, Owner: sc.net.Name(), Token: token, Key: spec.Key,
		N: spec.N, AtLeast: spec.AtLeast, Lease: lease, Plan: raw, NoRepair: spec.NoRepair, Keepers: vote.granted}, search)
	if err != nil {
		sc.nameKeepers.release(spec.Name, vote.granted)
		return nil, &api.Error{Code: api.CodeStatement, Message: err.Error(), Cause: err}
	}
	repErr := reportError(rep, sc.net.Name())
	if repErr != nil && rep.Outcome != subcloud.OutcomeIncomplete {
		return nil, repErr // the role released what it claimed, and the name
	}
	// Done, or incomplete: it reached its size and lost members as it was
	// recorded, not repaired in time; it holds what the answer lists
	// (code incomplete, as a RELEASE that could not reach every member).
	v, ok := sc.owner.Lookup(spec.Name)
	if !ok {
		return nil, &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf("RESERVE %s: the subcloud was given up as it was recorded (SHOW SUBCLOUDS)", spec.Name)}
	}
	res := sc.ownedResult(plan, v, start)
	if len(rep.Unanswered) > 0 {
		res.Meta.Warning = fmt.Sprintf("%d peer(s) it claimed and did not keep (a claim's or a renewal's answer was lost, or a renewal refused) did not answer their release: %s; "+
			"they are not members, and each lets go when it answers, asks this owner about its lease, or its lease lapses within %v",
			len(rep.Unanswered), strings.Join(rep.Unanswered, ", "), v.Lease)
	}
	mu.Lock()
	if cands != nil {
		res.Rounds, res.Peers = cands.Rounds, cands.Peers
	}
	mu.Unlock()
	return res, repErr
}

// unreleasedError is a change that failed and left peers that did not
// answer their release: they may hold a lease until it lapses.
type unreleasedError struct {
	error
	peers []string
}

func (e *unreleasedError) Unwrap() error { return e.error }

// reportError is a change's report, at the owner named at, as the API's
// error: nil when done. A failure that left peers unreleased names them
// (unreleasedError).
func reportError(rep *subcloud.Report, at string) error {
	err := outcomeError(rep, at)
	if err != nil && rep.Outcome != subcloud.OutcomeIncomplete && len(rep.Unanswered) > 0 {
		return &unreleasedError{error: err, peers: rep.Unanswered}
	}
	return err
}

func outcomeError(rep *subcloud.Report, at string) error {
	var ce *subcloud.ChangeError
	errors.As(rep.Err, &ce)
	switch rep.Outcome {
	case subcloud.OutcomeDone:
		return nil
	case subcloud.OutcomeStorage:
		if ce != nil {
			return storageError(ce.What, at, durable.Reason(ce.Cause), ce.Cause, ce.Then)
		}
		return &api.Error{Code: api.CodeStorage, Message: rep.Err.Error(), Cause: rep.Err}
	case subcloud.OutcomeIncomplete:
		return &api.Error{Code: api.CodeIncomplete, Message: rep.Err.Error(), Cause: rep.Err}
	case subcloud.OutcomeNotEnough:
		return &api.Error{Code: api.CodeNotEnoughPeers, Message: rep.Err.Error(), Cause: rep.Err}
	case subcloud.OutcomeRefused:
		return &api.Error{Code: api.CodeStatement, Message: rep.Err.Error(), Cause: rep.Err}
	}
	return fmt.Errorf("node: %w", rep.Err)
}

// changeError is an error of the role's before any report: the subcloud
// is not owned here (who owns it, if anyone), or a change of its kind is
// running.
func (sc *subclouds) changeError(ctx context.Context, verb, name string, err error) error {
	switch {
	case errors.Is(err, owner.ErrNotOwned):
		return sc.notOwned(ctx, verb, name)
	case errors.Is(err, owner.ErrBusy):
		return &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("subcloud %s is being repaired or resized; try again in a moment", name), Cause: err}
	}
	return err
}

// ownedResult is a subcloud this peer owns as an answer: its members, best
// first, with the time their leases have left.
func (sc *subclouds) ownedResult(plan *query.Plan, v owner.View, start time.Time) *answer.Answer {
	res := &answer.Answer{Columns: []answer.Column{{Name: "node", Kind: query.KindString},
		{Name: "subcloud", Kind: query.KindString}, {Name: "expires_in", Kind: query.KindDuration}}}
	now := sc.now()
	for _, m := range v.Members {
		res.Rows = append(res.Rows, []query.Value{query.Str(m.Name), query.Str(v.Subcloud),
			query.Num(query.KindDuration, m.Expires.Sub(now).Seconds())})
		res.Nodes = append(res.Nodes, m.Name)
	}
	res.Meta = &answer.Meta{Status: StatusExact, Peers: sc.net.Size(), PlanHash: plan.Hash(), Converged: true, Elapsed: now.Sub(start).Seconds()}
	return res
}

// notOwned is the error for RELEASE or ALTER of a subcloud this peer does
// not own: who owns it (its keepers say), if anyone does.
func (sc *subclouds) notOwned(ctx context.Context, verb, name string) error {
	if owner, ok := sc.subcloudOwner(ctx, name); ok {
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
func (sc *subclouds) release(ctx context.Context, plan *query.Plan) (*answer.Answer, error) {
	start := sc.now()
	name := plan.Local.Release
	rep, err := sc.owner.Release(ctx, name)
	if err != nil {
		return nil, sc.changeError(ctx, "release", name, err)
	}
	err = reportError(rep, sc.net.Name())
	if err != nil && rep.Outcome != subcloud.OutcomeIncomplete {
		return nil, err
	}
	return &answer.Answer{Columns: []answer.Column{{Name: "subcloud", Kind: query.KindString}, {Name: "released", Kind: query.KindCount},
		{Name: "unreachable", Kind: query.KindCount}},
		Rows: [][]query.Value{{query.Str(name), query.Num(query.KindCount, float64(rep.Freed)), query.Num(query.KindCount, float64(len(rep.Unanswered)))}},
		Meta: &answer.Meta{Status: StatusExact, Peers: sc.net.Size(), PlanHash: plan.Hash(), Converged: true, FromTags: true,
			Elapsed: sc.now().Sub(start).Seconds()}}, err
}

// alter runs ALTER SUBCLOUD: RESIZE TO n grows by claiming the next
// candidates (all or nothing) or shrinks by releasing the lowest-ranked
// members; EXTEND FOR d renews every member for d from now (all or
// nothing: if one cannot be renewed, the others are renewed back to the
// old term). Only the owner may; one change at a time, and not while a
// repair claims. Each answers success only once the owner's record is on
// disk.
func (sc *subclouds) alter(ctx context.Context, plan *query.Plan) (*answer.Answer, error) {
	start := sc.now()
	a := plan.Local.Alter
	var rep *subcloud.Report
	var err error
	if a.Resize > 0 {
		rep, err = sc.owner.Resize(ctx, a.Name, a.Resize)
	} else {
		rep, err = sc.owner.Extend(ctx, a.Name, time.Duration(a.ExtendSeconds*float64(time.Second)))
	}
	if err != nil {
		return nil, sc.changeError(ctx, "alter", a.Name, err)
	}
	err = reportError(rep, sc.net.Name())
	v, held := sc.owner.Lookup(a.Name)
	switch {
	case err == nil && held, rep.Outcome == subcloud.OutcomeIncomplete && held:
		return sc.ownedResult(plan, v, start), err // an incomplete one changed, with members to let go later
	case err == nil:
		return nil, &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf("ALTER SUBCLOUD %s: the subcloud was released meanwhile", a.Name)}
	}
	return nil, err
}
