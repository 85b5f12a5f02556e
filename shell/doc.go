// Package shell is how people use peerq: the interactive shell (REPL), the
// script runner, and result rendering in four formats (a table for
// terminals; CSV, JSON and NDJSON for scripts).
//
// Like cockroach's cli, the REPL, execution and rendering are separate: the
// shell runs statements through an api.Executor (an agent's own peer, or
// the agent's HTTP API through api.Client), reads lines through a small
// interface (liner on a terminal, bufio on pipes), and writes to the
// io.Writers given to it. It imports none of the engine: statements are
// cut where the language's lexer says they end (Config.Split, query.Split
// injected by the command), so a ';' inside a string or a comment ends
// nothing; answers arrive as answer.Answers (a leaf package) whose typed
// values give both the text a person reads (4.0 GiB, 2h13m, 97.5%) and
// the raw value a script computes with (bytes as integers, durations in
// seconds, ratios as fractions).
//
// On a terminal the shell says first which agent answers (Config.Agent,
// with its cluster's size), and hints how to start one when the connection
// is refused (Config.Hint). It completes only what may come next at the
// cursor, as the grammar says (Config.Follow, parser.Follow: keywords where
// the grammar takes them; where it takes a name, subclouds after SUBCLOUD
// and RELEASE, else the columns of the table the statement reads and the
// functions, as the type checker takes them there (Config.Scope,
// query.CompletionScope: aggregates only in a select list or an aggregate
// statement's ORDER BY); nothing inside a string or after AS), and pages answers taller than the screen (Config.Pager). Its
// backslash commands are psql's: \d [NAME] describes the catalog, a table
// (Config.Tables), an attribute or a subcloud; \x shows rows as records
// (RenderExpanded); \i FILE runs a file, each error at FILE:line:col; \h
// [STATEMENT] gives a statement's syntax (Config.Help); \timing times each
// statement. On a pipe it goes on after errors and returns a FailedError,
// so that the command exits as a script would.
//
// Judge is the one rule for what stops a script (and what a piped shell
// counts as failed): a statement's error, or a partial or contested
// answer unless allowed — a partial answer whatever made it partial, WITH
// TIMEOUT included. A table's footer (Footer) always says the status,
// as psql's says the rows. In JSON a script of several statements (or a
// WATCH) writes one array of documents; NDJSON is the format for streams.
//
// # Usage
//
//	shell.Run(ctx, exec, shell.Config{In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
//		Terminal: true, Keywords: query.Keywords(), Split: query.Split})
//	err := shell.RunScript(ctx, exec, src, shell.ScriptOptions{Name: "script.pql", Split: query.Split,
//		Format: shell.FormatJSON, Out: os.Stdout})
//	var se *shell.StatementError   // errors.As: file:line:col and a caret
package shell
