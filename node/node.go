package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/serf/coordinate"
	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/subcloud"
	"github.com/peerq/peerq/topk"
)

// Config configures a peer's runtime.
type Config struct {
	Overlay overlay.Config
	// Round is the gossip period: one exchange per peer per round.
	Round time.Duration
	// Record returns the peer's current record: its resources and anything
	// else it reports (the node adds node, addr, its tags and its lease
	// attributes). It must be cheap and safe for concurrent use.
	Record func() query.Record
	// Seed seeds the peer's random choices; 0 draws one.
	Seed uint64
	// MaxQueries bounds the query instances a peer keeps at once; a request
	// for one more is refused and counted.
	MaxQueries int
	// Linger is how many rounds past its budget an instance is kept, so
	// that late messages find it.
	Linger int
	// DataDir keeps the peer's lease table (fsynced before every answer);
	// empty keeps it in memory (the embedded cluster).
	DataDir string
}

// DefaultConfig returns the runtime configuration for a peer with the
// given overlay configuration and record.
func DefaultConfig(ov overlay.Config, record func() query.Record) Config {
	return Config{Overlay: ov, Round: 100 * time.Millisecond, Record: record, MaxQueries: 64, Linger: 10}
}

// Stats counts what a peer's runtime did.
type Stats struct {
	Rounds        int64
	Exchanges     int64 // exchanges this peer started
	Failed        int64 // exchanges that got no answer
	Served        int64 // exchanges this peer answered
	Joined        int64 // queries this peer joined on hearing of them
	Malformed     int64 // exchanges, plans or messages refused as malformed
	Refused       int64 // queries refused at MaxQueries
	Stale         int64 // messages for queries this peer has already collected
	BytesSent     int64
	BytesReceived int64
}

// Node is a peer's runtime. It is safe for concurrent use.
type Node struct {
	cfg Config
	ov  *overlay.Overlay

	mu        sync.Mutex
	r         *mrand.Rand
	roundPeer string
	names     map[aggregate.PeerID]string
	queries   map[QueryID]*instance
	// gone remembers the queries this peer has collected, until the round
	// in the value: a late message for one must not bring it back (peers
	// that joined later would otherwise keep it alive for ever).
	gone  map[QueryID]int64
	stats Stats

	leases *leaseState
	tagCh  chan struct{} // asks the tagger to show the lease
	ownMu  sync.Mutex
	owned  map[string]*ownedSubcloud

	done    chan struct{}
	closing sync.Once
	wg      sync.WaitGroup
}

// New starts a peer: its overlay (not joined yet) and its round ticker.
func New(cfg Config) (*Node, error) {
	if cfg.Round <= 0 || cfg.Record == nil {
		return nil, errors.New("node: Config needs Round and Record")
	}
	if cfg.MaxQueries <= 0 {
		cfg.MaxQueries = 64
	}
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		for _, x := range b {
			seed = seed<<8 | uint64(x)
		}
	}
	leases, err := openLeases(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ov, err := overlay.New(cfg.Overlay)
	if err != nil {
		return nil, err
	}
	n := start(cfg, ov, seed)
	n.leases = leases
	if _, held := n.currentLease(); held {
		n.showLease() // a restarted peer still holds its lease
	}
	return n, nil
}

// Attach runs the runtime on an overlay that exists already (an embedded
// cluster creates its overlays together). The Node owns it from then on.
func Attach(cfg Config, ov *overlay.Overlay) *Node {
	return start(cfg, ov, cfg.Seed+1)
}

func start(cfg Config, ov *overlay.Overlay, seed uint64) *Node {
	n := &Node{cfg: cfg, ov: ov, r: mrand.New(mrand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		names: map[aggregate.PeerID]string{}, queries: map[QueryID]*instance{}, gone: map[QueryID]int64{},
		leases: &leaseState{table: &subcloud.Table{}}, owned: map[string]*ownedSubcloud{}, tagCh: make(chan struct{}, 1),
		done: make(chan struct{})}
	ov.Serve(n.serve)
	n.wg.Add(4)
	go n.loop()
	go n.watch()
	go n.leaseLoop()
	go n.tagger()
	return n
}

// Overlay is the peer's overlay.
func (n *Node) Overlay() *overlay.Overlay { return n.ov }

// Name is the peer's node name.
func (n *Node) Name() string { return n.ov.Name() }

// Join joins the cluster through the seeds, retrying until ctx ends.
func (n *Node) Join(ctx context.Context, seeds []string) error {
	_, err := n.ov.Join(ctx, seeds)
	return err
}

// Stats returns the runtime's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Close stops the runtime and shuts the overlay down without leaving.
func (n *Node) Close() error {
	var err error
	n.closing.Do(func() {
		close(n.done)
		err = n.ov.Shutdown()
		n.wg.Wait()
	})
	return err
}

// Leave leaves the cluster gracefully, then closes.
func (n *Node) Leave() error {
	err := n.ov.Leave()
	return errors.Join(err, n.Close())
}

func peerID(name string) aggregate.PeerID { return aggregate.PeerID(aggregate.Hash64([]byte(name))) }

// rtt estimates the round-trip time from this peer to the one whose
// coordinate origin is (Plan.Origin), from Serf's network coordinates.
func (n *Node) rtt(origin []float64) (query.Value, bool) {
	mine, err := n.ov.Coordinate()
	if err != nil || mine == nil || len(origin) != 3+len(mine.Vec) {
		return query.Null, false
	}
	other := &coordinate.Coordinate{Error: origin[0], Adjustment: origin[1], Height: origin[2], Vec: origin[3:]}
	if !mine.IsCompatibleWith(other) || !other.IsValid() {
		return query.Null, false
	}
	return query.Num(query.KindDuration, mine.DistanceTo(other).Seconds()), true
}

// record is the peer's record with what the node itself knows added.
func (n *Node) record() query.Record {
	rec := query.Record{}
	for k, v := range n.cfg.Record() {
		rec[k] = v
	}
	if m, ok := n.ov.Member(n.Name()); ok {
		for k, v := range m.Tags {
			rec[k] = query.Str(v)
		}
		rec["addr"] = query.Str(m.Addr)
	}
	rec["node"] = query.Str(n.Name())
	// The lease table, not the tags (which lag), says whether it is held.
	delete(rec, TagSubcloud)
	rec["reserved"] = query.Bool(false)
	if l, ok := n.currentLease(); ok {
		rec[TagSubcloud], rec["reserved"] = query.Str(l.Subcloud), query.Bool(true)
	}
	return query.DefaultCatalog().Clamp(rec)
}

// Catalog is the default catalog plus every tag the live members carry.
func (n *Node) Catalog() *query.Catalog {
	seen := map[string]bool{}
	var tags []string
	for _, m := range n.ov.Members() {
		for k := range m.Tags {
			if !seen[k] {
				seen[k] = true
				tags = append(tags, k)
			}
		}
	}
	sort.Strings(tags)
	return query.DefaultCatalog().WithTags(tags...)
}

// sampler gives the cores the round's peer: every query of a round
// exchanges with the same peer, in one message.
type sampler struct{ n *Node }

func (s sampler) Sample(*mrand.Rand) (aggregate.PeerID, bool) {
	if s.n.roundPeer == "" {
		return 0, false
	}
	return peerID(s.n.roundPeer), true
}

type topSampler struct{ sampler }

func (t topSampler) Sample(r *mrand.Rand) (topk.PeerID, bool) {
	p, ok := t.sampler.Sample(r)
	return topk.PeerID(p), ok
}

// loop drives the rounds.
func (n *Node) loop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Round)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
			n.tick()
		}
	}
}

// watch applies membership changes to the running queries.
func (n *Node) watch() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case e := <-n.ov.Events():
			if e.Kind != overlay.MemberFailed && e.Kind != overlay.MemberLeft {
				continue
			}
			dead := map[aggregate.PeerID]bool{}
			for _, name := range e.Members {
				dead[peerID(name)] = true
			}
			n.mu.Lock()
			for _, q := range n.queries {
				q.removePeers(dead)
			}
			n.mu.Unlock()
		}
	}
}

// tick runs one round: every live instance takes its turn, the messages go
// out grouped by peer, one exchange each, and the replies come back in.
func (n *Node) tick() {
	n.mu.Lock()
	n.stats.Rounds++
	peer, ok := n.ov.Sample(n.r)
	if !ok {
		peer = ""
	}
	n.roundPeer = peer
	if peer != "" {
		n.names[peerID(peer)] = peer
	}
	out := map[string][]entry{}
	for id, until := range n.gone {
		if n.stats.Rounds > until {
			delete(n.gone, id)
		}
	}
	for id, q := range n.queries {
		if q.expired() {
			delete(n.queries, id)
			n.gone[id] = n.stats.Rounds + int64(4*(q.budget+n.cfg.Linger))
			continue
		}
		q.rounds++
		if q.finished {
			continue // lingering: counting down, sending nothing
		}
		for _, env := range q.tick() {
			to := n.names[env.to]
			if to == "" {
				continue
			}
			out[to] = append(out[to], entry{ID: id, Kind: q.kind, Round: uint32(q.rounds), Plan: q.planBytes, Msg: env.msg})
		}
		if q.origin {
			q.report(n.ov.Size())
		}
	}
	n.mu.Unlock()
	for to, es := range out {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.exchange(to, es)
		}()
	}
}

// exchange sends one batch and steps the replies.
func (n *Node) exchange(to string, es []entry) {
	req := encodeBatch(es)
	resp, err := n.ov.Exchange(to, req)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stats.Exchanges++
	n.stats.BytesSent += int64(len(req))
	if err != nil {
		n.stats.Failed++
		return
	}
	n.stats.BytesReceived += int64(len(resp))
	replies, err := decodeBatch(resp)
	if err != nil {
		n.stats.Malformed++
		return
	}
	from := peerID(to)
	for _, r := range replies {
		if q := n.queries[r.ID]; q != nil && q.kind == r.Kind {
			if err := q.step(from, r.Msg); err != nil {
				n.stats.Malformed++
			}
		}
	}
}

// serve answers an exchange: every entry goes to its query, joining the
// queries this peer has not heard of, and the replies go back in one batch.
func (n *Node) serve(from string, req []byte) ([]byte, error) {
	es, err := decodeBatch(req)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stats.Served++
	n.stats.BytesReceived += int64(len(req))
	if err != nil {
		n.stats.Malformed++
		return nil, err
	}
	src := peerID(from)
	n.names[src] = from
	var replies []entry
	for _, e := range es {
		if e.Kind == protoLease {
			replies = append(replies, entry{Kind: protoLease, Msg: n.handleLease(e.Msg)})
			continue
		}
		q := n.queries[e.ID]
		if q == nil {
			if q, err = n.join(e); err != nil {
				continue
			}
		}
		if q.kind != e.Kind {
			n.stats.Malformed++
			continue
		}
		if err := q.step(src, e.Msg); err != nil {
			n.stats.Malformed++
			continue
		}
		for _, env := range q.outbox() {
			replies = append(replies, entry{ID: e.ID, Kind: q.kind, Round: uint32(q.rounds), Msg: env.msg})
		}
	}
	resp := encodeBatch(replies)
	n.stats.BytesSent += int64(len(resp))
	return resp, nil
}

// join creates this peer's instance of a query it hears of.
func (n *Node) join(e entry) (*instance, error) {
	if _, ok := n.gone[e.ID]; ok {
		n.stats.Stale++
		return nil, errors.New("node: query already over here")
	}
	if len(n.queries) >= n.cfg.MaxQueries {
		n.stats.Refused++
		return nil, errors.New("node: too many queries")
	}
	plan, err := query.Decode(e.Plan)
	if err != nil {
		n.stats.Malformed++
		return nil, err
	}
	q, err := n.newInstance(e.ID, plan, e.Plan, false)
	if err != nil {
		n.stats.Malformed++
		return nil, err
	}
	// Count the query's age from the sender's round, so that every peer
	// reaches the budget at about the same time.
	q.rounds = min(int(e.Round), q.budget)
	n.stats.Joined++
	n.queries[e.ID] = q
	return q, nil
}

func newQueryID() QueryID {
	var id QueryID
	rand.Read(id[:])
	return id
}

// errNotYet is returned for statements whose runtime is not built.
var errNotYet = errors.New("node: this statement cannot run here")

// Query runs a plan from this peer and returns its answer. progress, if
// set, is called (from the runtime's goroutine; it must not block) each
// round with the current estimate.
func (n *Node) Query(ctx context.Context, plan *query.Plan, progress func(Progress)) (*Result, error) {
	start := time.Now()
	switch {
	case plan.Kind == query.PlanReserve:
		return n.reserve(ctx, plan, progress)
	case plan.Kind == query.PlanLocal && plan.Local.Release != "":
		return n.release(plan)
	case plan.Kind == query.PlanLocal:
		return n.local(plan, start)
	case plan.FromTags:
		return n.fromMembership(plan, start)
	}
	return n.gossip(ctx, plan, progress)
}

// gossip runs a plan by gossip from this peer.
func (n *Node) gossip(ctx context.Context, plan *query.Plan, progress func(Progress)) (*Result, error) {
	start := time.Now()
	// Carry this peer's network coordinate, so that every peer can compute
	// its rtt to the asker.
	withOrigin := *plan
	if c, err := n.ov.Coordinate(); err == nil && c != nil {
		withOrigin.Origin = append([]float64{c.Error, c.Adjustment, c.Height}, c.Vec...)
	}
	plan = &withOrigin
	wire, err := plan.Encode()
	if err != nil {
		return nil, err
	}
	id := newQueryID()
	n.mu.Lock()
	q, err := n.newInstance(id, plan, wire, true)
	if err != nil {
		n.mu.Unlock()
		return nil, err
	}
	q.progress = progress
	q.started = start
	n.queries[id] = q
	n.mu.Unlock()

	var deadline <-chan time.Time
	if plan.TimeoutSeconds > 0 {
		t := time.NewTimer(time.Duration(plan.TimeoutSeconds * float64(time.Second)))
		defer t.Stop()
		deadline = t.C
	}
	select {
	case res := <-q.result:
		return res, nil
	case <-deadline:
		return n.partial(q, ErrTimeout)
	case <-ctx.Done():
		return n.partial(q, ctx.Err())
	case <-n.done:
		return nil, errors.New("node: closed")
	}
}

// ErrTimeout is returned, with the partial answer, when WITH TIMEOUT ends a
// query before it converged.
var ErrTimeout = errors.New("node: query timed out before converging")

// partial stops a query early and returns its current answer with err.
func (n *Node) partial(q *instance, err error) (*Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q.finished = true
	res, rerr := q.answer(n.ov.Size())
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	return res, fmt.Errorf("%w (after %d rounds)", err, q.rounds)
}
