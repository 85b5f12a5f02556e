// Package shell is how people see answers: result rendering in four formats
// (a table for terminals; CSV, JSON and NDJSON for scripts), and, as it
// grows, the interactive shell. Like cockroach's cli, rendering is separate
// from execution and from the connection, and everything writes to an
// io.Writer given to it. The package imports none of the engine: callers
// hand it Tables of cells that carry both the text a person reads (4.0 GiB,
// 2h13m, 97.5%) and the raw value a script computes with (bytes as integers,
// durations in seconds, ratios as fractions).
package shell
