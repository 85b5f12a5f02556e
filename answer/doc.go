// Package answer is a statement's answer, one type from the engine to
// its users: typed values (Value, of a Kind: bytes, duration, ratio,
// count, number, string, bool, or NULL; and list, a list of names that only
// SHOW answers hold, written as a JSON array), the Answer that holds them in
// rows under named columns with its Meta (how it was reached and how
// complete it is: exact, converged or partial), and the Progress of a
// running statement.
//
// run reads an Answer from a protocol core's state, query computes the
// exact one the oracles compare it with, node returns it with its Meta,
// the API writes it as JSON (docs/API.md: each value raw for scripts and
// as text with units for people) and its Client reads it back, and the
// shell renders it. It is a leaf — it imports only the standard library —
// so that the shell and the API's clients hold answers without importing
// the engine; query keeps Kind and Value under its own names (aliases),
// for the compiler and the evaluator.
//
// Every JSON peerq writes for tools goes through NewEncoder (or Marshal):
// no HTML escaping, so that `mem_free >= 4GB` reads as written.
//
// The package does no I/O of its own (NewEncoder writes to the writer it
// is given), reads no clock and starts no goroutine.
//
// # Usage
//
//	a := &answer.Answer{Columns: []answer.Column{{Name: "n", Kind: answer.KindCount}},
//		Rows: [][]answer.Value{{answer.Num(answer.KindCount, 3)}},
//		Meta: &answer.Meta{Status: answer.StatusExact, Peers: 3, Converged: true}}
//	b, err := json.Marshal(a)        // {"columns":[{"name":"n","kind":"count"}],"rows":[[3]],"text":[["3"]],"meta":{...}}
//	err = json.Unmarshal(b, &back)   // raw values typed by their columns' kinds
//	a.Text()                         // [["3"]]
//
// The caller's duties:
//
//  1. Give every value of a column the column's kind (or NULL): a client
//     types the raw values it reads by the columns.
//  2. Set Meta on every answer a statement returns; it is nil only for
//     estimates in progress and exact reference answers.
package answer
