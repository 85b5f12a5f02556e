package aggregate

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/peerq/peerq/internal/prefetch"
	"github.com/peerq/peerq/peer"
)

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
	// Bounds, if set, holds per component the largest magnitude a peer's
	// input can have (the catalog's bound on the attribute; 1 for a
	// count). A message whose estimates, flows or extremes exceed it by
	// more than averaging allows is refused (Stats.Rejected): values from
	// other peers are checked on receipt. 0 leaves a component unchecked.
	Bounds []float64
	// Rows is the most rows one peer contributes (InitRows): a table such
	// as leases gives a peer a row per lease it served. Bounds are per row;
	// a peer's input may reach Rows times them. 0 means 1.
	Rows int
	// ValidKey, if set, checks a GROUP BY key another peer sent (the
	// core cannot read keys; the binding can): a message with a key it
	// refuses, or whose hash does not match its key, is refused whole
	// (Stats.Rejected), so that a lying peer cannot leave the asker a
	// group it cannot read, or one no peer could be in.
	ValidKey func(key []byte) bool
	// ValidExtreme and ValidBucket, if set, check what another peer sent
	// for component comp beyond Bounds, as only the binding can (it knows
	// the catalog): a Min or Max extreme (its kind, its range, a string's
	// length), a Histogram bucket that carries mass (whether any input
	// within the component's range falls in it). A message with a value
	// either refuses is refused whole (Stats.Rejected). Both must not
	// block.
	ValidExtreme func(comp int, e Extreme) bool
	ValidBucket  func(comp, bucket int) bool
	// CheckSketches checks every register of a COUNT DISTINCT sketch
	// another peer sent against the ranks a hash can give: a message with
	// one above is refused (Stats.Rejected). It reads a kilobyte a sketch:
	// the runtime sets it, the simulator (whose sketches are all its own)
	// does not.
	CheckSketches bool
}

// slack is how far beyond the inputs' bound an estimate may stray: Flow
// Updating applies a reply computed from an older estimate, so estimates
// can overshoot the inputs' range for a while.
const slack = 4

// validVec reports whether every slot of v belongs to the query's shape —
// the origin slot, or an additive component (bucket 0) or histogram bucket
// (one ValidBucket accepts) — with a finite value within bounds. Estimates
// and flows have the same bound: a flow is half the difference of two
// estimates (Flow Updating), and push-pull sends its state as the flow.
func (n *Node) validVec(v *Vec) bool {
	for i, k := range v.Keys {
		x := v.Vals[i]
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
		if k == originSlot {
			if math.Abs(x) > slack {
				return false
			}
			continue
		}
		c, b := slotComp(k), slotBucket(k)
		if slotGroup(k) == 0 || c >= len(n.cfg.Spec.Comps) {
			return false
		}
		bound := 0.0
		switch n.cfg.Spec.Comps[c] {
		case Additive:
			if b != 0 {
				return false
			}
			if c < len(n.cfg.Spec.Bounds) {
				bound = n.cfg.Spec.Bounds[c]
			}
		case Histogram:
			if b < 0 || b > 4*histRange || n.cfg.Spec.ValidBucket != nil && !n.cfg.Spec.ValidBucket(c, b) {
				return false
			}
			bound = 1 // a share of the peers
		default:
			return false // extremes and sketches do not travel in vectors
		}
		bound *= float64(max(n.cfg.Spec.Rows, 1))
		if bound > 0 && math.Abs(x) > slack*bound {
			return false
		}
	}
	return true
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
	// an unanswered exchange on the same link before it moves on. It does
	// not give the link up: the responder may have applied its half of
	// the averaging, and only a message on that link (overwriting the
	// flows) makes the two sides agree again. So the exchange joins the
	// stuck ones, of which the initiator retries one a round, oldest
	// first, until a reply comes or the peer is removed as dead (at most
	// MaxStuck; beyond, the oldest is given up and counted).
	Retries int
	// FoldAfter is how many rounds a link stays after its last message. It
	// must exceed Retries + 1, so that a retry never finds its link gone,
	// and should exceed the rounds the failure detector needs, so that the
	// links to a peer that died can still be undone.
	FoldAfter int
	// FoldAnswered folds an initiator's link as soon as its reply
	// arrives, not FoldAfter rounds later: its flow is in the estimate and
	// nothing will be sent on it again (a responder's side stays, for the
	// initiator's retries). Only a driver that never removes peers
	// (RemovePeers) may set it, since a folded flow cannot be undone: the
	// simulator without crashes or churn, where it halves the links a
	// million peers hold and changes no estimate.
	FoldAnswered bool
	Rand         *rand.Rand
	Sampler      peer.Sampler
	// Buffers, if set, holds the message and scratch buffers, shared by
	// every Node given the same Buffers. Sharing saves memory when one
	// goroutine drives many Nodes (the simulator), and requires that each
	// message is delivered before any of those Nodes is called again.
	Buffers *Buffers
	// Excluded, if set, reports the peers left out of the query (lost
	// while it ran, RemovePeers): their messages are refused, and an
	// extreme they witnessed is never taken again. It must not block.
	Excluded func(peer.ID) bool
}

// Buffers are reusable message and scratch buffers.
type Buffers struct {
	req, rep Message
	retry    Message // a stuck exchange's request, sent in the same round as req
	scratch  Vec
	interned map[uint64][]uint64
}

// DefaultConfig returns the configuration peerq uses, for the given spec,
// random source and sampler.
func DefaultConfig(spec Spec, r *rand.Rand, s peer.Sampler) Config {
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
type Envelope = peer.Envelope[*Message]

// Stats counts what a Node did.
type Stats struct {
	Sent, Received int32
	Retries        int32 // requests sent again on the same link
	Stuck          int32 // exchanges left unanswered after Retries, retried later
	GaveUp         int32 // stuck exchanges abandoned (MaxStuck, push-pull): mass may be lost
	Stale          int32 // replies for links that were gone
	DroppedGroups  int32 // group keys refused because MaxGroups were tracked
	Rejected       int32 // messages of the wrong shape for this query
	FromExcluded   int32 // messages from peers left out of the query, ignored
}

// link is one exchange between two peers, seen from one side (Flow
// Updating). Links are kept by value: a peer holds about 2·FoldAfter
// (FoldAfter with Config.FoldAnswered).
type link struct {
	peer peer.ID
	id   uint32 // the initiator's exchange number, | initiatorBit on the initiator's side
	last int32  // round of the last message on the link
}

// initiatorBit marks a link id on the side that started the exchange.
// Exchange numbers stay below it (they wrap at 2^31).
const initiatorBit = 1 << 31

func linkID(seq uint32, initiator bool) uint32 {
	if initiator {
		return seq | initiatorBit
	}
	return seq
}

// exchange is the exchange this node started and awaits a reply on.
type exchange struct {
	active bool
	peer   peer.ID
	seq    uint32
	tries  int32
	pp     *ppState // push-pull only
}

// ppState is what a push-pull initiator remembers of its request.
type ppState struct {
	sent   Vec      // the state sent
	groups groupSet // the groups listed
}

// Node is one peer's instance of one query. It is not safe for concurrent
// use, and must not be copied once initialized (it points into itself).
//
// The fields a round touches come first, and the first storage of links,
// flows, groups and the outbox is inside the Node, so that a round reads
// one contiguous block of memory: with millions of peers, cache misses, not
// arithmetic, set the pace.
type Node struct {
	cfg     *Config
	round   int32
	oldest  int32 // no link is older than this round
	seq     uint32
	est     Vec // the estimate: input minus flows (FU), or the state (PP)
	links   []link
	slab    []float64
	pending exchange
	// stuck are Flow Updating exchanges unanswered after Retries, retried
	// one a round until answered (allocated only under loss).
	stuck  []exchange
	groups []groupKey // sorted by hash
	group0 uint64     // groups[0].hash, checked without touching groups
	buf    *Buffers
	out    []Envelope
	stats  Stats
	outArr [1]Envelope
	// groupArr is the first storage of groups: most queries have one.
	groupArr [1]groupKey

	// slab holds, under Flow Updating, the estimate's values and then each
	// link's flow to its peer: est.Vals is slab[0:d] and link i's flow is
	// slab[(i+1)·d:(i+2)·d], with d = len(est.Keys). Every slot a flow
	// touches is in the estimate (which is the input minus the flows), so
	// they can share its keys (interned across peers: Buffers.intern).
	linkArr [14]link
	slabArr [32]float64

	ext []Extreme // sorted by slot
	hll []hllSlot // sorted by slot
	// self witnesses this peer's own extremes, own (sorted by slot): a
	// slot whose extreme's witness is excluded falls back to own.
	self peer.ID
	own  []Extreme
}

type groupKey struct {
	hash uint64
	key  []byte
}

type hllSlot struct {
	slot uint64
	reg  []byte
}

// Extreme is a MIN or MAX value in a slot, and the peer whose value it
// is (its witness): if that peer is left out of the query, the extreme is
// dropped and found again among the others.
type Extreme struct {
	Slot    uint64
	IsStr   bool
	Num     float64
	Str     string
	Witness peer.ID
	// Node and Proof are the witness's name and its signature of the
	// extreme, opaque to the core (at most MaxKeyBytes and MaxProofBytes):
	// the driver signs its own (SignOwn) and checks others' with
	// Spec.ValidExtreme, so that an extreme is a value its witness
	// vouched for, and a peer can set one with its own value only.
	Node  string
	Proof []byte
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
//
// cfg is kept by reference, not copied, so that the many instances a
// simulator drives can share one; it must not change after New.
func New(cfg *Config, c Contribution) (*Node, error) {
	n := new(Node)
	if err := n.Init(cfg, c); err != nil {
		return nil, err
	}
	return n, nil
}

// Init is New in place, for a simulator that keeps its Nodes in one slice
// (which must then never move: a Node points into itself).
func (n *Node) Init(cfg *Config, c Contribution) error {
	rows := [1]Contribution{c}
	return n.InitRowsAs(cfg, 0, rows[:])
}

// InitAs is Init for the peer self: it witnesses its own extremes.
func (n *Node) InitAs(cfg *Config, self peer.ID, c Contribution) error {
	rows := [1]Contribution{c}
	return n.InitRowsAs(cfg, self, rows[:])
}

// InitRows prepares the Node of a peer that contributes several rows (at
// most Spec.Rows): their inputs add up per group, their extremes and
// sketches merge, as if each row were a peer of its own — so that the
// totals the originator reads (averages times the number of peers) are
// totals over the rows.
func (n *Node) InitRows(cfg *Config, rows []Contribution) error {
	return n.InitRowsAs(cfg, 0, rows)
}

// InitRowsAs is InitRows for the peer self.
func (n *Node) InitRowsAs(cfg *Config, self peer.ID, rows []Contribution) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if len(rows) > max(cfg.Spec.Rows, 1) {
		return fmt.Errorf("aggregate: %d rows, more than Spec.Rows %d", len(rows), max(cfg.Spec.Rows, 1))
	}
	for _, c := range rows {
		if c.Match && len(c.Inputs) != len(cfg.Spec.Comps) {
			return fmt.Errorf("aggregate: %d inputs for %d components", len(c.Inputs), len(cfg.Spec.Comps))
		}
	}
	*n = Node{cfg: cfg, buf: cfg.Buffers, self: self}
	n.out = n.outArr[:0]
	if n.buf == nil {
		n.buf = new(Buffers)
	}
	var base Vec
	if cfg.Originator {
		base.Keys, base.Vals = append(base.Keys, originSlot), append(base.Vals, 1)
	}
	var add Vec
	for _, c := range rows {
		if !c.Match {
			continue
		}
		g := GroupHash(c.Group)
		n.addGroup(g, c.Group)
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
				n.mergeExtreme(Extreme{Slot: slotKey(g, i, 0), IsStr: in.IsStr, Num: in.Num, Str: in.Str, Witness: self})
			case Distinct:
				reg := make([]byte, HLLRegisters)
				hllAdd(reg, in.Hash)
				n.mergeHLL(slotKey(g, i, 0), reg)
			}
		}
	}
	if len(add.Keys) > 0 {
		sortVec(&add)
		// Rows of one group land in the same slots: add them up.
		k := 0
		for i := range add.Keys {
			if k > 0 && add.Keys[k-1] == add.Keys[i] {
				add.Vals[k-1] += add.Vals[i]
				continue
			}
			add.Keys[k], add.Vals[k] = add.Keys[i], add.Vals[i]
			k++
		}
		add.Keys, add.Vals = add.Keys[:k], add.Vals[:k]
		axpy(&base, 1, &add)
	}
	n.est = base
	if len(n.ext) > 0 {
		n.own = append([]Extreme(nil), n.ext...)
	}
	if cfg.Scheme == FlowUpdating {
		d := len(base.Keys)
		n.slab = n.place(d, n.linkRoom(0)*d)
		copy(n.slab, base.Vals)
		n.est.Keys, n.est.Vals = n.buf.intern(base.Keys), n.slab[:d:d]
	}
	return nil
}

// ErrNotIncremental is a new contribution that a running instance cannot
// take in place (Reinput).
var ErrNotIncremental = errors.New("aggregate: the contribution changed more than additive inputs")

// Reinput changes this peer's contribution while the instance runs, as
// Flow Updating allows for dynamic inputs (Jesus, Baquero and Almeida,
// "Flow updating: Fault-tolerant aggregation for dynamic networks", JPDC
// 2015): the estimate is the input minus the flows, so a new input moves
// the estimate by the difference and later exchanges spread it. Under
// Push-Pull the difference is mass added to the state, which conserves
// the new total the same way.
//
// Only additive inputs of the same group may change. A peer that starts or
// stops matching, changes group or histogram bucket, or changes a MIN, MAX
// or COUNT DISTINCT input gets ErrNotIncremental: an extreme or a sketch
// cannot take back a value it has spread. A peer with several rows cannot
// reinput.
func (n *Node) Reinput(old, c Contribution) error {
	if max(n.cfg.Spec.Rows, 1) > 1 || old.Match != c.Match || string(old.Group) != string(c.Group) ||
		len(old.Inputs) != len(c.Inputs) {
		return ErrNotIncremental
	}
	if !c.Match {
		return nil
	}
	g := GroupHash(c.Group)
	type move struct {
		k int
		d float64
	}
	var moves []move // applied only once every input is checked
	for i, in := range c.Inputs {
		was := old.Inputs[i]
		if in.Present != was.Present {
			return ErrNotIncremental
		}
		if !in.Present {
			continue
		}
		switch n.cfg.Spec.Comps[i] {
		case Additive:
		case Histogram:
			if HistBucket(in.Num) != HistBucket(was.Num) {
				return ErrNotIncremental
			}
			continue
		default:
			if in != was {
				return ErrNotIncremental
			}
			continue
		}
		k := sort.Search(len(n.est.Keys), func(j int) bool { return n.est.Keys[j] >= slotKey(g, i, 0) })
		if k == len(n.est.Keys) || n.est.Keys[k] != slotKey(g, i, 0) {
			return ErrNotIncremental
		}
		moves = append(moves, move{k, in.Num - was.Num})
	}
	for _, m := range moves {
		n.est.Vals[m.k] += m.d
	}
	return nil
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
func (n *Node) Round() int { return int(n.round) }

// Stats returns the counters.
func (n *Node) Stats() Stats { return n.stats }

// Rejected is Stats().Rejected without copying the others: a driver reads
// it around every Step to tell a refused message (package run).
func (n *Node) Rejected() int32 { return n.stats.Rejected }

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
		if n.cfg.Scheme == FlowUpdating && int(p.tries) < n.cfg.Retries {
			if l := n.linkIndex(p.peer, linkID(p.seq, true)); l >= 0 {
				p.tries++
				n.links[l].last = n.round
				n.stats.Retries++
				n.send(p.peer, n.request(l))
				return
			}
		}
		if n.cfg.Scheme == FlowUpdating && n.linkIndex(p.peer, linkID(p.seq, true)) >= 0 {
			n.stick(*p)
		} else {
			n.stats.GaveUp++
		}
		p.active = false
	}
	n.retryStuck()
	to, ok := n.cfg.Sampler.Sample(n.cfg.Rand)
	if !ok {
		return
	}
	n.seq = (n.seq + 1) % initiatorBit
	n.pending.active, n.pending.peer, n.pending.seq, n.pending.tries = true, to, n.seq, 0
	if n.cfg.Scheme == PushPull {
		if n.pending.pp == nil {
			n.pending.pp = new(ppState)
		}
		set(&n.pending.pp.sent, 1, &n.est)
		req := n.request(-1)
		n.pending.pp.groups = append(n.pending.pp.groups[:0], req.Groups...)
		n.send(to, req)
		return
	}
	n.send(to, n.request(n.newLink(to, linkID(n.seq, true))))
}

// MaxStuck bounds the stuck exchanges a peer keeps retrying.
const MaxStuck = 32

// stick keeps an unanswered exchange for later retries.
func (n *Node) stick(e exchange) {
	n.stats.Stuck++
	if len(n.stuck) == MaxStuck {
		n.stats.GaveUp++
		n.stuck = append(n.stuck[:0], n.stuck[1:]...)
	}
	n.stuck = append(n.stuck, e)
}

// retryStuck sends the oldest stuck exchange again, and puts it last.
func (n *Node) retryStuck() {
	for len(n.stuck) > 0 {
		e := n.stuck[0]
		n.stuck = append(n.stuck[:0], n.stuck[1:]...)
		l := n.linkIndex(e.peer, linkID(e.seq, true))
		if l < 0 {
			continue // folded or removed
		}
		n.links[l].last = n.round
		n.stats.Retries++
		n.send(e.peer, n.requestIn(&n.buf.retry, l, e.seq))
		n.stuck = append(n.stuck, e)
		return
	}
}

// isStuck reports whether link l is a stuck exchange's.
func (n *Node) isStuck(l *link) bool {
	for _, e := range n.stuck {
		if l.peer == e.peer && l.id == linkID(e.seq, true) {
			return true
		}
	}
	return false
}

// flow returns link i's flow, aligned with est.Keys.
func (n *Node) flow(i int) []float64 {
	d := len(n.est.Keys)
	return n.slab[(i+1)*d : (i+2)*d : (i+2)*d]
}

// newLink adds a link with a zero flow. The links and the slab start in
// the Node's own storage when they fit, and grow onto the heap as links
// come; when folds leave few enough, they come back (shrink), so that a
// peer's heap follows the links it holds now, not the most it ever held.
func (n *Node) newLink(peer peer.ID, id uint32) int {
	if n.links == nil {
		n.links = n.linkArr[:0]
	}
	n.links = append(n.links, link{peer: peer, id: id, last: n.round})
	for range n.est.Keys {
		n.slab = append(n.slab, 0)
	}
	n.est.Vals = n.slab[:len(n.est.Keys):len(n.est.Keys)] // the slab may have moved
	return len(n.links) - 1
}

// place returns storage for a slab of size floats: the Node's own when it
// fits, else the heap with room floats.
func (n *Node) place(size, room int) []float64 {
	if size <= len(n.slabArr) {
		return n.slabArr[:size]
	}
	return make([]float64, size, room)
}

// linkRoom is the rows (the estimate and a flow a link) a slab on the heap
// makes room for, with links links now: 2·FoldAfter+4 at first, about
// what a peer holds at once, but no more than maxLinkRoom.
func (n *Node) linkRoom(links int) int {
	return 1 + max(links, min(2*n.cfg.FoldAfter+4, maxLinkRoom))
}

// maxLinkRoom bounds the links a peer makes room for at first.
const maxLinkRoom = 64

// dropLink removes link i; the last link takes its place.
func (n *Node) dropLink(i int) {
	last := len(n.links) - 1
	if i != last {
		n.links[i] = n.links[last]
		copy(n.flow(i), n.flow(last))
	}
	n.links = n.links[:last]
	n.slab = n.slab[:(last+1)*len(n.est.Keys)]
}

// shrink moves the links and the slab back into the Node's own storage
// once they fit there again, so that the heap holds what a peer needs
// now rather than the most links it ever held: over a long run at a
// million peers, most peers once hold many more responder links than
// usual, and the difference is gigabytes.
func (n *Node) shrink() {
	if cap(n.links) > len(n.linkArr) && len(n.links) <= len(n.linkArr) {
		n.links = n.linkArr[:copy(n.linkArr[:], n.links)]
	}
	if cap(n.slab) > len(n.slabArr) && len(n.slab) <= len(n.slabArr) {
		d := len(n.est.Keys)
		n.slab = n.slabArr[:copy(n.slabArr[:], n.slab)]
		n.est.Vals = n.slab[:d:d]
	}
}

func (n *Node) linkIndex(peer peer.ID, id uint32) int {
	for i := range n.links {
		l := &n.links[i]
		if l.peer == peer && l.id == id {
			return i
		}
	}
	return -1
}

// ensure adds to the estimate, with value 0, the slots of v it lacks, and
// keeps every link's flow aligned with it.
func (n *Node) ensure(v *Vec) {
	missing := 0
	i := 0
	for _, k := range v.Keys {
		for i < len(n.est.Keys) && n.est.Keys[i] < k {
			i++
		}
		if i == len(n.est.Keys) || n.est.Keys[i] != k {
			missing++
		}
	}
	if missing == 0 {
		return
	}
	old := n.est.Keys
	keys := make([]uint64, 0, len(old)+missing)
	at := make([]int, 0, len(old)) // new index of each old slot
	i, j := 0, 0
	for i < len(old) || j < len(v.Keys) {
		switch {
		case j == len(v.Keys) || i < len(old) && old[i] < v.Keys[j]:
			at = append(at, len(keys))
			keys = append(keys, old[i])
			i++
		case i == len(old) || v.Keys[j] < old[i]:
			keys = append(keys, v.Keys[j])
			j++
		default:
			at = append(at, len(keys))
			keys = append(keys, old[i])
			i++
			j++
		}
	}
	d, nd := len(old), len(keys)
	size := (1 + len(n.links)) * nd
	var tmp [len(Node{}.slabArr)]float64
	var slab []float64
	inline := size <= len(tmp)
	if inline {
		slab = tmp[:size] // then copied into the Node's own storage
	} else {
		slab = make([]float64, size, n.linkRoom(cap(n.links))*nd)
	}
	for l := 0; l <= len(n.links); l++ { // the estimate, then each flow
		for i, x := range n.slab[l*d : (l+1)*d] {
			slab[l*nd+at[i]] = x
		}
	}
	if inline {
		slab = n.slabArr[:copy(n.slabArr[:], slab)]
	}
	n.slab = slab
	n.est.Keys, n.est.Vals = n.buf.intern(keys), slab[:nd:nd]
}

// maxInterned bounds the key sets Buffers shares.
const maxInterned = 4096

// intern returns a shared copy of keys: peers of one query mostly hold the
// same slots, and a simulator of millions of peers keeps one copy of each
// set, hot in the cache. Keys of the estimate are never written in place.
func (b *Buffers) intern(keys []uint64) []uint64 {
	h := uint64(len(keys))
	for _, k := range keys {
		h = (h ^ k) * 1099511628211
	}
	if b.interned == nil {
		b.interned = make(map[uint64][]uint64)
	}
	if got, ok := b.interned[h]; ok && slices.Equal(got, keys) {
		return got
	}
	if len(b.interned) < maxInterned {
		b.interned[h] = keys
	}
	return keys
}

// sparseFlow writes link l's flow into dst as a sparse vector, leaving out
// zeros.
func (n *Node) sparseFlow(dst *Vec, l int) {
	dst.Keys, dst.Vals = dst.Keys[:0], dst.Vals[:0]
	for i, x := range n.flow(l) {
		if x != 0 {
			dst.Keys = append(dst.Keys, n.est.Keys[i])
			dst.Vals = append(dst.Vals, x)
		}
	}
}

// fold forgets links idle for FoldAfter rounds. Their flows stay in the
// estimate: neither side will send on them again. Until then, a link to a
// peer that dies can be undone (RemovePeers), so FoldAfter should also
// exceed the rounds the failure detector needs.
func (n *Node) fold() {
	// Skip the scan until the oldest link can be due (oldest is a lower
	// bound: links refreshed since keep it conservative).
	if int(n.round-n.oldest) < n.cfg.FoldAfter {
		return
	}
	n.oldest = n.round
	for i := 0; i < len(n.links); {
		l := &n.links[i]
		pending := n.pending.active && l.peer == n.pending.peer && l.id == linkID(n.pending.seq, true)
		if !pending && int(n.round-l.last) >= n.cfg.FoldAfter && (len(n.stuck) == 0 || !n.isStuck(l)) {
			n.dropLink(i)
			continue
		}
		n.oldest = min(n.oldest, l.last)
		i++
	}
	n.shrink()
}

// request builds a request on link l (Flow Updating) or of the pending
// exchange (push-pull, l < 0).
func (n *Node) request(l int) *Message { return n.requestIn(&n.buf.req, l, n.pending.seq) }

// requestIn builds the request of exchange seq on link l in buffer m.
func (n *Node) requestIn(m *Message, l int, seq uint32) *Message {
	m = n.message(m, Request, seq)
	if n.cfg.Scheme == PushPull {
		set(&m.Flow, 1, &n.pending.pp.sent)
		m.Est.Keys, m.Est.Vals = m.Est.Keys[:0], m.Est.Vals[:0]
	} else {
		m.Seq = n.links[l].id &^ initiatorBit
		n.sparseFlow(&m.Flow, l)
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

func (n *Node) send(to peer.ID, m *Message) {
	n.stats.Sent++
	n.out = append(n.out, Envelope{To: to, Msg: m})
}

// Step handles a message from peer `from`. The message is not retained.
func (n *Node) Step(from peer.ID, m *Message) {
	n.out = n.out[:0]
	if n.cfg.Excluded != nil && n.cfg.Excluded(from) {
		n.stats.FromExcluded++ // it was left out: its mass must not come back
		return
	}
	if m.Scheme != n.cfg.Scheme || (m.Kind != Request && m.Kind != Reply) {
		n.stats.Rejected++
		return
	}
	if !n.validVec(&m.Est) || !n.validVec(&m.Flow) || !n.validExtremes(m) || !n.validSketches(m) || !n.validGroups(m) {
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
		if m.Seq >= initiatorBit {
			n.stats.Rejected++
			return
		}
		l := n.linkIndex(from, linkID(m.Seq, false))
		if l >= 0 {
			// A retry of an exchange this peer has answered: its reply was
			// lost, or is late. Averaging again would leave two replies
			// with different flows in flight, and the initiator could keep
			// the older one: answer with the flow already applied, so that
			// whichever reply arrives, both sides agree.
			n.links[l].last = n.round
			reply := n.message(&n.buf.rep, Reply, m.Seq)
			n.sparseFlow(&reply.Flow, l)
			reply.Est.Keys, reply.Est.Vals = reply.Est.Keys[:0], reply.Est.Vals[:0]
			n.send(from, reply)
			return
		}
		l = n.newLink(from, linkID(m.Seq, false))
		n.links[l].last = n.round
		est := n.tracked(&m.Est, both)
		n.ensure(est)
		n.overwrite(l, flow)
		f := n.flow(l)
		// Average with the sender's estimate on the groups both track:
		// move half the difference onto the link's flow.
		j := 0
		for i, k := range n.est.Keys {
			if g := slotGroup(k); g != 0 && !(n.hasGroup(g) && both.has(g)) {
				continue
			}
			for j < len(est.Keys) && est.Keys[j] < k {
				j++
			}
			theirs := 0.0
			if j < len(est.Keys) && est.Keys[j] == k {
				theirs = est.Vals[j]
			}
			d := 0.5*n.est.Vals[i] - 0.5*theirs
			f[i] += d
			n.est.Vals[i] -= d
		}
		reply := n.message(&n.buf.rep, Reply, m.Seq)
		n.sparseFlow(&reply.Flow, l)
		reply.Est.Keys, reply.Est.Vals = reply.Est.Keys[:0], reply.Est.Vals[:0]
		n.send(from, reply)

	case m.Kind == Reply && n.cfg.Scheme == FlowUpdating:
		i := n.linkIndex(from, linkID(m.Seq, true))
		if i < 0 {
			n.stats.Stale++
			return
		}
		n.links[i].last = n.round
		n.overwrite(i, flow)
		if p := &n.pending; p.active && p.peer == from && p.seq == m.Seq {
			p.active = false
		}
		for k, e := range n.stuck {
			if e.peer == from && e.seq == m.Seq {
				n.stuck = append(n.stuck[:k], n.stuck[k+1:]...)
				break
			}
		}
		if n.cfg.FoldAnswered {
			n.dropLink(i) // answered: nothing will come on it again
		}

	case m.Kind == Request: // push-pull
		reply := n.message(&n.buf.rep, Reply, m.Seq)
		mine := n.tracked(&n.est, both)
		set(&reply.Flow, 1, mine)
		reply.Est.Keys, reply.Est.Vals = reply.Est.Keys[:0], reply.Est.Vals[:0]
		// est += (x_i - est)/2 on the groups both track
		scratch := &n.buf.scratch
		set(scratch, 0.5, flow)
		axpy(scratch, -0.5, &reply.Flow)
		axpy(&n.est, 1, scratch)
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
		scratch := &n.buf.scratch
		set(scratch, 0.5, restrict(flow, p.pp.groups))
		axpy(scratch, -0.5, restrict(&p.pp.sent, both))
		axpy(&n.est, 1, scratch)
		p.active = false
	}
}

// overwrite sets the link's flow to the negated flow of the other side and
// moves the estimate by the difference.
func (n *Node) overwrite(l int, theirs *Vec) {
	n.ensure(theirs)
	f := n.flow(l)
	j := 0
	for i, k := range n.est.Keys {
		t := 0.0
		for j < len(theirs.Keys) && theirs.Keys[j] < k {
			j++
		}
		if j < len(theirs.Keys) && theirs.Keys[j] == k {
			t = theirs.Vals[j]
		}
		// est += old flow; flow = -theirs; est -= new flow
		n.est.Vals[i] += f[i] + t
		f[i] = -t
	}
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
	if len(n.groups) == 1 {
		return n.group0 == g
	}
	i := sort.Search(len(n.groups), func(i int) bool { return n.groups[i].hash >= g })
	return i < len(n.groups) && n.groups[i].hash == g
}

// addGroup tracks the peer's own group g (key: its encoded key), up to
// MaxGroups.
func (n *Node) addGroup(g uint64, key []byte) {
	if n.hasGroup(g) {
		return
	}
	if len(n.groups) >= n.cfg.Spec.MaxGroups {
		n.stats.DroppedGroups++
		return
	}
	i := sort.Search(len(n.groups), func(i int) bool { return n.groups[i].hash >= g })
	if n.groups == nil {
		n.groups = n.groupArr[:0]
	}
	n.groups = append(n.groups, groupKey{})
	copy(n.groups[i+1:], n.groups[i:])
	n.groups[i] = groupKey{hash: g, key: append([]byte(nil), key...)}
	n.group0 = n.groups[0].hash
}

// validGroups checks the group keys a message lists that this peer does
// not track yet (a tracked one's key is never replaced, and checking only
// new ones keeps the check off the common path): each hashes to its hash
// and, with Spec.ValidKey, is a key of this query.
func (n *Node) validGroups(m *Message) bool {
	for _, g := range m.Groups {
		if n.hasGroup(g.Hash) {
			continue
		}
		if GroupHash(g.Key) != g.Hash || n.cfg.Spec.ValidKey != nil && !n.cfg.Spec.ValidKey(g.Key) {
			return false
		}
	}
	return true
}

// learn merges the idempotent parts of a message: group keys, extremes,
// sketches.
func (n *Node) learn(m *Message) {
	for _, g := range m.Groups {
		n.addGroup(g.Hash, g.Key)
	}
	for _, e := range m.Ext {
		if n.validSlot(e.Slot, Min, Max) && (n.cfg.Excluded == nil || !n.cfg.Excluded(e.Witness)) {
			n.mergeExtreme(e)
		}
	}
	for _, h := range m.HLL {
		if n.validSlot(h.Slot, Distinct, Distinct) && len(h.Regs) == HLLRegisters {
			n.mergeHLL(h.Slot, h.Regs)
		}
	}
}

// SignOwn lets sign set the witness's name and proof of each extreme
// this peer witnesses (its own, from Init): the driver signs them once,
// before the first round.
func (n *Node) SignOwn(sign func(e *Extreme)) {
	for i := range n.own {
		sign(&n.own[i])
	}
	for i := range n.ext {
		if n.ext[i].Witness == n.self {
			sign(&n.ext[i])
		}
	}
}

// validExtremes checks a message's extremes against the components'
// bounds and, with Spec.ValidExtreme, their kind and range.
func (n *Node) validExtremes(m *Message) bool {
	for _, e := range m.Ext {
		c := slotComp(e.Slot)
		if c >= len(n.cfg.Spec.Comps) || n.cfg.Spec.Comps[c] != Min && n.cfg.Spec.Comps[c] != Max {
			continue // not merged (learn)
		}
		if !e.IsStr && c < len(n.cfg.Spec.Bounds) && n.cfg.Spec.Bounds[c] != 0 &&
			(math.IsNaN(e.Num) || math.Abs(e.Num) > n.cfg.Spec.Bounds[c]) {
			return false
		}
		if n.cfg.Spec.ValidExtreme != nil && !n.cfg.Spec.ValidExtreme(c, e) {
			return false
		}
	}
	return true
}

// validSketches checks, with Spec.CheckSketches, that a message's
// distinct-count sketches hold ranks a hash can give: a register above
// would count more values than there are hashes.
func (n *Node) validSketches(m *Message) bool {
	if !n.cfg.Spec.CheckSketches {
		return true
	}
	for _, h := range m.HLL {
		if len(h.Regs) != HLLRegisters {
			return false
		}
		for _, r := range h.Regs {
			if r > hllMaxRank {
				return false
			}
		}
	}
	return true
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
func (n *Node) RemovePeer(p peer.ID) {
	n.RemovePeers(func(q peer.ID) bool { return q == p })
}

// RemovePeers is RemovePeer for every peer dead reports true for: its
// flows are undone (Flow Updating restores the conservation of mass over
// the others: Jesus, Baquero and Almeida, "Fault-tolerant aggregation by
// flow updating", 2009), and an extreme it witnessed falls back to this
// peer's own (the others' come back by gossip, as they would at the
// start).
func (n *Node) RemovePeers(dead func(peer.ID) bool) {
	for i := 0; i < len(n.ext); {
		if e := n.ext[i]; e.Witness != n.self && dead(e.Witness) {
			j := sort.Search(len(n.own), func(j int) bool { return n.own[j].Slot >= e.Slot })
			if j < len(n.own) && n.own[j].Slot == e.Slot {
				n.ext[i] = n.own[j]
				i++
				continue
			}
			n.ext = append(n.ext[:i], n.ext[i+1:]...)
			continue
		}
		i++
	}
	for i := 0; i < len(n.links); {
		if dead(n.links[i].peer) {
			for j, x := range n.flow(i) {
				n.est.Vals[j] += x
			}
			n.dropLink(i)
			continue
		}
		i++
	}
	n.shrink()
	if n.pending.active && dead(n.pending.peer) {
		n.pending.active = false
	}
	kept := n.stuck[:0]
	for _, e := range n.stuck {
		if !dead(e.peer) {
			kept = append(kept, e)
		}
	}
	n.stuck = kept
}

// Mean returns the average over all peers of an additive component of the
// group whose key hashes to g (GroupHash), without allocating.
func (n *Node) Mean(g uint64, comp int) float64 { return n.est.Get(slotKey(g, comp, 0)) }

// Origin returns the average of the originator's unit mass: 1/Origin
// estimates the number of peers.
func (n *Node) Origin() float64 { return n.est.Get(originSlot) }

// Mass returns the sum of every slot of the estimate; conservation tests
// sum it over all peers.
func (n *Node) Mass() float64 { return n.est.sum() }

// Links is the number of live links (memory use).
func (n *Node) Links() int { return len(n.links) }

// HeadBytes is the part of a Node that every round reads whatever its
// links: the fields before its links' and flows' first storage. A driver
// of millions of Nodes prefetches it first, and the rest (PrefetchRest)
// once it has arrived.
const HeadBytes = unsafe.Offsetof(Node{}.linkArr)

// PrefetchRest asks the CPU for the rest of what a round of this Node
// reads beyond HeadBytes: the links and flows in use (of the 14 links and
// 32 flow values kept inline, a Node with a few links uses a few lines)
// and its extremes' and sketches' headers. It reads the head (the links'
// and flows' lengths), so a driver calls it once the head is in cache:
// fetching only the lines in use is what lets more Nodes' misses overlap.
func (n *Node) PrefetchRest() {
	if len(n.links) > 0 {
		prefetch.Range(unsafe.Pointer(&n.links[0]), uintptr(len(n.links))*unsafe.Sizeof(link{}))
	}
	if len(n.slab) > 0 {
		prefetch.Range(unsafe.Pointer(&n.slab[0]), uintptr(len(n.slab))*unsafe.Sizeof(n.slab[0]))
	}
	prefetch.Range(unsafe.Pointer(&n.ext), unsafe.Sizeof(*n)-unsafe.Offsetof(n.ext))
}

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
	// Distinct holds, per Distinct component, the HyperLogLog estimate;
	// Registers its registers (aliasing the node's: read them before the
	// node's next step), which a union of populations merges by maximum.
	Distinct  []float64
	Registers [][]byte
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
			Registers: make([][]byte, len(comps)),
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
				ge.Registers[slotComp(h.slot)] = h.reg
			}
		}
		e.Groups = append(e.Groups, ge)
	}
	sort.Slice(e.Groups, func(i, j int) bool { return strings.Compare(string(e.Groups[i].Key), string(e.Groups[j].Key)) < 0 })
	return e
}

// inOrder is a copy of buckets in the order of their values, and their
// total mass, masses that averaging drove slightly negative counting as
// zero.
func inOrder(buckets []Bucket) ([]Bucket, float64) {
	bs := append([]Bucket(nil), buckets...)
	sort.Slice(bs, func(i, j int) bool { return histOrder(bs[i].Index) < histOrder(bs[j].Index) })
	total := 0.0
	for _, b := range bs {
		total += max(b.Mass, 0)
	}
	return bs, total
}

// TrimmedMean reads the mean of a histogram's values without the share p
// of the mass at each end (0 ≤ p < 0.5), the cut falling inside a bucket
// taking that bucket in part: the trimmed mean that GoTrim computes by
// gossip, here from the averaged histogram, so that each value is within
// HistAlpha of its bucket's. Masses that averaging drove slightly negative
// count as zero.
func TrimmedMean(buckets []Bucket, p float64) (float64, bool) {
	bs, total := inOrder(buckets)
	lo, hi := p*total, (1-p)*total
	if total <= 0 || hi <= lo {
		return 0, false
	}
	acc, sum := 0.0, 0.0
	for _, b := range bs {
		m := max(b.Mass, 0)
		if w := min(acc+m, hi) - max(acc, lo); w > 0 {
			sum += w * HistValue(b.Index)
		}
		acc += m
	}
	return sum / (hi - lo), true
}

// Quantile reads the p-quantile (0 ≤ p ≤ 1) of a histogram: the value of the
// bucket where the cumulative mass first reaches p of the total. Masses that
// averaging drove slightly negative count as zero.
func Quantile(buckets []Bucket, p float64) (float64, bool) {
	bs, total := inOrder(buckets)
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
