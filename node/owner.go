package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/node/owner"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// The owner's side of subclouds is the owner role (node/owner), one
// subcloud.Owner per subcloud it owns; this file wires it to the peer
// (ownerEnv: exchanges, searches, names, the data dir), answers RESERVE,
// RELEASE and ALTER with what the role reports, and answers members'
// and keepers' asks about the subclouds it owns.

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

// ownerEnv is the peer as the owner role sees it.
type ownerEnv struct{ n *Node }

var _ owner.Env = ownerEnv{}

func (e ownerEnv) Send(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	rep, err := e.n.callLease(ctx, to, req)
	if errors.Is(err, network.ErrNoEndpoint) {
		err = fmt.Errorf("%w: %w", subcloud.ErrUnreachable, err)
	}
	return rep, err
}

// Search is a repair's or a RESIZE's search: the subcloud's plan, in one
// of the peer's places for statements.
func (e ownerEnv) Search(ctx context.Context, raw []byte) ([]string, error) {
	if raw == nil {
		return nil, errors.New("the subcloud was restored from a table without its search")
	}
	plan, err := query.Decode(raw)
	if err != nil {
		return nil, err
	}
	ctx, leave, err := e.n.Admit(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	res, err := e.n.gossip(ctx, plan, nil)
	if err != nil {
		return nil, err
	}
	return res.Nodes, nil
}

func (e ownerEnv) RegisterName(ctx context.Context, name string, lease time.Duration) subcloud.Vote {
	v := e.n.nameKeepers.register(ctx, name, lease)
	return subcloud.Vote{Keepers: v.keepers, Granted: v.granted, Rival: v.rival, Rivals: v.rivals}
}

func (e ownerEnv) ReleaseName(ctx context.Context, name string, peers []string) {
	e.n.nameKeepers.release(name, mergeNames(peers, e.n.nameKeepers.keepersOf(name)))
}

func (e ownerEnv) Store(b []byte) error {
	if e.n.cfg.DataDir == "" {
		return nil
	}
	return e.n.keeper.stored(durable.Write(e.n.fs, filepath.Join(e.n.cfg.DataDir, ownedFile), b))
}

func (e ownerEnv) Now() time.Time                  { return e.n.now() }
func (e ownerEnv) Logf(format string, args ...any) { e.n.logf(format, args...) }

// openOwned reads the owner's table from dataDir ("" for none), in either
// of its forms, so that a restarted owner renews and can release what it
// owned.
func openOwned(fsys durable.FS, dataDir string) ([]subcloud.OwnerState, string, error) {
	if dataDir == "" {
		return nil, "", nil
	}
	var states []subcloud.OwnerState
	note, _, err := durable.Read(fsys, filepath.Join(dataDir, ownedFile), func(b []byte) error {
		got, err := owner.DecodeTable(b)
		if err == nil {
			states = got
		}
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("node: owned subclouds: %w (the subclouds this peer owned are no longer renewed and lapse at their expiry)", err)
	}
	return states, note, nil
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

// callLease sends one request of this peer's, as owner, to peer to:
// signed, for to's present incarnation as the membership shows it. A peer
// that restarted since the membership said so answers with its new
// incarnation: the request is signed anew for it, once.
func (n *Node) callLease(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	req.Owner, req.Target, req.Boot = n.Name(), to, n.leases.bootOf(to)
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
		return subcloud.DecodeReply(n.leases.handle(to, req.Encode()))
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
	if _, mine := n.owner.Lookup(name); mine {
		return n.Name(), true
	}
	if owner, ok, err := n.nameKeepers.whoOwns(ctx, name); err == nil {
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
	for name := range n.owner.Held() {
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
func (n *Node) reserve(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, error) {
	ctx, leave, err := n.Admit(ctx) // one place for all its searches
	if err != nil {
		return nil, err
	}
	defer leave()
	spec := plan.Reserve
	start := n.now()
	if v, ok := n.owner.Lookup(spec.Name); ok {
		if spec.Key != "" && v.Key == spec.Key {
			return n.ownedResult(plan, v, start), nil // a retry: the same subcloud
		}
		return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("this agent already owns a subcloud %s; RELEASE it first or choose another name", spec.Name)}
	}
	if name, ok := n.owner.ByKey(spec.Key); ok && name != spec.Name {
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
	n.claimMu.Lock()
	if _, running := n.claiming[spec.Name]; running {
		n.claimMu.Unlock()
		return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("a RESERVE of %s is already running at this agent", spec.Name)}
	}
	n.claiming[spec.Name] = token
	n.claimMu.Unlock()
	defer func() {
		n.claimMu.Lock()
		delete(n.claiming, spec.Name)
		n.claimMu.Unlock()
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
	vote, err := n.nameKeepers.hold(ctx, spec.Name, lease)
	if err != nil {
		return nil, noted(err, "nothing is reserved")
	}
	var mu sync.Mutex
	var cands *answer.Answer // the last search, for the answer's rounds and peers
	search := func(context.Context) ([]string, error) {
		res, err := n.gossip(ctx, plan, progress)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		cands = res
		mu.Unlock()
		return res.Nodes, nil
	}
	rep, err := n.owner.Reserve(ctx, subcloud.Reserve{Subcloud: spec.Name, Owner: n.Name(), Token: token, Key: spec.Key,
		N: spec.N, AtLeast: spec.AtLeast, Lease: lease, Plan: raw, NoRepair: spec.NoRepair, Keepers: vote.granted}, search)
	if err != nil {
		n.nameKeepers.release(spec.Name, vote.granted)
		return nil, &api.Error{Code: api.CodeStatement, Message: err.Error(), Cause: err}
	}
	if err := n.reportError(rep); err != nil {
		return nil, err // the role released what it claimed, and the name
	}
	v, ok := n.owner.Lookup(spec.Name)
	if !ok {
		return nil, &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf("RESERVE %s: the subcloud was given up as it was recorded (SHOW SUBCLOUDS)", spec.Name)}
	}
	res := n.ownedResult(plan, v, start)
	mu.Lock()
	if cands != nil {
		res.Rounds, res.Peers = cands.Rounds, cands.Peers
	}
	mu.Unlock()
	return res, nil
}

// unreleasedError is a change that failed and left peers that did not
// answer their release: they may hold a lease until it lapses.
type unreleasedError struct {
	error
	peers []string
}

func (e *unreleasedError) Unwrap() error { return e.error }

// reportError is a change's report as the API's error: nil when done. A
// failure that left peers unreleased names them (unreleasedError).
func (n *Node) reportError(rep *subcloud.Report) error {
	err := n.outcomeError(rep)
	if err != nil && rep.Outcome != subcloud.OutcomeIncomplete && len(rep.Unanswered) > 0 {
		return &unreleasedError{error: err, peers: rep.Unanswered}
	}
	return err
}

func (n *Node) outcomeError(rep *subcloud.Report) error {
	var ce *subcloud.ChangeError
	errors.As(rep.Err, &ce)
	switch rep.Outcome {
	case subcloud.OutcomeDone:
		return nil
	case subcloud.OutcomeStorage:
		if ce != nil {
			return storageError(ce.What, n.Name(), durable.Reason(ce.Cause), ce.Cause, ce.Then)
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
func (n *Node) changeError(ctx context.Context, verb, name string, err error) error {
	switch {
	case errors.Is(err, owner.ErrNotOwned):
		return n.notOwned(ctx, verb, name)
	case errors.Is(err, owner.ErrBusy):
		return &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("subcloud %s is being repaired or resized; try again in a moment", name), Cause: err}
	}
	return err
}

// ownedResult is a subcloud this peer owns as an answer: its members, best
// first, with the time their leases have left.
func (n *Node) ownedResult(plan *query.Plan, v owner.View, start time.Time) *answer.Answer {
	res := &answer.Answer{Columns: []answer.Column{{Name: "node", Kind: query.KindString},
		{Name: "subcloud", Kind: query.KindString}, {Name: "expires_in", Kind: query.KindDuration}}}
	now := n.now()
	for _, m := range v.Members {
		res.Rows = append(res.Rows, []query.Value{query.Str(m.Name), query.Str(v.Subcloud),
			query.Num(query.KindDuration, m.Expires.Sub(now).Seconds())})
		res.Nodes = append(res.Nodes, m.Name)
	}
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
	rep, err := n.owner.Release(ctx, name)
	if err != nil {
		return nil, n.changeError(ctx, "release", name, err)
	}
	err = n.reportError(rep)
	if err != nil && rep.Outcome != subcloud.OutcomeIncomplete {
		return nil, err
	}
	return &answer.Answer{Columns: []answer.Column{{Name: "subcloud", Kind: query.KindString}, {Name: "released", Kind: query.KindCount},
		{Name: "unreachable", Kind: query.KindCount}},
		Rows: [][]query.Value{{query.Str(name), query.Num(query.KindCount, float64(rep.Freed)), query.Num(query.KindCount, float64(len(rep.Unanswered)))}},
		Meta: &answer.Meta{Status: StatusExact, Peers: n.net.Size(), PlanHash: plan.Hash(), Converged: true, FromTags: true,
			Elapsed: n.now().Sub(start).Seconds()}}, err
}

// alter runs ALTER SUBCLOUD: RESIZE TO n grows by claiming the next
// candidates (all or nothing) or shrinks by releasing the lowest-ranked
// members; EXTEND FOR d renews every member for d from now (all or
// nothing: if one cannot be renewed, the others are renewed back to the
// old term). Only the owner may; one change at a time, and not while a
// repair claims. Each answers success only once the owner's record is on
// disk.
func (n *Node) alter(ctx context.Context, plan *query.Plan) (*answer.Answer, error) {
	start := n.now()
	a := plan.Local.Alter
	var rep *subcloud.Report
	var err error
	if a.Resize > 0 {
		rep, err = n.owner.Resize(ctx, a.Name, a.Resize)
	} else {
		rep, err = n.owner.Extend(ctx, a.Name, time.Duration(a.ExtendSeconds*float64(time.Second)))
	}
	if err != nil {
		return nil, n.changeError(ctx, "alter", a.Name, err)
	}
	err = n.reportError(rep)
	v, held := n.owner.Lookup(a.Name)
	switch {
	case err == nil && held, rep.Outcome == subcloud.OutcomeIncomplete && held:
		return n.ownedResult(plan, v, start), err // an incomplete one changed, with members to let go later
	case err == nil:
		return nil, &api.Error{Code: api.CodeIncomplete, Message: fmt.Sprintf("ALTER SUBCLOUD %s: the subcloud was released meanwhile", a.Name)}
	}
	return nil, err
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
