package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/prometheus/client_golang/prometheus"
)

var _ api.Executor = (*Node)(nil)

// Compile compiles a statement against the live catalog (the built-in
// attributes and every tag the members carry).
func (n *Node) Compile(text string) (*query.Plan, error) {
	cat := n.Catalog()
	if n.rt.pools.on() {
		// A tag this peer's pool lacks may be another pool's: read as a
		// tag, and unknown only if no pool has it (pools.combine).
		cat = cat.Open()
	}
	return query.CompileText(text, cat, query.DefaultConfig())
}

// Execute runs one statement's text from this peer (api.Executor, for
// the embedded shell): Compile, then Query.
func (n *Node) Execute(ctx context.Context, text string, progress func(answer.Progress)) (*answer.Answer, error) {
	plan, err := n.Compile(text)
	if err != nil {
		return nil, err
	}
	return n.Query(ctx, plan, progress)
}

// Query runs a compiled statement from this peer and returns its answer:
// the node's one entry point for statements (Execute and Watch compile
// text and call it; the HTTP API compiles first, to refuse a statement
// that does not compile before it streams). An error beside an answer
// (ErrTimeout, a stop) says it is partial. progress, if set, is called
// each round with the current estimate, from the runtime's goroutine and
// outside its lock; it must not block for long. A WATCH is refused: it
// answers once an epoch (Watch).
func (n *Node) Query(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, error) {
	if plan.Watch != nil && !plan.Explain {
		return nil, &api.Error{Code: api.CodeStatement, Message: "WATCH answers once every epoch, for as long as it is watched: run it in the shell, with peerq query, or through the API's stream"}
	}
	if plan.Explain {
		text := query.Explain(plan, n.net.Size())
		if n.rt.pools.on() {
			text += query.ExplainPools(n.listedAtOwner(plan), n.rt.pools.shape())
		}
		return &answer.Answer{Explain: text,
			Meta: &answer.Meta{Statement: plan.Text, Protocol: plan.Kind.String(), Status: StatusExact, Peers: n.net.Size(), PlanHash: plan.Hash(), Converged: true}}, nil
	}
	start := n.now()
	res, err := n.statement(ctx, plan, progress, start)
	took := n.now().Sub(start)
	if res == nil {
		n.metrics.observe(plan, res, took)
		return nil, err
	}
	if res.Rounds > 0 {
		noteTime(&n.rt.adm.statementTime, took)
	}
	completeMeta(plan, res.Meta, err)
	n.flagAlone(plan, res.Meta)
	n.metrics.observe(plan, res, took) // after completeMeta: its status is set
	return res, err
}

// Watch runs a standing query from this peer (api.Executor).
func (n *Node) Watch(ctx context.Context, text string, each func(*answer.Answer, error) bool) error {
	plan, err := n.Compile(text)
	if err != nil {
		return err
	}
	return n.WatchPlan(ctx, plan, each)
}

// WatchPlan runs a WATCH: every EVERY, a fresh gossip instance of the
// statement (an epoch), its answer to each with its epoch and time, until
// ctx ends or each returns false. An epoch that outlasts EVERY is followed
// at once by the next. Nothing is left running at any peer when it stops:
// each epoch's instance ends with its answer, and the last one's with ctx.
func (n *Node) WatchPlan(ctx context.Context, plan *query.Plan, each func(*answer.Answer, error) bool) error {
	if plan.Watch == nil {
		return &api.Error{Code: api.CodeStatement, Message: "not a WATCH statement"}
	}
	if err := n.CheckWatch(plan); err != nil {
		return err
	}
	every := time.Duration(plan.Watch.EverySeconds * float64(time.Second))
	epoch := plan.Epoch()
	start := n.now()
	for k := 1; ; k++ {
		ans, err := n.Query(ctx, epoch, nil)
		if ctx.Err() != nil {
			return nil // stopped mid-epoch: nothing to say
		}
		if ans != nil && ans.Meta != nil {
			ans.Meta.Statement, ans.Meta.Epoch, ans.Meta.At = plan.Text, k, n.now().UTC().Format(answer.TimeFormat)
		}
		if !each(ans, err) {
			return nil
		}
		if wait := start.Add(time.Duration(k) * every).Sub(n.now()); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// CheckWatch refuses a WATCH whose epoch is shorter than a round: WatchPlan
// does, and the HTTP API asks first, so that the refusal comes before the
// answer starts.
func (n *Node) CheckWatch(plan *query.Plan) error {
	if every := time.Duration(plan.Watch.EverySeconds * float64(time.Second)); every < n.cfg.Round {
		return &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("EVERY %v is shorter than this agent's round (%v): an epoch could not even start", every, n.cfg.Round)}
	}
	return nil
}

// Words lists the names worth completing: the catalog's attributes, the
// subclouds, and in a cloud of pools the tags only other pools have
// (OtherTags).
func (n *Node) Words(context.Context) []string {
	words := append(n.Catalog().Names(), n.sc.subcloudNames()...)
	for _, t := range n.OtherTags() {
		if !slices.Contains(words, t) {
			words = append(words, t)
		}
	}
	return words
}

// OtherTags are, in a cloud of pools, the tags that other pools' members
// have, as the last SHOW ATTRIBUTES here found them (within
// Config.PoolMemory); nil in a cloud of one pool. For completion, it does
// not wait: when the pools were last asked a minute ago or more (or
// never), a SHOW ATTRIBUTES runs in the background, and the next call has
// what it found.
func (n *Node) OtherTags() []string {
	if !n.rt.pools.on() {
		return nil
	}
	others, ask := n.rt.pools.otherTags(n.now())
	if ask && n.ctx.Err() == nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.PoolTimeout)
			defer cancel()
			if _, err := n.Execute(ctx, "SHOW ATTRIBUTES", nil); err != nil {
				n.logf("completion: the other pools' tags: %v", err)
			}
		}()
	}
	return others
}

// Metrics is the node's Prometheus collector (the metrics role): its
// runtime's counters and subclouds read at scrape time, its statements'
// latency, and its exports. The HTTP API serves it at /metrics, from a
// registry of its own (no global state: an embedded cluster has many
// nodes in one process).
func (n *Node) Metrics() prometheus.Collector { return n.metrics }

// Export starts a standing query whose answers /metrics exposes:
// "SELECT … EVERY d" (or WATCH SELECT …) with aggregates, its series
// labelled export="name" (a snake_case name; "" labels them with the
// statement's text). It runs until the node closes; its first answer is
// shown once the membership has settled (Config.ExportSettle), and an
// epoch that fails keeps the last good answer and counts in
// peerq_export_failures_total.
func (n *Node) Export(name, text string) error {
	plan, err := n.CheckExport(text)
	if err != nil {
		return err
	}
	if err := CheckExportName(name); err != nil {
		return err
	}
	if name == "" {
		name = plan.Text
	}
	e := &export{name: name, text: plan.Text}
	if err := n.metrics.exports.add(e); err != nil {
		return err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.WatchPlan(n.ctx, plan, func(ans *answer.Answer, err error) bool {
			n.metrics.exports.epoch(e, ans, err, n.settled())
			return true
		})
		if err != nil { // checked above: only a broken invariant gets here
			n.logf("--export %q stopped: %v", text, err)
		}
	}()
	return nil
}

// CheckExport compiles an export's statement, as Export would run it, and
// refuses what cannot be one: it must compile, be an aggregate, and have
// an epoch this agent can keep. The agent checks its exports with it
// before it joins, and starts them (Export) after.
func (n *Node) CheckExport(text string) (*query.Plan, error) {
	if !strings.EqualFold(firstWord(text), "WATCH") {
		text = "WATCH " + text
	}
	plan, err := n.Compile(text)
	if err != nil {
		return nil, err
	}
	if plan.Kind != query.PlanAggregate {
		return nil, fmt.Errorf("--export %q: only aggregates (COUNT, SUM, AVG, … with GROUP BY) become gauges", text)
	}
	if err := n.CheckWatch(plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// CheckExportName refuses an export's name that is not snake_case: a
// letter or _, then letters, digits and _, as a Prometheus recording
// rule's name ("" is no name).
func CheckExportName(name string) error {
	for i, r := range name {
		letter := r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return fmt.Errorf("export name %q: want snake_case, a letter or _ then letters, digits and _ (it labels the series, export=\"name\")", name)
		}
	}
	return nil
}

// settled says whether the membership has not changed (no member joined,
// failed or left, and the node did not start) for Config.ExportSettle.
func (n *Node) settled() bool {
	last := n.events.lastAt()
	if last.Before(n.started) {
		last = n.started
	}
	return n.now().Sub(last) >= n.cfg.ExportSettle
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// warnAlone is said beside the answer of a peer that is alone.
const warnAlone = "only this peer is in the cluster: it has joined no one (or every other member has failed)"

// completeMeta fills in what every statement's answer says, whichever
// path answered it: the statement and its protocol, whether its timeout
// ended it (err), that this peer is alone (unless the path had a warning
// of its own), and its status where the path left it to Converged.
func completeMeta(plan *query.Plan, m *answer.Meta, err error) {
	m.Statement, m.Protocol, m.Timeout = plan.Text, plan.Kind.String(), errors.Is(err, api.ErrTimeout)
	if m.Warning == "" && (m.MembersEnd == 1 || m.Peers == 1 && !m.FromTags) {
		m.Warning = warnAlone
	}
	if m.Status == "" {
		m.Status = StatusConverged
		if !m.Converged {
			m.Status = StatusPartial
		}
	}
}

// flagAlone makes partial an exact or converged answer over the peers
// (a SELECT, not RESERVE, RELEASE, ALTER or SHOW, which do not count
// the cloud) of a peer that has met none of the peers it was to join —
// its --join seeds, or those it knew before it restarted (overlay.Alone):
// it answers for a cloud of one that it knows is larger. Restarted with
// another --pool, or with none, it is refused by the pool it was in, and
// answered exact over itself alone.
func (n *Node) flagAlone(plan *query.Plan, m *answer.Meta) {
	lone, ok := n.net.(interface{ Alone() int })
	if !ok || plan.Kind != query.PlanAggregate && plan.Kind != query.PlanTopK || m.Status != StatusExact && m.Status != StatusConverged {
		return
	}
	if k := lone.Alone(); k > 0 {
		m.Status, m.Converged = StatusPartial, false
		m.Reason = fmt.Sprintf("this peer has met none of the %d peers it was to join (its --join, or those it knew before it restarted: Serf's snapshot in its data dir): "+
			"the cloud may be larger than this answer — they refuse it if its --pool or --encrypt key is not theirs, or they are down; "+
			"--join one of them, or, if they are gone for good, stop it and remove serf.snapshot from its data dir", k)
		if m.Warning == warnAlone {
			m.Warning = "" // the reason says more
		}
	}
}

// Admit takes a place for a query this peer asks, at once or after a
// bounded wait; ErrOverloaded when there is none (the runtime's Admit
// says how). The HTTP API admits before it answers, so that it can say
// 429; the statement run with the returned context takes no other place.
func (n *Node) Admit(ctx context.Context) (context.Context, func(), error) {
	return n.rt.adm.Admit(ctx)
}

// statement runs a plan: Query without EXPLAIN, WATCH's refusal, the
// metrics and the answer's common meta.
func (n *Node) statement(ctx context.Context, plan *query.Plan, progress func(answer.Progress), start time.Time) (*answer.Answer, error) {
	pooled := n.rt.pools.on() && (plan.Kind == query.PlanAggregate || plan.Kind == query.PlanTopK)
	if plan.Subcloud != "" && !pooled {
		// A subcloud's members are the leases of its one owner; a name
		// nobody holds is an error, not an empty answer after a gossip run.
		// In a pooled cloud each pool's gateways find the owner in their
		// pool, and the asker takes the pool that holds it (pools.go,
		// subcloudPool).
		owner, ok := n.sc.subcloudOwner(ctx, plan.Subcloud)
		if !ok {
			return nil, &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("unknown subcloud %s: no agent owns it", plan.Subcloud)}
		}
		plan = plan.OwnedBy(owner)
		if owner != n.Name() {
			// Only the owner knows its members at once; the tags at any
			// other agent lag behind them. Every member knows its own
			// lease exactly: ask them (gossip) instead.
			plan = plan.Gossiped()
		}
	}
	switch {
	case plan.Empty():
		return &answer.Answer{Columns: plan.AnswerColumns(), Meta: &answer.Meta{Status: StatusExact, Converged: true, Peers: n.net.Size(), PlanHash: plan.Hash(),
			Elapsed: n.now().Sub(start).Seconds()}}, nil
	case plan.Kind == query.PlanReserve:
		// In a cloud of pools its search runs in every pool, and members
		// of other pools are claimed through the gateways (relay.go).
		return n.sc.reserve(ctx, plan, progress)
	case plan.Kind == query.PlanLocal && plan.Local.Const:
		// SELECT 1 + 1: constants, computed here; no member is asked.
		res := plan.ConstAnswer()
		res.Meta = &answer.Meta{Status: StatusExact, Converged: true, PlanHash: plan.Hash(), Elapsed: n.now().Sub(start).Seconds()}
		return res, nil
	case plan.Kind == query.PlanLocal && plan.Local.Release != "":
		return n.sc.release(ctx, plan)
	case plan.Kind == query.PlanLocal && plan.Local.Alter != nil:
		return n.sc.alter(ctx, plan)
	case plan.Kind == query.PlanLocal:
		return n.local(ctx, plan, start)
	case pooled:
		// A pooled cloud: every pool answers (pools.go). The member list
		// is one pool's: a statement it could answer is answered by each
		// pool's gateways from theirs (pools.runPool), and merged; one
		// FROM SUBCLOUD is gossip, since only the subcloud's owner knows
		// its members at once.
		if plan.Subcloud != "" && plan.Owner == "" {
			// A subcloud's members may be in any pool (relay.go): its
			// owner is fixed first, and every pool runs the statement
			// over that owner's members — from its gateways' member lists
			// over the members the owner lists, when the owner asks a
			// statement that reads only the membership.
			owner, err := n.ownerAcross(ctx, plan.Gossiped(), start)
			if err != nil {
				return nil, err
			}
			plan = plan.Across(owner)
			if owner == qualify(n.rt.pools.cfg.Pool, n.Name()) {
				plan = n.listedAtOwner(plan)
			}
		}
		if !plan.FromMemberLists() {
			plan = plan.Gossiped()
		}
		return n.askPools(ctx, plan, progress, start)
	case plan.FromTags:
		return n.fromMembership(plan, start)
	case n.net.Size() == 1:
		return n.alone(plan, start)
	}
	return n.rt.gossip(ctx, plan, progress)
}

// askPools runs a statement in every pool (pools.ask), or, when no
// gateway of this peer's pool takes it, in this peer's pool alone
// (ownPoolOnly).
func (n *Node) askPools(ctx context.Context, plan *query.Plan, progress func(answer.Progress), start time.Time) (*answer.Answer, error) {
	a, _, err := n.askPoolsWhere(ctx, plan, progress, start)
	return a, err
}

// askPoolsWhere is askPools, and what the asker learned beside its
// answer (nothing when its own pool answered alone).
func (n *Node) askPoolsWhere(ctx context.Context, plan *query.Plan, progress func(answer.Progress), start time.Time) (*answer.Answer, asked, error) {
	a, facts, err := n.rt.pools.askWhere(ctx, plan, progress, start)
	if ng := (*noGateway)(nil); errors.As(err, &ng) && ctx.Err() == nil {
		a, err = n.ownPoolOnly(ctx, plan, start, ng)
		return a, asked{}, err
	}
	return a, facts, err
}

// ownPoolOnly answers a statement that no gateway of this peer's pool
// took (ng: each failed or refused — all of them killed at once, or
// hung, while the pool still lists them alive) over this peer's pool
// alone, as a cloud of one pool would answer it, and partial: the other
// pools are named as not asked, those this peer knows of (otherPools).
// Before, the statement failed for the 8–13 s the pool took to choose new
// gateways, exiting 1 as a usage error does, though its own pool could
// answer.
func (n *Node) ownPoolOnly(ctx context.Context, plan *query.Plan, start time.Time, ng *noGateway) (*answer.Answer, error) {
	p := n.rt.pools
	// As a gateway runs it in its pool (a FROM SUBCLOUD statement over
	// the owner's members here, as the asker fixed it: Plan.Owner).
	a, part, _, err := p.runHere(ctx, newQueryID(), plan, start)
	if a == nil || a.Meta == nil || part == nil {
		return nil, errors.Join(ng, err)
	}
	// The rows as the pools' are merged (pools.combine), of this one.
	merged, merr := run.Merge(plan, []*run.Partial{part})
	if merr != nil {
		return nil, errors.Join(ng, merr)
	}
	merged.Meta, a = a.Meta, merged
	gws := Gateways(p.lan.Members(), p.cfg.Gateways) // as this peer's pool lists them; none agreed
	own := answer.PoolStatus{Pool: p.cfg.Pool, Status: a.Meta.Status, Reason: a.Meta.Reason, Peers: a.Meta.Peers, Rounds: a.Meta.Rounds, Elapsed: a.Meta.Elapsed,
		Gateways: len(gws), GatewayNames: gws}
	a.Meta.Elapsed = n.now().Sub(start).Seconds()
	why := fmt.Sprintf("no gateway of pool %s answered (%s): the answer is over pool %s alone, asked by this peer", p.cfg.Pool, ng.why(), p.cfg.Pool)
	others := p.otherPools()
	pools := []answer.PoolStatus{own}
	for _, name := range others {
		pools = append(pools, answer.PoolStatus{Pool: name, Status: StatusPartial, Reason: fmt.Sprintf("not asked: no gateway of pool %s answered", p.cfg.Pool)})
	}
	slices.SortFunc(pools, func(x, y answer.PoolStatus) int { return strings.Compare(x.Pool, y.Pool) })
	if len(others) > 0 {
		why += fmt.Sprintf("; pools %s, which this peer knows of, were not asked", strings.Join(others, ", "))
	} else {
		why += "; other pools, if any, were not asked"
	}
	for _, u := range plan.Unlisted {
		// Another pool may have it (pools.unknownEverywhere): not an error.
		a.Meta.Warning = joinReason(a.Meta.Warning, fmt.Sprintf("attribute %q: no member of pool %s has it, and no other pool was asked (read as a tag, NULL where a peer lacks it)", u.Name, p.cfg.Pool))
	}
	if a.Meta.Status != answer.StatusContested {
		a.Meta.Status = StatusPartial
	}
	a.Meta.Converged = false
	a.Meta.Reason = joinReason(why, a.Meta.Reason)
	a.Meta.Pools = pools
	return a, err
}

// ownerAcross is the owner of a FROM SUBCLOUD statement's subcloud in a
// cloud of pools, as pool/name: this peer's pool's, which comes first,
// as its name's keepers tell; else the one pool's whose gateways find it
// there, the statement run in every pool as pools.subcloudPool chooses
// (an unknown or ambiguous name is its error).
func (n *Node) ownerAcross(ctx context.Context, plan *query.Plan, start time.Time) (string, error) {
	if o, ok := n.sc.subcloudOwner(ctx, plan.Subcloud); ok {
		return qualify(n.rt.pools.cfg.Pool, o), nil
	}
	a, facts, err := n.rt.pools.askWhere(ctx, plan, nil, start)
	if facts.owner != "" {
		return facts.owner, nil
	}
	if err == nil && a != nil && a.Meta != nil {
		err = &api.Error{Code: api.CodePartial, Message: fmt.Sprintf("subcloud %s: no pool's gateways agreed on its owner (%s)", plan.Subcloud, a.Meta.Reason)}
	}
	if err == nil {
		err = fmt.Errorf("node: subcloud %s: no owner found", plan.Subcloud)
	}
	return "", err
}

// listedAtOwner is a FROM SUBCLOUD statement of a subcloud this peer
// owns, in a cloud of pools, listing its members as its table holds
// them (query.Plan.Listed), when it reads only the membership and fits
// the wire; else plan as it is.
func (n *Node) listedAtOwner(plan *query.Plan) *query.Plan {
	if plan.Subcloud == "" {
		return plan
	}
	v, mine := n.sc.owner.Lookup(plan.Subcloud)
	if !mine || len(v.Dropped) > 0 {
		// A former member back from a restart may still hold the lease,
		// and counts, as in one pool: only it knows (gossip).
		return plan
	}
	var names []string
	for _, m := range v.Members {
		if m.Expires.After(n.now()) {
			names = append(names, m.Name)
		}
	}
	listed := plan.Across(qualify(n.rt.pools.cfg.Pool, n.Name())).Listed(names)
	if listed == nil {
		return plan
	}
	if _, err := listed.Encode(); err != nil {
		return plan // too large for the wire: gossip
	}
	return listed
}
