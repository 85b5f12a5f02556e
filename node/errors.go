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
