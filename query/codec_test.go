package query

import (
	"errors"
	"reflect"
	"testing"

	"github.com/peerq/peerq/parser"
)

// planCorpus is every statement the tests compile, for round trips and as
// the fuzz seed corpus.
var planCorpus = []string{
	"SELECT node, mem_free, reliability FROM peers WHERE mem_free >= 4GB AND region IN ('eu', 'us') ORDER BY reliability DESC LIMIT 50",
	"SELECT COUNT(*), AVG(cpu_load), SUM(disk_free), MIN(reliability), MAX(mem_free) FROM peers WHERE arch = 'arm64'",
	"SELECT region, COUNT(*), PERCENTILE(mem_free, 0.9) FROM peers GROUP BY region",
	"SELECT region, AVG(cpu_load) TRIM 2% FROM peers GROUP BY region",
	"RESERVE 50 FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC AS analytics FOR 2h WITH AT LEAST 40, KEY 'k'",
	"SELECT node, cpu_load FROM SUBCLOUD analytics ORDER BY cpu_load DESC LIMIT 5",
	"SHOW SUBCLOUDS", "SHOW MEMBERS", "RELEASE analytics",
	"EXPLAIN SELECT COUNT(*) FROM peers",
	"SELECT * FROM peers",
	"SELECT region, COUNT(DISTINCT zone), STDDEV(cpu_load) AS s FROM peers WHERE NOT reserved GROUP BY region ORDER BY s DESC LIMIT 3",
	"SELECT node FROM peers WHERE zone IS NULL AND node LIKE 'a%' AND uptime NOT BETWEEN 1h AND 2h WITH ROUNDS 9, TIMEOUT 3s, ACCURACY 2%",
	"SELECT coalesce(zone, 'none'), -rtt, abs(cpu_load - 0.5) FROM peers LIMIT 7",
	"RESERVE 5 AS batch FOR 1h NO REPAIR",
	"ALTER SUBCLOUD analytics RESIZE TO 60", "ALTER SUBCLOUD analytics EXTEND FOR 8h",
	"SELECT owner, SUM(peer_hours), COUNT(*) FROM leases WHERE started_ago <= 1d GROUP BY owner",
}

func TestPlanRoundTrip(t *testing.T) {
	for _, src := range planCorpus {
		p := compile(t, src)
		b, err := p.Encode()
		if err != nil {
			t.Fatalf("%s: encode: %v", src, err)
		}
		if b[0] != PlanVersion {
			t.Fatalf("version byte %d", b[0])
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", src, err)
		}
		if !reflect.DeepEqual(p, got) {
			t.Errorf("%s: decoded plan differs\n got %#v\nwant %#v", src, got, p)
		}
		again, _ := got.Encode()
		if string(again) != string(b) || got.Hash() != p.Hash() {
			t.Errorf("%s: encoding is not deterministic", src)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, _ := compile(t, planCorpus[0]).Encode()
	mutateOf := func(src string, f func(p *Plan)) []byte {
		p := compile(t, src)
		f(p)
		body, err := encMode.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{PlanVersion}, body...)
	}
	mutate := func(f func(p *Plan)) []byte { return mutateOf(planCorpus[0], f) }
	trim := "SELECT AVG(cpu_load) TRIM 5% FROM peers"
	deep := &Expr{Op: OpAttr, Name: "x", Kind: KindBool}
	for i := 0; i < MaxExprDepth+1; i++ {
		deep = &Expr{Op: OpNot, Kind: KindBool, Args: []*Expr{deep}}
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"version":       append([]byte{99}, good[1:]...),
		"truncated":     good[:len(good)/2],
		"trailing":      append(append([]byte{}, good...), 0),
		"oversized":     make([]byte, MaxPlanBytes+1),
		"not cbor":      []byte{PlanVersion, 0xff, 0xff},
		"kind":          mutate(func(p *Plan) { p.Kind = 42 }),
		"k":             mutate(func(p *Plan) { p.K = MaxK + 1 }),
		"rounds":        mutate(func(p *Plan) { p.Rounds = MaxRounds + 1 }),
		"accuracy":      mutate(func(p *Plan) { p.Accuracy = 0 }),
		"op":            mutate(func(p *Plan) { p.Filter.Op = 200 }),
		"arity":         mutate(func(p *Plan) { p.Filter.Args = p.Filter.Args[:1] }),
		"deep":          mutate(func(p *Plan) { p.Filter = deep }),
		"nil const":     mutate(func(p *Plan) { p.Filter = &Expr{Op: OpConst, Kind: KindBool} }),
		"agg ref":       mutate(func(p *Plan) { p.Columns[0].Expr = &Expr{Op: OpAggRef, Index: 3} }),
		"function":      mutate(func(p *Plan) { p.Columns[0].Expr = &Expr{Op: OpFunc, Name: "exec", Args: []*Expr{deep}} }),
		"no order":      mutate(func(p *Plan) { p.Order = nil }),
		"reserve spec":  mutate(func(p *Plan) { p.Reserve = &ReserveSpec{Name: "x", N: 1, LeaseSeconds: 60} }),
		"filter kind":   mutate(func(p *Plan) { p.Filter = &Expr{Op: OpAttr, Name: "mem_free", Kind: KindBytes} }),
		"trim half":     mutateOf(trim, func(p *Plan) { p.Aggs[0].Param = 0.5 }),
		"trim nothing":  mutateOf(trim, func(p *Plan) { p.Aggs[0].Param = 0 }),
		"unknown field": append([]byte{PlanVersion}, 0xa1, 0x18, 0x63, 0x01), // {99: 1}
	} {
		_, err := Decode(b)
		if err == nil {
			t.Errorf("%s: decoded, want an error", name)
			continue
		}
		if !errors.Is(err, ErrMalformedPlan) {
			t.Errorf("%s: error %v does not wrap ErrMalformedPlan", name, err)
		}
	}
}

func FuzzDecodePlan(f *testing.F) {
	for _, src := range planCorpus {
		stmt, err := parser.ParseOne(src)
		if err != nil {
			f.Fatal(err)
		}
		p, err := Compile(stmt, DefaultCatalog(), DefaultConfig())
		if err != nil {
			f.Fatal(err)
		}
		b, _ := p.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		// A plan that decodes must be safe to use: evaluate everything on
		// an empty and a full record, explain it, and re-encode it.
		for _, r := range []Record{{}, rec} {
			p.Matches(r)
			p.Project(r)
			p.CompareKeys(p.OrderValues(r), p.OrderValues(Record{}))
			for _, g := range p.GroupBy {
				Eval(g, r)
			}
			for _, c := range p.Components {
				Eval(c.Arg, r)
			}
		}
		if p.Kind == PlanAggregate {
			keys := make([]Value, len(p.GroupBy))
			aggs := make([]Value, len(p.Aggs))
			for _, c := range p.Columns {
				EvalRow(c.Expr, keys, aggs)
			}
		}
		Explain(p, 1000)
		if _, err := p.Encode(); err != nil {
			t.Fatalf("a decoded plan does not encode: %v", err)
		}
	})
}
