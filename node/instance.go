package node

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// The statuses of an answer (answer.Meta.Status).
const (
	StatusExact     = answer.StatusExact
	StatusConverged = answer.StatusConverged
	StatusPartial   = answer.StatusPartial
)

// outcome is what the asker's round hands its query: the answer, or busy
// — the query stopped for load: the statement's error, not an answer.
type outcome struct {
	ans  *answer.Answer
	busy error
}

// instance is one peer's part in one query: the pure run.Instance and
// what the runtime keeps beside it. The runtime's lock guards it: its
// methods are called with that lock held, and do no I/O.
type instance struct {
	since     time.Time // when this peer made it
	id        QueryID
	run       *run.Instance
	kind      protoKind
	planBytes []byte
	coord     []byte // the asker's network coordinate
	asker     string // the asker's name
	// outOfRounds: the last answer read (result1) was partial for want
	// of convergence within the budget alone — what made-up flows cause,
	// and what the sample may stand in for (finishSample).
	outOfRounds bool
	self        string // this peer's name
	// rec is the record this peer contributed (a FROM peers plan): what
	// it shows the asker's sample check (answerSample), not the record
	// as it is by then.
	rec      query.Record
	coverage uint32 // the top-k's coverage filter size
	planHash string
	origin   bool
	// finishedAt is the node's round when the asker's answer became
	// final; the instance lingers from then on.
	finishedAt int64
	reported   bool
	// last is the asker's last answer that could be read (nil before).
	last *answer.Answer

	// The asker's bookkeeping: the members at the start, those that
	// joined and left since, and the peers that refused to take part.
	atStart map[string]bool
	// has are the peers known to have the query: they get no plan.
	// handed are those this peer handed it over to (runtime.handOver),
	// not handed it again; they still get the plan until they are heard
	// holding it: a peer at capacity that never joined refuses a request
	// with the plan and tells the asker so, which it cannot without.
	has          map[peer.ID]bool
	handed       map[peer.ID]bool
	joined, left map[string]bool
	refused      map[string]bool
	// excluded are the members left out of the query (a grow-only set,
	// carried with every message of it: entry.Excluded), with why: lost
	// while it ran — a connection refused, direct and indirect probes
	// unanswered, Serf's verdict — or, at the asker, a clock beyond the
	// replay window. Every peer undoes its flows with them and drops what
	// they contributed (run.Instance.Exclude); the answer is about the
	// others, and names them. wire is the set as entries carry it, sorted,
	// at most MaxExcluded; beyond, a member is left out at this peer only
	// (overflow counts them): Flow Updating lets each survivor undo its
	// own flows with a lost member, but the others may keep theirs, so
	// those count against the accuracy as unconfirmed losses do
	// (blocking). wire is never changed in place: entries share it and
	// are encoded outside the runtime's lock, so a new member makes a new
	// slice.
	excluded map[string]string
	wire     []string
	overflow int
	// selfSkew says, instead, that most members refused this peer's
	// exchanges — its own clock is off — and the answer is partial.
	selfSkew string

	// graceUntil: the asker reached its budget while it still probed a
	// suspect, and holds its answer back until the probe ends or this
	// time (awaitProbes).
	graceUntil time.Time

	started  time.Time
	progress func(answer.Progress)
	result   chan outcome
}

// newInstance creates this peer's instance of plan, asked by asker,
// with rows as its contribution (its record for this query, or its
// ledger's rows). cfg is the runtime's part of the binding — its random
// source, the round's peer, the membership, this peer's name, Peers —
// to which the instance adds the asker's and the coverage; an asker's
// instance does not wait for the members it leaves out.
func newInstance(id QueryID, plan *query.Plan, wire, coord []byte, asker string, coverage uint32, origin bool, rows []query.Record, since time.Time, cfg run.Config) (*instance, error) {
	q := &instance{since: since, id: id, kind: protoAggregate, planBytes: wire, coord: coord, asker: asker, self: cfg.Self, coverage: coverage, origin: origin,
		result: make(chan outcome, 1), has: map[peer.ID]bool{}, joined: map[string]bool{}, left: map[string]bool{}, refused: map[string]bool{},
		excluded: map[string]string{}}
	if members := cfg.Members; origin && members != nil {
		// A peer that refused is not waited for: the answer is about the
		// others, and says so.
		cfg.Members = func() []string {
			var out []string
			for _, m := range members() {
				if !q.out(m) {
					out = append(out, m)
				}
			}
			return out
		}
	}
	cfg.Asker, cfg.Coverage = peerID(asker), int(coverage)
	b, err := run.Bind(plan, cfg)
	if err != nil {
		return nil, err
	}
	if q.run, err = b.NewRows(origin, rows); err != nil {
		return nil, err
	}
	if b.Protocol() == run.TopK {
		q.kind = protoTopK
	}
	if origin {
		q.planHash = plan.Hash()
	}
	return q, nil
}

// peerID is a member's ID in the cores: its name's hash.
func peerID(name string) peer.ID { return peer.ID(hash64(name)) }

// hash64 is FNV-1a: names to the cores' peer IDs.
func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// entry wraps one of the core's messages for the batch. A request to a
// peer not known to have the query carries the plan, the asker's name and
// coordinate and the coverage size, so that it can join; a peer that has
// sent this peer a message of the query has it, and gets only the message:
// the plan goes once, not every round.
func (q *instance) entry(msg run.Message, request bool, to peer.ID) entry {
	e := entry{ID: q.id, Kind: q.kind, Round: uint32(q.run.Round()), msg: msg, Excluded: q.wire}
	if request && !q.has[to] {
		e.Plan, e.Origin, e.Asker, e.Coverage = q.planBytes, q.coord, q.asker, q.coverage
	}
	return e
}

// heard notes that a peer has the query (it sent a message of it).
func (q *instance) heard(from peer.ID) { q.has[from] = true }

// expired reports whether the instance can be forgotten at node round now.
func (q *instance) expired(round int64, linger int, now time.Time, hold time.Duration) bool {
	if q.origin {
		// The asker's instance ends with its answer, at its budget or
		// after a short wait for probes (awaitProbes), then lingers.
		return q.run.Final() && round > q.finishedAt+int64(linger)
	}
	// A peer's instance outlives the longest the asker runs (its budget
	// stretches over rounds in which nothing reached it, and is held
	// while lost members may not have been found: Hold); the news that
	// the query ended usually drops it long before.
	rounds := q.run.Round() - linger
	return rounds > run.HoldFactor*run.MaxRoundsFactor*q.run.Budget() ||
		rounds > run.MaxRoundsFactor*q.run.Budget() && now.Sub(q.since) > 2*hold
}

// membershipChanged notes, at the asker, a member event during the query.
func (q *instance) membershipChanged(e network.Event) {
	if !q.origin || q.reported {
		return
	}
	for _, m := range e.Members {
		switch e.Kind {
		case network.MemberJoined:
			if !q.atStart[m] {
				q.joined[m] = true
			}
			delete(q.left, m)
		case network.MemberLeft, network.MemberFailed:
			if q.atStart[m] || q.joined[m] {
				q.left[m] = true
			}
			delete(q.joined, m)
		}
	}
}

// refuse notes, at the asker, a peer that would not take part.
func (q *instance) refuse(peer string) {
	if !q.reported {
		q.refused[peer] = true
	}
}

// out reports whether a member is left out of the answer: it refused to
// take part, or it is excluded.
func (q *instance) out(m string) bool {
	_, excluded := q.excluded[m]
	return q.refused[m] || excluded
}

// exclude leaves a member out of the query at this peer, for why; it
// reports whether that was new. The asker is never left out of its own
// query, nor this peer out of its instance: left out of one it joined by
// the others, it drops the query instead (the runtime: takeExcluded).
func (q *instance) exclude(name, why string) bool {
	if _, ok := q.excluded[name]; ok || name == q.asker || name == q.self {
		return false
	}
	q.excluded[name] = why
	if len(q.wire) < MaxExcluded {
		w := make([]string, len(q.wire), len(q.wire)+1)
		copy(w, q.wire)
		w = append(w, name)
		sort.Strings(w)
		q.wire = w // a new array: the entries of this round's exchanges still read the old one
	} else {
		q.overflow++
	}
	q.run.Exclude(peerID(name))
	return true
}

// population is how many members the answer is about: the live ones less
// those left out.
func (q *instance) population(members map[string]bool) int {
	k := len(members)
	for m := range members {
		if q.out(m) {
			k--
		}
	}
	return max(k, 1)
}

// noteSkew leaves out of the query the members whose clocks are off from
// this one's (skewed: among members, their clock minus this one's) —
// unless most are, and then this peer's own clock is off: the answer is
// partial, and says so.
func (q *instance) noteSkew(skewed map[string]time.Duration, members map[string]bool) {
	if len(skewed) == 0 {
		return
	}
	if others := len(members) - 1; others >= 2 && 2*len(skewed) > others {
		offs := make([]time.Duration, 0, len(skewed))
		for _, off := range skewed {
			offs = append(offs, off)
		}
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		q.selfSkew = fmt.Sprintf("clock skew at %s (%s): %d of %d members refused its exchanges for the time on them; set its clock (NTP)",
			q.self, network.FormatOffset(-offs[len(offs)/2]), len(skewed), others)
		return
	}
	if q.selfSkew != "" {
		return
	}
	for m, off := range skewed {
		q.exclude(m, "clock skew "+network.FormatOffset(off))
	}
}

// awaitProbes says whether an asker at the end of its budget holds its
// answer back: a probe of a suspect is still out (pending), and its
// outcome decides between a final answer and a partial one — under loss,
// most suspects are peers whose messages were lost, and a probe clears
// them. It holds at most grace (one whole probe) past the budget; the
// gossip goes on meanwhile. Searches for RESERVE and repairs do not wait.
func (q *instance) awaitProbes(suspects []string, pending bool, grace time.Duration, now time.Time) bool {
	if q.run.Plan().Reserve != nil {
		// A RESERVE's (or a repair's) search: its claims check every
		// candidate themselves, and a repair must not wait.
		return false
	}
	if run.Blocking(len(suspects), max(len(q.atStart), 1), q.run.Plan().Accuracy) == 0 {
		return false // too few to move the answer (blocking)
	}
	if !pending {
		return false
	}
	if q.graceUntil.IsZero() {
		q.graceUntil = now.Add(grace)
	}
	return now.Before(q.graceUntil)
}

// report is one round's news for the asker, delivered outside the lock.
type report struct {
	q        *instance
	progress answer.Progress
	// final is the answer, once there is one; busy instead says the query
	// stopped for load.
	final *answer.Answer
	busy  error
	// unreadable says why the answer could not be read (failed): the
	// round has no new estimate to show.
	unreadable error
}

// report applies the convergence rule at the end of the asker's round
// (the node's round, at now). A report with a final answer ends the
// query: the runtime spreads the news.
func (q *instance) report(round int64, now time.Time, members map[string]bool, suspects []string) (report, bool) {
	peers := q.population(members)
	a, err := q.run.Report(peers, run.Blocking(len(suspects)+q.overflow, peers, q.run.Plan().Accuracy))
	if err != nil {
		if q.reported {
			return report{}, false
		}
		return q.failed(round, now, members, suspects, err), true
	}
	q.last = a
	rp := report{q: q, progress: answer.Progress{Round: a.Rounds, Budget: a.Budget, Peers: peers, ErrEstimate: a.ErrEstimate,
		Estimate: &answer.Answer{Columns: a.Columns, Rows: a.Rows}}}
	if a.Final && !q.reported {
		q.reported = true
		q.finishedAt = round
		rp.final = q.result1(a, members, suspects, now)
	}
	return rp, true
}

// failed ends the asker's query when its answer cannot be read (run's
// Report fails: a row or group key that does not decode): waiting would
// not change it, and the instance would never expire. The answer is the
// last one read, partial, and says why.
func (q *instance) failed(round int64, now time.Time, members map[string]bool, suspects []string, err error) report {
	q.run.Stop()
	q.reported, q.finishedAt = true, round
	a := &answer.Answer{Columns: q.run.Plan().AnswerColumns(), Meta: &answer.Meta{}}
	if q.last != nil { // a copy: the last answer's rows, as far as it got
		meta := *q.last.Meta
		a = &answer.Answer{Columns: q.last.Columns, Rows: q.last.Rows, Nodes: q.last.Nodes, Meta: &meta}
	}
	a.Rounds, a.Budget, a.Converged, a.Final = q.run.Round(), q.run.Budget(), false, true
	res := q.result1(a, members, suspects, now)
	res.Status, res.Converged = StatusPartial, false
	res.Reason = fmt.Sprintf("stopped at round %d: the answer could not be read (%v)", a.Rounds, err)
	return report{q: q, final: res, unreadable: err}
}

func (rp report) deliver() {
	if rp.q.progress != nil && rp.unreadable == nil && rp.busy == nil {
		rp.q.progress(rp.progress)
	}
	if rp.final != nil || rp.busy != nil {
		rp.q.result <- outcome{ans: rp.final, busy: rp.busy} // buffered: sent once
	}
}

func sortedNames(set map[string]bool, keep func(string) bool) []string {
	var out []string
	for m := range set {
		if keep == nil || keep(m) {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// leftOut names in m the members left out of its answer (excluded, with
// why): the first MaxNamed, how many, and why, by reason, names first, in
// its warning: "3 member(s) left out of the answer, which is about the
// others: peer-3 (its address refused the connection), peer-9
// (unreachable), …".
func leftOut(m *answer.Meta, excluded map[string]string) {
	if len(excluded) == 0 {
		return
	}
	names := make([]string, 0, len(excluded))
	for name := range excluded {
		names = append(names, name)
	}
	sort.Strings(names)
	m.Excluded, m.ExcludedCount = names[:min(len(names), answer.MaxNamed)], len(names)
	parts := make([]string, 0, min(len(names), 10))
	for i, name := range names {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-10))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", name, excluded[name]))
	}
	m.Warning = fmt.Sprintf("%d member(s) left out of the answer, which is about the others: %s", len(names), strings.Join(parts, ", "))
}

// outOfRounds is the reason of an answer that ran to its budget of
// rounds: with which of the rule's conditions did not hold (Rule.Why), so
// that a partial answer says what it waited for — on a machine too busy
// to mix, the participants' estimate still off the membership's count.
func outOfRounds(budget int, rule string) string {
	w := fmt.Sprintf("not converged within the budget of %d rounds", budget)
	if rule != "" {
		w += " (the rule waited for: " + rule + ")"
	}
	return w
}

// withoutNodes drops from a top-k's rows those of the named members.
func withoutNodes[V any](a *answer.Answer, drop map[string]V) {
	var rows [][]answer.Value
	var nodes []string
	for i, name := range a.Nodes {
		if _, out := drop[name]; !out {
			rows, nodes = append(rows, a.Rows[i]), append(nodes, name)
		}
	}
	a.Rows, a.Nodes = rows, nodes
}

// result1 is the asker's answer, a (run's), at now, with how complete it
// is. A top-k's rows never name a member the asker suspects.
func (q *instance) result1(a *answer.Answer, members map[string]bool, suspects []string, now time.Time) *answer.Answer {
	res := &answer.Answer{Columns: a.Columns, Rows: a.Rows, Nodes: a.Nodes, Meta: &answer.Meta{
		Peers: q.population(members), Participants: a.Participants, Rounds: a.Rounds, Budget: a.Budget, Final: a.Final,
		Elapsed: now.Sub(q.started).Seconds(), ErrEstimate: a.ErrEstimate, PlanHash: q.planHash,
		MembersStart: len(q.atStart), MembersEnd: len(members),
		Joined: sortedNames(q.joined, nil), Left: sortedNames(q.left, nil), Unreachable: suspects,
		Refused: sortedNames(q.refused, nil)}}
	if len(q.excluded) > 0 && q.selfSkew == "" {
		leftOut(res.Meta, q.excluded)
		if len(res.Nodes) > 0 {
			withoutNodes(res, q.excluded)
		}
	}
	if len(suspects) > 0 && len(res.Nodes) > 0 {
		bad := map[string]bool{}
		for _, s := range suspects {
			bad[s] = true
		}
		withoutNodes(res, bad)
	}
	var why []string
	unshared := run.Blocking(len(suspects)+q.overflow, res.Peers, q.run.Plan().Accuracy) > 0
	if !unshared {
		suspects = nil // too few to move the answer: not a reason for partial
	}
	q.outOfRounds = false
	switch {
	case q.selfSkew != "":
		why = append(why, q.selfSkew)
	case q.overflow > 0 && unshared:
		why = append(why, fmt.Sprintf("%d members were lost while it ran, %d more than its peers can tell each other of (%d), and %d unconfirmed: more than the accuracy allows",
			len(q.excluded), q.overflow, MaxExcluded, len(suspects)))
	case 2*len(q.excluded) > len(q.atStart) && len(q.atStart) > 2:
		why = append(why, fmt.Sprintf("%d of the %d members it started with were lost or left out while it ran: the answer is about a minority",
			len(q.excluded), len(q.atStart)))
	case len(suspects) > 0:
		why = append(why, fmt.Sprintf("%d member(s) unreachable: %s", len(suspects), strings.Join(suspects, ", ")))
	case !a.Converged:
		why = append(why, outOfRounds(a.Budget, q.run.RuleWhy()))
		q.outOfRounds = true
	}
	if len(res.Refused) > 0 {
		why = append(why, fmt.Sprintf("%d peer(s) refused to take part (at capacity)", len(res.Refused)))
		q.outOfRounds = false
	}
	res.Status, res.Converged = StatusConverged, true
	if len(why) > 0 {
		res.Status, res.Converged, res.Reason = StatusPartial, false, strings.Join(why, "; ")
	}
	return res
}
