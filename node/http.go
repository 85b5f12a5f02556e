package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/ui"
)

// The local HTTP API (docs/API.md): JSON, on loopback by default, every
// request carrying the token the agent wrote to its data dir.
//
//	POST /v1/query       {"statement": "..."} → NDJSON: progress lines, then the result
//	GET  /v1/members     the live peers
//	GET  /v1/health      this peer and the membership size
//	GET  /v1/attributes  the catalog

// API limits: a request must arrive whole within APIReadTimeout, an idle
// connection closes after APIIdleTimeout, each write of an answer must go
// through within APIWriteTimeout (an answer streams for as long as its
// query runs), and at most APIMaxRequests are served at once (the rest get
// 429).
const (
	APIReadTimeout  = 10 * time.Second
	APIIdleTimeout  = 60 * time.Second
	APIWriteTimeout = 10 * time.Second
	APIMaxRequests  = 512
)

// APIServer serves the local HTTP API of a node.
type APIServer struct {
	n      *Node
	token  string
	server *http.Server
	ln     net.Listener
	slots  chan struct{}
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
	a := &APIServer{n: n, token: token, ln: ln, slots: make(chan struct{}, APIMaxRequests)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/query", a.query)
	mux.HandleFunc("GET /v1/members", a.members)
	mux.HandleFunc("GET /v1/health", a.health)
	mux.HandleFunc("GET /v1/attributes", a.attributes)
	mux.Handle("GET /metrics", n.metricsHandler())
	mux.Handle("GET /ui/", ui.Handler())
	mux.HandleFunc("POST /ui/login", a.login)
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusSeeOther))
	// The answer streams for as long as the query runs: no overall write
	// timeout, a deadline per write instead (send). Requests are small:
	// they must arrive whole in APIReadTimeout.
	a.server = &http.Server{Handler: a.limit(a.auth(mux)), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: APIReadTimeout,
		IdleTimeout: APIIdleTimeout, MaxHeaderBytes: 64 << 10}
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

// limit serves at most APIMaxRequests at once.
func (a *APIServer) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.slots <- struct{}{}:
			defer func() { <-a.slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, &api.Error{Code: api.CodeOverloaded,
				Message: fmt.Sprintf("the API serves %d requests at once", APIMaxRequests)})
		}
	})
}

func (a *APIServer) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The console's pages hold no secret, and its login form is how a
		// browser gets the token's cookie: they are open.
		if r.Method == http.MethodGet && (strings.HasPrefix(r.URL.Path, "/ui/") || r.URL.Path == "/") ||
			r.Method == http.MethodPost && r.URL.Path == "/ui/login" {
			next.ServeHTTP(w, r)
			return
		}
		tok := r.Header.Get(api.TokenHeader)
		if tok == "" {
			tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if c, err := r.Cookie(ui.CookieName); tok == "" && err == nil {
			tok = c.Value
		}
		if subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) != 1 {
			writeJSON(w, http.StatusUnauthorized, &api.Error{Code: api.CodeUnauthorized,
				Message: fmt.Sprintf("missing or wrong token for agent %s (header %s)", a.n.Name(), api.TokenHeader)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// login takes the console's login form: the right token is kept in a
// cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's
// page sends it), and the console opens; a wrong one is sent back to the
// form, refused.
func (a *APIServer) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad login form", http.StatusBadRequest)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(a.token)) != 1 {
		http.Redirect(w, r, "/ui/?denied=1", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ui.CookieName, Value: a.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (a *APIServer) query(w http.ResponseWriter, r *http.Request) {
	req, err := decodeQueryRequest(http.MaxBytesReader(w, r.Body, api.MaxRequestBytes))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &api.Error{Code: api.CodeBadRequest, Message: err.Error()})
		return
	}
	plan, err := a.n.Compile(req.Statement)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, api.ErrorOf(err))
		return
	}
	if plan.Watch != nil && !plan.Explain {
		if err := a.n.checkWatch(plan); err != nil {
			writeJSON(w, http.StatusBadRequest, api.ErrorOf(err))
			return
		}
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
	rc := http.NewResponseController(w)
	send := func(l api.Line) {
		rc.SetWriteDeadline(time.Now().Add(APIWriteTimeout))
		enc.Encode(l)
		rc.Flush()
	}
	if plan.Watch != nil && !plan.Explain {
		// A standing query: an answer line per epoch, until the client
		// goes away (the request's context ends, and the epoch with it).
		err := a.n.WatchPlan(ctx, plan, func(ans *api.Answer, err error) bool {
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

func (a *APIServer) members(w http.ResponseWriter, r *http.Request) {
	ms := a.n.net.Members()
	out := make([]api.Member, len(ms))
	for i, m := range ms {
		out[i] = api.Member{Name: m.Name, Addr: m.Addr, Exchange: m.Exchange, Tags: m.Tags}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *APIServer) health(w http.ResponseWriter, r *http.Request) {
	h := map[string]any{"status": "ok", "node": a.n.Name(), "peers": a.n.net.Size()}
	if s, ok := a.n.net.(interface{ MemberStates() map[string]int }); ok {
		h["members"] = s.MemberStates() // by state: alive, leaving, left, failed
	}
	writeJSON(w, http.StatusOK, h)
}

func (a *APIServer) attributes(w http.ResponseWriter, r *http.Request) {
	var out []api.Attribute
	for _, at := range a.n.Catalog().Attrs() {
		out = append(out, api.Attribute{Name: at.Name, Kind: at.Kind.String(), Source: at.Origin.String(), Doc: at.Doc})
	}
	writeJSON(w, http.StatusOK, out)
}
