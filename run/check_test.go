package run

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/topk"
)

func mustCompile(t testing.TB, src string) *query.Plan {
	t.Helper()
	p, err := query.CompileText(src, query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// honest is a record a peer could report, with the given values over it.
func honest(node string, kv ...any) query.Record {
	r := query.Record{
		"node": query.Str(node), "reliability": query.Num(query.KindRatio, 0.5),
		"mem_free": query.Num(query.KindBytes, 1<<30), "cpu_cores": query.Num(query.KindCount, 8),
		"region": query.Str("eu"), "reserved": query.Bool(false),
	}
	for i := 0; i < len(kv); i += 2 {
		r[kv[i].(string)] = kv[i+1].(query.Value)
	}
	return r
}

func ratio(x float64) query.Value { return query.Num(query.KindRatio, x) }
func bytes(x float64) query.Value { return query.Num(query.KindBytes, x) }

// lie is the honest entry of rec with its sort key taken from forged: the
// row says one thing, the key another.
func lie(p *query.Plan, rec, forged query.Record) *topk.Entry {
	e := Entry(p, rec)
	e.Key = p.SortKey(forged)
	return e
}

// withKey is e with its key's bytes replaced.
func withKey(e *topk.Entry, key []byte) *topk.Entry {
	c := *e
	c.Key = key
	return &c
}

// Every part of a top-k entry from another peer is checked against the
// plan and the catalog: a lie about a sort key is refused whether or not
// the row carries the value, honest values at the bounds pass.
func TestCheckEntry(t *testing.T) {
	nodeOnly := mustCompile(t, "SELECT node FROM peers ORDER BY reliability DESC LIMIT 3")
	withRel := mustCompile(t, "SELECT node, reliability, mem_free FROM peers ORDER BY reliability DESC LIMIT 3")
	reserve := mustCompile(t, "RESERVE 2 FROM peers ORDER BY reliability DESC AS x FOR 1m")
	byMem := mustCompile(t, "SELECT node FROM peers ORDER BY mem_free DESC, region LIMIT 3")
	computed := mustCompile(t, "SELECT node FROM peers ORDER BY mem_free / cpu_cores DESC LIMIT 3")
	computedRow := mustCompile(t, "SELECT node, mem_free, cpu_cores FROM peers ORDER BY mem_free / cpu_cores DESC LIMIT 3")
	aliased := mustCompile(t, "SELECT node, mem_free / cpu_cores AS per FROM peers ORDER BY per DESC LIMIT 3")
	byName := mustCompile(t, "SELECT node, region FROM peers LIMIT 3")

	a := honest("peer-1")
	rel5 := honest("peer-1", "reliability", ratio(5))
	num := func(x float64) []byte { // a numeric DESC key's bytes, as SortKey would write any float
		p := &query.Plan{Order: []query.OrderKey{{Expr: &query.Expr{Op: query.OpAttr, Kind: query.KindNumber, Name: "x"}, Desc: true}}}
		return p.SortKey(query.Record{"x": query.Num(query.KindNumber, x)})
	}
	key := num(0.5)
	for _, c := range []struct {
		name string
		p    *query.Plan
		e    *topk.Entry
		ok   bool
	}{
		// Honest, at the bounds.
		{"honest", nodeOnly, Entry(nodeOnly, a), true},
		{"reliability 1", nodeOnly, Entry(nodeOnly, honest("p", "reliability", ratio(1))), true},
		{"reliability 0", withRel, Entry(withRel, honest("p", "reliability", ratio(0))), true},
		{"mem_free at its bound", withRel, Entry(withRel, honest("p", "mem_free", bytes(1<<60))), true},
		{"no reliability (NULL)", withRel, Entry(withRel, honest("p", "reliability", query.Null)), true},
		{"reserve candidate", reserve, Entry(reserve, a), true},
		{"two keys", byMem, Entry(byMem, honest("p", "mem_free", bytes(0), "region", query.Str("x\x00y"))), true},
		{"computed, any finite", computed, lie(computed, a, honest("p", "mem_free", bytes(1<<60), "cpu_cores", query.Num(query.KindCount, 1e-9))), true},
		{"computed in the row", computedRow, Entry(computedRow, a), true},
		{"computed alias", aliased, Entry(aliased, a), true},
		{"by name", byName, Entry(byName, a), true},

		// A sort key out of bounds, the row silent.
		{"key reliability 5", nodeOnly, lie(nodeOnly, a, rel5), false},
		{"key reliability -0.1", nodeOnly, lie(nodeOnly, a, honest("p", "reliability", ratio(-0.1))), false},
		{"reserve key reliability 5", reserve, lie(reserve, a, rel5), false},
		{"key mem_free above its bound", byMem, lie(byMem, a, honest("p", "mem_free", bytes(1<<61))), false},
		// A sort key that disagrees with its row.
		{"key 0.9, row 0.5", withRel, lie(withRel, a, honest("p", "reliability", ratio(0.9))), false},
		{"key NULL, row 0.5", withRel, lie(withRel, a, honest("p", "reliability", query.Null)), false},
		{"computed key, row disagrees", computedRow, lie(computedRow, a, honest("p", "mem_free", bytes(1<<40))), false},
		{"alias key, row disagrees", aliased, lie(aliased, a, honest("p", "mem_free", bytes(1<<40))), false},
		{"name key of another node", byName, lie(byName, a, honest("peer-0")), false},
		// A sort key SortKey could not have written.
		{"key not finite", computed, withKey(Entry(computed, a), append([]byte{1}, num(math.Inf(1))[1:]...)), false},
		{"key -0", computed, withKey(Entry(computed, a), []byte{1, 0x80, 0, 0, 0, 0, 0, 0, 0}), false},
		{"key NaN", computed, withKey(Entry(computed, a), []byte{1, 0, 0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), false},
		{"key +0", computed, withKey(Entry(computed, a), []byte{1, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), true},
		{"key cut short", nodeOnly, withKey(Entry(nodeOnly, a), key[:5]), false},
		{"key with trailing bytes", nodeOnly, withKey(Entry(nodeOnly, a), append(key, 0)), false},
		{"key marker", nodeOnly, withKey(Entry(nodeOnly, a), append([]byte{3}, key[1:]...)), false},
		{"key a string for a number", nodeOnly, withKey(Entry(nodeOnly, a), []byte{1, 'h', 'i', 0, 0}), false},
		{"key string escape", byMem, withKey(Entry(byMem, a), append(Entry(byMem, a).Key[:10], 'e', 0, 7, 0, 0)), false},
		{"empty key", nodeOnly, withKey(Entry(nodeOnly, a), nil), false},
		// The node and the row.
		{"node too long", nodeOnly, Entry(nodeOnly, honest(strings.Repeat("n", query.MaxStringBytes+1))), false},
		{"row mem_free above its bound", withRel, lie(withRel, honest("p", "mem_free", bytes(1<<61)), honest("p")), false},
		{"row reliability of another kind", withRel, &topk.Entry{Node: "p", Key: Entry(withRel, a).Key,
			Row: query.EncodeRow([]query.Value{{}, query.Num(query.KindDuration, 0.5), bytes(1 << 30)})}, false},
	} {
		err := CheckEntry(c.p, c.e)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.name, err, c.ok)
		}
	}
}

// GROUP BY keys, extremes and histogram buckets from other peers are
// checked against the attributes' bounds: lies refused, honest values at
// the bounds taken.
func TestAggregateChecks(t *testing.T) {
	cores := mustCompile(t, "SELECT cpu_cores, region, COUNT(*) FROM peers GROUP BY cpu_cores, region")
	key := func(vs ...query.Value) []byte { return query.EncodeRow(vs) }
	count := func(x float64) query.Value { return query.Num(query.KindCount, x) }
	for _, c := range []struct {
		name string
		key  []byte
		ok   bool
	}{
		{"honest", key(count(8), query.Str("eu")), true},
		{"at the bounds", key(count(0), query.Str(strings.Repeat("r", query.MaxStringBytes))), true},
		{"at the upper bound", key(count(1<<20), query.Null), true},
		{"cores above the bound", key(count(1<<20+1), query.Str("eu")), false},
		{"cores negative", key(count(-1), query.Str("eu")), false},
		{"cores of another kind", key(query.Num(query.KindBytes, 8), query.Str("eu")), false},
		{"region a number", key(count(8), count(1)), false},
		{"region too long", key(count(8), query.Str(strings.Repeat("r", query.MaxStringBytes+1))), false},
		{"arity", key(count(8)), false},
	} {
		if got := validKey(cores)(c.key); got != c.ok {
			t.Errorf("key %s: %v, want %v", c.name, got, c.ok)
		}
	}

	ext := mustCompile(t, "SELECT MIN(reliability), MAX(mem_free), MAX(region), MAX(mem_free / cpu_cores) FROM peers")
	comp := func(p *query.Plan, k query.CompKind, arg string) int {
		for i, c := range p.Components {
			if c.Kind == k && c.Arg.String() == arg {
				return i
			}
		}
		t.Fatalf("no component %s(%s) in %+v", k, arg, p.Components)
		return -1
	}
	minRel, maxMem, maxRegion, maxPer := comp(ext, query.CompMin, "reliability"), comp(ext, query.CompMax, "mem_free"),
		comp(ext, query.CompMax, "region"), comp(ext, query.CompMax, "(mem_free / cpu_cores)")
	n := func(x float64) aggregate.Extreme { return aggregate.Extreme{Num: x} }
	s := func(x string) aggregate.Extreme { return aggregate.Extreme{IsStr: true, Str: x} }
	valid := validExtreme(ext, Config{})
	for _, c := range []struct {
		name string
		comp int
		x    aggregate.Extreme
		ok   bool
	}{
		{"reliability 0", minRel, n(0), true},
		{"reliability 1", minRel, n(1), true},
		{"reliability 5", minRel, n(5), false},
		{"reliability -0.1", minRel, n(-0.1), false},
		{"reliability a string", minRel, s("high"), false},
		{"mem_free at its bound", maxMem, n(1 << 60), true},
		{"mem_free above its bound", maxMem, n(1 << 62), false},
		{"region", maxRegion, s("zz"), true},
		{"region a number", maxRegion, n(1), false},
		{"region too long", maxRegion, s(strings.Repeat("z", query.MaxStringBytes+1)), false},
		{"computed: any finite number", maxPer, n(1e300), true},
		{"computed: a string", maxPer, s("x"), false},
		{"no such component", len(ext.Components), n(0), false},
	} {
		if got := valid(c.comp, c.x); got != c.ok {
			t.Errorf("extreme %s: %v, want %v", c.name, got, c.ok)
		}
	}

	pct := mustCompile(t, "SELECT PERCENTILE(reliability, 0.9), PERCENTILE(mem_free / cpu_cores, 0.5) FROM peers")
	bucket := validBucket(pct)
	rel, per := comp(pct, query.CompQuantile, "reliability"), comp(pct, query.CompQuantile, "(mem_free / cpu_cores)")
	for _, c := range []struct {
		name string
		comp int
		x    float64
		ok   bool
	}{
		{"reliability 0", rel, 0, true},
		{"reliability 1", rel, 1, true},
		{"reliability 0.37", rel, 0.37, true},
		{"reliability 5", rel, 5, false},
		{"reliability 1.03", rel, 1.03, false},
		{"reliability -1", rel, -1, false},
		{"computed: any", per, -1e30, true},
	} {
		if got := bucket(c.comp, aggregate.HistBucket(c.x)); got != c.ok {
			t.Errorf("bucket of %s: %v, want %v", c.name, got, c.ok)
		}
	}

	// FROM leases: the ledger's catalog.
	leases, err := query.CompileText("SELECT owner, MAX(peer_hours) FROM leases GROUP BY owner", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if v := validExtreme(leases, Config{}); !v(1, n(1<<20)) || v(1, n(1<<20+1)) || v(1, n(-1)) {
		t.Errorf("leases: peer_hours checked against another catalog (components %+v)", leases.Components)
	}
	if v := validKey(leases); !v(key(query.Str("peer-1"))) || v(key(count(1))) {
		t.Error("leases: owner checked against another catalog")
	}
}

// The runtime's instances (CheckReceived) refuse a lying peer's message
// through Step, with ErrRefused, and it changes nothing; the simulator's
// (no CheckReceived) take it. Honest messages pass both.
func TestStepRefusesLies(t *testing.T) {
	top := mustCompile(t, "SELECT node FROM peers ORDER BY reliability DESC LIMIT 3")
	agg := mustCompile(t, "SELECT MAX(reliability), COUNT(*) FROM peers")
	recs := []query.Record{honest("peer-0", "reliability", ratio(0.2)), honest("peer-1", "reliability", ratio(0.9))}
	for _, check := range []bool{true, false} {
		bind := func(p *query.Plan) *Binding {
			b, err := Bind(p, Config{Peers: 3, Rand: rand.New(rand.NewPCG(1, 2)), Sampler: fixed(1), Asker: 0, CheckReceived: check})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		// Top-k: the liar (peer-2) says reliability 5.
		b := bind(top)
		asker, err := b.New(true, recs[0])
		if err != nil {
			t.Fatal(err)
		}
		msg := func(es ...*topk.Entry) []byte {
			return (&topk.Message{Kind: topk.Reply, Entries: es}).Encode(nil)
		}
		forged := lie(top, honest("peer-2"), honest("peer-2", "reliability", ratio(5)))
		err = asker.Step(1, msg(forged, Entry(top, recs[1])))
		a, _ := asker.Answer(3)
		if check && (!errors.Is(err, ErrRefused) || len(a.Nodes) != 1) || !check && (err != nil || a.Nodes[0] != "peer-2") {
			t.Errorf("check %v: a lie about reliability: %v, answer %v", check, err, a.Nodes)
		}
		if err := asker.Step(1, msg(Entry(top, recs[1]))); err != nil {
			t.Errorf("check %v: an honest entry: %v", check, err)
		}

		// Aggregate: the liar says MAX(reliability) is 5.
		b = bind(agg)
		q, err := b.New(false, recs[0])
		if err != nil {
			t.Fatal(err)
		}
		liar, err := b.New(false, honest("peer-2", "reliability", ratio(0.5)))
		if err != nil {
			t.Fatal(err)
		}
		liar.Tick()
		out := encoded(liar)
		if len(out) != 1 {
			t.Fatalf("the liar sends %d messages", len(out))
		}
		m, err := aggregate.Decode(out[0].Msg)
		if err != nil {
			t.Fatal(err)
		}
		honestMsg := m.Encode(nil)
		forge := func(x float64) []byte {
			m, _ := aggregate.Decode(honestMsg)
			for i := range m.Ext {
				m.Ext[i].Num = x
			}
			return m.Encode(nil)
		}
		// 5 exceeds the magnitude the core always checks (Spec.Bounds);
		// -0.5 is within it, but out of reliability's range.
		if err := q.Step(2, forge(5)); !errors.Is(err, ErrRefused) {
			t.Errorf("check %v: MAX(reliability) 5: %v", check, err)
		}
		err = q.Step(2, forge(-0.5))
		if check && !errors.Is(err, ErrRefused) || !check && err != nil {
			t.Errorf("check %v: MAX(reliability) -0.5: %v", check, err)
		}
		if err := q.Step(peer.ID(2), honestMsg); err != nil {
			t.Errorf("check %v: an honest aggregate message: %v", check, err)
		}
	}
}

// Whatever a peer sends, the runtime's instances (CheckReceived) take or
// refuse it without panicking, and what they take can be read: the checks
// read every value of a message that would be used.
func FuzzCheckedStep(f *testing.F) {
	top := mustCompile(f, "SELECT node, reliability, mem_free / cpu_cores AS per FROM peers ORDER BY reliability DESC, per, region LIMIT 3")
	agg := mustCompile(f, "SELECT region, MIN(reliability), MAX(region), PERCENTILE(mem_free, 0.5), COUNT(DISTINCT zone) FROM peers GROUP BY region")
	var bs []*Binding
	for _, p := range []*query.Plan{top, agg} {
		b, err := Bind(p, Config{Peers: 3, Rand: rand.New(rand.NewPCG(1, 2)), Sampler: fixed(1), CheckReceived: true})
		if err != nil {
			f.Fatal(err)
		}
		bs = append(bs, b)
		q, err := b.New(false, honest("peer-1", "zone", query.Str("eu-a")))
		if err != nil {
			f.Fatal(err)
		}
		q.Tick()
		for _, env := range encoded(q) {
			f.Add(env.Msg)
		}
	}
	f.Add((&topk.Message{Kind: topk.Reply, Entries: []*topk.Entry{lie(top, honest("peer-2"), honest("peer-2", "reliability", ratio(5)))}}).Encode(nil))
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, b := range bs {
			q, err := b.New(true, honest("peer-0", "zone", query.Str("eu-b")))
			if err != nil {
				t.Fatal(err)
			}
			q.Step(1, msg)
			if _, err := q.Answer(3); err != nil {
				t.Fatalf("an answer the checks let through cannot be read: %v", err)
			}
		}
	})
}

// keys is a Sealer over ed25519 keys by node: this peer signs as self.
type keys struct {
	self string
	priv map[string]ed25519.PrivateKey
}

// threeKeys are peer-0's (which signs), peer-1's and peer-2's keys.
func threeKeys() keys {
	k := keys{self: "peer-0", priv: map[string]ed25519.PrivateKey{}}
	for i, name := range []string{"peer-0", "peer-1", "peer-2"} {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i + 1)
		k.priv[name] = ed25519.NewKeyFromSeed(seed)
	}
	return k
}

func (k keys) Sign(node string, msg []byte) []byte {
	if node != k.self {
		return nil
	}
	return ed25519.Sign(k.priv[k.self], msg)
}
func (k keys) Verify(node string, msg, sig []byte) error {
	priv, ok := k.priv[node]
	if !ok || len(sig) != ed25519.SignatureSize || !ed25519.Verify(priv.Public().(ed25519.PublicKey), msg, sig) {
		return fmt.Errorf("%w: %s", ErrForged, node)
	}
	return nil
}

// With a Sealer, an entry counts only if the node it names signed it for
// this query: unsigned, altered, signed by another node or for another
// query, it is refused (ErrForged); one's own entry goes out signed.
func TestSealedEntries(t *testing.T) {
	p := mustCompile(t, "SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 3")
	k := threeKeys()
	qid := []byte("query-1")
	signed := func(node string, rel float64, by string, q []byte) *topk.Entry {
		e := Entry(p, honest(node, "reliability", ratio(rel)))
		e.Proof = ed25519.Sign(k.priv[by], EntryMessage(q, e))
		return e
	}
	altered := signed("peer-1", 0.5, "peer-1", qid)
	altered.Key = Entry(p, honest("peer-1", "reliability", ratio(0.9))).Key
	altered.Row = Entry(p, honest("peer-1", "reliability", ratio(0.9))).Row
	c := newEntryCheck(p)
	c.seal, c.query = k, qid
	for _, tc := range []struct {
		name string
		e    *topk.Entry
		ok   bool
	}{
		{"signed by its node", signed("peer-1", 0.5, "peer-1", qid), true},
		{"unsigned", Entry(p, honest("peer-1", "reliability", ratio(0.5))), false},
		{"signed by another node", signed("peer-1", 0.5, "peer-2", qid), false},
		{"signed for another query", signed("peer-1", 0.5, "peer-1", []byte("query-2")), false},
		{"altered after signing", altered, false},
		{"a node without a key", signed("peer-9", 0.5, "peer-1", qid), false},
	} {
		err := c.check(tc.e)
		if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrForged) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	b, err := Bind(p, Config{Peers: 3, Rand: rand.New(rand.NewPCG(1, 2)), Sampler: fixed(1), CheckReceived: true, Seal: k, Query: qid})
	if err != nil {
		t.Fatal(err)
	}
	own, err := b.NewTopK(honest("peer-0", "reliability", ratio(0.3)), true)
	if err != nil {
		t.Fatal(err)
	}
	if es := own.Top(); len(es) != 1 || c.check(es[0]) != nil {
		t.Errorf("this peer's own entry does not pass the check: %v", es)
	}
}

// A reliability a node claims above what this peer saw of it (the share
// of the window it was up, the time unwatched counted as up) is refused,
// as a column or as a sort key, however little above (the bound carries
// its own doubt); at the bound, or of a node this peer cannot judge, it
// passes.
func TestReliabilityClaimsBounded(t *testing.T) {
	seen := map[string]float64{"peer-1": 0.5}
	observed := func(node string) (float64, bool) { x, ok := seen[node]; return x, ok }
	for _, text := range []string{
		"SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 3",
		"SELECT node FROM peers ORDER BY reliability DESC LIMIT 3",
	} {
		p := mustCompile(t, text)
		c := newEntryCheck(p)
		c.reliability = observed
		for _, tc := range []struct {
			node string
			rel  float64
			ok   bool
		}{
			{"peer-1", 0.99, false},
			{"peer-1", 0.5005, false},
			{"peer-1", 0.5, true},
			{"peer-2", 0.99, true}, // never seen: not judged here
		} {
			err := c.check(Entry(p, honest(tc.node, "reliability", ratio(tc.rel))))
			if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrImplausible) {
				t.Errorf("%s: %s claims %v: %v", text, tc.node, tc.rel, err)
			}
		}
	}
}

// A member's claim that passes a WHERE on reliability is bounded too,
// although its entry does not carry it: the filter's floor is read from
// the plan's top-level AND terms, and a member seen up less is refused.
func TestReliabilityFilterBounded(t *testing.T) {
	seen := map[string]float64{"peer-1": 0.5, "peer-2": 0.995}
	observed := func(node string) (float64, bool) { x, ok := seen[node]; return x, ok }
	for _, tc := range []struct {
		text  string
		floor float64
	}{
		{"SELECT node, mem_free FROM peers WHERE reliability >= 0.99 ORDER BY mem_free DESC LIMIT 3", 0.99},
		{"SELECT node, mem_free FROM peers WHERE cpu_cores >= 2 AND reliability > 0.9 ORDER BY mem_free DESC LIMIT 3", 0.9},
		{"SELECT node, mem_free FROM peers WHERE 0.8 <= reliability AND reliability >= 0.7 ORDER BY mem_free DESC LIMIT 3", 0.8},
		{"SELECT node, mem_free FROM peers WHERE reliability BETWEEN 0.95 AND 1 ORDER BY mem_free DESC LIMIT 3", 0.95},
		{"SELECT node, mem_free FROM peers WHERE reliability >= 0.99 OR cpu_cores >= 2 ORDER BY mem_free DESC LIMIT 3", 0},
		{"SELECT node, mem_free FROM peers WHERE NOT reliability < 0.99 ORDER BY mem_free DESC LIMIT 3", 0},
		{"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 3", 0},
	} {
		p := mustCompile(t, tc.text)
		c := newEntryCheck(p)
		if c.relFloor != tc.floor {
			t.Errorf("%s: floor %v, want %v", tc.text, c.relFloor, tc.floor)
		}
		c.reliability = observed
		for _, node := range []string{"peer-1", "peer-2", "peer-3"} {
			// Each claims 1: its record passes the WHERE where it is.
			err := c.check(Entry(p, honest(node, "mem_free", query.Num(query.KindBytes, 8<<30), "reliability", ratio(1))))
			refuse := node == "peer-1" && tc.floor > 0.5
			if refuse != (err != nil) || refuse && !errors.Is(err, ErrImplausible) {
				t.Errorf("%s: %s (seen up %v): %v, want refused %v", tc.text, node, seen[node], err, refuse)
			}
		}
	}
}

// A MIN or MAX extreme is taken only with its witness's signature: one
// unsigned, signed by another node, for another query, under another
// witness ID, or altered after signing is refused; this peer's own
// extremes are signed at New and pass.
func TestSealedExtremes(t *testing.T) {
	p := mustCompile(t, "SELECT MAX(mem_free), MIN(region) FROM peers")
	k := threeKeys()
	idOf := func(name string) peer.ID { return peer.ID(len(name)*1000 + int(name[len(name)-1])) }
	qid := []byte("query-1")
	cfg := Config{Peers: 3, Rand: rand.New(rand.NewPCG(1, 2)), Sampler: fixed(1), CheckReceived: true, Seal: k, Query: qid, IDOf: idOf, Self: "peer-0", SelfID: idOf("peer-0")}
	valid := validExtreme(p, cfg)
	signed := func(node string, x float64, by string, q []byte) aggregate.Extreme {
		e := aggregate.Extreme{Num: x, Node: node, Witness: idOf(node)}
		e.Proof = ed25519.Sign(k.priv[by], ExtremeMessage(q, e))
		return e
	}
	altered := signed("peer-1", 8<<30, "peer-1", qid)
	altered.Num = 64 << 30
	otherID := signed("peer-1", 8<<30, "peer-1", qid)
	otherID.Witness = idOf("peer-2")
	for _, tc := range []struct {
		name string
		e    aggregate.Extreme
		ok   bool
	}{
		{"signed by its witness", signed("peer-1", 8<<30, "peer-1", qid), true},
		{"unsigned", aggregate.Extreme{Num: 8 << 30, Node: "peer-1", Witness: idOf("peer-1")}, false},
		{"signed by another node", signed("peer-1", 8<<30, "peer-2", qid), false},
		{"signed for another query", signed("peer-1", 8<<30, "peer-1", []byte("query-2")), false},
		{"altered after signing", altered, false},
		{"under another witness's ID", otherID, false},
		{"no witness named", aggregate.Extreme{Num: 8 << 30}, false},
	} {
		if got := valid(1, tc.e); got != tc.ok { // 1: MAX(mem_free) (0 counts the rows)
			t.Errorf("%s: valid %v, want %v", tc.name, got, tc.ok)
		}
	}
	// Over the wire: peer-0's own extremes reach peer-1 and pass; the
	// same message with its MAX raised is refused.
	inst := func(self string, origin bool, mem float64) *Instance {
		c := cfg
		c.Self, c.SelfID = self, idOf(self)
		b, err := Bind(p, c)
		if err != nil {
			t.Fatal(err)
		}
		q, err := b.New(origin, honest(self, "mem_free", query.Num(query.KindBytes, mem)))
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	q0, q1 := inst("peer-0", true, 4<<30), inst("peer-1", false, 2<<30)
	q0.Tick()
	out := encoded(q0)
	if len(out) == 0 {
		t.Fatal("peer-0 sent nothing: the test checks nothing")
	}
	m, err := aggregate.Decode(out[0].Msg)
	if err != nil || len(m.Ext) == 0 {
		t.Fatalf("peer-0's message: %v, %d extremes", err, len(m.Ext))
	}
	if err := q1.Step(idOf("peer-0"), out[0].Msg); err != nil {
		t.Errorf("peer-0's own extremes refused: %v", err)
	}
	for i := range m.Ext {
		if !m.Ext[i].IsStr {
			m.Ext[i].Num *= 16
		}
	}
	if err := q1.Step(idOf("peer-0"), m.Encode(nil)); !errors.Is(err, ErrRefused) {
		t.Errorf("a raised MAX under peer-0's signature: %v, want refused", err)
	}
}

// encoded is what q has to send, each message encoded (before q's next
// call, which may reuse the cores' buffers).
func encoded(q *Instance) []peer.Envelope[[]byte] {
	var out []peer.Envelope[[]byte]
	for _, e := range q.Messages() {
		out = append(out, peer.Envelope[[]byte]{To: e.To, Msg: e.Msg.Encode(nil)})
	}
	return out
}

// The asker of a top-k judges a node by that node's own signed claim: an
// entry its observations refuse (a reliability above what it saw), signed
// by the node it names, makes it Implausible — left out, not waited for
// by coverage — whoever passed it on; a forgery of the same claim, or an
// entry refused for another reason, judges nobody. Near the end the asker
// names the member its coverage still lacks (Straggler), and once that
// one is judged its answer is final without it. Mutations: judging on
// any refusal, or without the claim's signature checked, judges peer-1 by
// peer-2's forgery; remembering a forgery's proof (as 54bf7d1 did) kept
// peer-1's real claim, under the proof of the altered copy before it,
// from ever being judged.
func TestAskerJudgesImplausible(t *testing.T) {
	p := mustCompile(t, "SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 3")
	k := threeKeys()
	qid := []byte("query-1")
	members := []string{"peer-0", "peer-1", "peer-2"}
	seen := func(node string) (float64, bool) {
		if node == "peer-1" {
			return 0.5, true // the asker saw it up half the window
		}
		return 0, false
	}
	cfg := Config{Peers: 3, Rand: rand.New(rand.NewPCG(1, 2)), Sampler: fixed(2), CheckReceived: true, Seal: k, Query: qid,
		Reliability: seen, Self: "peer-0", Coverage: CoverageFor(3), Members: func() []string { return members }}
	b, err := Bind(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	asker, err := b.New(true, honest("peer-0", "reliability", ratio(0.2)))
	if err != nil {
		t.Fatal(err)
	}
	signed := func(node string, rel float64, by string) *topk.Entry {
		e := Entry(p, honest(node, "reliability", ratio(rel)))
		e.Proof = ed25519.Sign(k.priv[by], EntryMessage(qid, e))
		return e
	}
	// Signed by its node, but refused for its range, not for what the
	// asker saw: no judgement of the node's reliability.
	outOfRange := lie(p, honest("peer-1"), honest("peer-1", "reliability", ratio(5)))
	outOfRange.Proof = ed25519.Sign(k.priv["peer-1"], EntryMessage(qid, outOfRange))
	// peer-1's real claim, and a copy altered under its proof.
	real := signed("peer-1", 0.99, "peer-1")
	altered := Entry(p, honest("peer-1", "reliability", ratio(0.98)))
	altered.Proof = real.Proof
	// A peer's message: its entry, and its filter with its own name.
	from := func(node string, es ...*topk.Entry) []byte {
		var seen []uint64
		// It samples peer-1 (nobody pulls from the asker, peer 0); the
		// message is handed to the asker all the same.
		peerB, err := Bind(p, Config{Peers: 3, Rand: rand.New(rand.NewPCG(3, 4)), Sampler: fixed(1), Coverage: CoverageFor(3), Self: node})
		if err != nil {
			t.Fatal(err)
		}
		tk, err := peerB.NewTopK(honest(node, "reliability", ratio(0.1)), false)
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range func() []topk.Envelope { tk.Tick(); return tk.Outbox() }() {
			seen = env.Msg.Seen
		}
		return (&topk.Message{Kind: topk.Reply, Entries: es, Seen: seen}).Encode(nil)
	}
	for _, tc := range []struct {
		name   string
		from   string
		e      *topk.Entry
		judged bool
	}{
		{"a forgery of peer-1's claim, by peer-2", "peer-2", signed("peer-1", 0.99, "peer-2"), false},
		{"peer-1's claim out of the catalog's range, signed", "peer-1", outOfRange, false},
		{"an altered copy of peer-1's claim under its proof, by peer-2", "peer-2", altered, false},
		{"peer-1's own signed claim above what was seen", "peer-1", real, true},
	} {
		err := asker.Step(1, from(tc.from, tc.e))
		_, judged := asker.Implausible()["peer-1"]
		if !errors.Is(err, ErrRefused) || judged != tc.judged {
			t.Fatalf("%s: %v, judged %v (%v), want judged %v", tc.name, err, judged, asker.Implausible(), tc.judged)
		}
	}
	if why := asker.Implausible()["peer-1"]; !strings.Contains(why, "peer-1 claims reliability 0.990") {
		t.Errorf("why: %q", why)
	}
	// peer-2's entry arrives; its name, in its filter, is covered.
	if err := asker.Step(2, from("peer-2", signed("peer-2", 0.4, "peer-2"))); err != nil {
		t.Fatal(err)
	}
	var a *answer.Answer
	for range 4 {
		asker.Tick()
		if a, err = asker.Report(3, 0); err != nil {
			t.Fatal(err)
		}
	}
	if !a.Converged || slices.Contains(a.Nodes, "peer-1") || !slices.Contains(a.Nodes, "peer-2") {
		t.Errorf("with peer-1 judged: converged %v, %v", a.Converged, a.Nodes)
	}
}

// Straggler names, at a top-k's asker whose list has not changed for
// CoveredRounds rounds, a live member its coverage lacks, a different
// one each round (among the first MaxStragglers), each at most MaxChases
// times; nothing while the list still changes, or at a peer that does not
// ask. Mutations: without the wait for an unchanged list, it names one
// the round the list changed; without MaxChases, the one member missing
// is named 8 rounds of 8.
func TestStraggler(t *testing.T) {
	p := mustCompile(t, "SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 3")
	for _, tc := range []struct {
		name    string
		members int
		origin  bool
		ticks   int
		want    int // distinct members named over 8 rounds
		chases  int // rounds of the 8 in which one was named
	}{
		{"a peer that does not ask", 4, false, 4, 0, 0},
		{"the list just changed", 4, true, 0, 0, 0},
		{"three missing, the list still", 4, true, 3, 3, 8},
		{"one missing", 2, true, 3, 1, MaxChases},
		{"more missing than MaxStragglers", MaxStragglers + 2, true, 3, 8, 8},
	} {
		var members []string
		for i := range tc.members {
			members = append(members, fmt.Sprintf("peer-%d", i))
		}
		b, err := Bind(p, Config{Peers: tc.members, Rand: rand.New(rand.NewPCG(1, 2)), Sampler: fixed(1), Self: "peer-0",
			Coverage: CoverageFor(tc.members), Members: func() []string { return members }})
		if err != nil {
			t.Fatal(err)
		}
		q, err := b.New(tc.origin, honest("peer-0"))
		if err != nil {
			t.Fatal(err)
		}
		for range tc.ticks {
			q.Tick()
		}
		named, chases := map[string]bool{}, 0
		for range 8 {
			if s, ok := q.Straggler(); ok {
				chases++
				if s == "peer-0" || !slices.Contains(members, s) {
					t.Errorf("%s: named %q", tc.name, s)
				}
				named[s] = true
			}
			if tc.ticks > 0 {
				q.Tick()
			}
		}
		if len(named) != tc.want || chases != tc.chases {
			t.Errorf("%s: named %v in %d rounds, want %d distinct in %d", tc.name, named, chases, tc.want, tc.chases)
		}
	}

}

// A refused claim and the bound it passed say two different figures.
func TestApart(t *testing.T) {
	for _, c := range []struct {
		a, b float64
		x, y string
	}{
		{0.99, 0.5, "0.990", "0.500"},
		{1, 1 - 53.0/604800, "1.0000", "0.9999"},
		{1, 1, "1.000000000000", "1.000000000000"},
	} {
		if x, y := apart(c.a, c.b); x != c.x || y != c.y {
			t.Errorf("apart(%v, %v) = %s, %s; want %s, %s", c.a, c.b, x, y, c.x, c.y)
		}
	}
}
