package run

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/fxamacker/cbor/v2"
	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/internal/strictcbor"
	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/topk"
)

// Partial is one pool's share of a statement that runs in every pool: what
// the pool's asking instance (at one of its gateways) holds once the
// pool's answer is final, in the form that merges with the other pools'
// (Merge) — an aggregate's means with the number of members they average
// over, its histograms, extremes and HyperLogLog registers; or a top-k's
// list. Astrolabe's zones hand their parents the same kind of thing: a
// mergeable summary, never their members' rows.
type Partial struct {
	// Peers is the number of members the means average over (the pool's
	// membership, as its gateway saw it).
	Peers  int            `cbor:"1,keyasint"`
	Groups []PartialGroup `cbor:"2,keyasint,omitempty"`
	Top    []PartialEntry `cbor:"3,keyasint,omitempty"`
}

// PartialGroup is one group of an aggregate's partial, its slices indexed
// by the plan's components (aggregate.GroupEstimate).
type PartialGroup struct {
	Key       []byte          `cbor:"1,keyasint,omitempty"`
	Means     []float64       `cbor:"2,keyasint"`
	Buckets   [][]PartialMass `cbor:"3,keyasint,omitempty"`
	Ext       []PartialExt    `cbor:"4,keyasint,omitempty"`
	Registers [][]byte        `cbor:"5,keyasint,omitempty"`
}

// PartialMass is one histogram bucket: its index and average mass.
type PartialMass struct {
	_     struct{} `cbor:",toarray"`
	Index int
	Mass  float64
}

// PartialExt is one MIN or MAX: whether the pool has one, and its value
// with the member that vouched for it.
type PartialExt struct {
	_     struct{} `cbor:",toarray"`
	Has   bool
	IsStr bool
	Num   float64
	Str   string
	Node  string
}

// PartialEntry is one row of a top-k's list.
type PartialEntry struct {
	_    struct{} `cbor:",toarray"`
	Node string
	Key  []byte
	Row  []byte
}

// Partial is the instance's share for its pool (see Partial), over peers
// members. Call it at the asking peer once its answer is final.
func (q *Instance) Partial(peers int) (*Partial, error) {
	p := &Partial{Peers: peers}
	if q.agg != nil {
		est := q.agg.Estimate()
		if q.b.cfg.NFromGossip {
			if est.Origin <= 0 {
				return nil, errors.New("run: the origin's mass has not come back: no partial yet")
			}
			p.Peers = int(math.Round(1 / est.Origin))
		}
		for _, g := range est.Groups {
			pg := PartialGroup{Key: g.Key, Means: g.Means}
			for i, comp := range q.b.plan.Components {
				switch comp.Kind {
				case query.CompQuantile:
					if pg.Buckets == nil {
						pg.Buckets = make([][]PartialMass, len(g.Means))
					}
					for _, b := range g.Buckets[i] {
						pg.Buckets[i] = append(pg.Buckets[i], PartialMass{Index: b.Index, Mass: b.Mass})
					}
				case query.CompMin, query.CompMax:
					if pg.Ext == nil {
						pg.Ext = make([]PartialExt, len(g.Means))
					}
					if g.HasExt[i] {
						x := g.Ext[i]
						pg.Ext[i] = PartialExt{Has: true, IsStr: x.IsStr, Num: x.Num, Str: x.Str, Node: x.Node}
					}
				case query.CompDistinct:
					if pg.Registers == nil {
						pg.Registers = make([][]byte, len(g.Means))
					}
					pg.Registers[i] = append([]byte(nil), g.Registers[i]...)
				}
			}
			p.Groups = append(p.Groups, pg)
		}
		return p, nil
	}
	alive := q.b.cfg.Alive
	for _, e := range q.top.Top() {
		if alive == nil || alive(e.Node) {
			p.Top = append(p.Top, PartialEntry{Node: e.Node, Key: e.Key, Row: e.Row})
		}
	}
	return p, nil
}

// ExactPartial is the partial of a pool whose records are all at hand —
// a gateway's member list, for a statement that reads only what the
// membership shows (query.Plan.FromTags) — computed exactly rather than
// by gossip, as one pool of one peer would answer it over its member
// list. For an aggregate it is one instance holding every record as its
// own rows (what flow updating's means converge to, times N), divided by
// N; for a top-k the records' entries sorted and cut to k.
func ExactPartial(p *query.Plan, records []query.Record) (*Partial, error) {
	n := len(records)
	switch ProtocolOf(p.Kind) {
	case TopK:
		var all []*topk.Entry
		for _, r := range records {
			if e := Entry(p, r); e != nil {
				all = append(all, e)
			}
		}
		sort.Slice(all, func(i, j int) bool { return topk.Less(all[i], all[j]) })
		if p.K > 0 && len(all) > p.K {
			all = all[:p.K]
		}
		part := &Partial{Peers: n}
		for _, e := range all {
			part.Top = append(part.Top, PartialEntry{Node: e.Node, Key: e.Key, Row: e.Row})
		}
		return part, nil
	case Aggregate:
		if n == 0 {
			return &Partial{}, nil
		}
		b, err := Bind(p, Config{Peers: 1, Rand: rand.New(rand.NewPCG(1, 1)), Sampler: alone{}, Self: "pool"}) // one instance, which never samples
		if err != nil {
			return nil, err
		}
		b.origCfg.Spec.Rows = n
		// Every group the records hold: gossip bounds the groups a peer
		// tracks (the plan's MaxGroups), but the member list is at hand,
		// and a pool that kept some groups and not others would merge
		// into counts too low. A partial too large for the wire is
		// refused at Encode.
		b.origCfg.Spec.MaxGroups = max(b.origCfg.Spec.MaxGroups, n)
		q, err := b.NewRows(true, records)
		if err != nil {
			return nil, err
		}
		part, err := q.Partial(1)
		if err != nil {
			return nil, err
		}
		// The instance's means are the sum of its rows; a pool's are per
		// member.
		for gi := range part.Groups {
			g := &part.Groups[gi]
			for i := range g.Means {
				g.Means[i] /= float64(n)
			}
			for i := range g.Buckets {
				for j := range g.Buckets[i] {
					g.Buckets[i][j].Mass /= float64(n)
				}
			}
		}
		part.Peers = n
		return part, nil
	}
	return nil, ErrNoGossip
}

// Sketched says a plan reads a sketch — a quantile's histogram (MEDIAN,
// PERCENTILE, TRIM) or a distinct count's HyperLogLog — whose merged
// answer is an estimate within the sketch's accuracy even when every
// pool's records are at hand (ExactPartial), since pools share sketches,
// not values.
func Sketched(p *query.Plan) bool {
	for _, c := range p.Components {
		if c.Kind == query.CompQuantile || c.Kind == query.CompDistinct {
			return true
		}
	}
	return false
}

// alone samples nobody: the sampler of an instance that never exchanges.
type alone struct{}

func (alone) Sample(*rand.Rand) (peer.ID, bool) { return 0, false }

// Merge reads the pools' partials of one plan as one answer: an
// aggregate's means weighted by each pool's members, histograms likewise,
// extremes the least or greatest, HyperLogLog registers by maximum (the
// union's distinct count, not a sum of the pools'); a top-k's lists
// merged and cut to the plan's k. Each partial comes from the network:
// one whose shape does not fit the plan is refused with an error.
func Merge(p *query.Plan, parts []*Partial) (*answer.Answer, error) {
	for i, part := range parts {
		if err := part.fits(p); err != nil {
			return nil, fmt.Errorf("run: partial %d: %w", i, err)
		}
	}
	if ProtocolOf(p.Kind) == TopK {
		return mergeTop(p, parts)
	}
	total := 0
	for _, part := range parts {
		total += part.Peers
	}
	type acc struct {
		ge  aggregate.GroupEstimate
		bkt []map[int]float64
	}
	groups := map[string]*acc{}
	var keys []string
	comps := len(p.Components)
	for _, part := range parts {
		w := float64(part.Peers) / float64(max(total, 1))
		for _, g := range part.Groups {
			a := groups[string(g.Key)]
			if a == nil {
				a = &acc{ge: aggregate.GroupEstimate{Key: g.Key, Means: make([]float64, comps), Buckets: make([][]aggregate.Bucket, comps),
					Ext: make([]aggregate.Extreme, comps), HasExt: make([]bool, comps), Distinct: make([]float64, comps),
					Registers: make([][]byte, comps)}, bkt: make([]map[int]float64, comps)}
				groups[string(g.Key)] = a
				keys = append(keys, string(g.Key))
			}
			for i, comp := range p.Components {
				a.ge.Means[i] += w * g.Means[i]
				switch comp.Kind {
				case query.CompQuantile:
					if a.bkt[i] == nil {
						a.bkt[i] = map[int]float64{}
					}
					if g.Buckets == nil {
						continue // a pool without values: fits allows it
					}
					for _, b := range g.Buckets[i] {
						a.bkt[i][b.Index] += w * b.Mass
					}
				case query.CompMin, query.CompMax:
					if g.Ext == nil {
						continue
					}
					if x := g.Ext[i]; x.Has && (!a.ge.HasExt[i] || better(comp.Kind, x, a.ge.Ext[i])) {
						a.ge.Ext[i] = aggregate.Extreme{IsStr: x.IsStr, Num: x.Num, Str: x.Str, Node: x.Node}
						a.ge.HasExt[i] = true
					}
				case query.CompDistinct:
					if len(g.Registers[i]) > 0 {
						a.ge.Registers[i] = maxRegisters(a.ge.Registers[i], g.Registers[i])
					}
				}
			}
		}
	}
	sort.Strings(keys)
	est := aggregate.Estimate{Origin: 1 / float64(max(total, 1))}
	for _, k := range keys {
		a := groups[k]
		for i, m := range a.bkt {
			for idx, mass := range m {
				a.ge.Buckets[i] = append(a.ge.Buckets[i], aggregate.Bucket{Index: idx, Mass: mass})
			}
			sort.Slice(a.ge.Buckets[i], func(x, y int) bool { return a.ge.Buckets[i][x].Index < a.ge.Buckets[i][y].Index })
		}
		for i, reg := range a.ge.Registers {
			if reg != nil {
				a.ge.Distinct[i] = aggregate.HLLEstimate(reg)
			}
		}
		est.Groups = append(est.Groups, a.ge)
	}
	gr, err := GroupResults(p, est, float64(max(total, 1)))
	if err != nil {
		return nil, err
	}
	res := query.Finalize(p, gr)
	return &answer.Answer{Columns: res.Columns, Rows: res.Rows}, nil
}

// better says whether x beats y as the component's extreme.
func better(kind query.CompKind, x PartialExt, y aggregate.Extreme) bool {
	if x.IsStr != y.IsStr {
		return false // a plan's extreme is of one kind: fits refused a mix within a partial
	}
	less := x.Num < y.Num
	if x.IsStr {
		less = x.Str < y.Str
	}
	if kind == query.CompMin {
		return less
	}
	return !less && (x.Num != y.Num || x.Str != y.Str)
}

// maxRegisters is the register-wise maximum: the HyperLogLog of the union.
func maxRegisters(a, b []byte) []byte {
	if a == nil {
		return append([]byte(nil), b...)
	}
	for i, r := range b {
		a[i] = max(a[i], r)
	}
	return a
}

func mergeTop(p *query.Plan, parts []*Partial) (*answer.Answer, error) {
	seen := map[string]bool{}
	var all []*topk.Entry
	for _, part := range parts {
		for _, e := range part.Top {
			if seen[e.Node] {
				continue // a name is one member; fits refused repeats within a pool
			}
			seen[e.Node] = true
			all = append(all, &topk.Entry{Node: e.Node, Key: e.Key, Row: e.Row})
		}
	}
	sort.Slice(all, func(i, j int) bool { return topk.Less(all[i], all[j]) })
	if p.K > 0 && len(all) > p.K {
		all = all[:p.K]
	}
	return TopResult(p, all)
}

// Limits of a partial on the wire.
const (
	// MaxPartialBytes bounds an encoded partial: a top-k of MaxRows rows
	// or a GROUP BY's table, with room.
	MaxPartialBytes = 4 << 20
	maxPartialItems = 1 << 16
)

var (
	partialEnc cbor.EncMode
	partialDec cbor.DecMode
)

func init() {
	var err error
	if partialEnc, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	partialDec = strictcbor.DecMode(8, maxPartialItems, 16)
}

// ErrMalformedPartial wraps every reason DecodePartial refuses its input.
var ErrMalformedPartial = errors.New("run: malformed partial")

// Encode is the partial's wire form (CBOR, deterministic: equal partials
// encode to equal bytes, which is what a pool's gateways sign).
func (p *Partial) Encode() ([]byte, error) {
	b, err := partialEnc.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("run: encode partial: %w", err)
	}
	if len(b) > MaxPartialBytes {
		return nil, fmt.Errorf("run: a partial of %d bytes is larger than the limit of %d", len(b), MaxPartialBytes)
	}
	return b, nil
}

// DecodePartial reads a partial from the network, refusing oversized or
// malformed input; Merge checks it against the plan.
func DecodePartial(b []byte) (*Partial, error) {
	if len(b) > MaxPartialBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedPartial, len(b), MaxPartialBytes)
	}
	var p Partial
	if err := partialDec.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPartial, err)
	}
	return &p, nil
}

// fits checks a partial against the plan it claims to answer: its shape,
// and values no honest pool could hold (a negative count of members,
// means outside what the catalog's bounds allow are run.Implausible's).
func (part *Partial) fits(p *query.Plan) error {
	if part == nil {
		return errors.New("missing")
	}
	if part.Peers < 0 || part.Peers > 1<<40 {
		return fmt.Errorf("%d members", part.Peers)
	}
	if ProtocolOf(p.Kind) == TopK {
		if len(part.Groups) > 0 {
			return errors.New("groups in a top-k's partial")
		}
		if p.K > 0 && len(part.Top) > p.K {
			return fmt.Errorf("%d rows for a top-%d", len(part.Top), p.K)
		}
		seen := map[string]bool{}
		for i, e := range part.Top {
			if e.Node == "" || seen[e.Node] {
				return fmt.Errorf("row %d: no name, or one named twice", i)
			}
			seen[e.Node] = true
			if i > 0 && topk.Less(&topk.Entry{Node: e.Node, Key: e.Key}, &topk.Entry{Node: part.Top[i-1].Node, Key: part.Top[i-1].Key}) {
				return fmt.Errorf("row %d out of order", i)
			}
		}
		return nil
	}
	if len(part.Top) > 0 {
		return errors.New("a top-k list in an aggregate's partial")
	}
	if len(p.GroupBy) == 0 && len(part.Groups) > 1 {
		return fmt.Errorf("%d groups without GROUP BY", len(part.Groups))
	}
	n := len(p.Components)
	seen := map[string]bool{}
	for gi, g := range part.Groups {
		if seen[string(g.Key)] {
			return fmt.Errorf("group %d twice", gi)
		}
		seen[string(g.Key)] = true
		if len(g.Means) != n || g.Buckets != nil && len(g.Buckets) != n || g.Ext != nil && len(g.Ext) != n || g.Registers != nil && len(g.Registers) != n {
			return fmt.Errorf("group %d: not the plan's %d components", gi, n)
		}
		for i, comp := range p.Components {
			if m := g.Means[i]; math.IsNaN(m) || math.IsInf(m, 0) {
				return fmt.Errorf("group %d: component %d is %v", gi, i, m)
			}
			switch comp.Kind {
			case query.CompQuantile:
				if g.Buckets == nil {
					continue
				}
				for _, b := range g.Buckets[i] {
					if math.IsNaN(b.Mass) || math.IsInf(b.Mass, 0) || b.Index < math.MinInt32 || b.Index > math.MaxInt32 {
						return fmt.Errorf("group %d: a bad histogram bucket", gi)
					}
				}
			case query.CompMin, query.CompMax:
				if g.Ext != nil && g.Ext[i].Has && (math.IsNaN(g.Ext[i].Num) || g.Ext[i].IsStr != (comp.Arg != nil && comp.Arg.Kind == query.KindString)) {
					return fmt.Errorf("group %d: an extreme of the wrong kind", gi)
				}
			case query.CompDistinct:
				if g.Registers == nil {
					return fmt.Errorf("group %d: no HyperLogLog registers", gi)
				}
				if r := len(g.Registers[i]); r != 0 && r != aggregate.HLLRegisters {
					return fmt.Errorf("group %d: %d HyperLogLog registers, want %d", gi, r, aggregate.HLLRegisters)
				}
			default:
				if g.Ext != nil && g.Ext[i].Has || g.Registers != nil && g.Registers[i] != nil {
					return fmt.Errorf("group %d: component %d carries what it has no use for", gi, i)
				}
			}
		}
	}
	return nil
}
