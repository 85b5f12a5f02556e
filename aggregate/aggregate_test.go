package aggregate

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/peer/peertest"
)

// net is the cores' shared round-based test network (peertest), with the
// Nodes kept by their type.
type net struct {
	*peertest.Network[*Message]
	nodes []*Node
}

func newNet(t testing.TB, n int, seed uint64, scheme Scheme, spec Spec, contrib func(i int) Contribution) *net {
	t.Helper()
	return newNetRows(t, n, seed, scheme, spec, func(i int) []Contribution { return []Contribution{contrib(i)} })
}

// newNetRows is newNet for peers with several rows each (InitRows).
func newNetRows(t testing.TB, n int, seed uint64, scheme Scheme, spec Spec, rows func(i int) []Contribution) *net {
	t.Helper()
	nw := &net{Network: peertest.New[*Message](seed)}
	nw.Size = (*Message).Size
	for i := 0; i < n; i++ {
		cfg := DefaultConfig(spec, rand.New(rand.NewPCG(seed, uint64(i)+2)), nw.Sampler(peer.ID(i)))
		cfg.Scheme = scheme
		cfg.Originator = i == 0
		node := new(Node)
		if err := node.InitRows(&cfg, rows(i)); err != nil {
			t.Fatal(err)
		}
		nw.nodes = append(nw.nodes, node)
		nw.Add(node)
	}
	return nw
}

func (nw *net) round() { nw.Round() }

// estimateAfter runs rounds and returns peer i's estimate, which must hold
// groups groups.
func (nw *net) estimateAfter(t testing.TB, rounds, i, groups int) Estimate {
	t.Helper()
	for r := 0; r < rounds; r++ {
		nw.round()
	}
	e := nw.nodes[i].Estimate()
	if len(e.Groups) != groups {
		t.Fatalf("%d groups, want %d", len(e.Groups), groups)
	}
	return e
}

func (nw *net) mass() float64 {
	s := 0.0
	for i, n := range nw.nodes {
		if nw.Alive[i] {
			s += n.Mass()
		}
	}
	return s
}

var countSpec = Spec{Comps: []CompKind{Additive}, MaxGroups: 1}

func countAll(int) Contribution {
	return Contribution{Match: true, Inputs: []Input{{Present: true, Num: 1}}}
}

// Without loss, averaging conserves the total mass to rounding, under both
// schemes, while the estimates converge.
func TestConservation(t *testing.T) {
	for _, scheme := range []Scheme{FlowUpdating, PushPull} {
		for seed := uint64(1); seed <= 3; seed++ {
			nw := newNet(t, 500, seed, scheme, countSpec, func(i int) Contribution {
				return Contribution{Match: true, Inputs: []Input{{Present: true, Num: float64(i % 7)}}}
			})
			want := nw.mass()
			for r := 0; r < 30; r++ {
				nw.round()
				if got := nw.mass(); math.Abs(got-want) > 1e-9*want {
					t.Fatalf("%v seed %d round %d: mass %v, want %v", scheme, seed, r, got, want)
				}
			}
			// Every peer's mean is now the true mean (3000 - 1 origin)/500.
			truth := (want - 1) / 500
			for i, n := range nw.nodes {
				e := n.Estimate()
				if got := e.Groups[0].Means[0]; math.Abs(got-truth) > 1e-3*truth {
					t.Fatalf("%v: peer %d mean %v, want %v", scheme, i, got, truth)
				}
			}
		}
	}
}

// With the number of peers from gossip: COUNT = mean / origin mean.
func TestCountFromGossip(t *testing.T) {
	const n = 1000
	nw := newNet(t, n, 7, FlowUpdating, countSpec, countAll)
	for r := 0; r < 40; r++ {
		nw.round()
	}
	for i, node := range nw.nodes {
		e := node.Estimate()
		count := e.Groups[0].Means[0] / e.Origin
		if math.Abs(count-n) > 0.01*n {
			t.Fatalf("peer %d: COUNT %v, want %d within 1%%", i, count, n)
		}
	}
}

// Loss: Flow Updating only delays; its error stays far below push-pull's.
func TestLoss(t *testing.T) {
	const n = 1000
	errOf := func(scheme Scheme, seed uint64) float64 {
		nw := newNet(t, n, seed, scheme, countSpec, countAll)
		nw.Loss = 0.05
		for r := 0; r < 40; r++ {
			nw.round()
		}
		e := nw.nodes[0].Estimate()
		return math.Abs(e.Groups[0].Means[0]/e.Origin-n) / n
	}
	var fu, pp float64
	for seed := uint64(1); seed <= 5; seed++ {
		fu += errOf(FlowUpdating, seed) / 5
		pp += errOf(PushPull, seed) / 5
	}
	if fu > 0.01 {
		t.Errorf("flow updating at 5%% loss: mean error %.4f, want < 1%%", fu)
	}
	if fu >= pp {
		t.Errorf("flow updating error %.4f not below push-pull's %.4f", fu, pp)
	}
	t.Logf("5%% loss, N=%d, 40 rounds: mean relative error of COUNT at the originator: flow updating %.4f, push-pull %.4f", n, fu, pp)
}

// A crash: survivors drop their links to the dead; the estimate of the
// survivors' mean stays right.
func TestCrash(t *testing.T) {
	const n = 1000
	nw := newNet(t, n, 3, FlowUpdating, countSpec, func(i int) Contribution {
		return Contribution{Match: true, Inputs: []Input{{Present: true, Num: float64(i % 10)}}}
	})
	for r := 0; r < 5; r++ {
		nw.round()
	}
	var dead []peer.ID
	for i := 1; i < n; i += 5 {
		nw.Alive[i] = false
		dead = append(dead, peer.ID(i))
	}
	for i, node := range nw.nodes {
		if nw.Alive[i] {
			for _, d := range dead {
				node.RemovePeer(d)
			}
		}
	}
	for r := 0; r < 40; r++ {
		nw.round()
	}
	sum, alive := 0.0, 0
	for i := 0; i < n; i++ {
		if nw.Alive[i] {
			sum += float64(i % 10)
			alive++
		}
	}
	truth := sum / float64(alive)
	got := nw.nodes[0].Estimate().Groups[0].Means[0]
	if math.Abs(got-truth) > 0.02*truth {
		t.Errorf("mean after crash %v, survivors' %v", got, truth)
	}
}

func TestGroupsExtremesSketches(t *testing.T) {
	spec := Spec{Comps: []CompKind{Additive, Min, Max, Histogram, Distinct}, MaxGroups: 8}
	const n = 400
	nw := newNet(t, n, 11, FlowUpdating, spec, func(i int) Contribution {
		g := []byte{byte('a' + i%3)}
		x := float64(i)
		return Contribution{Match: i%10 != 9, Group: g, Inputs: []Input{
			{Present: true, Num: 1}, {Present: true, Num: x}, {Present: true, Num: x},
			{Present: true, Num: x + 1}, {Present: true, Hash: Hash64([]byte{byte(i % 50)})},
		}}
	})
	e := nw.estimateAfter(t, 40, 5, 3)
	for gi, g := range e.Groups {
		var want []float64
		for i := gi; i < n; i += 3 {
			if i%10 != 9 {
				want = append(want, float64(i))
			}
		}
		count := g.Means[0] * n
		if math.Abs(count-float64(len(want))) > 0.01*float64(len(want)) {
			t.Errorf("group %s: count %v, want %d", g.Key, count, len(want))
		}
		if !g.HasExt[1] || g.Ext[1].Num != want[0] || g.Ext[2].Num != want[len(want)-1] {
			t.Errorf("group %s: min %v max %v, want %v %v", g.Key, g.Ext[1].Num, g.Ext[2].Num, want[0], want[len(want)-1])
		}
		med, ok := Quantile(g.Buckets[3], 0.5)
		exact := want[(len(want)+1)/2-1] + 1
		if !ok || math.Abs(med-exact) > 0.05*exact {
			t.Errorf("group %s: median %v, want %v", g.Key, med, exact)
		}
		if d := g.Distinct[4]; math.Abs(d-45) > 4 {
			t.Errorf("group %s: distinct %v, want about 45 (50 values, those ending in 9 filtered out)", g.Key, d)
		}
	}
}

func TestMaxGroups(t *testing.T) {
	spec := Spec{Comps: []CompKind{Additive}, MaxGroups: 2}
	nw := newNet(t, 100, 5, FlowUpdating, spec, func(i int) Contribution {
		return Contribution{Match: true, Group: []byte{byte(i % 5)}, Inputs: []Input{{Present: true, Num: 1}}}
	})
	want := nw.mass()
	for r := 0; r < 20; r++ {
		nw.round()
	}
	if got := nw.mass(); math.Abs(got-want) > 1e-9*want {
		t.Errorf("groups beyond the cap broke conservation: %v vs %v", got, want)
	}
	dropped := 0
	for _, node := range nw.nodes {
		if len(node.Estimate().Groups) > 2 {
			t.Fatal("a peer tracks more than MaxGroups groups")
		}
		dropped += int(node.Stats().DroppedGroups)
	}
	if dropped == 0 {
		t.Error("dropped groups were not counted")
	}
}

func TestHistogramMapping(t *testing.T) {
	for _, x := range []float64{1e-6, 0.5, 1, 3.7, 1e3, 4e9, 1.5e12, -2, -1e6} {
		v := HistValue(HistBucket(x))
		if math.Abs(v-x) > HistAlpha*math.Abs(x)*1.0001 {
			t.Errorf("bucket of %v stands for %v: relative error above %v", x, v, HistAlpha)
		}
	}
	if HistBucket(0) != 0 || HistValue(0) != 0 {
		t.Error("zero bucket")
	}
	// The table is the formula, bucket for bucket, and beyond it.
	for b := -2; b <= 4*histRange+2; b++ {
		if got, want := HistValue(b), histValue(b); got != want {
			t.Fatalf("HistValue(%d) = %v, want %v", b, got, want)
		}
	}
}

// TestTrimmedMean: a histogram's trimmed mean is the values' within
// HistAlpha, the cut falling inside a bucket taking it in part, and the
// share left out at each end leaves out an outlier.
func TestTrimmedMean(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	exact := func(xs []float64, p float64) float64 {
		// The definition: value i stands for ranks [i, i+1).
		sorted := append([]float64(nil), xs...)
		slices.Sort(sorted)
		n := float64(len(sorted))
		sum := 0.0
		for i, x := range sorted {
			sum += max(0, min(float64(i+1), (1-p)*n)-max(float64(i), p*n)) * x
		}
		return sum / ((1 - 2*p) * n)
	}
	for _, p := range []float64{0.01, 0.05, 0.25} {
		xs := make([]float64, 1000)
		for i := range xs {
			xs[i] = 0.3 * r.ExpFloat64()
		}
		xs[7] = 1e9 // one liar: left out
		mass := map[int]float64{}
		for _, x := range xs {
			mass[HistBucket(x)]++
		}
		var bs []Bucket
		for b, m := range mass {
			bs = append(bs, Bucket{Index: b, Mass: m})
		}
		got, ok := TrimmedMean(bs, p)
		want := exact(xs, p)
		if !ok || math.Abs(got-want) > HistAlpha*want || want > 1 {
			t.Errorf("trim %v: got %v (%v), want %v within %v", p, got, ok, want, HistAlpha)
		}
	}
	if _, ok := TrimmedMean(nil, 0.1); ok {
		t.Error("a trimmed mean of nothing")
	}
	if got, _ := TrimmedMean([]Bucket{{Index: HistBucket(2), Mass: 4}}, 0.1); math.Abs(got-2) > HistAlpha*2 {
		t.Errorf("one bucket's trimmed mean %v, want 2", got)
	}
}

func TestHLL(t *testing.T) {
	for _, n := range []int{10, 1000, 100000} {
		reg := make([]byte, HLLRegisters)
		for i := 0; i < n; i++ {
			hllAdd(reg, Hash64([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
		}
		if e := HLLEstimate(reg); math.Abs(e-float64(n)) > 4*1.04/32*float64(n)+1 {
			t.Errorf("HLL of %d distinct: %v", n, e)
		}
	}
}

func TestMessageRoundTrip(t *testing.T) {
	m := &Message{Kind: Request, Scheme: FlowUpdating, Seq: 300,
		Flow:   Vec{Keys: []uint64{5, 1 << 40, 1<<63 + 7}, Vals: []float64{1.5, -2, 0}},
		Est:    Vec{Keys: []uint64{originSlot}, Vals: []float64{0.25}},
		Groups: []GroupKey{{Hash: 9, Key: []byte("eu")}},
		Ext:    []Extreme{{Slot: 1 << 24, Num: 3}, {Slot: 2 << 24, IsStr: true, Str: "x"}},
		HLL:    []HLLRegs{{Slot: 3 << 24, Regs: make([]byte, HLLRegisters)}},
	}
	b := m.Encode(nil)
	if len(b) != m.Size() {
		t.Fatalf("Size %d, encoded %d", m.Size(), len(b))
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	for name, bad := range map[string][]byte{
		"empty": nil, "version": append([]byte{9}, b[1:]...), "truncated": b[:len(b)-3],
		"trailing": append(append([]byte{}, b...), 0), "kind": append([]byte{1, 0x1f}, b[2:]...),
		"huge length": {1, 0x11, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	nw := newNet(f, 20, 1, FlowUpdating, Spec{Comps: []CompKind{Additive, Max, Distinct, Histogram}, MaxGroups: 4},
		func(i int) Contribution {
			return Contribution{Match: true, Group: []byte{byte(i % 2)}, Inputs: []Input{
				{Present: true, Num: 1}, {Present: true, IsStr: true, Str: "n"}, {Present: true, Hash: uint64(i)}, {Present: true, Num: 3}}}
		})
	nw.nodes[0].Tick()
	for _, env := range nw.nodes[0].Outbox() {
		f.Add(env.Msg.Encode(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if got := m.Encode(nil); len(got) != m.Size() || string(got) != string(b) {
			t.Fatalf("re-encoding differs (Size %d, encoded %d, input %d)", m.Size(), len(got), len(b))
		}
		// Whatever decodes, a node must take without panicking.
		nw.nodes[1].Step(0, m)
		nw.nodes[1].Estimate()
	})
}

// Under heavy loss no exchange is given up: an initiator keeps retrying
// its stuck exchanges until a reply comes, so once the loss stops every
// link agrees again and the mass is what it was — exactly, not about
// (Flow Updating's promise that a lost message only delays). Without the
// retries of stuck exchanges, 20% loss here leaves ~1% of the mass wrong for
// good.
func TestNoMassLostToLoss(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		nw := &net{Network: peertest.New[*Message](seed)}
		nw.JoinOnContact = true
		for i := 0; i < 200; i++ {
			cfg := DefaultConfig(countSpec, rand.New(rand.NewPCG(seed, uint64(i)+2)), nw.Sampler(peer.ID(i)))
			cfg.Originator, cfg.FoldAfter = i == 0, 1000
			node, err := New(&cfg, Contribution{Match: true, Inputs: []Input{{Present: true, Num: float64(i % 5)}}})
			if err != nil {
				t.Fatal(err)
			}
			nw.nodes = append(nw.nodes, node)
			nw.Add(node)
		}
		want := nw.mass()
		nw.Loss = 0.2
		for r := 0; r < 40; r++ {
			nw.round()
		}
		stuck := int32(0)
		for _, n := range nw.nodes {
			stuck += n.Stats().Stuck
		}
		nw.Loss = 0
		for r := 0; r < 60; r++ {
			nw.round()
		}
		if got := nw.mass(); math.Abs(got-want) > 1e-9*want {
			t.Errorf("seed %d: mass %v after the loss, want %v (%d exchanges got stuck)", seed, got, want, stuck)
		}
		if stuck == 0 {
			t.Errorf("seed %d: nothing got stuck at 20%% loss: the test tests nothing", seed)
		}
		if e := nw.nodes[0].Estimate(); math.Abs(1/e.Origin-200) > 0.01*200 {
			t.Errorf("seed %d: N estimate %v, want 200", seed, 1/e.Origin)
		}
	}
}

// Values from other peers are checked on receipt: a message with slots
// outside the query's shape, or estimates beyond the inputs' bound, is
// refused whole and changes nothing.
func TestRejectsOutOfShape(t *testing.T) {
	spec := Spec{Comps: []CompKind{Additive, Max}, MaxGroups: 1, Bounds: []float64{1, 100}}
	nw := newNet(t, 3, 1, FlowUpdating, spec, func(i int) Contribution {
		return Contribution{Match: true, Inputs: []Input{{Present: true, Num: 1}, {Present: true, Num: 50}}}
	})
	for r := 0; r < 10; r++ {
		nw.round()
	}
	victim := nw.nodes[1]
	before := victim.Mass()
	g := GroupHash(nil)
	junk := &Message{Kind: Request, Scheme: FlowUpdating, Seq: 99, Groups: []GroupKey{{Hash: g}}}
	for i := 0; i < 60000; i++ {
		junk.Est.Keys = append(junk.Est.Keys, slotKey(g, 1+i%5, i%7)) // components and buckets the query lacks
		junk.Est.Vals = append(junk.Est.Vals, 1)
	}
	bigger := &Message{Kind: Request, Scheme: FlowUpdating, Seq: 98, Groups: []GroupKey{{Hash: g}},
		Est: Vec{Keys: []uint64{slotKey(g, 0, 0)}, Vals: []float64{1e9}}} // a count's average of 10⁹
	ext := &Message{Kind: Request, Scheme: FlowUpdating, Seq: 97, Groups: []GroupKey{{Hash: g}},
		Ext: []Extreme{{Slot: slotKey(g, 1, 0), Num: 1e12}}} // a MAX beyond the attribute's bound
	flow := &Message{Kind: Request, Scheme: FlowUpdating, Seq: 96, Groups: []GroupKey{{Hash: g}},
		Flow: Vec{Keys: []uint64{slotKey(g, 0, 0)}, Vals: []float64{-1e9}}} // a flow that would move 10⁹
	weight := &Message{Kind: Request, Scheme: FlowUpdating, Seq: 95, Groups: []GroupKey{{Hash: g}},
		Flow: Vec{Keys: []uint64{originSlot}, Vals: []float64{-1e9}}} // the originator's mass, likewise
	for name, m := range map[string]*Message{"junk slots": junk, "out of bounds": bigger, "extreme": ext, "flow": flow, "weight": weight} {
		rejected := victim.Stats().Rejected
		victim.Step(2, m)
		if victim.Stats().Rejected != rejected+1 || len(victim.Outbox()) != 0 || victim.Mass() != before {
			t.Errorf("%s: taken (rejected %d→%d, mass %v→%v)", name, rejected, victim.Stats().Rejected, before, victim.Mass())
		}
	}
	if e := victim.Estimate(); e.Groups[0].Ext[1].Num != 50 {
		t.Errorf("MAX %v, want 50", e.Groups[0].Ext[1].Num)
	}
}

// A peer with several rows (InitRows) counts as its rows: over 200 peers
// with 0..5 rows each in two groups, every peer's means times the number
// of peers converge to the totals over the rows, and the maxima to the
// rows' maxima.
func TestRows(t *testing.T) {
	spec := Spec{Comps: []CompKind{Additive, Additive, Max}, MaxGroups: 4, Rows: 5, Bounds: []float64{1, 10, 0}}
	const n = 200
	want := map[string][3]float64{}
	nw := newNetRows(t, n, 5, FlowUpdating, spec, func(i int) []Contribution {
		var rows []Contribution
		for r := 0; r < i%6; r++ {
			g := []byte{byte('a' + i%2)}
			v := float64((i*7+r)%10) + 0.5
			rows = append(rows, Contribution{Match: true, Group: g, Inputs: []Input{{Present: true, Num: 1}, {Present: true, Num: v}, {Present: true, Num: v}}})
			w := want[string(g)]
			w[0]++
			w[1] += v
			w[2] = math.Max(w[2], v)
			want[string(g)] = w
		}
		return rows
	})
	e := nw.estimateAfter(t, 60, 0, 2)
	for _, g := range e.Groups {
		w := want[string(g.Key)]
		count, sum := g.Means[0]*n, g.Means[1]*n
		if math.Abs(count-w[0]) > 0.01*w[0] || math.Abs(sum-w[1]) > 0.01*w[1] || !g.HasExt[2] || g.Ext[2].Num != w[2] {
			t.Errorf("group %s: count %.2f sum %.2f max %v; want %v", g.Key, count, sum, g.Ext[2].Num, w)
		}
	}
	rej := int32(0)
	for _, nd := range nw.nodes {
		rej += nd.Stats().Rejected
	}
	if rej != 0 {
		t.Errorf("%d messages rejected: the bounds must allow a peer's several rows", rej)
	}
	var tooMany Node
	cfg := DefaultConfig(spec, rand.New(rand.NewPCG(1, 1)), nw.Sampler(0))
	if err := tooMany.InitRows(&cfg, make([]Contribution, 6)); err == nil {
		t.Error("6 rows with Spec.Rows 5: no error")
	}
}

// Reinput under both schemes: SUM moves to the new total; a change it
// cannot take (a MAX input, a new group, a peer that stops matching)
// leaves the Node as it was.
func TestReinput(t *testing.T) {
	spec := Spec{Comps: []CompKind{Additive, Max}, MaxGroups: 4}
	in := func(x float64) Contribution {
		return Contribution{Match: true, Inputs: []Input{{Present: true, Num: x}, {Present: true, Num: 7}}}
	}
	for _, scheme := range []Scheme{FlowUpdating, PushPull} {
		nw := newNet(t, 50, 1, scheme, spec, func(i int) Contribution { return in(float64(i)) })
		for range 30 {
			nw.round()
		}
		// Peer 3 goes from 3 to 103: the sum from 1225 to 1325.
		if err := nw.nodes[3].Reinput(in(3), in(103)); err != nil {
			t.Fatal(err)
		}
		before := nw.nodes[5].Estimate()
		for _, bad := range []Contribution{
			{Match: true, Inputs: []Input{{Present: true, Num: 1}, {Present: true, Num: 9}}}, // MAX changed
			{Match: true, Group: []byte("x"), Inputs: in(5).Inputs},                          // a new group
			{}, // stops matching
		} {
			if err := nw.nodes[5].Reinput(in(5), bad); !errors.Is(err, ErrNotIncremental) {
				t.Errorf("%v: Reinput gave %v, want ErrNotIncremental", scheme, err)
			}
		}
		if after := nw.nodes[5].Estimate(); after.Groups[0].Means[0] != before.Groups[0].Means[0] {
			t.Errorf("%v: a refused Reinput changed the estimate from %v to %v", scheme, before.Groups[0].Means[0], after.Groups[0].Means[0])
		}
		e := nw.estimateAfter(t, 40, 0, 1)
		if sum := e.Groups[0].Means[0] / e.Origin; math.Abs(sum-1325)/1325 > 0.01 {
			t.Errorf("%v: SUM after Reinput %.1f, want 1325", scheme, sum)
		}
	}
}

// A lying peer's message with a group key the query cannot read, or whose
// hash is not its key's, is refused whole; an honest one is taken.
func TestGroupKeysCheckedOnReceipt(t *testing.T) {
	spec := Spec{Comps: []CompKind{Additive}, MaxGroups: 4, ValidKey: func(k []byte) bool { return string(k) != "bad" }}
	nw := newNet(t, 2, 1, FlowUpdating, spec, func(i int) Contribution {
		return Contribution{Match: true, Group: []byte("g"), Inputs: []Input{{Present: true, Num: 1}}}
	})
	n := nw.nodes[1]
	for _, c := range []struct {
		key    string
		hash   uint64
		reject bool
	}{
		{"bad", GroupHash([]byte("bad")), true},
		{"other", GroupHash([]byte("x")), true},
		{"fine", GroupHash([]byte("fine")), false},
	} {
		before := n.Stats().Rejected
		n.Step(0, &Message{Scheme: FlowUpdating, Kind: Reply, Seq: initiatorBit, Groups: []GroupKey{{Hash: c.hash, Key: []byte(c.key)}}})
		if got := n.Stats().Rejected > before; got != c.reject {
			t.Errorf("key %q: rejected %v, want %v", c.key, got, c.reject)
		}
	}
}

// Honest peers never trip the bounds: with inputs at both ends of the
// bound (the widest spread, where estimates overshoot most), under loss,
// with either scheme, no message is refused — flows included.
func TestHonestWithinBounds(t *testing.T) {
	for _, scheme := range []Scheme{FlowUpdating, PushPull} {
		spec := Spec{Comps: []CompKind{Additive, Additive}, MaxGroups: 2, Bounds: []float64{1, 100}}
		nw := newNet(t, 300, 3, scheme, spec, func(i int) Contribution {
			return Contribution{Match: true, Group: []byte{byte(i % 2)}, Inputs: []Input{{Present: true, Num: 1}, {Present: true, Num: float64(i%3/2) * 100}}}
		})
		nw.Loss = 0.1
		for r := 0; r < 60; r++ {
			nw.round()
		}
		for i, n := range nw.nodes {
			if s := n.Stats(); s.Rejected != 0 {
				t.Fatalf("%s: peer %d refused %d honest messages", scheme, i, s.Rejected)
			}
		}
	}
}

// What only the binding can judge is put to its checks (Spec.ValidExtreme,
// ValidBucket, CheckSketches): a message with an extreme, a bucket or a
// sketch register they refuse is refused whole and changes nothing;
// honest values at the bounds are taken.
func TestValuesCheckedOnReceipt(t *testing.T) {
	lo, hi := HistBucket(0.5), HistBucket(10)
	spec := Spec{Comps: []CompKind{Additive, Min, Histogram, Distinct}, MaxGroups: 1, Bounds: []float64{1, 10, 0, 0},
		ValidExtreme:  func(c int, e Extreme) bool { return c == 1 && !e.IsStr && e.Num >= 0.5 },
		ValidBucket:   func(c, b int) bool { return c == 2 && HistValue(b) >= HistValue(lo) && HistValue(b) <= HistValue(hi) },
		CheckSketches: true}
	nw := newNet(t, 3, 1, FlowUpdating, spec, func(i int) Contribution {
		return Contribution{Match: true, Inputs: []Input{{Present: true, Num: 1}, {Present: true, Num: 5}, {Present: true, Num: 5}, {Present: true, Hash: uint64(i)}}}
	})
	for r := 0; r < 5; r++ {
		nw.round()
	}
	n := nw.nodes[1]
	g := GroupHash(nil)
	regs := func(r byte) []byte {
		b := make([]byte, HLLRegisters)
		b[7] = r
		return b
	}
	seq := uint32(1000)
	for _, c := range []struct {
		name string
		m    Message
		ok   bool
	}{
		{"MIN at the bound", Message{Ext: []Extreme{{Slot: slotKey(g, 1, 0), Num: 0.5}}}, true},
		{"MIN below the bound", Message{Ext: []Extreme{{Slot: slotKey(g, 1, 0), Num: 0.4}}}, false},
		{"MIN a string", Message{Ext: []Extreme{{Slot: slotKey(g, 1, 0), IsStr: true, Str: "a"}}}, false},
		{"buckets at the bounds", Message{Est: Vec{Keys: []uint64{slotKey(g, 2, lo), slotKey(g, 2, hi)}, Vals: []float64{0.1, 0.1}}}, true},
		{"a bucket beyond", Message{Est: Vec{Keys: []uint64{slotKey(g, 2, HistBucket(11))}, Vals: []float64{0.1}}}, false},
		{"a flow into a bucket beyond", Message{Flow: Vec{Keys: []uint64{slotKey(g, 2, HistBucket(0.4))}, Vals: []float64{-0.1}}}, false},
		{"the highest rank", Message{HLL: []HLLRegs{{Slot: slotKey(g, 3, 0), Regs: regs(hllMaxRank)}}}, true},
		{"a rank no hash gives", Message{HLL: []HLLRegs{{Slot: slotKey(g, 3, 0), Regs: regs(hllMaxRank + 1)}}}, false},
	} {
		m := c.m
		seq++
		m.Kind, m.Scheme, m.Seq, m.Groups = Request, FlowUpdating, seq, []GroupKey{{Hash: g}}
		before, mass, est := n.Stats().Rejected, n.Mass(), n.Estimate()
		n.Step(2, &m)
		refused := n.Stats().Rejected != before
		if refused == c.ok {
			t.Errorf("%s: refused %v, want %v", c.name, refused, !c.ok)
		}
		if after := n.Estimate(); refused && (n.Mass() != mass || len(n.Outbox()) != 0 || !reflect.DeepEqual(after, est)) {
			t.Errorf("%s: refused, but the state changed", c.name)
		}
		n.Outbox()
	}
	if e := n.Estimate().Groups[0]; e.Ext[1].Num != 0.5 {
		t.Errorf("MIN %v, want the honest 0.5", e.Ext[1].Num)
	}
}

// FoldAnswered: without loss and removals, folding an initiator's link as
// soon as it is answered changes no estimate, to the last bit, and leaves
// about half the links (the responders'); the links and slabs that grew
// onto the heap come back into the Node as they fold (shrink) with the
// estimates intact.
func TestFoldAnswered(t *testing.T) {
	spec := Spec{Comps: []CompKind{Additive, Additive, Additive, Additive}, MaxGroups: 1}
	contrib := func(i int) Contribution {
		in := make([]Input, 4)
		for c := range in {
			in[c] = Input{Present: true, Num: float64(i%(7+c)) + 0.1*float64(c)}
		}
		return Contribution{Match: true, Inputs: in}
	}
	const n, rounds = 500, 30
	keep := newNet(t, n, 3, FlowUpdating, spec, contrib)
	fold := newNet(t, n, 3, FlowUpdating, spec, contrib)
	for _, node := range fold.nodes {
		node.cfg.FoldAnswered = true
	}
	var kept, folded, heap int
	for r := 0; r < rounds; r++ {
		keep.round()
		fold.round()
		for i := range fold.nodes {
			a, b := keep.nodes[i], fold.nodes[i]
			if !slices.Equal(a.est.Keys, b.est.Keys) || !slices.Equal(a.est.Vals, b.est.Vals) {
				t.Fatalf("round %d peer %d: estimate %v with every link kept, %v with answered ones folded", r, i, a.est.Vals, b.est.Vals)
			}
			kept += a.Links()
			folded += b.Links()
			if cap(b.slab) > len(b.slabArr) {
				heap++
			}
		}
	}
	if ratio := float64(folded) / float64(kept); ratio > 0.6 {
		t.Errorf("links with answered ones folded: %d against %d kept (%.2f), want about half", folded, kept, ratio)
	}
	// With 5 slots a link, the Node holds 6 links: most peers hold more at
	// some round, and fewer at most rounds.
	if heap == 0 || heap > n*rounds/2 {
		t.Errorf("slabs on the heap in %d of %d peer-rounds: want some, and back in the Node most rounds", heap, n*rounds)
	}
	t.Logf("%d peers, %d rounds: %.1f links a peer kept, %.1f folded when answered; slab on the heap in %.0f%% of peer-rounds",
		n, rounds, float64(kept)/n/rounds, float64(folded)/n/rounds, 100*float64(heap)/n/rounds)
}
