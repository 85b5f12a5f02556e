package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A 429 is the overload error, with the agent's message and its wait:
// from the agent's JSON, or from Retry-After alone (a proxy's bare 429).
func TestAPIClientOverloaded(t *testing.T) {
	for _, c := range []struct {
		name, retryAfter, body string
		wantRetry              int
		wantMessage            string
	}{
		{"agent", "7", mustJSON(Busy(7, "the agent holds 512 API connections at once")), 7,
			"busy, retry after 7 s: the agent holds 512 API connections at once"},
		{"bare", "3", "", 3, "busy, retry after 3 s: 429 Too Many Requests"},
		{"older agent", "1", `{"error":"too many queries at once: 256 queries running","code":"overloaded"}`, 1,
			"busy, retry after 1 s: too many queries at once: 256 queries running"},
		{"no Retry-After", "", "", 1, "busy, retry after 1 s: 429 Too Many Requests"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				w.WriteHeader(http.StatusTooManyRequests)
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			cl := NewClient(strings.TrimPrefix(srv.URL, "http://"), "t", 5*time.Second)
			_, err := cl.Execute(context.Background(), "SELECT COUNT(*) FROM peers", nil)
			var e *Error
			if !errors.Is(err, ErrOverloaded) || !errors.As(err, &e) {
				t.Fatalf("%v: not the overload error", err)
			}
			if e.RetryAfter != c.wantRetry || !strings.HasSuffix(e.Message, c.wantMessage) || !strings.HasPrefix(e.Message, "agent at ") {
				t.Errorf("%q (retry after %d), want %q (%d)", e.Message, e.RetryAfter, c.wantMessage, c.wantRetry)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
