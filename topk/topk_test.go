package topk

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/peer/peertest"
)

// net is the cores' shared round-based test network (peertest), with the
// Nodes kept by their type and the names the failure detector declared
// dead.
type net struct {
	*peertest.Network[*Message]
	nodes []*Node
	dead  map[string]bool
	size  int // the peers a runtime-shaped network will have
}

func newNet(t testing.TB, entries []*Entry, k int, seed uint64) *net {
	t.Helper()
	nw := &net{Network: peertest.New[*Message](seed), dead: map[string]bool{}}
	for i, e := range entries {
		cfg := DefaultConfig(k, rand.New(rand.NewPCG(seed, uint64(i+1))), nw.Sampler(peer.ID(i)))
		cfg.Alive = func(node string) bool { return !nw.dead[node] }
		n, err := New(cfg, e)
		if err != nil {
			t.Fatal(err)
		}
		nw.nodes = append(nw.nodes, n)
		nw.Add(n)
	}
	return nw
}

func (nw *net) round() { nw.Round() }

// randomEntries gives peer i an entry with a key from a small alphabet (so
// that ties are common) or none (it does not match).
func randomEntries(r *rand.Rand, n int) []*Entry {
	es := make([]*Entry, n)
	for i := range es {
		if r.IntN(5) == 0 {
			continue
		}
		key := []byte{byte(r.IntN(20)), byte(r.IntN(3))}
		es[i] = &Entry{Node: fmt.Sprintf("n%05d", r.IntN(1_000_000)*n+i), Key: key, Row: []byte{byte(i)}}
	}
	return es
}

func exactTop(es []*Entry, k int) []*Entry {
	var all []*Entry
	for _, e := range es {
		if e != nil {
			all = append(all, e)
		}
	}
	sort.Slice(all, func(i, j int) bool { return Less(all[i], all[j]) })
	if len(all) > k {
		all = all[:k]
	}
	return all
}

// Property: once stable, every peer's top-k equals an exact sort of the
// same entries, for random entries, k and seeds.
func TestExactTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 42))
	for trial := 0; trial < 30; trial++ {
		n := 2 + r.IntN(300)
		k := 1 + r.IntN(60)
		es := randomEntries(r, n)
		want := exactTop(es, k)
		nw := newNet(t, es, k, uint64(trial))
		rounds := 0
		for ; rounds < 200; rounds++ {
			nw.round()
			stable := true
			for _, node := range nw.nodes {
				stable = stable && node.Stable()
			}
			if stable && rounds > 10 {
				break
			}
		}
		for i, node := range nw.nodes {
			if got := node.Top(); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("trial %d (n=%d k=%d), peer %d after %d rounds: top differs\n got %v\nwant %v", trial, n, k, i, rounds, names(got), names(want))
			}
		}
	}
}

func names(es []*Entry) []string {
	var s []string
	for _, e := range es {
		s = append(s, e.Node)
	}
	return s
}

// Loss only slows it down.
func TestLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	es := randomEntries(r, 500)
	want := exactTop(es, 20)
	nw := newNet(t, es, 20, 9)
	nw.Loss = 0.2
	for i := 0; i < 40; i++ {
		nw.round()
	}
	for i, node := range nw.nodes {
		if !reflect.DeepEqual(node.Top(), want) {
			t.Fatalf("peer %d: wrong top-20 at 20%% loss after 40 rounds", i)
		}
	}
}

// A dead node leaves every list of the peers that learned of it, and its
// place is backfilled from the reserve.
func TestRemoveNode(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	es := randomEntries(r, 300)
	nw := newNet(t, es, 10, 5)
	for i := 0; i < 5; i++ {
		nw.round()
	}
	top := exactTop(es, 10)
	deadName := top[0].Node
	for i, e := range es {
		if e != nil && e.Node == deadName {
			nw.Alive[i] = false
		}
	}
	nw.dead[deadName] = true
	for i, node := range nw.nodes {
		if nw.Alive[i] {
			node.Prune()
		}
	}
	for i := 0; i < 30; i++ {
		nw.round()
	}
	var rest []*Entry
	for _, e := range es {
		if e != nil && e.Node != deadName {
			rest = append(rest, e)
		}
	}
	want := exactTop(rest, 10)
	for i, node := range nw.nodes {
		if nw.Alive[i] && !reflect.DeepEqual(node.Top(), want) {
			t.Fatalf("peer %d: top after the death of %s\n got %v\nwant %v", i, deadName, names(node.Top()), names(want))
		}
	}
}

func TestMessageCodec(t *testing.T) {
	m := &Message{Kind: Reply, Entries: []*Entry{{Node: "a", Key: []byte{1}, Row: []byte("r"), Proof: []byte("sig")}, {Node: "b", Key: []byte{1}}}}
	b := m.Encode(nil)
	if len(b) != m.Size() {
		t.Fatalf("Size %d, encoded %d", m.Size(), len(b))
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Entries[0], m.Entries[0]) || got.Entries[1].Node != "b" || got.Kind != Reply {
		t.Errorf("round trip: %+v", got)
	}
	seen := make([]uint64, 16)
	seen[3], seen[15] = 5, 1<<63
	sp := &Message{Kind: Reply, Sparse: true, NoSeen: true, Digest: 77, Seen: seen}
	spb := sp.Encode(nil)
	if len(spb) != sp.Size() || len(spb) >= 16*8 {
		t.Fatalf("sparse: Size %d, encoded %d", sp.Size(), len(spb))
	}
	if got, err := Decode(spb); err != nil || !reflect.DeepEqual(got.Seen, seen) || !got.Sparse || !got.NoSeen || got.Digest != 77 {
		t.Fatalf("sparse round trip: %+v, %v", got, err)
	}
	head := []byte{WireVersion, byte(Reply), FlagSparse, 0, 0}
	unsorted := (&Message{Kind: Request, Entries: []*Entry{m.Entries[1], m.Entries[0]}}).Encode(nil)
	for name, bad := range map[string][]byte{
		"empty": nil, "version": {2, 1, 0}, "kind": {1, 7, 0}, "truncated": b[:len(b)-1],
		"trailing": append(append([]byte{}, b...), 0), "unsorted": unsorted, "count": {1, 1, 0xff, 0xff, 0x03},
		"flags":       {WireVersion, byte(Reply), 0x80, 0, 0, 0},
		"zero word":   append(append([]byte{}, head...), 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
		"past end":    append(append([]byte{}, head...), 4, 1, 4, 1, 0, 0, 0, 0, 0, 0, 0),
		"too large":   append(append([]byte{}, head...), 0xff, 0xff, 0x03),
		"dense short": {WireVersion, byte(Reply), 0, 0, 0, 4, 1, 2, 3},
	} {
		if _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	es := exactTop(randomEntries(r, 50), 10)
	f.Add((&Message{Kind: Request, Entries: es}).Encode(nil))
	f.Add((&Message{Kind: Reply}).Encode(nil))
	f.Add((&Message{Kind: Reply, Entries: []*Entry{{Node: "p", Key: []byte{2}, Row: []byte{1}, Proof: make([]byte, 64)}}}).Encode(nil))
	f.Add((&Message{Kind: Reply, Sparse: true, NoSeen: true, Digest: 9, Seen: []uint64{0, 3, 0, 0, 1 << 40}}).Encode(nil))
	node, _ := New(DefaultConfig(5, rand.New(rand.NewPCG(1, 1)), peertest.New[*Message](1).Sampler(0)), nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if got := m.Encode(nil); len(got) != m.Size() || string(got) != string(b) {
			t.Fatalf("re-encoding differs")
		}
		// Decoded again by a peer that holds its entries, or some of
		// the seed's: the same message, held entries taken as they are.
		for _, known := range [][]*Entry{m.Entries, es} {
			again, err := DecodeKnown(b, known)
			if err != nil {
				t.Fatalf("decoded, then refused with entries held: %v", err)
			}
			if got := again.Encode(nil); string(got) != string(b) {
				t.Fatalf("re-encoding with entries held differs")
			}
		}
		again, _ := DecodeKnown(b, m.Entries)
		for i, e := range again.Entries {
			if e != m.Entries[i] {
				t.Fatalf("entry %d held, yet made again", i)
			}
		}
		node.Step(1, m)
		node.Top()
	})
}

// A message's entries that say what a held entry says (node, key, row) are
// the receiver's own entries, whatever proof they carry (the held one was
// checked, and its proof is what the receiver keeps); the others are made,
// equal to what was sent, and one that differs from a held entry in its
// row is made, never taken for the held one.
func TestDecodeKnown(t *testing.T) {
	held := []*Entry{
		{Node: "a", Key: []byte{1}, Row: []byte("ra"), Proof: []byte("sa")},
		{Node: "b", Key: []byte{2}, Row: []byte("rb"), Proof: []byte("sb")},
		{Node: "c", Key: []byte{3}, Row: []byte("rc"), Proof: []byte("sc")},
		{Node: "d", Key: []byte{5}, Row: []byte("rd"), Proof: []byte("sd")},
	}
	sent := []*Entry{
		{Node: "a", Key: []byte{1}, Row: []byte("ra"), Proof: []byte("sa")},    // held
		{Node: "a2", Key: []byte{1}, Row: []byte("r"), Proof: []byte("s")},     // new
		{Node: "b", Key: []byte{2}, Row: []byte("rb"), Proof: []byte("other")}, // another proof: held
		{Node: "c", Key: []byte{3}, Row: []byte("XX"), Proof: []byte("sc")},    // another row
		{Node: "d", Key: []byte{5}, Row: []byte("rd"), Proof: []byte("sd")},    // held
		{Node: "e", Key: []byte{9}},                                            // new, empty fields
	}
	b := (&Message{Kind: Request, Entries: sent}).Encode(nil)
	got, err := DecodeKnown(b, held)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != len(sent) {
		t.Fatalf("%d entries, sent %d", len(got.Entries), len(sent))
	}
	for i, want := range sent {
		e := got.Entries[i]
		if i == 2 {
			want = held[1] // the held record, with the proof it was checked with
		}
		if e.Node != want.Node || string(e.Key) != string(want.Key) || string(e.Row) != string(want.Row) || string(e.Proof) != string(want.Proof) {
			t.Errorf("entry %d: %+v, sent %+v", i, e, want)
		}
		isHeld := slices.Contains(held, e)
		if wantHeld := i == 0 || i == 2 || i == 4; isHeld != wantHeld {
			t.Errorf("entry %d (%s): held %v, want %v", i, e.Node, isHeld, wantHeld)
		}
	}
	// The made entries do not alias the input.
	clear(b)
	if string(got.Entries[1].Row) != "r" || got.Entries[2].Node != "b" || string(got.Entries[3].Row) != "XX" {
		t.Errorf("entries changed with the input: %+v %+v %+v", got.Entries[1], got.Entries[2], got.Entries[3])
	}
}

// Coverage is sound: whenever the asker's filter holds every peer, its list
// is the exact top-k — with the query spreading from the asker as it does
// in the runtime (a peer joins when first contacted), with loss, and over
// many seeds. And it completes: every run reaches full coverage.
func TestCoverage(t *testing.T) {
	covered := 0
	for trial := 0; trial < 60; trial++ {
		r := rand.New(rand.NewPCG(uint64(trial), 3))
		n := 20 + r.IntN(300)
		es := randomEntries(r, n)
		names := make([]string, n)
		for i := range es {
			names[i] = fmt.Sprint("peer-", i)
			if es[i] != nil {
				es[i].Node = names[i]
			}
		}
		k := 1 + r.IntN(30)
		nw := &net{Network: peertest.New[*Message](uint64(trial)), dead: map[string]bool{}, size: n}
		nw.JoinOnContact = true
		nw.Loss = []float64{0, 0.1}[trial%2]
		for i, e := range es {
			nw.addAsInRuntime(t, e, names[i], k, uint64(trial), nil)
		}
		want := exactTop(es, k)
		asker := nw.nodes[0]
		for round := 1; round <= 80; round++ {
			nw.round()
			all := true
			for _, name := range names {
				all = all && asker.Covers(name)
			}
			if all {
				if !reflect.DeepEqual(asker.Top(), want) {
					t.Fatalf("trial %d (n=%d, k=%d) round %d: covered, but the list is not the exact top", trial, n, k, round)
				}
				covered++
				break
			}
		}
	}
	if covered != 60 {
		t.Errorf("%d of 60 runs reached full coverage in 80 rounds", covered)
	}
}

// coverageBits is 16 bits a peer, in whole words.
func coverageBits(n int) int { return (16*n + 63) / 64 * 64 }

// A request whose list has not changed since its last one carries only a
// digest; a partner with the same list answers with nothing, one with a
// different list answers in full; a full request is answered with only
// what the requester lacks.
func TestDigestsAndDeltas(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	es := exactTop(randomEntries(r, 40), 30)
	mk := func(own *Entry) *Node {
		n, err := New(DefaultConfig(10, rand.New(rand.NewPCG(1, 1)), peertest.New[*Message](1).Sampler(0)), own)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a, b := mk(es[0]), mk(es[1])
	a.merge(es[:12], nil)
	b.merge(es[5:20], nil)
	// A full request: b answers with the entries a lacks, and only those.
	b.Step(1, &Message{Kind: Request, Entries: a.list, Seen: a.seen})
	out := b.Outbox()
	if len(out) != 1 || len(out[0].Msg.Entries) == 0 {
		t.Fatalf("reply to a full request: %+v", out)
	}
	inA := map[string]bool{}
	for _, e := range a.list {
		inA[e.Node] = true
	}
	for _, e := range out[0].Msg.Entries {
		if inA[e.Node] {
			t.Errorf("delta repeats %s, which the requester has", e.Node)
		}
	}
	a.Step(2, out[0].Msg)
	if a.Digest() != b.Digest() {
		t.Fatalf("after the delta the lists differ: %v / %v", names(a.list), names(b.list))
	}
	// Same lists: a digest request, an empty reply.
	b.Step(1, &Message{Kind: Request, Digest: a.Digest()})
	if out := b.Outbox(); len(out) != 1 || len(out[0].Msg.Entries) != 0 || out[0].Msg.Seen != nil || out[0].Msg.Size() > 6 {
		t.Fatalf("reply to an equal digest: %+v", out[0].Msg)
	}
	// A list that changed: the digest differs, the reply is full.
	b.merge(es[:1], nil)
	b.merge([]*Entry{{Node: "zz-best", Key: []byte{0}}}, nil)
	b.Step(1, &Message{Kind: Request, Digest: a.Digest()})
	if out := b.Outbox(); len(out[0].Msg.Entries) != len(b.list) {
		t.Fatalf("reply to a different digest: %d entries, list %d", len(out[0].Msg.Entries), len(b.list))
	}
	// Tick: the first request after a change is full, the next a digest.
	net := peertest.New[*Message](3)
	c, err := New(DefaultConfig(10, rand.New(rand.NewPCG(2, 2)), net.Sampler(0)), es[2])
	if err != nil {
		t.Fatal(err)
	}
	net.Add(c)
	net.Add(mk(es[3]))
	c.Tick()
	c.Tick()
	got := c.Outbox()
	if len(got) != 2 || got[0].Msg.Digest != 0 || len(got[0].Msg.Entries) == 0 || got[1].Msg.Digest == 0 || len(got[1].Msg.Entries) != 0 {
		t.Fatalf("ticks: %+v, %+v", got[0].Msg, got[1].Msg)
	}
}

// Once the peers agree, a round costs a few bytes per exchange.
func TestConvergedRoundIsSmall(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	es := randomEntries(r, 200)
	nw := newNet(t, es, 50, 3)
	nw.Size = func(m *Message) int { return m.Size() }
	for i := 0; i < 60; i++ {
		nw.round()
	}
	nw.Bytes, nw.Messages = 0, 0
	nw.round()
	if per := nw.Bytes / max(nw.Messages, 1); per > 16 {
		t.Errorf("converged round: %d bytes per message (%d messages)", per, nw.Messages)
	}
}

// addAsInRuntime adds the next peer as the runtime configures it for a
// query over n peers: the first is the asker (Origin), which pulls and
// which nobody pulls from; every peer keeps a coverage filter.
func (nw *net) addAsInRuntime(t testing.TB, e *Entry, name string, k int, seed uint64, tweak func(*Config)) {
	t.Helper()
	i := len(nw.nodes)
	var smp peer.Sampler = avoidAsker{nw.Sampler(peer.ID(i))}
	if i == 0 {
		smp = nw.Sampler(0)
	}
	cfg := DefaultConfig(k, rand.New(rand.NewPCG(seed, uint64(i+1))), smp)
	cfg.Self, cfg.CoverageBits, cfg.Origin = name, coverageBits(nw.size), i == 0
	if tweak != nil {
		tweak(&cfg)
	}
	node, err := New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	nw.nodes = append(nw.nodes, node)
	nw.Add(node)
}

// avoidAsker samples as the runtime does for a top-k's other peers: never
// peer 0, the asker (a round without an exchange instead).
type avoidAsker struct{ peer.Sampler }

func (a avoidAsker) Sample(r *rand.Rand) (peer.ID, bool) {
	p, ok := a.Sampler.Sample(r)
	return p, ok && p != 0
}

// A reply carries only what would enter the requester's list, and of the
// filter only the words that add to the requester's, or none when asked.
func TestReplyCarriesOnlyNews(t *testing.T) {
	mk := func(own *Entry, self string) *Node {
		cfg := DefaultConfig(4, rand.New(rand.NewPCG(1, 1)), peertest.New[*Message](1).Sampler(0))
		cfg.Self, cfg.CoverageBits = self, 1024
		n, err := New(cfg, own)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	e := func(i int) *Entry { return &Entry{Node: fmt.Sprint("n", i), Key: []byte{byte(i)}} }
	a, b := mk(e(10), "a"), mk(e(0), "b")
	a.merge([]*Entry{e(2), e(4), e(6), e(8), e(10), e(12), e(14), e(16)}, nil) // full: K+Reserve = 8
	b.merge([]*Entry{e(1), e(3), e(20), e(22)}, nil)
	b.Step(1, &Message{Kind: Request, Entries: a.list, Seen: a.seen})
	r := b.Outbox()[0].Msg
	if got := fmt.Sprint(names(r.Entries)); got != "[n0 n1 n3]" {
		t.Errorf("delta %s, want the entries better than the requester's last: [n0 n1 n3]", got)
	}
	if !r.Sparse || nonzero(r.Seen) == 0 || nonzero(r.Seen) > 8 {
		t.Errorf("filter: sparse %v, %d words", r.Sparse, nonzero(r.Seen))
	}
	a.Step(2, r)
	if !a.Covers("b") || !a.Covers("a") {
		t.Error("the sparse filter did not merge")
	}
	b.Step(1, &Message{Kind: Request, Entries: a.list, Seen: a.seen, NoSeen: true})
	b.merge([]*Entry{e(5)}, nil)
	if r := b.Outbox()[0].Msg; r.Seen != nil {
		t.Errorf("NoSeen answered with a filter of %d words", len(r.Seen))
	}
	// The asker asks for filters only once its top holds still.
	cfg := DefaultConfig(4, rand.New(rand.NewPCG(1, 1)), peertest.New[*Message](1).Sampler(0))
	cfg.Self, cfg.CoverageBits, cfg.Origin = "o", 1024, true
	o, _ := New(cfg, e(9))
	nw := peertest.New[*Message](1)
	nw.Add(o)
	nw.Add(a)
	o.cfg.Sampler = nw.Sampler(0)
	o.Tick()
	if m := o.Outbox()[0].Msg; !m.NoSeen || m.Digest != 0 {
		t.Errorf("a changing asker's request: NoSeen %v, digest %x", m.NoSeen, m.Digest)
	}
	for range cfg.StableRounds {
		o.Tick()
	}
	if m := o.Outbox(); m[len(m)-1].Msg.NoSeen {
		t.Error("a still asker asks for no filter")
	}
}

// BenchmarkAskerBytes runs a top-50 over N peers as the runtime does (the
// query spreads from the asker, which pulls and is not pulled from) and
// reports what the asker received and the rounds until its list was
// covered and stable.
//
//	go test ./topk -run - -bench AskerBytes
func BenchmarkAskerBytes(b *testing.B) {
	for _, n := range []int{200, 1000} {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			var bytes, rounds int
			for it := 0; it < b.N; it++ {
				r := rand.New(rand.NewPCG(uint64(it), 1))
				nw := &net{Network: peertest.New[*Message](uint64(it)), dead: map[string]bool{}, size: n}
				nw.JoinOnContact = true
				nw.Size = func(m *Message) int { return m.Size() }
				names := make([]string, n)
				for i := range names {
					names[i] = fmt.Sprintf("peer-%04d", i)
					// A row of one 8-byte number, as in SELECT node, mem_free.
					e := &Entry{Node: names[i], Key: []byte{1, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), 0, 0, 0, 0, 0}, Row: make([]byte, 12)}
					nw.addAsInRuntime(b, e, names[i], 50, uint64(it), func(c *Config) { c.Reserve = 12 })
				}
				asker := nw.nodes[0]
				for round := 1; round <= 100; round++ {
					nw.round()
					all := asker.Unchanged() >= 2 // the runtime's rule
					for _, nm := range names {
						all = all && asker.Covers(nm)
					}
					if all {
						rounds += round
						break
					}
				}
				bytes += nw.Received[0]
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "asker-B/query")
			b.ReportMetric(float64(rounds)/float64(b.N), "rounds/query")
		})
	}
}

// A lying peer's entry that ValidEntry refuses (a row the query cannot
// read, a key no peer could have) is refused with its whole message, which
// changes nothing: not the list, not the filter, and gets no reply. Honest
// entries are merged, and the peer's own entry is never put to the check.
func TestEntriesCheckedOnReceipt(t *testing.T) {
	cfg := DefaultConfig(5, rand.New(rand.NewPCG(1, 1)), peertest.New[*Message](1).Sampler(0))
	cfg.CoverageBits, cfg.Self = 64, "me"
	checked := map[string]int{}
	cfg.ValidEntry = func(e *Entry) error {
		checked[e.Node]++
		if string(e.Row) == "bad" || e.Key[0] == 0 {
			return errors.New("bad")
		}
		return nil
	}
	n, err := New(cfg, &Entry{Node: "me", Key: []byte{0}, Row: []byte("bad")}) // never checked

	if err != nil {
		t.Fatal(err)
	}
	seen := []uint64{1 << 7}
	for name, es := range map[string][]*Entry{
		"a bad row": {{Node: "a", Key: []byte{1}, Row: []byte("ok")}, {Node: "b", Key: []byte{2}, Row: []byte("bad")}},
		"a bad key": {{Node: "c", Key: []byte{0, 1}, Row: []byte("ok")}},
	} {
		before := n.Stats()
		n.Step(1, &Message{Kind: Request, Entries: es, Seen: seen})
		if n.Stats().Rejected != before.Rejected+1 || n.Stats().Received != before.Received || len(n.Top()) != 1 ||
			len(n.Outbox()) != 0 || n.seen[0]&seen[0] != 0 {
			t.Errorf("%s: stats %+v, top %d: the message must change nothing", name, n.Stats(), len(n.Top()))
		}
	}
	n.Step(1, &Message{Kind: Request, Entries: []*Entry{{Node: "a", Key: []byte{1}, Row: []byte("ok")}}, Seen: seen})
	if n.Stats().Rejected != 2 || len(n.Top()) != 2 || len(n.Outbox()) != 1 || n.seen[0]&seen[0] == 0 {
		t.Errorf("a good entry: stats %+v, top %d", n.Stats(), len(n.Top()))
	}
	// A list of one: a better entry pushes the own one out; when its
	// node dies, Prune offers the own entry again, unchecked.
	cfg.K, cfg.Reserve, cfg.StableK = 1, 0, 0
	if n, err = New(cfg, &Entry{Node: "me", Key: []byte{5}, Row: []byte("bad")}); err != nil {
		t.Fatal(err)
	}
	n.Step(1, &Message{Kind: Reply, Entries: []*Entry{{Node: "a", Key: []byte{1}, Row: []byte("ok")}}})
	n.cfg.Alive = func(node string) bool { return node != "a" }
	n.Prune()
	if top := n.Top(); checked["me"] != 0 || len(top) != 1 || top[0].Node != "me" {
		t.Errorf("the own entry was checked %d times; top %v", checked["me"], top)
	}
}

// An entry is checked once: one that passed is not checked again, at this
// peer or another of the query (the simulator hands the same entry from
// peer to peer), while one refused is checked, and refused, each time.
func TestEntryCheckedOnce(t *testing.T) {
	checks := map[string]int{}
	cfg := DefaultConfig(5, rand.New(rand.NewPCG(1, 1)), peertest.New[*Message](1).Sampler(0))
	cfg.ValidEntry = func(e *Entry) error {
		checks[e.Node]++
		if string(e.Row) == "bad" {
			return errors.New("bad")
		}
		return nil
	}
	good := &Entry{Node: "a", Key: []byte{1}, Row: []byte("ok")}
	bad := &Entry{Node: "b", Key: []byte{2}, Row: []byte("bad")}
	for i := range 2 {
		cfg.Self = fmt.Sprintf("peer-%d", i)
		n, err := New(cfg, &Entry{Node: cfg.Self, Key: []byte{9}})
		if err != nil {
			t.Fatal(err)
		}
		n.Step(1, &Message{Kind: Reply, Entries: []*Entry{good}})
		n.Step(1, &Message{Kind: Reply, Entries: []*Entry{bad}})
		if top := n.Top(); len(top) != 2 || top[0] != good || n.Stats().Rejected != 1 {
			t.Errorf("peer %d: top %v, stats %+v", i, top, n.Stats())
		}
	}
	if checks["a"] != 1 || checks["b"] != 2 {
		t.Errorf("checks %v: want the good entry once, the bad one at each peer", checks)
	}
}

// Peers in one process share lists: a peer whose merge yields exactly
// the sender's list keeps the sender's slice (lists are never modified),
// so converged peers hold a few lists between them, not one each; the
// answers are those of an exact sort. A message that went over the wire
// (encoded, decoded) carries no list to share.
func TestConvergedPeersShareLists(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	es := randomEntries(r, 300)
	for i := range es {
		if es[i] == nil {
			es[i] = &Entry{Node: fmt.Sprintf("m%05d", i), Key: []byte{200, byte(i)}, Row: []byte{1}}
		}
	}
	want := exactTop(es, 10)
	nw := newNet(t, es, 10, 5)
	for range 40 {
		nw.round()
	}
	lists := map[**Entry]bool{} // by the first element of each list's array
	for i, n := range nw.nodes {
		if !reflect.DeepEqual(n.Top(), want) {
			t.Fatalf("peer %d: top %v, want %v", i, names(n.Top()), names(want))
		}
		lists[&n.list[0]] = true
	}
	if len(lists) > len(nw.nodes)/10 {
		t.Errorf("%d peers hold %d lists: converged peers should share them", len(nw.nodes), len(lists))
	}

	// Over the wire: b takes a's list, a copy of its own.
	a, b := nw.nodes[0], nw.nodes[1]
	b.list, b.version = []*Entry{b.own}, b.version+1
	m := &Message{Kind: Request, Entries: a.list, list: a.list}
	d, err := Decode(m.Encode(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.list != nil {
		t.Fatal("a decoded message carries a list to share")
	}
	b.Step(2, d)
	if !reflect.DeepEqual(names(b.Top()), names(want)) || &b.list[0] == &a.list[0] {
		t.Errorf("b after a decoded request: top %v, shares a's array %v", names(b.Top()), &b.list[0] == &a.list[0])
	}
}

// Peers made with NewAs share one Config; each is still itself: its own
// entry, its own bit in the coverage filter.
func TestNewAsSharesConfig(t *testing.T) {
	cfg := DefaultConfig(3, rand.New(rand.NewPCG(1, 1)), peertest.New[*Message](1).Sampler(0))
	cfg.CoverageBits = 64
	a, err := NewAs(&cfg, "a", &Entry{Node: "a", Key: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewAs(&cfg, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg != b.cfg || !a.Covers("a") || a.Covers("b") || !b.Covers("b") || b.Covers("a") || len(a.Top()) != 1 || len(b.Top()) != 0 {
		t.Errorf("shared %v; a covers a %v, b %v; b covers b %v, a %v; tops %d, %d", a.cfg == b.cfg, a.Covers("a"), a.Covers("b"), b.Covers("b"), b.Covers("a"), len(a.Top()), len(b.Top()))
	}
	if _, err := NewAs(&cfg, "", nil); err == nil {
		t.Error("a coverage filter without a name: no error")
	}
}
