package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

// Subclouds: this peer's side (its lease table, persisted before it
// answers, shown in Serf tags) and the owner's side (RESERVE claims the
// top-k's candidates in rank order, renews the leases, RELEASE frees them).

// Tags a reserved peer shows, so that FROM SUBCLOUD and SHOW SUBCLOUDS are
// answered from the membership.
const (
	TagSubcloud = "subcloud"
	tagOwner    = "subcloud_owner"
	tagUntil    = "subcloud_until" // Unix seconds
)

// leaseFile is the lease table's file in the data dir.
const leaseFile = "lease.json"

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
	members          []string
	expires          time.Time
}

// leaseMsg is a claim, a renewal or a release on the wire (JSON).
type leaseMsg struct {
	Op       string        `json:"op"` // claim, renew, release
	Subcloud string        `json:"subcloud"`
	Owner    string        `json:"owner,omitempty"`
	Token    string        `json:"token"`
	Key      string        `json:"key,omitempty"`
	For      time.Duration `json:"for,omitempty"`
}

type leaseReply struct {
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Expires time.Time `json:"expires,omitempty"`
}

// openLeases restores the lease table from dataDir ("" for none).
func openLeases(dataDir string) (*leaseState, error) {
	ls := &leaseState{table: &subcloud.Table{}}
	if dataDir == "" {
		return ls, nil
	}
	ls.path = filepath.Join(dataDir, leaseFile)
	b, err := os.ReadFile(ls.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return ls, nil
	case err != nil:
		return nil, fmt.Errorf("node: lease table: %w", err)
	}
	t, err := subcloud.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	ls.table = t
	return ls, nil
}

// persist writes the table durably: write, fsync, rename.
func (ls *leaseState) persist() error {
	if ls.path == "" {
		return nil
	}
	b, err := ls.table.Marshal()
	if err != nil {
		return err
	}
	tmp := ls.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, ls.path)
}

// current is the peer's live lease.
func (n *Node) currentLease() (subcloud.Lease, bool) {
	n.leases.mu.Lock()
	defer n.leases.mu.Unlock()
	return n.leases.table.Current(time.Now())
}

// handleLease applies a claim, renewal or release to this peer's table,
// persisting it before answering.
func (n *Node) handleLease(raw []byte) []byte {
	var m leaseMsg
	reply := func(r leaseReply) []byte { b, _ := json.Marshal(r); return b }
	if err := json.Unmarshal(raw, &m); err != nil {
		return reply(leaseReply{Error: "malformed lease message"})
	}
	n.leases.mu.Lock()
	now := time.Now()
	var l subcloud.Lease
	var err error
	switch m.Op {
	case "claim":
		l, err = n.leases.table.Claim(now, subcloud.Claim{Subcloud: m.Subcloud, Owner: m.Owner, Token: m.Token, Key: m.Key, For: m.For})
	case "renew":
		l, err = n.leases.table.Renew(now, m.Subcloud, m.Token, m.For)
	case "release":
		err = n.leases.table.Release(now, m.Subcloud, m.Token)
	default:
		err = errors.New("unknown lease operation")
	}
	if err == nil {
		err = n.leases.persist()
	}
	n.leases.mu.Unlock()
	if err != nil {
		return reply(leaseReply{Error: err.Error()})
	}
	n.showLease()
	return reply(leaseReply{OK: true, Expires: l.Expires})
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
		for k, v := range n.cfg.Overlay.Tags {
			tags[k] = v
		}
		if l, ok := n.currentLease(); ok {
			tags[TagSubcloud], tags[tagOwner] = l.Subcloud, l.Owner
			tags[tagUntil] = strconv.FormatInt(l.Expires.Unix(), 10)
		}
		n.ov.SetTags(tags)
	}
}

// leaseLoop frees an expired lease from the tags, and renews the subclouds
// this peer owns, at a third of their lease.
func (n *Node) leaseLoop() {
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	shown := false
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		_, held := n.currentLease()
		if shown && !held {
			n.showLease() // lapsed: the peer is free again
		}
		shown = held
		n.ownMu.Lock()
		var due []*ownedSubcloud
		for _, o := range n.owned {
			if time.Until(o.expires) < 2*o.lease/3 {
				due = append(due, o)
			}
		}
		n.ownMu.Unlock()
		for _, o := range due {
			n.renew(o)
		}
	}
}

// callLease sends lease messages to peers, in parallel, and returns each
// peer's reply (a transport error as a failed reply).
func (n *Node) callLease(peers []string, m leaseMsg) map[string]leaseReply {
	out := make(map[string]leaseReply, len(peers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	body, _ := json.Marshal(m)
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r leaseReply
			resp, err := n.ov.Exchange(p, encodeBatch([]entry{{Kind: protoLease, Msg: body}}))
			if err == nil {
				var es []entry
				if es, err = decodeBatch(resp); err == nil && len(es) == 1 {
					err = json.Unmarshal(es[0].Msg, &r)
				} else if err == nil {
					err = errors.New("no reply")
				}
			}
			if err != nil {
				r = leaseReply{Error: err.Error()}
			}
			mu.Lock()
			out[p] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (n *Node) renew(o *ownedSubcloud) {
	replies := n.callLease(o.members, leaseMsg{Op: "renew", Subcloud: o.name, Token: o.token, For: o.lease})
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	var kept []string
	for _, p := range o.members {
		if replies[p].OK {
			kept = append(kept, p)
		}
	}
	o.members = kept // a member that could not be renewed lapses
	o.expires = time.Now().Add(o.lease)
}

// ErrNotEnoughPeers is returned when a RESERVE could not get the peers it
// needs; nothing stays reserved.
var ErrNotEnoughPeers = errors.New("node: not enough free peers")

// reserve runs RESERVE: candidates by top-k, then claims in rank order,
// backfilling refusals, all-or-nothing unless AT LEAST.
func (n *Node) reserve(ctx context.Context, plan *query.Plan, progress func(Progress)) (*Result, error) {
	spec := plan.Reserve
	n.ownMu.Lock()
	if o, ok := n.owned[spec.Name]; ok {
		n.ownMu.Unlock()
		if spec.Key != "" && o.key == spec.Key {
			return n.ownedResult(plan, o), nil // a retry: the same subcloud
		}
		return nil, fmt.Errorf("node: this peer already owns a subcloud %s", spec.Name)
	}
	n.ownMu.Unlock()
	start := time.Now()
	var tok [16]byte
	rand.Read(tok[:])
	o := &ownedSubcloud{name: spec.Name, token: hex.EncodeToString(tok[:]), key: spec.Key,
		lease: time.Duration(spec.LeaseSeconds * float64(time.Second))}
	claim := leaseMsg{Op: "claim", Subcloud: spec.Name, Owner: n.Name(), Token: o.token, Key: spec.Key, For: o.lease}
	need := spec.N
	if spec.AtLeast > 0 {
		need = spec.AtLeast
	}
	// Claim the candidates in rank order, backfilling refusals from the
	// next ones. When the candidates run out — other owners took some —
	// look again among the peers still free, a few times.
	tried := map[string]bool{}
	held := map[string]bool{}
	var cands *Result
	for attempt := 0; attempt < 5 && len(o.members) < spec.N; attempt++ {
		if attempt > 0 {
			// Owners racing for the same peers back off by a random
			// fraction of a round or two, so that they stop colliding.
			n.mu.Lock()
			wait := time.Duration(n.r.IntN(int(2 * n.cfg.Round)))
			n.mu.Unlock()
			time.Sleep(wait)
		}
		var err error
		if cands, err = n.gossip(ctx, plan, progress); err != nil {
			n.callLease(o.members, leaseMsg{Op: "release", Subcloud: spec.Name, Token: o.token})
			return nil, err
		}
		// A peer refused before may be free now (a rival gave up).
		var fresh []string
		for _, p := range cands.Nodes {
			if !held[p] {
				fresh = append(fresh, p)
			}
		}
		if len(fresh) == 0 {
			break
		}
		for next := 0; len(o.members) < spec.N && next < len(fresh); {
			batch := fresh[next:min(len(fresh), next+spec.N-len(o.members))]
			next += len(batch)
			for p, r := range n.callLease(batch, claim) {
				tried[p] = true
				if r.OK {
					o.members = append(o.members, p)
					held[p] = true
				}
			}
		}
	}
	if len(o.members) < need {
		n.callLease(o.members, leaseMsg{Op: "release", Subcloud: spec.Name, Token: o.token})
		return nil, fmt.Errorf("%w: RESERVE %d got %d of the %d peers it tried", ErrNotEnoughPeers, spec.N, len(o.members), len(tried))
	}
	sort.Strings(o.members)
	o.expires = time.Now().Add(o.lease)
	n.ownMu.Lock()
	n.owned[spec.Name] = o
	n.ownMu.Unlock()
	res := n.ownedResult(plan, o)
	res.Elapsed, res.Rounds, res.Peers = time.Since(start), cands.Rounds, cands.Peers
	return res, nil
}

func (n *Node) ownedResult(plan *query.Plan, o *ownedSubcloud) *Result {
	res := &query.Result{Columns: []query.Column{{Name: "node", Kind: query.KindString},
		{Name: "subcloud", Kind: query.KindString}, {Name: "expires_in", Kind: query.KindDuration}}}
	for _, m := range o.members {
		res.Rows = append(res.Rows, []query.Value{query.Str(m), query.Str(o.name),
			query.Num(query.KindDuration, time.Until(o.expires).Seconds())})
		res.Nodes = append(res.Nodes, m)
	}
	return &Result{Result: res, Peers: n.ov.Size(), PlanHash: plan.Hash(), Converged: true}
}

// release runs RELEASE: the owner frees its members at once.
func (n *Node) release(plan *query.Plan) (*Result, error) {
	name := plan.Local.Release
	n.ownMu.Lock()
	o, ok := n.owned[name]
	delete(n.owned, name)
	n.ownMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("node: this peer owns no subcloud %s", name)
	}
	replies := n.callLease(o.members, leaseMsg{Op: "release", Subcloud: name, Token: o.token})
	freed := 0
	for _, r := range replies {
		if r.OK {
			freed++
		}
	}
	res := &query.Result{Columns: []query.Column{{Name: "subcloud", Kind: query.KindString}, {Name: "released", Kind: query.KindCount}},
		Rows: [][]query.Value{{query.Str(name), query.Num(query.KindCount, float64(freed))}}}
	return &Result{Result: res, Peers: n.ov.Size(), PlanHash: plan.Hash(), Converged: true, FromTags: true}, nil
}
