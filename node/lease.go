package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/peerq/peerq/api"
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
)

// leaseFile is the lease table's file in the data dir; ownedFile the
// subclouds this peer owns.
const (
	leaseFile = "lease.json"
	ownedFile = "owned.json"
)

// leaseState is a peer's own lease table.
type leaseState struct {
	mu    sync.Mutex
	table *subcloud.Table
	path  string // "" in an embedded cluster: kept in memory only
}

// ownedSubcloud is a subcloud this peer reserved and keeps renewing.
type ownedSubcloud struct {
	name, token, key string
	lease            time.Duration
	// members and the expiry each one last confirmed.
	members map[string]time.Time
	renewed time.Time
}

func (o *ownedSubcloud) names() []string {
	out := make([]string, 0, len(o.members))
	for m := range o.members {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// openLeases restores the lease table from dataDir ("" for none); note
// says if it had to fall back on the previous copy.
func openLeases(dataDir string) (ls *leaseState, note string, err error) {
	ls = &leaseState{table: &subcloud.Table{}}
	if dataDir == "" {
		return ls, "", nil
	}
	ls.path = filepath.Join(dataDir, leaseFile)
	note, err = readDurable(ls.path, "lease table", func(b []byte) error {
		t, err := subcloud.Unmarshal(b)
		if err == nil {
			ls.table = t
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return ls, note, nil
}

// persist writes a table durably (durable.go). It is the
// subcloud.Table.Apply hook: the table changes only once this succeeds.
func (ls *leaseState) persist(t *subcloud.Table) error {
	if ls.path == "" {
		return nil
	}
	b, err := t.Marshal()
	if err != nil {
		return err
	}
	return writeDurable(ls.path, b)
}

// ownedJSON is an owned subcloud on disk.
type ownedJSON struct {
	Name    string               `json:"name"`
	Token   string               `json:"token"`
	Key     string               `json:"key,omitempty"`
	Lease   time.Duration        `json:"lease"`
	Members map[string]time.Time `json:"members"` // member → expiry it last confirmed
}

type ownedDoc struct {
	Version   int         `json:"version"`
	Subclouds []ownedJSON `json:"subclouds"`
}

// openOwned restores the subclouds this peer owns from dataDir ("" for
// none), so that a restarted owner renews and can release them.
func openOwned(dataDir string) (map[string]*ownedSubcloud, string, error) {
	owned := map[string]*ownedSubcloud{}
	if dataDir == "" {
		return owned, "", nil
	}
	note, err := readDurable(filepath.Join(dataDir, ownedFile), "owned subclouds", func(b []byte) error {
		got, err := decodeOwned(b)
		if err == nil {
			owned = got
		}
		return err
	})
	return owned, note, err
}

// decodeOwned reads the owner's table, bounded and checked.
func decodeOwned(b []byte) (map[string]*ownedSubcloud, error) {
	var doc ownedDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if doc.Version != 1 {
		return nil, fmt.Errorf("version %d, want 1", doc.Version)
	}
	out := map[string]*ownedSubcloud{}
	for _, j := range doc.Subclouds {
		switch {
		case j.Name == "" || len(j.Name) > subcloud.MaxNameBytes || len(j.Token) < 16 || len(j.Token) > subcloud.MaxTokenBytes ||
			len(j.Key) > subcloud.MaxTokenBytes || j.Lease < subcloud.MinLease || j.Lease > subcloud.MaxLease ||
			len(j.Members) > query.MaxReserve || out[j.Name] != nil:
			return nil, fmt.Errorf("subcloud %q out of bounds", j.Name)
		}
		o := &ownedSubcloud{name: j.Name, token: j.Token, key: j.Key, lease: j.Lease, members: map[string]time.Time{}}
		for m, exp := range j.Members {
			if m == "" || len(m) > subcloud.MaxNameBytes {
				return nil, fmt.Errorf("subcloud %q: a bad member name", j.Name)
			}
			o.members[m] = exp
		}
		out[j.Name] = o
	}
	return out, nil
}

// persistOwned writes the subclouds this peer owns durably. Called with
// n.ownMu held.
func (n *Node) persistOwned() {
	if n.cfg.DataDir == "" {
		return
	}
	doc := ownedDoc{Version: 1}
	for _, o := range n.owned {
		j := ownedJSON{Name: o.name, Token: o.token, Key: o.key, Lease: o.lease, Members: map[string]time.Time{}}
		for m, exp := range o.members {
			j.Members[m] = exp
		}
		doc.Subclouds = append(doc.Subclouds, j)
	}
	sort.Slice(doc.Subclouds, func(i, j int) bool { return doc.Subclouds[i].Name < doc.Subclouds[j].Name })
	b, _ := json.Marshal(doc)
	if err := writeDurable(filepath.Join(n.cfg.DataDir, ownedFile), b); err != nil {
		n.logf("cannot persist the subclouds this peer owns: %v (a restart would forget them; their leases would lapse)", err)
	}
}

// currentLease is the peer's live lease.
func (n *Node) currentLease() (subcloud.Lease, bool) {
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	return n.leases.table.Current(n.clock.Now())
}

// handleLease applies a claim, renewal or release to this peer's table,
// persisting it before answering.
func (n *Node) handleLease(raw []byte) []byte {
	req, err := subcloud.DecodeRequest(raw)
	if err != nil {
		n.mu.Lock()
		n.stats.Malformed++
		n.mu.Unlock()
		return subcloud.Reply{Refusal: subcloud.RefusedMalformed}.Encode()
	}
	n.leases.mu.Lock()
	rep := n.leases.table.Apply(n.clock.Now(), req, n.leases.persist)
	n.leases.mu.Unlock()
	if rep.OK {
		n.showLease()
	}
	return rep.Encode()
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
		if l, ok := n.currentLease(); ok {
			tags[TagSubcloud], tags[tagOwner] = l.Subcloud, l.Owner
			tags[tagUntil] = strconv.FormatInt(l.Expires.Unix(), 10)
		}
		n.net.SetTags(tags)
	}
}

// leaseLoop frees an expired lease from the tags, and renews the subclouds
// this peer owns, at a third of their lease.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := n.clock.NewTicker(n.cfg.LeaseTick)
	defer t.Stop()
	shown := false
	for {
		select {
		case <-n.done:
			return
		case <-t.C():
		}
		_, held := n.currentLease()
		if shown && !held {
			n.showLease() // lapsed: the peer is free again
		}
		shown = held
		now := n.clock.Now()
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

// callLease sends one lease request and returns the peer's reply.
func (n *Node) callLease(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ExchangeTimeout)
	defer cancel()
	resp, err := n.net.Exchange(ctx, to, encodeBatch(batch{Entries: []entry{{Kind: protoLease, Msg: req.Encode()}}}))
	if err != nil {
		return subcloud.Reply{}, err
	}
	b, err := decodeBatch(resp)
	if err != nil {
		return subcloud.Reply{}, err
	}
	if len(b.Entries) != 1 || b.Entries[0].Kind != protoLease {
		return subcloud.Reply{}, fmt.Errorf("node: %s answered a lease request with %d entries", to, len(b.Entries))
	}
	return subcloud.DecodeReply(b.Entries[0].Msg)
}

type leaseReply struct {
	peer string
	rep  subcloud.Reply
	err  error
}

// callLeases sends the same request to peers in parallel and returns the
// replies.
func (n *Node) callLeases(peers []string, req subcloud.Request) []leaseReply {
	out := make([]leaseReply, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := n.callLease(n.ctx, p, req)
			out[i] = leaseReply{p, rep, err}
		}()
	}
	wg.Wait()
	return out
}

// renew extends the subcloud's leases. A member that refuses is dropped;
// one that cannot be reached is kept until its last confirmed expiry (it
// may come back), then dropped.
func (n *Node) renew(o *ownedSubcloud) {
	n.ownMu.Lock()
	peers := o.names()
	n.ownMu.Unlock()
	replies := n.callLeases(peers, subcloud.Request{Op: subcloud.OpRenew, Subcloud: o.name, Token: o.token, For: o.lease})
	now := n.clock.Now()
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	for _, r := range replies {
		switch {
		case r.err == nil && r.rep.OK:
			o.members[r.peer] = time.Unix(0, r.rep.Expires)
		case r.err == nil, !now.Before(o.members[r.peer]):
			delete(o.members, r.peer)
			why := "its lease lapsed unrenewed"
			if r.err == nil {
				why = fmt.Sprintf("it refused the renewal: %v", r.rep.Err())
			}
			n.logf("subcloud %s: lost member %s (%s); %d member(s) left", o.name, r.peer, why, len(o.members))
		}
	}
	o.renewed = now
	n.persistOwned()
}

// ErrNotEnoughPeers is returned when a RESERVE could not get the peers it
// needs; nothing stays reserved.
var ErrNotEnoughPeers = api.ErrNotEnoughPeers

// reserve runs RESERVE: candidates by top-k, then a subcloud.Claimer
// claims them in rank order, backfilling refusals, all-or-nothing unless
// AT LEAST.
func (n *Node) reserve(ctx context.Context, plan *query.Plan, progress func(Progress)) (*Result, error) {
	ctx, leave, err := n.Admit(ctx) // one place for all its searches
	if err != nil {
		return nil, err
	}
	defer leave()
	spec := plan.Reserve
	start := n.clock.Now()
	n.ownMu.Lock()
	if o, ok := n.owned[spec.Name]; ok {
		n.ownMu.Unlock()
		if spec.Key != "" && o.key == spec.Key {
			return n.ownedResult(plan, o, start), nil // a retry: the same subcloud
		}
		return nil, fmt.Errorf("node: this peer already owns a subcloud %s", spec.Name)
	}
	n.ownMu.Unlock()
	// A name held by live leases is taken, whoever holds them.
	for m, l := range n.leaseView(n.net.Members()) {
		if l.subcloud == spec.Name {
			return nil, fmt.Errorf("node: subcloud %s is held by %s (%s holds its lease)", spec.Name, l.owner, m)
		}
	}
	var tok [16]byte
	rand.Read(tok[:])
	lease := time.Duration(spec.LeaseSeconds * float64(time.Second))
	o := &ownedSubcloud{name: spec.Name, token: hex.EncodeToString(tok[:]), key: spec.Key, lease: lease, members: map[string]time.Time{}}
	c, err := subcloud.NewClaimer(subcloud.ClaimerConfig{Subcloud: spec.Name, Owner: n.Name(), Token: o.token, Key: spec.Key,
		N: spec.N, AtLeast: spec.AtLeast, Lease: lease})
	if err != nil {
		return nil, err
	}
	replies := make(chan leaseReply)
	inflight := 0
	var releases []subcloud.Message
	send := func() {
		for _, m := range c.Outbox() {
			if m.Req.Op != subcloud.OpClaim {
				releases = append(releases, m)
				continue
			}
			inflight++
			go func() {
				rep, err := n.callLease(n.ctx, m.To, m.Req)
				replies <- leaseReply{m.To, rep, err}
			}()
		}
	}
	// The leases claimed so far are renewed while the RESERVE runs: one
	// that takes longer than a lease must not return peers that have
	// lapsed, or been taken by another owner since.
	held := map[string]time.Time{} // member → its lease's expiry
	keep := n.clock.NewTicker(n.cfg.LeaseTick)
	defer keep.Stop()
	renewHeld := func() {
		now := n.clock.Now()
		var due []string
		for m, exp := range held {
			if exp.Sub(now) < 2*lease/3 {
				due = append(due, m)
			}
		}
		for _, r := range n.callLeases(due, subcloud.Request{Op: subcloud.OpRenew, Subcloud: spec.Name, Token: o.token, For: lease}) {
			switch {
			case r.err == nil && r.rep.OK:
				held[r.peer] = time.Unix(0, r.rep.Expires)
			case r.err == nil, !now.Before(held[r.peer]):
				delete(held, r.peer)
				c.Lost(r.peer)
			}
		}
	}
	var cands *Result
	for c.State() != subcloud.Done {
		if c.State() == subcloud.NeedCandidates {
			if c.Searches() > 0 {
				// Owners racing for the same peers back off by a random
				// fraction of a round or two, so that they stop colliding.
				n.mu.Lock()
				wait := time.Duration(n.r.Int64N(int64(2 * n.cfg.Round)))
				n.mu.Unlock()
				select {
				case <-n.clock.After(wait):
				case <-ctx.Done():
					c.Abort(ctx.Err())
					continue
				}
			}
			if cands, err = n.gossip(ctx, plan, progress); err != nil {
				c.Abort(err)
				continue
			}
			renewHeld()
			c.Candidates(cands.Nodes)
			send()
			continue
		}
		select {
		case r := <-replies:
			inflight--
			if r.err == nil && r.rep.OK {
				held[r.peer] = time.Unix(0, r.rep.Expires)
			}
			c.Step(r.peer, r.rep, r.err)
			send()
		case <-keep.C():
			renewHeld()
			send()
		case <-ctx.Done():
			c.Abort(ctx.Err())
		}
	}
	// Releases go out only once every claim in flight has come back, so
	// that none overtakes the claim it undoes.
	for ; inflight > 0; inflight-- {
		<-replies
	}
	send()
	for _, m := range releases {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.callLease(n.ctx, m.To, m.Req)
		}()
	}
	members, err := c.Result()
	if err != nil {
		if errors.Is(err, subcloud.ErrNotEnoughPeers) {
			return nil, &api.Error{Code: api.CodeNotEnoughPeers, Message: err.Error() + "; nothing stays reserved"}
		}
		return nil, err
	}
	now := n.clock.Now()
	for _, m := range members {
		o.members[m] = held[m]
	}
	o.renewed = now
	n.ownMu.Lock()
	n.owned[spec.Name] = o
	delete(n.released, spec.Name)
	n.persistOwned()
	n.ownMu.Unlock()
	res := n.ownedResult(plan, o, start)
	res.Rounds, res.Peers = cands.Rounds, cands.Peers
	return res, nil
}

func (n *Node) ownedResult(plan *query.Plan, o *ownedSubcloud, start time.Time) *Result {
	res := &query.Result{Columns: []query.Column{{Name: "node", Kind: query.KindString},
		{Name: "subcloud", Kind: query.KindString}, {Name: "expires_in", Kind: query.KindDuration}}}
	now := n.clock.Now()
	n.ownMu.Lock()
	for _, m := range o.names() {
		res.Rows = append(res.Rows, []query.Value{query.Str(m), query.Str(o.name),
			query.Num(query.KindDuration, o.members[m].Sub(now).Seconds())})
		res.Nodes = append(res.Nodes, m)
	}
	n.ownMu.Unlock()
	return &Result{Result: res, Status: StatusExact, Peers: n.net.Size(), PlanHash: plan.Hash(), Converged: true, Elapsed: now.Sub(start)}
}

// release runs RELEASE: the owner frees its members at once.
func (n *Node) release(plan *query.Plan) (*Result, error) {
	start := n.clock.Now()
	name := plan.Local.Release
	n.ownMu.Lock()
	o, ok := n.owned[name]
	delete(n.owned, name)
	var members []string
	if ok {
		members = o.names()
		// Until the members' tags say so, answers from tags must not
		// show what this peer has just released (read your writes).
		n.released[name] = start
		n.persistOwned()
	}
	n.ownMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("node: this peer owns no subcloud %s", name)
	}
	freed := 0
	for _, r := range n.callLeases(members, subcloud.Request{Op: subcloud.OpRelease, Subcloud: name, Token: o.token}) {
		if r.err == nil && r.rep.OK {
			freed++
		}
	}
	res := &query.Result{Columns: []query.Column{{Name: "subcloud", Kind: query.KindString}, {Name: "released", Kind: query.KindCount}},
		Rows: [][]query.Value{{query.Str(name), query.Num(query.KindCount, float64(freed))}}}
	return &Result{Result: res, Status: StatusExact, Peers: n.net.Size(), PlanHash: plan.Hash(), Converged: true, FromTags: true,
		Elapsed: n.clock.Now().Sub(start)}, nil
}
