package run

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/topk"
)

// A top-k row leaves out the node column (the entry carries it once) and
// reading fills it back; rows from other peers are checked on receipt.
func TestEntryRows(t *testing.T) {
	p, err := query.CompileText("SELECT node, mem_free, class FROM peers ORDER BY mem_free DESC LIMIT 3", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rec := query.Record{"node": query.Str("peer-7"), "mem_free": query.Num(query.KindBytes, 8<<30), "class": query.Str("desktop")}
	e := Entry(p, rec)
	if e == nil || strings.Contains(string(e.Row), "peer-7") {
		t.Fatalf("entry %+v: the row repeats the node", e)
	}
	if err := CheckEntry(p, e); err != nil {
		t.Fatalf("own entry refused: %v", err)
	}
	res, err := TopResult(p, []*topk.Entry{e})
	if err != nil || len(res.Rows) != 1 || res.Rows[0][0].Str != "peer-7" || res.Rows[0][1].Num != 8<<30 || res.Rows[0][2].Str != "desktop" {
		t.Fatalf("read back: %v %v", res, err)
	}
	row := func(vs ...query.Value) []byte { return query.EncodeRow(vs) }
	for name, bad := range map[string]*topk.Entry{
		"node in the row":  {Node: "a", Row: row(query.Str("b"), query.Num(query.KindBytes, 1), query.Str("x"))},
		"wrong kind":       {Node: "a", Row: row(query.Value{}, query.Str("lots"), query.Str("x"))},
		"out of bounds":    {Node: "a", Row: row(query.Value{}, query.Num(query.KindBytes, -5), query.Str("x"))},
		"too few columns":  {Node: "a", Row: row(query.Value{})},
		"not a row at all": {Node: "a", Row: []byte{0xff, 0xff}},
	} {
		if err := CheckEntry(p, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// fixed always draws the same peer.
type fixed peer.ID

func (f fixed) Sample(*rand.Rand) (peer.ID, bool) { return peer.ID(f), true }

// Nobody pulls from a top-k's asker: a peer that draws it lets the round
// go; the asker itself samples freely.
func TestNobodyPullsFromTheAsker(t *testing.T) {
	p, err := query.CompileText("SELECT node FROM peers ORDER BY mem_free DESC LIMIT 3", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rec := query.Record{"node": query.Str("peer-1"), "mem_free": query.Num(query.KindBytes, 1<<30)}
	for _, c := range []struct {
		draws  peer.ID
		origin bool
		sends  int
	}{{7, false, 0}, {3, false, 1}, {3, true, 1}} {
		b, err := Bind(p, Config{Peers: 10, Rand: rand.New(rand.NewPCG(1, 1)), Sampler: fixed(c.draws), Asker: 7})
		if err != nil {
			t.Fatal(err)
		}
		core, err := b.NewTopK(rec, c.origin)
		if err != nil {
			t.Fatal(err)
		}
		core.Tick()
		if got := len(core.Outbox()); got != c.sends {
			t.Errorf("drawing %d (origin %v): %d messages, want %d", c.draws, c.origin, got, c.sends)
		}
	}
}

// The binding gives both cores a check of what other peers send: a group
// key or a row the plan cannot read is refused on receipt.
func TestBindingChecksKeysAndRows(t *testing.T) {
	grouped, err := query.CompileText("SELECT region, COUNT(*) FROM peers GROUP BY region", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	valid := validKey(grouped)
	good := query.EncodeRow([]query.Value{query.Str("eu")})
	if !valid(good) || valid([]byte{0xff, 0x01}) || valid(query.EncodeRow(nil)) {
		t.Error("ValidKey: a readable one-key row must pass, garbage and a key of the wrong arity must not")
	}
	// Ungrouped, the one group's key is empty: a peer that matches nothing
	// must still take its neighbours' messages.
	ungrouped, err := query.CompileText("SELECT COUNT(*) FROM peers WHERE mem_free >= 4GB", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if v := validKey(ungrouped); !v(nil) || v(good) {
		t.Error("ValidKey ungrouped: the empty key must pass, any other must not")
	}
}

// An Instance stays small: the simulator keeps one per peer, a million in
// one block visited at random, so it must fit a cache line.
func TestInstanceIsSmall(t *testing.T) {
	if size := unsafe.Sizeof(Instance{}); size > 64 {
		t.Errorf("an Instance is %d bytes; keep what only the asker needs behind asking", size)
	}
}

// A peer announces a query to Fanout more peers each round while the
// query is young — its first query.SpreadRoundsFanout rounds, counted
// from the round it joined at — and to none after, nor with no fanout.
func TestAnnounceWhileYoung(t *testing.T) {
	p, err := query.CompileText("SELECT COUNT(*) FROM peers", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rec := query.Record{"node": query.Str("peer-1")}
	for _, c := range []struct {
		peers, fanout, join int
	}{{1000, 3, 0}, {1000, 3, 4}, {100_000, 2, 0}, {1000, 0, 0}} {
		b, err := Bind(p, Config{Peers: c.peers, Rand: rand.New(rand.NewPCG(1, 1)), Sampler: fixed(3), Fanout: c.fanout})
		if err != nil {
			t.Fatal(err)
		}
		q, err := b.New(false, rec)
		if err != nil {
			t.Fatal(err)
		}
		q.JoinAt(c.join)
		window := 0
		if c.fanout > 0 {
			window = query.SpreadRoundsFanout(c.peers, c.fanout)
		}
		for r := c.join + 1; r <= window+3; r++ {
			q.Tick()
			want := 0
			if r <= window {
				want = c.fanout
			}
			if got := q.Announce(); got != want {
				t.Errorf("%+v: round %d announces to %d, want %d (window %d)", c, r, got, want, window)
			}
			// Young, and so handed over to a peer that pulls, for the
			// rounds the query spreads in, with a fanout or without.
			if young, want := q.Young(), r <= query.SpreadRoundsFanout(c.peers, c.fanout); young != want {
				t.Errorf("%+v: round %d young %v, want %v", c, r, young, want)
			}
		}
	}
	// Feedback: after StopAnnouncing peers found holding the query, none.
	b, err := Bind(p, Config{Peers: 100_000, Rand: rand.New(rand.NewPCG(1, 1)), Sampler: fixed(3), Fanout: 3})
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.New(false, rec)
	if err != nil {
		t.Fatal(err)
	}
	q.JoinAt(0)
	for found := 0; found <= StopAnnouncing; found++ {
		q.Tick()
		want := 3
		if found >= StopAnnouncing {
			want = 0
		}
		if got := q.Announce(); got != want {
			t.Errorf("after %d peers found holding it: announces to %d, want %d", found, got, want)
		}
		q.FoundHolder()
	}
	if _, err := Bind(p, Config{Peers: 10, Rand: rand.New(rand.NewPCG(1, 1)), Sampler: fixed(3), Fanout: -1}); err == nil {
		t.Error("a negative fanout was taken")
	}
}
