package query

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Check accepts exactly what Clamp leaves as it is: every value Clamp
// returns passes, every value Check passes is a fixed point of Clamp. So
// a peer's own (clamped) values always pass at the others, and what
// fails was forged on the way.
func TestCheckIsClampsFixedPoints(t *testing.T) {
	cat := DefaultCatalog()
	vals := []Value{Null, Bool(true), Str(""), Str("eu"), Str(strings.Repeat("x", MaxStringBytes)), Str(strings.Repeat("x", MaxStringBytes+1))}
	for _, k := range []Kind{KindNumber, KindCount, KindRatio, KindBytes, KindDuration} {
		for _, x := range []float64{0, math.Copysign(0, -1), -1, 0.5, 1, 1.0000001, 3599, 3601, 1 << 20, 1<<20 + 1, 1 << 40, 1<<40 + 1,
			1 << 60, 1 << 61, 1e300, 2e300, -2e300, math.Inf(1), math.NaN()} {
			vals = append(vals, Num(k, x))
		}
	}
	for _, a := range append(cat.Attrs(), LeasesCatalog().Attrs()...) {
		for _, v := range vals {
			c := a.Clamp(v)
			if err := a.Check(c); err != nil {
				t.Errorf("%s: Clamp(%.40s) = %.40s, which Check refuses: %.80v", a.Name, v, c, err)
			}
			if err := a.Check(v); err == nil && !(c == v || c.Num == v.Num && c.Kind == v.Kind) {
				t.Errorf("%s: Check passes %.40s, which Clamp makes %.40s", a.Name, v, c)
			}
		}
	}
	rel, _ := cat.Lookup("reliability")
	for _, c := range []struct {
		v  Value
		ok bool
	}{
		{Num(KindRatio, 0), true}, {Num(KindRatio, 1), true}, {Null, true},
		{Num(KindRatio, 5), false}, {Num(KindRatio, -0.01), false}, {Num(KindNumber, 0.5), false}, {Str("0.5"), false},
	} {
		if err := rel.Check(c.v); (err == nil) != c.ok {
			t.Errorf("reliability %v: %v, want ok %v", c.v, err, c.ok)
		}
	}
}

// DecodeSortKey reads back every key SortKey writes, and refuses bytes
// SortKey could not have written.
func TestDecodeSortKey(t *testing.T) {
	p := compile(t, "SELECT node FROM peers ORDER BY region DESC, mem_free, zone DESC, reserved, cpu_load * -1 DESC, node")
	rs := synthetic(300)
	rs = append(rs, Record{"node": Str("x")}, Record{"node": Str("y\x00"), "region": Str("eu\x00z\xff"), "reserved": Bool(true)},
		Record{"region": Str(""), "cpu_load": Num(KindRatio, math.Copysign(0, -1))})
	for _, r := range rs {
		key := p.SortKey(r)
		vals, err := p.DecodeSortKey(key)
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		for i, want := range p.OrderValues(r) {
			if vals[i].IsNull() != want.IsNull() || !want.IsNull() && Compare(vals[i], want) != 0 {
				t.Fatalf("%v: key %d reads %v, want %v", r, i, vals[i], want)
			}
		}
	}
	q := compile(t, "SELECT node FROM peers ORDER BY reliability DESC, reserved")
	good := q.SortKey(Record{"reliability": Num(KindRatio, 0.5), "reserved": Bool(false)})
	bad := map[string][]byte{
		"empty":           nil,
		"bad marker":      append([]byte{0}, good[1:]...),
		"number cut":      good[:5],
		"no second key":   good[:9],
		"trailing":        append(bytes.Clone(good), 2),
		"bool 2":          append(bytes.Clone(good[:10]), 2),
		"NaN":             append([]byte{1, 0x00, 0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, good[9:]...),
		"infinity":        append([]byte{1, 0x00, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, good[9:]...),
		"-0":              append([]byte{1, 0x80, 0, 0, 0, 0, 0, 0, 0}, good[9:]...),
		"string for bool": append(bytes.Clone(good[:10]), 'x', 0, 0),
	}
	for name, key := range bad {
		if _, err := q.DecodeSortKey(key); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	s := compile(t, "SELECT node FROM peers ORDER BY region")
	for name, key := range map[string][]byte{
		"unterminated": {1, 'e', 'u'}, "bad escape": {1, 'e', 0, 1, 0, 0}, "half an end": {1, 'e', 0},
	} {
		if _, err := s.DecodeSortKey(key); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	// Random bytes: whatever decodes encodes back to the same bytes (one
	// key, one encoding).
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		key := make([]byte, r.IntN(24))
		for i := range key {
			key[i] = []byte{0, 1, 2, 0x7f, 0x80, 0xff, byte(r.IntN(256))}[r.IntN(7)]
		}
		vals, err := q.DecodeSortKey(key)
		if err != nil {
			continue
		}
		rec := Record{"reliability": vals[0], "reserved": vals[1]}
		if again := q.SortKey(rec); !bytes.Equal(again, key) {
			t.Fatalf("%x decodes to %v, which encodes as %x", key, vals, again)
		}
	}
}

// Whatever bytes a peer sends as a sort key, DecodeSortKey never panics,
// and what it reads SortKey writes back byte for byte.
func FuzzDecodeSortKey(f *testing.F) {
	p := compile(f, "SELECT node FROM peers ORDER BY region DESC, mem_free, reserved DESC, cpu_load * -1, node DESC")
	for _, r := range synthetic(5) {
		f.Add(p.SortKey(r))
	}
	f.Add(p.SortKey(Record{"region": Str("a\x00b")}))
	// cpu_load * -1 is not an attribute: the values are written back
	// through an order of attributes of the same kinds and directions.
	q := compile(f, "SELECT node FROM peers ORDER BY region DESC, mem_free, reserved DESC, cpu_load, node DESC")
	f.Fuzz(func(t *testing.T, key []byte) {
		vals, err := p.DecodeSortKey(key)
		if err != nil {
			return
		}
		rec := Record{"region": vals[0], "mem_free": vals[1], "reserved": vals[2], "cpu_load": vals[3], "node": vals[4]}
		if again := q.SortKey(rec); !bytes.Equal(again, key) {
			t.Fatalf("%x decodes to %v, which encodes as %x", key, vals, again)
		}
	})
}
