package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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
)

// leaseFile is the lease table's file in the data dir; ownedFile the
// subclouds this peer owns.
const (
	leaseFile = "lease.json"
	ownedFile = "owned.json"
)

// leaseState is a peer's own lease table.
type leaseState struct {
	mu     sync.Mutex
	table  *subcloud.Table
	path   string        // "" in an embedded cluster: kept in memory only
	ledger []ledgerEntry // the leases served, oldest first (ledger.go)
}

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
	var lnote string
	if ls.ledger, lnote, err = openLedger(dataDir); err != nil {
		return nil, "", err
	}
	if lnote != "" {
		note = strings.TrimSpace(note + "; " + lnote)
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
}

type ownedDoc struct {
	Version   int         `json:"version"`
	Subclouds []ownedJSON `json:"subclouds"`
}

// ownedVersion is the owner's table's version: 2 added the size it keeps,
// the plan it repairs with, its repairs and the members it dropped.
const ownedVersion = 2

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
	if doc.Version != 1 && doc.Version != ownedVersion {
		return nil, fmt.Errorf("version %d, want 1 or %d", doc.Version, ownedVersion)
	}
	out := map[string]*ownedSubcloud{}
	for _, j := range doc.Subclouds {
		switch {
		case j.Name == "" || len(j.Name) > subcloud.MaxNameBytes || len(j.Token) < 16 || len(j.Token) > subcloud.MaxTokenBytes ||
			len(j.Key) > subcloud.MaxTokenBytes || j.Lease < subcloud.MinLease || j.Lease > subcloud.MaxLease ||
			len(j.Members) > query.MaxReserve || len(j.Order) > 2*query.MaxReserve || len(j.Dropped) > 4*query.MaxReserve ||
			j.Target < 0 || j.Target > query.MaxReserve || j.Repairs < 0 || j.Metered < 0 || len(j.Episodes) > 4*query.MaxReserve || out[j.Name] != nil:
			return nil, fmt.Errorf("subcloud %q out of bounds", j.Name)
		}
		o := &ownedSubcloud{name: j.Name, token: j.Token, key: j.Key, lease: j.Lease, members: map[string]time.Time{},
			order: j.Order, target: j.Target, since: j.Since, repairs: j.Repairs, lastRepair: j.LastRepair,
			dropped: map[string]time.Time{}, episodes: map[string]*episode{}, metered: j.Metered}
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

// persistOwned writes the subclouds this peer owns durably. Called with
// n.ownMu held.
func (n *Node) persistOwned() {
	if n.cfg.DataDir == "" {
		return
	}
	doc := ownedDoc{Version: ownedVersion}
	for _, o := range n.owned {
		j := ownedJSON{Name: o.name, Token: o.token, Key: o.key, Lease: o.lease, Members: map[string]time.Time{},
			Order: o.ranked(), Plan: o.plan, Target: o.target, NoRepair: !o.repair, Since: o.since,
			Repairs: o.repairs, LastRepair: o.lastRepair, Dropped: o.dropped, Metered: o.metered, Episodes: map[string][2]time.Time{}}
		for m, e := range o.episodes {
			j.Episodes[m] = [2]time.Time{e.start, e.until}
		}
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
	now := n.clock.Now()
	n.leases.mu.Lock()
	rep := n.leases.table.Apply(now, req, n.leases.persist)
	if rep.OK {
		n.leases.meter(req, now, n.logf)
	}
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
			since := l.Since
			if since.IsZero() {
				since = l.Granted
			}
			tags[tagSince] = strconv.FormatInt(since.UnixMilli(), 10)
		}
		n.net.SetTags(tags)
	}
}
