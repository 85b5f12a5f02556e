package api

import (
	"context"
	"errors"
	"fmt"
)

// Executor runs statements: an agent's own peer (node.Node), or the agent
// through its HTTP API (Client).
type Executor interface {
	// Execute runs one statement (its text, without the ';'), calling
	// progress (if set) while it runs. It returns the answer; an error
	// beside an answer (ErrTimeout) says the answer is partial. A
	// statement error implements Line() and Column().
	Execute(ctx context.Context, statement string, progress func(Progress)) (*Answer, error)
	// Words lists names worth completing: attributes (the catalog and live
	// tags) and subclouds.
	Words(ctx context.Context) []string
	// Watch runs a standing query (WATCH … EVERY d), calling each with
	// every epoch's answer (or the epoch's error) until ctx ends or each
	// returns false. A statement that does not compile is its error.
	Watch(ctx context.Context, statement string, each func(*Answer, error) bool) error
}

// Column is a result column: its name and its kind (bytes, duration,
// ratio, count, number, string, bool).
type Column struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Answer is a statement's answer.
type Answer struct {
	Columns []Column `json:"columns,omitempty"`
	// Rows are raw values: bytes as integers, durations in seconds, ratios
	// as fractions, NULL as nil.
	Rows [][]any `json:"rows,omitempty"`
	// Text is the same values with units, for people.
	Text [][]string `json:"text,omitempty"`
	Meta *Meta      `json:"meta,omitempty"`
	// Explain is EXPLAIN's description, instead of rows.
	Explain string `json:"explain,omitempty"`
}

// Protocols a Meta names.
const (
	ProtocolAggregate = "aggregate"
	ProtocolTopK      = "top-k"
	ProtocolReserve   = "reserve"
	ProtocolLocal     = "local"
)

// The statuses of an answer.
const (
	// StatusExact: computed exactly, from the membership (tags) or the
	// asker's own tables.
	StatusExact = "exact"
	// StatusConverged: gossip converged over every member alive when the
	// answer was returned, none unreachable, none refusing (docs/PQL.md,
	// "What an answer promises").
	StatusConverged = "converged"
	// StatusPartial: the answer leaves members out or stopped early —
	// Reason says which; scripts exit 4 unless --allow-partial.
	StatusPartial = "partial"
)

// Meta is how an answer was reached and how complete it is.
type Meta struct {
	Statement string `json:"statement"`
	Protocol  string `json:"protocol"` // aggregate, top-k, reserve, local
	// Status is exact, converged or partial; Reason says why partial.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Peers is the membership the answer is about: the live members when
	// it was returned, less those that refused.
	Peers int `json:"peers"`
	// MembersStart and MembersEnd are the live members when the query
	// started and ended; Joined and Left those that joined, or left or
	// failed, in between; Unreachable the members the asker could not
	// reach at the end; Refused the peers that would not take part.
	MembersStart int      `json:"members_start,omitempty"`
	MembersEnd   int      `json:"members_end,omitempty"`
	Joined       []string `json:"joined,omitempty"`
	Left         []string `json:"left,omitempty"`
	Unreachable  []string `json:"unreachable,omitempty"`
	Refused      []string `json:"refused,omitempty"`
	// Excluded are members left out of the answer, which is exact or
	// converged over the others (Warning says why, by member): lost while
	// it ran, as the query's peers found (a failed exchange, pings and
	// indirect probes) or as Serf declared, or their clock is off.
	// ExcludedCount is how many; Excluded names the first MaxNamed.
	Excluded      []string `json:"excluded,omitempty"`
	ExcludedCount int      `json:"excluded_count,omitempty"`
	Participants  float64  `json:"participants_estimate,omitempty"`
	Rounds        int      `json:"rounds"`
	Elapsed       float64  `json:"elapsed_seconds"`
	ErrEstimate   float64  `json:"error_estimate"`
	PlanHash      string   `json:"plan_hash"`
	FromTags      bool     `json:"from_tags"`
	// Warning is said beside a good answer: that the cluster is this peer
	// alone, say.
	Warning string `json:"warning,omitempty"`
	// Converged is Status != partial (kept for clients of the first API).
	Converged bool `json:"converged"`
	Timeout   bool `json:"timeout,omitempty"`
	// Epoch and At place an answer of a WATCH: its epoch (1, 2, ...) and
	// when it was answered (RFC 3339, UTC).
	Epoch int    `json:"epoch,omitempty"`
	At    string `json:"at,omitempty"`
}

// MaxNamed is how many excluded members an answer names (Meta.Excluded);
// ExcludedCount counts them all.
const MaxNamed = 64

// Progress is a running statement's state, once a round.
type Progress struct {
	Round, Budget, Peers int
	ErrEstimate          float64
	// Estimate is the current answer (columns, rows and text; no meta).
	Estimate *Answer
}

// FirstCell is the estimate's first value with its unit, or "…".
func (p Progress) FirstCell() string {
	if p.Estimate == nil || len(p.Estimate.Text) == 0 || len(p.Estimate.Text[0]) == 0 {
		return "…"
	}
	return p.Estimate.Text[0][0]
}

// Code classifies an error for clients and exit codes.
type Code string

// The error codes.
const (
	CodeStatement      Code = "statement"        // does not parse or type-check (HTTP 400)
	CodeBadRequest     Code = "bad_request"      // the request itself is malformed (HTTP 400)
	CodeUnauthorized   Code = "unauthorized"     // missing or wrong token (HTTP 401)
	CodeNotEnoughPeers Code = "not_enough_peers" // a RESERVE could not get its peers; nothing stays reserved
	CodeTimeout        Code = "timeout"          // WITH TIMEOUT ended the statement; the answer is partial
	CodeOverloaded     Code = "overloaded"       // the agent asks as many queries as it may: retry later (HTTP 429)
	CodePartial        Code = "partial"          // the answer does not cover every member
	CodeUnsupported    Code = "unsupported"      // the statement cannot run here
	// CodeIncomplete: a change was made where it could be, and the error
	// names the members it could not reach (RELEASE with members that did
	// not answer; RESIZE that lost members while it answered). Exit 6.
	CodeIncomplete Code = "incomplete"
	// CodeStorage: an agent could not write its data dir (disk full,
	// read-only): the statement changed nothing and holds nothing. Exit 7.
	CodeStorage  Code = "storage"
	CodeInternal Code = "internal"
)

// Sentinels for the codes callers branch on; match with errors.Is. The
// engine wraps them in its own errors, and Client returns errors that
// match them.
var (
	ErrNotEnoughPeers = &Error{Code: CodeNotEnoughPeers, Message: "not enough free peers"}
	ErrTimeout        = &Error{Code: CodeTimeout, Message: "the statement's timeout ended it before it converged"}
	ErrUnsupported    = &Error{Code: CodeUnsupported, Message: "the statement cannot run here"}
	ErrOverloaded     = &Error{Code: CodeOverloaded, Message: "too many queries at once"}
	// ErrPartial says an answer is partial (Meta.Status "partial"): some
	// members were unreachable, refused, or the budget ended first.
	ErrPartial = &Error{Code: CodePartial, Message: "the answer is partial"}
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
	for _, s := range []*Error{ErrNotEnoughPeers, ErrTimeout, ErrUnsupported, ErrOverloaded, ErrPartial, ErrIncomplete, ErrStorage} {
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
	// result (and the current estimate in progress lines)
	Columns []Column   `json:"columns,omitempty"`
	Rows    [][]any    `json:"rows,omitempty"`
	Text    [][]string `json:"text,omitempty"`
	Meta    *Meta      `json:"meta,omitempty"`
	Explain string     `json:"explain,omitempty"`
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
func ProgressLine(p Progress) Line {
	l := Line{Type: LineProgress, Round: p.Round, Budget: p.Budget, Peers: p.Peers, ErrEstimate: p.ErrEstimate}
	if a := p.Estimate; a != nil {
		l.Columns, l.Rows, l.Text = a.Columns, a.Rows, a.Text
	}
	return l
}

// ResultLine is a as a line.
func ResultLine(a *Answer) Line {
	return Line{Type: LineResult, Columns: a.Columns, Rows: a.Rows, Text: a.Text, Meta: a.Meta, Explain: a.Explain}
}

// ErrorLine is err as a line.
func ErrorLine(err error) Line {
	e := ErrorOf(err)
	return Line{Type: LineError, Error: e.Message, Code: e.Code, Line: e.LineNo, Column: e.ColumnNo}
}

// Answer is a result line's answer.
func (l Line) Answer() *Answer {
	return &Answer{Columns: l.Columns, Rows: l.Rows, Text: l.Text, Meta: l.Meta, Explain: l.Explain}
}

// Progress is a progress line's progress.
func (l Line) Progress() Progress {
	return Progress{Round: l.Round, Budget: l.Budget, Peers: l.Peers, ErrEstimate: l.ErrEstimate,
		Estimate: &Answer{Columns: l.Columns, Rows: l.Rows, Text: l.Text}}
}

// Err is an error line's error.
func (l Line) Err() error {
	return &Error{Message: l.Error, Code: l.Code, LineNo: l.Line, ColumnNo: l.Column}
}
