package node

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
)

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
func (n *Node) leaseView(members []overlay.Member) map[string]leaseOf {
	now := n.clock.Now()
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	view := map[string]leaseOf{}
	mineByTags := map[string]leaseOf{} // leases of this peer's subclouds, as members' tags show them
	stale := map[string]bool{}
	for _, m := range members {
		sub, ok := m.Tags[TagSubcloud]
		if !ok {
			continue
		}
		if _, mine := n.owned[sub]; mine && m.Tags[tagOwner] == n.Name() {
			until, _ := strconv.ParseInt(m.Tags[tagUntil], 10, 64)
			since, _ := strconv.ParseInt(m.Tags[tagSince], 10, 64)
			mineByTags[m.Name] = leaseOf{subcloud: sub, owner: n.Name(), until: until, since: since}
			continue
		}
		if _, gone := n.released[sub]; gone && m.Tags[tagOwner] == n.Name() {
			stale[sub] = true
			continue
		}
		until, _ := strconv.ParseInt(m.Tags[tagUntil], 10, 64)
		since, _ := strconv.ParseInt(m.Tags[tagSince], 10, 64)
		view[m.Name] = leaseOf{subcloud: sub, owner: m.Tags[tagOwner], until: until, since: since}
	}
	// A released subcloud is forgotten once no tag shows it any more, or
	// after its leases would have lapsed anyway.
	for sub, at := range n.released {
		if !stale[sub] || now.Sub(at) > subcloud.MaxLease {
			delete(n.released, sub)
		}
	}
	live := map[string]bool{}
	for _, m := range members {
		live[m.Name] = true
	}
	for _, o := range n.owned {
		for m, exp := range o.members {
			if live[m] && exp.After(now) {
				view[m] = leaseOf{subcloud: o.name, owner: n.Name(), until: exp.Unix(), since: o.since.UnixMilli()}
			}
		}
		// A former member back from a restart holds the lease until this
		// peer takes it back or releases it: its tags say so, and they are
		// right.
		for m, exp := range o.dropped {
			if l, ok := mineByTags[m]; ok && l.subcloud == o.name && live[m] && exp.After(now) {
				view[m] = l
			}
		}
	}
	return view
}

// memberRecords builds, from the member list alone, the record of every
// live peer as far as membership knows it: name, address, tags, and its
// lease (leaseView).
func (n *Node) memberRecords() []query.Record {
	members := n.net.Members()
	view := n.leaseView(members)
	var recs []query.Record
	for _, m := range members {
		rec := query.Record{"node": query.Str(m.Name), "addr": query.Str(m.Addr), "reserved": query.Bool(false)}
		for k, v := range m.Tags {
			rec[k] = query.Str(v)
		}
		delete(rec, TagSubcloud)
		delete(rec, tagOwner)
		delete(rec, tagUntil)
		delete(rec, tagSince)
		if l, ok := view[m.Name]; ok {
			rec["reserved"], rec[TagSubcloud] = query.Bool(true), query.Str(l.subcloud)
			rec[tagOwner], rec[tagUntil] = query.Str(l.owner), query.Str(strconv.FormatInt(l.until, 10))
		}
		recs = append(recs, rec)
	}
	return recs
}

// fromMembership answers a plan that reads only membership attributes from
// the member list, exactly, without gossip.
func (n *Node) fromMembership(plan *query.Plan, start time.Time) (*Result, error) {
	recs := n.memberRecords()
	return &Result{Result: query.Exact(plan, recs), Status: StatusExact, Peers: len(recs), MembersStart: len(recs), MembersEnd: len(recs),
		Elapsed: n.clock.Now().Sub(start), PlanHash: plan.Hash(), FromTags: true, Converged: true}, nil
}

// alone answers a statement when this peer is the only member: its own
// record (or its ledger's rows) is the whole table, so the answer is exact
// at once — gossip with nobody would only wait out its budget. The answer
// still warns that the peer has joined no one.
func (n *Node) alone(plan *query.Plan, start time.Time) (*Result, error) {
	rows := []query.Record{n.recordFor(n.record(), n.net.Coordinate())}
	if plan.Table == query.TableLeases {
		rows = n.ledgerRows()
	}
	return &Result{Result: query.Exact(plan, rows), Status: StatusExact, Peers: 1, MembersStart: 1, MembersEnd: 1,
		Elapsed: n.clock.Now().Sub(start), PlanHash: plan.Hash(), Converged: true}, nil
}

// local answers SHOW statements from this peer's own knowledge.
func (n *Node) local(plan *query.Plan, start time.Time) (*Result, error) {
	col := func(name string, k query.Kind) query.Column { return query.Column{Name: name, Kind: k} }
	res := &query.Result{}
	switch plan.Local.Show {
	case query.ShowMembers:
		res.Columns = []query.Column{col("node", query.KindString), col("addr", query.KindString), col("tags", query.KindString)}
		for _, m := range n.net.Members() {
			var tags []string
			for k, v := range m.Tags {
				tags = append(tags, k+"="+v)
			}
			sort.Strings(tags)
			res.Rows = append(res.Rows, []query.Value{query.Str(m.Name), query.Str(m.Addr), query.Str(strings.Join(tags, ","))})
		}
	case query.ShowAttributes:
		res.Columns = []query.Column{col("attribute", query.KindString), col("kind", query.KindString),
			col("source", query.KindString), col("description", query.KindString)}
		for _, a := range n.Catalog().Attrs() {
			res.Rows = append(res.Rows, []query.Value{query.Str(a.Name), query.Str(a.Kind.String()),
				query.Str(a.Origin.String()), query.Str(a.Doc)})
		}
	case query.ShowSubclouds:
		res.Columns, res.Rows = n.showSubclouds()
	}
	return &Result{Result: res, Status: StatusExact, Peers: n.net.Size(), Elapsed: n.clock.Now().Sub(start), PlanHash: plan.Hash(),
		FromTags: true, Converged: true}, nil
}

// showSubclouds lists the subclouds the membership shows, each counted as
// its one owner's leases (rightful): name, owner, the size the owner keeps
// it at, its size now, the repairs done and how long ago the last one was,
// the earliest expiry among its members, the owner's account of its
// peer-hours (the ledger's rule), and the members. The target, the repairs
// and the account are the owner's own: another agent shows them as NULL.
func (n *Node) showSubclouds() ([]query.Column, [][]query.Value) {
	col := func(name string, k query.Kind) query.Column { return query.Column{Name: name, Kind: k} }
	cols := []query.Column{col("subcloud", query.KindString), col("owner", query.KindString),
		col("target", query.KindCount), col("size", query.KindCount), col("repairs", query.KindCount),
		col("last repair", query.KindDuration), col("earliest expiry", query.KindDuration), col("peer_hours", query.KindNumber),
		col("members", query.KindString)}
	now := n.clock.Now()
	byName := holders(n.leaseView(n.net.Members()))
	n.ownMu.Lock()
	defer n.ownMu.Unlock()
	for name, o := range n.owned {
		if byName[name] == nil {
			// Owned, with every member lost: it is still the owner's, and
			// it is being repaired.
			byName[name] = map[string]*nameHolder{n.Name(): {owner: n.Name(), since: o.since.UnixMilli()}}
		}
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	sort.Strings(names)
	var rows [][]query.Value
	for _, name := range names {
		h := rightful(byName[name])
		if o, ok := n.owned[name]; ok && h.owner != n.Name() {
			h = &nameHolder{owner: n.Name(), since: o.since.UnixMilli()} // an owner knows its own
		}
		target, repairs, last, hours := query.Null, query.Null, query.Null, query.Null
		members := h.members
		if o, ok := n.owned[name]; ok {
			target, repairs = query.Num(query.KindCount, float64(o.target)), query.Num(query.KindCount, float64(o.repairs))
			hours = query.Num(query.KindNumber, o.peerHours())
			if !o.lastRepair.IsZero() {
				last = query.Num(query.KindDuration, now.Sub(o.lastRepair).Seconds())
			}
			members = o.ranked()
		} else {
			sort.Strings(members)
		}
		expiry := query.Null
		if h.until > 0 {
			expiry = query.Num(query.KindDuration, math.Max(0, time.Unix(h.until, 0).Sub(now).Seconds()))
		}
		rows = append(rows, []query.Value{query.Str(name), query.Str(h.owner), target,
			query.Num(query.KindCount, float64(len(members))), repairs, last, expiry, hours, query.Str(strings.Join(members, ","))})
	}
	return cols, rows
}
