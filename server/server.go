package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/ui"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The local HTTP API (docs/API.md): JSON, on loopback by default, every
// request carrying the token the agent wrote to its data dir.
//
//	POST /v1/query       {"statement": "..."} → NDJSON: progress lines, then the result
//	GET  /v1/members     the members: live, failed, left (?status=alive)
//	GET  /v1/nodes/{name} one member: tags, lease, subclouds owned, events
//	GET  /v1/health      this peer and the membership size
//	GET  /v1/attributes  the catalog
//	GET  /v1/events      the last membership events (?limit=N, ?node=NAME)
//	GET  /metrics        Prometheus
//	GET  /ui/            the web console (open), POST /ui/login its login form

// Peer is the peer whose statements the server serves: *node.Node. Every
// request calls it on a goroutine of its own, so its methods must be safe
// for concurrent use.
type Peer interface {
	// Name is the peer's name (in /v1/health and in a refusal).
	Name() string
	// Compile compiles a statement against the live catalog.
	Compile(statement string) (*query.Plan, error)
	// CheckWatch refuses a WATCH the peer cannot run (an epoch shorter
	// than its round). The server asks before it answers, so that the
	// refusal is a 400 rather than a 200 that fails.
	CheckWatch(plan *query.Plan) error
	// Admit takes a place for a statement the peer asks, at once or after
	// a bounded wait, or says why not (api.ErrOverloaded, perhaps with
	// when to retry). The context returned carries the place; the
	// function gives it back.
	Admit(ctx context.Context) (context.Context, func(), error)
	// Query runs a compiled statement (not a WATCH), calling progress
	// from the peer's goroutine while it runs; an error beside an answer
	// says the answer is partial.
	Query(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, error)
	// WatchPlan runs a WATCH, calling each with every epoch's answer
	// until ctx ends or each returns false.
	WatchPlan(ctx context.Context, plan *query.Plan, each func(*answer.Answer, error) bool) error
	// Catalog is the attributes statements may name (/v1/attributes).
	Catalog() *query.Catalog
	// OtherTags are, in a cloud of pools, the tags only other pools'
	// members have, as the peer last found them, for completion
	// (/v1/attributes); it does not wait for the pools.
	OtherTags() []string
	// Members are the live peers, this one included (/v1/members).
	Members() []network.Member
	// Departed are the members the membership still knows that failed
	// or left, with when this peer saw each go (/v1/members).
	Departed() []api.Member
	// NodeInfo is what the peer knows of one member, but its events
	// (the server adds them from Events); false for a name it does not
	// know (/v1/nodes/{name}).
	NodeInfo(name string) (api.Node, bool)
	// MemberStates counts the members the network knows by state
	// (alive, leaving, left, failed); nil where it keeps no states.
	MemberStates() map[string]int
	// Events are the newest limit membership events the peer saw, oldest
	// first (all it keeps when limit <= 0).
	Events(limit int) []network.MemberEvent
	// Metrics is the peer's collector, served at /metrics beside the Go
	// runtime's and the process's.
	Metrics() prometheus.Collector
}

// API limits: a request's header must arrive within DefaultHeaderTimeout
// of the agent's reading it (else 408), the whole request within
// ReadTimeout, an idle connection closes after IdleTimeout, each write of
// an answer must go through within WriteTimeout (an answer streams for as
// long as its query runs). By default the API holds at most
// DefaultMaxConns connections and serves DefaultMaxRequests requests at
// once; the rest get 429 (limit.go).
const (
	DefaultHeaderTimeout = 5 * time.Second
	ReadTimeout          = 10 * time.Second
	IdleTimeout          = 60 * time.Second
	WriteTimeout         = 10 * time.Second
	DefaultMaxRequests   = 512
	DefaultMaxConns      = 512
)

// Config configures the local HTTP API (Start).
type Config struct {
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
	// Logf is told when the server stops on an error of its own; nil
	// logs with the log package.
	Logf func(format string, args ...any)
	// Version and Commit are the binary's release and the commit it was
	// built from ("" where unknown), shown in /metrics as
	// peerq_build_info{version, commit, go_version} 1, as Prometheus's own
	// *_build_info: a dashboard joins on it to see which agents run what.
	Version, Commit string
}

// DefaultConfig returns the API's limits: DefaultMaxConns,
// DefaultMaxRequests, DefaultHeaderTimeout.
func DefaultConfig() Config {
	return Config{MaxConns: DefaultMaxConns, MaxRequests: DefaultMaxRequests, HeaderTimeout: DefaultHeaderTimeout}
}

// buildInfo is the gauge peerq_build_info, always 1, whose labels say
// what the agent runs: its version, commit and Go release.
func buildInfo(cfg Config) prometheus.Collector {
	unknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "peerq_build_info",
		Help:        "The agent's build: its version, the commit it was built from, and the Go release; always 1.",
		ConstLabels: prometheus.Labels{"version": unknown(cfg.Version), "commit": unknown(cfg.Commit), "go_version": runtime.Version()}})
	g.Set(1)
	return g
}

// Server serves a peer's local HTTP API.
type Server struct {
	p      Peer
	token  string
	server *http.Server
	ln     *capListener
	slots  chan struct{}
	// requests paces the 429s of the request limit, statements those of
	// the peer's admission (Peer.Admit).
	requests, statements *pacer
}

// Start serves p's API as cfg says, until Close.
func Start(p Peer, cfg Config) (*Server, error) {
	if cfg.Token == "" {
		return nil, errors.New("server: the API needs a token")
	}
	if cfg.MaxConns < 1 || cfg.MaxRequests < 1 || cfg.HeaderTimeout <= 0 {
		return nil, fmt.Errorf("server: MaxConns (%d), MaxRequests (%d) and HeaderTimeout (%v) must be positive",
			cfg.MaxConns, cfg.MaxRequests, cfg.HeaderTimeout)
	}
	logf := cfg.Logf
	if logf == nil {
		logf = log.Printf
	}
	// The peer's metrics, with the Go runtime's and the process's beside
	// them, from a registry of the server's own (no global state: an
	// embedded cluster has many peers in one process). Registering checks
	// the collectors' descriptions: do it before taking the port.
	reg := prometheus.NewRegistry()
	if err := reg.Register(p.Metrics()); err != nil {
		return nil, fmt.Errorf("server: the peer's metrics: %w", err)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo(cfg))
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{p: p, token: cfg.Token, ln: newCapListener(ln, cfg.MaxConns, cfg.HeaderTimeout),
		slots:    make(chan struct{}, cfg.MaxRequests),
		requests: newPacer(time.Now, cfg.MaxRequests), statements: newPacer(time.Now, cfg.MaxRequests)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/query", s.query)
	mux.HandleFunc("GET /v1/members", s.members)
	mux.HandleFunc("GET /v1/nodes/{name}", s.node)
	mux.HandleFunc("GET /v1/health", s.health)
	mux.HandleFunc("GET /v1/attributes", s.attributes)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.Handle("GET /ui/", ui.Handler())
	mux.HandleFunc("POST /ui/login", s.login)
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusSeeOther))
	// The answer streams for as long as the query runs: no overall write
	// timeout, a deadline per write instead (send). Requests are small:
	// they must arrive whole in ReadTimeout.
	s.server = &http.Server{Handler: s.limit(s.auth(mux)), ReadHeaderTimeout: cfg.HeaderTimeout, ReadTimeout: max(ReadTimeout, cfg.HeaderTimeout),
		IdleTimeout: IdleTimeout, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := s.server.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("the API on %s stopped: %v", s.ln.Addr(), err)
		}
	}()
	return s, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the API: no new connection, and the requests in flight are
// given 2 s to end (a streaming statement ends with its client or its
// peer).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.server.Shutdown(ctx)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	answer.NewEncoder(w).Encode(v)
}

// limit serves at most MaxRequests at once.
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.slots <- struct{}{}:
			defer func() {
				<-s.slots
				s.requests.done()
			}()
			next.ServeHTTP(w, r)
		default:
			busy(w, s.requests.retryAfter(), fmt.Sprintf("the API serves %d requests at once", cap(s.slots)))
		}
	})
}

func (s *Server) auth(next http.Handler) http.Handler {
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
		if subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
			writeJSON(w, http.StatusUnauthorized, &api.Error{Code: api.CodeUnauthorized,
				Message: fmt.Sprintf("missing or wrong token for agent %s (header %s)", s.p.Name(), api.TokenHeader)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// login takes the console's login form: the right token is kept in a
// cookie (HttpOnly: no script reads it; SameSite=Strict: no other site's
// page sends it), and the console opens; a wrong one is sent back to the
// form, refused.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad login form", http.StatusBadRequest)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(s.token)) != 1 {
		http.Redirect(w, r, "/ui/?denied=1", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ui.CookieName, Value: s.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// members serves GET /v1/members: the live members and those the
// membership still knows that failed or left, by name; ?status=alive (or
// failed, left, leaving) keeps those in that state.
func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	want := r.URL.Query().Get("status")
	switch want {
	case "", "alive", "failed", "left", "leaving":
	default:
		writeJSON(w, http.StatusBadRequest, &api.Error{Code: api.CodeBadRequest,
			Message: fmt.Sprintf("bad status %q: want alive, failed, left or leaving", want)})
		return
	}
	out := []api.Member{}
	if want == "" || want == "alive" {
		for _, m := range s.p.Members() {
			out = append(out, api.Member{Name: m.Name, Addr: m.Addr, Exchange: m.Exchange, Tags: m.Tags, Status: "alive"})
		}
	}
	if want != "alive" {
		for _, m := range s.p.Departed() {
			if want == "" || m.Status == want {
				out = append(out, m)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

// Node events: GET /v1/nodes/{name} shows the last DefaultNodeEvents
// membership events about the node, or ?events=n, at most MaxNodeEvents.
const (
	DefaultNodeEvents = 50
	MaxNodeEvents     = 256
)

// node serves GET /v1/nodes/{name}: one member as the peer knows it, 404
// for a name it does not know.
func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	events := DefaultNodeEvents
	if v := r.URL.Query().Get("events"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxNodeEvents {
			writeJSON(w, http.StatusBadRequest, &api.Error{Code: api.CodeBadRequest,
				Message: fmt.Sprintf("bad events %q: want 0 to %d", v, MaxNodeEvents)})
			return
		}
		events = n
	}
	name := r.PathValue("name")
	info, ok := s.p.NodeInfo(name)
	if !ok {
		writeJSON(w, http.StatusNotFound, &api.Error{Code: api.CodeNotFound,
			Message: fmt.Sprintf("agent %s knows no member %q (never seen, or reaped by Serf)", s.p.Name(), name)})
		return
	}
	if info.Owns == nil {
		info.Owns = []api.OwnedSubcloud{}
	}
	info.Events = []api.MemberEvent{}
	if events > 0 {
		// The agent's own page shows every event it saw.
		about := name
		if info.Self {
			about = ""
		}
		info.Events = s.lastEvents(about, events)
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := map[string]any{"status": "ok", "node": s.p.Name(), "peers": len(s.p.Members())}
	if states := s.p.MemberStates(); states != nil {
		h["members"] = states // by state: alive, leaving, left, failed
	}
	writeJSON(w, http.StatusOK, h)
}

// events lists the last membership events, oldest first: ?limit=N the
// newest N (after ?node=NAME keeps one member's).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, &api.Error{Code: api.CodeBadRequest, Message: fmt.Sprintf("limit %q: want a number of events, 0 or more (0: all kept)", v)})
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, s.lastEvents(r.URL.Query().Get("node"), limit))
}

// lastEvents are the newest limit membership events the peer keeps (all
// when limit is 0) about the member node (every member's when ""),
// oldest first.
func (s *Server) lastEvents(node string, limit int) []api.MemberEvent {
	all := s.p.Events(0)
	out := make([]api.MemberEvent, 0, len(all))
	for _, e := range all {
		if node == "" || e.Node == node {
			out = append(out, api.MemberEvent{At: e.At.UTC(), Node: e.Node, Event: e.Kind, Addr: e.Addr, Pool: e.Pool})
		}
	}
	if limit > 0 && limit < len(out) {
		out = out[len(out)-limit:]
	}
	return out
}

func (s *Server) attributes(w http.ResponseWriter, r *http.Request) {
	var out []api.Attribute
	cat := s.p.Catalog()
	for _, at := range cat.Attrs() {
		out = append(out, api.Attribute{Name: at.Name, Kind: at.Kind.String(), Source: at.Origin.String(), Doc: at.Doc})
	}
	for _, t := range s.p.OtherTags() {
		if _, ok := cat.Lookup(t); !ok {
			out = append(out, api.Attribute{Name: t, Kind: query.KindString.String(), Source: query.OriginTag.String(), Doc: "Serf tag of other pools' members (SHOW ATTRIBUTES names them)"})
		}
	}
	writeJSON(w, http.StatusOK, out)
}
