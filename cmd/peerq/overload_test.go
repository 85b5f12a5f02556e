package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/peerq/peerq/api"
)

// An agent that answers 429: peerq query and a piped peerq shell print
// its "busy, retry after N s" and exit 5.
func TestOverloadedAgent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "4")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		json.NewEncoder(w).Encode(api.Busy(4, "the agent holds 512 API connections at once"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	want := "busy, retry after 4 s: the agent holds 512 API connections at once"
	code, _, stderr := runCLI(t, "", "query", "--api", addr, "--token", "t", "-e", "SELECT COUNT(*) FROM peers")
	if code != exitOverloaded || !strings.Contains(stderr, want) || strings.Contains(stderr, "try again shortly") {
		t.Errorf("query: exit %d, %q; want %d and %q", code, stderr, exitOverloaded, want)
	}
	t.Logf("peerq query: %s", stderr)
	code, _, stderr = runCLI(t, "SELECT COUNT(*) FROM peers;\n", "shell", "--api", addr, "--token", "t")
	if code != exitOverloaded || !strings.Contains(stderr, want) {
		t.Errorf("shell: exit %d, %q; want %d and %q", code, stderr, exitOverloaded, want)
	}
	t.Logf("peerq shell: %s", stderr)
}
