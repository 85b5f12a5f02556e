package aggregate

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// PeerID names a peer to the core; the caller maps it to an address.
type PeerID uint64

// Sampler picks a uniformly random live peer other than the caller. It must
// not block; ok is false when there is no other peer.
type Sampler interface {
	Sample(r *rand.Rand) (p PeerID, ok bool)
}

// Scheme is the averaging scheme.
type Scheme uint8

// The schemes. Every peer of one query must use the same.
const (
	// FlowUpdating tolerates loss: a lost message only delays (default).
	FlowUpdating Scheme = iota + 1
	// PushPull is plain push-pull averaging: a lost reply creates or
	// destroys mass. Kept as the baseline the default is measured against.
	PushPull
)

func (s Scheme) String() string {
	switch s {
	case FlowUpdating:
		return "flow-updating"
	case PushPull:
		return "push-pull"
	}
	return fmt.Sprintf("scheme(%d)", s)
}

// CompKind is how a component combines across peers.
type CompKind uint8

// The kinds of component.
const (
	Additive  CompKind = iota + 1 // averaged: counts, sums, sums of squares
	Histogram                     // averaged log-bucket histogram: quantiles
	Min                           // extremal propagation
	Max                           // extremal propagation
	Distinct                      // HyperLogLog registers merged by maximum
)

// Spec is the shape of a query's state, the same on every peer.
type Spec struct {
	Comps []CompKind
	// MaxGroups bounds the groups a peer tracks; groups beyond it do not
	// spread through this peer and are counted in Stats.DroppedGroups.
	MaxGroups int
}

// Input is one peer's value for one component. Present false is NULL: the
// peer adds nothing to that component.
type Input struct {
	Present bool
	Num     float64 // Additive, Histogram, numeric Min/Max
	Str     string  // string Min/Max
	IsStr   bool
	Hash    uint64 // Distinct: a hash of the value (Hash64)
}

// Contribution is what a peer puts into a query: nothing when it does not
// match the filter, else its group key and one Input per component.
type Contribution struct {
	Match  bool
	Group  []byte // the encoded GROUP BY key; empty when not grouped
	Inputs []Input
}

// Config configures one peer's instance of one query.
type Config struct {
	Spec       Spec
	Scheme     Scheme
	Originator bool
	// Retries is how many further rounds a Flow Updating initiator retries
	// an unanswered exchange on the same link before it gives up on it.
	Retries int
	// FoldAfter is how many rounds a link stays after its last message. It
	// must exceed Retries + 1, so that a retry never finds its link gone.
	FoldAfter int
	Rand      *rand.Rand
	Sampler   Sampler
}

// DefaultConfig returns the configuration peerq uses, for the given spec,
// random source and sampler.
func DefaultConfig(spec Spec, r *rand.Rand, s Sampler) Config {
	return Config{Spec: spec, Scheme: FlowUpdating, Retries: 2, FoldAfter: 5, Rand: r, Sampler: s}
}

func (c *Config) validate() error {
	switch {
	case c.Rand == nil || c.Sampler == nil:
		return errors.New("aggregate: Config needs Rand and Sampler")
	case c.Scheme != FlowUpdating && c.Scheme != PushPull:
		return fmt.Errorf("aggregate: unknown scheme %d", c.Scheme)
	case len(c.Spec.Comps) > MaxComps:
		return fmt.Errorf("aggregate: %d components, more than %d", len(c.Spec.Comps), MaxComps)
	case c.Spec.MaxGroups < 1:
		return errors.New("aggregate: Spec.MaxGroups must be at least 1")
	case c.Retries < 0 || c.FoldAfter <= c.Retries+1:
		return fmt.Errorf("aggregate: FoldAfter %d must exceed Retries %d + 1", c.FoldAfter, c.Retries)
	}
	return nil
}

// Envelope is a message and where to send it.
type Envelope struct {
	To  PeerID
	Msg *Message
}

// Stats counts what a Node did.
type Stats struct {
	Sent, Received int
	Retries        int // requests sent again on the same link
	GaveUp         int // exchanges abandoned after Retries
	Stale          int // replies for links that were gone
	DroppedGroups  int // group keys refused because MaxGroups were tracked
	Rejected       int // messages of the wrong shape for this query
}

// link is one exchange between two peers, seen from one side (Flow
// Updating). Links are kept by value: a peer holds about 2·FoldAfter.
type link struct {
	peer      PeerID
	seq       uint32
	initiator bool
	last      int32 // round of the last message on the link
	flow      Vec   // this side's flow to the peer
}

// exchange is the exchange this node started and awaits a reply on.
type exchange struct {
	active bool
	peer   PeerID
	seq    uint32
	tries  int
	sent   Vec      // push-pull: the state sent in the request
	groups groupSet // push-pull: the groups the request listed
}

// Node is one peer's instance of one query. It is not safe for concurrent
// use.
type Node struct {
	cfg   Config
	round int
	seq   uint32

	est     Vec // the estimate: input minus flows (FU), or the state (PP)
	links   []link
	pending exchange

	groups []groupKey // sorted by hash
	ext    []Extreme  // sorted by slot
	hll    []hllSlot  // sorted by slot

	scratch Vec
	// Messages are built in reusable buffers: one for requests, one for
	// replies. A message is valid until the next call on the Node.
	reqBuf, repBuf Message
	out            []Envelope
	stats          Stats
}

type groupKey struct {
	hash uint64
	key  []byte
}

type hllSlot struct {
	slot uint64
	reg  []byte
}

// Extreme is a MIN or MAX value in a slot.
type Extreme struct {
	Slot  uint64
	IsStr bool
	Num   float64
	Str   string
}

func (e Extreme) less(o Extreme) bool {
	if e.IsStr != o.IsStr {
		return !e.IsStr // numbers before strings; the checker keeps them apart
	}
	if e.IsStr {
		return e.Str < o.Str
	}
	return e.Num < o.Num
}

// New returns a peer's instance of a query with the peer's contribution.
func New(cfg Config, c Contribution) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if c.Match && len(c.Inputs) != len(cfg.Spec.Comps) {
		return nil, fmt.Errorf("aggregate: %d inputs for %d components", len(c.Inputs), len(cfg.Spec.Comps))
	}
	n := &Node{cfg: cfg}
	var base Vec
	if cfg.Originator {
		base.Keys, base.Vals = append(base.Keys, originSlot), append(base.Vals, 1)
	}
	if c.Match {
		g := GroupHash(c.Group)
		n.groups = []groupKey{{hash: g, key: append([]byte(nil), c.Group...)}}
		var add Vec
		for i, in := range c.Inputs {
			if !in.Present {
				continue
			}
			switch cfg.Spec.Comps[i] {
			case Additive:
				add.Keys, add.Vals = append(add.Keys, slotKey(g, i, 0)), append(add.Vals, in.Num)
			case Histogram:
				add.Keys, add.Vals = append(add.Keys, slotKey(g, i, HistBucket(in.Num))), append(add.Vals, 1)
			case Min, Max:
				n.mergeExtreme(Extreme{Slot: slotKey(g, i, 0), IsStr: in.IsStr, Num: in.Num, Str: in.Str})
			case Distinct:
				reg := make([]byte, HLLRegisters)
				hllAdd(reg, in.Hash)
				n.mergeHLL(slotKey(g, i, 0), reg)
			}
		}
		sortVec(&add)
		axpy(&base, 1, &add)
	}
	n.est = base
	return n, nil
}

func sortVec(v *Vec) {
	sort.Sort(byKey{v})
}

type byKey struct{ v *Vec }

func (b byKey) Len() int           { return len(b.v.Keys) }
func (b byKey) Less(i, j int) bool { return b.v.Keys[i] < b.v.Keys[j] }
func (b byKey) Swap(i, j int) {
	b.v.Keys[i], b.v.Keys[j] = b.v.Keys[j], b.v.Keys[i]
	b.v.Vals[i], b.v.Vals[j] = b.v.Vals[j], b.v.Vals[i]
}

// Round is the number of Ticks so far.
func (n *Node) Round() int { return n.round }

// Stats returns the counters.
func (n *Node) Stats() Stats { return n.stats }

// Outbox returns the messages to send and forgets them. The envelopes and
// messages are valid until the next call on the Node: encode or deliver
// them before.
func (n *Node) Outbox() []Envelope {
	out := n.out
	n.out = n.out[:0]
	return out
}

// Tick runs one round: fold idle links, then start an exchange, or retry the
// unanswered one.
func (n *Node) Tick() {
	n.out = n.out[:0]
	n.round++
	n.fold()
	if p := &n.pending; p.active {
		if n.cfg.Scheme == FlowUpdating && p.tries < n.cfg.Retries {
			if l := n.findLink(p.peer, p.seq, true); l != nil {
				p.tries++
				l.last = int32(n.round)
				n.stats.Retries++
				n.send(p.peer, n.request(l))
				return
			}
		}
		n.stats.GaveUp++
		p.active = false
	}
	peer, ok := n.cfg.Sampler.Sample(n.cfg.Rand)
	if !ok {
		return
	}
	n.seq++
	n.pending.active, n.pending.peer, n.pending.seq, n.pending.tries = true, peer, n.seq, 0
	if n.cfg.Scheme == PushPull {
		set(&n.pending.sent, 1, &n.est)
		req := n.request(nil)
		n.pending.groups = append(n.pending.groups[:0], req.Groups...)
		n.send(peer, req)
		return
	}
	n.links = append(n.links, link{peer: peer, seq: n.seq, initiator: true, last: int32(n.round)})
	n.send(peer, n.request(&n.links[len(n.links)-1]))
}

// fold forgets links idle for FoldAfter rounds. Their flows stay in the
// estimate: the peer at the other end will not send on them again.
func (n *Node) fold() {
	keep := 0
	for i := range n.links {
		l := &n.links[i]
		pending := n.pending.active && l.initiator && l.peer == n.pending.peer && l.seq == n.pending.seq
		if n.round-int(l.last) < n.cfg.FoldAfter || pending {
			n.links[keep], n.links[i] = n.links[i], n.links[keep]
			keep++
		}
	}
	n.links = n.links[:keep]
}

// request builds a request on link l (Flow Updating) or of the pending
// exchange (push-pull).
func (n *Node) request(l *link) *Message {
	m := n.message(&n.reqBuf, Request, n.pending.seq)
	if n.cfg.Scheme == PushPull {
		set(&m.Flow, 1, &n.pending.sent)
		m.Est.Keys, m.Est.Vals = m.Est.Keys[:0], m.Est.Vals[:0]
	} else {
		m.Seq = l.seq
		set(&m.Flow, 1, &l.flow)
		set(&m.Est, 1, &n.est)
	}
	return m
}

// message starts a message in buffer m with this node's idempotent state:
// group keys, extremes and sketches.
func (n *Node) message(m *Message, kind MsgKind, seq uint32) *Message {
	m.Kind, m.Scheme, m.Seq = kind, n.cfg.Scheme, seq
	m.Groups = m.Groups[:0]
	for _, g := range n.groups {
		m.Groups = append(m.Groups, GroupKey{Hash: g.hash, Key: g.key})
	}
	m.Ext = append(m.Ext[:0], n.ext...)
	m.HLL = m.HLL[:0]
	for _, h := range n.hll {
		m.HLL = append(m.HLL, HLLRegs{Slot: h.slot, Regs: h.reg})
	}
	return m
}

func (n *Node) send(to PeerID, m *Message) {
	n.stats.Sent++
	n.out = append(n.out, Envelope{To: to, Msg: m})
}

// Step handles a message from peer `from`. The message is not retained.
func (n *Node) Step(from PeerID, m *Message) {
	n.out = n.out[:0]
	if m.Scheme != n.cfg.Scheme || (m.Kind != Request && m.Kind != Reply) {
		n.stats.Rejected++
		return
	}
	n.stats.Received++
	n.learn(m)
	// Only the groups both sides track are exchanged: mass in a group the
	// other side does not track would have nowhere to go.
	both := groupSet(m.Groups)
	flow := n.tracked(&m.Flow, both)
	switch {
	case m.Kind == Request && n.cfg.Scheme == FlowUpdating:
		l := n.findLink(from, m.Seq, false)
		if l == nil {
			n.links = append(n.links, link{peer: from, seq: m.Seq})
			l = &n.links[len(n.links)-1]
		}
		l.last = int32(n.round)
		n.overwrite(l, flow)
		// Average with the sender's estimate: move half the difference
		// onto the link's flow.
		est := n.tracked(&m.Est, both)
		set(&n.scratch, 0.5, n.tracked(&n.est, both))
		axpy(&n.scratch, -0.5, est)
		axpy(&l.flow, 1, &n.scratch)
		axpy(&n.est, -1, &n.scratch)
		reply := n.message(&n.repBuf, Reply, m.Seq)
		set(&reply.Flow, 1, &l.flow)
		reply.Est.Keys, reply.Est.Vals = reply.Est.Keys[:0], reply.Est.Vals[:0]
		n.send(from, reply)

	case m.Kind == Reply && n.cfg.Scheme == FlowUpdating:
		l := n.findLink(from, m.Seq, true)
		if l == nil {
			n.stats.Stale++
			return
		}
		l.last = int32(n.round)
		n.overwrite(l, flow)
		if p := &n.pending; p.active && p.peer == from && p.seq == m.Seq {
			p.active = false
		}

	case m.Kind == Request: // push-pull
		reply := n.message(&n.repBuf, Reply, m.Seq)
		mine := n.tracked(&n.est, both)
		set(&reply.Flow, 1, mine)
		reply.Est.Keys, reply.Est.Vals = reply.Est.Keys[:0], reply.Est.Vals[:0]
		// est += (x_i - est)/2 on the groups both track
		set(&n.scratch, 0.5, flow)
		axpy(&n.scratch, -0.5, &reply.Flow)
		axpy(&n.est, 1, &n.scratch)
		n.send(from, reply)

	default: // push-pull reply
		p := &n.pending
		if !p.active || p.peer != from || p.seq != m.Seq {
			n.stats.Stale++
			return
		}
		// est += (x_j - sent)/2: a delta, so that exchanges this node
		// served in the meantime are kept. The responder averaged only the
		// groups it tracks among those the request listed.
		set(&n.scratch, 0.5, restrict(flow, p.groups))
		axpy(&n.scratch, -0.5, restrict(&p.sent, both))
		axpy(&n.est, 1, &n.scratch)
		p.active = false
	}
}

// overwrite sets the link's flow to the negated flow of the other side and
// moves the estimate by the difference.
func (n *Node) overwrite(l *link, theirs *Vec) {
	axpy(&n.est, 1, &l.flow)
	set(&l.flow, -1, theirs)
	axpy(&n.est, -1, &l.flow)
}

func (n *Node) findLink(peer PeerID, seq uint32, initiator bool) *link {
	for i := range n.links {
		l := &n.links[i]
		if l.peer == peer && l.seq == seq && l.initiator == initiator {
			return l
		}
	}
	return nil
}

// groupSet is the set of groups a message lists.
type groupSet []GroupKey

func (s groupSet) has(g uint64) bool {
	for _, x := range s {
		if x.Hash == g {
			return true
		}
	}
	return false
}

// tracked returns v restricted to the slots of groups this node tracks and
// the other side listed (and the origin slot). It returns v itself when
// nothing is dropped.
func (n *Node) tracked(v *Vec, other groupSet) *Vec {
	return filterVec(v, func(g uint64) bool { return n.hasGroup(g) && other.has(g) })
}

// restrict returns v restricted to the groups of s (and the origin slot).
func restrict(v *Vec, s groupSet) *Vec {
	return filterVec(v, s.has)
}

func filterVec(v *Vec, keep func(g uint64) bool) *Vec {
	ok := true
	last := ^uint64(0)
	for _, k := range v.Keys {
		if g := slotGroup(k); g != 0 && g != last {
			if !keep(g) {
				ok = false
				break
			}
			last = g
		}
	}
	if ok {
		return v
	}
	c := v.clone()
	c.filter(func(k uint64) bool { g := slotGroup(k); return g == 0 || keep(g) })
	return &c
}

func (n *Node) hasGroup(g uint64) bool {
	i := sort.Search(len(n.groups), func(i int) bool { return n.groups[i].hash >= g })
	return i < len(n.groups) && n.groups[i].hash == g
}

// learn merges the idempotent parts of a message: group keys, extremes,
// sketches.
func (n *Node) learn(m *Message) {
	for _, g := range m.Groups {
		if n.hasGroup(g.Hash) {
			continue
		}
		if len(n.groups) >= n.cfg.Spec.MaxGroups {
			n.stats.DroppedGroups++
			continue
		}
		i := sort.Search(len(n.groups), func(i int) bool { return n.groups[i].hash >= g.Hash })
		n.groups = append(n.groups, groupKey{})
		copy(n.groups[i+1:], n.groups[i:])
		n.groups[i] = groupKey{hash: g.Hash, key: append([]byte(nil), g.Key...)}
	}
	for _, e := range m.Ext {
		if n.validSlot(e.Slot, Min, Max) {
			n.mergeExtreme(e)
		}
	}
	for _, h := range m.HLL {
		if n.validSlot(h.Slot, Distinct, Distinct) && len(h.Regs) == HLLRegisters {
			n.mergeHLL(h.Slot, h.Regs)
		}
	}
}

// validSlot reports whether slot belongs to a tracked group and to a
// component of one of the given kinds.
func (n *Node) validSlot(slot uint64, a, b CompKind) bool {
	c := slotComp(slot)
	if c >= len(n.cfg.Spec.Comps) || slotBucket(slot) != 0 || !n.hasGroup(slotGroup(slot)) {
		return false
	}
	k := n.cfg.Spec.Comps[c]
	return k == a || k == b
}

func (n *Node) mergeExtreme(e Extreme) {
	i := sort.Search(len(n.ext), func(i int) bool { return n.ext[i].Slot >= e.Slot })
	if i < len(n.ext) && n.ext[i].Slot == e.Slot {
		cur := n.ext[i]
		if n.cfg.Spec.Comps[slotComp(e.Slot)] == Min && e.less(cur) ||
			n.cfg.Spec.Comps[slotComp(e.Slot)] == Max && cur.less(e) {
			n.ext[i] = e
		}
		return
	}
	n.ext = append(n.ext, Extreme{})
	copy(n.ext[i+1:], n.ext[i:])
	n.ext[i] = e
}

func (n *Node) mergeHLL(slot uint64, reg []byte) {
	i := sort.Search(len(n.hll), func(i int) bool { return n.hll[i].slot >= slot })
	if i < len(n.hll) && n.hll[i].slot == slot {
		hllMerge(n.hll[i].reg, reg)
		return
	}
	n.hll = append(n.hll, hllSlot{})
	copy(n.hll[i+1:], n.hll[i:])
	n.hll[i] = hllSlot{slot: slot, reg: append([]byte(nil), reg...)}
}

// RemovePeer forgets the links to a peer that died, undoing their flows: the
// mass it exchanged on them leaves with it. Links already folded stay.
func (n *Node) RemovePeer(p PeerID) {
	keep := 0
	for i := range n.links {
		if n.links[i].peer == p {
			axpy(&n.est, 1, &n.links[i].flow)
			continue
		}
		n.links[keep], n.links[i] = n.links[i], n.links[keep]
		keep++
	}
	n.links = n.links[:keep]
	if n.pending.peer == p {
		n.pending.active = false
	}
}

// Mass returns the sum of every slot of the estimate; conservation tests
// sum it over all peers.
func (n *Node) Mass() float64 { return n.est.sum() }

// Links is the number of live links (memory use).
func (n *Node) Links() int { return len(n.links) }

// Estimate is a peer's current view of the aggregate.
type Estimate struct {
	// Origin is the average of the originator's unit mass: 1/Origin
	// estimates the number of peers.
	Origin float64
	Groups []GroupEstimate
}

// GroupEstimate is the estimate for one group.
type GroupEstimate struct {
	Key []byte
	// Means holds, per component, the average over all peers of the
	// component's value: multiply by the number of peers for a total. For a
	// Histogram component it is the share of peers with a value.
	Means []float64
	// Buckets holds, per Histogram component, the averaged buckets.
	Buckets [][]Bucket
	// Ext holds, per Min or Max component, the extreme and whether any.
	Ext    []Extreme
	HasExt []bool
	// Distinct holds, per Distinct component, the HyperLogLog estimate.
	Distinct []float64
}

// Bucket is one histogram bucket: the bucket index and its average mass.
type Bucket struct {
	Index int
	Mass  float64
}

// Estimate returns the peer's current estimate, groups ordered by key.
func (n *Node) Estimate() Estimate {
	e := Estimate{Origin: n.est.Get(originSlot)}
	comps := n.cfg.Spec.Comps
	for _, g := range n.groups {
		ge := GroupEstimate{
			Key: g.key, Means: make([]float64, len(comps)), Buckets: make([][]Bucket, len(comps)),
			Ext: make([]Extreme, len(comps)), HasExt: make([]bool, len(comps)), Distinct: make([]float64, len(comps)),
		}
		lo := sort.Search(len(n.est.Keys), func(i int) bool { return n.est.Keys[i] >= slotKey(g.hash, 0, 0) })
		for i := lo; i < len(n.est.Keys) && slotGroup(n.est.Keys[i]) == g.hash; i++ {
			c := slotComp(n.est.Keys[i])
			if c >= len(comps) {
				continue
			}
			ge.Means[c] += n.est.Vals[i]
			if comps[c] == Histogram {
				ge.Buckets[c] = append(ge.Buckets[c], Bucket{Index: slotBucket(n.est.Keys[i]), Mass: n.est.Vals[i]})
			}
		}
		for _, x := range n.ext {
			if slotGroup(x.Slot) == g.hash {
				ge.Ext[slotComp(x.Slot)], ge.HasExt[slotComp(x.Slot)] = x, true
			}
		}
		for _, h := range n.hll {
			if slotGroup(h.slot) == g.hash {
				ge.Distinct[slotComp(h.slot)] = HLLEstimate(h.reg)
			}
		}
		e.Groups = append(e.Groups, ge)
	}
	sort.Slice(e.Groups, func(i, j int) bool { return strings.Compare(string(e.Groups[i].Key), string(e.Groups[j].Key)) < 0 })
	return e
}

// Quantile reads the p-quantile (0 ≤ p ≤ 1) of a histogram: the value of the
// bucket where the cumulative mass first reaches p of the total. Masses that
// averaging drove slightly negative count as zero.
func Quantile(buckets []Bucket, p float64) (float64, bool) {
	bs := append([]Bucket(nil), buckets...)
	sort.Slice(bs, func(i, j int) bool { return histOrder(bs[i].Index) < histOrder(bs[j].Index) })
	total := 0.0
	for _, b := range bs {
		total += max(b.Mass, 0)
	}
	if total <= 0 {
		return 0, false
	}
	// The rank rule of the nearest-rank percentile: the smallest value with
	// at least p of the mass at or below it.
	target := p * total
	acc := 0.0
	for _, b := range bs {
		acc += max(b.Mass, 0)
		if acc >= target-1e-12*total && b.Mass > 0 {
			return HistValue(b.Index), true
		}
	}
	return HistValue(bs[len(bs)-1].Index), true
}
