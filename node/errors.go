package node

import (
	"errors"
	"fmt"

	"github.com/peerq/peerq/api"
)

// storageError is a statement that failed because a data dir could not be
// written: "RESERVE big: cannot record it at a5 (disk full); nothing is
// reserved".
func storageError(what, at, reason string, cause error, outcome string) error {
	if reason == "" {
		reason = "write failed"
	}
	return &api.Error{Code: api.CodeStorage, Cause: cause,
		Message: fmt.Sprintf("%s: %s at %s, whose data dir cannot be written (%v); %s", what, reason, at, cause, outcome)}
}

// noted adds what became of the statement to err, keeping its code.
func noted(err error, outcome string) error {
	var e *api.Error
	if errors.As(err, &e) {
		return &api.Error{Code: e.Code, Message: e.Message + "; " + outcome, LineNo: e.LineNo, ColumnNo: e.ColumnNo, Cause: err}
	}
	return fmt.Errorf("%w; %s", err, outcome)
}

// ErrTimeout is returned, with the partial answer, when WITH TIMEOUT ends a
// query before it converged.
var ErrTimeout = api.ErrTimeout

// ErrClosed is returned for queries cut short by the node closing.
var ErrClosed = errors.New("the peer is shutting down")

// ErrOverloaded is returned when this peer already asks as many queries
// as it may and its queue is full (or the wait for a place ran out).
var ErrOverloaded = api.ErrOverloaded

// stoppedError is a query stopped early: a sentence for people, the cause
// for errors.Is.
type stoppedError struct {
	err error
	msg string
}

func (e *stoppedError) Error() string { return e.msg }
func (e *stoppedError) Unwrap() error { return e.err }
