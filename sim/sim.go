package sim

import (
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/internal/prefetch"
	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/topk"
)

// Event changes the population at a round: a share of the live peers
// crash, or that share of the initial population joins.
type Event struct {
	Frac  float64
	Round int
}

// ParseEvent reads "f@round", as in --crash 0.2@5.
func ParseEvent(s string) (Event, error) {
	f, r, ok := strings.Cut(s, "@")
	if !ok {
		return Event{}, fmt.Errorf("sim: event %q is not fraction@round", s)
	}
	frac, err1 := strconv.ParseFloat(f, 64)
	round, err2 := strconv.Atoi(r)
	if err1 != nil || err2 != nil || frac <= 0 || frac >= 1 || round < 1 {
		return Event{}, fmt.Errorf("sim: event %q needs a fraction in (0,1) and a round ≥ 1", s)
	}
	return Event{Frac: frac, Round: round}, nil
}

// Config configures a simulation.
type Config struct {
	Nodes int
	// Rounds is how many rounds to run; 0 takes the plan's budget for
	// Nodes, and then runs on past it while the asker's instance does
	// (run.Instance.Final), up to run.MaxRoundsFactor times the budget,
	// as the runtime's asker would: rounds in which it heard nothing do
	// not spend its budget (under loss), and an answer the rule is
	// counting calm rounds for gets the rest of them. (An answer being
	// confirmed after an exclusion runs on too, but without churn the
	// simulator's peers exclude nobody: a crash removes the dead at once,
	// run.Instance.RemovePeers, where the runtime's peers exclude them.)
	Rounds int
	// Loss is the probability that a message is lost.
	Loss    float64
	Crashes []Event
	Joins   []Event
	Seed    uint64
	Scheme  aggregate.Scheme
	// NFromGossip scales sums by the gossip estimate of the number of peers
	// (1/origin mass), as beyond Serf's scale; false uses the live count, as
	// a peer over Serf reads it from the membership.
	NFromGossip bool
	// DetectRounds is how many rounds after a crash the survivors learn of
	// it.
	DetectRounds int
	// Retries and FoldAfter tune Flow Updating (aggregate.Config). FoldAfter
	// 0 chooses: with crashes, links are kept for the whole run, so that a
	// survivor can undo every flow it exchanged with a peer that died and
	// the estimate is of the survivors exactly; without, 5 rounds, and an
	// initiator's link goes as soon as it is answered (nobody is ever
	// removed, so no flow is undone: aggregate.Config.FoldAnswered), which
	// keeps a million peers in memory.
	Retries, FoldAfter int
	// AllStart starts every peer's instance at round 0, as if the query
	// had reached everyone at once. By default only the originator starts
	// and a peer joins when a message first reaches it, as the query
	// spreads in the runtime (node): the engine's rounds.
	AllStart bool
	// Session is the median session of a peer, in rounds: churn as a
	// process (churn.go), with as many joins as leaves; 0 is none.
	// DetectRounds is then Serf's verdict on a lost member.
	Session float64
	// ExcludeRounds is how many rounds after a member is lost the query's
	// peers have left it out (probes, and the set spread); MaxExcluded
	// bounds the set they tell each other of.
	ExcludeRounds, MaxExcluded int
	// MetricsSample bounds the peers whose estimates are measured each round
	// when a plan needs the full estimate (groups, sketches); the
	// originator is always measured. Ungrouped additive plans and top-k are
	// measured on every peer.
	MetricsSample int
	// Liars is the share of peers that lie (never the asker), as Lie
	// says (liars.go); 0 is none. With liars, the peers sign their
	// top-k entries and check the others' (a model of the runtime's
	// signatures), and the messages they refuse for a lie are counted
	// apart (RoundStats.LiesRefused).
	Liars float64
	Lie   Lie
	// CheckOnce makes the sample check judge with its first sample
	// alone, as if run.SampleCheck.More were 0.
	CheckOnce bool
	// First is the index of the first peer's record: peer i's record is
	// query.Synthetic(Seed, First+i), so that the pools of RunPools are
	// apart and together the records of one cloud; it also moves the
	// random choices' stream, so that pools do not draw alike.
	First int
	// Pool, if set, is the pool attribute of every peer's record (RunPools:
	// pool0, pool1, …, as node.PoolName names an embedded cluster's),
	// so that a statement can read it; none in a cloud of one pool.
	Pool string
	// Fanout is how many peers beyond its partner a peer tells of the
	// query each round while it is young (run.Config.Fanout, the
	// runtime's: node.DefaultConfig); 0 spreads it one partner a round,
	// query.AutoFanout (the default) takes the engine's for the plan.
	// Each announcement counts as a message of the encoded plan's size
	// plus AnnounceOverhead.
	Fanout int
}

// AnnounceOverhead is what an announcement carries beside the encoded
// plan, in bytes: the query's id, kind, round, the asker's name and
// coordinate and the lengths (node's batch entry).
const AnnounceOverhead = 96

// HeldReplyBytes is the reply of a peer that held a query already to an
// announcement of it, in bytes: an entry of the query's id (16), kind,
// round and empty fields (node's batch entry). The announcer then counts
// a holder (run.Instance.FoundHolder).
const HeldReplyBytes = 24

// DefaultConfig is the configuration for n peers.
func DefaultConfig(n int) Config {
	return Config{Nodes: n, Seed: 1, Scheme: aggregate.FlowUpdating, NFromGossip: true,
		DetectRounds: 2, Retries: 2, MetricsSample: 10_000, Fanout: query.AutoFanout}
}

// RoundStats is what happened in one round.
type RoundStats struct {
	// Working counts the live peers that hold the query and ran their
	// round (all of Alive with AllStart; fewer while the query spreads).
	Round, Alive, Working int
	Messages              int   // sent, lost or not
	Announced             int   // of them, announcements of the query (Config.Fanout)
	Bytes                 int64 // encoded size of the messages sent
	// Relative errors of the answer against the exact answer over the live
	// peers: the originator's, and the median and worst over the measured
	// peers (Measured of them). A peer without an estimate counts as 1.
	OriginErr, MedianErr, WorstErr float64
	Measured                       int
	// ExactShare is the share of measured peers whose top-k is exact.
	ExactShare float64
	// Variance is the variance across live peers of the first additive
	// component's average: push-pull shrinks it by ~0.303 a round.
	Variance float64
	// OriginDead counts crashed peers in the originator's top-k list.
	OriginDead int
	// ErrEstimate is the error the originator estimates for its own
	// answer, from its own view alone (aggregate.Tracker); for top-k, 0
	// once its list is stable, else 1.
	ErrEstimate float64
	// RuleConverged says the engine's convergence rule (run.Rule), applied
	// at the originator as the node applies it, calls the answer final
	// this round.
	RuleConverged bool
	// Under churn: members left out so far, and members lost that took
	// part and are not left out yet. The errors are NaN but at the final
	// round (Outcome).
	Excluded, Unconfirmed int
	// Refused counts the messages the peers refused this round (the
	// runtime's checks on receipt, run.ErrRefused): 0 with honest peers.
	Refused int
	// With liars: the messages refused that a liar had rewritten, and
	// the entries in the asker's top-k list that are not what their node
	// says (written by a liar for another node).
	LiesRefused, ForgedAccepted int
	// Escalated: the sample check's first sample left a doubt, and it
	// sampled run.SampleCheck.More members more (run.SampleVerdict.Doubt).
	Escalated bool
	// SelfRanked counts, with liars, the liars in the asker's top-k list
	// that claim more reliability than the peers observed; HonestShare is
	// the share of the top-k over the true records that the list holds.
	SelfRanked  int
	HonestShare float64
	// HonestErr is, with liars, the originator's relative error against
	// the answer over the honest peers only (their true records); NaN
	// without liars or under churn. Checked says the sample check of the
	// originator's answer is made (it is, once, when the answer is final
	// or at the last round: Sim.Check), Flagged that it contested the
	// answer.
	HonestErr        float64
	Checked, Flagged bool
	// StandIn: the sample contested a robust answer (run.Robust), and
	// the answer is the sample's own (run.Fallback): not flagged, and
	// the honest error Sim.Check gives is the sample's answer's
	// (HonestErr, a round's, stays the gossip's).
	StandIn bool
}

// Sim is one simulation. It is not safe for concurrent use.
type Sim struct {
	cfg    Config
	plan   *query.Plan
	r      *rand.Rand
	rounds int
	round  int
	// noPrefetch turns Advance's prefetches off (not its draws): a test's
	// check that they change nothing in a run.
	noPrefetch bool

	n       int         // peers created so far
	st      []peerState // by peer
	known   []int32     // peers the survivors believe alive (the sampling pool)
	pos     []int32     // index of each peer in known, or -1
	ticking int32       // the peer whose Tick runs
	order   []int32     // this round's order, reused
	// draws are the sampler's random words, drawn from r ahead of use so
	// that Step can read the peers they will name before their turn (see
	// Step); head is the next unused one.
	draws [256]uint64
	head  int
	// agg (aggregates) or tops (top-k) are the peers' run.Instances, by
	// peer, in one block never moved (a core points into itself, an
	// instance at its core): every round, message and exclusion goes
	// through them, as in the runtime (peer). origin is peer 0's, which
	// applies the engine's convergence rule.
	agg     []aggPeer
	tops    []run.Instance
	origin  *run.Instance
	detects []detection
	bufs    aggregate.Buffers
	// bind configures every peer's core; bounds are the bounds of its
	// components that receivers check (a flow liar's lies stay within).
	bind   *run.Binding
	bounds []float64
	// announceBytes is the size of an announcement (Config.Fanout).
	announceBytes int
	// check is the sample check of the originator's answer, made once
	// when it is final (or at the last round); honestExact the answer
	// over the honest peers' true records, once there are liars
	// (liars.go).
	check         *run.SampleVerdict
	honestAtCheck float64
	escalated     bool           // the check asked More members (RoundStats.Escalated)
	standIn       bool           // the sample's answer stands in for the gossip's (RoundStats.StandIn)
	judged        []query.Record // the records the check's verdict was made with
	honestKeys    map[string][]query.Value
	honestTop     map[string]bool
	// seen is each peer's observed reliability, by peer, with liars
	// (observedReliability); forged the entries forging liars write for
	// other nodes, by node (forgedEntry).
	seen   []float64
	forged map[int32]*topk.Entry

	// recs are the peers' records once Drift has moved them (nil before:
	// records are regenerated from the seed).
	recs []query.Record

	exact     *answer.Answer
	exactKeys map[string][]query.Value
	exactTop  []string
	stats     RoundStats
	errs      []float64
	parts     [][]float64 // measureAll's, by worker

	// Churn (churn.go): exclusions due; how many members were left out by
	// the query's peers (excluded) or removed in all (removed, Serf's
	// verdicts included); ghosts, crashed and joined while it ran; the
	// asker's answer once final.
	excludes                                    []detection
	excluded, removed, ghosts, crashed, joinedN int
	outcome                                     *Outcome
	// refused counts the messages a peer's instance refused (run.ErrRefused:
	// the runtime's checks on receipt), and refusal is the first such
	// error: every simulated peer is honest, so one is a check that would
	// refuse an honest peer in the runtime.
	refused int
	refusal error
	gone    []peer.ID // remove's scratch
}

// aggPeer is an aggregate peer: its instance beside its core, so that
// reaching one reaches the other (the same few cache lines; a block of
// instances apart cost a miss more a visit).
type aggPeer struct {
	q    run.Instance
	core aggregate.Node
}

// peer is peer i's instance.
func (s *Sim) peer(i int32) *run.Instance {
	if s.agg != nil {
		return &s.agg[i].q
	}
	return &s.tops[i]
}

// peerState is what the simulator knows of a peer beside its core, in one
// place so that reaching a random peer costs one cache miss, not two.
type peerState struct {
	alive  bool // really alive
	joined bool // has heard of the query (AllStart: everyone)
	out    bool // left out of the query, or removed on a verdict: its peers refuse it
}

type detection struct {
	round int
	ids   []int32
}

// sampler draws a uniformly random peer from those believed alive, other
// than the peer being ticked: cores sample only inside Tick, and the
// simulator ticks one peer at a time, so one sampler serves all.
type sampler struct{ s *Sim }

func (sm sampler) Sample(*rand.Rand) (peer.ID, bool) {
	s := sm.s
	if len(s.known) < 2 {
		return 0, false
	}
	for {
		if p := s.pick(s.draw()); p != s.ticking {
			if s.ticking == 0 && s.tops != nil {
				// The asker goes after a member its top-k still lacks, as
				// the runtime's does (run.Instance.Straggler), among
				// knownNames: alive as the survivors know (a crash not yet
				// detected is chased, and fails, as in the runtime). The
				// word is drawn all the same, so that the other peers'
				// draws stay those of the seed.
				if name, ok := s.origin.Straggler(); ok {
					if i, ok := s.index(name); ok {
						return peer.ID(i), true
					}
				}
			}
			return peer.ID(p), true
		}
	}
}

// pick maps a random word to a peer of the sampling pool: the high word of
// d·len(known) is uniform on [0, len(known)) up to a bias of len/2⁶⁴.
func (s *Sim) pick(d uint64) int32 {
	i, _ := bits.Mul64(d, uint64(len(s.known)))
	if len(s.known) == s.n {
		return int32(i) // nobody removed: known[i] == i
	}
	return s.known[i]
}

// draw returns the sampler's next random word.
func (s *Sim) draw() uint64 {
	s.fill(0)
	d := s.draws[s.head]
	s.head++
	return d
}

// fill makes sure that draws holds at least k+1 unused words, drawing more
// from r when it must. The words are drawn in one order whatever k is, so
// the run stays determined by the seed.
func (s *Sim) fill(k int) {
	if s.head+k < len(s.draws) {
		return
	}
	n := copy(s.draws[:], s.draws[s.head:])
	for i := n; i < len(s.draws); i++ {
		s.draws[i] = s.r.Uint64()
	}
	s.head = 0
}

// New prepares a simulation of plan; peer 0 is the originator.
func New(plan *query.Plan, cfg Config) (*Sim, error) {
	if plan.Kind == query.PlanLocal {
		return nil, errors.New("sim: a local statement involves no gossip")
	}
	if cfg.Nodes < 2 {
		return nil, errors.New("sim: need at least 2 peers")
	}
	if cfg.Loss < 0 || cfg.Loss >= 1 {
		return nil, fmt.Errorf("sim: loss %v outside [0,1)", cfg.Loss)
	}
	s := &Sim{cfg: cfg, plan: plan, r: rand.New(rand.NewPCG(cfg.Seed, 0x5eed+uint64(cfg.First)))}
	s.rounds = cfg.Rounds
	if s.rounds <= 0 {
		s.rounds = plan.RoundBudget(cfg.Nodes)
		if cfg.Session > 0 {
			// As long as the asker may run (run.Instance.Spent): rounds
			// to mix again after an exclusion extend its budget.
			s.rounds *= run.MaxRoundsFactor
		}
	}
	total := cfg.Nodes
	for _, j := range cfg.Joins {
		total += int(j.Frac * float64(cfg.Nodes))
	}
	if cfg.Session < 0 || cfg.Session > 0 && (cfg.ExcludeRounds < 1 || cfg.MaxExcluded < 1) {
		return nil, errors.New("sim: churn needs a session > 0, ExcludeRounds ≥ 1 and MaxExcluded ≥ 1")
	}
	if cfg.Session > 0 {
		// Joins at the churn's rate, with room for chance: the cores
		// live in one block that must never move.
		mean := float64(s.rounds) * float64(cfg.Nodes) * (1 - math.Exp2(-1/cfg.Session))
		total += int(2*mean+6*math.Sqrt(mean)) + 64
	}
	s.st = make([]peerState, 0, total)
	s.pos = make([]int32, 0, total)
	s.known = make([]int32, 0, total)
	// Every peer draws from the one random source: the simulation is
	// sequential, so the run is still determined by the seed.
	// The peers check what they receive as the runtime's do
	// (CheckReceived).
	rc := run.Config{Peers: cfg.Nodes, Rand: s.r, Sampler: sampler{s}, Asker: 0 /* peer 0 asks */, Alive: s.knownAlive, NFromGossip: cfg.NFromGossip,
		Scheme: cfg.Scheme, Retries: cfg.Retries, KeepLinks: 5, CheckReceived: true,
		Buffers: &s.bufs, // delivery is immediate: one set of buffers serves all
		Seal:    newSeal(cfg), Query: []byte("sim"), Fanout: query.ResolveFanout(cfg.Fanout, plan.Kind, cfg.Nodes)}
	if rc.Fanout > 0 {
		wire, err := plan.Encode()
		if err != nil {
			return nil, err
		}
		s.announceBytes = len(wire) + AnnounceOverhead
	}
	if cfg.Liars > 0 {
		rc.Reliability = s.observedReliability
	}
	if cfg.Liars < 0 || cfg.Liars >= 1 || cfg.Liars > 0 && cfg.Lie == 0 {
		return nil, fmt.Errorf("sim: liars %v outside [0,1), or no lie given", cfg.Liars)
	}
	if len(cfg.Crashes) > 0 || cfg.Session > 0 {
		// Peers can be lost: they share one view of who is left out of
		// the query (a set per peer would not fit a million), which the
		// cores read on every message. Without losses nobody is ever out,
		// and the check is left off the hot path.
		rc.Excluded = func(p peer.ID) bool { return s.st[p].out }
	}
	if plan.Kind != query.PlanAggregate {
		// A top-k keeps the coverage filter the runtime would give it.
		rc.Coverage, rc.Members = run.CoverageFor(cfg.Nodes), s.knownNames
	}
	switch {
	case cfg.FoldAfter > 0:
		rc.KeepLinks = cfg.FoldAfter
	case len(cfg.Crashes) > 0 || cfg.Session > 0:
		rc.KeepLinks = s.bound() + cfg.DetectRounds + 1
	default:
		// Nobody is ever removed, so no flow is ever undone: an
		// initiator's link is folded as soon as it is answered (only a
		// responder's waits, for retries), which halves the links a
		// million peers hold and changes no estimate.
		rc.FoldAnswered = true
	}
	var err error
	if s.bind, err = run.Bind(plan, rc); err != nil {
		return nil, err
	}
	if plan.Kind == query.PlanAggregate {
		// What a flow liar may send of each component: an additive one's
		// bound, a histogram bucket's share of the peers (1).
		spec := run.Spec(plan)
		s.bounds = slices.Clone(spec.Bounds)
		for c, k := range spec.Comps {
			if k == aggregate.Histogram && c < len(s.bounds) {
				s.bounds[c] = 1
			}
		}
	}
	if plan.Kind == query.PlanAggregate {
		s.agg = make([]aggPeer, 0, total)
		adviseHugePages(unsafe.Pointer(unsafe.SliceData(s.agg[:1])), uintptr(total)*unsafe.Sizeof(s.agg[:1][0]))
	} else {
		s.tops = make([]run.Instance, 0, total)
	}
	if cfg.Liars > 0 {
		s.seen = make([]float64, 0, total)
	}
	// Build the peers and the exact answer in one pass over the records.
	s.setExact(query.ExactSeq(plan, func(yield func(query.Record) bool) {
		for k := 0; k < cfg.Nodes && err == nil; k++ {
			var rec query.Record
			if rec, err = s.addOne(); err == nil && !yield(rec) {
				return
			}
		}
	}))
	if err != nil {
		return nil, err
	}
	if cfg.Session > 0 {
		s.seedGhosts()
	}
	s.origin = s.peer(0)
	return s, nil
}

// add creates m peers with the next synthetic records.
func (s *Sim) add(m int) error {
	for k := 0; k < m; k++ {
		if _, err := s.addOne(); err != nil {
			return err
		}
	}
	return nil
}

// addOne creates the next peer and returns its record.
func (s *Sim) addOne() (query.Record, error) {
	i := s.n
	rec := s.synthetic(i)
	if s.cfg.Liars > 0 {
		s.seen = append(s.seen, rec["reliability"].Num) // before a liar's claim
	}
	rec = s.claim(i, rec)
	if len(s.agg) == cap(s.agg) && len(s.tops) == cap(s.tops) {
		return nil, errors.New("sim: more peers than planned") // a move would break the cores and instances
	}
	var agg *aggregate.Node
	var top *topk.Node
	var err error
	if s.agg != nil {
		s.agg = s.agg[:i+1]
		agg = &s.agg[i].core
		err = s.bind.InitAggregate(agg, i == 0, peer.ID(i), rec)
	} else {
		s.tops = s.tops[:i+1]
		top, err = s.bind.NewTopK(rec, i == 0)
	}
	if err != nil {
		return nil, err
	}
	if err := s.bind.Attach(s.peer(int32(i)), i == 0, agg, top); err != nil {
		return nil, err
	}
	if s.recs != nil {
		s.recs = append(s.recs, rec)
	}
	s.st = append(s.st, peerState{alive: true, joined: s.cfg.AllStart || i == 0})
	s.pos = append(s.pos, int32(len(s.known)))
	s.known = append(s.known, int32(i))
	s.n++
	return rec, nil
}

// knownAlive is the top-k cores' view of the membership: a node is dead
// once the survivors have learned of its crash.
func (s *Sim) knownAlive(node string) bool {
	if len(s.known) == s.n {
		return true // nobody removed: no need to read the name
	}
	i, ok := s.index(node)
	return !ok || i >= len(s.pos) || s.pos[i] >= 0
}

// knownNames are the names of the peers the survivors believe alive: whom
// the originator's coverage filter must hold.
func (s *Sim) knownNames() []string {
	out := make([]string, len(s.known))
	for i, p := range s.known {
		out[i] = query.SyntheticName(s.cfg.First + int(p))
	}
	return out
}

// Rounds is the number of rounds the simulation runs: the budget, which
// an answer not yet final may run past (Config.Rounds).
func (s *Sim) Rounds() int { return s.rounds }

// Done reports whether every round has run: the budget, and the rounds
// past it that the asker's instance runs on for (Config.Rounds), up to
// run.MaxRoundsFactor times it. The instance is final once Measure (or
// Step) has applied the rule: a driver that only calls Advance runs to the
// bound.
func (s *Sim) Done() bool {
	return s.round >= s.rounds && (!s.runsOn() || s.origin.Final() || s.round >= s.bound())
}

// runsOn says the run may go past its budget while the asker's answer is
// not final: Config.Rounds 0, and no churn (under churn rounds is already
// the hard bound, New).
func (s *Sim) runsOn() bool { return s.cfg.Rounds <= 0 && !s.churning() }

// bound is the last round a run can reach.
func (s *Sim) bound() int {
	if s.runsOn() {
		return run.MaxRoundsFactor * s.rounds
	}
	return s.rounds
}

// Alive is the number of live peers.
func (s *Sim) Alive() int {
	n := 0
	for _, st := range s.st {
		a := st.alive
		if a {
			n++
		}
	}
	return n
}

// Step runs one round and measures it: Advance, then Measure.
func (s *Sim) Step() RoundStats {
	s.Advance()
	return s.Measure()
}

// Advance runs one round: the peers' work, without measuring it (the
// error of every peer's estimate, which a real cloud never computes:
// Measure). Drivers that time the protocol apart from the measurement
// call the two in turn.
func (s *Sim) Advance() {
	s.round++
	s.stats = RoundStats{Round: s.round}
	changed := s.events()
	s.detect()
	if changed && !s.churning() {
		s.computeExact() // under churn: over those that took part, once final (settle)
	}
	order := s.order[:0]
	alive := 0
	for i, st := range s.st {
		a := st.alive
		if a {
			alive++
			if s.st[i].joined {
				order = append(order, int32(i))
			}
		}
	}
	s.order = order
	s.r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for k, i := range order {
		if s.agg != nil {
			s.prefetch(order, k)
		}
		s.tick(i)
		if k := s.peer(i).Announce(); k > 0 {
			s.announce(i, k)
		}
	}
	s.stats.Alive, s.stats.Working = alive, len(order)
}

// Prefetch distances, in places of a round's order (Sim.prefetch).
const ahead, near = 12, 6

// headLines is the part of an aggregate peer that every round reads: its
// instance and its core's fixed fields (aggregate.HeadBytes).
const headLines = unsafe.Offsetof(aggPeer{}.core) + aggregate.HeadBytes

// prefetch asks, at place k of the round's order, for the peers a few
// places ahead and the partners that the draws as many places ahead will
// most likely name (a peer's round draws once), so that their cache
// misses overlap this peer's work: at millions of peers, memory latency
// sets the pace. First, ahead, the head of each and its state here;
// then, near, once the head is in, the links and flows it uses
// (aggregate.Node.PrefetchRest): the lines a round reads and no others,
// so that more peers' misses are in flight. It draws the words it reads
// whether it prefetches or not (noPrefetch): when r is read is part of
// the run, and a prefetch must change nothing in it.
func (s *Sim) prefetch(order []int32, k int) {
	if k+ahead < len(order) {
		s.fill(ahead)
	}
	if s.noPrefetch {
		return
	}
	if k+ahead < len(order) {
		p, next := s.pick(s.draws[s.head+ahead]), order[k+ahead]
		prefetch.Range(unsafe.Pointer(&s.agg[next]), headLines)
		prefetch.Range(unsafe.Pointer(&s.st[next]), unsafe.Sizeof(s.st[next]))
		prefetch.Range(unsafe.Pointer(&s.agg[p]), headLines)
		prefetch.Range(unsafe.Pointer(&s.st[p]), unsafe.Sizeof(s.st[p]))
	}
	if k+near < len(order) {
		s.agg[order[k+near]].core.PrefetchRest()
		// Only a word already drawn names the partner: drawing more here
		// (a round's last places, where nothing is asked for ahead) would
		// read r before the next round's shuffle does.
		if s.head+near < len(s.draws) {
			s.agg[s.pick(s.draws[s.head+near])].core.PrefetchRest()
		}
	}
}

// Measure measures the round Advance ran and returns its statistics.
func (s *Sim) Measure() RoundStats {
	s.measure()
	return s.stats
}

// events applies this round's crashes and joins.
func (s *Sim) events() bool {
	changed := false
	for _, e := range s.cfg.Crashes {
		if e.Round != s.round {
			continue
		}
		var live []int32
		for i := 1; i < len(s.st); i++ { // the originator does not crash
			if s.st[i].alive {
				live = append(live, int32(i))
			}
		}
		s.r.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		dead := live[:int(e.Frac*float64(len(live)+1))]
		for _, d := range dead {
			s.st[d].alive = false
		}
		s.detects = append(s.detects, detection{round: s.round + s.cfg.DetectRounds, ids: dead})
		changed = true
	}
	for _, e := range s.cfg.Joins {
		if e.Round == s.round {
			if err := s.add(int(e.Frac * float64(s.cfg.Nodes))); err != nil {
				panic(err) // the same configuration built the first peers
			}
			changed = true
		}
	}
	if s.churning() {
		s.churn()
		changed = true
	}
	return changed
}

// detect tells the survivors of the crashes due this round: Serf's
// verdicts, and under churn the query's own exclusions.
func (s *Sim) detect() {
	dead := s.due(&s.detects)
	if s.churning() {
		dead = append(dead, s.exclusions(dead)...)
	}
	s.remove(dead)
}

// tick runs peer i's round through its run.Instance, as the runtime does,
// and delivers its exchange.
func (s *Sim) tick(i int32) {
	s.ticking = i
	q := s.peer(i)
	q.Tick()
	if s.agg != nil {
		deliver(s, i, q.Aggregate().Outbox(), aggDest, aggStep)
	} else {
		deliver(s, i, q.TopK().Outbox(), topDest, topStep)
	}
}

// announce tells k random peers other than from of the query, as the
// runtime's announcements do (the plan alone): each that had not heard of
// it joins at from's round and starts the next round. A peer is drawn
// from the sampling pool, as a partner is; one that already holds the
// query says so (HeldReplyBytes), and from counts it
// (run.Instance.FoundHolder: it stops after run.StopAnnouncing). The
// runtime sends only to peers not known to hold it, which the simulator
// does not track, so this counts a few more.
func (s *Sim) announce(from int32, k int) {
	r := s.peer(from).Round()
	for range k {
		to := s.pick(s.draw())
		if to == from {
			continue
		}
		s.stats.Messages++
		s.stats.Announced++
		s.stats.Bytes += int64(s.announceBytes)
		if s.lost(int(to)) {
			continue
		}
		if s.st[to].joined {
			// It held the query: it says so, unless the reply is lost.
			s.stats.Messages++
			s.stats.Bytes += HeldReplyBytes
			if !s.lost(int(from)) {
				s.peer(from).FoundHolder()
			}
			continue
		}
		s.st[to].joined = true
		s.peer(to).JoinAt(r)
	}
}

func (s *Sim) lost(to int) bool {
	return !s.st[to].alive || s.cfg.Loss > 0 && s.r.Float64() < s.cfg.Loss
}

// deliver sends a peer's envelopes: each counts as sent, is lost or
// delivered at once to the receiver's run.Instance (a peer that had not
// heard of the query joins it at the sender's round, as in the runtime),
// and what the receiver sends back goes the same way. dest and step are
// the protocol's; they are plain functions, so that the hot loop
// allocates nothing.
func deliver[E any](s *Sim, from int32, out []E, dest func(E) (to int32, size int), step func(q *run.Instance, from int32, e E) ([]E, error)) {
	for _, e := range out {
		to, size := dest(e)
		s.stats.Messages++
		s.stats.Bytes += int64(size)
		if s.lost(int(to)) {
			continue
		}
		if !s.st[to].joined {
			s.st[to].joined = true
			s.peer(to).JoinAt(s.peer(from).Round())
		}
		lied := false
		if s.cfg.Liars > 0 && s.liar(from) {
			// A liar about itself carries its claim in what it sends:
			// a refusal of its message is a lie refused.
			lied = s.cfg.Lie == LieInflate || s.cfg.Lie == LieExtreme || s.cfg.Lie == LieSelfrank
			switch m := any(e).(type) {
			case topk.Envelope:
				var l bool
				m, l = s.lie(from, m)
				lied = lied || l
				e = any(m).(E)
			case aggregate.Envelope:
				if s.cfg.Lie == LieFlow || s.cfg.Lie == LieSquares {
					m, lied = s.lieFlows(m)
					e = any(m).(E)
				}
			}
		}
		reply, err := step(s.peer(to), from, e)
		if err != nil && lied {
			s.stats.LiesRefused++
			continue
		}
		if err != nil {
			s.refuse(err)
			continue
		}
		deliver(s, to, reply, dest, step)
	}
}

// refuse counts a message a peer's instance refused.
func (s *Sim) refuse(err error) {
	if s.refused == 0 {
		s.refusal = err
	}
	s.refused++
	s.stats.Refused++
}

// Refused is how many messages the peers refused in all, and the first
// refusal's error: with honest peers only, 0 and nil (a refusal is a check
// on receipt that would refuse an honest peer in the runtime).
func (s *Sim) Refused() (int, error) { return s.refused, s.refusal }

func aggDest(e aggregate.Envelope) (int32, int) { return int32(e.To), e.Msg.Size() }

func aggStep(q *run.Instance, from int32, e aggregate.Envelope) ([]aggregate.Envelope, error) {
	if err := q.StepAggregate(peer.ID(from), e.Msg); err != nil {
		return nil, err
	}
	return q.Aggregate().Outbox(), nil
}

func topDest(e topk.Envelope) (int32, int) { return int32(e.To), e.Msg.Size() }

func topStep(q *run.Instance, from int32, e topk.Envelope) ([]topk.Envelope, error) {
	if err := q.StepTopK(peer.ID(from), e.Msg); err != nil {
		return nil, err
	}
	return q.TopK().Outbox(), nil
}

// liveRecords yields the records of the live peers, regenerated from the
// seed so that a million records are never held at once.
func (s *Sim) liveRecords() iter.Seq[query.Record] {
	return func(yield func(query.Record) bool) {
		for i, st := range s.st {
			if !st.alive {
				continue
			}
			rec := s.record(i)
			if !yield(rec) {
				return
			}
		}
	}
}

// synthetic is peer i's synthetic record (Config.First), with its pool.
func (s *Sim) synthetic(i int) query.Record {
	return withPool(query.Synthetic(s.cfg.Seed, s.cfg.First+i), s.cfg.Pool)
}

// withPool is rec with its pool attribute, if pool is set.
func withPool(rec query.Record, pool string) query.Record {
	if pool != "" {
		rec["pool"] = query.Str(pool)
	}
	return rec
}

// record is peer i's record now.
func (s *Sim) record(i int) query.Record {
	if s.recs != nil {
		return s.recs[i]
	}
	return s.claim(i, s.synthetic(i))
}

// Drift moves every live peer's dynamic attributes by dt seconds
// (query.Drift) and gives its running core the new contribution in place
// (aggregate's Reinput), as a long-lived instance would take a new epoch
// of a WATCH; the exact answer follows. It fails with
// aggregate.ErrNotIncremental for plans whose contributions cannot change
// in place (top-k, MIN, MAX, COUNT DISTINCT, a peer whose filter or group
// changed), which leaves the cores partly moved.
func (s *Sim) Drift(dt float64) error {
	if s.agg == nil {
		return aggregate.ErrNotIncremental
	}
	if s.recs == nil {
		s.recs = make([]query.Record, s.n)
		for i := range s.recs {
			s.recs[i] = s.claim(i, s.synthetic(i))
		}
	}
	for i, st := range s.st {
		if !st.alive {
			continue
		}
		old := run.Contribution(s.plan, s.recs[i])
		rec := maps.Clone(s.recs[i])
		query.Drift(rec, s.r, dt)
		if err := s.agg[i].core.Reinput(old, run.Contribution(s.plan, rec)); err != nil {
			return fmt.Errorf("sim: peer %d: %w", i, err)
		}
		s.recs[i] = rec
	}
	s.computeExact()
	return nil
}

func (s *Sim) computeExact() { s.setExact(query.ExactSeq(s.plan, s.liveRecords())) }

func (s *Sim) setExact(exact *answer.Answer) {
	s.exact = exact
	s.exactKeys = map[string][]query.Value{}
	if s.plan.Kind == query.PlanAggregate {
		for _, row := range s.exact.Rows {
			s.exactKeys[rowKey(s.plan, row)] = row
		}
	}
	s.exactTop = s.exact.Nodes
}

// rowKey identifies an aggregate row by its GROUP BY columns: the columns
// that are keys.
func rowKey(p *query.Plan, row []query.Value) string {
	var keys []query.Value
	for i, c := range p.Columns {
		if c.Expr.Op == query.OpKeyRef {
			keys = append(keys, row[i])
		}
	}
	return string(query.EncodeRow(keys))
}

// Exact is the exact answer over the live peers.
func (s *Sim) Exact() *answer.Answer { return s.exact }

// Answer is the originator's answer now, as the engine reads it.
func (s *Sim) Answer() (*answer.Answer, error) {
	return s.origin.Answer(len(s.known))
}

// report applies the engine's convergence rule at the originator, as the
// node does at the end of each round.
func (s *Sim) report() (*answer.Answer, error) {
	unconfirmed := 0
	if s.churning() {
		unconfirmed = s.unconfirmed()
		s.stats.Unconfirmed, s.stats.Excluded = unconfirmed, s.excluded
	}
	a, err := s.origin.Report(len(s.known), run.Blocking(unconfirmed, len(s.known), s.plan.Accuracy))
	s.stats.ErrEstimate, s.stats.RuleConverged = 1, false
	if err == nil {
		s.stats.ErrEstimate, s.stats.RuleConverged = a.ErrEstimate, a.Converged
	}
	if s.churning() && s.outcome == nil && (err != nil || a.Final || s.round >= s.rounds) {
		s.settle(a, err, unconfirmed)
	}
	return a, err
}

// nScale is the number of peers a peer multiplies averages by: the live
// count it knows from the membership, or 0 to use its own gossip estimate.
func (s *Sim) nScale() float64 {
	if s.cfg.NFromGossip {
		return 0
	}
	return float64(len(s.known))
}

// measure fills the round's error figures.
func (s *Sim) measure() {
	if s.agg == nil {
		s.measureTop()
		return
	}
	s.stats.Variance = s.variance()
	ans, err := s.report()
	if s.churning() {
		// The exact answer over those that took part is computed once, at
		// the final round (settle): at a million peers it costs a pass
		// over every record.
		nan := math.NaN()
		s.stats.OriginErr, s.stats.MedianErr, s.stats.WorstErr = nan, nan, nan
		if o := s.outcome; o != nil && o.Round == s.round {
			s.stats.OriginErr = o.Err
		}
		return
	}
	s.stats.OriginErr = s.errOf(ans, err)
	s.judge(ans, err)
	s.errs = s.errs[:0]
	if fast := s.fastPath(); fast {
		s.errs = s.measureAll(s.errs)
	} else {
		ids := s.sample()
		for _, i := range ids {
			// Each peer's answer as the engine reads it (its instance).
			a, err := s.peer(i).Answer(len(s.known))
			s.errs = append(s.errs, s.errOf(a, err))
		}
	}
	s.summarize()
}

func (s *Sim) summarize() {
	s.stats.Measured = len(s.errs)
	if len(s.errs) == 0 {
		return
	}
	worst := 0.0
	for _, e := range s.errs {
		worst = math.Max(worst, e)
	}
	s.stats.WorstErr = worst
	s.stats.MedianErr = nth(s.errs, len(s.errs)/2)
}

// nth returns the k-th smallest of xs (reordering xs): quickselect, linear
// on average, where a sort of a million errors a round would not be.
func nth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		pivot := xs[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

// sample picks up to MetricsSample live peers, the originator first.
func (s *Sim) sample() []int32 {
	var live []int32
	for i, st := range s.st {
		a := st.alive
		if a {
			live = append(live, int32(i))
		}
	}
	if s.cfg.MetricsSample <= 0 || len(live) <= s.cfg.MetricsSample {
		return live
	}
	r := rand.New(rand.NewPCG(s.cfg.Seed+uint64(s.cfg.First), uint64(s.round)))
	r.Shuffle(len(live)-1, func(i, j int) { live[i+1], live[j+1] = live[j+1], live[i+1] })
	return live[:s.cfg.MetricsSample]
}

// fastPath reports whether every peer's answer can be read from its
// averages alone, without building its full estimate: one group, additive
// components only.
func (s *Sim) fastPath() bool {
	if len(s.plan.GroupBy) > 0 {
		return false
	}
	for _, c := range s.plan.Components {
		if !c.Kind.Additive() {
			return false
		}
	}
	return true
}

var ungrouped = aggregate.GroupHash(nil)

// measureAll appends every live peer's error on the fast path. The peers
// are only read, so the work is split over the CPUs; the simulation itself
// stays on one goroutine.
func (s *Sim) measureAll(errs []float64) []float64 {
	workers := min(runtime.GOMAXPROCS(0), 8)
	if len(s.parts) != workers {
		s.parts = make([][]float64, workers)
	}
	parts := s.parts // kept from round to round: at a million peers, 8 MB a round less to collect
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*len(s.agg)/workers, (w+1)*len(s.agg)/workers
		wg.Add(1)
		parts[w] = parts[w][:0]
		go func() {
			defer wg.Done()
			m := errMeter{s: s, comps: make([]query.CompResult, len(s.plan.Components)), aggs: make([]query.Value, len(s.plan.Aggs))}
			for i := lo; i < hi; i++ {
				if s.st[i].alive {
					parts[w] = append(parts[w], m.err(&s.agg[i].core))
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range parts {
		errs = append(errs, p...)
	}
	return errs
}

// errMeter holds one worker's buffers for measuring peers.
type errMeter struct {
	s     *Sim
	comps []query.CompResult
	aggs  []query.Value
	cells []query.Value
}

// err is one peer's relative error on the fast path.
func (m *errMeter) err(a *aggregate.Node) float64 {
	s := m.s
	n := s.nScale()
	if n == 0 {
		o := a.Origin()
		if o <= 0 {
			return 1
		}
		n = 1 / o
	}
	for i := range m.comps {
		m.comps[i] = query.CompResult{Total: a.Mean(ungrouped, i) * n}
	}
	m.cells = s.plan.Row(query.GroupResult{Comps: m.comps}, m.aggs, m.cells[:0])
	if len(s.exact.Rows) != 1 {
		return 1
	}
	return rowErr(m.cells, s.exact.Rows[0])
}

// errOf is the relative error of an aggregate answer: the worst over every
// numeric cell of every exact row; a missing row counts as 1.
func (s *Sim) errOf(res *answer.Answer, err error) float64 {
	return s.errAgainst(res, err, s.exactKeys)
}

// errAgainst is errOf against another exact answer's rows, by rowKey.
func (s *Sim) errAgainst(res *answer.Answer, err error, exactKeys map[string][]query.Value) float64 {
	if err != nil || res == nil {
		return 1
	}
	got := map[string][]query.Value{}
	for _, row := range res.Rows {
		got[rowKey(s.plan, row)] = row
	}
	worst := 0.0
	for k, want := range exactKeys {
		row, ok := got[k]
		if !ok {
			return 1
		}
		worst = math.Max(worst, rowErr(row, want))
	}
	return worst
}

func rowErr(got, want []query.Value) float64 {
	worst := 0.0
	for j, w := range want {
		g := got[j]
		switch {
		case w.Kind.Numeric() && g.Kind.Numeric():
			d := math.Abs(g.Num - w.Num)
			if w.Num != 0 {
				d /= math.Abs(w.Num)
			}
			worst = math.Max(worst, d)
		case w != g:
			return 1
		}
	}
	return worst
}

// variance is the variance across live peers of the first additive
// component's average.
func (s *Sim) variance() float64 {
	comp := -1
	for i, c := range s.plan.Components {
		if c.Kind == query.CompSum || c.Kind == query.CompCount && c.Arg != nil {
			comp = i
			break
		}
	}
	if comp < 0 || len(s.plan.GroupBy) > 0 {
		return 0
	}
	var sum, sumSq float64
	n := 0
	for i := range s.agg {
		if s.st[i].alive {
			x := s.agg[i].core.Mean(ungrouped, comp)
			sum += x
			sumSq += x * x
			n++
		}
	}
	mean := sum / float64(n)
	return math.Max(sumSq/float64(n)-mean*mean, 0)
}

func (s *Sim) measureTop() {
	if s.churning() {
		s.report()
		s.stats.OriginErr, s.stats.ExactShare = math.NaN(), math.NaN()
		if o := s.outcome; o != nil && o.Round == s.round {
			s.stats.OriginErr = o.Err
		}
		return
	}
	exact, total := 0, 0
	for i := range s.tops {
		if !s.st[i].alive {
			continue
		}
		total++
		if sameNodes(s.tops[i].TopK().Top(), s.exactTop) {
			exact++
		}
	}
	s.stats.Measured = total
	s.stats.ExactShare = float64(exact) / float64(total)
	s.stats.OriginErr = 1
	if sameNodes(s.origin.TopK().Top(), s.exactTop) {
		s.stats.OriginErr = 0
	}
	s.report()
	if s.cfg.Liars > 0 {
		s.stats.ForgedAccepted, s.stats.SelfRanked, s.stats.HonestShare = s.forgedAccepted(), s.selfRanked(), s.honestShare()
	}
	for _, e := range s.origin.TopK().Top() {
		if i, ok := s.index(e.Node); ok && !s.st[i].alive {
			s.stats.OriginDead++
		}
	}
}

func sameNodes(es []*topk.Entry, names []string) bool {
	if len(es) != len(names) {
		return false
	}
	for i, e := range es {
		if e.Node != names[i] {
			return false
		}
	}
	return true
}

// ParseScheme reads an averaging scheme's name: flow-updating or
// push-pull.
func ParseScheme(name string) (aggregate.Scheme, error) {
	for _, s := range []aggregate.Scheme{aggregate.FlowUpdating, aggregate.PushPull} {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("sim: scheme %q (expected flow-updating or push-pull)", name)
}
