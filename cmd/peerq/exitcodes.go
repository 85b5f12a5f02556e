package main

import (
	"fmt"
	"strings"

	"github.com/peerq/peerq/api"
)

// The exit codes scripts can rely on. exitCodes describes each: it is the
// one source of the tables in docs/CLI.md and docs/API.md (a test checks
// them) and of `peerq query --help`.
const (
	exitOK         = 0 // every statement answered
	exitUsage      = 1 // bad flags, unreadable files, I/O
	exitStatement  = 2 // a statement does not parse or type-check
	exitNotEnough  = 3 // a RESERVE could not get the peers it needs; nothing is reserved
	exitTimeout    = 4 // an answer is partial (a TIMEOUT, unreachable or refusing members): printed, then exit 4
	exitOverloaded = 5 // the agent is busy: "busy, retry after N s"
	exitIncomplete = 6 // a change reached only some of its members (named); each is released when it answers, or lapses
	exitStorage    = 7 // a data dir could not be written ("disk full at a5"): nothing changed, nothing held
	// exitContested: an answer the sample check contested (printed with
	// both figures; --allow-contested accepts it). Not 6, which a script
	// reads as "a change reached only some members".
	exitContested = 8
)

// exitCode documents one exit code: its number, a short name, the API's
// error codes that lead to it (docs/API.md), and what it means.
type exitCode struct {
	Code    int
	Name    string
	API     []api.Code
	Meaning string
}

// exitCodes are every exit code of the binary, in order.
var exitCodes = []exitCode{
	{exitOK, "ok", nil, "every statement answered (an answer `sampled` too: docs/PQL.md)"},
	{exitUsage, "usage", []api.Code{api.CodeBadRequest, api.CodeUnauthorized, api.CodeNotFound, api.CodeUnsupported, api.CodeInternal},
		"usage or I/O: a bad flag, an unreadable file, the agent unreachable, a wrong token, a member the agent does not know"},
	{exitStatement, "statement", []api.Code{api.CodeStatement},
		"a statement does not parse or type-check: `file:line:col: message` and the line with a caret"},
	{exitNotEnough, "not_enough_peers", []api.Code{api.CodeNotEnoughPeers},
		"a RESERVE could not get its peers: nothing stays reserved, or the peers that did not answer their release are named"},
	{exitTimeout, "partial", []api.Code{api.CodeTimeout, api.CodePartial},
		"an answer is partial (`WITH TIMEOUT`, the round budget, unreachable or refusing members): it is printed first; `--allow-partial` accepts it"},
	{exitOverloaded, "busy", []api.Code{api.CodeOverloaded},
		"the agent is busy: `busy, retry after N s` — retry then"},
	{exitIncomplete, "incomplete", []api.Code{api.CodeIncomplete},
		"a change reached only some of its members: a RELEASE whose members did not all answer (named: each is released when it answers or asks its owner, or its lease lapses); a RESIZE that lost members while it answered, or a RESERVE that lost members as it was recorded, neither repaired within 10 s (the answer lists what it holds; being repaired)"},
	{exitStorage, "storage", []api.Code{api.CodeStorage},
		"a data dir could not be written (`disk full at a5`, `read-only at a5`): the statement changed nothing and holds nothing"},
	{exitContested, "contested", []api.Code{api.CodeContested},
		"an answer is contested: an independent sample of members contradicts it, or holds one record that alone bends it, or a ranking holds a value no machine reports (docs/SECURITY.md); it is printed first, with the reason; `--allow-contested` accepts it"},
}

// exitCodesHeader is the first line of the exit codes' table in the docs.
const exitCodesHeader = "| exit code | name | API error `code` | meaning |"

// exitCodesMarkdown is the table of exit codes as docs/CLI.md and
// docs/API.md show it.
func exitCodesMarkdown() string {
	var b strings.Builder
	b.WriteString(exitCodesHeader + "\n|---|---|---|---|\n")
	for _, e := range exitCodes {
		codes := make([]string, len(e.API))
		for i, c := range e.API {
			codes[i] = "`" + string(c) + "`"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", e.Code, e.Name, strings.Join(codes, ", "), e.Meaning)
	}
	return b.String()
}

// exitCodesText is the list of exit codes for --help: one a line.
func exitCodesText() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %d  %-16s %s\n", e.Code, e.Name, strings.ReplaceAll(e.Meaning, "`", ""))
	}
	return strings.TrimRight(b.String(), "\n")
}
