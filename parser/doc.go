// Package parser turns PQL text into an abstract syntax tree.
//
// PQL (the peerq query language) is the SQL-like language in which a user asks
// questions of the set of connected peers. The grammar is written with
// alecthomas/participle/v2 as one struct per rule (grammar.go); the parse tree
// is then lowered into the AST of ast.go, whose expressions carry real operator
// precedence and whose every node carries the position it came from, so that
// the type checker in package query can point at the offending column.
//
// Follow says what may come next after a prefix of a script (the shell's
// completion): it runs the prefix's tokens through the rules of EBNF(), the
// grammar participle derives from the structs, so it cannot drift from the
// parser. Help describes each kind of statement with its syntax read from
// the same rules (the shell's \h).
//
// The package does no I/O, reads no clock and starts no goroutine.
//
// # Usage
//
//	stmts, err := parser.Parse("query.pql", src)
//	if err != nil {
//		var perr *parser.Error
//		if errors.As(err, &perr) {
//			fmt.Println(perr.Caret(src)) // the line, and a caret under the column
//		}
//	}
//	for _, s := range stmts {
//		fmt.Println(s) // the canonical text of the statement
//	}
//
// The caller's duties:
//
//  1. Give the whole script: statements are separated by ';' and may span lines.
//  2. Treat the AST as read-only; it may be shared between goroutines once parsed.
//  3. Do not rely on Parse accepting more than MaxInputBytes or MaxTokens: the
//     limits keep a hostile statement from costing unbounded time or stack.
//
// # Precedence
//
// From loosest to tightest: OR, AND, NOT, comparison (= != <> < <= > >=, IN,
// BETWEEN, LIKE, IS [NOT] NULL; not associative), + and -, * / and %, unary
// minus, then primaries (literals, names, function calls, parentheses).
//
// # Literals
//
// Numbers may carry a unit, written right after the digits: sizes B, KB, MB,
// GB, TB, PB are decimal (4GB = 4·10^9 bytes) and KiB, MiB, GiB, TiB, PiB are
// binary (4GiB = 4·2^30 bytes); durations ms, s, m, h, d may be chained as in
// 2h30m; a trailing % divides by 100 (95% = 0.95). Units are case-insensitive,
// except that a lone M or m is minutes and MB/mb is megabytes.
package parser
