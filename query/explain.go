package query

import (
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/peerq/peerq/answer"
)

// The limits table of DESIGN.md §3 (push-pull gossip, uniform peer
// selection): rounds until every peer's COUNT is within 1%, and until every
// peer holds the exact top-50, at N = 10^3, 10^4, 10^5, 10^6.
var (
	roundsAggregate1pct = [4]float64{16, 19, 21, 24}
	roundsTopK          = [4]float64{10, 12.5, 15, 17}
)

// VarianceFactor is the factor by which push-pull averaging shrinks the
// variance of the estimates each round: 1/(2√e) ≈ 0.303 (Jelasity, Montresor,
// Babaoglu, "Gossip-based aggregation in large dynamic networks", 2005).
var VarianceFactor = 1 / (2 * math.Sqrt(math.E))

// ExpectedRounds is the model's number of rounds for a plan over n peers:
// the limits table interpolated in log10(n) (and extrapolated with its end
// slopes). For aggregates, an accuracy other than 1% shifts it by the
// rounds the variance needs to shrink by (0.01/accuracy)²; the table's
// figure is for the worst peer, so the originator's estimate is usually
// within the accuracy sooner.
func ExpectedRounds(kind PlanKind, n int, accuracy float64) int {
	if n <= 1 {
		return 0
	}
	switch kind {
	case PlanAggregate:
		r := interpolate(roundsAggregate1pct, n)
		if accuracy > 0 {
			r += math.Log(math.Pow(0.01/accuracy, 2)) / math.Log(1/VarianceFactor)
		}
		return max(1, int(math.Ceil(r)))
	case PlanTopK, PlanReserve:
		return max(1, int(math.Ceil(interpolate(roundsTopK, n))))
	}
	return 0
}

func interpolate(table [4]float64, n int) float64 {
	x := math.Log10(float64(n)) - 3 // 0 at 10^3, 3 at 10^6
	i := int(math.Floor(x))
	switch {
	case i < 0:
		i = 0
	case i > 2:
		i = 2
	}
	slope := table[i+1] - table[i]
	return table[i] + slope*(x-float64(i))
}

// PushRounds is the model's number of rounds until a rumor started by one
// peer has reached all n when it travels only in each round's one
// request: a push rumor, log₂ n + ln n rounds (Pittel, "On spreading a
// rumor", 1987). The end of a query spreads so (node), and a plan with
// no fanout.
func PushRounds(n int) int {
	if n <= 1 {
		return 0
	}
	return int(math.Ceil(math.Log2(float64(n)) + math.Log(float64(n))))
}

// AutoFanout, as a fanout setting (node.Config.Fanout, sim.Config.Fanout),
// takes the engine's fanout for the plan's kind and size: FanoutFor.
const AutoFanout = -1

// FanoutFor is how many peers beyond its round's partner a peer tells of a
// query of kind among n peers each round while the query is young
// (run.Config.Fanout), as the engine chooses: 3 for a top-k and RESERVE's
// search; for an aggregate, 3 from AggregateFanoutFrom peers, else 0.
//
// A top-k's list holds still once every peer's entry has spread: over 200
// real Serf peers a top-50 took 0.53–0.56 of the time with 3 (node's
// cluster benchmark, PEERQ_BENCH_FANOUT=ab). An aggregate gains rounds
// too (the last of 10^5 simulated peers within 1% of a COUNT at round 24
// instead of 35, of 10^6 at 27 instead of 38: peerq sim), and churn does
// not make it worse (the sim's churn model, 2,000 peers, 1–10 min
// sessions: 57 of 142 trials converged either way, none wrong;
// BENCHMARKS.md, issue 24). Over 200 real Serf peers a COUNT took
// 0.99–1.04 of the time with it, its cluster sending 17–19% more bytes.
// Among very few peers it costs: 8 fakenet peers asked 200 queries at
// once took up to 3 rounds more on average with it in 5 runs of 6 (their
// budget is 31), which a test that wants every one of those answers
// converged (node's TestManyAskersConverge) once did not get; 32 peers
// asked the same took fewer rounds with it. What it costs: the
// announcements, the plan alone, 3 a round for up to ⌈log_5 N + ln
// N/4⌉+1 rounds, each peer stopping once 4 peers it told held the query
// already (run.StopAnnouncing): a COUNT's bytes a peer until its answer
// is final about twice those without (2,455 against 1,098 at 10^5).
func FanoutFor(kind PlanKind, n int) int {
	if kind == PlanAggregate && n < AggregateFanoutFrom {
		return 0
	}
	return 3
}

// AggregateFanoutFrom is the least number of peers at which an aggregate
// spreads with a fanout (FanoutFor): among fewer, a push reaches them all
// in a few rounds anyway.
const AggregateFanoutFrom = 32

// ResolveFanout is the fanout a setting gives a plan of kind among n
// peers: the setting, or FanoutFor(kind, n) for AutoFanout.
func ResolveFanout(setting int, kind PlanKind, n int) int {
	if setting == AutoFanout {
		return FanoutFor(kind, n)
	}
	return setting
}

// SpreadRoundsFanout is the number of rounds until a query reaches all n
// peers when every peer that holds it tells fanout more each round besides
// its partner (run.Instance.Announce): while few know it, the informed
// grow (fanout+2)-fold a round, and at the end an unaware peer is missed
// with probability e^-(fanout+1) a round, so log_{fanout+2} n +
// ln n/(fanout+1), and one round more. With fanout 0, PushRounds.
func SpreadRoundsFanout(n, fanout int) int {
	if n <= 1 {
		return 0
	}
	if fanout <= 0 {
		return PushRounds(n)
	}
	return PushFanoutRounds(n, fanout+1) + 1
}

// PushFanoutRounds is ⌈log_{k+1} n + ln n/k⌉: the rounds until a push
// rumor in which every informed peer tells k random peers a round reaches
// all n (Pittel's argument with a fanout: the informed grow (k+1)-fold a
// round, and at the end an unaware peer is missed with probability e^-k a
// round). It models memberlist's gossip too (sim/latency).
func PushFanoutRounds(n, k int) int {
	if n <= 1 || k < 1 {
		return 0
	}
	x := float64(n)
	return int(math.Ceil(math.Log(x)/math.Log(float64(k+1)) + math.Log(x)/float64(k)))
}

// RoundBudget is the number of rounds the engine runs a plan for over n
// peers: WITH ROUNDS if given, else the rounds a push rumor takes to reach
// every peer (PushRounds: the plan spreads faster, with Fanout, but the
// budget is a bound, not a wait, and keeps the room that loss, churn and
// a lost member's mass spreading again need) plus twice the expected
// rounds plus a margin of 5.
func (p *Plan) RoundBudget(n int) int {
	if p.Rounds > 0 {
		return p.Rounds
	}
	n = max(n, 2)
	return PushRounds(n) + 2*ExpectedRounds(p.Kind, n, p.Accuracy) + 5
}

// Size model of one exchange message, in bytes, for EXPLAIN. The simulator's
// tests check it against the encoded messages (sim.TestMessageSizeModel).
const (
	MsgHeaderBytes   = 32   // query id, round, kind, lengths
	MassBytes        = 16   // one (value, weight) pair of float64
	ExtremeBytes     = 9    // a value and a presence flag
	QuantileBytes    = 1024 // a quantile sketch of a group
	DistinctBytes    = 1024 // a distinct-count sketch (HyperLogLog, 2^10 registers)
	GroupKeyBytes    = 24   // a group key, typical
	EntryHeaderBytes = 24   // a top-k entry's node name, typical
	EntryValueBytes  = 9    // one projected or key value, numeric
	MessagesPerPeer  = 2    // each peer starts one push-pull exchange a round: push and reply
)

// TopKReserve is how many candidates beyond k a top-k list keeps, to
// backfill when peers in the top die: a quarter of k, at least 4. The
// runtime configures the top-k core with it (run.Binding), and EXPLAIN's
// size model counts it.
func TopKReserve(k int) int { return max(k/4, 4) }

// CoverageBits is the size of a top-k's coverage filter over n peers (the
// Bloom filter of the peers a list has heard from, topk/coverage.go): 16
// bits a peer, a power of two of at least 512 bits; 0 — no filter — when
// n peers would need more than MaxCoverageBits.
func CoverageBits(n int) int {
	want := max(n*CoverageBitsPerPeer, 512)
	if want > MaxCoverageBits {
		return 0
	}
	return 1 << bits.Len(uint(want-1))
}

// Coverage filter sizing; MaxCoverageBits is the top-k core's bound.
const (
	CoverageBitsPerPeer = 16
	MaxCoverageBits     = 1 << 16
)

// MessageBytes estimates the size of one exchange message of p over n
// peers.
func (p *Plan) MessageBytes(n int) int {
	switch p.Kind {
	case PlanAggregate:
		per := 0
		for _, c := range p.Components {
			switch {
			case c.Kind.Additive():
				per += MassBytes
			case c.Kind == CompMin || c.Kind == CompMax:
				per += ExtremeBytes
			case c.Kind == CompQuantile:
				per += QuantileBytes
			default:
				per += DistinctBytes
			}
		}
		groups := 1
		if len(p.GroupBy) > 0 {
			groups = p.MaxGroups
			per += GroupKeyBytes * len(p.GroupBy)
		}
		return MsgHeaderBytes + groups*per
	case PlanTopK, PlanReserve:
		// Lists carry the top k and the reserve kept to backfill crashes.
		entry := EntryHeaderBytes + EntryValueBytes*(len(p.Columns)+len(p.Order))
		return MsgHeaderBytes + (p.K+TopKReserve(p.K))*entry + CoverageBits(n)/8
	}
	return 0
}

// IndirectProbes is how many other members a peer asks to reach a member
// it could not reach itself before leaving it out of a query (SWIM's k;
// node.DefaultConfig's IndirectProbes).
const IndirectProbes = 3

// Explain describes how p runs over n peers: the protocol and why, what is
// answered from membership tags, the components or the ordering, and the
// expected cost.
func Explain(p *Plan, n int) string {
	var b strings.Builder
	w := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	w("statement", "%s", strings.TrimPrefix(p.Text, "EXPLAIN "))
	w("plan", "%s  (hash %s)", p.Kind, p.Hash())
	if p.Watch != nil {
		w("watch", "a standing query: answered anew every %s, each epoch a fresh gossip instance started by this peer, until the client stops it", answer.FormatDuration(p.Watch.EverySeconds))
	}
	switch p.Kind {
	case PlanLocal:
		switch a := p.Local.Alter; {
		case a != nil && a.Resize > 0:
			w("protocol", "the owner of %s resizes it to %d: it claims the next candidates (gossip top-k over the free peers with the subcloud's own WHERE and ORDER BY) or releases its lowest-ranked members", quoteName(a.Name), a.Resize)
			w("why", "all or nothing: if it cannot reach %d members, it releases what it claimed and the subcloud keeps its size", a.Resize)
		case a != nil:
			w("protocol", "none: the owner of %s renews every member's lease for %s from now, peer by peer", quoteName(a.Name), answer.FormatDuration(a.ExtendSeconds))
			w("why", "all or nothing: if a member refuses, the others are renewed back to the old lease length")
		case p.Local.Const:
			w("protocol", "none: a SELECT without FROM computes constants, answered at once by the asking peer")
		case p.Local.Release != "":
			w("protocol", "none: the owner releases the leases of %s it holds, peer by peer", quoteName(p.Local.Release))
		default:
			w("protocol", "none: SHOW %s is answered by the asking peer from its member list and catalog", p.Local.Show)
		}
		return b.String()
	case PlanAggregate:
		w("protocol", "gossip aggregation: push-pull averaging of mass vectors, extremal propagation, mergeable sketches")
		w("why", "the statement computes aggregates%s", groupedWhy(p))
		if p.Table == TableLeases {
			w("source", "leases: every peer contributes a row per lease in its ledger (up to %d), added up per group as if each row were a peer; its hours are what the owner's signed receipts span, on the owner's clock", MaxLedgerRows)
		}
	case PlanTopK:
		w("protocol", "gossip top-k: peers merge bounded candidate lists by the ORDER BY keys")
		if p.Limited {
			w("why", "a SELECT without aggregates, LIMIT %d", p.K)
		} else {
			w("why", "a SELECT without aggregates and without LIMIT: every matching peer, up to %d", p.K)
		}
	case PlanReserve:
		r := p.Reserve
		w("protocol", "gossip top-k for %d candidates (%d + slack), then lease claims in rank order", p.K, r.N)
		mode := "all-or-nothing"
		if r.AtLeast > 0 {
			mode = fmt.Sprintf("at least %d", r.AtLeast)
		}
		w("why", "RESERVE %d AS %s for %s, %s", r.N, quoteName(r.Name), answer.FormatDuration(r.LeaseSeconds), mode)
		if r.NoRepair {
			w("repair", "none (NO REPAIR): members that fail, leave or refuse a renewal are dropped")
		} else {
			w("repair", "the owner replaces members that fail, leave or refuse a renewal with the same search, one all-or-nothing claim each")
		}
	}
	explainFilter(&b, w, p)
	switch p.Kind {
	case PlanAggregate:
		for i, g := range p.GroupBy {
			w(fmt.Sprintf("group key %d", i), "%s (up to %d groups tracked per peer)", g, p.MaxGroups)
		}
		for i, c := range p.Components {
			arg := "every matching peer"
			if c.Arg != nil {
				arg = c.Arg.String()
			}
			w(fmt.Sprintf("component %d", i), "%s of %s", c.Kind, arg)
		}
		for i, a := range p.Aggs {
			w(fmt.Sprintf("aggregate %d", i), "%s from components %v%s", a.Text, a.Comps, aggNote(a))
			w("  a liar", "%s", liarNote(p, a))
		}
		switch {
		case p.Table == TableLeases:
			w("check", "%d members the asker samples by a hash of the query show their ledgers with their owners' signed receipts (docs/SECURITY.md): a row that bills hours no receipt backs contests the answer, naming its member; the sums are compared as for peers", SampleSize)
		case !p.FromTags:
			w("check", "the answer is compared with the signed records of %d members the asker samples by a hash of the query (docs/SECURITY.md): contested past the sample's interval, or if a sampled claim stands out; where the first %d leave a doubt, %d more are asked", SampleSize, SampleSize, SampleMore)
		}
	default:
		keys := make([]string, len(p.Order))
		for i, k := range p.Order {
			keys[i] = k.Expr.String()
			if k.Desc {
				keys[i] += " DESC"
			}
		}
		w("order", "%s, then node name (ties)", strings.Join(keys, ", "))
		w("k", "%d", p.K)
	}
	cols := make([]string, len(p.Columns))
	for i, c := range p.Columns {
		cols[i] = fmt.Sprintf("%s %s", c.Name, c.Kind)
	}
	if len(cols) > 0 {
		w("columns", "%s", strings.Join(cols, ", "))
	}
	if p.Empty() {
		w("answered", "by the asking peer alone: LIMIT 0 has no rows, no gossip")
		return b.String()
	}
	if p.FromTags {
		w("from tags", "yes: every attribute read is in Serf membership; answered from the member list, no gossip")
		return b.String()
	}
	w("from tags", "no: the statement reads attributes only the peers themselves know")
	exp := ExpectedRounds(p.Kind, n, p.Accuracy)
	spread := SpreadRoundsFanout(n, FanoutFor(p.Kind, n))
	if p.Kind == PlanAggregate {
		w("rounds", "≈%d to reach every peer, then ≈%d for N=%d at accuracy %s; budget %d", spread, exp, n, Num(KindRatio, p.Accuracy), p.RoundBudget(n))
	} else {
		w("rounds", "≈%d to reach every peer, then ≈%d for N=%d until every peer holds the exact top-%d; budget %d", spread, exp, n, p.K, p.RoundBudget(n))
	}
	w("churn", "a member the query's peers cannot reach (a failed exchange, 2 pings, indirect probes through %d others) is left out by all of them: flows with it undone, its rows dropped; the answer is over the others and names them (partial if more are lost unnamed than accuracy %s allows)", IndirectProbes, Num(KindRatio, p.Accuracy))
	msg := p.MessageBytes(n)
	w("messages", "≈%d per peer per round, ≈%s in all until convergence", MessagesPerPeer, thousands(MessagesPerPeer*n*exp))
	w("size", "≈%s per message, ≈%s per peer per round", answer.FormatBytes(float64(msg)), answer.FormatBytes(float64(MessagesPerPeer*msg)))
	if p.TimeoutSeconds > 0 {
		w("timeout", "%s", answer.FormatDuration(p.TimeoutSeconds))
	}
	return b.String()
}

// SampleSize is how many members an asker samples to check a gossip
// aggregate (run.DefaultSampleCheck; EXPLAIN says it).
const SampleSize = 64

// SampleMore is how many more members the check asks where the first
// SampleSize leave a doubt (run.SampleCheck.More).
const SampleMore = 7 * SampleSize

// FallbackPrecision and FallbackMax: where the sample's answer stands in
// for a bent robust one, it grows until within FallbackPrecision at 95%,
// or to FallbackMax members (run.Fallback).
const (
	FallbackPrecision = 0.03
	FallbackMax       = 4096
	// FallbackMaxWidth: a sample wider than this at 95% (a small group,
	// at FallbackMax) does not stand in; the answer stays contested.
	FallbackMaxWidth = 0.05
)

// RobustAggs reports whether every aggregate of p is one a minority
// cannot move — a trimmed mean or a quantile — so that where made-up
// flows bend its gossip, its sample may answer (run.Robust, run.Fallback).
func (p *Plan) RobustAggs() bool {
	for _, a := range p.Aggs {
		if a.Func != AggPercentile && a.Func != AggTrimmedAvg {
			return false
		}
	}
	return len(p.Aggs) > 0
}

// liarNote says what one lying member can do to aggregate a, and what the
// sample check catches (docs/SECURITY.md).
func liarNote(p *Plan, a Aggregate) string {
	if p.Table != TablePeers {
		return "a peer bills only hours its owners' receipts back where it is sampled; one that is not sampled moves the sums within the sample's interval, as made-up flows do"
	}
	bound, typical, most := "its inputs' bounds", "", ""
	if a.Arg != nil && a.Arg.Op == OpAttr {
		if at, ok := DefaultCatalog().Lookup(a.Arg.Name); ok && at.Max != 0 {
			bound = Num(at.Kind, at.Max).String()
			if at.Typical > 0 {
				most = Num(at.Kind, at.Typical).String()
				typical = fmt.Sprintf(" above %s (more than any machine reports) or", most)
			}
		}
	}
	flows := "made-up flows move it within the bounds a receiver checks; the check contests a bend past the sample's interval (for a count at a share of one half, ±28 points of it at 64 sampled; where they leave a doubt, 448 more narrow it to ±10 points): a smaller one passes"
	// Where every aggregate is robust, the sample answers a bent
	// histogram (run.Robust, run.Fallback).
	standIn := "; then, as this statement has an aggregate that is not a trimmed mean or a quantile, the answer stays contested"
	if p.RobustAggs() {
		standIn = fmt.Sprintf("; then the sample's own answer stands in (status sampled), its members grown until it is within %g%% at 95%% (at most %d)", 100*FallbackPrecision, FallbackMax)
		if len(p.GroupBy) > 0 {
			standIn += ", each group holding enough sampled values (else it stays contested); a group no sampled member is in is left out, and named"
		}
		standIn += fmt.Sprintf("; a sample still wider than %g%% at %d members leaves the answer contested", 100*FallbackMaxWidth, FallbackMax)
	}
	switch a.Func {
	case AggCount:
		return "counts once, as itself (it may say it matches); " + flows
	case AggSum, AggAvg:
		return fmt.Sprintf("may claim up to %s; a sampled claim%s 10× the others is contested; %s", bound, typical, flows)
	case AggStddev, AggVariance:
		above := "; made-up flows that raise it are not seen"
		if most != "" {
			above = fmt.Sprintf(", or the squares above what values up to %s (the most any machine reports) could make with the sum: a rise within that is not seen (a sample cannot rule out large values it did not draw), and one machine honestly above %s contests it", most, most)
		}
		return fmt.Sprintf("may claim up to %s; its sum and count are checked as SUM's and COUNT's (a sampled claim%s 10× the others is contested); made-up flows of its squares are contested where they put the variance below 0, below what the sampled values alone make, or below the sample's interval (wide for a skewed attribute: a variance lowered but not to 0 may pass)%s", bound, typical, above)
	case AggPercentile:
		return "moves it by one rank as itself; made-up histogram flows are contested when they move the histogram's mass (the members with a value) past the sample's count, or the value past the sample's order statistics (±30% of rank at 64 sampled)" + standIn
	case AggTrimmedAvg:
		return fmt.Sprintf("may claim up to %s, which lands among the values left out (more such claims than the trim leaves out are contested), so it moves the answer by one value's share, not its own; made-up histogram flows are contested when they move the histogram's mass past the sample's count, or its quartiles or trimmed mean past the sample's%s", bound, standIn)
	case AggMin, AggMax:
		if typical != "" {
			return fmt.Sprintf("decides it with its own value, up to %s: contested%s; a claim within the honest range is not seen (one peer's value, signed by it: it cannot set another's)", bound, strings.TrimSuffix(typical, " or"))
		}
		return fmt.Sprintf("decides it with its own value, up to %s: not checked (one peer's value, signed by it: it cannot set another's)", bound)
	case AggCountDistinct:
		return "adds its own value, or inflates the sketch within its ranks: not checked"
	}
	return "not checked"
}

func groupedWhy(p *Plan) string {
	if len(p.GroupBy) == 0 {
		return ""
	}
	return fmt.Sprintf(", grouped by %d key(s)", len(p.GroupBy))
}

// aggNote names the estimator an aggregate uses (docs/PROTOCOLS.md).
func aggNote(a Aggregate) string {
	switch a.Func {
	case AggCount:
		return ": a count by flow updating"
	case AggSum:
		return ": a sum by flow updating"
	case AggAvg:
		return ": a sum ÷ a count, each by flow updating"
	case AggStddev, AggVariance:
		return ": sums of values and squares and a count by flow updating, sample (n-1)"
	case AggPercentile:
		return fmt.Sprintf(": the nearest rank at %s in a histogram averaged by flow updating (buckets within 1%%)", answer.FormatNumber(a.Param))
	case AggTrimmedAvg:
		return fmt.Sprintf(": the mean of a histogram averaged by flow updating without %s%% of it at each end (buckets within 1%%)", answer.FormatNumber(100*a.Param))
	case AggMin, AggMax:
		return ": extremal propagation of values their witnesses signed"
	case AggCountDistinct:
		return ": HyperLogLog registers merged by maximum"
	}
	return ""
}

// explainFilter lists the filter's conjuncts and which can be read from tags.
func explainFilter(b *strings.Builder, w func(string, string, ...any), p *Plan) {
	if p.Filter == nil {
		w("filter", "none: every peer takes part")
		return
	}
	var parts []*Expr
	var split func(e *Expr)
	split = func(e *Expr) {
		if e.Op == OpAnd {
			split(e.Args[0])
			split(e.Args[1])
			return
		}
		parts = append(parts, e)
	}
	split(p.Filter)
	for i, e := range parts {
		where := "evaluated by each peer on its own record"
		if readsOnlyMembership(e) {
			where = "from membership tags"
		}
		label := "filter"
		if i > 0 {
			label = "  and"
		}
		w(label, "%s  [%s]", e, where)
	}
}

// thousands writes n with comma separators: 1,234,567.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// CloudShape is what an asking peer of a pooled cloud knows of it, for
// EXPLAIN (ExplainPools): its own pool, and — at a gateway, which is a
// member of the cloud pool — the pools the cloud pool lists.
type CloudShape struct {
	// Pool is the asker's pool; PoolPeers its live members.
	Pool      string
	PoolPeers int
	// Gateways is how many gateways each pool has, Asked how many of
	// them run a statement first (the others only when those disagree);
	// Mine are the asker's pool's.
	Gateways, Asked int
	Mine            []string
	// Pools are the pools the cloud pool lists (nil: this peer is not a
	// gateway, and does not see the cloud pool).
	Pools []string
	// PollWait is how long a poll (an asker's of its coordinators, theirs
	// of the gateways) is held for the reports to be ready; PollEvery
	// paces polls of a peer that does not hold them; Timeout bounds a
	// statement's wait for the pools.
	PollWait, PollEvery, Timeout float64 // seconds
}

// PartialBytes is about how large one pool's partial of p is (a gateway's
// report, run.Partial, before its signature): an aggregate's per-group
// state, as in a gossip message; a top-k's list, without the reserve and
// the coverage filter a pool's gossip carries.
func (p *Plan) PartialBytes() int {
	if p.Kind == PlanAggregate {
		return p.MessageBytes(1)
	}
	return MsgHeaderBytes + p.K*(EntryHeaderBytes+EntryValueBytes*(len(p.Columns)+len(p.Order)))
}

// ReportBytes is a gateway's report beside its partial: the query, pool,
// plan hash, status, counts, and the gateway's signature.
const ReportBytes = 160

// CloudExchanges is what the cloud level adds to a statement's rounds in a
// cloud of pools (node/pools.go): the asker starts it at a gateway of its
// pool, that gateway starts it at every pool's gateways, they report back
// when their pool's answer is final, and the asker polls its gateway —
// four exchanges one after the other, after the slowest pool's rounds.
const CloudExchanges = 4

// CloudBytes is about what the cloud level sends for one pool: from each
// of the 2 coordinators, the statement to each of asked gateways (with a
// report's header and signature) and a report back.
func (p *Plan) CloudBytes(asked int) int {
	return 2 * asked * (len(p.Text) + ReportBytes + p.PartialBytes() + ReportBytes)
}

// ExplainPools is EXPLAIN's second level in a pooled cloud (node's pools
// role, docs/PROTOCOLS.md "Pools"): how the statement that Explain
// describes for one pool runs in every pool and how their partials merge.
func ExplainPools(p *Plan, c CloudShape) string {
	var b strings.Builder
	w := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	if p.Kind == PlanReserve {
		w("claims", "in every pool: a member of another pool is claimed, renewed, checked and released through a gateway of this pool and one of its own, which relay the owner's signed requests and the member's signed replies; "+
			"each end believes the other's key only as a majority of its pool's gateways vouch for it, and that a member is gone only as a majority of them say so")
	}
	if p.Kind != PlanAggregate && p.Kind != PlanTopK && p.Kind != PlanReserve || p.Empty() {
		return ""
	}
	how := "runs the statement as above"
	if p.FromMemberLists() {
		how = "answers the statement as above, from its gateways' member lists (no gossip)"
	}
	w("levels", "two: every pool %s (N = a pool's members: %d in this peer's pool, %s), and their partials merge across the cloud pool", how, c.PoolPeers, c.Pool)
	if c.Pools != nil {
		w("pools", "%d in the cloud pool as this gateway sees it: %s (SHOW POOLS counts their members)", len(c.Pools), strings.Join(c.Pools, ", "))
	} else {
		w("pools", "known to the gateways, which are members of the cloud pool; this peer is not one (SHOW POOLS asks them)")
	}
	if p.Subcloud != "" {
		w("subcloud", "%s's members may be in any pool, its name in its owner's: the owner is fixed first — this peer's pool's, else the one pool whose gateways find it there (a run in every pool; a name two other pools hold is ambiguous, one none holds unknown) — then every pool runs the statement over that owner's members, and its gateways say which owner in their signed reports", p.Subcloud)
		if p.ByOwner {
			w("by owner", "asked at its owner, which lists its %d members: each pool's gateways answer from their member lists over those of them live in their pool, without gossip", len(p.Members))
		}
	}
	w("coordinator", "two gateways of pool %s (of %s): this peer starts the statement at both and believes only what both say of the pools and their gateways' keys", c.Pool, strings.Join(c.Mine, ", "))
	w("cloud level", "each coordinator asks %d of every pool's %d gateways over the cloud pool (Serf, WAN profile) to run the statement in their pool as an ordinary asker, and polls them, each poll held until their report is ready (up to %s); the others only when those %d do not agree (a gateway runs a query once, whoever asks): an honest pool runs it %d times", c.Asked, c.Gateways, answer.FormatDuration(c.PollWait), c.Asked, c.Asked)
	what := fmt.Sprintf("means of the %d components per group, with the members they average over", len(p.Components))
	if p.Kind == PlanTopK || p.Kind == PlanReserve {
		what = fmt.Sprintf("top-%d list (node, key, row)", p.K)
	}
	tags := p.FromMemberLists()
	check, same := "status and sample check", fmt.Sprintf("the same rows, numbers within accuracy %s", Num(KindRatio, p.Accuracy))
	if tags {
		check, same = "status", "the same rows to the last digit, as member lists that agree give them"
	}
	w("partial", "each gateway reports its pool's %s, with the pool's %s, signed by its identity: ≈%s a report", what, check, answer.FormatBytes(float64(p.PartialBytes()+ReportBytes)))
	w("merge", "a pool counts once (run.Merge), when most of its %d gateways report agreeing partials (%s): one lying gateway is outvoted; gateways with no majority contest the answer, and a pool with no report makes it partial, each naming the pool", c.Gateways, same)
	if p.Kind == PlanAggregate && !tags {
		liars := "a pool whose gateways' sample check contests its partial is contested, naming the pool"
		if p.Table == TablePeers && p.RobustAggs() { // run.Robust
			liars += "; where made-up flows bent its trimmed means or quantiles, the pool's sample stands in for them: its gateways draw the same members, by the statement's ID across the cloud, and report the sampled records as the pool's partial (status sampled, the pool named)"
		}
		w("liars", "%s", liars)
	}
	rounds := "the slowest pool's rounds (above, for its N)"
	if p.FromMemberLists() {
		rounds = "its gateways' reading of their member lists"
	}
	w("cloud hops", "%d exchanges one after the other beside %s: before them the asker's start at its coordinators and theirs at every pool's gateways, after them the gateways' reports and the asker's poll (at least: the asker reaches its two coordinators in turn)", CloudExchanges, rounds)
	total := ""
	if c.Pools != nil {
		total = fmt.Sprintf("; ≈%s for the %d pools", answer.FormatBytes(float64(len(c.Pools)*p.CloudBytes(c.Asked))), len(c.Pools))
	}
	w("cloud bytes", "≈%s a pool: the statement to and a report from each of its %d gateways asked, from each of the 2 coordinators, held polls aside%s", answer.FormatBytes(float64(p.CloudBytes(c.Asked))), c.Asked, total)
	w("cloud cost", "per pool, from each of the 2 coordinators: %d starts (%d if they disagree) and a held poll (one every %s while it runs) for each gateway asked; the asker polls its coordinators so; the pools run at once, so the answer waits for the slowest pool (up to %s)", c.Asked, c.Gateways, answer.FormatDuration(c.PollWait), answer.FormatDuration(c.Timeout))
	return b.String()
}
