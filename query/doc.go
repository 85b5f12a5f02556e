// Package query checks PQL statements against the attribute catalog and
// compiles them into Plans: small, serializable, versioned descriptions of the
// work the gossip protocols do, with no code in them.
//
// A Plan says which protocol answers the statement (gossip aggregation, gossip
// top-k, a reservation built on top-k, or a local command — SHOW, RELEASE,
// ALTER, and a constant SELECT without FROM, which ConstAnswer answers), the filter and
// projections as safe expression trees, the aggregate components or the
// ordering and k, the round budget and the target accuracy. A peer that learns
// of a query from the network receives its Plan as bytes (Encode/Decode),
// evaluates the filter and projections against its own record (Eval), and
// joins the protocol.
//
// The package does no I/O, reads no clock and starts no goroutine.
//
// # Usage
//
//	stmt, err := parser.ParseOne(src)
//	...
//	plan, err := query.Compile(stmt, query.DefaultCatalog(), query.DefaultConfig())
//	...
//	wire, _ := plan.Encode()           // the originator spreads these bytes
//	got, err := query.Decode(wire)     // a peer refuses anything malformed
//	ok := got.Matches(localRecord)     // WHERE, with SQL NULL semantics
//	row := got.Project(localRecord)    // the SELECT list, for top-k entries
//	fmt.Print(query.Explain(plan, 10_000))
//
// The caller's duties:
//
//  1. Build the Catalog from what the cluster really has: the built-in
//     attributes plus the Serf tags seen in the membership (WithTags); in
//     a cloud of pools, Open it (a tag the asker's pool lacks may be
//     another pool's: Plan.Unlisted names those it read so).
//  2. Treat a decoded Plan as hostile until Decode returns no error; Decode
//     validates every limit in limits.go, so Eval on a decoded plan is bounded.
//  3. Give Eval records whose values have the attribute's kind (Clamp does it).
//
// # Types
//
// Every value has a Kind: bool, string, or a number with a unit kind (bytes,
// duration in seconds, ratio, count, or a plain number). Comparisons and
// arithmetic are checked: bytes never meet durations, strings never meet
// numbers; a plain number literal takes the unit of what it meets, so
// mem_free > 4000000000 means bytes. NULL follows SQL: a missing tag is
// NULL, comparisons with NULL are NULL, and WHERE keeps a peer only when the
// filter is TRUE.
//
// Kind and Value are package answer's (aliases here), so that an answer
// carries typed values to the API and the shell without the engine; Exact
// and Finalize return answer.Answers.
package query
