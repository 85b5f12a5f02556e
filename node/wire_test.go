package node

import (
	"errors"
	"reflect"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	es := []entry{
		{ID: QueryID{1, 2}, Kind: protoAggregate, Round: 7, Plan: []byte("plan"), Origin: []byte("xy"), Msg: []byte{1, 2, 3}},
		{ID: QueryID{9}, Kind: protoTopK, Msg: []byte{}},
	}
	got, err := decodeBatch(encodeBatch(es))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != es[0].ID || got[0].Round != 7 || string(got[0].Plan) != "plan" || string(got[0].Origin) != "xy" ||
		!reflect.DeepEqual(got[0].Msg, es[0].Msg) || got[1].Kind != protoTopK || len(got[1].Plan) != 0 {
		t.Errorf("round trip: %+v", got)
	}
	good := encodeBatch(es)
	for name, b := range map[string][]byte{
		"empty": nil, "version": append([]byte{batchVersion + 1}, good[1:]...), "truncated": good[:len(good)-1],
		"trailing": append(append([]byte{}, good...), 0), "kind": func() []byte { b := append([]byte{}, good...); b[18] = 9; return b }(),
	} {
		if _, err := decodeBatch(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzDecodeBatch: the exchange decoder never panics, and what it accepts
// re-encodes to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch([]entry{{ID: QueryID{1}, Kind: protoAggregate, Round: 3, Plan: []byte{1, 2}, Msg: []byte{3}}}))
	f.Add(encodeBatch(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeBatch(b)
		if err != nil {
			return
		}
		// Varints are read in their shortest form only: one encoding.
		if again := encodeBatch(es); string(again) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
