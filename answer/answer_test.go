package answer

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// An answer written as the API writes it reads back as the same values,
// whatever their kind, with the text the agent wrote.
func TestJSONRoundTrip(t *testing.T) {
	a := &Answer{
		Columns: []Column{{Name: "n", Kind: KindCount}, {Name: "load", Kind: KindRatio}, {Name: "mem", Kind: KindBytes}, {Name: "up", Kind: KindDuration},
			{Name: "region", Kind: KindString}, {Name: "reserved", Kind: KindBool}, {Name: "x", Kind: KindNumber}},
		Rows: [][]Value{
			{Num(KindCount, 3), Num(KindRatio, 0.1466), Num(KindBytes, 4.5e9), Num(KindDuration, 2.5), Str("eu"), Bool(true), Num(KindNumber, 1.25)},
			{Num(KindCount, 0), Null, Null, Null, Null, Bool(false), Null},
		},
		Nodes: []string{"peer-1", "peer-2"},
		Meta:  &Meta{Statement: "SELECT …", Protocol: ProtocolAggregate, Status: StatusConverged, Peers: 3, Rounds: 14, Budget: 31, Final: true, Converged: true},
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"columns":[{"name":"n","kind":"count"},{"name":"load","kind":"ratio"},{"name":"mem","kind":"bytes"},` +
		`{"name":"up","kind":"duration"},{"name":"region","kind":"string"},{"name":"reserved","kind":"bool"},{"name":"x","kind":"number"}],` +
		`"rows":[[3,0.1466,4500000000,2.5,"eu",true,1.25],[0,null,null,null,null,false,null]],` +
		`"text":[["3","14.66%","4.2 GiB","2.5s","eu","true","1.25"],["0","NULL","NULL","NULL","NULL","false","NULL"]],` +
		`"meta":{"statement":"SELECT …","protocol":"aggregate","status":"converged","peers":3,"rounds":14,"elapsed_seconds":0,` +
		`"error_estimate":0,"plan_hash":"","from_tags":false,"converged":true}}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	for _, useNumber := range []bool{false, true} {
		var back Answer
		dec := json.NewDecoder(bytes.NewReader(b))
		if useNumber {
			dec.UseNumber()
		}
		if err := dec.Decode(&back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Columns, a.Columns) || !reflect.DeepEqual(back.Rows, a.Rows) || !reflect.DeepEqual(back.Text(), a.Text()) {
			t.Errorf("UseNumber %v: read back\n%v %v\nwant\n%v %v", useNumber, back.Columns, back.Rows, a.Columns, a.Rows)
		}
		m := *a.Meta
		m.Budget, m.Final = 0, false // the runtime's own: not on the wire
		if !reflect.DeepEqual(*back.Meta, m) || back.Nodes != nil {
			t.Errorf("UseNumber %v: meta %+v nodes %v, want %+v and no nodes", useNumber, *back.Meta, back.Nodes, m)
		}
	}
}

// A client shows the text its agent wrote, and reads a raw value that
// does not fit its column's kind as what it is, rather than failing.
func TestJSONFromAnotherBuild(t *testing.T) {
	var a Answer
	err := json.Unmarshal([]byte(`{"columns":[{"name":"avg","kind":"bytes"},{"name":"c","kind":"count"},{"name":"s","kind":"string"},{"name":"f","kind":"flux"},{"name":"k","kind":"count"}],`+
		`"rows":[[2,"many",7,1.5,2.5]],"text":[["1.5 B","many","7","1.5 flux","2.5"]]}`), &a)
	if err != nil {
		t.Fatal(err)
	}
	want := []Value{Num(KindBytes, 2), Str("many"), Num(KindNumber, 7), Num(KindNumber, 1.5), Num(KindNumber, 2.5)}
	if !reflect.DeepEqual(a.Rows[0], want) || a.Columns[3].Kind != KindNumber {
		t.Errorf("rows %v (columns %v), want %v", a.Rows[0], a.Columns, want)
	}
	if got := a.Text()[0]; got[0] != "1.5 B" || got[3] != "1.5 flux" {
		t.Errorf("text %q, want the agent's", got)
	}
	// Written again (a shell's JSON output), each raw value is as read.
	if b, _ := json.Marshal(a.JSON().Rows); string(b) != `[[2,"many",7,1.5,2.5]]` {
		t.Errorf("raw values written again: %s", b)
	}
	if a.Meta != nil {
		t.Errorf("meta %+v from an answer without one", a.Meta)
	}
	// Text that does not match the rows is made anew from the values.
	var b Answer
	if err := json.Unmarshal([]byte(`{"columns":[{"name":"n","kind":"count"}],"rows":[[3],[4]],"text":[["3"],[]]}`), &b); err != nil {
		t.Fatal(err)
	}
	if got := b.Text(); !reflect.DeepEqual(got, [][]string{{"3"}, {"4"}}) {
		t.Errorf("text %q for rows %v", got, b.Rows)
	}
}

func TestProgressFirstCell(t *testing.T) {
	p := Progress{Estimate: &Answer{Columns: []Column{{Name: "n", Kind: KindBytes}}, Rows: [][]Value{{Num(KindBytes, 4<<30)}}}}
	if p.FirstCell() != "4.0 GiB" || (Progress{}).FirstCell() != "…" || (Progress{Estimate: &Answer{}}).FirstCell() != "…" {
		t.Errorf("%q", p.FirstCell())
	}
}

func TestKindOf(t *testing.T) {
	for k := KindNull; k.Valid(); k++ {
		if got, ok := KindOf(k.String()); !ok || got != k {
			t.Errorf("KindOf(%q) = %v, %v", k.String(), got, ok)
		}
	}
	if _, ok := KindOf("flux"); ok {
		t.Error("KindOf(flux)")
	}
}
