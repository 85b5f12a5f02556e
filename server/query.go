package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// query serves POST /v1/query: everything that can refuse the statement
// (its JSON, its compilation, a WATCH's epoch, the peer's admission) is
// answered before the 200, as 400 or 429; then the answer streams as
// NDJSON, progress lines and the result, or an answer line per epoch of a
// WATCH.
func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	req, err := decodeQueryRequest(http.MaxBytesReader(w, r.Body, api.MaxRequestBytes))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &api.Error{Code: api.CodeBadRequest, Message: err.Error()})
		return
	}
	plan, err := s.p.Compile(req.Statement)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorOf(err))
		return
	}
	if plan.Watch != nil && !plan.Explain {
		if err := s.p.CheckWatch(plan); err != nil {
			writeJSON(w, http.StatusBadRequest, api.ErrorOf(err))
			return
		}
	}
	ctx := r.Context()
	if plan.Kind == query.PlanReserve || run.ProtocolOf(plan.Kind) != 0 && !plan.FromTags && !plan.Explain {
		// A place is taken before the answer starts, so that a full
		// agent can say 429 rather than a 200 that fails.
		var release func()
		if ctx, release, err = s.p.Admit(ctx); err != nil {
			var e *api.Error
			switch {
			case errors.As(err, &e) && e.Code == api.CodeOverloaded && e.RetryAfter > 0:
				// The peer said when to come back itself.
				w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
				writeJSON(w, http.StatusTooManyRequests, api.ErrorOf(err))
			case errors.Is(err, api.ErrOverloaded):
				busy(w, s.statements.retryAfter(), err.Error())
			default: // the peer is closing, or the client left
				writeJSON(w, http.StatusServiceUnavailable, api.ErrorOf(err))
			}
			return
		}
		defer func() {
			release()
			s.statements.done()
		}()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := answer.NewEncoder(w)
	rc := http.NewResponseController(w)
	// A line that cannot be written (the client stopped reading for
	// WriteTimeout, or went away) stops the statement: nobody would read
	// its answer, and a WATCH would run on for ever.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	send := func(l api.Line) {
		if err := rc.SetWriteDeadline(time.Now().Add(WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			stop()
			return
		}
		err := enc.Encode(l)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			stop()
		}
	}
	if plan.Watch != nil && !plan.Explain {
		// A standing query: an answer line per epoch, until the client
		// goes away (the request's context ends, and the epoch with it).
		err := s.p.WatchPlan(ctx, plan, func(ans *answer.Answer, err error) bool {
			if ans == nil {
				send(api.ErrorLine(err))
			} else {
				send(api.ResultLine(ans))
			}
			return ctx.Err() == nil
		})
		if err != nil {
			send(api.ErrorLine(err))
		}
		return
	}
	// Progress comes from the peer's goroutine: hand it over through a
	// channel, dropping lines the client is too slow for.
	progress := make(chan answer.Progress, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range progress {
			send(api.ProgressLine(p))
		}
	}()
	// The request's context ends when the client goes away: the query
	// stops with it. A round's progress may still be on its way when the
	// answer is (the peer hands both out after its lock): it is dropped
	// once the channel is closed.
	var mu sync.Mutex
	closed := false
	ans, err := s.p.Query(ctx, plan, func(p answer.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		select {
		case progress <- p:
		default:
		}
	})
	mu.Lock()
	closed = true
	close(progress)
	mu.Unlock()
	<-done
	if ans == nil {
		send(api.ErrorLine(err))
		return
	}
	send(api.ResultLine(ans))
}

// decodeQueryRequest reads the body of POST /v1/query: one JSON object
// with a statement, nothing else.
func decodeQueryRequest(r io.Reader) (api.QueryRequest, error) {
	var req api.QueryRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("bad JSON: %w", err)
	}
	if dec.More() {
		return req, errors.New("bad JSON: more than one object")
	}
	if strings.TrimSpace(req.Statement) == "" {
		return req, errors.New(`bad request: no "statement"`)
	}
	return req, nil
}
