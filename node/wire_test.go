package node

import (
	"errors"
	"reflect"
	"testing"

	"github.com/peerq/peerq/sim"
	"github.com/peerq/peerq/topk"
)

func TestBatchRoundTrip(t *testing.T) {
	t.Parallel()
	b := batch{
		Hints: []hint{{Name: "p7", AgeMillis: 1500}},
		Entries: []entry{
			{ID: QueryID{1, 2}, Kind: protoAggregate, Round: 7, Plan: []byte("plan"), Origin: []byte("xy"), Asker: "a1", Coverage: 4096, Msg: []byte{1, 2, 3},
				Excluded: []string{"p3", "p9"}},
			{ID: QueryID{9}, Kind: protoTopK, Msg: []byte{}},
			{ID: QueryID{3}, Kind: protoEnd},
			// A core's message, encoded straight into the batch.
			{ID: QueryID{4}, Kind: protoTopK, msg: &topk.Message{Kind: topk.Reply, Entries: []*topk.Entry{{Node: "p1", Key: []byte{1}, Row: []byte{2}, Proof: []byte("sig")}}}},
		},
	}
	got, err := decodeBatch(encodeBatch(b))
	if err != nil {
		t.Fatal(err)
	}
	e := got.Entries
	if len(got.Hints) != 1 || got.Hints[0] != b.Hints[0] || len(e) != 4 || e[0].ID != b.Entries[0].ID || e[0].Round != 7 ||
		string(e[0].Plan) != "plan" || string(e[0].Origin) != "xy" || e[0].Asker != "a1" || e[0].Coverage != 4096 ||
		!reflect.DeepEqual(e[0].Msg, b.Entries[0].Msg) || !reflect.DeepEqual(e[0].Excluded, b.Entries[0].Excluded) || e[1].Kind != protoTopK ||
		len(e[1].Plan) != 0 || e[2].Kind != protoEnd || string(e[3].Msg) != string(b.Entries[3].msg.Encode(nil)) {
		t.Errorf("round trip: %+v", got)
	}
	good := encodeBatch(batch{Entries: b.Entries[:1]})
	for name, in := range map[string][]byte{
		"empty": nil, "version": append([]byte{batchVersion + 1}, good[1:]...), "truncated": good[:len(good)-1],
		"trailing": append(append([]byte{}, good...), 0), "kind": func() []byte { x := append([]byte{}, good...); x[19] = 99; return x }(),
		"hints": append([]byte{batchVersion, MaxHints + 1}, good[2:]...),
	} {
		if _, err := decodeBatch(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// An entry is an announcement (the plan alone), a reply that the peer held
// the query already (its kind alone), a core's message, or none of these;
// decoded, each stays what it was.
func TestEntryRoles(t *testing.T) {
	t.Parallel()
	msg := &topk.Message{Kind: topk.Reply}
	for _, c := range []struct {
		name            string
		e               entry
		announces, held bool
	}{
		{"announcement", entry{ID: QueryID{1}, Kind: protoAggregate, Plan: []byte("plan")}, true, false},
		{"held, aggregate", entry{ID: QueryID{1}, Kind: protoAggregate}, false, true},
		{"held, top-k", entry{ID: QueryID{1}, Kind: protoTopK}, false, true},
		{"a core's message", entry{ID: QueryID{1}, Kind: protoTopK, msg: msg}, false, false},
		{"a core's message with the plan", entry{ID: QueryID{1}, Kind: protoTopK, Plan: []byte("plan"), msg: msg}, false, false},
		{"the end of a query", entry{ID: QueryID{1}, Kind: protoEnd}, false, false},
		{"a lease request", entry{ID: QueryID{1}, Kind: protoLease}, false, false},
	} {
		got, err := decodeBatch(encodeBatch(batch{Entries: []entry{c.e}}))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, e := range []entry{c.e, got.Entries[0]} {
			if e.announces() != c.announces || e.holds() != c.held {
				t.Errorf("%s: announces %v, holds %v; want %v, %v", c.name, e.announces(), e.holds(), c.announces, c.held)
			}
		}
	}
}

// The simulator counts a reply that a query is held as sim.HeldReplyBytes:
// the entry the runtime sends for it (serve), in a batch of others.
func TestHeldReplySizeModel(t *testing.T) {
	t.Parallel()
	held := entry{ID: QueryID{7}, Kind: protoAggregate}
	empty := len(encodeBatch(batch{Entries: []entry{{ID: QueryID{8}, Kind: protoEnd}}}))
	with := len(encodeBatch(batch{Entries: []entry{{ID: QueryID{8}, Kind: protoEnd}, held}}))
	if got := with - empty; got != sim.HeldReplyBytes {
		t.Errorf("a held reply is %d bytes on the wire, the simulator counts %d", got, sim.HeldReplyBytes)
	}
}

// FuzzDecodeBatch: the exchange decoder never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(batch{Hints: []hint{{"p", 3}}, Entries: []entry{{ID: QueryID{1}, Kind: protoAggregate, Round: 3, Plan: []byte{1, 2}, Asker: "a", Msg: []byte{3},
		Excluded: []string{"x"}}}}))
	f.Add(encodeBatch(batch{}))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := decodeBatch(in)
		if err != nil {
			return
		}
		// Varints are read in their shortest form only: one encoding.
		if again := encodeBatch(b); string(again) != string(in) {
			t.Fatalf("re-encoding differs")
		}
	})
}
