package topk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/peerq/peerq/peer"
)

// Entry is one peer's candidate. Entries are immutable once made.
type Entry struct {
	Node string // the peer's name: identity and tie-break
	Key  []byte // order-preserving encoding of the ORDER BY values: smaller is better
	Row  []byte // the projected values, opaque to the core
	// Proof is the node's signature over the entry (opaque to the core,
	// at most MaxProofBytes): the driver signs its own and checks others'
	// in ValidEntry, so that no peer can write an entry for another.
	Proof []byte
	// checked: the entry passed Config.ValidEntry. Entries are never
	// modified and every peer of a query checks them alike, so one that
	// passed is not checked again: the simulator hands one entry from
	// peer to peer, and checking it at each (decoding its row and key)
	// made a top-k's round 20 times the allocations.
	checked bool
}

// Less orders entries: by key, then by node name.
func Less(a, b *Entry) bool {
	if c := bytes.Compare(a.Key, b.Key); c != 0 {
		return c < 0
	}
	return a.Node < b.Node
}

// Config configures one peer's instance of one top-k query.
type Config struct {
	K int
	// Reserve is how many entries beyond K each list keeps, to backfill
	// when peers in the top die.
	Reserve int
	// StableRounds is how many rounds without a change in the first
	// StableK entries (0: K) make a list final. A RESERVE n looks for K = n
	// plus slack candidates, but only its first n need to hold still: the
	// slack is there to backfill refusals.
	StableRounds int
	StableK      int
	// Alive reports whether a node is alive as far as this peer knows
	// (Serf's membership, the simulator's failure detector). Entries of
	// nodes it calls dead are refused and pruned. Nil means all are alive.
	// It must be cheap and must not block.
	Alive func(node string) bool
	// ValidEntry, if set, checks an entry another peer sent before it
	// enters the list: its node, the key it is ordered by and its row (the
	// core reads none of them but the key's bytes; the binding can). A
	// message with an entry it refuses changes nothing: not the list, not
	// the filter, and it gets no reply (Stats.Rejected), so that a lying
	// peer can neither leave the asker a list it cannot read nor rank
	// itself by a value no peer could have; the error says why (Refused).
	// Only entries that would enter the list are checked: reading every
	// entry of every message doubled the simulator's time. It must not
	// block.
	ValidEntry func(e *Entry) error
	// Self is this peer's name (read by New only; NewAs takes it apart),
	// and CoverageBits (a multiple of 64, at most MaxCoverageBits; 0 for
	// none) the size of the coverage filter that says which peers a list
	// has heard from (coverage.go). Every peer of one query must use the
	// same size.
	Self         string
	CoverageBits int
	// Origin marks the asker, whose received bytes are the ones that
	// count: its requests always carry its list (so that replies are
	// deltas) and ask for no filter while its top still changes. (The
	// runtime also keeps the other peers from pulling from it.) It asks
	// for filters once its top has not changed for SeenAfter rounds: the
	// runtime's rule waits that long anyway.
	Origin    bool
	SeenAfter int
	Rand      *rand.Rand
	Sampler   peer.Sampler
}

// DefaultConfig returns the configuration peerq uses for k.
func DefaultConfig(k int, r *rand.Rand, s peer.Sampler) Config {
	return Config{K: k, Reserve: max(k/4, 4), StableRounds: 5, SeenAfter: 2, Rand: r, Sampler: s}
}

// Envelope is a message and where to send it.
type Envelope = peer.Envelope[*Message]

// MsgKind is the kind of a message.
type MsgKind uint8

// The kinds of message.
const (
	Request MsgKind = iota + 1
	Reply
)

// Message carries a candidate list, best first, and the coverage filter
// of the peers it has absorbed (nil when the query keeps none) — or, in a
// request from a peer whose list has not changed since its last request,
// only the Digest of its list and filter: a partner that holds the same
// answers with nothing, one that does not with its full list. A reply
// carries only what the requester lacks: the entries not in its list, the
// filter if it differs. A converged pair exchanges a few bytes.
//
// A reply after a full request carries only the entries that would enter
// the requester's list (those it lacks, better than its last when its
// list is full) and only the filter's words that add to the requester's
// (Sparse: the words not sent are zero, which the OR merge ignores). A
// request with NoSeen asks for no filter at all: the asker pulls filters
// only once its list holds still.
type Message struct {
	Kind    MsgKind
	Digest  uint64
	NoSeen  bool
	Sparse  bool
	Entries []*Entry
	Seen    []uint64
	// list is the sender's whole list as the message was made, for a
	// receiver in the same process (the simulator): one whose merge
	// yields exactly these entries keeps this slice instead of a copy of
	// it (lists are never modified, so peers may share them). Converged
	// peers hold the same list, and a copy each was half of a forging
	// top-k's heap at 10^5 simulated peers. It is not on the wire: a
	// decoded message has none, and merges as before.
	list []*Entry
}

// Stats counts what a Node did.
type Stats struct {
	Sent, Received int
	Refused        int // entries of dead nodes refused
	Rejected       int // malformed messages (unsorted lists, a filter of another size, an entry ValidEntry refuses)
}

// Node is one peer's instance of one top-k query. It is not safe for
// concurrent use.
type Node struct {
	// cfg is shared by the peers of one query in one process (NewAs) and
	// never modified: a copy each was ~110 bytes a peer.
	cfg  *Config
	list []*Entry // best first, at most K+Reserve; replaced, never modified
	own  *Entry   // this peer's entry, offered again after a prune
	seen []uint64 // coverage filter; replaced, never modified in place
	// version counts changes of the list or the filter; sent is the
	// version the last request carried in full.
	version, sent int
	digest        uint64 // of version digestOf
	digestOf      int
	round         int
	lastChange    int
	out           []Envelope
	stats         Stats
	// refused is the entry Config.ValidEntry refused in the last Step,
	// and why (Refused).
	refused    *Entry
	refusedWhy error
}

// New returns a peer's instance; own is its entry, or nil when it does not
// pass the filter.
func New(cfg Config, own *Entry) (*Node, error) { return NewAs(&cfg, cfg.Self, own) }

// NewAs is New for a configuration the peers of a query share (the
// simulator's million): the Node keeps cfg, which must not change after,
// rather than a copy of it; self, the peer's name, stands for cfg.Self,
// which a shared configuration cannot hold.
func NewAs(cfg *Config, self string, own *Entry) (*Node, error) {
	switch {
	case cfg.Rand == nil || cfg.Sampler == nil:
		return nil, errors.New("topk: Config needs Rand and Sampler")
	case cfg.K < 1 || cfg.Reserve < 0 || cfg.StableRounds < 1 || cfg.StableK < 0 || cfg.StableK > cfg.K:
		return nil, fmt.Errorf("topk: bad Config K=%d Reserve=%d StableRounds=%d StableK=%d", cfg.K, cfg.Reserve, cfg.StableRounds, cfg.StableK)
	case cfg.CoverageBits < 0 || cfg.CoverageBits%64 != 0 || cfg.CoverageBits > MaxCoverageBits || cfg.CoverageBits > 0 && self == "":
		return nil, fmt.Errorf("topk: bad coverage of %d bits (Self %q)", cfg.CoverageBits, self)
	}
	n := &Node{cfg: cfg, own: own, version: 1} // its own entry is news
	if cfg.CoverageBits > 0 {
		n.seen = make([]uint64, cfg.CoverageBits/64)
		coverageAdd(n.seen, self)
	}
	if own != nil {
		n.list = []*Entry{own}
	}
	return n, nil
}

// Tick runs one round: send the list to a random peer.
func (n *Node) Tick() {
	n.round++
	p, ok := n.cfg.Sampler.Sample(n.cfg.Rand)
	if !ok {
		return
	}
	n.stats.Sent++
	if n.version == n.sent && !n.cfg.Origin {
		// Nothing new since the last request: the digest is enough.
		n.out = append(n.out, Envelope{To: p, Msg: &Message{Kind: Request, Digest: n.Digest(), list: n.list}})
		return
	}
	n.sent = n.version
	// The list is never modified in place, so the message may share it.
	noSeen := n.cfg.Origin && n.round-n.lastChange < n.cfg.SeenAfter
	n.out = append(n.out, Envelope{To: p, Msg: &Message{Kind: Request, Entries: n.list, Seen: n.seen, NoSeen: noSeen, list: n.list}})
}

// Digest is a hash (FNV-1a) of the list's names and keys and of the
// filter, computed once per version of them (versions start at 1).
func (n *Node) Digest() uint64 {
	if n.digestOf == n.version {
		return n.digest
	}
	// Hashed in place: every full request carries its digest and every
	// peer that answers one compares its own, and a buffer of the list
	// and the filter made these half of a top-k's allocations.
	h := uint64(fnvOffset)
	var num [binary.MaxVarintLen64]byte
	for _, e := range n.list {
		h = fnv1a(h, binary.PutUvarint(num[:], uint64(len(e.Node))), num[:])
		h = fnv1a(h, len(e.Node), e.Node)
		h = fnv1a(h, binary.PutUvarint(num[:], uint64(len(e.Key))), num[:])
		h = fnv1a(h, len(e.Key), e.Key)
	}
	for _, w := range n.seen {
		binary.LittleEndian.PutUint64(num[:], w)
		h = fnv1a(h, 8, num[:])
	}
	n.digest, n.digestOf = max(h, 1), n.version // 0 means "no digest"
	return n.digest
}

// FNV-1a, 64 bits (hash/fnv's, without its allocation).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnv1a hashes the first n bytes of b into h.
func fnv1a[B string | []byte](h uint64, n int, b B) uint64 {
	for i := 0; i < n; i++ {
		h ^= uint64(b[i])
		h *= fnvPrime
	}
	return h
}

// reply answers a request: with nothing when the digests agree, with
// what the requester lacks after a full request, with everything after a
// digest that differs.
func (n *Node) reply(to peer.ID, m *Message) {
	n.stats.Sent++
	r := &Message{Kind: Reply, list: n.list}
	switch {
	case m.Digest != 0 && m.Digest == n.Digest():
	case m.Digest != 0:
		r.Entries, r.Seen = n.list, n.seen
	default:
		// Both lists are in order: one walk finds the entries the
		// requester lacks. A full list drops whatever is worse than its
		// last, so those are not sent.
		theirs := m.Entries
		var worst *Entry
		if len(theirs) >= n.cfg.K+n.cfg.Reserve {
			worst = theirs[len(theirs)-1]
		}
		for _, e := range n.list {
			if worst != nil && !Less(e, worst) {
				break
			}
			for len(theirs) > 0 && Less(theirs[0], e) {
				theirs = theirs[1:]
			}
			if len(theirs) > 0 && theirs[0].Node == e.Node && bytes.Equal(theirs[0].Key, e.Key) {
				continue
			}
			r.Entries = append(r.Entries, e)
		}
		if !m.NoSeen {
			r.Seen, r.Sparse = filterNews(n.seen, m.Seen)
		}
	}
	n.out = append(n.out, Envelope{To: to, Msg: r})
}

// filterNews returns what of mine adds to theirs: nothing when it adds
// nothing, else the words that add bits, sparse, or all of mine when
// that is smaller or theirs is of another size.
func filterNews(mine, theirs []uint64) ([]uint64, bool) {
	if len(mine) == 0 {
		return nil, false
	}
	if len(theirs) != len(mine) {
		return mine, false
	}
	var news []uint64
	count := 0
	for i, w := range mine {
		if w&^theirs[i] != 0 {
			if news == nil {
				news = make([]uint64, len(mine))
			}
			news[i] = w
			count++
		}
	}
	switch {
	case count == 0:
		return nil, false
	case count*9 >= len(mine)*8:
		return mine, false
	}
	return news, true
}

// stableK is how many leading entries must hold still.
func (n *Node) stableK() int {
	if n.cfg.StableK > 0 {
		return n.cfg.StableK
	}
	return n.cfg.K
}

// Outbox returns the messages to send and forgets them.
func (n *Node) Outbox() []Envelope {
	out := n.out
	n.out = nil
	return out
}

// Step handles a message from peer `from`: merge its list, and answer a
// request with the merged list.
func (n *Node) Step(from peer.ID, m *Message) {
	n.refused, n.refusedWhy = nil, nil
	if m.Kind != Request && m.Kind != Reply || !sorted(m.Entries) || len(m.Seen) != 0 && len(m.Seen) != len(n.seen) {
		n.stats.Rejected++
		return
	}
	if !n.merge(m.Entries, m.list) {
		n.stats.Rejected++
		return
	}
	n.stats.Received++
	n.mergeCoverage(m.Seen)
	if m.Kind == Request {
		n.reply(from, m)
	}
}

// Sort puts entries in the order of a message's list (Less).
func Sort(es []*Entry) {
	slices.SortFunc(es, func(a, b *Entry) int {
		if Less(a, b) {
			return -1
		}
		if Less(b, a) {
			return 1
		}
		return 0
	})
}

func sorted(es []*Entry) bool {
	for i := 1; i < len(es); i++ {
		if es[i] == nil || es[i-1] == nil || !Less(es[i-1], es[i]) {
			return false
		}
	}
	return len(es) == 0 || es[0] != nil
}

// merge keeps the best K+Reserve of the union of the list and theirs,
// without duplicates or dead nodes. It allocates only when the list
// changes, and not even then when the union is whole, the sender's list
// (Message.list): the list then becomes that slice, shared, as it does
// when nothing changes and whole holds the same entries (share).
// It reports false, changing nothing, when Config.ValidEntry refuses an
// entry of theirs that would enter the list.
func (n *Node) merge(theirs, whole []*Entry) bool {
	limit := n.cfg.K + n.cfg.Reserve
	// First pass: does the union differ from the list?
	changed, topChanged := false, false
	i, j, out := 0, 0, 0
	for out < limit {
		e, fromMine := n.pick(theirs, &i, &j)
		if e == nil {
			break
		}
		if !fromMine {
			changed = true
			if out < n.stableK() {
				topChanged = true
			}
			break
		}
		out++
	}
	if !changed {
		n.share(whole)
		return true
	}
	// Second pass: the union, checked; merged stays nil while it is a
	// prefix of whole, and copies that prefix when it leaves it.
	var merged []*Entry
	i, j, out = 0, 0, 0
	for ; out < limit; out++ {
		e, fromMine := n.pick(theirs, &i, &j)
		if e == nil {
			break
		}
		if !fromMine && e != n.own && n.cfg.ValidEntry != nil && !e.checked {
			if err := n.cfg.ValidEntry(e); err != nil {
				n.refused, n.refusedWhy = e, err
				return false
			}
			e.checked = true
		}
		if merged == nil {
			if out < len(whole) && whole[out] == e {
				continue
			}
			merged = append(make([]*Entry, 0, limit), whole[:out]...)
		}
		merged = append(merged, e)
	}
	if merged == nil {
		merged = whole[:out:out] // all of it, or its first out entries
	}
	n.list = merged
	n.version++
	if topChanged {
		n.lastChange = n.round
	}
	return true
}

// share makes whole, the sender's list, this peer's when the two hold the
// same entries: one slice then serves both, and converged peers come to
// hold a few lists between them rather than one each. A list shared
// already costs one comparison.
func (n *Node) share(whole []*Entry) {
	if len(whole) != len(n.list) || len(whole) == 0 || &whole[0] == &n.list[0] {
		return
	}
	for i, e := range whole {
		if n.list[i] != e {
			return
		}
	}
	n.list = whole
}

// pick returns the next entry of the union in order, skipping duplicates and
// dead nodes, and whether it came from this node's own list.
func (n *Node) pick(theirs []*Entry, i, j *int) (*Entry, bool) {
	for {
		var e *Entry
		mine := false
		switch {
		case *i < len(n.list) && (*j >= len(theirs) || !Less(theirs[*j], n.list[*i])):
			e, mine = n.list[*i], true
			*i++
			// The same entry in both lists: take it once.
			if *j < len(theirs) && theirs[*j].Node == e.Node && bytes.Equal(theirs[*j].Key, e.Key) {
				*j++
			}
		case *j < len(theirs):
			e = theirs[*j]
			*j++
			if n.cfg.Alive != nil && !n.cfg.Alive(e.Node) {
				n.stats.Refused++
				continue
			}
		default:
			return nil, false
		}
		return e, mine
	}
}

// Prune drops the entries of nodes Config.Alive now calls dead; call it
// when the membership loses peers. The peer then offers its own entry again:
// with places freed at the top, it may now belong there, even if it had
// fallen out of every list, so the answer stays exact whatever the reserve.
func (n *Node) Prune() {
	if n.cfg.Alive == nil {
		return
	}
	defer func() {
		if n.own != nil {
			n.merge([]*Entry{n.own}, nil)
		}
	}()
	var kept []*Entry
	for i, e := range n.list {
		if !n.cfg.Alive(e.Node) {
			if kept == nil {
				kept = append(make([]*Entry, 0, len(n.list)), n.list[:i]...)
			}
			if i < n.stableK() {
				n.lastChange = n.round
			}
			continue
		}
		if kept != nil {
			kept = append(kept, e)
		}
	}
	if kept != nil {
		n.list = kept
		n.version++
	}
}

// Decode reads a message to this peer (DecodeKnown with its list).
func (n *Node) Decode(b []byte) (*Message, error) { return DecodeKnown(b, n.list) }

// Top returns the best K entries known, best first.
func (n *Node) Top() []*Entry {
	if len(n.list) > n.cfg.K {
		return n.list[:n.cfg.K]
	}
	return n.list
}

// Refused is the entry Config.ValidEntry refused in the last Step, for
// which the whole message was refused, and ValidEntry's error; nil, nil
// when it refused none. A driver may judge that entry's node by it
// (run.Instance.Implausible) without checking it again.
func (n *Node) Refused() (*Entry, error) { return n.refused, n.refusedWhy }

// Unchanged is how many rounds the top K has not changed for.
func (n *Node) Unchanged() int { return n.round - n.lastChange }

// Stable reports whether the top K has not changed for StableRounds rounds.
func (n *Node) Stable() bool { return n.round-n.lastChange >= n.cfg.StableRounds }

// Round is the number of Ticks so far.
func (n *Node) Round() int { return n.round }

// Stats returns the counters.
func (n *Node) Stats() Stats { return n.stats }

// Rejected is Stats().Rejected without copying the others: a driver reads
// it around every Step to tell a refused message (package run).
func (n *Node) Rejected() int { return n.stats.Rejected }
