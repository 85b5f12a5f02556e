package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// The local HTTP API (docs/API.md): JSON, on loopback by default, every
// request carrying the token the agent wrote to its data dir.
//
//	POST /v1/query       {"statement": "..."} → NDJSON: progress lines, then the result
//	GET  /v1/members     the live peers
//	GET  /v1/health      this peer and the membership size
//	GET  /v1/attributes  the catalog

// APIServer serves the local HTTP API of a node.
type APIServer struct {
	n      *Node
	token  string
	server *http.Server
	ln     net.Listener
}

// ServeAPI starts the API on addr (use a loopback address) with the token.
func (n *Node) ServeAPI(addr, token string) (*APIServer, error) {
	if token == "" {
		return nil, errors.New("node: the API needs a token")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: api: %w", err)
	}
	a := &APIServer{n: n, token: token, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/query", a.query)
	mux.HandleFunc("GET /v1/members", a.members)
	mux.HandleFunc("GET /v1/health", a.health)
	mux.HandleFunc("GET /v1/attributes", a.attributes)
	// The answer streams for as long as the query runs: no write timeout.
	// Requests are small: they must arrive whole in ReadTimeout.
	a.server = &http.Server{Handler: a.auth(mux), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	go a.server.Serve(ln)
	return a, nil
}

// Addr is the address the API listens on.
func (a *APIServer) Addr() string { return a.ln.Addr().String() }

// Close stops the API.
func (a *APIServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return a.server.Shutdown(ctx)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (a *APIServer) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get(api.TokenHeader)
		if tok == "" {
			tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) != 1 {
			writeJSON(w, http.StatusUnauthorized, &api.Error{Code: api.CodeUnauthorized,
				Message: fmt.Sprintf("missing or wrong token for agent %s (header %s)", a.n.Name(), api.TokenHeader)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *APIServer) query(w http.ResponseWriter, r *http.Request) {
	var req api.QueryRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, api.MaxRequestBytes))
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, &api.Error{Code: api.CodeBadRequest, Message: "bad JSON: " + err.Error()})
		return
	}
	plan, err := a.n.Compile(req.Statement)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorOf(err))
		return
	}
	ctx := r.Context()
	if plan.Kind == query.PlanReserve || run.ProtocolOf(plan.Kind) != 0 && !plan.FromTags && !plan.Explain {
		// A place is taken before the answer starts, so that a full
		// agent can say 429 rather than a 200 that fails.
		var release func()
		if ctx, release, err = a.n.Admit(ctx); err != nil {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, api.ErrorOf(err))
			return
		}
		defer release()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	send := func(l api.Line) {
		enc.Encode(l)
		if flusher != nil {
			flusher.Flush()
		}
	}
	// Progress comes from the runtime's goroutine: hand it over through a
	// channel, dropping lines the client is too slow for.
	progress := make(chan api.Progress, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range progress {
			send(api.ProgressLine(p))
		}
	}()
	// The request's context ends when the client goes away: the query
	// stops with it.
	ans, err := a.n.ExecutePlan(ctx, plan, func(p api.Progress) {
		select {
		case progress <- p:
		default:
		}
	})
	close(progress)
	<-done
	if ans == nil {
		send(api.ErrorLine(err))
		return
	}
	send(api.ResultLine(ans))
}

func (a *APIServer) members(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.net.Members())
}

func (a *APIServer) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": a.n.Name(), "peers": a.n.net.Size()})
}

func (a *APIServer) attributes(w http.ResponseWriter, r *http.Request) {
	var out []api.Attribute
	for _, at := range a.n.Catalog().Attrs() {
		out = append(out, api.Attribute{Name: at.Name, Kind: at.Kind.String(), Source: at.Origin.String(), Doc: at.Doc})
	}
	writeJSON(w, http.StatusOK, out)
}
