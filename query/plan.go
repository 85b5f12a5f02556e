package query

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// PlanKind is the protocol that answers a statement.
type PlanKind uint8

// The kinds of plan.
const (
	// PlanAggregate: gossip averaging of mass vectors (COUNT, SUM, AVG,
	// moments), extremal propagation (MIN, MAX) and mergeable sketches
	// (PERCENTILE, COUNT DISTINCT), per group when grouped.
	PlanAggregate PlanKind = iota + 1
	// PlanTopK: gossip top-k over the ORDER BY keys.
	PlanTopK
	// PlanReserve: a top-k with slack for candidates, then lease claims.
	PlanReserve
	// PlanLocal: answered by the asking peer alone (SHOW, RELEASE, ALTER).
	PlanLocal
	planKindEnd
)

func (k PlanKind) String() string {
	switch k {
	case PlanAggregate:
		return "aggregate"
	case PlanTopK:
		return "top-k"
	case PlanReserve:
		return "reserve"
	case PlanLocal:
		return "local"
	}
	return "plan(" + strconv.Itoa(int(k)) + ")"
}

// AggFunc is an aggregate function.
type AggFunc uint8

// The aggregate functions.
const (
	AggCount AggFunc = iota + 1 // COUNT(*) or COUNT(x): non-NULL values
	AggCountDistinct
	AggSum
	AggAvg
	AggMin
	AggMax
	AggStddev   // sample standard deviation
	AggVariance // sample variance
	AggPercentile
	AggTrimmedAvg // AVG(x) TRIM p: the mean of the values between the p- and (1-p)-quantiles
	aggFuncEnd
)

var aggNames = map[string]AggFunc{
	"count": AggCount, "sum": AggSum, "avg": AggAvg, "min": AggMin, "max": AggMax,
	"stddev": AggStddev, "variance": AggVariance, "median": AggPercentile, "percentile": AggPercentile,
}

func (f AggFunc) String() string {
	switch f {
	case AggCount:
		return "COUNT"
	case AggCountDistinct:
		return "COUNT DISTINCT"
	case AggSum:
		return "SUM"
	case AggAvg:
		return "AVG"
	case AggMin:
		return "MIN"
	case AggMax:
		return "MAX"
	case AggStddev:
		return "STDDEV"
	case AggVariance:
		return "VARIANCE"
	case AggPercentile:
		return "PERCENTILE"
	case AggTrimmedAvg:
		return "AVG TRIM"
	}
	return "agg(" + strconv.Itoa(int(f)) + ")"
}

// CompKind is the kind of a per-peer component that gossip combines.
type CompKind uint8

// The components. Count, Sum and SumSq are additive masses (averaged by
// gossip, scaled by the number of peers); Min and Max propagate as extremes;
// Quantile and Distinct are mergeable sketches.
const (
	CompCount    CompKind = iota + 1 // 1 if the peer matches (and Arg is not NULL)
	CompSum                          // Arg, or 0
	CompSumSq                        // Arg², or 0
	CompMin                          // Arg, or nothing
	CompMax                          // Arg, or nothing
	CompQuantile                     // a quantile sketch of Arg
	CompDistinct                     // a distinct-count sketch of Arg
	compKindEnd
)

func (c CompKind) String() string {
	switch c {
	case CompCount:
		return "count"
	case CompSum:
		return "sum"
	case CompSumSq:
		return "sum of squares"
	case CompMin:
		return "min"
	case CompMax:
		return "max"
	case CompQuantile:
		return "quantile sketch"
	case CompDistinct:
		return "distinct sketch"
	}
	return "comp(" + strconv.Itoa(int(c)) + ")"
}

// Additive reports whether gossip averaging combines the component.
func (c CompKind) Additive() bool { return c == CompCount || c == CompSum || c == CompSumSq }

// Component is one per-peer quantity that gossip combines across peers.
type Component struct {
	Kind CompKind `cbor:"1,keyasint"`
	Arg  *Expr    `cbor:"2,keyasint,omitempty"` // nil for COUNT(*)
}

// Aggregate is one aggregate of the statement, computed at the end from its
// components.
type Aggregate struct {
	Func  AggFunc `cbor:"1,keyasint"`
	Arg   *Expr   `cbor:"2,keyasint,omitempty"`
	Param float64 `cbor:"3,keyasint,omitempty"` // PERCENTILE's fraction; TRIM's share at each end
	Kind  Kind    `cbor:"4,keyasint,omitempty"` // the result kind
	Text  string  `cbor:"5,keyasint,omitempty"` // as the user wrote it, canonical
	Comps []int   `cbor:"6,keyasint,omitempty"` // indices into Plan.Components
}

// Column is one output column.
type Column struct {
	Name string `cbor:"1,keyasint"`
	Kind Kind   `cbor:"2,keyasint,omitempty"`
	// Expr is evaluated on each peer's record in top-k and reserve plans, and
	// on result rows (GROUP BY keys and aggregates) in aggregate plans.
	Expr *Expr `cbor:"3,keyasint"`
}

// OrderKey is one ORDER BY key.
type OrderKey struct {
	Expr *Expr `cbor:"1,keyasint"`
	Desc bool  `cbor:"2,keyasint,omitempty"`
}

// ReserveSpec is what a RESERVE asks for.
type ReserveSpec struct {
	Name         string  `cbor:"1,keyasint"`
	N            int     `cbor:"2,keyasint"`
	AtLeast      int     `cbor:"3,keyasint,omitempty"` // accept m..N peers; 0 means all-or-nothing
	LeaseSeconds float64 `cbor:"4,keyasint"`
	Key          string  `cbor:"5,keyasint,omitempty"` // idempotency key
	// NoRepair: the owner does not replace members that fail.
	NoRepair bool `cbor:"6,keyasint,omitempty"`
}

// Show is what a SHOW statement lists. Its numbering is part of the plan's
// wire format: add at the end, never renumber.
type Show uint8

// The SHOW statements.
const (
	ShowSubclouds Show = iota + 1
	ShowAttributes
	ShowMembers
	ShowPools
	ShowEvents
	showEnd
)

func (s Show) String() string {
	switch s {
	case ShowSubclouds:
		return "SUBCLOUDS"
	case ShowAttributes:
		return "ATTRIBUTES"
	case ShowMembers:
		return "MEMBERS"
	case ShowPools:
		return "POOLS"
	case ShowEvents:
		return "EVENTS"
	}
	return "Show(" + strconv.Itoa(int(s)) + ")"
}

// Table is a statement's source. Its numbering is part of the plan's wire
// format.
type Table uint8

// The tables.
const (
	TablePeers  Table = iota // every live peer, a row each
	TableLeases              // the leases every peer served, a row each (several a peer)
	tableEnd
)

// WatchSpec is a standing query's epoch.
type WatchSpec struct {
	EverySeconds float64 `cbor:"1,keyasint"`
}

// Limits of WATCH … EVERY.
const (
	DefaultWatchSeconds = 10
	MinWatchSeconds     = 1
	MaxWatchSeconds     = 24 * 3600
)

// Epoch returns the plan one epoch of a WATCH runs: the same statement,
// answered once.
func (p *Plan) Epoch() *Plan {
	q := *p
	q.Watch = nil
	return &q
}

// MaxLedgerRows is the most rows a peer contributes to FROM leases: its
// ledger keeps its latest leases up to this many.
const MaxLedgerRows = 1000

// LocalSpec is a command the asking peer answers alone.
type LocalSpec struct {
	Show    Show       `cbor:"1,keyasint,omitempty"`
	Release string     `cbor:"2,keyasint,omitempty"`
	Alter   *AlterSpec `cbor:"3,keyasint,omitempty"`
	// Const is a SELECT without FROM (SELECT 1 + 1 AS two): its columns
	// are constants, answered at once with one row (none if its WHERE is
	// not true or its LIMIT is 0), as psql and SQLite do.
	Const bool `cbor:"4,keyasint,omitempty"`
}

// AlterSpec is ALTER SUBCLOUD: a new size (Resize > 0) or a new lease
// length from now for every member (ExtendSeconds > 0), one of the two.
type AlterSpec struct {
	Name          string  `cbor:"1,keyasint"`
	Resize        int     `cbor:"2,keyasint,omitempty"`
	ExtendSeconds float64 `cbor:"3,keyasint,omitempty"`
}

// Empty says the plan answers no rows whatever the peers hold (LIMIT 0):
// the asking peer answers it with its columns alone, and never sends it.
func (p *Plan) Empty() bool { return p.Limited && p.K == 0 }

// Plan is a compiled statement. It holds no code: only data that Validate
// can bound. The zero value is not a valid plan; use Compile or Decode.
type Plan struct {
	Kind PlanKind `cbor:"1,keyasint"`
	// Text is the canonical text of the statement.
	Text string `cbor:"2,keyasint,omitempty"`
	// Unlisted are the names the statement reads as tags that its
	// catalog did not hold (Catalog.Open), at the asker only: never sent.
	Unlisted []Unlisted `cbor:"-"`
	// Subcloud is set for FROM SUBCLOUD name; Filter already requires it.
	Subcloud string `cbor:"3,keyasint,omitempty"`
	// Filter is the WHERE clause on a peer's record; nil keeps every peer.
	Filter  *Expr    `cbor:"4,keyasint,omitempty"`
	Columns []Column `cbor:"5,keyasint,omitempty"`
	// GroupBy are evaluated on a peer's record to find its group.
	GroupBy    []*Expr     `cbor:"6,keyasint,omitempty"`
	Aggs       []Aggregate `cbor:"7,keyasint,omitempty"`
	Components []Component `cbor:"8,keyasint,omitempty"`
	// Order is evaluated on records (top-k, reserve) or result rows
	// (aggregate). Ties are broken by node name, ascending.
	Order []OrderKey `cbor:"9,keyasint,omitempty"`
	// K is the top-k's k, or the LIMIT on groups (0: all groups).
	K int `cbor:"10,keyasint,omitempty"`
	// Limited says K came from a LIMIT; without one a top-k returns every
	// matching peer up to K = Config.MaxRows.
	Limited bool `cbor:"11,keyasint,omitempty"`
	// MaxGroups bounds the groups each peer tracks.
	MaxGroups int `cbor:"12,keyasint,omitempty"`
	// Rounds is the round budget; 0 lets the engine choose from the
	// membership size (RoundBudget).
	Rounds int `cbor:"13,keyasint,omitempty"`
	// TimeoutSeconds is the wall-clock budget; 0 means none beyond rounds.
	TimeoutSeconds float64 `cbor:"14,keyasint,omitempty"`
	// Accuracy is the target relative error of aggregates.
	Accuracy float64      `cbor:"15,keyasint,omitempty"`
	Reserve  *ReserveSpec `cbor:"16,keyasint,omitempty"`
	Local    *LocalSpec   `cbor:"17,keyasint,omitempty"`
	// Explain asks for the plan's description instead of its answer.
	Explain bool `cbor:"18,keyasint,omitempty"`
	// FromTags says every attribute the statement reads is in Serf's
	// membership (member fields and tags), so the asking peer can answer it
	// from its member list without gossip.
	FromTags bool `cbor:"19,keyasint,omitempty"`
	// Table is what the statement reads: TablePeers (a row a peer) or
	// TableLeases (a row per lease a peer served: its ledger).
	Table Table `cbor:"21,keyasint,omitempty"`
	// Watch makes the statement a standing query (WATCH … EVERY d): the
	// asking peer answers it anew every EverySeconds.
	Watch *WatchSpec `cbor:"22,keyasint,omitempty"`
	// Owner is, for FROM SUBCLOUD in a cloud of pools, the subcloud's
	// owner as pool/name, fixed by the asker: every pool runs the
	// statement over that owner's members, whose leases name it by name
	// in its own pool and as pool/name in the others (node's pools role).
	Owner string `cbor:"23,keyasint,omitempty"`
	// ByOwner says Members are the subcloud's members as its owner, the
	// asker, holds them (pool/name; its own pool's by name): a statement
	// that reads only the membership is then answered in each pool from
	// its gateways' member lists over those of them it lists, exactly and
	// without gossip, as the owner of a cloud of one pool answers it from
	// its table (Listed).
	ByOwner bool     `cbor:"24,keyasint,omitempty"`
	Members []string `cbor:"25,keyasint,omitempty"`
	// ListTags asks each pool of a cloud of pools to name, beside its
	// answer, the tags its members carry (node's pools role): SHOW
	// ATTRIBUTES there lists every pool's, not only the asker's.
	ListTags bool `cbor:"26,keyasint,omitempty"`
	// Key 20 was the asking peer's network coordinate; it now travels in
	// the runtime's envelope beside the plan (node), so that a plan's
	// encoding and hash are the same at every asker. Do not reuse it.
}

// Hash is a short, stable identifier of the plan: the first 12 hex digits of
// the SHA-256 of its encoding.
func (p *Plan) Hash() string {
	b, err := p.Encode()
	if err != nil {
		return "invalid"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Config tunes compilation.
type Config struct {
	// MaxRows caps a SELECT without LIMIT: it returns every matching peer up
	// to this many, ordered by ORDER BY or by node name. At most MaxK.
	MaxRows int
	// MaxGroups caps the groups of a GROUP BY that each peer tracks; groups
	// beyond it are dropped and counted. At most the MaxGroups limit.
	MaxGroups int
	// Accuracy is the default target relative error of aggregates (0.01 is
	// 1%), overridden by WITH ACCURACY.
	Accuracy float64
	// LeaseSeconds is the lease of a RESERVE without FOR.
	LeaseSeconds float64
	// ReserveSlack is the share of extra candidates a RESERVE n looks for,
	// to backfill refused claims: k' = n + max(ceil(n·slack), 4).
	ReserveSlack float64
}

// DefaultConfig returns the configuration peerq uses.
func DefaultConfig() Config {
	return Config{
		MaxRows:      1000,
		MaxGroups:    64,
		Accuracy:     0.01,
		LeaseSeconds: 3600,
		ReserveSlack: 0.5,
	}
}

// HasExtremes reports whether the plan has a MIN or MAX component.
func (p *Plan) HasExtremes() bool {
	for _, c := range p.Components {
		if c.Kind == CompMin || c.Kind == CompMax {
			return true
		}
	}
	return false
}

// Gossiped is p to be answered by gossip even if its attributes are all
// in the membership (FromTags false): where the member list at hand is
// not the one that knows (a subcloud's members at any peer but its owner,
// a lease that reaches other peers' tags a gossip interval late).
func (p *Plan) Gossiped() *Plan {
	if !p.FromTags {
		return p
	}
	fresh := *p
	fresh.FromTags = false
	return &fresh
}

// FromMemberLists says a cloud of pools answers p from its gateways'
// member lists, a partial a pool, with no gossip: it reads only the
// membership, and no subcloud (whose members only their owner knows at
// once).
func (p *Plan) FromMemberLists() bool { return p.FromTags && (p.Subcloud == "" || p.ByOwner) }
