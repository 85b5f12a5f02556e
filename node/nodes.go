package node

import (
	"sort"
	"strconv"
	"time"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/node/network"
)

// known are the members the network knows: the live ones and, where it
// keeps them (overlay.Overlay until Serf reaps them, fakenet.Host), those
// that failed or left, with when this peer last knew each alive.
func (n *Node) known() []network.Known {
	if k, ok := n.net.(interface{ Known() []network.Known }); ok {
		return k.Known()
	}
	var out []network.Known
	for _, m := range n.net.Members() {
		out = append(out, network.Known{Member: m, Status: network.StatusAlive})
	}
	return out
}

// departed are the members the network knows that failed or left, or
// none where it keeps no states.
func (n *Node) departed() []network.Known {
	var out []network.Known
	for _, k := range n.known() {
		if k.Status != network.StatusAlive {
			out = append(out, k)
		}
	}
	return out
}

// Departed are the members the network still knows that failed or left
// (Serf keeps them until it reaps them), with when this peer last knew
// each alive; none where the network keeps no states.
func (n *Node) Departed() []api.Member {
	var out []api.Member
	for _, d := range n.departed() {
		out = append(out, n.departedMember(d))
	}
	return out
}

// departedMember is d as the API shows it, with when this peer last knew
// it alive.
func (n *Node) departedMember(d network.Known) api.Member {
	m := apiMember(d.Member, d.Status)
	if at, ok := n.lastSeen(d); ok {
		m.LastSeen = &at
	}
	return m
}

// lastSeen is when this peer last knew the departed member d alive, in
// UTC, as its observer recorded the member's up-times (the one record of
// them: reliability is computed from it); false if this peer never saw it
// alive.
func (n *Node) lastSeen(d network.Known) (time.Time, bool) {
	if at, ok := n.rt.observer.lastSeen(d.Name); ok {
		return at.UTC(), true
	}
	return time.Time{}, false
}

// apiMember is a member as the API shows it (/v1/members).
func apiMember(m network.Member, status string) api.Member {
	return api.Member{Name: m.Name, Addr: m.Addr, Exchange: m.Exchange, Tags: m.Tags, Status: status}
}

// withoutLease are a member's tags but those of its lease (a node's page
// shows the lease apart).
func withoutLease(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		switch k {
		case TagSubcloud, tagOwner, tagUntil, tagSince:
		default:
			out[k] = v
		}
	}
	return out
}

// NodeInfo is what this peer knows of the member name, for the console's
// node page (GET /v1/nodes/{name}, whose server adds the member's events,
// Events): its tags and status, the lease it holds, the subclouds it
// owns. It reads the membership and the owner role; no gossip. ok is
// false for a name the membership does not know (never seen, or reaped).
func (n *Node) NodeInfo(name string) (info api.Node, ok bool) {
	members := n.net.Members()
	var mem network.Member // the member as the membership shows it
	for _, m := range members {
		if m.Name == name {
			mem, ok = m, true
			info.Member = apiMember(m, "alive")
		}
	}
	if !ok {
		for _, d := range n.departed() {
			if d.Name == name {
				mem, ok = d.Member, true
				info.Member = n.departedMember(d)
			}
		}
	}
	if !ok {
		return info, false
	}
	info.Self = name == n.Name()
	info.Tags = withoutLease(info.Tags)
	if !mem.Key.IsZero() {
		info.Identity = mem.Key.Short()
	}
	if mem.Boot != 0 {
		info.Incarnation = strconv.FormatUint(mem.Boot, 16)
	}
	view := n.sc.leaseView(members)
	if info.Self {
		// This peer's own table, not its tags (which lag).
		if l, held := n.leases.current(); held {
			info.Lease = &api.Lease{Subcloud: l.Subcloud, Owner: l.Owner, Expires: timeOrNil(l.Expires), Since: timeOrNil(l.Since)}
		}
	} else if l, held := view[name]; held {
		info.Lease = &api.Lease{Subcloud: l.subcloud, Owner: l.owner, Expires: timeOrNil(time.Unix(l.until, 0)), Since: timeOrNil(time.UnixMilli(l.since))}
	}
	info.Owns = ownedBy(name, info.Self, view)
	return info, true
}

// ownedBy are the subclouds whose members' leases (view) are held for
// owner, by name.
func ownedBy(owner string, self bool, view map[string]leaseOf) []api.OwnedSubcloud {
	source := "members' tags"
	if self {
		source = "its owner's table"
	}
	byName := map[string]*api.OwnedSubcloud{}
	for member, l := range view {
		if l.owner != owner {
			continue
		}
		o := byName[l.subcloud]
		if o == nil {
			o = &api.OwnedSubcloud{Subcloud: l.subcloud, Source: source}
			byName[l.subcloud] = o
		}
		o.Members = append(o.Members, member)
		if exp := timeOrNil(time.Unix(l.until, 0)); exp != nil && (o.EarliestExpiry == nil || exp.Before(*o.EarliestExpiry)) {
			o.EarliestExpiry = exp
		}
	}
	out := make([]api.OwnedSubcloud, 0, len(byName))
	for _, o := range byName {
		sort.Strings(o.Members)
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subcloud < out[j].Subcloud })
	return out
}

// timeOrNil is t, or nil for a time not known (zero, or the Unix epoch a
// missing tag reads as).
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() || t.Unix() <= 0 {
		return nil
	}
	t = t.UTC()
	return &t
}
