package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/topk"
)

// Lie is what a lying peer does (Config.Liars): about itself, in the
// record it contributes and shows the asker's sample (inflate, extreme),
// or in the messages it sends (flow, forge, alter, drop).
type Lie int

// The lies (issue 23).
const (
	// LieForge writes, in every top-k message, an entry for each other
	// node it carries, made from a better record for that node
	// (reliability 1, within the catalog's bounds), unsigned.
	LieForge Lie = iota + 1
	// LieAlter does the same under the node's own signature, copied
	// from the entry it replaces.
	LieAlter
	// LieInflate claims every numeric attribute 1000 times its value,
	// capped at the catalog's bound: in range, wildly.
	LieInflate
	// LieExtreme claims every numeric attribute at the catalog's bound.
	LieExtreme
	// LieFlow sends made-up flows and estimates: every additive value,
	// histogram bucket and numeric extreme of its aggregate messages 1000
	// times, capped at the bound a receiver checks (run.Spec).
	LieFlow
	// LieDrop swallows the other nodes' entries of the top-k messages it
	// sends.
	LieDrop
	// LieSelfrank claims reliability 1, its other attributes true. The
	// simulated peers observed every peer's true reliability (a model of
	// the runtime's observer: node/observe.go) and refuse a claim above
	// it (run.Config.Reliability).
	LieSelfrank
	// LieSquares sends made-up flows of sums of squares alone (STDDEV,
	// VARIANCE): 1000 times, capped as LieFlow's, every sum and count
	// true, so that every total the sample checks holds and only the
	// spread moves.
	LieSquares
)

var lieNames = []string{LieForge: "forge", LieAlter: "alter", LieInflate: "inflate", LieExtreme: "extreme", LieFlow: "flow", LieDrop: "drop", LieSelfrank: "selfrank", LieSquares: "squares"}

// ParseLie reads a lie's name.
func ParseLie(name string) (Lie, error) {
	for l, n := range lieNames {
		if n != "" && n == name {
			return Lie(l), nil
		}
	}
	return 0, fmt.Errorf("sim: --lie is one of forge, alter, inflate, extreme, flow, squares, drop or selfrank, not %q", name)
}

func (l Lie) String() string {
	if l > 0 && int(l) < len(lieNames) {
		return lieNames[l]
	}
	return "none"
}

// claim is the record peer i contributes and shows: its own, or, for a
// liar about itself, what it claims.
func (s *Sim) claim(i int, rec query.Record) query.Record {
	if s.cfg.Lie != LieInflate && s.cfg.Lie != LieExtreme && s.cfg.Lie != LieSelfrank || !s.liar(int32(i)) {
		return rec
	}
	out := maps.Clone(rec)
	if s.cfg.Lie == LieSelfrank {
		out["reliability"] = query.Num(query.KindRatio, 1)
		return out
	}
	for name, v := range rec {
		a, ok := query.DefaultCatalog().Lookup(name)
		if !ok || !v.Kind.Numeric() || a.Max <= 0 {
			continue
		}
		x := a.Max
		if s.cfg.Lie == LieInflate {
			x = math.Min(1000*v.Num, a.Max)
		}
		out[name] = query.Num(v.Kind, x)
	}
	return out
}

// lieFlows rewrites an aggregate message a flow liar sends: a copy, its
// additive values, histogram buckets and numeric extremes 1000 times,
// within the bounds receivers check; a squares liar's, its sums of
// squares alone.
func (s *Sim) lieFlows(e aggregate.Envelope) (aggregate.Envelope, bool) {
	m := *e.Msg
	lied := false
	for _, v := range []*aggregate.Vec{&m.Flow, &m.Est} {
		vals := slices.Clone(v.Vals)
		for i, k := range v.Keys {
			c, ok := aggregate.SlotComp(k)
			if !ok || c >= len(s.bounds) || s.bounds[c] == 0 || vals[i] == 0 || s.cfg.Lie == LieSquares && (c >= len(s.plan.Components) || s.plan.Components[c].Kind != query.CompSumSq) {
				continue
			}
			vals[i] = math.Copysign(math.Min(1000*math.Abs(vals[i]), s.bounds[c]), vals[i])
			lied = true
		}
		v.Vals = vals
	}
	// And its extremes: every numeric MIN or MAX it passes on, raised
	// 1000 times within the bounds, under its witness's name and proof.
	if len(m.Ext) > 0 && s.cfg.Lie == LieFlow {
		ext := slices.Clone(m.Ext)
		for i := range ext {
			c, ok := aggregate.SlotComp(ext[i].Slot)
			if !ok || ext[i].IsStr || ext[i].Num == 0 || c >= len(s.bounds) || s.bounds[c] == 0 {
				continue
			}
			ext[i].Num = math.Copysign(math.Min(1000*math.Abs(ext[i].Num), s.bounds[c]), ext[i].Num)
			lied = true
		}
		m.Ext = ext
	}
	e.Msg = &m
	return e, lied
}

// liar says whether peer i lies: a share Liars of the peers, drawn from
// the seed by peer (never the asker, peer 0), so that joiners draw too.
func (s *Sim) liar(i int32) bool {
	return i != 0 && lies(s.cfg.Seed, s.cfg.Liars, s.cfg.First+int(i))
}

// lies says whether the peer of record n (Config.First + its index)
// lies, for a share of liars: by a hash of the seed and n, so that the
// pools of a cloud (RunPools, each its own Sim) draw theirs apart.
func lies(seed uint64, share float64, n int) bool {
	if share <= 0 {
		return false
	}
	x := seed ^ uint64(n)*0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < share
}

// simSeal is the simulator's model of the peers' signatures (the runtime
// signs with each peer's ed25519 key: node/seal.go): a MAC under a key
// of the simulation's that only the honest peers' code uses — a liar's
// code never calls Sign for another node, as it could not make another's
// ed25519 signature. Checking one is a hash, not a curve operation.
type simSeal struct{ key [32]byte }

func (m simSeal) mac(node string, msg []byte) []byte {
	h := sha256.New()
	h.Write(m.key[:])
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write(msg)
	return h.Sum(nil)[:16]
}

func (m simSeal) Sign(node string, msg []byte) []byte { return m.mac(node, msg) }

func (m simSeal) Verify(node string, msg, sig []byte) error {
	if !bytes.Equal(sig, m.mac(node, msg)) {
		return fmt.Errorf("%w: %s", run.ErrForged, node)
	}
	return nil
}

// newSeal is the signatures' model for a simulation with liars (none
// without: the honest runs cost what they did).
func newSeal(cfg Config) run.Sealer {
	if cfg.Liars <= 0 {
		return nil
	}
	var m simSeal
	binary.LittleEndian.PutUint64(m.key[:], cfg.Seed)
	copy(m.key[8:], "peerq sim seal")
	return m
}

// lie rewrites a top-k message liar from sends, as its Lie says, and
// reports whether it changed anything.
func (s *Sim) lie(from int32, e topk.Envelope) (topk.Envelope, bool) {
	if s.cfg.Lie != LieForge && s.cfg.Lie != LieAlter && s.cfg.Lie != LieDrop {
		return e, false
	}
	m := *e.Msg
	self := query.SyntheticName(s.cfg.First + int(from))
	es := make([]*topk.Entry, 0, len(m.Entries))
	lied := false
	for _, x := range m.Entries {
		i, ok := s.index(x.Node)
		if x.Node == self || !ok {
			es = append(es, x)
			continue
		}
		if s.cfg.Lie == LieDrop {
			lied = true
			continue
		}
		forged := s.forgedEntry(int32(i), x)
		if forged == nil {
			es = append(es, x)
			continue
		}
		es = append(es, forged)
		lied = true
	}
	if !lied {
		return e, false
	}
	topk.Sort(es)
	m.Entries = es
	e.Msg = &m
	return e, true
}

// forgedEntry is the entry a forging liar writes for node i in place of
// x, i's own: i's record with reliability 1 (under x's proof, for
// LieAlter), or nil when that is what x says already. Liars forge the
// same nodes' entries message after message: each is made once and kept
// (s.forged, emptied past forgedKept nodes), where making it again each
// time (the node's record, its row and key) was a third of what a forging
// run allocated. The same entry each time: receivers refuse it as they
// refused a fresh one.
func (s *Sim) forgedEntry(i int32, x *topk.Entry) *topk.Entry {
	if f, ok := s.forged[i]; ok {
		return f
	}
	if s.forged == nil || len(s.forged) >= forgedKept {
		s.forged = map[int32]*topk.Entry{}
	}
	better := s.record(int(i))
	if s.recs != nil {
		better = maps.Clone(better) // the record kept; else a fresh one, its own
	}
	better["reliability"] = query.Num(query.KindRatio, 1)
	forged := run.Entry(s.plan, better)
	if forged != nil && bytes.Equal(forged.Key, x.Key) && bytes.Equal(forged.Row, x.Row) {
		forged = nil
	}
	if forged != nil && s.cfg.Lie == LieAlter {
		// x is i's entry as i signed it (a liar's list holds only
		// entries it checked), the same for every liar.
		forged.Proof = x.Proof
	}
	s.forged[i] = forged
	return forged
}

// forgedKept bounds s.forged: early in a run the liars' lists hold
// entries of many nodes, later those of the top few.
const forgedKept = 1 << 16

// peerIndex reads a simulated peer's record number from its name
// (Config.First + its index in its Sim).
func peerIndex(name string) (int, bool) {
	i, err := strconv.Atoi(strings.TrimPrefix(name, "peer-"))
	return i, err == nil && strings.HasPrefix(name, "peer-") && i >= 0
}

// index is the index in this Sim of the peer named name: false for a name
// of no peer of it (another pool's, in RunPools, or none).
func (s *Sim) index(name string) (int, bool) {
	i, ok := peerIndex(name)
	i -= s.cfg.First
	return i, ok && i >= 0 && i < s.n
}

// forgedAccepted counts the entries in the asker's list that are not
// what their node says: written by a liar for another node.
func (s *Sim) forgedAccepted() int {
	k := 0
	for _, e := range s.origin.TopK().Top() {
		i, ok := s.index(e.Node)
		if !ok {
			k++
			continue
		}
		if honest := run.Entry(s.plan, s.record(i)); honest == nil || !bytes.Equal(honest.Key, e.Key) || !bytes.Equal(honest.Row, e.Row) {
			k++
		}
	}
	return k
}

// sampleQuery names the simulated query in the sample's ranks.
func (s *Sim) sampleQuery() []byte { return fmt.Appendf(nil, "sim-%d", s.cfg.Seed) }

// judge makes, once the originator's answer is final (or at the last
// round), the sample check the runtime's asker makes (node/sample.go):
// the live members of lowest rank, their records as they claim them; and,
// with liars, measures the answer against the honest peers' alone.
func (s *Sim) judge(ans *answer.Answer, err error) {
	s.stats.HonestErr = math.NaN()
	if s.cfg.Liars > 0 && !s.churning() {
		if s.honestKeys == nil {
			s.honestKeys = map[string][]query.Value{}
			exact := query.ExactSeq(s.plan, func(yield func(query.Record) bool) {
				for i, st := range s.st {
					if st.alive && !s.liar(int32(i)) && !yield(s.record(i)) {
						return
					}
				}
			})
			for _, row := range exact.Rows {
				s.honestKeys[rowKey(s.plan, row)] = row
			}
		}
		s.stats.HonestErr = s.errAgainst(ans, err, s.honestKeys)
	}
	if !run.Sampled(s.plan) {
		return
	}
	if s.check == nil && (s.origin.Final() || s.Done()) {
		c := run.DefaultSampleCheck()
		if s.cfg.CheckOnce {
			c.More, c.Fallback = 0, run.Fallback{}
		}
		names := make([]string, len(s.known))
		for k, i := range s.known {
			names[k] = query.SyntheticName(s.cfg.First + int(i))
		}
		check := func(size int) run.SampleVerdict {
			var recs []query.Record
			for _, name := range run.SampleOf(s.sampleQuery(), names, size) {
				i, _ := s.index(name)
				recs = append(recs, s.record(i))
			}
			v, err := s.origin.CheckSample(recs, len(s.known), c)
			if err != nil {
				v = run.SampleVerdict{Reason: err.Error()}
			}
			s.judged = recs // the last asked is the verdict's (Grow)
			return v
		}
		// As the runtime's asker (run.SampleCheck.Grow): a doubt, or an
		// answer that did not converge, asks the next More; a robust
		// answer the sample contests is the sample's own, sampled as far
		// as it needs (run.Fallback).
		v, _ := c.Grow(s.plan, check(c.Size), c.Size, len(names), true, ans != nil && ans.Converged, true,
			func(asked, more int, _ bool) (run.SampleVerdict, bool) {
				s.escalated = true
				return check(asked + more), true
			})
		honestErr := s.stats.HonestErr
		if _, _, ok := c.Fallback.StandIn(s.plan, v); ok {
			s.standIn = true
			if s.cfg.Liars > 0 && !s.churning() {
				honestErr = s.errAgainst(v.Answer, nil, s.honestKeys)
			}
		}
		s.check, s.honestAtCheck = &v, honestErr
	}
	if s.check != nil {
		s.stats.Checked, s.stats.Flagged, s.stats.Escalated = true, s.check.Contested && !s.standIn, s.escalated
		s.stats.StandIn = s.standIn
	}
}

// Judged is how many peers the asker left out of its top-k for claims
// about themselves, signed, that its own observations refuse
// (run.Instance.Implausible).
func (s *Sim) Judged() int { return len(s.origin.Implausible()) }

// Check is the sample check of the originator's answer, once made, and
// (with liars) that answer's error against the honest peers' alone: the
// answer the runtime's asker returns is the one the rule made final, and
// the check is of it (the simulation's later rounds go on moving it).
func (s *Sim) Check() (v run.SampleVerdict, honestErr float64, ok bool) {
	if s.check == nil {
		return run.SampleVerdict{}, math.NaN(), false
	}
	return *s.check, s.honestAtCheck, true
}

// honestValue is the first cell of the answer over the honest peers (0
// before it is computed, or for a non-numeric cell).
func (s *Sim) honestValue() float64 {
	for _, row := range s.honestKeys {
		if len(row) > 0 && row[0].Kind.Numeric() {
			return row[0].Num
		}
	}
	return 0
}

// observedReliability is the simulated peers' observation of node: its
// true reliability (every peer watched every other the whole window).
// Every check of a top-k entry asks it: each peer's is kept from its
// record as it is made (addOne, s.seen), where regenerating its record at
// each check made 40% of what a run with liars allocated, and at its first
// check still a tenth of a forging run's (10^5 peers).
func (s *Sim) observedReliability(node string) (float64, bool) {
	i, ok := s.index(node)
	if !ok || i >= len(s.seen) {
		return 0, false
	}
	return s.seen[i], true
}

// selfRanked counts the liars in the asker's final top-k list that claim
// more reliability than the peers observed.
func (s *Sim) selfRanked() int {
	k := 0
	for _, e := range s.origin.TopK().Top() {
		i, ok := s.index(e.Node)
		if !ok || !s.liar(int32(i)) {
			continue
		}
		seen, _ := s.observedReliability(e.Node)
		if claimed := s.record(i)["reliability"].Num; claimed > seen {
			k++
		}
	}
	return k
}

// honestShare is the share of the top-k over the peers' true records (the
// honest answer: a liar about itself ranked by what it is) that the
// asker's final list holds.
func (s *Sim) honestShare() float64 {
	if s.honestTop == nil {
		exact := query.ExactSeq(s.plan, func(yield func(query.Record) bool) {
			for i, st := range s.st {
				if st.alive && !yield(s.synthetic(i)) {
					return
				}
			}
		})
		s.honestTop = map[string]bool{}
		for _, n := range exact.Nodes {
			s.honestTop[n] = true
		}
	}
	if len(s.honestTop) == 0 {
		return 1
	}
	in := 0
	for _, e := range s.origin.TopK().Top() {
		if s.honestTop[e.Node] {
			in++
		}
	}
	return float64(in) / float64(len(s.honestTop))
}
