package node

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/query"
)

// memberRecords builds, from the member list alone, the record of every
// live peer as far as membership knows it: name, address and tags.
func (n *Node) memberRecords() []query.Record {
	var recs []query.Record
	for _, m := range n.net.Members() {
		rec := query.Record{"node": query.Str(m.Name), "addr": query.Str(m.Addr), "reserved": query.Bool(false)}
		for k, v := range m.Tags {
			rec[k] = query.Str(v)
		}
		if _, ok := m.Tags[TagSubcloud]; ok {
			rec["reserved"] = query.Bool(true)
		}
		recs = append(recs, rec)
	}
	return recs
}

// fromMembership answers a plan that reads only membership attributes from
// the member list, exactly, without gossip.
func (n *Node) fromMembership(plan *query.Plan, start time.Time) (*Result, error) {
	recs := n.memberRecords()
	return &Result{Result: query.Exact(plan, recs), Peers: len(recs), Elapsed: n.clock.Now().Sub(start),
		PlanHash: plan.Hash(), FromTags: true, Converged: true}, nil
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
		// Subclouds show in members' tags: name, owner, size, and the
		// earliest expiry among the members.
		res.Columns = []query.Column{col("subcloud", query.KindString), col("owner", query.KindString),
			col("size", query.KindCount), col("earliest expiry", query.KindDuration), col("members", query.KindString)}
		type sc struct {
			owner   string
			members []string
			until   int64
		}
		subs := map[string]*sc{}
		for _, m := range n.net.Members() {
			name, ok := m.Tags[TagSubcloud]
			if !ok {
				continue
			}
			s := subs[name]
			if s == nil {
				s = &sc{owner: m.Tags[tagOwner]}
				subs[name] = s
			}
			s.members = append(s.members, m.Name)
			if u, err := strconv.ParseInt(m.Tags[tagUntil], 10, 64); err == nil && (s.until == 0 || u < s.until) {
				s.until = u
			}
		}
		var names []string
		for name := range subs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s := subs[name]
			sort.Strings(s.members)
			res.Rows = append(res.Rows, []query.Value{query.Str(name), query.Str(s.owner),
				query.Num(query.KindCount, float64(len(s.members))),
				query.Num(query.KindDuration, math.Max(0, time.Unix(s.until, 0).Sub(n.clock.Now()).Seconds())),
				query.Str(strings.Join(s.members, ","))})
		}
	}
	return &Result{Result: res, Peers: n.net.Size(), Elapsed: n.clock.Now().Sub(start), PlanHash: plan.Hash(),
		FromTags: true, Converged: true}, nil
}
