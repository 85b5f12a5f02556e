package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/query"
)

var _ api.Executor = (*Node)(nil)

// Compile compiles a statement against the live catalog (the built-in
// attributes and every tag the members carry).
func (n *Node) Compile(text string) (*query.Plan, error) {
	return query.CompileText(text, n.Catalog(), query.DefaultConfig())
}

// Execute runs one statement from this peer: the api.Executor that the
// embedded shell uses and the HTTP API serves.
func (n *Node) Execute(ctx context.Context, text string, progress func(api.Progress)) (*api.Answer, error) {
	plan, err := n.Compile(text)
	if err != nil {
		return nil, err
	}
	return n.ExecutePlan(ctx, plan, progress)
}

// ExecutePlan runs a compiled statement and returns its answer for
// clients. An error beside an answer (ErrTimeout) says it is partial.
func (n *Node) ExecutePlan(ctx context.Context, plan *query.Plan, progress func(api.Progress)) (*api.Answer, error) {
	if plan.Watch != nil && !plan.Explain {
		return nil, &api.Error{Code: api.CodeStatement, Message: "WATCH answers once every epoch, for as long as it is watched: run it in the shell, with peerq query, or through the API's stream"}
	}
	if plan.Explain {
		return &api.Answer{Explain: query.Explain(plan, n.net.Size()),
			Meta: &api.Meta{Statement: plan.Text, Protocol: plan.Kind.String(), Status: StatusExact, Peers: n.net.Size(), PlanHash: plan.Hash(), Converged: true}}, nil
	}
	var pf func(Progress)
	if progress != nil {
		pf = func(p Progress) {
			progress(api.Progress{Round: p.Round, Budget: p.Budget, Peers: p.Peers, ErrEstimate: p.ErrEstimate, Estimate: rows(p.Answer)})
		}
	}
	res, err := n.Query(ctx, plan, pf)
	if res == nil {
		return nil, err
	}
	return Answer(plan, res, err), err
}

// Watch runs a standing query from this peer (api.Executor).
func (n *Node) Watch(ctx context.Context, text string, each func(*api.Answer, error) bool) error {
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
func (n *Node) WatchPlan(ctx context.Context, plan *query.Plan, each func(*api.Answer, error) bool) error {
	if plan.Watch == nil {
		return &api.Error{Code: api.CodeStatement, Message: "not a WATCH statement"}
	}
	if err := n.checkWatch(plan); err != nil {
		return err
	}
	every := time.Duration(plan.Watch.EverySeconds * float64(time.Second))
	epoch := plan.Epoch()
	start := n.now()
	for k := 1; ; k++ {
		ans, err := n.ExecutePlan(ctx, epoch, nil)
		if ctx.Err() != nil {
			return nil // stopped mid-epoch: nothing to say
		}
		if ans != nil && ans.Meta != nil {
			ans.Meta.Statement, ans.Meta.Epoch, ans.Meta.At = plan.Text, k, n.now().UTC().Format(time.RFC3339Nano)
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

// checkWatch refuses a WATCH whose epoch is shorter than a round.
func (n *Node) checkWatch(plan *query.Plan) error {
	if every := time.Duration(plan.Watch.EverySeconds * float64(time.Second)); every < n.cfg.Round {
		return &api.Error{Code: api.CodeStatement, Message: fmt.Sprintf("EVERY %v is shorter than this agent's round (%v): an epoch could not even start", every, n.cfg.Round)}
	}
	return nil
}

// Words lists the names worth completing: the catalog's attributes.
func (n *Node) Words(context.Context) []string {
	return append(n.Catalog().Names(), n.subcloudNames()...)
}

// Answer is a result as clients see it: raw values, text with units, and
// how it was reached. err is the query's error beside the answer (a
// timeout).
func Answer(plan *query.Plan, res *Result, err error) *api.Answer {
	a := rows(res.Result)
	a.Meta = &api.Meta{Statement: plan.Text, Protocol: plan.Kind.String(), Status: res.Status, Reason: res.Reason,
		Peers: res.Peers, MembersStart: res.MembersStart, MembersEnd: res.MembersEnd, Joined: res.Joined, Left: res.Left,
		Unreachable: res.Unreachable, Refused: res.Refused, Excluded: res.Excluded[:min(len(res.Excluded), api.MaxNamed)], ExcludedCount: len(res.Excluded),
		Participants: res.Participants, Rounds: res.Rounds, Elapsed: res.Elapsed.Seconds(), ErrEstimate: res.ErrEstimate,
		PlanHash: res.PlanHash, FromTags: res.FromTags, Converged: res.Converged, Timeout: isTimeout(err)}
	if res.MembersEnd == 1 || res.Peers == 1 && !res.FromTags {
		a.Meta.Warning = "only this peer is in the cluster: it has joined no one (or every other member has failed)"
	}
	if res.Warning != "" {
		a.Meta.Warning = res.Warning
	}
	if res.ExcludedWhy != "" {
		a.Meta.Warning = fmt.Sprintf("%d member(s) %s", len(res.Excluded), res.ExcludedWhy)
	}
	if a.Meta.Status == "" {
		a.Meta.Status = StatusConverged
		if !res.Converged {
			a.Meta.Status = StatusPartial
		}
	}
	return a
}

func isTimeout(err error) bool { return errors.Is(err, api.ErrTimeout) }

// rows converts a result's columns and rows.
func rows(r *query.Result) *api.Answer {
	a := &api.Answer{}
	if r == nil {
		return a
	}
	for _, c := range r.Columns {
		a.Columns = append(a.Columns, api.Column{Name: c.Name, Kind: c.Kind.String()})
	}
	a.Rows, a.Text = make([][]any, len(r.Rows)), make([][]string, len(r.Rows))
	for i, row := range r.Rows {
		a.Rows[i], a.Text[i] = make([]any, len(row)), make([]string, len(row))
		for j, v := range row {
			a.Rows[i][j], a.Text[i][j] = v.Raw(), v.String()
		}
	}
	return a
}
