package owner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/peerq/peerq/subcloud"
)

// Env is what the role needs of the peer it runs in. Every method must be
// safe for concurrent use; none is called with the role's lock held, and
// each may block for as long as its exchange, search or write takes.
type Env interface {
	// Send sends one lease request of this peer's, as owner, to peer to
	// (signed, for to's present incarnation) and returns its reply, or an
	// error wrapping subcloud.ErrUnreachable when nothing served to's
	// address or to hangs (node: its probes found it silent for long).
	Send(ctx context.Context, to string, req subcloud.Request) (subcloud.Reply, error)
	// Search runs a subcloud's search (its RESERVE's plan, encoded) over
	// the free peers and returns their names, best first.
	Search(ctx context.Context, plan []byte) ([]string, error)
	// RegisterName registers name with its keepers as they are now, for
	// lease, and returns what they said.
	RegisterName(ctx context.Context, name string, lease time.Duration) subcloud.Vote
	// ReleaseName gives name up at peers and at its keepers as they are
	// now, and returns once they answered.
	ReleaseName(ctx context.Context, name string, peers []string)
	// Store writes the owner's table (EncodeTable) durably, and returns
	// nil only once it is on disk.
	Store(table []byte) error
	// Now is the wall clock.
	Now() time.Time
	// Logf tells the operator.
	Logf(format string, args ...any)
}

// Config is how the role keeps its subclouds.
type Config struct {
	// Name is this peer's name: the owner every request names.
	Name string
	// Owner is the machines' configuration (subcloud.DefaultOwnerConfig).
	Owner subcloud.OwnerConfig
	// MinTick is the shortest wait between two ticks of one subcloud: a
	// bound on the ticker's work should a machine's Wake stay in the past
	// (it does not while it waits for answers: those are steps).
	MinTick time.Duration
	// Rand seeds the machines' random choices (search back-offs).
	Rand *rand.Rand
}

// Role is the owner's side of every subcloud this peer owns: one
// subcloud.Owner per subcloud, fed the events it needs — time, the
// membership's losses and returns, the answers to what it asked — with
// everything it asks for carried out outside the role's lock: exchanges,
// searches and name registrations on goroutines of their own, writes of
// the owner's table by one writer, in order, the newest table winning.
type Role struct {
	cfg    Config
	env    Env
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	rng     *rand.Rand
	subs    map[string]*sub // held or being reserved, by name
	leaving map[*sub]bool   // given up, released or failed, with releases or a last write under way
	// table is the owner's table as the machines last asked it written;
	// seq counts its changes, and asks are the persists that wait for a
	// write of it.
	table map[string]subcloud.OwnerState
	seq   uint64
	asks  []persistAsk
	// released are the subclouds released lately, by when: answers from
	// the members' tags leave them out until the tags catch up.
	released map[string]time.Time
	closed   bool

	kick  chan struct{} // the ticker: a machine's next wake may have moved
	dirty chan struct{} // the writer: the table changed
}

type sub struct {
	name string
	o    *subcloud.Owner
	// search is the subcloud's search: the RESERVE's own while it runs
	// (its progress and admission), the plan's after.
	search func(ctx context.Context) ([]string, error)
	// waits are the users waiting for a change's report.
	waits    map[subcloud.Change]chan *subcloud.Report
	lastTick time.Time
}

type persistAsk struct {
	s       *sub
	id, seq uint64
}

// New starts the role with the subclouds of the owner's table (a restart):
// they are renewed at once. live says whether a peer is in the membership
// now: a former member that is not is settled only when it returns.
func New(cfg Config, env Env, restored []subcloud.OwnerState, live func(string) bool) (*Role, error) {
	if cfg.Name == "" {
		return nil, errors.New("owner: Config needs Name")
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Role{cfg: cfg, env: env, ctx: ctx, cancel: cancel, rng: cfg.Rand, subs: map[string]*sub{}, leaving: map[*sub]bool{},
		table: map[string]subcloud.OwnerState{}, released: map[string]time.Time{},
		kick: make(chan struct{}, 1), dirty: make(chan struct{}, 1)}
	now := env.Now()
	for _, st := range restored {
		o, err := subcloud.Restore(cfg.Owner, cfg.Name, st, newRand(r.rng))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("owner: subcloud %s: %w", st.Subcloud, err)
		}
		s := newSub(env, st.Subcloud, o)
		r.subs[st.Subcloud] = s
		r.table[st.Subcloud] = o.State()
		for _, m := range o.Dropped() {
			if live != nil && !live(m) {
				o.MemberLost(now, m, "it is not in the membership")
			}
		}
	}
	r.wg.Add(2)
	go r.ticker()
	go r.writer()
	for _, s := range r.subs {
		r.step(s, func(*subcloud.Owner, time.Time) {}) // what the restore asked for
	}
	return r, nil
}

// Close stops the role: nothing more is sent, searched or written. It
// returns once its goroutines have.
func (r *Role) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// newRand is a machine's own random source, drawn from rng (the role's,
// with its lock held).
func newRand(rng *rand.Rand) *rand.Rand { return rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())) }

// newSub is a subcloud's machine o as the role drives it, searching
// through env with o's plan.
func newSub(env Env, name string, o *subcloud.Owner) *sub {
	s := &sub{name: name, o: o, waits: map[subcloud.Change]chan *subcloud.Report{}}
	plan := o.Plan()
	s.search = func(ctx context.Context) ([]string, error) { return env.Search(ctx, plan) }
	return s
}

// ---- driving the machines ----

// step runs f on s's machine under the lock, then carries out what the
// machine asked for, outside it.
func (r *Role) step(s *sub, f func(o *subcloud.Owner, now time.Time)) {
	r.mu.Lock()
	now := r.env.Now()
	f(s.o, now)
	acts := r.takeLocked(s, now)
	r.mu.Unlock()
	r.do(s, acts)
	poke(r.kick)
}

// takeLocked takes s's actions: persists go to the table and the writer,
// reports to the user that waits for them; the rest is returned, to be
// carried out without the lock. A machine that is gone leaves the names
// (a new RESERVE may take its name), and the role once it is idle.
func (r *Role) takeLocked(s *sub, now time.Time) []subcloud.Action {
	var out []subcloud.Action
	for _, a := range s.o.Ready() {
		switch a.Kind {
		case subcloud.ActPersist:
			switch cur := r.subs[s.name]; {
			case a.State != nil:
				r.table[s.name] = *a.State
			case cur == nil || cur == s:
				delete(r.table, s.name)
			}
			r.seq++
			r.asks = append(r.asks, persistAsk{s: s, id: a.ID, seq: r.seq})
			poke(r.dirty)
		case subcloud.ActReport:
			rep := a.Report
			if w := s.waits[rep.Change]; w != nil {
				delete(s.waits, rep.Change)
				w <- rep // buffered: never blocks
			}
		default:
			out = append(out, a)
		}
	}
	if s.o.Phase() == subcloud.PhaseGone && r.subs[s.name] == s {
		delete(r.subs, s.name)
		r.leaving[s] = true
		// Until the members' tags say so, answers from tags must not show
		// it (read your writes).
		r.released[s.name] = now
	}
	if r.leaving[s] && s.o.Idle() {
		delete(r.leaving, s)
	}
	return out
}

// do carries out actions of s's machine; each answer is a step of its own.
func (r *Role) do(s *sub, acts []subcloud.Action) {
	for _, a := range acts {
		switch a.Kind {
		case subcloud.ActSend:
			r.spawn(func() {
				rep, err := r.env.Send(r.ctx, a.To, a.Req)
				r.step(s, func(o *subcloud.Owner, now time.Time) { o.Reply(now, a.ID, rep, err) })
			})
		case subcloud.ActSearch:
			r.mu.Lock()
			search := s.search
			r.mu.Unlock()
			r.spawn(func() {
				nodes, err := search(r.ctx)
				r.step(s, func(o *subcloud.Owner, now time.Time) { o.Candidates(now, a.ID, nodes, err) })
			})
		case subcloud.ActRegisterName:
			r.spawn(func() {
				v := r.env.RegisterName(r.ctx, s.name, a.Req.For)
				r.step(s, func(o *subcloud.Owner, now time.Time) { o.NameVote(now, a.ID, v) })
			})
		case subcloud.ActReleaseName:
			r.spawn(func() { r.env.ReleaseName(r.ctx, s.name, a.Peers) })
		case subcloud.ActLog:
			r.env.Logf("%s", a.Text)
		}
	}
}

// spawn runs f on a goroutine of the role's, unless it is closed.
func (r *Role) spawn(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// ticker ticks each machine at its Wake (no sooner than MinTick after its
// last tick), and again whenever a step may have moved a wake.
func (r *Role) ticker() {
	defer r.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Reset(r.tickDue())
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
	}
}

// idleWait is how long the ticker sleeps when no machine has a timed step.
const idleWait = time.Minute

// tickDue ticks the machines whose wake has come and returns how long to
// wait for the next.
func (r *Role) tickDue() time.Duration {
	r.mu.Lock()
	now := r.env.Now()
	var due []*sub
	next := time.Time{}
	for _, s := range r.all() {
		w := s.o.Wake()
		if w.IsZero() {
			continue
		}
		if floor := s.lastTick.Add(r.cfg.MinTick); w.Before(floor) {
			w = floor
		}
		if !now.Before(w) {
			due = append(due, s)
			s.lastTick = now
			w = now.Add(r.cfg.MinTick)
		}
		if next.IsZero() || w.Before(next) {
			next = w
		}
	}
	r.mu.Unlock()
	for _, s := range due {
		r.step(s, func(o *subcloud.Owner, now time.Time) { o.Tick(now) })
	}
	if next.IsZero() {
		return idleWait
	}
	return max(next.Sub(now), r.cfg.MinTick, time.Millisecond)
}

// all are the machines, held and leaving, in a fixed order. Called with
// mu held.
func (r *Role) all() []*sub {
	out := make([]*sub, 0, len(r.subs)+len(r.leaving))
	for _, s := range r.subs {
		out = append(out, s)
	}
	for s := range r.leaving {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// writer writes the owner's table whenever it changed: one write at a time
// with no lock held, each of the newest table, and then answers every
// persist that the table it wrote carries.
func (r *Role) writer() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.dirty:
		}
		r.mu.Lock()
		states := make([]subcloud.OwnerState, 0, len(r.table))
		for _, st := range r.table {
			states = append(states, st)
		}
		seq := r.seq
		r.mu.Unlock()
		err := r.env.Store(EncodeTable(states))
		r.mu.Lock()
		var done []persistAsk
		kept := r.asks[:0]
		for _, a := range r.asks {
			if a.seq <= seq {
				done = append(done, a)
			} else {
				kept = append(kept, a)
			}
		}
		r.asks = kept
		r.mu.Unlock()
		for _, a := range done {
			r.step(a.s, func(o *subcloud.Owner, now time.Time) { o.Persisted(now, a.id, err) })
		}
	}
}

// ---- the membership ----

// MemberLost is the membership saying peer failed or left (why: "it
// failed", "it left").
func (r *Role) MemberLost(peer, why string) {
	for _, s := range r.snapshot() {
		r.step(s, func(o *subcloud.Owner, now time.Time) { o.MemberLost(now, peer, why) })
	}
}

// MemberBack is the membership saying peer joined or came back.
func (r *Role) MemberBack(peer string) {
	for _, s := range r.snapshot() {
		r.step(s, func(o *subcloud.Owner, now time.Time) { o.MemberBack(now, peer) })
	}
}

func (r *Role) snapshot() []*sub {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all()
}
