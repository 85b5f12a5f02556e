package run

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/topk"
)

// Protocol is the core a plan runs on.
type Protocol uint8

// The protocols.
const (
	Aggregate Protocol = iota + 1 // gossip averaging, extremes, sketches
	TopK                          // gossip top-k (SELECT ... ORDER BY ... LIMIT, RESERVE)
)

func (p Protocol) String() string {
	switch p {
	case Aggregate:
		return "aggregate"
	case TopK:
		return "top-k"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// ProtocolOf is the core a plan kind runs on, or 0 for plans that involve
// no gossip.
func ProtocolOf(k query.PlanKind) Protocol {
	switch k {
	case query.PlanAggregate:
		return Aggregate
	case query.PlanTopK, query.PlanReserve:
		return TopK
	}
	return 0
}

// CoverageFor is the coverage filter's size for a top-k asked over peers
// live peers (query.CoverageBits); 0 when the cluster is too large for one.
func CoverageFor(peers int) int { return query.CoverageBits(peers) }

// ErrNoGossip is returned for plans that involve no gossip (SHOW, RELEASE).
var ErrNoGossip = errors.New("run: the statement involves no gossip")

// Config configures the instances of one plan.
type Config struct {
	// Peers is the number of live peers when the query starts (the
	// membership's count): it sets the round budget and the rule's
	// expectations.
	Peers int
	// Rand and Sampler drive the cores' random choices.
	Rand    *rand.Rand
	Sampler peer.Sampler
	// Asker is the asking peer: the other peers of a top-k never pull
	// from it (a round without an exchange instead, 1 in N). The asker
	// pulls deltas (topk.Config.Origin), so what it receives is what the
	// query costs it, not every peer's list.
	Asker peer.ID
	// Alive reports whether a node is alive as far as this peer knows
	// (Serf's membership, the simulator's failure detector): a top-k
	// refuses and prunes entries of dead nodes, and never answers with
	// one. Nil means all are alive. It must be cheap and must not block.
	Alive func(node string) bool
	// Self is this peer's name; Coverage the size in bits of a top-k's
	// coverage filter (topk.CoverageBits of the asker's membership, the
	// same at every peer of a query; 0 for none); Members lists the live
	// peers at the asker, whom the filter must hold before a top-k is
	// final.
	Self     string
	Coverage int
	Members  func() []string
	// NFromGossip scales sums by the gossip estimate of the number of
	// peers (1/origin mass), as beyond Serf's scale; false scales by the
	// membership's count passed to Answer.
	NFromGossip bool
	// Linger is how many rounds past the budget the driver keeps an
	// instance, so that late messages find it.
	Linger int
	// CheckReceived: messages come from other processes, which may lie.
	// The cores then refuse a message with a value no peer could have
	// reported — a top-k entry's node, sort key or row, a group key, an
	// extreme or a histogram bucket out of the plan's shape or the
	// catalog's bounds, a sketch's register above any rank (check.go;
	// aggregate.Spec.ValidKey, ValidExtreme, ValidBucket and
	// CheckSketches, topk.Config.ValidEntry) — and Step returns
	// ErrRefused. The runtime and the simulator set it (the simulator's
	// peers are honest: a refusal there is a check that would refuse an
	// honest peer).
	CheckReceived bool
	// KeepLinks is how many rounds a Flow Updating link is kept so that
	// the flow to a peer that dies can be undone exactly
	// (docs/PROTOCOLS.md); 0 keeps every link for the whole query: the
	// budget, Linger and two rounds. A peer holds ~2 links a round, a few
	// kilobytes.
	KeepLinks int
	// FoldAnswered folds an initiator's link once answered
	// (aggregate.Config.FoldAnswered): only for a driver that never
	// excludes peers, the simulator without crashes or churn.
	FoldAnswered bool
	// Scheme and Retries tune aggregation; zero values take
	// aggregate.DefaultConfig's, and Retries < 0 means none: an exchange
	// unanswered at the next round is kept to retry later (aggregate's
	// stuck exchanges) while the round goes to a new partner — the
	// runtime's choice, whose exchanges are request and reply, and for
	// which a retry to a peer still out is no use.
	Scheme  aggregate.Scheme
	Retries int
	// Buffers, if set, is scratch shared by every aggregate core (the
	// simulator, which delivers at once on one goroutine).
	Buffers *aggregate.Buffers
	// SelfID is this peer as the cores know it (the witness of its own
	// extremes); IDOf maps a node's name to its ID (top-k entries name
	// nodes). Excluded, if set, says which peers are left out of the
	// query for every instance of the binding (the simulator's view of
	// what the query's peers know); nil gives each instance its own set,
	// which Instance.Exclude grows (the runtime).
	SelfID   peer.ID
	IDOf     func(name string) peer.ID
	Excluded func(peer.ID) bool
	// Seal, if set, signs this peer's top-k entry (and the MIN and MAX
	// extremes it witnesses) and, with CheckReceived, checks that every
	// entry (extreme) another peer sends is signed by the node it names
	// (check.go): no peer can write, alter or replay another's. Query is what names the query in what is signed
	// (the runtime's query ID), so that an entry of one query is no proof
	// in another. The simulator sets neither: its peers have no keys.
	Seal  Sealer
	Query []byte
	// Reliability, if set, is the most reliability this peer's own
	// observations allow node to claim (the share of the trailing window
	// this peer saw it alive, counting the time it did not watch as up),
	// ok false where it cannot judge. With CheckReceived, a top-k entry
	// whose reliability (a column or a sort key) is above it is refused
	// (ErrImplausible): a node cannot rank itself above what the others
	// saw. The bound carries its own doubt (node's observer: events seen
	// late, clocks apart), counted in time: a fixed share of slack let 1%
	// of 10^6 simulated peers claiming 1 take every place of a top-50,
	// whose true values lie within 10^-6 of 1.
	Reliability func(node string) (atMost float64, ok bool)
	// Fanout is how many peers beyond its round's partner a peer tells of
	// the query in each round while the query is young (Announce): the
	// plan then spreads as a push with fanout, not one peer a round
	// (query.SpreadRoundsFanout). 0 tells none.
	Fanout int
}

// ErrImplausible wraps the refusal of a value a peer claims about itself
// that this peer's own observations contradict (reliability).
var ErrImplausible = errors.New("run: a claim this peer's observations contradict")

// Sealer signs this peer's records and checks other peers' against the
// keys the membership pinned for them (the runtime's identity). It must be
// safe for concurrent use.
type Sealer interface {
	// Sign is node's signature over msg, where this peer may sign as
	// node (the runtime's peer as itself only; the simulator's model as
	// any honest peer): nil where it may not.
	Sign(node string, msg []byte) []byte
	// Verify says whether sig is node's over msg: nil, or an error
	// wrapping ErrForged.
	Verify(node string, msg, sig []byte) error
}

// Binding is a plan bound to its core: the configuration every peer's
// instance of it is built with. Build one per plan and peer process; the
// simulator builds one for all its peers.
type Binding struct {
	plan     *query.Plan
	cfg      Config
	protocol Protocol
	budget   int
	peerCfg  aggregate.Config
	origCfg  aggregate.Config
	entries  *entryCheck // top-k entries from other peers, with CheckReceived
	spread   int         // the rounds in which a peer announces the query (Announce)
	young    int         // the rounds in which the query spreads, fanout or not (Young)
	// topCfg is the top-k cores' configuration, a peer's and the asker's:
	// every core of the binding keeps a pointer to it (topk.NewAs), not a
	// copy and closures of its own (~200 bytes a peer).
	topCfg [2]topk.Config
}

// Bind binds plan with cfg.
func Bind(plan *query.Plan, cfg Config) (*Binding, error) {
	b := &Binding{plan: plan, cfg: cfg, protocol: ProtocolOf(plan.Kind), budget: plan.RoundBudget(max(cfg.Peers, 2))}
	if b.protocol == 0 {
		return nil, ErrNoGossip
	}
	if cfg.Fanout < 0 {
		return nil, fmt.Errorf("run: Fanout %d", cfg.Fanout)
	}
	b.young = query.SpreadRoundsFanout(max(cfg.Peers, 2), cfg.Fanout)
	if cfg.Fanout > 0 {
		b.spread = b.young
	}
	if cfg.Rand == nil || cfg.Sampler == nil {
		return nil, errors.New("run: Config needs Rand and Sampler")
	}
	if b.protocol == Aggregate {
		spec := Spec(plan)
		if cfg.CheckReceived {
			spec.ValidKey, spec.ValidExtreme, spec.ValidBucket = validKey(plan), validExtreme(plan, cfg), validBucket(plan)
			spec.CheckSketches = true
		}
		c := aggregate.DefaultConfig(spec, cfg.Rand, cfg.Sampler)
		if cfg.Scheme != 0 {
			c.Scheme = cfg.Scheme
		}
		if cfg.Retries != 0 {
			c.Retries = max(cfg.Retries, 0)
		}
		c.FoldAfter, c.FoldAnswered = cfg.KeepLinks, cfg.FoldAnswered
		if c.FoldAfter <= 0 {
			// Every link for as long as a peer keeps the query (a spent
			// budget may be held, and a peer keeps it for as long: Hold),
			// so that the flow with a member lost late is undone.
			c.FoldAfter = HoldFactor * (MaxRoundsFactor*b.budget + cfg.Linger + 2)
		}
		c.Buffers = cfg.Buffers
		c.Excluded = cfg.Excluded
		b.peerCfg, b.origCfg = c, c
		b.origCfg.Originator = true
	}
	if b.protocol == TopK && cfg.CheckReceived {
		b.entries = newEntryCheck(plan)
		b.entries.seal, b.entries.query, b.entries.reliability = cfg.Seal, cfg.Query, cfg.Reliability
	}
	if b.protocol == TopK {
		b.configureTopK()
	}
	return b, nil
}

// Plan is the bound plan.
func (b *Binding) Plan() *query.Plan { return b.plan }

// Protocol is the core the plan runs on.
func (b *Binding) Protocol() Protocol { return b.protocol }

// Budget is the round budget for the plan over Config.Peers.
func (b *Binding) Budget() int { return b.budget }

// InitAggregate initialises, in place, the aggregate core of peer self
// with the contribution of rec: the simulator keeps a million of them in
// one block.
func (b *Binding) InitAggregate(n *aggregate.Node, origin bool, self peer.ID, rec query.Record) error {
	cfg := &b.peerCfg
	if origin {
		cfg = &b.origCfg
	}
	if err := n.InitAs(cfg, self, Contribution(b.plan, rec)); err != nil {
		return err
	}
	b.signExtremes(n, rec["node"].Str)
	return nil
}

// signExtremes signs the extremes node witnesses (its own MIN and MAX
// values), with Config.Seal: a receiver takes an extreme only with its
// witness's signature (validExtreme), so a peer can set one with its own
// value only.
func (b *Binding) signExtremes(n *aggregate.Node, node string) {
	if b.cfg.Seal == nil || !b.plan.HasExtremes() {
		return
	}
	n.SignOwn(func(e *aggregate.Extreme) {
		e.Node = node
		e.Proof = b.cfg.Seal.Sign(node, ExtremeMessage(b.cfg.Query, *e))
	})
}

// configureTopK sets topCfg from the binding's plan and Config.
func (b *Binding) configureTopK() {
	cfg := topk.DefaultConfig(b.plan.K, b.cfg.Rand, b.cfg.Sampler)
	cfg.Reserve = query.TopKReserve(b.plan.K)
	cfg.SeenAfter = CoveredRounds
	if b.plan.Reserve != nil {
		cfg.StableK = min(b.plan.Reserve.N, b.plan.K)
	}
	cfg.Alive = b.cfg.Alive
	if ex, idOf := b.cfg.Excluded, b.cfg.IDOf; ex != nil && idOf != nil {
		alive := cfg.Alive
		cfg.Alive = func(node string) bool { return (alive == nil || alive(node)) && !ex(idOf(node)) }
	}
	if b.entries != nil {
		entries := b.entries
		cfg.ValidEntry = entries.check
	}
	cfg.CoverageBits = b.cfg.Coverage
	b.topCfg[1] = cfg
	b.topCfg[1].Origin = true
	cfg.Sampler = avoiding{cfg.Sampler, b.cfg.Asker}
	b.topCfg[0] = cfg
}

// NewTopK returns a top-k core with rec's entry; origin marks the asker's.
func (b *Binding) NewTopK(rec query.Record, origin bool) (*topk.Node, error) {
	cfg := &b.topCfg[0]
	if origin {
		cfg = &b.topCfg[1]
	}
	self := b.cfg.Self
	if self == "" {
		self = rec["node"].Str
	}
	own := Entry(b.plan, rec)
	if own != nil && b.cfg.Seal != nil {
		own.Proof = b.cfg.Seal.Sign(own.Node, EntryMessage(b.cfg.Query, own))
	}
	return topk.NewAs(cfg, self, own)
}

// New returns this peer's instance of the plan, with its contribution from
// its record rec. origin marks the asking peer, which alone applies the
// convergence rule.
func (b *Binding) New(origin bool, rec query.Record) (*Instance, error) {
	return b.NewRows(origin, []query.Record{rec})
}

// NewRows is New for a peer with several rows (FROM leases: a row per
// lease in its ledger, possibly none). Only aggregates take several.
func (b *Binding) NewRows(origin bool, recs []query.Record) (*Instance, error) {
	q := &Instance{b: b, origin: origin}
	bb := b
	if b.cfg.Excluded == nil {
		// The instance keeps its own set of excluded peers: the cores ask
		// it. (A binding per instance, as the runtime makes them.)
		q.excluded = map[peer.ID]bool{}
		c := *b
		c.cfg.Excluded = q.isExcluded
		c.peerCfg.Excluded, c.origCfg.Excluded = q.isExcluded, q.isExcluded
		if c.protocol == TopK {
			c.configureTopK() // its Alive asks the instance's set
		}
		bb = &c
	}
	switch b.protocol {
	case Aggregate:
		cfg := &bb.peerCfg
		if origin {
			cfg = &bb.origCfg
		}
		rows := make([]aggregate.Contribution, len(recs))
		for i, r := range recs {
			rows[i] = Contribution(b.plan, r)
		}
		q.agg = new(aggregate.Node)
		if err := q.agg.InitRowsAs(cfg, b.cfg.SelfID, rows); err != nil {
			return nil, err
		}
		name := b.cfg.Self
		if name == "" && len(recs) > 0 {
			name = recs[0]["node"].Str
		}
		b.signExtremes(q.agg, name)
	case TopK:
		if len(recs) != 1 {
			return nil, fmt.Errorf("run: a top-k takes one row a peer, not %d", len(recs))
		}
		var err error
		if q.top, err = bb.NewTopK(recs[0], origin); err != nil {
			return nil, err
		}
	}
	if origin {
		q.asking = &asking{rule: NewRule(b.plan, b.cfg.Peers)}
	}
	return q, nil
}

// Attach makes q, in place, the instance of a core the caller built with
// InitAggregate or NewTopK: the simulator keeps a million instances in one
// block beside its block of cores. origin marks the asking peer's (built
// with origin set too). Exactly one of agg and top is set, matching the
// plan's protocol. Without Config.Excluded the instance keeps its own set
// of excluded peers, made at the first exclusion.
func (b *Binding) Attach(q *Instance, origin bool, agg *aggregate.Node, top *topk.Node) error {
	if (agg != nil) != (b.protocol == Aggregate) || (top != nil) != (b.protocol == TopK) {
		return errors.New("run: Attach needs the plan's core")
	}
	*q = Instance{b: b, agg: agg, top: top, origin: origin}
	if origin {
		q.asking = &asking{rule: NewRule(b.plan, b.cfg.Peers)}
	}
	return nil
}

// Instance is one peer's part in one running plan: the core it runs on,
// the plan's binding to it, its round count and, at the asking peer, the
// convergence rule. It does no I/O, reads no clock and starts no
// goroutine; it is not safe for concurrent use.
//
// It is small (the simulator keeps one per peer, a million in one block):
// what only the asker needs is behind asking, nil at the other peers.
type Instance struct {
	b   *Binding
	agg *aggregate.Node
	top *topk.Node
	*asking
	// excluded are the peers left out of the query at this peer (nil when
	// the binding's Config.Excluded decides).
	excluded map[peer.ID]bool
	round    int
	origin   bool
	final    bool
	// held: see Hold.
	held bool
	// holders counts the peers this one announced the query to that held
	// it already (FoundHolder), up to StopAnnouncing.
	holders uint8
}

// asking is the asking peer's part of an Instance: the rule and what it
// counts.
type asking struct {
	rule *Rule
	last Verdict // the rule's, at the last Report
	// quiet counts the asker's rounds in which its core received nothing
	// (heard, the count it had received at the last round): they do not
	// spend the budget, up to MaxRoundsFactor times it.
	quiet, heard int
	// excludedAt is the round of the last exclusion that changed
	// something (0: none).
	excludedAt int
	// confirmFrom is the round the rule first fired since the last
	// exclusion (0: it has not), and confirmedAt the exclusions then;
	// exclusions counts the members left out: see Report.
	confirmFrom, confirmedAt, exclusions int
	// implausible are, for a top-k, the nodes whose own signed entry
	// this asker refused for a claim its observations contradict, and
	// why (Implausible); chased how many rounds Straggler named each
	// straggler.
	implausible map[string]string
	chased      map[string]int
}

func (q *Instance) isExcluded(p peer.ID) bool { return q.excluded[p] }

// Exclude leaves peers out of the query at this peer — they were lost
// while it ran: the flows with them are undone (the others' mass is
// conserved without theirs), the extremes they witnessed and their top-k
// entries dropped, and their later messages refused. It reports whether
// any was new. For an instance whose binding decides exclusion itself
// (Config.Excluded), it applies that set to the cores and reports false.
func (q *Instance) Exclude(ids ...peer.ID) bool {
	added := false
	if q.excluded == nil && q.b.cfg.Excluded == nil {
		q.excluded = map[peer.ID]bool{} // an attached core: undo, nothing to refuse with
	}
	if q.excluded != nil {
		for _, id := range ids {
			if !q.excluded[id] {
				q.excluded[id], added = true, true
			}
		}
		if !added {
			return false
		}
	}
	dead := q.b.cfg.Excluded
	if q.excluded != nil {
		dead = q.isExcluded
	}
	if q.agg != nil {
		q.agg.RemovePeers(dead)
	} else {
		q.top.Prune()
	}
	if q.asking != nil {
		q.excludedAt = max(q.round, 1)
		q.exclusions += len(ids)
	}
	return added
}

// regrace is how many rounds an asker keeps running after an exclusion
// that changed its state, budget or not: undoing the flows with a lost
// member that held much of the originator's mass (one of its first
// partners) puts that mass back where it came from, and it must spread and
// mix again — the rounds of a query over n peers, less the slack.
func (b *Binding) regrace() int {
	n := max(b.cfg.Peers, 2)
	return query.PushRounds(n) + query.ExpectedRounds(b.plan.Kind, n, b.plan.Accuracy)
}

// MaxRoundsFactor bounds, as a multiple of the budget, the rounds an asker
// runs when rounds pass without a message reaching it (a loaded machine, a
// slow network): those do not count against the budget, up to this.
const MaxRoundsFactor = 2

// HoldFactor bounds, as a multiple of MaxRoundsFactor times the budget, the
// rounds an instance may run while its answer is held (Hold) and a peer
// keeps a query it joined.
const HoldFactor = 4

// Protocol is the core the instance runs on.
func (q *Instance) Protocol() Protocol { return q.b.protocol }

// Plan is the instance's plan.
func (q *Instance) Plan() *query.Plan { return q.b.plan }

// Round is the query's round at this peer.
func (q *Instance) Round() int { return q.round }

// JoinAt sets the round of a peer that joins a running query, from the
// sender's round, so that every peer reaches the budget at about the same
// time.
func (q *Instance) JoinAt(round int) { q.round = min(max(round, 0), q.b.budget) }

// Budget is the round budget.
func (q *Instance) Budget() int { return q.b.budget }

// Spent says the asker's budget is spent: as many rounds as the budget in
// which a message reached it, and the rounds to mix again (regrace) since
// its last exclusion — or MaxRoundsFactor times the budget in all. At
// another peer: the budget's rounds have passed.
func (q *Instance) Spent() bool {
	if q.asking == nil {
		return q.round >= q.b.budget
	}
	switch {
	case q.round >= MaxRoundsFactor*q.b.budget:
		return true
	case q.round-q.quiet < q.b.budget:
		return false
	}
	return q.excludedAt == 0 || q.round >= q.excludedAt+q.b.regrace()
}

// received is how many messages the core has received.
func (q *Instance) received() int {
	if q.agg != nil {
		return int(q.agg.Stats().Received)
	}
	return q.top.Stats().Received
}

// RuleWhy says, at the asking peer, which of the rule's conditions did
// not hold at the last Report (Rule.Why); "" elsewhere.
func (q *Instance) RuleWhy() string {
	if q.asking == nil {
		return ""
	}
	return q.rule.Why()
}

// Origin says this is the asking peer's instance.
func (q *Instance) Origin() bool { return q.origin }

// Final says the asking peer's answer is final: the rule fired, the
// budget is spent, or Stop was called.
func (q *Instance) Final() bool { return q.final }

// Converged reports whether the convergence rule held at the last
// Report (with its confirmation): false for an answer that ran to its
// budget still moving — what a peer sending made-up flows causes.
func (q *Instance) Converged() bool { return q.last.Converged }

// Stop makes the answer final as it stands (a timeout, a cancellation).
func (q *Instance) Stop() { q.final = true }

// Hold keeps a spent budget from making the answer final while on: only
// convergence does. The runtime holds an answer, within Spent's rounds
// and a short time, until a member lost before or as it started can have
// been found and left out: on a fast network the rounds outrun the
// probes, which take time, not rounds.
func (q *Instance) Hold(on bool) { q.held = on }

// Aggregate and TopK expose the core to drivers that move decoded messages
// (the simulator); exactly one is non-nil.
func (q *Instance) Aggregate() *aggregate.Node { return q.agg }

// TopK: see Aggregate.
func (q *Instance) TopK() *topk.Node { return q.top }

// Tick runs one round.
func (q *Instance) Tick() {
	if q.asking != nil && q.round > 0 {
		if r := q.received(); r == q.heard {
			q.quiet++
		} else {
			q.heard = r
		}
	}
	q.round++
	if q.agg != nil {
		q.agg.Tick()
	} else {
		q.top.Tick()
	}
}

// Announce is how many peers, beyond the round's partner, this peer
// should tell of the query this round (after Tick): Config.Fanout while
// the query is young — its first query.SpreadRoundsFanout rounds, by
// which it has reached every peer with high probability — else 0. The
// driver sends each the plan alone, to peers not known to hold it; a
// peer that learns a query from one joins as from any request.
//
// Why every young round and not only the first after joining: a peer
// that tells others only when it learns makes the news grow fast at
// first, but the last peers are then found only by each round's one
// exchange, ln n rounds at the end (Pittel 1987); with every informed
// peer telling Fanout more, an unaware peer is missed with probability
// e^-(Fanout+1) a round, and the end takes ln n/(Fanout+1).
//
// A peer also stops once StopAnnouncing of the peers it told held the
// query already (FoundHolder): rumor mongering with feedback and a
// counter (Demers et al., "Epidemic algorithms for replicated database
// maintenance", 1987). By then most of the peers it could draw hold the
// query, and telling them again is the bulk of what a fanout sends; the
// few left hear of it from the peers that joined last, which have not
// stopped, and from each round's exchanges. A peer that says it held the
// query when it did not (a liar) can only make an announcer stop sooner:
// the query then spreads by the exchanges, as without a fanout.
func (q *Instance) Announce() int {
	if q.b.spread == 0 || q.round > q.b.spread || q.final || q.holders >= StopAnnouncing {
		return 0
	}
	return q.b.cfg.Fanout
}

// Young says whether the query is still spreading at this peer: in its
// first query.SpreadRoundsFanout rounds for its peers and fanout (with no
// fanout, a push rumor's), and not final. A driver hands it over to a
// peer that pulls only then: past them every peer holds it with high
// probability, and one that joins takes a place for a query about to end.
func (q *Instance) Young() bool {
	return !q.final && q.round <= q.b.young
}

// FoundHolder notes that a peer this one announced the query to held it
// already (the driver learns it from that peer's reply): after
// StopAnnouncing of them, Announce says 0.
func (q *Instance) FoundHolder() {
	if q.holders < StopAnnouncing {
		q.holders++
	}
}

// StopAnnouncing is how many peers found already holding a query make a
// peer stop announcing it. peerq sim, `SELECT COUNT(*) FROM peers WHERE
// mem_free >= 4GB`, fanout 3, medians of 9 seeds (BENCHMARKS.md, issue
// 24): at 200, 1,000 and 10^4 peers, bytes a peer until the rule's final
// answer 3,401, 4,179 and 4,757 without stopping, 2,945, 3,042 and 3,164
// after 4, 2,280, 2,377 and 2,412 after 2, with the answer final in the
// same round (±1). After 2 the last peers hear of the query later (every
// one of 20,000 from round 15, not 10): after 4 it is 11, as
// query.SpreadRoundsFanout (what EXPLAIN says) has it.
const StopAnnouncing = 4

// Message is a core's message, not yet encoded: an aggregate's or a
// top-k's.
type Message interface {
	// Size is the length of its encoding.
	Size() int
	// Encode appends its encoding to b.
	Encode(b []byte) []byte
}

// Messages returns what the core has to send, not encoded, for a driver
// that encodes them straight into what carries them (the runtime's
// batch): a top-k's list went through two copies, and with a signature
// an entry those copies were most of what the defence allocated. The
// messages hold the core's buffers: they must be encoded before the
// core's next call.
func (q *Instance) Messages() []peer.Envelope[Message] {
	var out []peer.Envelope[Message]
	if q.agg != nil {
		for _, e := range q.agg.Outbox() {
			out = append(out, peer.Envelope[Message]{To: e.To, Msg: e.Msg})
		}
		return out
	}
	for _, e := range q.top.Outbox() {
		out = append(out, peer.Envelope[Message]{To: e.To, Msg: e.Msg})
	}
	return out
}

// Step decodes a message from a peer and hands it to the core; a malformed
// one, or one the core refuses (ErrRefused: not of the plan's shape or,
// with Config.CheckReceived, holding a value out of bounds), is refused
// with an error and changes nothing.
func (q *Instance) Step(from peer.ID, msg []byte) error {
	if q.agg != nil {
		m, err := aggregate.Decode(msg)
		if err != nil {
			return err
		}
		return q.StepAggregate(from, m)
	}
	m, err := q.top.Decode(msg)
	if err != nil {
		return err
	}
	return q.StepTopK(from, m)
}

// StepAggregate is Step for a message already decoded: a driver that moves
// messages without encoding them (the simulator) takes the runtime's path
// from there, its checks included. Its reply is in the core's Outbox.
func (q *Instance) StepAggregate(from peer.ID, m *aggregate.Message) error {
	before := q.agg.Rejected()
	q.agg.Step(from, m)
	if q.agg.Rejected() != before {
		return ErrRefused
	}
	return nil
}

// StepTopK: see StepAggregate.
func (q *Instance) StepTopK(from peer.ID, m *topk.Message) error {
	before := q.top.Rejected()
	q.top.Step(from, m)
	if q.top.Rejected() != before {
		if q.asking != nil {
			q.judge(q.top.Refused())
		}
		return ErrRefused
	}
	return nil
}

// judge notes, at the asking peer, a top-k entry its core refused whose
// node signed a claim about itself that this peer's observations
// contradict (ErrImplausible: a reliability above what it saw): that
// node lied, by its own signature, whoever passed the entry on. Nothing
// from the network can make the asker judge a node that did not sign
// such a claim — an entry unsigned or signed by another key is a
// forgery, not its node's word, and is not judged here.
func (q *Instance) judge(e *topk.Entry, err error) {
	c := q.b.entries
	if e == nil || c == nil || c.seal == nil || q.implausible[e.Node] != "" || !errors.Is(err, ErrImplausible) {
		return
	}
	// The check refused the claim before it reached the signature: verify
	// it now. Nothing of a forgery is remembered: keyed by its proof, one
	// altered copy of a liar's entry under the liar's own proof would keep
	// the real entry from being judged.
	if c.seal.Verify(e.Node, EntryMessage(c.query, e), e.Proof) != nil {
		return
	}
	if q.implausible == nil {
		q.implausible = map[string]string{}
	}
	q.implausible[e.Node] = strings.TrimPrefix(strings.TrimPrefix(err.Error(), ErrImplausible.Error()), ": ")
}

// Implausible are the nodes this asking peer found claiming, in entries
// they signed, more than its observations allow (a reliability above
// what it saw them up), with why: their entries are not in its answer
// (its core refuses them), and it does not wait for them to be covered
// (Report). The runtime leaves them out of the query and names them in
// the answer, as it does the members it lost. The verdict is this
// peer's own: a member it saw down longer than it was (this peer cut off
// from it) is left out, named, where others would have counted it. Nil
// at other peers; the map is the instance's, to read, not to change.
func (q *Instance) Implausible() map[string]string {
	if q.asking == nil {
		return nil
	}
	return q.implausible
}

// MaxStragglers is how many of the live members a top-k's coverage
// filter lacks the asker goes after in turn (Straggler): the first
// found, in the order Config.Members gives them; as those are heard or
// judged, the next. MaxChases is how many rounds Straggler names one
// straggler: one that the asker met and that neither sent its entry nor
// a claim the asker refuses (it answers without its own name, or not at
// all) is not named again, so that no member can hold the asker's
// partner — every query's at this peer — for the rest of a statement.
// (A round in which the driver did not meet it, found lost or still
// waiting on it, counts too: such a member is chased less, never more.)
const (
	MaxStragglers = 64
	MaxChases     = 3
)

// Straggler is, at the asking peer of a top-k whose list has not changed
// for CoveredRounds rounds and whose coverage filter lacks some of the
// live members (Config.Members, which leaves out the members the query
// does: Report waits for every one it lists), one of the first
// MaxStragglers of those not yet chased MaxChases times, one a round in
// turn; false otherwise. The driver makes it the round's partner: the
// asker then hears from it directly — its entry, or a claim about itself
// the asker refuses (Implausible) — rather than wait for gossip to bring
// an entry that every other peer refuses and so never passes on. Without
// it, one member in a cluster of 10 to a few thousand (a coverage
// filter's) claiming more reliability than the others saw kept a top-k
// by reliability from its final answer until the budget ran out:
// partial, after 5 times the rounds.
func (q *Instance) Straggler() (string, bool) {
	if q.asking == nil || q.top == nil || q.final || !q.top.Coverage() || q.b.cfg.Members == nil || q.top.Unchanged() < CoveredRounds {
		return "", false
	}
	var missing []string
	for _, m := range q.b.cfg.Members() {
		if q.top.Covers(m) || q.implausible[m] != "" || m == q.b.cfg.Self || q.chased[m] >= MaxChases {
			continue
		}
		if missing = append(missing, m); len(missing) == MaxStragglers {
			break
		}
	}
	if len(missing) == 0 {
		return "", false
	}
	m := missing[q.round%len(missing)]
	if q.chased == nil {
		q.chased = map[string]int{}
	}
	q.chased[m]++
	return m, true
}

// RemovePeers tells the instance of peers the failure detector declared
// dead: an aggregate undoes their flows, a top-k prunes their entries
// (through Config.Alive).
func (q *Instance) RemovePeers(dead func(peer.ID) bool) {
	if q.agg != nil {
		q.agg.RemovePeers(dead)
	} else {
		q.top.Prune()
	}
}

// Answer reads the current answer; peers is the membership's count of live
// peers, by which sums are scaled (unless Config.NFromGossip). It leaves
// the rule alone: call Report once a round. Its Meta says how far along
// it is: Rounds, Budget, Participants (for aggregates, the gossip estimate
// of the peers whose mass reached the answer, 1 / the origin's mass: a
// cross-check of the membership's count; 0 otherwise), the rule's last
// verdict (ErrEstimate and Converged, at the asking peer) and Final (the
// answer will not change: converged, out of rounds, or stopped). On an
// error the answer has its Meta and no rows.
func (q *Instance) Answer(peers int) (*answer.Answer, error) {
	a, _, err := q.answer(peers)
	return a, err
}

func (q *Instance) answer(peers int) (*answer.Answer, aggregate.Estimate, error) {
	a := &answer.Answer{Meta: &answer.Meta{Rounds: q.round, Budget: q.b.budget, Final: q.final}}
	if q.asking != nil {
		a.ErrEstimate, a.Converged = q.last.ErrEstimate, q.last.Converged
	}
	var est aggregate.Estimate
	if q.agg != nil {
		est = q.agg.Estimate()
		n := float64(peers)
		if q.b.cfg.NFromGossip {
			n = 0
		}
		groups, err := GroupResults(q.b.plan, est, n)
		if err != nil {
			return a, est, err
		}
		res := query.Finalize(q.b.plan, groups)
		a.Columns, a.Rows = res.Columns, res.Rows
		if est.Origin > 0 {
			a.Participants = 1 / est.Origin
		}
		return a, est, nil
	}
	var live []*topk.Entry
	alive := q.b.cfg.Alive
	for _, e := range q.top.Top() {
		if alive == nil || alive(e.Node) {
			live = append(live, e)
		}
	}
	r, err := TopResult(q.b.plan, live)
	if err != nil {
		return a, est, err
	}
	a.Columns, a.Rows, a.Nodes = r.Columns, r.Rows, r.Nodes
	return a, est, nil
}

// Report is the asking peer's end of a round: it reads the answer, applies
// the convergence rule, and makes the answer final once the rule fires or
// the budget is spent. peers is the membership's count of live peers,
// suspects how many of them the asker could not reach (the rule waits for
// them). Call it once a round, after Tick.
func (q *Instance) Report(peers, suspects int) (*answer.Answer, error) {
	if q.asking == nil {
		return nil, errors.New("run: Report is for the asking peer's instance")
	}
	a, est, err := q.answer(peers)
	if err != nil {
		return a, err
	}
	o := Observation{Round: q.round, Peers: peers, Suspects: suspects}
	if q.agg != nil {
		o.Received = int(q.agg.Stats().Received)
		o.Cells, o.Sketches = Cells(q.b.plan, a, est)
		o.Participants = a.Participants
	} else {
		o.Received = q.top.Stats().Received
		o.Stable, o.Unchanged = q.top.Stable(), q.top.Unchanged()
		if q.top.Coverage() && q.b.cfg.Members != nil {
			o.Coverage, o.Covered = true, true
			for _, m := range q.b.cfg.Members() {
				if !q.top.Covers(m) && q.implausible[m] == "" {
					o.Covered = false
					break
				}
			}
		}
	}
	v := q.rule.Observe(o)
	// Confirmation: the rule must hold for half the spread rounds, with no
	// exclusion heard meanwhile, before the answer is final. A member left
	// out by some peers — their flows with it undone — and not yet by the
	// asker (the news is on its way: about log2 N rounds) leaves the
	// answer over neither population while the asker's own estimate looks
	// calm: at 40 peers and a loss every 2.5 s, one answer in 400 was 1–2.4%
	// off, called converged (TestChurnSchedule); 0 in 720 with this.
	// Only an aggregate (a top-k's list is exact once covered) that has
	// left members out pays it, and the count
	// restarts only for exclusions that could move the answer past half
	// its accuracy (Blocking): at 10^4 peers with one-hour sessions one is
	// left out every few rounds, each 1/10^4 of the mass.
	if v.Converged && q.excludedAt > 0 && q.agg != nil {
		if q.confirmFrom == 0 || Blocking(q.exclusions-q.confirmedAt, peers, q.b.plan.Accuracy) > 0 {
			q.confirmFrom, q.confirmedAt = q.round, q.exclusions
		}
		v.Converged = q.round >= q.confirmFrom+query.PushRounds(max(q.b.cfg.Peers, 2))/2
	} else if !v.Converged {
		q.confirmFrom = 0
	}
	a.ErrEstimate, a.Converged = v.ErrEstimate, v.Converged
	// An answer whose rule fired and is being confirmed is not cut short
	// by the budget: partial at the budget, it would be a right answer
	// flagged for want of two or three rounds (a member cut off for 1.5 s
	// of a 3.8 s budget ended so about once in eight runs,
	// TestExcludedAliveMemberStops). The hard bound still ends it.
	bounded := q.round < MaxRoundsFactor*q.b.budget
	confirming := q.confirmFrom != 0 && !v.Converged && bounded
	// Likewise an answer already within half its accuracy that the rule
	// is counting calm rounds for gets the rest of them, CalmRounds at
	// most past the budget: 200 concurrent queries from 8 askers on a
	// 30–90 ms network in 200 ms rounds ended one asker's 25 (one shared
	// exchange each round) "calm 2 of 3" at the budget about once in 300
	// runs (TestManyAskersConverge).
	calming := !v.Converged && q.rule.Calming() && q.round-q.quiet < q.b.budget+CalmRounds && bounded
	if v.Converged || q.Spent() && !q.held && !confirming && !calming {
		q.final = true
	}
	a.Final = q.final
	q.last = v
	return a, nil
}

// avoiding samples as its sampler does, except one peer: drawing it is a
// round without an exchange.
type avoiding struct {
	peer.Sampler
	not peer.ID
}

func (a avoiding) Sample(r *rand.Rand) (peer.ID, bool) {
	p, ok := a.Sampler.Sample(r)
	return p, ok && p != a.not
}

// CheckSample checks an aggregate's answer as it stands against sampled
// members' records (sample.go), n being the live members its sums are
// scaled by and the sample was drawn from. A top-k has no check: its
// entries are each signed by their node.
func (q *Instance) CheckSample(sample []query.Record, n int, c SampleCheck) (SampleVerdict, error) {
	if q.agg == nil {
		return SampleVerdict{}, errors.New("run: only an aggregate's answer is checked against a sample")
	}
	groups, err := GroupResults(q.b.plan, q.agg.Estimate(), float64(n))
	if err != nil {
		return SampleVerdict{}, err
	}
	v := CheckSample(q.b.plan, groups, sample, float64(n), c)
	// A sampled claim that the others' observations refute names the
	// liar and what it claims: the reason to give even where the figures
	// disagree too (they do when the claim bent the answer, by as much as
	// the gossip had converged: a test over a 10-peer cluster got one
	// reason or the other by the goroutines' order).
	if liar, why := overclaimed(q.b.plan, sample, q.b.cfg.Reliability); liar != "" {
		v.Contested, v.Reason, v.Liar = true, why, liar
	}
	return v, nil
}

// CheckLedgerSample checks an aggregate FROM leases against sampled
// members' ledger rows, their hours as their owners' receipts show them
// (CheckLedgerSample in sample.go); members is how many answered.
func (q *Instance) CheckLedgerSample(rows []query.Record, members, n int, c SampleCheck) (SampleVerdict, error) {
	if q.agg == nil || q.b.plan.Table != query.TableLeases {
		return SampleVerdict{}, errors.New("run: only an aggregate FROM leases is checked against sampled ledgers")
	}
	groups, err := GroupResults(q.b.plan, q.agg.Estimate(), float64(n))
	if err != nil {
		return SampleVerdict{}, err
	}
	return CheckLedgerSample(q.b.plan, groups, rows, members, float64(n), c), nil
}
