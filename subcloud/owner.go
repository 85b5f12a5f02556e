package subcloud

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// The owner's side of one subcloud as a pure state machine, beside the
// Claimer it drives: the RESERVE's claims and the record of their result,
// the renewals at a third of the term, the members' checks, the repair of
// the members it loses (each an all-or-nothing claim of what is missing,
// spares first), the take-back of former members that return (or their
// release once they are replaced), RESIZE TO, EXTEND FOR with its
// roll-back, RELEASE, and giving the name up when a majority of its keepers
// hold it for another owner. Events go in (Tick, MemberLost, MemberBack,
// Reply, Candidates, Persisted, NameVote, and the user's Resize, Extend,
// Release, Cancel), actions come out (Ready). It reads no clock, does no
// I/O and starts no goroutine.

// ErrUnreachable marks a Reply error that says the peer cannot be reached
// — nothing served its address (the connection was refused: its process
// is gone), or the caller's own probes have found it silent for long (a
// process that hangs) — as opposed to a reply that did not come in time.
// The caller wraps its transport's error with it (node:
// network.ErrNoEndpoint; prober.silentFor).
var ErrUnreachable = errors.New("subcloud: the peer is unreachable")

// MaxOwnerMembers bounds a subcloud's size on the owner's side (RESERVE
// and RESIZE; the same bound as query.MaxReserve).
const MaxOwnerMembers = 1000

// OwnerConfig is how an owner keeps its subclouds. DefaultOwnerConfig has
// the values node uses.
type OwnerConfig struct {
	// MaintainEvery is how often the owner settles the former members that
	// are back and starts the repairs that are due, and how often a claim
	// that runs renews what it holds (node: LeaseTick). A loss or a return
	// runs it at once; shorter only retries sooner.
	MaintainEvery time.Duration
	// CheckEvery is how often the owner asks every member whether it still
	// holds its lease (OpCheck; node: MemberCheck). A refusal loses the
	// member at once, without waiting for the failure detector or the
	// lease's expiry; each check is one exchange per member.
	CheckEvery time.Duration
	// CheckMisses is how many checks in a row a member's address must
	// refuse (ErrUnreachable) before it is lost. A check that times out
	// counts for nothing: loss does that too. (The node's Env also says
	// ErrUnreachable of a member its probes have found silent for long.)
	CheckMisses int
	// RepairBackoff is how long the owner waits before it searches again
	// after a repair that found nobody.
	RepairBackoff time.Duration
	// RepairSearches is how many searches one repair runs (its spares, if
	// any, count as one more); Searches the same for RESERVE and RESIZE.
	RepairSearches, Searches int
	// SearchBackoff bounds the random wait before each search after a
	// claim's first (node: 2×Round), so that racing owners stop colliding.
	SearchBackoff time.Duration
	// ReleaseRetry is the first wait before a release (or an EXTEND's
	// roll-back) that got no answer is sent again; the waits double up to
	// ReleaseRetryMax. A release is sent until its peer answers or the
	// lease has passed (the peer's lease has lapsed by then).
	ReleaseRetry, ReleaseRetryMax time.Duration
	// ReleaseTries is how many times a release the user waits for (a
	// RESERVE that fails, RELEASE, a RESIZE down) is sent before its answer
	// says which peers did not answer; they are released in the background
	// after. One try was too few: a member cut off for a moment, or one
	// that cannot yet check the owner's signature, is a failure for the
	// user that a second try a moment later does not have.
	ReleaseTries int
	// ResizeWait is how long a RESIZE that reached its size, then lost
	// members, waits for their repair before it answers what it has; a
	// RESERVE that lost members as it was recorded, the same.
	ResizeWait time.Duration
	// KeepRepairTimes is how many repair times (loss to replacement) are
	// kept for RepairTimes.
	KeepRepairTimes int
}

// DefaultOwnerConfig is node's: a 1 s lease tick, 500 ms member checks.
func DefaultOwnerConfig() OwnerConfig {
	return OwnerConfig{MaintainEvery: time.Second, CheckEvery: 500 * time.Millisecond, CheckMisses: 1,
		RepairBackoff: 2 * time.Second, RepairSearches: 2, Searches: DefaultSearches, SearchBackoff: 200 * time.Millisecond,
		ReleaseRetry: 500 * time.Millisecond, ReleaseRetryMax: time.Minute, ReleaseTries: 3, ResizeWait: 10 * time.Second,
		KeepRepairTimes: 1000}
}

func (c OwnerConfig) valid() error {
	if c.MaintainEvery <= 0 || c.CheckEvery < 0 || c.CheckMisses < 1 || c.RepairBackoff < 0 || c.RepairSearches < 1 ||
		c.Searches < 1 || c.SearchBackoff < 0 || c.ReleaseRetry <= 0 || c.ReleaseRetryMax < c.ReleaseRetry ||
		c.ReleaseTries < 1 || c.ResizeWait < 0 || c.KeepRepairTimes < 0 {
		return fmt.Errorf("subcloud: owner config out of range: %+v", c)
	}
	return nil
}

// Reserve is what a RESERVE asks of a new Owner.
type Reserve struct {
	Subcloud string
	// Owner is this peer's name; Token its secret for the subcloud (random,
	// at least 16 bytes); Key the RESERVE's idempotency key.
	Owner, Token, Key string
	// N members; AtLeast, if set, accepts fewer (down to AtLeast) once the
	// candidates run out.
	N, AtLeast int
	Lease      time.Duration
	// Plan is the RESERVE's plan, encoded: repairs and RESIZE search with
	// it (the caller decodes it; the machine only keeps it).
	Plan     []byte
	NoRepair bool
	// Keepers are the keepers that granted the name before the RESERVE
	// (the caller registers the name first).
	Keepers []string
}

// Span is a member's metered span: from its claim to the last renewal it
// answered.
type Span struct{ Start, Until time.Time }

// OwnerState is what an owner keeps on disk about one subcloud
// (EncodeOwned): enough for a restarted owner to renew, repair, resize and
// release it.
type OwnerState struct {
	Subcloud, Token, Key string
	Lease                time.Duration
	// Members and the expiry each last confirmed (on the owner's clock).
	Members map[string]time.Time
	// Order is the members best first: the rank the search gave them,
	// replacements after. RESIZE releases from the end.
	Order []string
	// Plan is the RESERVE's plan, encoded; nil: the subcloud cannot search
	// (restored from a table without it), so it is neither repaired nor
	// grown.
	Plan     []byte
	Target   int
	NoRepair bool
	// Since is the subcloud's creation (its first RESERVE), sent with every
	// claim.
	Since      time.Time
	Repairs    int
	LastRepair time.Time
	// Dropped are former members that may still hold the lease until the
	// time given: each is taken back or released when it is seen again.
	Dropped map[string]time.Time
	// Episodes and Metered are the owner's account (peer-hours): open spans
	// and the closed ones' total.
	Episodes map[string]Span
	Metered  time.Duration
	// Keepers are every peer that granted the name, now or before:
	// RELEASE gives it up at each.
	Keepers []string
}

func (s OwnerState) clone() OwnerState {
	c := s
	c.Members = cloneTimes(s.Members)
	c.Dropped = cloneTimes(s.Dropped)
	c.Order = append([]string(nil), s.Order...)
	c.Plan = append([]byte(nil), s.Plan...)
	if s.Plan == nil {
		c.Plan = nil
	}
	c.Keepers = append([]string(nil), s.Keepers...)
	c.Episodes = make(map[string]Span, len(s.Episodes))
	for k, v := range s.Episodes {
		c.Episodes[k] = v
	}
	return c
}

func cloneTimes(m map[string]time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// check is the bounds every state must keep, restored or decoded.
func (s OwnerState) check() error {
	names := func(what string, n int, limit int) error {
		if n > limit {
			return fmt.Errorf("%w: subcloud %q: %d %s, at most %d", ErrMalformedOwned, s.Subcloud, n, what, limit)
		}
		return nil
	}
	c := Claim{Subcloud: s.Subcloud, Owner: "-", Token: s.Token, Key: s.Key, For: s.Lease}
	if err := c.valid(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedOwned, err)
	}
	for _, err := range []error{
		names("members", len(s.Members), MaxOwnerMembers), names("ranked names", len(s.Order), 2*MaxOwnerMembers),
		names("dropped members", len(s.Dropped), 4*MaxOwnerMembers), names("spans", len(s.Episodes), 4*MaxOwnerMembers),
		names("keepers", len(s.Keepers), 4*KeeperCount),
	} {
		if err != nil {
			return err
		}
	}
	switch {
	case s.Target < 0 || s.Target > MaxOwnerMembers || s.Repairs < 0 || s.Metered < 0 || len(s.Plan) > MaxPlanBytes:
		return fmt.Errorf("%w: subcloud %q: a figure out of range", ErrMalformedOwned, s.Subcloud)
	}
	bad := func(m string) bool { return m == "" || len(m) > MaxNameBytes }
	for m := range s.Members {
		if bad(m) {
			return fmt.Errorf("%w: subcloud %q: a bad member name", ErrMalformedOwned, s.Subcloud)
		}
	}
	for m := range s.Dropped {
		if bad(m) {
			return fmt.Errorf("%w: subcloud %q: a bad member name", ErrMalformedOwned, s.Subcloud)
		}
	}
	for m, sp := range s.Episodes {
		if bad(m) || sp.Until.Before(sp.Start) {
			return fmt.Errorf("%w: subcloud %q: a bad account entry", ErrMalformedOwned, s.Subcloud)
		}
	}
	for _, m := range append(append([]string(nil), s.Order...), s.Keepers...) {
		if bad(m) {
			return fmt.Errorf("%w: subcloud %q: a bad peer name", ErrMalformedOwned, s.Subcloud)
		}
	}
	return nil
}

// Phase is where an Owner's subcloud is.
type Phase uint8

// The phases.
const (
	// PhaseReserving: the RESERVE claims; nothing is owned yet.
	PhaseReserving Phase = iota + 1
	// PhaseHeld: owned, renewed and repaired (the RESERVE's record may
	// still be on its way to the disk).
	PhaseHeld
	// PhaseGone: released, given up, or a RESERVE that failed. Releases
	// may still be under way: drop the Owner once Idle.
	PhaseGone
)

func (p Phase) String() string {
	switch p {
	case PhaseReserving:
		return "reserving"
	case PhaseHeld:
		return "held"
	case PhaseGone:
		return "gone"
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// Change is a change the user asked for.
type Change uint8

// The changes.
const (
	ChangeReserve Change = iota + 1
	ChangeResize
	ChangeExtend
	ChangeRelease
)

func (c Change) String() string {
	switch c {
	case ChangeReserve:
		return "reserve"
	case ChangeResize:
		return "resize"
	case ChangeExtend:
		return "extend"
	case ChangeRelease:
		return "release"
	}
	return fmt.Sprintf("Change(%d)", uint8(c))
}

// Outcome is how a change ended.
type Outcome uint8

// The outcomes; node maps them to api codes.
const (
	// OutcomeDone: it happened and is on disk.
	OutcomeDone Outcome = iota + 1
	// OutcomeIncomplete: it happened and is on disk, but some peers did not
	// answer their release (named), or a RESIZE lost members while it
	// answered (api.CodeIncomplete).
	OutcomeIncomplete
	// OutcomeRefused: not now, or not possible (api.CodeStatement).
	OutcomeRefused
	// OutcomeNotEnough: not enough free peers (api.CodeNotEnoughPeers).
	OutcomeNotEnough
	// OutcomeStorage: the owner could not record it (api.CodeStorage):
	// nothing changed.
	OutcomeStorage
	// OutcomeFailed: anything else; nothing changed.
	OutcomeFailed
)

func (o Outcome) String() string {
	switch o {
	case OutcomeDone:
		return "done"
	case OutcomeIncomplete:
		return "incomplete"
	case OutcomeRefused:
		return "refused"
	case OutcomeNotEnough:
		return "not-enough"
	case OutcomeStorage:
		return "storage"
	case OutcomeFailed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// ChangeError is why a change did not (wholly) happen, as a sentence for
// the user. For OutcomeStorage, What, Cause and Then are the parts node's
// storage error is made of.
type ChangeError struct {
	Change  Change
	Outcome Outcome
	// What is the statement ("RESIZE big TO 5"); Then what became of it
	// ("nothing changed").
	What, Then string
	Cause      error
	msg        string
}

func (e *ChangeError) Error() string { return e.msg }

// Unwrap is the cause: errors.Is(err, ErrNotEnoughPeers) holds for a
// claim that found too few.
func (e *ChangeError) Unwrap() error { return e.Cause }

// Report is a change's answer to the user.
type Report struct {
	Change  Change
	Outcome Outcome
	// Err is nil when OutcomeDone, else a *ChangeError.
	Err error
	// Freed counts the members let go (RELEASE, RESIZE down); Unanswered
	// names those that did not answer, sorted (for a RESERVE done: the
	// peers it claimed and does not keep that did not answer their
	// release).
	Freed      int
	Unanswered []string
}

// ActionKind is what an Action asks of the caller.
type ActionKind uint8

// The actions.
const (
	// ActSend: send Req to To (the caller sets Owner, Target and Boot and
	// signs it) and give its answer, or the error when none came, to
	// Reply(ID).
	ActSend ActionKind = iota + 1
	// ActSearch: run the subcloud's search (its Plan over the free peers)
	// and give its nodes, best first, to Candidates(ID).
	ActSearch
	// ActPersist: write State (nil: remove the subcloud from the owner's
	// table) durably and answer Persisted(ID). For is the user's change it
	// records, if any.
	ActPersist
	// ActRegisterName: register the name with its keepers as they are now,
	// for Req.For, and give the vote to NameVote(ID).
	ActRegisterName
	// ActReleaseName: give the name up at Peers (and at its keepers as
	// they are now), waiting for their answers.
	ActReleaseName
	// ActReport: answer the user's change.
	ActReport
	// ActLog: tell the operator Text.
	ActLog
)

func (k ActionKind) String() string {
	switch k {
	case ActSend:
		return "send"
	case ActSearch:
		return "search"
	case ActPersist:
		return "persist"
	case ActRegisterName:
		return "register-name"
	case ActReleaseName:
		return "release-name"
	case ActReport:
		return "report"
	case ActLog:
		return "log"
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Action is one thing the caller must do.
type Action struct {
	Kind ActionKind
	// ID names the answer (Reply, Candidates, Persisted, NameVote).
	ID    uint64
	To    string
	Req   Request
	State *OwnerState
	For   Change
	Peers []string
	// Report is ActReport's.
	Report *Report
	Text   string
}

// Vote is what the keepers of the name said to one registration.
type Vote struct {
	// Keepers are the keepers asked; Granted those that granted it.
	Keepers, Granted []string
	// Rival is the other owner most keepers named, Rivals how many did.
	Rival  string
	Rivals int
}

func (v Vote) held() bool { return len(v.Granted) >= Majority(len(v.Keepers)) }
func (v Vote) lost() bool { return len(v.Keepers) > 0 && v.Rivals >= Majority(len(v.Keepers)) }

// purpose is why a request was sent.
type purpose uint8

const (
	pRenew       purpose = iota + 1 // the renewal round
	pCheck                          // a member check
	pTakeBack                       // a former member that is back, renewed
	pReleaseBack                    // a former member that is back and replaced
	pClaim                          // a claim job's claim
	pHeldRenew                      // a claim job renewing what it holds
	pRelease                        // a release (retried)
	pExtend                         // an EXTEND's renewal
	pRollback                       // an EXTEND's roll-back (retried)
)

type sent struct {
	peer string
	p    purpose
	at   time.Time // when it was sent: expiries are read from it
	req  Request
}

// retry is a request sent until its peer answers, or until the lease it
// is about has lapsed by itself.
type retry struct {
	peer  string
	req   Request
	p     purpose
	until time.Time
	wait  time.Duration
	next  time.Time // when to send again; zero while in flight
	id    uint64    // the try in flight, 0 none
	tries int
	// groups are the answers waiting for this release.
	groups []*releaseGroup
}

// groupKind is what a group of releases answers.
type groupKind uint8

const (
	groupConfirm groupKind = iota + 1 // RESERVE failed, or a grown RESIZE not recorded: up to ReleaseTries each
	groupShrink                       // RESIZE down: up to ReleaseTries each; the silent are dropped
	groupRelease                      // RELEASE: up to ReleaseTries each; the silent are released in the background
)

// releaseGroup is releases a report waits for.
type releaseGroup struct {
	kind groupKind
	// limit is how many tries a group sends a peer before it stops
	// waiting for it.
	limit            int
	left, freed      int
	silent, volatile []string
	done             func(now time.Time, g *releaseGroup)
}

// jobKind is what a claim job is for.
type jobKind uint8

const (
	jobReserve jobKind = iota + 1
	jobRepair
	jobGrow
)

// claimJob drives a Claimer: a search whenever it needs
// candidates, its claims, the leases it holds renewed while it runs, and
// its releases sent only once every claim in flight is back.
type claimJob struct {
	kind      jobKind
	c         *Claimer
	cfg       ClaimerConfig
	first     []string
	held      map[string]time.Time
	rank      map[string]int
	refused   map[string]bool
	last      []string
	claims    int             // claims in flight
	renewing  map[string]bool // held renewals in flight
	free      []string        // the Claimer's releases, sent at the end
	searchID  uint64
	searchAt  time.Time // a search waits until then (zero: none due)
	lastRenew time.Time
}

// opPhase is where a user's change is.
type opPhase uint8

const (
	opQueued    opPhase = iota + 1 // EXTEND: waits for renewals in flight
	opClaiming                     // RESERVE, RESIZE up: the claim job runs
	opRenewing                     // EXTEND: its renewals are in flight
	opRecording                    // the change waits for its persist
	opReleasing                    // releases the answer waits for
	opAwaiting                     // RESIZE, RESERVE: reached, waits for repairs of what it lost meanwhile
)

type userOp struct {
	change Change
	phase  opPhase
	what   string // the statement, for its sentences
	seq    uint64 // the persist that records it
	record bool   // the next persist records it
	// RESIZE
	size, have, oldTarget int
	gone                  map[string]time.Time
	oldOrder              []string
	got                   []string
	deadline              time.Time
	// EXTEND
	d, old  time.Duration
	waiting int
	renewed map[string]time.Time
	unsure  map[string]time.Time // no answer: it may have renewed, until then at least
	failed  map[string]bool
	before  map[string]time.Time
	// need is the fewest members a RESERVE's or a RESIZE's yes may name
	// (N, AT LEAST's m, or the new size). RESERVE: free are the peers it claimed and does not keep; freeing
	// while their releases are unsettled; recorded once the subcloud is
	// on disk meanwhile; stray are the freed that did not answer.
	need              int
	cancelled         error // the user stopped waiting while it was recorded
	free              []string
	freeing, recorded bool
	stray             []string
}

// busy is whether the change keeps repairs and take-backs off.
func (u *userOp) busy() bool {
	if u == nil {
		return false
	}
	switch u.change {
	case ChangeResize:
		return u.phase != opAwaiting
	case ChangeExtend:
		return true
	}
	return false
}

// Owner is the owner's side of one subcloud as a pure state machine: what
// node/owner drives for each subcloud a peer owns, with every decision made
// here and every exchange, search, write and log line handed to the caller
// as an Action. It is not safe for concurrent use.
//
//	o, _ := subcloud.NewOwner(cfg, spec, now, rng)   // after the name is held
//	for {
//		for _, a := range o.Ready() { do a; its answer → o.Reply / Candidates / Persisted / NameVote }
//		on a timer:             o.Tick(now)
//		on Serf's failed/left:  o.MemberLost(now, peer, why); joined: o.MemberBack(now, peer)
//		on ALTER / RELEASE:     o.Resize / o.Extend / o.Release
//	}
type Owner struct {
	cfg   OwnerConfig
	rng   *rand.Rand
	owner string
	phase Phase
	st    OwnerState

	// Volatile, as in node: rebuilt after a restart.
	renewed   time.Time
	lastCheck time.Time
	lastMaint time.Time
	retryAt   time.Time
	// shortSaid is when the owner last logged that a repair found no
	// replacement, and shortAt how many members it had then: it says so
	// again when that count changes or after shortEvery, not at every
	// retry (every RepairBackoff, 2 s by default, filled an agent's log).
	shortSaid   time.Time
	shortAt     int
	misses      map[string]int
	spares      []string
	lostAt      []time.Time
	repairTimes []time.Duration
	away        map[string]bool // members and dropped ones the membership says are gone
	// confirmed is each dropped member's last confirmed expiry: one past
	// it is released when seen again, not taken back (its lease has
	// likely lapsed; a take-back would hold up the repair on a peer that
	// does not answer).
	confirmed map[string]time.Time

	nextID   uint64
	sent     map[uint64]sent
	round    int             // renewals of the round in flight
	roundBad bool            // the round lost a member
	checks   int             // checks in flight
	checkBad bool            // the checks lost a member
	back     map[string]bool // take-backs and releases of returned members in flight
	takes    int             // take-backs in flight
	nameID   uint64
	job      *claimJob
	op       *userOp // RESERVE, RESIZE or EXTEND
	leaving  *userOp // RELEASE
	releases map[string]*retry
	rollback map[string]*retry

	persistSeq uint64 // the last persist asked
	persisting uint64 // the persist in flight, 0 none
	dirty      bool
	recorded   bool // a persist with the subcloud in it was asked

	out []Action
}

// NewOwner starts a RESERVE, once the caller holds the name (its keepers
// in spec.Keepers): its first action is the search.
func NewOwner(cfg OwnerConfig, spec Reserve, now time.Time, r *rand.Rand) (*Owner, error) {
	if err := cfg.valid(); err != nil {
		return nil, err
	}
	if spec.N > MaxOwnerMembers || len(spec.Plan) > MaxPlanBytes {
		return nil, fmt.Errorf("%w: RESERVE %d (at most %d), a plan of %d bytes", ErrBadClaim, spec.N, MaxOwnerMembers, len(spec.Plan))
	}
	ccfg := ClaimerConfig{Subcloud: spec.Subcloud, Owner: spec.Owner, Token: spec.Token, Key: spec.Key, N: spec.N,
		AtLeast: spec.AtLeast, Lease: spec.Lease, Since: now, Searches: cfg.Searches}
	c, err := NewClaimer(ccfg)
	if err != nil {
		return nil, err
	}
	o := newOwner(cfg, spec.Owner, r)
	o.phase = PhaseReserving
	o.st = OwnerState{Subcloud: spec.Subcloud, Token: spec.Token, Key: spec.Key, Lease: spec.Lease, Plan: spec.Plan,
		NoRepair: spec.NoRepair, Since: now, Members: map[string]time.Time{}, Dropped: map[string]time.Time{},
		Episodes: map[string]Span{}, Keepers: mergeSorted(nil, spec.Keepers)}
	o.op = &userOp{change: ChangeReserve, phase: opClaiming, what: "RESERVE " + spec.Subcloud, need: spec.N}
	if spec.AtLeast > 0 {
		o.op.need = spec.AtLeast
	}
	o.job = o.newJob(jobReserve, c, ccfg, nil)
	o.drive(now)
	return o, nil
}

// Restore is an Owner of a subcloud restored from the owner's table (a
// restart): it renews at once. The caller then tells it which of its
// former members (Dropped) the membership does not show (MemberLost), so
// that it settles only those that are back.
func Restore(cfg OwnerConfig, owner string, st OwnerState, r *rand.Rand) (*Owner, error) {
	if err := cfg.valid(); err != nil {
		return nil, err
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	if owner == "" || len(owner) > MaxNameBytes {
		return nil, fmt.Errorf("%w: owner %q", ErrBadClaim, owner)
	}
	o := newOwner(cfg, owner, r)
	o.phase = PhaseHeld
	o.st = st.clone()
	if o.st.Members == nil {
		o.st.Members = map[string]time.Time{}
	}
	if o.st.Dropped == nil {
		o.st.Dropped = map[string]time.Time{}
	}
	if o.st.Target == 0 {
		o.st.Target = len(o.st.Members)
	}
	o.recorded = true
	return o, nil
}

func newOwner(cfg OwnerConfig, owner string, r *rand.Rand) *Owner {
	if r == nil {
		r = rand.New(rand.NewPCG(1, 2))
	}
	return &Owner{cfg: cfg, rng: r, owner: owner, misses: map[string]int{}, away: map[string]bool{}, confirmed: map[string]time.Time{},
		sent: map[uint64]sent{},
		back: map[string]bool{}, releases: map[string]*retry{}, rollback: map[string]*retry{}}
}

// Ready returns the actions to carry out, in order, and forgets them.
func (o *Owner) Ready() []Action {
	out := o.out
	o.out = nil
	return out
}

// Phase is where the subcloud is.
func (o *Owner) Phase() Phase { return o.phase }

// Subcloud is the subcloud's name.
func (o *Owner) Subcloud() string { return o.st.Subcloud }

// Token is the subcloud's token (an OpAsk names it).
func (o *Owner) Token() string { return o.st.Token }

// Key is the RESERVE's idempotency key.
func (o *Owner) Key() string { return o.st.Key }

// Lease is the term the members are renewed for.
func (o *Owner) Lease() time.Duration { return o.st.Lease }

// Target is the size the owner keeps the subcloud at.
func (o *Owner) Target() int { return o.st.Target }

// Short is how many members the subcloud lacks: lost and not (yet)
// replaced. A NO REPAIR subcloud stays short.
func (o *Owner) Short() int {
	if o.phase != PhaseHeld {
		return 0
	}
	return max(o.st.Target-len(o.st.Members), 0)
}

// Members are the members, best first.
func (o *Owner) Members() []string { return o.ranked() }

// Expiry is the expiry member m last confirmed.
func (o *Owner) Expiry(m string) (time.Time, bool) {
	t, ok := o.st.Members[m]
	return t, ok
}

// Dropped are the former members that may still hold the lease, sorted.
func (o *Owner) Dropped() []string { return sortedTimes(o.st.Dropped) }

// Plan is the RESERVE's plan, encoded (nil: none).
func (o *Owner) Plan() []byte { return o.st.Plan }

// Busy is whether a repair, RESIZE or EXTEND is under way (node's busy):
// another ALTER is refused meanwhile.
func (o *Owner) Busy() bool { return o.job != nil || o.op.busy() }

// State is the subcloud's durable state as it is now.
func (o *Owner) State() OwnerState {
	s := o.st.clone()
	s.Order = o.ranked()
	return s
}

// RepairTimes are how long the last repairs took from loss to
// replacement, oldest first.
func (o *Owner) RepairTimes() []time.Duration { return append([]time.Duration(nil), o.repairTimes...) }

// Holds is the owner's answer to a member that asks about its lease
// (OpAsk with this subcloud's token): held while it is a member or a
// former one not yet settled, or while a claim runs (a peer it claimed may
// not be counted yet); not held once the subcloud is gone.
func (o *Owner) Holds(peer string) bool {
	switch o.phase {
	case PhaseReserving:
		return true
	case PhaseHeld:
		_, m := o.st.Members[peer]
		_, d := o.st.Dropped[peer]
		return m || d || o.Busy()
	}
	return false
}

// Info is the owner's account of the subcloud (OpInfo).
func (o *Owner) Info(now time.Time) Info {
	i := Info{Subcloud: o.st.Subcloud, Owner: o.owner, Target: o.st.Target, Repairs: o.st.Repairs, Members: o.ranked()}
	if !o.st.LastRepair.IsZero() {
		i.LastRepair = max(now.Sub(o.st.LastRepair), time.Nanosecond)
	}
	first := true
	for _, exp := range o.st.Members {
		if left := max(exp.Sub(now), 0); first || left < i.Expiry {
			i.Expiry, first = left, false
		}
	}
	d := o.st.Metered
	for _, e := range o.st.Episodes {
		d += e.Until.Sub(e.Start)
	}
	i.PeerHours = d.Hours()
	return i
}

// Idle is whether the Owner has nothing left to do: gone, with every
// release answered or given up and its last persist answered. The caller
// may then drop it.
func (o *Owner) Idle() bool {
	return o.phase == PhaseGone && o.job == nil && len(o.releases) == 0 && len(o.rollback) == 0 && o.persisting == 0 &&
		!o.dirty && len(o.sent) == 0 && o.op == nil && o.leaving == nil
}

// Wake is the earliest time at which Tick has something to do (the zero
// time: nothing timed). The caller may sleep until then, or tick at a
// fixed rate no slower than MaintainEvery and CheckEvery.
func (o *Owner) Wake() time.Time {
	var w time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (w.IsZero() || t.Before(w)) {
			w = t
		}
	}
	// What waits for answers (a renewal round, checks, a finished claim's
	// last replies) has no time of its own: its answers are steps.
	if o.phase == PhaseHeld {
		if o.round == 0 && !o.op.blocksRenewals() {
			at(o.renewed.Add(o.st.Lease / 3))
		}
		at(o.lastMaint.Add(o.cfg.MaintainEvery))
		if o.cfg.CheckEvery > 0 && o.checks == 0 && len(o.st.Members) > 0 {
			at(o.lastCheck.Add(o.cfg.CheckEvery))
		}
		if o.op != nil && o.op.phase == opAwaiting {
			at(o.op.deadline)
		}
	}
	if j := o.job; j != nil {
		at(j.searchAt)
		if j.c.State() != Done {
			at(j.lastRenew.Add(o.cfg.MaintainEvery))
		}
	}
	for _, m := range []map[string]*retry{o.releases, o.rollback} {
		for _, r := range m {
			at(r.next)
		}
	}
	return w
}

// ---- events ----

// Tick is time passing: renewals at a third of the term, member checks,
// maintenance (take-backs, releases of replaced members, repairs), a
// running claim's renewals and searches, retried releases and roll-backs,
// and a RESIZE's wait for its size.
func (o *Owner) Tick(now time.Time) {
	defer o.settle(now)
	if o.phase == PhaseHeld {
		if o.round == 0 && !o.op.blocksRenewals() && !now.Before(o.renewed.Add(o.st.Lease/3)) {
			o.startRound(now)
		}
		if o.cfg.CheckEvery > 0 && o.checks == 0 && len(o.st.Members) > 0 && !now.Before(o.lastCheck.Add(o.cfg.CheckEvery)) {
			o.startChecks(now)
		}
		if !now.Before(o.lastMaint.Add(o.cfg.MaintainEvery)) {
			o.maintain(now)
		}
	}
	if j := o.job; j != nil {
		if !now.Before(j.lastRenew.Add(o.cfg.MaintainEvery)) {
			o.renewHeld(now)
		}
		if !j.searchAt.IsZero() && !now.Before(j.searchAt) {
			j.searchAt = time.Time{}
			o.search(now)
		}
		o.drive(now)
	}
	o.retries(now, o.releases)
	if !o.op.blocksRenewals() {
		// Not beside an EXTEND: a roll-back landing after its renewal
		// would shorten the term it is about to record.
		o.retries(now, o.rollback)
	}
}

// blocksRenewals: an EXTEND renews every member itself; a renewal round
// beside it could land after it and shorten a lease the owner counts as
// extended, or after its roll-back and lengthen it again.
func (u *userOp) blocksRenewals() bool { return u != nil && u.change == ChangeExtend }

// MemberLost is the membership saying peer failed or left (why: "it
// failed", "it left"). A member is dropped at once and replaced; it may
// still hold the lease (a partition), so it is taken back or released if
// it returns.
func (o *Owner) MemberLost(now time.Time, peer, why string) {
	defer o.settle(now)
	_, member := o.st.Members[peer]
	_, dropped := o.st.Dropped[peer]
	if !member && !dropped {
		return
	}
	o.away[peer] = true
	if member && o.phase == PhaseHeld {
		o.drop(peer, o.st.Members[peer], now)
		o.logf("subcloud %s: lost member %s (%s); %d of %d left", o.st.Subcloud, peer, why, len(o.st.Members), o.st.Target)
		o.dirty = true
		o.maintain(now)
	}
}

// MemberBack is the membership saying peer joined (or rejoined): a former
// member is settled now.
func (o *Owner) MemberBack(now time.Time, peer string) {
	defer o.settle(now)
	if !o.away[peer] {
		return
	}
	delete(o.away, peer)
	if _, dropped := o.st.Dropped[peer]; dropped && o.phase == PhaseHeld {
		o.maintain(now)
	}
}

// Reply is the answer to the request sent with id, or err when none came
// (wrapping ErrUnreachable when nothing served the peer's address).
func (o *Owner) Reply(now time.Time, id uint64, rep Reply, err error) {
	s, ok := o.sent[id]
	if !ok {
		return // not ours, or answered already
	}
	defer o.settle(now)
	delete(o.sent, id)
	if req := s.req; (req.Op == OpRenew || req.Op == OpClaim) && (err != nil || rep.OK) {
		// Taken (or maybe taken) by a peer that is a former member by
		// now: it may hold the lease until now+term.
		o.mayHold(s.peer, now.Add(req.For))
	}
	switch s.p {
	case pRenew:
		o.renewReplied(now, s, rep, err)
	case pCheck:
		o.checkReplied(now, s, rep, err)
	case pTakeBack:
		o.takeBackReplied(now, s, rep, err)
	case pReleaseBack:
		o.releaseBackReplied(now, s, rep, err)
	case pClaim:
		o.claimReplied(now, s, rep, err)
	case pHeldRenew:
		o.heldRenewReplied(now, s, rep, err)
	case pRelease:
		o.releaseReplied(now, s, rep, err)
	case pExtend:
		o.extendReplied(now, s, rep, err)
	case pRollback:
		o.rollbackReplied(now, s, rep, err)
	}
}

// Candidates is the answer to the search asked with id: the nodes, best
// first, or err if it failed (the claim then fails).
func (o *Owner) Candidates(now time.Time, id uint64, nodes []string, err error) {
	j := o.job
	if j == nil || j.searchID != id || id == 0 {
		return
	}
	defer o.settle(now)
	j.searchID = 0
	if err != nil {
		j.c.Abort(err)
		o.drive(now)
		return
	}
	for _, p := range nodes {
		if _, ok := j.rank[p]; !ok {
			j.rank[p] = len(j.rank)
		}
	}
	o.renewHeld(now)
	j.last = nodes
	j.c.Candidates(o.claimable(nodes))
	o.drive(now)
}

// claimable drops from a search the peers this owner must not claim: its
// members and dropped members (a stale view shows them free; a claim with
// the same token would count one twice), and peers a release of its is
// still on its way to (it could overtake the claim).
func (o *Owner) claimable(nodes []string) []string {
	out := make([]string, 0, len(nodes))
	for _, p := range nodes {
		_, m := o.st.Members[p]
		_, d := o.st.Dropped[p]
		if !m && !d && o.releases[p] == nil {
			out = append(out, p)
		}
	}
	return out
}

// Persisted is the answer to the persist asked with seq: nil once the
// state it carried is on disk.
func (o *Owner) Persisted(now time.Time, seq uint64, err error) {
	if seq == 0 || seq != o.persisting {
		return
	}
	defer o.settle(now)
	o.persisting = 0
	var ops []*userOp
	for _, u := range []*userOp{o.leaving, o.op} {
		if u != nil && u.seq == seq && u.phase == opRecording {
			ops = append(ops, u)
		}
	}
	if err != nil && len(ops) == 0 {
		o.logf("cannot store subcloud %s: %v (a restart would forget the last change; its members would ask, and be released)", o.st.Subcloud, err)
	}
	for _, u := range ops {
		if err != nil {
			o.recordFailed(now, u, err)
		} else {
			o.recordedOK(now, u)
		}
	}
}

// NameVote is the keepers' answer to the registration asked with id. If a
// majority of them hold the name for another owner, it is that owner's:
// this one gives its subcloud up and releases its members (a split
// membership let two RESERVEs both win).
func (o *Owner) NameVote(now time.Time, id uint64, v Vote) {
	if id == 0 || id != o.nameID {
		return
	}
	defer o.settle(now)
	o.nameID = 0
	if o.phase != PhaseHeld {
		return
	}
	if k := mergeSorted(o.st.Keepers, v.Granted); len(k) != len(o.st.Keepers) {
		o.st.Keepers, o.dirty = k, true
	}
	switch {
	case v.lost() && o.leaving == nil:
		members := append(o.ranked(), sortedTimes(o.st.Dropped)...)
		o.logf("subcloud %s: %d of its %d keepers hold the name for %s: giving it up, releasing this peer's %d member(s)",
			o.st.Subcloud, v.Rivals, len(v.Keepers), v.Rival, len(members))
		o.gone(now, fmt.Sprintf("the name is held by %s (%d of its %d keepers): the subcloud was given up", v.Rival, v.Rivals, len(v.Keepers)))
		for _, m := range members {
			o.releaseLater(now, m)
		}
		o.clearMembers()
		o.emit(Action{Kind: ActReleaseName, Peers: append([]string(nil), v.Granted...)})
	case !v.held() && v.Rival != "":
		o.logf("subcloud %s: the name is contested: %d of its %d keepers hold it for this peer, %d for %s",
			o.st.Subcloud, len(v.Granted), len(v.Keepers), v.Rivals, v.Rival)
	}
}

// Cancel ends the user's wait: a RESERVE's claim is aborted (it fails and
// releases what it holds); a RESERVE or a RESIZE waiting for repairs
// answers now, incomplete (its change is on disk); a RESERVE being
// recorded answers as soon as it is, without waiting for repairs. Other
// changes run to their end.
func (o *Owner) Cancel(now time.Time, err error) {
	defer o.settle(now)
	u := o.op
	switch {
	case u == nil:
	case u.change == ChangeReserve && u.phase == opClaiming && o.job != nil:
		o.job.c.Abort(err)
		o.drive(now)
	case u.phase == opAwaiting:
		// A RESERVE or a RESIZE on disk, short of members lost since: the
		// change happened; not a failure.
		o.op = nil
		o.answerShort(u, err)
	case u.change == ChangeReserve:
		u.cancelled = err // recording: it will not wait for repairs then
	}
}

// Resize is RESIZE TO size: it grows by claiming the next candidates (all
// or nothing) or shrinks by releasing the lowest-ranked members, and
// answers once the new size is on disk.
func (o *Owner) Resize(now time.Time, size int) {
	defer o.settle(now)
	u := &userOp{change: ChangeResize, size: size, need: size, what: fmt.Sprintf("RESIZE %s TO %d", o.st.Subcloud, size)}
	if !o.alterable(u) {
		return
	}
	if size < 1 || size > MaxOwnerMembers {
		o.refuse(u, "%s: a size from 1 to %d", u.what, MaxOwnerMembers)
		return
	}
	o.op = u
	u.have, u.oldTarget = len(o.st.Members), o.st.Target
	if size <= u.have {
		// Shrink: the lowest-ranked go, once the smaller size is on disk.
		ranked := o.ranked()
		u.gone, u.oldOrder = map[string]time.Time{}, o.st.Order
		for _, m := range ranked[size:] {
			u.gone[m] = o.st.Members[m]
			delete(o.st.Members, m)
		}
		o.st.Order, o.st.Target = ranked[:size], size
		o.recordOp(u)
		return
	}
	if o.st.Plan == nil {
		o.op = nil
		o.finish(u, OutcomeFailed, nil, "", "%s: the subcloud was restored from a table without its search; nothing changed", u.what)
		return
	}
	u.phase = opClaiming
	cfg := ClaimerConfig{Subcloud: o.st.Subcloud, Owner: o.owner, Token: o.st.Token, Key: o.st.Key, N: size - u.have,
		Lease: o.st.Lease, Since: o.st.Since, Searches: o.cfg.Searches}
	o.startJob(now, jobGrow, cfg)
}

// Extend is EXTEND FOR d: every member renewed for d from now, all or
// nothing (if one cannot be renewed, those that were are renewed back to
// the old term), answered once the new term is on disk.
func (o *Owner) Extend(now time.Time, d time.Duration) {
	defer o.settle(now)
	u := &userOp{change: ChangeExtend, d: d, what: "EXTEND " + o.st.Subcloud}
	if !o.alterable(u) {
		return
	}
	if d < MinLease || d > MaxLease {
		o.refuse(u, "%s: a term from %v to %v", u.what, MinLease, MaxLease)
		return
	}
	o.op = u
	u.phase = opQueued
	o.advanceOp(now)
}

// Release is RELEASE: the owner forgets the subcloud on disk first (a
// failure changes nothing), then frees every member, waits for their
// answers, and gives the name up.
func (o *Owner) Release(now time.Time) {
	defer o.settle(now)
	u := &userOp{change: ChangeRelease, what: "RELEASE " + o.st.Subcloud}
	switch {
	case o.phase == PhaseReserving || o.op != nil && o.op.change == ChangeReserve:
		// Until the RESERVE is answered (its record may yet fail).
		o.refuse(u, "a RESERVE of %s is still running at this agent", o.st.Subcloud)
		return
	case o.phase == PhaseGone:
		o.refuse(u, "unknown subcloud %s: this agent no longer owns it", o.st.Subcloud)
		return
	case o.leaving != nil:
		o.refuse(u, "a RELEASE of %s is already running", o.st.Subcloud)
		return
	}
	o.leaving = u
	o.recordOp(u)
}

// alterable refuses an ALTER while the subcloud is not held or is busy.
func (o *Owner) alterable(u *userOp) bool {
	switch {
	case o.phase == PhaseReserving || o.op != nil && o.op.change == ChangeReserve:
		o.refuse(u, "a RESERVE of %s is still running at this agent", o.st.Subcloud)
	case o.phase != PhaseHeld || o.leaving != nil:
		o.refuse(u, "subcloud %s is not held by this agent (reserving or released)", o.st.Subcloud)
	case o.Busy() || o.op != nil:
		o.refuse(u, "subcloud %s is being repaired or resized; try again in a moment", o.st.Subcloud)
	default:
		return true
	}
	return false
}

// ---- renewals, checks, maintenance ----

func (o *Owner) startRound(now time.Time) {
	o.roundBad = false
	for _, m := range sortedTimes(o.st.Members) {
		o.send(now, m, pRenew, Request{Op: OpRenew, Subcloud: o.st.Subcloud, Token: o.st.Token, For: o.st.Lease})
		o.round++
	}
	if o.round == 0 {
		o.roundEnded(now)
	}
}

// renewReplied: a member that refuses is dropped; one that cannot be
// reached is kept until its last confirmed expiry (it may come back).
func (o *Owner) renewReplied(now time.Time, s sent, rep Reply, err error) {
	o.round--
	exp, still := o.st.Members[s.peer]
	switch {
	case !still || o.phase != PhaseHeld:
		// dropped meanwhile (it failed, or RESIZE let it go)
	case err == nil && rep.OK:
		o.st.Members[s.peer] = expiry(rep, s.at)
		o.renewedAt(s.peer, now)
	case err == nil, !now.Before(exp):
		o.drop(s.peer, exp, now)
		if err == nil && holdsNone(rep) {
			o.forget(s.peer)
		}
		o.roundBad = true
		why := "its lease lapsed unrenewed"
		if err == nil {
			why = fmt.Sprintf("it refused the renewal: %v", rep.Err())
		}
		o.logf("subcloud %s: lost member %s (%s); %d of %d left", o.st.Subcloud, s.peer, why, len(o.st.Members), o.st.Target)
	}
	if o.round == 0 {
		o.roundEnded(now)
	}
}

func (o *Owner) roundEnded(now time.Time) {
	if o.phase != PhaseHeld {
		return
	}
	o.renewed = now
	o.dirty = true
	if o.roundBad {
		o.maintain(now)
	}
	if o.nameID == 0 {
		o.nameID = o.id()
		o.emit(Action{Kind: ActRegisterName, ID: o.nameID, Req: Request{Op: OpName, Subcloud: o.st.Subcloud, For: o.st.Lease}})
	}
}

func (o *Owner) startChecks(now time.Time) {
	o.lastCheck, o.checkBad = now, false
	for _, m := range sortedTimes(o.st.Members) {
		o.send(now, m, pCheck, Request{Op: OpCheck, Subcloud: o.st.Subcloud, Token: o.st.Token})
		o.checks++
	}
}

// checkReplied: a member that refuses is lost; so is one whose address
// refuses the connection CheckMisses times in a row. A check that times
// out counts for nothing: a member cut off is the failure detector's to
// judge.
func (o *Owner) checkReplied(now time.Time, s sent, rep Reply, err error) {
	o.checks--
	exp, still := o.st.Members[s.peer]
	if still && o.phase == PhaseHeld {
		var why string
		switch {
		case err == nil && rep.OK:
			delete(o.misses, s.peer)
		case err == nil:
			why = fmt.Sprintf("it no longer holds the lease: %v", rep.Err())
		case !errors.Is(err, ErrUnreachable):
		default:
			if o.misses[s.peer]++; o.misses[s.peer] >= o.cfg.CheckMisses {
				why = fmt.Sprintf("%v (%d check(s) in a row)", err, o.misses[s.peer])
			}
		}
		if why != "" {
			delete(o.misses, s.peer)
			o.drop(s.peer, exp, now)
			if err == nil && holdsNone(rep) {
				o.forget(s.peer)
			}
			o.checkBad = true
			o.logf("subcloud %s: lost member %s (%s); %d of %d left", o.st.Subcloud, s.peer, why, len(o.st.Members), o.st.Target)
		}
	}
	if o.checks == 0 && o.checkBad {
		o.checkBad = false
		o.dirty = true
		o.maintain(now)
	}
}

// maintain settles the former members that are back — one the subcloud
// still lacks is taken back (its lease renewed), one it has replaced is
// released — and then starts the repair that is due.
func (o *Owner) maintain(now time.Time) {
	o.lastMaint = now
	if o.phase != PhaseHeld {
		return
	}
	busy := o.Busy() || o.leaving != nil
	short := o.room() - len(o.st.Members) - o.takes
	for _, m := range sortedTimes(o.st.Dropped) {
		switch exp := o.st.Dropped[m]; {
		case o.back[m]:
			// its take-back or release is in flight
		case !now.Before(exp):
			o.forget(m) // lapsed by itself
		case o.away[m] || busy:
			// not back; or a repair or RESIZE is claiming: settle it after
		case short > 0 && o.takeable(m, now):
			o.back[m] = true
			o.takes++
			short--
			o.send(now, m, pTakeBack, Request{Op: OpRenew, Subcloud: o.st.Subcloud, Token: o.st.Token, For: o.st.Lease})
		default:
			o.back[m] = true
			o.send(now, m, pReleaseBack, Request{Op: OpRelease, Subcloud: o.st.Subcloud, Token: o.st.Token})
		}
	}
	if len(o.st.Members) >= o.st.Target {
		o.lostAt = nil // nothing left to repair (taken back, or resized)
	}
	o.startRepair(now)
}

// takeable is whether a returned former member may still hold the lease
// it last confirmed (after a restart nothing says otherwise).
func (o *Owner) takeable(m string, now time.Time) bool {
	c, ok := o.confirmed[m]
	return !ok || now.Before(c)
}

// forget lets a former member go: it no longer holds the lease, or never
// will again.
func (o *Owner) forget(m string) {
	delete(o.st.Dropped, m)
	delete(o.confirmed, m)
	delete(o.away, m)
	o.closeEpisode(m)
}

// startRepair claims replacements for the members lost, once the
// take-backs are answered (one that answers is not missing any more).
func (o *Owner) startRepair(now time.Time) {
	if o.phase != PhaseHeld || o.st.NoRepair || o.st.Plan == nil || o.Busy() || o.leaving != nil || o.takes > 0 || len(o.st.Members) >= o.st.Target || now.Before(o.retryAt) {
		return
	}
	need := o.st.Target - len(o.st.Members)
	cfg := ClaimerConfig{Subcloud: o.st.Subcloud, Owner: o.owner, Token: o.st.Token, Key: o.st.Key, N: need, AtLeast: 1,
		Lease: o.st.Lease, Since: o.st.Since, Searches: o.cfg.RepairSearches}
	o.startJob(now, jobRepair, cfg)
}

// takeBackReplied: a former member that still holds the lease is a member
// again while the subcloud lacks one, and released if it was replaced
// meanwhile.
func (o *Owner) takeBackReplied(now time.Time, s sent, rep Reply, err error) {
	delete(o.back, s.peer)
	o.takes--
	if err != nil {
		o.startRepair(now)
		return // tried again at the next maintenance
	}
	_, still := o.st.Dropped[s.peer]
	delete(o.st.Dropped, s.peer)
	delete(o.confirmed, s.peer)
	delete(o.away, s.peer)
	switch {
	case rep.OK && o.phase == PhaseHeld && still && len(o.st.Members) < o.room():
		o.add([]string{s.peer}, map[string]time.Time{s.peer: expiry(rep, s.at)}, now)
		if len(o.lostAt) > 0 {
			o.lostAt = o.lostAt[1:]
		}
		o.logf("subcloud %s: %s came back holding its lease: a member again; %d of %d members", o.st.Subcloud, s.peer, len(o.st.Members), o.st.Target)
	case rep.OK:
		o.releaseLater(now, s.peer) // replaced meanwhile
		o.renewedAt(s.peer, now)
		o.closeEpisode(s.peer)
	default:
		o.closeEpisode(s.peer) // it no longer holds the lease: its span ended at its last renewal
	}
	o.dirty = true
	o.startRepair(now)
}

func (o *Owner) releaseBackReplied(now time.Time, s sent, rep Reply, err error) {
	delete(o.back, s.peer)
	if err != nil {
		return // tried again at the next maintenance
	}
	if rep.OK {
		o.renewedAt(s.peer, now) // metered to its release, as its ledger is
		o.logf("subcloud %s: released %s, a former member that came back after it was replaced", o.st.Subcloud, s.peer)
	}
	o.forget(s.peer)
	o.dirty = true
}

// ---- claim jobs: RESERVE, repairs, RESIZE up ----

func (o *Owner) newJob(kind jobKind, c *Claimer, cfg ClaimerConfig, first []string) *claimJob {
	return &claimJob{kind: kind, c: c, cfg: cfg, first: first, held: map[string]time.Time{}, rank: map[string]int{},
		refused: map[string]bool{}, renewing: map[string]bool{}}
}

// startJob runs a Claimer for more members of the subcloud, its spares
// first.
func (o *Owner) startJob(now time.Time, kind jobKind, cfg ClaimerConfig) {
	first := o.claimable(o.spares)
	if len(first) > 0 {
		cfg.Searches++ // the spares count as one
	}
	c, err := NewClaimer(cfg)
	if err != nil {
		// Only a broken state gets here (the config was checked when the
		// subcloud was reserved or restored).
		panic(fmt.Sprintf("subcloud: owner of %s: %v", o.st.Subcloud, err))
	}
	o.job = o.newJob(kind, c, cfg, first)
	o.job.lastRenew = now
	o.drive(now)
}

// drive sends the Claimer's claims, asks for candidates when it needs
// them, and ends the job once the Claimer is done and nothing of it is in
// flight (releases go out only then, so that none overtakes its claim).
func (o *Owner) drive(now time.Time) {
	for j := o.job; j != nil && o.job == j; {
		for _, m := range j.c.Outbox() {
			if m.Req.Op != OpClaim {
				j.free = append(j.free, m.To)
				continue
			}
			o.send(now, m.To, pClaim, m.Req)
			j.claims++
		}
		switch j.c.State() {
		case NeedCandidates:
			if j.searchID != 0 || !j.searchAt.IsZero() {
				return
			}
			if j.c.Searches() == 0 && len(j.first) > 0 {
				// Spares from the last search: claim at once, search only
				// when they run out.
				for _, p := range j.first {
					j.rank[p] = len(j.rank)
				}
				j.last = j.first
				j.c.Candidates(j.first)
				continue
			}
			if j.c.Searches() == 0 || o.cfg.SearchBackoff == 0 {
				o.search(now)
				return
			}
			// Back off a little before each search after the first, so
			// that racing owners stop colliding.
			j.searchAt = now.Add(time.Duration(o.rng.Int64N(int64(o.cfg.SearchBackoff))) + 1)
			return
		case Done:
			if j.claims > 0 || len(j.renewing) > 0 || j.searchID != 0 {
				return
			}
			o.job = nil
			o.jobEnded(now, j)
			return
		default:
			return
		}
	}
}

func (o *Owner) search(now time.Time) {
	j := o.job
	j.searchID = o.id()
	o.emit(Action{Kind: ActSearch, ID: j.searchID})
}

func (o *Owner) claimReplied(now time.Time, s sent, rep Reply, err error) {
	j := o.job
	if j == nil {
		return
	}
	j.claims--
	if err == nil && rep.OK {
		j.held[s.peer] = expiry(rep, s.at)
	} else {
		j.refused[s.peer] = true
	}
	j.c.Step(s.peer, rep, err)
	o.drive(now)
}

// renewHeld renews the leases a running claim holds before they run low:
// a claim that takes longer than a lease must not count peers that have
// lapsed, or been taken by another owner since.
func (o *Owner) renewHeld(now time.Time) {
	j := o.job
	if j == nil || j.c.State() == Done {
		return
	}
	j.lastRenew = now
	for _, m := range sortedTimes(j.held) {
		if j.held[m].Sub(now) < 2*j.cfg.Lease/3 && !j.renewing[m] {
			j.renewing[m] = true
			o.send(now, m, pHeldRenew, Request{Op: OpRenew, Subcloud: j.cfg.Subcloud, Token: j.cfg.Token, For: j.cfg.Lease})
		}
	}
}

func (o *Owner) heldRenewReplied(now time.Time, s sent, rep Reply, err error) {
	j := o.job
	if j == nil {
		return
	}
	delete(j.renewing, s.peer)
	exp, ok := j.held[s.peer]
	switch {
	case !ok:
	case err == nil && rep.OK:
		j.held[s.peer] = expiry(rep, s.at)
	case err == nil, !now.Before(exp):
		delete(j.held, s.peer)
		// Unless it said it holds none of ours, it may: a peer that
		// refused only the renewal (its disk, say) keeps what it granted,
		// and one whose answer was lost may have renewed for a whole term.
		// It is released unless claimed again.
		lets := err == nil && (rep.Refusal == RefusedNoLease || rep.Refusal == RefusedToken || rep.Refusal == RefusedHeld)
		j.c.Lost(s.peer, !lets)
	}
	o.drive(now)
}

// jobEnded takes a finished claim's result: the members in the rank the
// searches gave them, the spares of its last search, its releases.
func (o *Owner) jobEnded(now time.Time, j *claimJob) {
	members, err := j.c.Result()
	reached := len(members) // the size the claim reached, kept as the target
	var spares []string
	if err == nil {
		// A peer the Claimer counted whose renewal was refused after it
		// finished holds nothing: it is not a member.
		kept := members[:0]
		for _, m := range members {
			if _, ok := j.held[m]; ok {
				kept = append(kept, m)
			}
		}
		members = kept
		sort.SliceStable(members, func(a, b int) bool { return j.rank[members[a]] < j.rank[members[b]] })
		for _, p := range o.claimable(j.last) {
			if _, ok := j.held[p]; !ok && !j.refused[p] {
				spares = append(spares, p)
			}
		}
	}
	switch j.kind {
	case jobReserve:
		o.reserveEnded(now, j, members, spares, reached, err)
	case jobRepair:
		o.repairEnded(now, j, members, spares, err)
	case jobGrow:
		o.growEnded(now, j, members, spares, err)
	}
}

func (o *Owner) reserveEnded(now time.Time, j *claimJob, members, spares []string, reached int, err error) {
	u := o.op
	if err != nil {
		o.phase = PhaseGone
		o.emit(Action{Kind: ActReleaseName, Peers: append([]string(nil), o.st.Keepers...)})
		// The user is told that nothing stays reserved: make it so before
		// answering, or say which peers may still hold a lease.
		o.confirmRelease(now, j.free, func(now time.Time, g *releaseGroup) {
			o.op = nil
			out := OutcomeFailed
			if errors.Is(err, ErrNotEnoughPeers) {
				out = OutcomeNotEnough
			}
			if len(g.silent) > 0 {
				r := o.finish(u, out, err, "", "%v; %d peer(s) it claimed did not answer their release (%s): each is released when it answers, or its lease lapses within %v",
					err, len(g.silent), strings.Join(g.silent, ", "), o.st.Lease)
				r.Unanswered = append([]string(nil), g.silent...) // the peers that may still hold a lease
				return
			}
			o.finish(u, out, err, "", "%v; nothing stays reserved", err)
		})
		return
	}
	// The user is told which peers hold the lease: the others it claimed
	// (claims whose reply was lost) are released before that answer, as a
	// failed RESERVE's are, so that no peer outside the answer still holds
	// it; the release goes out beside the write, and those that do not
	// answer are named.
	u.free = j.free
	if len(j.free) > 0 {
		u.freeing = true
		o.confirmRelease(now, j.free, func(now time.Time, g *releaseGroup) {
			u.freeing, u.stray = false, append([]string(nil), g.silent...)
			sort.Strings(u.stray)
			if u.recorded && o.op == u {
				o.reserveDone(now, u)
			}
		})
	}
	o.phase = PhaseHeld
	o.add(members, j.held, now)
	// The target is the size the claim reached: a member whose renewal
	// was refused as it ended is repaired, not forgotten.
	o.st.Target, o.spares, o.renewed = reached, spares, now
	o.lastCheck, o.lastMaint = now, now
	// Yes only once the owner's record is on disk: a restart must not
	// forget a subcloud that was promised.
	o.recordOp(u)
}

// shortEvery is how often an owner whose repairs keep finding no
// replacement says so again while its size stays the same.
const shortEvery = time.Minute

func (o *Owner) repairEnded(now time.Time, j *claimJob, got, spares []string, err error) {
	o.dirty = true
	if o.phase != PhaseHeld {
		// Released (or given up) while it claimed: free what it got.
		for _, p := range append(got, j.free...) {
			o.releaseLater(now, p)
		}
		return
	}
	for _, p := range j.free {
		o.releaseLater(now, p)
	}
	o.spares = spares
	if err != nil {
		o.retryAt = now.Add(o.cfg.RepairBackoff)
		if n := len(o.st.Members); n != o.shortAt || o.shortSaid.IsZero() || now.Sub(o.shortSaid) >= shortEvery {
			o.shortSaid, o.shortAt = now, n
			o.logf("subcloud %s: repair found no replacement (%v); %d of %d members, trying again every %v (said again in %v unless that changes)",
				o.st.Subcloud, err, n, o.st.Target, o.cfg.RepairBackoff, shortEvery)
		}
		return
	}
	o.shortSaid = time.Time{}
	if extra := min(len(o.st.Members)+len(got)-o.st.Target, len(got)); extra > 0 {
		// Members came back while it claimed (node's take-backs run beside
		// its repairs; here they wait for it): keep the size.
		for _, p := range got[len(got)-extra:] {
			o.releaseLater(now, p)
		}
		got = got[:len(got)-extra]
	}
	o.add(got, j.held, now)
	o.st.Repairs += len(got)
	if len(got) > 0 {
		o.st.LastRepair = now
	}
	for range got {
		if len(o.lostAt) > 0 {
			o.repairTimes = append(o.repairTimes, now.Sub(o.lostAt[0]))
			o.lostAt = o.lostAt[1:]
		}
	}
	if len(o.repairTimes) > o.cfg.KeepRepairTimes {
		o.repairTimes = o.repairTimes[len(o.repairTimes)-o.cfg.KeepRepairTimes:]
	}
	for _, m := range got {
		o.logf("subcloud %s: repaired: claimed %s; %d of %d members", o.st.Subcloud, m, len(o.st.Members), o.st.Target)
	}
}

func (o *Owner) growEnded(now time.Time, j *claimJob, got, spares []string, err error) {
	u := o.op
	for _, p := range j.free {
		o.releaseLater(now, p)
	}
	if o.phase != PhaseHeld {
		for _, p := range got {
			o.releaseLater(now, p)
		}
		o.op = nil
		o.finish(u, OutcomeFailed, nil, "", "subcloud %s was released while it grew", o.st.Subcloud)
		return
	}
	o.spares = spares
	if err != nil {
		o.op = nil
		if errors.Is(err, ErrNotEnoughPeers) {
			o.finish(u, OutcomeNotEnough, err, "", "%s needs %d more free peers: %v; nothing changed, it keeps %d members",
				u.what, u.size-u.have, err, u.have)
			return
		}
		o.finish(u, OutcomeFailed, err, "", "%s: %v; nothing changed", u.what, err)
		return
	}
	if extra := min(len(o.st.Members)+len(got)-u.size, len(got)); extra > 0 {
		// Former members came back while it claimed (room keeps them
		// within the size): keep the size.
		for _, p := range got[len(got)-extra:] {
			o.releaseLater(now, p)
		}
		got = got[:len(got)-extra]
	}
	u.got = got
	o.add(got, j.held, now)
	o.st.Target = u.size
	o.recordOp(u)
}

// room is how many members the subcloud may have now: its target, or the
// size a RESIZE under way asks if smaller (a former member taken back
// while it grows must not take it past that size).
func (o *Owner) room() int {
	if u := o.op; u != nil && u.change == ChangeResize && u.phase != opAwaiting && u.size < o.st.Target {
		return u.size
	}
	return o.st.Target
}

// ---- EXTEND ----

// advanceOp moves a queued EXTEND on once no renewal of this subcloud is
// in flight (one landing after it would shorten a lease it counts as
// extended), and ends a RESIZE's wait for its size.
func (o *Owner) advanceOp(now time.Time) {
	u := o.op
	if u == nil || o.phase != PhaseHeld {
		return
	}
	switch {
	case u.change == ChangeExtend && u.phase == opQueued:
		if o.round > 0 || o.takes > 0 || o.rollbacksInFlight() {
			return
		}
		u.phase, u.old = opRenewing, o.st.Lease
		u.renewed, u.unsure, u.failed = map[string]time.Time{}, map[string]time.Time{}, map[string]bool{}
		for _, m := range sortedTimes(o.st.Members) {
			o.send(now, m, pExtend, Request{Op: OpRenew, Subcloud: o.st.Subcloud, Token: o.st.Token, For: u.d})
			u.waiting++
		}
		if u.waiting == 0 {
			o.extendAnswered(now, u)
		}
	case u.phase == opAwaiting: // a RESERVE or a RESIZE on disk, short of members lost since
		switch {
		case len(o.st.Members) >= u.need && u.change == ChangeReserve:
			o.reserveDone(now, u)
		case len(o.st.Members) >= u.need:
			o.op = nil
			o.report(&Report{Change: u.change, Outcome: OutcomeDone})
		case !now.Before(u.deadline):
			o.op = nil
			o.answerShort(u, nil)
		default:
			o.startRepair(now)
		}
	}
}

// answerShort answers a RESERVE or a RESIZE that reached its size on
// disk, then lost members as it answered and was not repaired in
// ResizeWait (or the user stopped waiting: cause), incomplete: it holds
// what it says, and repairs on.
func (o *Owner) answerShort(u *userOp, cause error) {
	have := len(o.st.Members)
	then := "being repaired"
	if o.st.NoRepair || o.st.Plan == nil {
		then = "not repaired (NO REPAIR)"
	}
	why := fmt.Sprintf("%s reached %d members, then lost %d as it answered: %d of %d now, %s (SHOW SUBCLOUDS)",
		u.what, o.st.Target, o.st.Target-have, have, o.st.Target, then)
	if cause != nil {
		why += fmt.Sprintf(" — %v", cause)
	}
	o.finish(u, OutcomeIncomplete, cause, "", "%s", why).Unanswered = u.stray
}

func (o *Owner) rollbacksInFlight() bool {
	for _, r := range o.rollback {
		if r.id != 0 {
			return true
		}
	}
	return false
}

func (o *Owner) extendReplied(now time.Time, s sent, rep Reply, err error) {
	u := o.op
	if u == nil || u.change != ChangeExtend || u.phase != opRenewing {
		return
	}
	u.waiting--
	switch {
	case err == nil && rep.OK:
		u.renewed[s.peer] = expiry(rep, s.at)
	case err != nil:
		u.unsure[s.peer], u.failed[s.peer] = s.at.Add(u.d), true // it may have renewed: rolled back too
	default:
		u.failed[s.peer] = true
	}
	if u.waiting == 0 {
		o.extendAnswered(now, u)
	}
}

func (o *Owner) extendAnswered(now time.Time, u *userOp) {
	for _, m := range []map[string]time.Time{u.renewed, u.unsure} {
		for p := range m {
			if exp, ok := o.st.Dropped[p]; ok && exp.Before(now.Add(u.d)) {
				// Dropped while it renewed: it may hold the lease until
				// now+d (every renewal was answered by now), and is
				// released or taken back until then.
				o.st.Dropped[p] = now.Add(u.d)
			}
		}
	}
	if o.phase != PhaseHeld {
		o.rollBack(now, u)
		o.op = nil
		o.finish(u, OutcomeFailed, nil, "", "%s: the subcloud was released meanwhile", u.what)
		return
	}
	if len(u.failed) > 0 {
		o.rollBack(now, u)
		failed := sortedBools(u.failed)
		o.op = nil
		o.finish(u, OutcomeRefused, nil, "", "%s: %d member(s) could not be renewed (%s); nothing changed, the leases stay at %s",
			u.what, len(failed), failed[0], term(u.old))
		return
	}
	u.before = map[string]time.Time{}
	for p, exp := range u.renewed {
		// (before: what a failed record restores, shortened as above.)
		if old, ok := o.st.Members[p]; ok {
			u.before[p] = old
			o.st.Members[p] = exp
			o.renewedAt(p, now)
		}
	}
	o.st.Lease, o.renewed = u.d, now
	o.recordOp(u)
}

// rollBack renews back to the old term every member the EXTEND may have
// renewed: what they hold is then what a renewal now would have given
// them. Each is sent until it answers, or its extended lease has lapsed.
//
// An EXTEND to a shorter term shortened the leases it renewed: the owner
// counts each member only as long as the shorter of what it knew and
// what the EXTEND may have left, until the roll-back's answer says more.
func (o *Owner) rollBack(now time.Time, u *userOp) {
	for _, m := range []map[string]time.Time{u.renewed, u.unsure} {
		for p, exp := range m {
			if cur, ok := o.st.Members[p]; ok && exp.Before(cur) {
				o.st.Members[p] = exp
			}
		}
	}
	for _, p := range append(sortedTimes(u.renewed), sortedTimes(u.unsure)...) {
		if r := o.rollback[p]; r != nil {
			r.until = later(r.until, now.Add(u.d)) // owed for this EXTEND too
			continue
		}
		// Every renewal of the EXTEND was applied before its answer (or
		// its error) came, all of which came by now: its extended lease
		// has lapsed by now+d at the latest.
		r := &retry{peer: p, p: pRollback, until: now.Add(u.d), wait: o.cfg.ReleaseRetry,
			req: Request{Op: OpRenew, Subcloud: o.st.Subcloud, Token: o.st.Token, For: u.old}}
		o.rollback[p] = r
		o.try(now, r)
	}
}

func (o *Owner) rollbackReplied(now time.Time, s sent, rep Reply, err error) {
	r := o.rollback[s.peer]
	if r == nil {
		return
	}
	r.id = 0
	if err == nil && rep.Refusal != RefusedStorage {
		// Rolled back, or it holds no lease to roll back.
		delete(o.rollback, s.peer)
		if rep.OK {
			if _, ok := o.st.Members[s.peer]; ok {
				o.st.Members[s.peer] = expiry(rep, s.at)
			}
		}
		return
	}
	// No answer, or its disk could not record it (it keeps the longer
	// term): sent again.
	o.again(now, r, o.rollback)
}

// ---- records ----

// recordOp asks for the persist that records the user's change; its
// answer (Persisted) says yes or undoes it.
func (o *Owner) recordOp(u *userOp) {
	u.phase, u.record = opRecording, true
	o.dirty = true
}

func (o *Owner) recordedOK(now time.Time, u *userOp) {
	switch u.change {
	case ChangeReserve:
		if u.freeing {
			u.recorded = true // answered once the peers it does not keep let go
			return
		}
		o.reserveDone(now, u)
	case ChangeResize:
		if o.phase != PhaseHeld {
			// Released in the same write: the new size was never recorded.
			for _, m := range sortedTimes(u.gone) {
				o.releaseLater(now, m)
			}
			o.op = nil
			o.finish(u, OutcomeFailed, nil, "", "%s: the subcloud was released meanwhile", u.what)
			return
		}
		if u.gone != nil {
			o.shrunk(now, u)
			return
		}
		o.logf("subcloud %s: resized from %d to %d members", o.st.Subcloud, u.have, u.size)
		u.phase, u.deadline = opAwaiting, now.Add(o.cfg.ResizeWait)
		o.advanceOp(now)
	case ChangeExtend:
		o.op = nil
		if o.phase != PhaseHeld {
			o.finish(u, OutcomeFailed, nil, "", "%s: the subcloud was released meanwhile", u.what)
			return
		}
		o.report(&Report{Change: ChangeExtend, Outcome: OutcomeDone})
	case ChangeRelease:
		o.released(now, u)
	}
}

// reserveDone answers a RESERVE that is on disk and whose claimed but
// not kept peers let go, or were sent their release ReleaseTries times
// (Unanswered: each is released when it answers, or its lease lapses).
func (o *Owner) reserveDone(now time.Time, u *userOp) {
	if o.phase == PhaseHeld && len(o.st.Members) < u.need && u.phase != opAwaiting {
		// Members lost as it was recorded (a renewal refused, a failure
		// seen): a yes must name as many as it promised, so it waits for
		// their repair, as a RESIZE does (advanceOp) — unless nothing
		// will repair it, or nobody waits any more.
		if o.st.NoRepair || o.st.Plan == nil || u.cancelled != nil {
			o.op = nil
			o.answerShort(u, u.cancelled)
			return
		}
		u.phase, u.deadline = opAwaiting, now.Add(o.cfg.ResizeWait)
		o.advanceOp(now)
		return
	}
	o.op = nil
	if o.phase != PhaseHeld {
		// Given up while its releases ran (its name lost to another
		// owner): what it held is being released by that.
		o.finish(u, OutcomeFailed, nil, "", "%s: the subcloud was given up as it was recorded (its name is held by another owner); its members are released", u.what)
		return
	}
	o.report(&Report{Change: ChangeReserve, Outcome: OutcomeDone, Unanswered: u.stray})
}

func (o *Owner) recordFailed(now time.Time, u *userOp, err error) {
	fail := func(then string) *Report {
		return o.finish(u, OutcomeStorage, err, then, "%s: cannot record it at %s (%v); %s", u.what, o.owner, err, then)
	}
	o.dirty = true // the disk has an older state: write what is true now
	switch u.change {
	case ChangeReserve:
		members := o.ranked()
		o.gone(now, "")
		o.clearMembers()
		o.emit(Action{Kind: ActReleaseName, Peers: append([]string(nil), o.st.Keepers...)})
		// The peers it claimed and does not keep, their releases maybe
		// still out, are awaited (and named) with the members.
		o.confirmRelease(now, append(members, u.free...), func(now time.Time, g *releaseGroup) {
			o.op = nil
			claimed := len(members) + len(u.free)
			what := fmt.Sprintf("released the %d peer(s) it claimed; nothing stays reserved", claimed)
			if len(g.silent) > 0 {
				what = fmt.Sprintf("released %d of the %d peer(s) it claimed; %s did not answer: each is released when it answers or asks, or its lease lapses within %v",
					claimed-len(g.silent), claimed, strings.Join(g.silent, ", "), o.st.Lease)
			}
			fail(what).Unanswered = append([]string(nil), g.silent...)
		})
	case ChangeResize:
		if o.phase != PhaseHeld {
			// Given up meanwhile: its members are being released; so are
			// the ones the smaller size left out.
			for _, m := range sortedTimes(u.gone) {
				o.releaseLater(now, m)
			}
			o.op = nil
			fail("the subcloud is no longer held")
			return
		}
		if u.gone != nil {
			for m, exp := range u.gone {
				o.st.Members[m] = exp
			}
			o.st.Order, o.st.Target = u.oldOrder, u.oldTarget
			o.op = nil
			fail("nothing changed")
			return
		}
		for _, m := range u.got {
			delete(o.st.Members, m)
			delete(o.st.Episodes, m)
		}
		o.st.Target = u.oldTarget
		u.phase = opReleasing
		got := u.got
		o.confirmRelease(now, got, func(now time.Time, g *releaseGroup) {
			o.op = nil
			what := fmt.Sprintf("released the %d peer(s) it claimed; nothing changed", len(got))
			if len(g.silent) > 0 {
				what = fmt.Sprintf("released %d of the %d peers it claimed (%s did not answer); it keeps %d members",
					len(got)-len(g.silent), len(got), strings.Join(g.silent, ", "), u.have)
			}
			fail(what)
		})
	case ChangeExtend:
		for m, exp := range u.before {
			if _, ok := o.st.Members[m]; ok {
				o.st.Members[m] = exp
			}
		}
		o.st.Lease = u.old
		o.rollBack(now, u)
		o.op = nil
		fail("nothing changed: the leases stay at " + term(u.old))
	case ChangeRelease:
		o.leaving = nil
		fail("nothing changed: the subcloud is still held, and renewed")
	}
}

// shrunk lets the members a smaller size left out go, one release each:
// one that does not answer stays a former member, released when it is seen
// again.
func (o *Owner) shrunk(now time.Time, u *userOp) {
	u.phase = opReleasing
	g := &releaseGroup{kind: groupShrink, limit: o.cfg.ReleaseTries}
	g.done = func(now time.Time, g *releaseGroup) {
		o.dirty = true
		if o.phase != PhaseHeld {
			o.op = nil
			o.finish(u, OutcomeFailed, nil, "", "%s: the subcloud was released meanwhile", u.what)
			return
		}
		o.logf("subcloud %s: resized from %d to %d members", o.st.Subcloud, u.have, u.size)
		if len(g.silent) > 0 {
			sort.Strings(g.silent)
			o.op = nil
			// As RELEASE: the smaller size holds, but a member let go may
			// still hold its lease until it answers or it lapses.
			r := o.finish(u, OutcomeIncomplete, nil, "", "%s: it has %d members; %d of the %d let go did not answer (%s): each is released when it answers or asks this owner, or its lease lapses within %v",
				u.what, u.size, len(g.silent), len(u.gone), strings.Join(g.silent, ", "), o.st.Lease)
			r.Freed, r.Unanswered = g.freed, g.silent
			return
		}
		u.phase, u.deadline = opAwaiting, now.Add(o.cfg.ResizeWait)
		o.advanceOp(now)
	}
	o.releaseGroup(now, g, sortedTimes(u.gone))
}

// released frees every member once the RELEASE is on disk.
func (o *Owner) released(now time.Time, u *userOp) {
	members, dropped := o.ranked(), sortedTimes(o.st.Dropped)
	sort.Strings(members)
	o.gone(now, fmt.Sprintf("the subcloud was released (%s)", u.what))
	if o.op == nil || !o.op.record {
		o.dirty = false // the write that said yes removed it already
	}
	o.clearMembers()
	for _, p := range dropped {
		o.releaseLater(now, p)
	}
	o.emit(Action{Kind: ActReleaseName, Peers: append([]string(nil), o.st.Keepers...)})
	g := &releaseGroup{kind: groupRelease, limit: o.cfg.ReleaseTries}
	g.done = func(now time.Time, g *releaseGroup) {
		o.leaving = nil
		if len(g.volatile) > 0 {
			o.logf("subcloud %s: %s let go, but could not record it (its data dir cannot be written): after a restart it asks this owner again",
				o.st.Subcloud, strings.Join(g.volatile, ", "))
		}
		rep := &Report{Change: ChangeRelease, Outcome: OutcomeDone, Freed: g.freed}
		if len(g.silent) > 0 {
			sort.Strings(g.silent)
			rep.Outcome, rep.Unanswered = OutcomeIncomplete, g.silent
			rep.Err = o.changeErr(u, OutcomeIncomplete, nil, "", "%s: %d of its %d member(s) let go; %d did not answer (%s): each is released when it answers or asks this owner, or its lease lapses within %v",
				u.what, g.freed, len(members), len(g.silent), strings.Join(g.silent, ", "), o.st.Lease)
		}
		o.report(rep)
	}
	u.phase = opReleasing
	o.releaseGroup(now, g, members)
}

// gone ends the subcloud: nothing is renewed or repaired any more, a claim
// running is aborted (its claims come back first, then it releases), and a
// change under way fails with why.
func (o *Owner) gone(now time.Time, why string) {
	o.phase = PhaseGone
	if o.recorded {
		o.dirty = true // remove it from the table
	}
	if o.job != nil {
		o.job.c.Abort(errors.New("subcloud: " + why))
	}
	if u := o.op; u != nil && u.change == ChangeReserve && u.phase == opAwaiting {
		o.op = nil
		o.finish(u, OutcomeFailed, nil, "", "%s: the subcloud was given up as it was repaired (%s); its members are released", u.what, why)
	} else if u != nil && u.change != ChangeReserve {
		switch u.phase {
		case opQueued, opAwaiting:
			o.op = nil
			o.finish(u, OutcomeFailed, nil, "", "%s: %s", u.what, why)
		}
		// Claiming, renewing, recording and releasing ones end by
		// themselves, and see it.
	}
	o.drive(now)
}

// clearMembers forgets the members once they are being released.
func (o *Owner) clearMembers() {
	for m := range o.st.Members {
		o.closeEpisode(m)
	}
	for m := range o.st.Dropped {
		o.closeEpisode(m)
	}
	clear(o.st.Members)
	clear(o.st.Dropped)
	o.st.Order = nil
	clear(o.away)
	clear(o.confirmed)
}

// ---- releases ----

// releaseLater releases p in the background: sent until it answers or the
// lease has passed (its lease has lapsed by then, released or not).
func (o *Owner) releaseLater(now time.Time, p string) {
	// Not a former member to take back any more: a take-back renewing it
	// beside the release could count a member the release then frees.
	delete(o.st.Dropped, p)
	delete(o.confirmed, p)
	if o.releases[p] != nil {
		return
	}
	r := &retry{peer: p, p: pRelease, until: now.Add(o.st.Lease), wait: o.cfg.ReleaseRetry,
		req: Request{Op: OpRelease, Subcloud: o.st.Subcloud, Token: o.st.Token}}
	o.releases[p] = r
	o.try(now, r)
}

// confirmRelease releases peers and calls done once each answered or was
// sent ReleaseTries times; those that never answered are released in the
// background after.
func (o *Owner) confirmRelease(now time.Time, peers []string, done func(time.Time, *releaseGroup)) {
	o.releaseGroup(now, &releaseGroup{kind: groupConfirm, limit: o.cfg.ReleaseTries, done: done}, peers)
}

// releaseGroup sends a release to each of peers (a release of one already
// under way joins the group with its next answer) and calls g.done once
// each is settled.
func (o *Owner) releaseGroup(now time.Time, g *releaseGroup, peers []string) {
	seen := map[string]bool{}
	for _, p := range peers {
		if seen[p] {
			continue
		}
		seen[p] = true
		g.left++
		delete(o.st.Dropped, p) // as releaseLater
		delete(o.confirmed, p)
		r := o.releases[p]
		if r == nil {
			r = &retry{peer: p, p: pRelease, until: now.Add(o.st.Lease), wait: o.cfg.ReleaseRetry,
				req: Request{Op: OpRelease, Subcloud: o.st.Subcloud, Token: o.st.Token}}
			o.releases[p] = r
		}
		r.groups, r.tries = append(r.groups, g), 0
		if r.id == 0 {
			o.try(now, r)
		}
	}
	if g.left == 0 {
		g.done(now, g)
	}
}

// releaseReplied: an answer that lets go ends a release (one that no
// longer holds the lease says so); no answer, or a refusal, sends it again
// later. A group waiting for it learns how it went once it let go or its
// tries are spent (a RESERVE's confirmation: once it answered at all).
func (o *Owner) releaseReplied(now time.Time, s sent, rep Reply, err error) {
	r := o.releases[s.peer]
	if r == nil || r.id == 0 {
		return
	}
	r.id = 0
	answered := err == nil
	let := answered && (rep.OK || rep.Refusal == RefusedNoLease || rep.Refusal == RefusedToken)
	var dropped, resend bool
	groups := r.groups
	r.groups = nil
	for _, g := range groups {
		switch {
		case g.kind == groupConfirm && answered:
			g.settle(now, s.peer, true)
		case let:
			if g.kind == groupShrink {
				o.renewedAt(s.peer, now) // metered to its release, as its ledger is
				o.closeEpisode(s.peer)
			}
			if rep.OK && rep.Volatile {
				g.volatile = append(g.volatile, s.peer)
			}
			g.settle(now, s.peer, true)
		case r.tries < g.limit && now.Before(r.until):
			// Silent, or a refusal that does not say it let go (it could
			// not check the signature: a member of another pool believes
			// the owner's key only once most of its pool's gateways vouch
			// for it): the user still waits, and it is sent again.
			r.groups = append(r.groups, g)
		case g.kind == groupShrink && o.phase == PhaseHeld:
			// A former member, released when it is seen again; not a loss
			// to repair.
			dropped = true
			g.settle(now, s.peer, false)
		default:
			// Its tries spent: sent again in the background (at once after
			// a refusal, which is an answer; after a wait if silent).
			resend = resend || answered && !let
			g.settle(now, s.peer, false)
		}
	}
	switch {
	case dropped && len(r.groups) == 0:
		delete(o.releases, s.peer)
		o.st.Dropped[s.peer] = now.Add(o.st.Lease)
	case len(r.groups) > 0:
		o.again(now, r, o.releases) // a group still waits for it
	case resend:
		o.try(now, r)
	case answered:
		delete(o.releases, s.peer)
	default:
		o.again(now, r, o.releases)
	}
}

func (g *releaseGroup) settle(now time.Time, peer string, freed bool) {
	if freed {
		g.freed++
	} else {
		g.silent = append(g.silent, peer)
	}
	if g.left--; g.left == 0 {
		g.done(now, g)
	}
}

// try sends r once now. A roll-back renews for the term as it is when it
// is sent: one that waited past a later EXTEND is then a plain renewal,
// and cannot shorten the new term.
func (o *Owner) try(now time.Time, r *retry) {
	if r.p == pRollback {
		r.req.For = o.st.Lease
	}
	r.tries++
	r.next = time.Time{}
	r.id = o.send(now, r.peer, r.p, r.req)
}

// again schedules r's next try after a failed one, or gives it up once its
// lease has lapsed by itself. A group that waits for it stops waiting
// after its limit of tries.
func (o *Owner) again(now time.Time, r *retry, in map[string]*retry) {
	if !now.Before(r.until) {
		for _, g := range r.groups {
			g.settle(now, r.peer, false)
		}
		r.groups = nil
		delete(in, r.peer)
		return
	}
	r.next = now.Add(r.wait)
	r.wait = min(2*r.wait, o.cfg.ReleaseRetryMax)
}

func (o *Owner) retries(now time.Time, in map[string]*retry) {
	for _, p := range sortedRetries(in) {
		if r := in[p]; r.id == 0 && !r.next.IsZero() && !now.Before(r.next) {
			o.try(now, r)
		}
	}
}

// ---- helpers ----

func (o *Owner) id() uint64 {
	o.nextID++
	return o.nextID
}

func (o *Owner) send(now time.Time, to string, p purpose, req Request) uint64 {
	if req.Op == OpRenew {
		// A renewal sets the lease to the moment the peer takes it plus
		// its term, which may be shorter than what the member holds now
		// (a roll-back, an EXTEND to a shorter term): count the member no
		// longer than that from now on, until its answer says more.
		until := now.Add(req.For)
		if exp, ok := o.st.Members[to]; ok && until.Before(exp) {
			o.st.Members[to] = until
		}
		if j := o.job; j != nil {
			if exp, ok := j.held[to]; ok && until.Before(exp) {
				j.held[to] = until
			}
		}
	}
	id := o.id()
	o.sent[id] = sent{peer: to, p: p, at: now, req: req}
	o.emit(Action{Kind: ActSend, ID: id, To: to, Req: req})
	return id
}

func (o *Owner) emit(a Action) { o.out = append(o.out, a) }

func (o *Owner) logf(format string, args ...any) {
	o.emit(Action{Kind: ActLog, Text: fmt.Sprintf(format, args...)})
}

func (o *Owner) report(r *Report) { o.emit(Action{Kind: ActReport, Report: r}) }

func (o *Owner) changeErr(u *userOp, out Outcome, cause error, then, format string, args ...any) *ChangeError {
	return &ChangeError{Change: u.change, Outcome: out, What: u.what, Then: then, Cause: cause, msg: fmt.Sprintf(format, args...)}
}

// finish reports a change that did not (wholly) happen.
func (o *Owner) finish(u *userOp, out Outcome, cause error, then, format string, args ...any) *Report {
	r := &Report{Change: u.change, Outcome: out, Err: o.changeErr(u, out, cause, then, format, args...)}
	o.report(r)
	return r
}

func (o *Owner) refuse(u *userOp, format string, args ...any) {
	o.finish(u, OutcomeRefused, nil, "", format, args...)
}

// settle ends every event: a change waiting for quiet (a queued EXTEND)
// or for its size (a RESIZE) moves on, and the state goes to the disk if
// it changed.
func (o *Owner) settle(now time.Time) {
	o.advanceOp(now)
	o.flush()
}

// flush asks for a persist of the state if it changed and none is in
// flight: one at a time, so that the answer to each is the answer for
// every change it carries, and no older state can land after a newer one.
func (o *Owner) flush() {
	switch {
	case !o.dirty || o.persisting != 0 || o.phase == PhaseReserving:
		return // nothing new, one in flight, or nothing owned yet
	case o.phase == PhaseGone && !o.recorded:
		o.dirty = false // never on disk: nothing to remove
		return
	}
	o.dirty = false
	o.persistSeq++
	a := Action{Kind: ActPersist, ID: o.persistSeq}
	if o.phase == PhaseHeld && o.leaving == nil {
		// A RELEASE records the table without the subcloud.
		s := o.State()
		a.State = &s
		o.recorded = true
	}
	for _, u := range []*userOp{o.op, o.leaving} {
		if u != nil && u.record {
			u.record, u.seq, a.For = false, o.persistSeq, u.change
		}
	}
	o.persisting = o.persistSeq
	o.emit(a)
}

// drop removes a member lost at now. It is kept as a former member (taken
// back or released when seen again) for as long as it may hold the lease:
// the expiry it confirmed counts it as a member no longer than it holds
// the lease, but a renewal whose answer was lost may have moved its lease
// up to a term past now (node keeps it only until the confirmed expiry,
// and forgets a peer that may still hold the lease).
func (o *Owner) drop(m string, exp, now time.Time) {
	delete(o.st.Members, m)
	o.lostAt = append(o.lostAt, now)
	o.st.Dropped[m] = later(exp, now.Add(o.st.Lease))
	o.confirmed[m] = exp
	o.st.Order = o.ranked()
}

// holdsNone is whether a refusal says the peer holds no lease of this
// subcloud's (none, or another token's): a member that says so is no
// former member to take back or release (node keeps it as one, and sends
// it a take-back first).
func holdsNone(rep Reply) bool {
	return !rep.OK && (rep.Refusal == RefusedNoLease || rep.Refusal == RefusedToken)
}

// mayHold notes that a former member may hold the lease until at least
// until (a renewal of it, answered or not, may have been taken).
func (o *Owner) mayHold(m string, until time.Time) {
	if exp, ok := o.st.Dropped[m]; ok && exp.Before(until) {
		o.st.Dropped[m] = until
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// add makes peers members (after the ones it has), with their expiries.
func (o *Owner) add(peers []string, held map[string]time.Time, now time.Time) {
	o.st.Order = o.ranked()
	for _, m := range peers {
		o.st.Members[m] = held[m]
		o.st.Order = append(o.st.Order, m)
		delete(o.st.Dropped, m)
		delete(o.confirmed, m)
		if e, ok := o.st.Episodes[m]; ok {
			e.Until = now // taken back: its span goes on
			o.st.Episodes[m] = e
		} else {
			o.st.Episodes[m] = Span{Start: now, Until: now}
		}
	}
}

// ranked is the members, best first.
func (o *Owner) ranked() []string {
	out := make([]string, 0, len(o.st.Members))
	seen := map[string]bool{}
	for _, m := range o.st.Order {
		if _, ok := o.st.Members[m]; ok && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	// Members the order does not know (an older table) go last, by name.
	for _, m := range sortedTimes(o.st.Members) {
		if !seen[m] {
			out = append(out, m)
		}
	}
	return out
}

// renewedAt moves a member's metered span to now.
func (o *Owner) renewedAt(m string, now time.Time) {
	if e, ok := o.st.Episodes[m]; ok {
		e.Until = now
		o.st.Episodes[m] = e
	}
}

// closeEpisode ends a member's metered span at its last renewal.
func (o *Owner) closeEpisode(m string) {
	if e, ok := o.st.Episodes[m]; ok {
		o.st.Metered += e.Until.Sub(e.Start)
		delete(o.st.Episodes, m)
	}
}

// expiry is a reply's lease expiry on the owner's clock, counted from when
// the request was sent: the peer granted it no earlier, so the owner never
// counts a lease longer than the peer holds it, however late the reply.
func expiry(rep Reply, sentAt time.Time) time.Time {
	if rep.Now == 0 {
		return time.Unix(0, rep.Expires)
	}
	return sentAt.Add(time.Duration(rep.Expires - rep.Now))
}

func mergeSorted(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func sortedTimes(m map[string]time.Time) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedBools(m map[string]bool) []string { return sortedKeys(m) }

func sortedRetries(m map[string]*retry) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// term is a lease's length as the user wrote it: 90s, 5m, 1h30m, 2d.
func term(d time.Duration) string {
	s := int64(d / time.Second)
	two := func(big int64, bu string, small int64, su string) string {
		if small == 0 {
			return fmt.Sprintf("%d%s", big, bu)
		}
		return fmt.Sprintf("%d%s%d%s", big, bu, small, su)
	}
	switch {
	case s < 60:
		return fmt.Sprintf("%gs", d.Seconds())
	case s < 3600:
		return two(s/60, "m", s%60, "s")
	case s < 86400:
		return two(s/3600, "h", s%3600/60, "m")
	}
	return two(s/86400, "d", s%86400/3600, "h")
}
