// Package answer is what a statement's answer is made of: typed values
// (Value, of a Kind: bytes, duration, ratio, count, number, string, bool,
// or NULL), how they read for people (String: 4.0 GiB, 2h13m, 97.5%) and
// for scripts (Raw: bytes as integers, durations in seconds, ratios as
// fractions). It is a leaf — it imports only the standard library — so
// that the API and the shell can hold typed answers without importing the
// engine; query keeps Kind and Value under its own names (aliases), for
// the compiler and the evaluator.
//
// The package does no I/O, reads no clock and starts no goroutine.
//
// # Usage
//
//	v := answer.Num(answer.KindBytes, 4<<30)
//	v.String()   // "4.0 GiB"
//	v.Raw()      // int64(4294967296)
package answer
