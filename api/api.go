package api

import (
	"context"
	"errors"
	"fmt"

	"github.com/peerq/peerq/answer"
)

// Executor runs statements: an agent's own peer (node.Node), or the agent
// through its HTTP API (Client).
type Executor interface {
	// Execute runs one statement (its text, without the ';'), calling
	// progress (if set) while it runs. It returns the answer; an error
	// beside an answer (ErrTimeout) says the answer is partial. A
	// statement error implements Line() and Column().
	Execute(ctx context.Context, statement string, progress func(answer.Progress)) (*answer.Answer, error)
	// Words lists names worth completing: attributes (the catalog and live
	// tags) and subclouds.
	Words(ctx context.Context) []string
	// Watch runs a standing query (WATCH … EVERY d), calling each with
	// every epoch's answer (or the epoch's error) until ctx ends or each
	// returns false. A statement that does not compile is its error.
	Watch(ctx context.Context, statement string, each func(*answer.Answer, error) bool) error
}

// Code classifies an error for clients and exit codes.
type Code string

// The error codes.
const (
	CodeStatement      Code = "statement"        // does not parse or type-check (HTTP 400)
	CodeBadRequest     Code = "bad_request"      // the request itself is malformed (HTTP 400)
	CodeUnauthorized   Code = "unauthorized"     // missing or wrong token (HTTP 401)
	CodeNotFound       Code = "not_found"        // no such member: GET /v1/nodes/{name} (HTTP 404)
	CodeNotEnoughPeers Code = "not_enough_peers" // a RESERVE could not get its peers; nothing stays reserved
	CodeTimeout        Code = "timeout"          // WITH TIMEOUT ended the statement; the answer is partial
	CodeOverloaded     Code = "overloaded"       // the agent asks as many queries as it may: retry later (HTTP 429)
	CodePartial        Code = "partial"          // the answer does not cover every member
	// CodeContested: an independent sample of members contradicts the
	// gossip answer (answer.Meta.Status "contested"): a liar may have bent
	// it. Exit 8.
	CodeContested   Code = "contested"
	CodeUnsupported Code = "unsupported" // the statement cannot run here
	// CodeIncomplete: a change was made where it could be, and the error
	// names the members it could not reach (RELEASE with members that did
	// not answer; RESIZE that lost members while it answered). Exit 6.
	CodeIncomplete Code = "incomplete"
	// CodeStorage: an agent could not write its data dir (disk full,
	// read-only): the statement changed nothing and holds nothing. Exit 7.
	CodeStorage  Code = "storage"
	CodeInternal Code = "internal"
)

// Codes are every error code above, in order: a new one goes here too,
// and the exit codes' table (cmd/peerq) must give it an exit code.
var Codes = []Code{CodeStatement, CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeNotEnoughPeers, CodeTimeout,
	CodeOverloaded, CodePartial, CodeContested, CodeUnsupported, CodeIncomplete, CodeStorage, CodeInternal}

// Sentinels for the codes callers branch on; match with errors.Is. The
// engine wraps them in its own errors, and Client returns errors that
// match them.
var (
	ErrNotEnoughPeers = &Error{Code: CodeNotEnoughPeers, Message: "not enough free peers"}
	ErrTimeout        = &Error{Code: CodeTimeout, Message: "the statement's timeout ended it before it converged"}
	ErrUnsupported    = &Error{Code: CodeUnsupported, Message: "the statement cannot run here"}
	ErrOverloaded     = &Error{Code: CodeOverloaded, Message: "too many queries at once"}
	// ErrPartial says an answer is partial (answer.Meta.Status "partial"): some
	// members were unreachable, refused, or the budget ended first.
	ErrPartial = &Error{Code: CodePartial, Message: "the answer is partial"}
	// ErrContested says an answer is contested (answer.Meta.Status
	// "contested"): the sample check found it bent.
	ErrContested = &Error{Code: CodeContested, Message: "the answer is contested by an independent sample"}
	// ErrStatement matches every statement error (errors.Is).
	ErrStatement = &Error{Code: CodeStatement, Message: "the statement has an error"}
	// ErrIncomplete says a change reached some of its members only.
	ErrIncomplete = &Error{Code: CodeIncomplete, Message: "the change did not reach every member"}
	// ErrStorage says a data dir could not be written; nothing changed.
	ErrStorage = &Error{Code: CodeStorage, Message: "a data dir cannot be written"}
)

// Error is an error as the API reports it.
type Error struct {
	Message string `json:"error"`
	Code    Code   `json:"code,omitempty"`
	// LineNo and ColumnNo point into the statement (CodeStatement).
	LineNo   int `json:"line,omitempty"`
	ColumnNo int `json:"column,omitempty"`
	// RetryAfter is how many seconds a refused client should wait before
	// it tries again (CodeOverloaded; the HTTP answer's Retry-After).
	RetryAfter int `json:"retry_after,omitempty"`
	// Cause is the error it reports, if any, for errors.As in this
	// process; it does not cross the API.
	Cause error `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// Busy is the error of an agent that refuses work it cannot take now: its
// message reads "busy, retry after N s: <reason>", and it matches
// ErrOverloaded. retryAfter is in seconds, at least 1.
func Busy(retryAfter int, reason string) *Error {
	retryAfter = max(retryAfter, 1)
	return &Error{Code: CodeOverloaded, RetryAfter: retryAfter, Message: fmt.Sprintf("busy, retry after %d s: %s", retryAfter, reason)}
}

func (e *Error) Unwrap() error { return e.Cause }

// Line and Column place a statement error (shell.Positioned).
func (e *Error) Line() int   { return e.LineNo }
func (e *Error) Column() int { return e.ColumnNo }

// Is matches errors of the same code, so that errors.Is(err,
// ErrNotEnoughPeers) holds for any not-enough-peers error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code != "" && t.Code == e.Code
}

// positioned is a statement error from the parser or the type checker.
type positioned interface {
	error
	Line() int
	Column() int
}

// ErrorOf classifies err for the API: its code and, for a statement error,
// its position.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return &Error{Message: err.Error(), Code: e.Code, LineNo: e.LineNo, ColumnNo: e.ColumnNo, RetryAfter: e.RetryAfter}
	}
	var p positioned
	if errors.As(err, &p) && p.Line() > 0 {
		return &Error{Message: err.Error(), Code: CodeStatement, LineNo: p.Line(), ColumnNo: p.Column()}
	}
	for _, s := range []*Error{ErrNotEnoughPeers, ErrTimeout, ErrUnsupported, ErrOverloaded, ErrPartial, ErrContested, ErrIncomplete, ErrStorage} {
		if errors.Is(err, s) {
			return &Error{Message: err.Error(), Code: s.Code}
		}
	}
	return &Error{Message: err.Error(), Code: CodeInternal}
}

// Line is one NDJSON line of POST /v1/query: "progress" while the
// statement runs, then "result" or "error".
type Line struct {
	Type string `json:"type"`
	// progress
	Round       int     `json:"round,omitempty"`
	Budget      int     `json:"budget,omitempty"`
	Peers       int     `json:"peers,omitempty"`
	ErrEstimate float64 `json:"error_estimate,omitempty"`
	// result (and the current estimate in progress lines): the answer's
	// fields, at the line's top level
	answer.JSON
	// error
	Error  string `json:"error,omitempty"`
	Code   Code   `json:"code,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// Line types.
const (
	LineProgress = "progress"
	LineResult   = "result"
	LineError    = "error"
)

// ProgressLine is p as a line.
func ProgressLine(p answer.Progress) Line {
	l := Line{Type: LineProgress, Round: p.Round, Budget: p.Budget, Peers: p.Peers, ErrEstimate: p.ErrEstimate}
	if a := p.Estimate; a != nil {
		l.JSON = a.JSON()
		l.Meta, l.Explain = nil, ""
	}
	return l
}

// ResultLine is a as a line.
func ResultLine(a *answer.Answer) Line {
	return Line{Type: LineResult, JSON: a.JSON()}
}

// ErrorLine is err as a line.
func ErrorLine(err error) Line {
	e := ErrorOf(err)
	return Line{Type: LineError, Error: e.Message, Code: e.Code, Line: e.LineNo, Column: e.ColumnNo}
}

// Answer is a result line's answer.
func (l Line) Answer() *answer.Answer { return l.JSON.Answer() }

// Progress is a progress line's progress.
func (l Line) Progress() answer.Progress {
	est := l.JSON
	est.Meta, est.Explain = nil, ""
	return answer.Progress{Round: l.Round, Budget: l.Budget, Peers: l.Peers, ErrEstimate: l.ErrEstimate, Estimate: est.Answer()}
}

// Err is an error line's error.
func (l Line) Err() error {
	return &Error{Message: l.Error, Code: l.Code, LineNo: l.Line, ColumnNo: l.Column}
}
