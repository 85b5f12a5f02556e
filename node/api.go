package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peerq/peerq/parser"
	"github.com/peerq/peerq/query"
)

// The local HTTP API (docs/API.md): JSON, on loopback by default, every
// request carrying the token the agent wrote to its data dir.
//
//	POST /v1/query       {"statement": "..."} → NDJSON: progress lines, then the result
//	GET  /v1/members     the live peers
//	GET  /v1/health      this peer and the membership size
//	GET  /v1/attributes  the catalog
const (
	// TokenHeader carries the API token (Authorization: Bearer works too).
	TokenHeader = "X-Peerq-Token"
	// TokenFile is the token's file in the data dir (mode 0600).
	TokenFile = "api-token"
	// MaxRequestBytes bounds a request body.
	MaxRequestBytes = 1 << 20
)

// LoadOrCreateToken returns the API token in dataDir, creating a random
// one (32 hex digits, mode 0600) the first time.
func LoadOrCreateToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node: api token: %w", err)
	}
	return tok, nil
}

// API serves the local HTTP API of a node.
type API struct {
	n      *Node
	token  string
	server *http.Server
	ln     net.Listener
}

// ServeAPI starts the API on addr (use a loopback address) with the token.
func (n *Node) ServeAPI(addr, token string) (*API, error) {
	if token == "" {
		return nil, errors.New("node: the API needs a token")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: api: %w", err)
	}
	a := &API{n: n, token: token, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/query", a.query)
	mux.HandleFunc("GET /v1/members", a.members)
	mux.HandleFunc("GET /v1/health", a.health)
	mux.HandleFunc("GET /v1/attributes", a.attributes)
	a.server = &http.Server{Handler: a.auth(mux), ReadHeaderTimeout: 5 * time.Second}
	go a.server.Serve(ln)
	return a, nil
}

// Addr is the address the API listens on.
func (a *API) Addr() string { return a.ln.Addr().String() }

// Close stops the API.
func (a *API) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return a.server.Shutdown(ctx)
}

// apiError is the JSON body of every error.
type apiError struct {
	Error  string `json:"error"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (a *API) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get(TokenHeader)
		if tok == "" {
			tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) != 1 {
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing or wrong token (header " + TokenHeader + ")"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// QueryRequest is the body of POST /v1/query.
type QueryRequest struct {
	Statement string `json:"statement"`
}

// Line is one NDJSON line of a query's answer: "progress" while it runs,
// then "result", or "error".
type Line struct {
	Type string `json:"type"`
	// progress
	Round       int     `json:"round,omitempty"`
	Budget      int     `json:"budget,omitempty"`
	Peers       int     `json:"peers,omitempty"`
	ErrEstimate float64 `json:"error_estimate,omitempty"`
	// result (and the current estimate in progress lines)
	Columns []ColumnJSON `json:"columns,omitempty"`
	Rows    [][]any      `json:"rows,omitempty"`
	Text    [][]string   `json:"text,omitempty"` // the rows with units, for people
	Meta    *Meta        `json:"meta,omitempty"`
	// error
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"` // "not_enough_peers", "unsupported", "internal"
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Explain string `json:"explain,omitempty"`
}

// ColumnJSON is a result column.
type ColumnJSON struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Meta is what the result line reports beside the rows.
type Meta struct {
	Statement    string  `json:"statement"`
	Protocol     string  `json:"protocol"` // aggregate, top-k, reserve, local
	Peers        int     `json:"peers"`
	Participants float64 `json:"participants_estimate,omitempty"`
	Rounds       int     `json:"rounds"`
	Elapsed      float64 `json:"elapsed_seconds"`
	ErrEstimate  float64 `json:"error_estimate"`
	PlanHash     string  `json:"plan_hash"`
	FromTags     bool    `json:"from_tags"`
	Converged    bool    `json:"converged"`
	Timeout      bool    `json:"timeout,omitempty"`
}

func resultLines(r *query.Result) ([]ColumnJSON, [][]any, [][]string) {
	var cols []ColumnJSON
	for _, c := range r.Columns {
		cols = append(cols, ColumnJSON{Name: c.Name, Kind: c.Kind.String()})
	}
	rows, text := make([][]any, len(r.Rows)), make([][]string, len(r.Rows))
	for i, row := range r.Rows {
		rows[i], text[i] = make([]any, len(row)), make([]string, len(row))
		for j, v := range row {
			rows[i][j], text[i][j] = v.Raw(), v.String()
		}
	}
	return cols, rows, text
}

func (a *API) query(w http.ResponseWriter, r *http.Request) {
	var req QueryRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "bad JSON: " + err.Error()})
		return
	}
	plan, err := query.CompileText(req.Statement, a.n.Catalog(), query.DefaultConfig())
	if err != nil {
		e := apiError{Error: err.Error()}
		var pe *parser.Error
		if errors.As(err, &pe) {
			e.Line, e.Column = pe.Line(), pe.Column()
		}
		writeJSON(w, http.StatusBadRequest, e)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	send := func(l Line) {
		enc.Encode(l)
		if flusher != nil {
			flusher.Flush()
		}
	}
	if plan.Explain {
		send(Line{Type: "result", Explain: query.Explain(plan, a.n.ov.Size())})
		return
	}
	// Progress comes from the runtime's goroutine: hand it over through a
	// channel, dropping lines the client is too slow for.
	progress := make(chan Progress, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range progress {
			l := Line{Type: "progress", Round: p.Round, Budget: p.Budget, Peers: p.Peers, ErrEstimate: p.ErrEstimate}
			if p.Answer != nil {
				l.Columns, l.Rows, l.Text = resultLines(p.Answer)
			}
			send(l)
		}
	}()
	// The request's context ends when the client goes away: the query
	// stops with it.
	res, err := a.n.Query(r.Context(), plan, func(p Progress) {
		select {
		case progress <- p:
		default:
		}
	})
	close(progress)
	<-done
	if res == nil {
		code := "internal"
		switch {
		case errors.Is(err, errNotYet):
			code = "unsupported"
		case errors.Is(err, ErrNotEnoughPeers):
			code = "not_enough_peers"
		}
		send(Line{Type: "error", Error: err.Error(), Code: code})
		return
	}
	send(ResultLine(plan, res, err))
}

// ResultLine is an answer as the API's result line: raw values, text with
// units, metadata. err is the query's error beside the answer (a timeout).
// The embedded demo renders its answers through it too.
func ResultLine(plan *query.Plan, res *Result, err error) Line {
	l := Line{Type: "result", Meta: &Meta{Statement: plan.Text, Protocol: plan.Kind.String(), Peers: res.Peers,
		Participants: res.Participants, Rounds: res.Rounds, Elapsed: res.Elapsed.Seconds(), ErrEstimate: res.ErrEstimate,
		PlanHash: res.PlanHash, FromTags: res.FromTags, Converged: res.Converged, Timeout: errors.Is(err, ErrTimeout)}}
	l.Columns, l.Rows, l.Text = resultLines(res.Result)
	return l
}

func (a *API) members(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.ov.Members())
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": a.n.Name(), "peers": a.n.ov.Size()})
}

func (a *API) attributes(w http.ResponseWriter, r *http.Request) {
	type attr struct {
		Name, Kind, Source, Doc string
	}
	var out []attr
	for _, at := range a.n.Catalog().Attrs() {
		out = append(out, attr{at.Name, at.Kind.String(), at.Origin.String(), at.Doc})
	}
	writeJSON(w, http.StatusOK, out)
}
