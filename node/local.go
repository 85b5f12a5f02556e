package node

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// memberRecords builds, from the member list alone, the record of every
// live peer as far as membership knows it: name, address, tags, and its
// lease (leaseView).
func (n *Node) memberRecords() []query.Record {
	members := n.net.Members()
	view := n.sc.leaseView(members)
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
// Members this peer found lost lately (declareLost), which Serf has not
// declared yet, are left out and named, as a gossip answer would.
func (n *Node) fromMembership(plan *query.Plan, start time.Time) (*answer.Answer, error) {
	recs, all, excluded := n.liveRecords()
	res := query.Exact(plan, recs)
	res.Meta = &answer.Meta{Status: StatusExact, Peers: len(recs), MembersStart: all, MembersEnd: all,
		Elapsed: n.now().Sub(start).Seconds(), PlanHash: plan.Hash(), FromTags: true, Converged: true}
	leftOut(res.Meta, excluded)
	return res, nil
}

// liveRecords are the member list's records (memberRecords) without the
// members this peer found lost lately, which it names with why; all is
// how many members the list holds.
func (n *Node) liveRecords() (recs []query.Record, all int, excluded map[string]string) {
	members := n.memberRecords()
	lost := n.prober.lostLately(n.now())
	excluded = map[string]string{}
	for _, r := range members {
		if why, ok := lost[r["node"].Str]; ok {
			excluded[r["node"].Str] = why
			continue
		}
		recs = append(recs, r)
	}
	return recs, len(members), excluded
}

// tagsPartial is a pool's partial of a statement that reads only what the
// membership shows, from this gateway's member list (run.ExactPartial):
// exact, as this pool's own answer to it would be (fromMembership), at
// once, rather than gossip rounds over the pool — but for what a sketch
// carries across pools (a quantile's histogram, a distinct count's
// HyperLogLog: run.Sketched), which merges to an estimate within its
// accuracy, and says so (converged).
func (n *Node) tagsPartial(plan *query.Plan, start time.Time) (*answer.Answer, *run.Partial, error) {
	recs, all, excluded := n.liveRecords()
	if plan.ByOwner {
		recs = listedRecords(plan, n.rt.pools.cfg.Pool, recs)
	}
	part, err := run.ExactPartial(plan, recs)
	if err != nil {
		return nil, nil, err
	}
	status := StatusExact
	if run.Sketched(plan) {
		status = StatusConverged
	}
	a := &answer.Answer{Meta: &answer.Meta{Status: status, Peers: len(recs), MembersStart: all, MembersEnd: all,
		Elapsed: n.now().Sub(start).Seconds(), PlanHash: plan.Hash(), FromTags: true, Converged: true}}
	leftOut(a.Meta, excluded)
	return a, part, nil
}

// alone answers a statement when this peer is the only member: its own
// record (or its ledger's rows) is the whole table, so the answer is exact
// at once — gossip with nobody would only wait out its budget. The answer
// still warns that the peer has joined no one.
func (n *Node) alone(plan *query.Plan, start time.Time) (*answer.Answer, error) {
	rows := []query.Record{recordFor(n.net, n.record(), n.net.Coordinate())}
	if plan.Table == query.TableLeases {
		rows = n.leases.ledgerRows()
	}
	res := query.Exact(plan, rows)
	res.Meta = &answer.Meta{Status: StatusExact, Peers: 1, MembersStart: 1, MembersEnd: 1,
		Elapsed: n.now().Sub(start).Seconds(), PlanHash: plan.Hash(), Converged: true}
	return res, nil
}

// local answers SHOW statements from this peer's own knowledge (and, for
// SHOW SUBCLOUDS, the owners').
func (n *Node) local(ctx context.Context, plan *query.Plan, start time.Time) (*answer.Answer, error) {
	res := &answer.Answer{}
	warning := ""
	col := func(name string, k query.Kind) answer.Column { return answer.Column{Name: name, Kind: k} }
	switch plan.Local.Show {
	case query.ShowMembers:
		res.Columns, res.Rows = n.showMembers()
	case query.ShowAttributes:
		if n.rt.pools.on() {
			return n.showAttributes(ctx, plan, start)
		}
		res = n.Catalog().Describe()
	case query.ShowPools:
		return n.showPools(ctx, plan, start)
	case query.ShowEvents:
		// This agent's own log of the membership, oldest first, as
		// `serf monitor` shows it; other agents saw the same events at
		// about the same times (Serf's gossip).
		res.Columns = []answer.Column{col("at", query.KindString), col("node", query.KindString), col("event", query.KindString),
			col("addr", query.KindString), col("pool", query.KindString)}
		for _, e := range n.Events(0) {
			addr, pool := query.Null, query.Null
			if e.Addr != "" {
				addr = query.Str(e.Addr)
			}
			if e.Pool != "" {
				pool = query.Str(e.Pool)
			}
			res.Rows = append(res.Rows, []query.Value{query.Str(e.At.UTC().Format("2006-01-02T15:04:05.000Z07:00")), query.Str(e.Node), query.Str(e.Kind), addr, pool})
		}
		warning = fmt.Sprintf("up to the last %d membership events this agent saw (joins, failures, leaves, reaps), oldest first; other agents saw the same within seconds", n.events.size())
	case query.ShowSubclouds:
		var notes []string
		res.Columns, res.Rows, notes = n.sc.showSubclouds(ctx)
		warning = strings.Join(append([]string{"subclouds owned by other agents are found through their members' tags, which reach this agent within a few seconds of a change (Serf's gossip); " +
			"their owner is the one the name's keepers name, and a row from its owner is exact as of this answer"}, notes...), "; ")
		if n.rt.pools.on() {
			return n.otherPoolsSubclouds(ctx, plan, res, warning, start)
		}
	}
	res.Meta = &answer.Meta{Status: StatusExact, Peers: n.net.Size(), Elapsed: n.now().Sub(start).Seconds(), PlanHash: plan.Hash(),
		FromTags: true, Converged: true, Warning: warning}
	return res, nil
}

// showMembers lists every member the membership knows, by name: the
// live ones and, as Serf keeps them until it reaps them, those that
// failed or left. status is alive, leaving, left or failed; last_seen
// is when this agent last knew the member alive (RFC 3339; the answer's
// time for a live one, NULL if it was gone before this agent heard of
// it); zone is its zone tag. clock_offset is the member's clock minus
// this one's, as the exchanges measured it lately (NULL: not measured);
// beyond the replay window (30 s) the two cannot exchange. storage is
// the member's data dir fault, if any (it grants no lease meanwhile).
// exchanges is, for a live member, what this agent's own exchanges and
// probes found: ok, or lost since when and why — a member Serf lists
// alive that answers no exchange (a process that hangs, a port cut) is
// left out of this agent's statements (and, in its subclouds, replaced
// after 10 s), and this is where an operator sees why.
func (n *Node) showMembers() ([]answer.Column, [][]query.Value) {
	col := func(name string, k query.Kind) answer.Column { return answer.Column{Name: name, Kind: k} }
	cols := []answer.Column{col("node", query.KindString), col("status", query.KindString), col("addr", query.KindString),
		col("zone", query.KindString), col("last_seen", query.KindString), col("clock_offset", query.KindDuration),
		col("storage", query.KindString), col("identity", query.KindString), col("tags", answer.KindList), col("exchanges", query.KindString)}
	var offsets map[string]time.Duration
	if o, ok := n.net.(interface {
		ClockOffsets() map[string]time.Duration
	}); ok {
		offsets = o.ClockOffsets()
	}
	for name, off := range n.prober.skewed(n.now(), false, nil) {
		if _, known := offsets[name]; !known {
			if offsets == nil {
				offsets = map[string]time.Duration{}
			}
			offsets[name] = off
		}
	}
	members := n.known()
	lost := n.prober.lostNotes(n.now())
	now := query.Str(n.now().UTC().Format(time.RFC3339))
	var rows [][]query.Value
	for _, m := range members {
		var tags []string
		for k, v := range m.Tags {
			if k != TagStorage {
				tags = append(tags, k+"="+v)
			}
		}
		sort.Strings(tags)
		offset, storage, id, zone, seen := query.Null, query.Str("ok"), query.Null, query.Null, query.Null
		if off, ok := offsets[m.Name]; ok && m.Name != n.Name() {
			// In seconds, to the 0.1 s the exchanges measure it to.
			offset = query.Num(query.KindDuration, off.Round(100*time.Millisecond).Seconds())
		} else if m.Name == n.Name() {
			offset = query.Num(query.KindDuration, 0)
		}
		if f := m.Tags[TagStorage]; f != "" {
			storage = query.Str(f)
		}
		if !m.Key.IsZero() {
			id = query.Str(m.Key.Short())
		}
		if z, ok := m.Tags["zone"]; ok {
			zone = query.Str(z)
		}
		switch {
		case m.Status == network.StatusAlive:
			seen = now
		default:
			if at, ok := n.lastSeen(m); ok {
				seen = query.Str(at.Format(time.RFC3339))
			}
		}
		exchanges := query.Null
		if m.Status == network.StatusAlive && m.Name != n.Name() {
			exchanges = query.Str("ok")
			if l, ok := lost[m.Name]; ok {
				exchanges = query.Str(fmt.Sprintf("lost since %s: %s", l.at.UTC().Format(time.RFC3339), l.why))
			}
		}
		rows = append(rows, []query.Value{query.Str(m.Name), query.Str(m.Status), query.Str(m.Addr), zone, seen, offset, storage, id,
			answer.List(tags), exchanges})
	}
	return cols, rows
}

// otherPoolsSubclouds adds the other pools' subclouds to SHOW SUBCLOUDS
// in a pooled cloud, and a pool column. A subcloud lives in its owner's
// pool, whose tags and keepers this peer does not see: each pool counts
// its members' leases by subcloud and owner (a GROUP BY run in every pool,
// agreed by most of its gateways, as any statement), so that another
// pool's row has its name, owner and size; its target, repairs, expiry
// and members are its owner's to tell, in its pool. This pool's rows stay
// the detailed ones of showSubclouds. A pool that does not answer makes
// the answer partial, naming it.
func (n *Node) otherPoolsSubclouds(ctx context.Context, show *query.Plan, res *answer.Answer, warning string, start time.Time) (*answer.Answer, error) {
	mine := n.rt.pools.cfg.Pool
	res.Columns = append(res.Columns, answer.Column{Name: "pool", Kind: query.KindString})
	for i := range res.Rows {
		res.Rows[i] = append(res.Rows[i], query.Str(mine))
	}
	// Gossip: every member tells its own lease, which the tags that other
	// peers see show only a gossip interval or more later.
	a, err := n.askEveryPool(ctx, "SELECT pool, subcloud, subcloud_owner, COUNT(*) FROM peers WHERE reserved GROUP BY pool, subcloud, subcloud_owner", true, start)
	if a == nil {
		return nil, err
	}
	// A subcloud's members may be in any pool: a lease names its owner
	// by name in the owner's pool and as pool/name in the others
	// (relay.go). Each subcloud is one row, in its owner's pool, its
	// members counted in every pool.
	type sub struct{ pool, name, owner string }
	counts := map[sub]float64{}
	for _, row := range a.Rows {
		if len(row) != 4 || row[1].Kind != query.KindString {
			continue
		}
		k := sub{row[0].Str, row[1].Str, row[2].Str}
		if pool, owner, remote := remoteName(k.owner); remote {
			k.pool, k.owner = pool, owner
		}
		if k.pool == mine {
			continue // this pool's are above, from their owners, who know every member
		}
		counts[k] += row[3].Num
	}
	var others [][]query.Value
	for k, c := range counts {
		others = append(others, []query.Value{query.Str(k.name), query.Str(k.owner), query.Null, query.Num(query.KindCount, c), query.Null, query.Null, query.Null, query.Null,
			query.Null, query.Str("its members' leases, counted in every pool"), query.Str(k.pool)})
	}
	slices.SortFunc(others, func(x, y []query.Value) int {
		return cmp.Or(cmp.Compare(x[10].Str, y[10].Str), cmp.Compare(x[0].Str, y[0].Str), cmp.Compare(x[1].Str, y[1].Str))
	})
	res.Rows = append(res.Rows, others...)
	// Not from tags alone: the other pools' rows are a gossip run's, and
	// the answer says how it went in each pool (meta.pools).
	meta := a.Meta
	meta.FromTags, meta.PlanHash = false, show.Hash()
	meta.Warning = joinReason(warning, joinReason("other pools' subclouds are their members' leases counted by subcloud and owner in every pool (each pool's gateways agreeing); "+
		"their target, repairs, expiry and members are their owners' to tell, in their pool (SELECT ... FROM SUBCLOUD name asks them from here)", a.Meta.Warning))
	res.Meta = meta
	return res, err
}

// askEveryPool runs a statement of a SHOW's own in every pool (pools.go),
// as SHOW POOLS and SHOW SUBCLOUDS do in a pooled cloud; gossip makes
// one that reads only tags a gossip run nonetheless (its pools' members
// tell it, rather than their gateways' member lists).
func (n *Node) askEveryPool(ctx context.Context, text string, gossip bool, start time.Time) (*answer.Answer, error) {
	plan, err := n.Compile(text)
	if err != nil {
		return nil, err
	}
	if gossip {
		plan = plan.Gossiped()
	}
	return n.askPools(ctx, plan, nil, start)
}

// showAttributes is SHOW ATTRIBUTES in a cloud of pools: the built-in
// attributes, and the tags of every pool, each with the pools whose
// members carry it (a pools column) — this peer's pool's from its member
// list, the others' as a majority of each pool's gateways name them
// (Plan.ListTags, reportBody.Tags, tagsByPool). A statement may read a
// tag only another pool has (Catalog.Open); before, this listed the
// asker's pool's tags alone, and said it was exact.
func (n *Node) showAttributes(ctx context.Context, show *query.Plan, start time.Time) (*answer.Answer, error) {
	plan, err := n.Compile("SELECT COUNT(*) FROM peers") // from the member lists
	if err != nil {
		return nil, err
	}
	plan.ListTags = true
	a, facts, err := n.askPoolsWhere(ctx, plan, nil, start)
	if a == nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// The pools were not asked (a pool whose gateways are still
		// joining the cloud pool answers busy): this agent's catalog
		// is there at once, as in a cloud of one pool — the shell greets
		// with it — partial, saying why.
		a = &answer.Answer{Meta: &answer.Meta{Status: StatusPartial, Peers: n.net.Size(), Elapsed: n.now().Sub(start).Seconds(),
			Reason: fmt.Sprintf("this pool's tags alone: the other pools were not asked (%v)", err)}}
		err = nil
	}
	mine := n.rt.pools.cfg.Pool
	own := n.Catalog()
	res := own.Describe()
	res.Columns = append(res.Columns, answer.Column{Name: "pools", Kind: answer.KindList})
	pools := map[string][]string{}
	for _, t := range tagNames(own) {
		pools[t] = []string{mine}
	}
	var rows [][]query.Value
	for _, row := range res.Rows {
		if _, tag := pools[row[0].Str]; !tag {
			rows = append(rows, append(row, query.Null)) // in every pool's catalog
		}
	}
	var more []string
	for pool, set := range facts.tags {
		if pool == mine {
			continue // its member list, above
		}
		for _, t := range set.names {
			pools[t] = append(pools[t], pool)
		}
		if set.more > 0 {
			more = append(more, fmt.Sprintf("pool %s: %d more tags than a report names (%d)", pool, set.more, maxPoolTags))
		}
	}
	names := slices.Sorted(maps.Keys(pools))
	var others []string
	for _, t := range names {
		if !slices.Contains(pools[t], mine) {
			others = append(others, t)
		}
	}
	n.rt.pools.noteTags(others, n.now()) // for completion (Words)
	for _, t := range names {
		slices.Sort(pools[t])
		rows = append(rows, []query.Value{query.Str(t), query.Str(query.KindString.String()), query.Str(query.OriginTag.String()), query.Str("Serf tag"), answer.List(pools[t])})
	}
	res.Rows = rows
	meta := a.Meta
	meta.PlanHash, meta.FromTags = show.Hash(), true
	if len(facts.tags) > 0 {
		meta.Warning = joinReason("other pools' tags are those a majority of each pool's gateways name, from their member lists", meta.Warning)
	}
	if len(more) > 0 {
		slices.Sort(more)
		meta.Status, meta.Converged = StatusPartial, false
		meta.Reason = joinReason(meta.Reason, strings.Join(more, "; "))
	}
	res.Meta = meta
	return res, err
}

// showPools lists the cloud's pools: each with its status, members and
// gateways, as a COUNT(*) run in every pool found them (pools.go); in a
// cloud of one pool, that pool, from the membership.
func (n *Node) showPools(ctx context.Context, show *query.Plan, start time.Time) (*answer.Answer, error) {
	col := func(name string, k query.Kind) answer.Column { return answer.Column{Name: name, Kind: k} }
	res := &answer.Answer{Columns: []answer.Column{col("pool", query.KindString), col("status", query.KindString),
		col("members", query.KindCount), col("gateways", answer.KindList), col("agreeing", query.KindCount)}}
	if !n.rt.pools.on() {
		res.Rows = [][]query.Value{{query.Str(""), query.Str(StatusExact), query.Num(query.KindCount, float64(n.net.Size())), query.Null, query.Null}}
		res.Meta = &answer.Meta{Status: StatusExact, Peers: n.net.Size(), Elapsed: n.now().Sub(start).Seconds(), FromTags: true, Converged: true,
			Warning: "the cloud is one pool (no --pool)", PlanHash: show.Hash()}
		return res, nil
	}
	a, err := n.askEveryPool(ctx, "SELECT COUNT(*) FROM peers", false, start) // the member lists
	if a == nil {
		return nil, err
	}
	for _, p := range a.Meta.Pools {
		res.Rows = append(res.Rows, []query.Value{query.Str(p.Pool), query.Str(p.Status), query.Num(query.KindCount, float64(p.Peers)),
			answer.List(p.GatewayNames), query.Num(query.KindCount, float64(p.Agreeing))})
	}
	res.Meta = a.Meta
	res.Meta.PlanHash = show.Hash() // the statement's, not the COUNT's that found the pools
	return res, err
}

// listedRecords are the records of recs, a member list of pool, that a
// FROM SUBCLOUD statement's owner lists as its members (Plan.Members:
// pool/name, the owner's own pool's by name), each shown holding the
// subcloud as that pool names its owner: the owner's word about its own
// subcloud, which its table holds at once, where the members' tags lag.
// A listed member not in the list is not live, and not counted.
func listedRecords(plan *query.Plan, pool string, recs []query.Record) []query.Record {
	ownerPool, _, _ := remoteName(plan.Owner)
	local := nameIn(plan.Owner, pool)
	listed := map[string]bool{}
	for _, m := range plan.Members {
		if p, name, remote := remoteName(m); remote && p == pool {
			listed[name] = true
		} else if !remote && pool == ownerPool {
			listed[m] = true
		}
	}
	var out []query.Record
	for _, r := range recs {
		if listed[r["node"].Str] {
			r = maps.Clone(r)
			r["reserved"], r[TagSubcloud], r[tagOwner] = query.Bool(true), query.Str(plan.Subcloud), query.Str(local)
			out = append(out, r)
		}
	}
	return out
}
