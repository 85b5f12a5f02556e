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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/peerq/peerq/answer"
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

// API limits: a request's header must arrive within APIReadHeaderTimeout
// of the agent's reading it (else 408), the whole request within
// APIReadTimeout, an idle connection closes after APIIdleTimeout, each
// write of an answer must go through within APIWriteTimeout (an answer
// streams for as long as its query runs). By default the API holds at most
// APIMaxConns connections and serves APIMaxRequests requests at once; the
// rest get 429 (http_limit.go).
const (
	APIReadHeaderTimeout = 5 * time.Second
	APIReadTimeout       = 10 * time.Second
	APIIdleTimeout       = 60 * time.Second
	APIWriteTimeout      = 10 * time.Second
	APIMaxRequests       = 512
	APIMaxConns          = 512
)

// APIConfig configures the local HTTP API (ServeAPIWith).
type APIConfig struct {
	// Addr is the host:port to listen on: use a loopback address.
	Addr string
	// Token is what every request must carry (docs/API.md).
	Token string
	// MaxConns bounds the connections held open at once, idle keep-alive
	// ones included. One beyond is answered 429 when it is accepted,
	// before its request is read, and closed: a few microseconds and no
	// goroutine of the HTTP server, where a held connection costs its
	// goroutine and buffers, ~28 KB with its request (BENCHMARKS.md,
	// "Reliability: overload"). Higher serves more of a burst and costs
	// memory: 10,000 clients at once took the agent's peak to 56 MB at
	// 512 (80 MB for gossip statements), 79 MB at 1024 (93 MB).
	MaxConns int
	// MaxRequests bounds the requests served at once (a streaming query
	// holds its place for as long as it runs); the rest get 429. At
	// MaxConns or above (the default) it never refuses; below, the
	// connections beyond it serve idle keep-alive clients.
	MaxRequests int
	// HeaderTimeout is how long a held connection may take to send its
	// request's header once the agent reads it; a connection that sends
	// nothing in time is answered 408 and closed. Longer is kinder to
	// starved clients and lets idle connections hold places longer.
	HeaderTimeout time.Duration
}

// DefaultAPIConfig returns the API's limits: APIMaxConns, APIMaxRequests,
// APIReadHeaderTimeout.
func DefaultAPIConfig() APIConfig {
	return APIConfig{MaxConns: APIMaxConns, MaxRequests: APIMaxRequests, HeaderTimeout: APIReadHeaderTimeout}
}

// APIServer serves the local HTTP API of a node.
type APIServer struct {
	n      *Node
	token  string
	server *http.Server
	ln     *capListener
	slots  chan struct{}
	// requests paces the 429s of the request limit, statements those of
	// the node's admission (Admit).
	requests, statements *pacer
}

// ServeAPI starts the API on addr (use a loopback address) with the token
// and the default limits.
func (n *Node) ServeAPI(addr, token string) (*APIServer, error) {
	cfg := DefaultAPIConfig()
	cfg.Addr, cfg.Token = addr, token
	return n.ServeAPIWith(cfg)
}

// ServeAPIWith starts the API as cfg says.
func (n *Node) ServeAPIWith(cfg APIConfig) (*APIServer, error) {
	if cfg.Token == "" {
		return nil, errors.New("node: the API needs a token")
	}
	if cfg.MaxConns < 1 || cfg.MaxRequests < 1 || cfg.HeaderTimeout <= 0 {
		return nil, fmt.Errorf("node: api: MaxConns (%d), MaxRequests (%d) and HeaderTimeout (%v) must be positive",
			cfg.MaxConns, cfg.MaxRequests, cfg.HeaderTimeout)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("node: api: %w", err)
	}
	a := &APIServer{n: n, token: cfg.Token, ln: newCapListener(ln, cfg.MaxConns, cfg.HeaderTimeout),
		slots:    make(chan struct{}, cfg.MaxRequests),
		requests: newPacer(time.Now, cfg.MaxRequests), statements: newPacer(time.Now, cfg.MaxRequests)}
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
	a.server = &http.Server{Handler: a.limit(a.auth(mux)), ReadHeaderTimeout: cfg.HeaderTimeout, ReadTimeout: max(APIReadTimeout, cfg.HeaderTimeout),
		IdleTimeout: APIIdleTimeout, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := a.server.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logf("the API on %s stopped: %v", a.ln.Addr(), err)
		}
	}()
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

// limit serves at most MaxRequests at once.
func (a *APIServer) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.slots <- struct{}{}:
			defer func() {
				<-a.slots
				a.requests.done()
			}()
			next.ServeHTTP(w, r)
		default:
			busy(w, a.requests.retryAfter(), fmt.Sprintf("the API serves %d requests at once", cap(a.slots)))
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
			var e *api.Error
			switch {
			case errors.As(err, &e) && e.Code == api.CodeOverloaded && e.RetryAfter > 0:
				// The node said when to come back itself.
				w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
				writeJSON(w, http.StatusTooManyRequests, api.ErrorOf(err))
			case errors.Is(err, api.ErrOverloaded):
				busy(w, a.statements.retryAfter(), err.Error())
			default: // the node is closing, or the client left
				writeJSON(w, http.StatusServiceUnavailable, api.ErrorOf(err))
			}
			return
		}
		defer func() {
			release()
			a.statements.done()
		}()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	rc := http.NewResponseController(w)
	// A line that cannot be written (the client stopped reading for
	// APIWriteTimeout, or went away) stops the statement: nobody would
	// read its answer, and a WATCH would run on for ever.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	send := func(l api.Line) {
		if err := rc.SetWriteDeadline(time.Now().Add(APIWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
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
		err := a.n.WatchPlan(ctx, plan, func(ans *answer.Answer, err error) bool {
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
	// answer is (the runtime hands both out after its lock): it is
	// dropped once the channel is closed.
	var mu sync.Mutex
	closed := false
	ans, err := a.n.Query(ctx, plan, func(p answer.Progress) {
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
