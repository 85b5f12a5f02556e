package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/wire"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// The sample check at the asker (run/sample.go says what it checks and
// why): when a gossip aggregate starts, the asker picks Config.Sample.Size
// members by a hash of the query's ID and asks each, in one exchange, for
// the attributes the plan reads, signed by that member. When the answer is
// final, the asker evaluates the plan on the records that came back and
// compares: an answer the sample contests says so (answer.StatusContested)
// with both figures; the others carry the sample's own answer beside
// theirs (Meta.Check).

// sampleConcurrency bounds the asker's sample requests in flight (the
// first sample's 64 run beside the gossip); escalateConcurrency those of
// a doubt's 448, which the answer waits for.
const (
	sampleConcurrency   = 16
	escalateConcurrency = 64
)

// sampling is an asker's sample for one query: the records the sampled
// members sent, verified, as they arrive.
type sampling struct {
	asked int
	done  chan struct{} // closed when every request has ended
	// What the requests are made of, and the members the sample is
	// drawn from (sorted): a doubt asks the next ones (finishSample).
	id QueryID
	// drawBy is what the members are drawn by (run.SampleOf): the
	// query's ID, or a pooled statement's cloud-wide one (gossipPartial).
	drawBy      []byte
	plan        *query.Plan
	wire, coord []byte
	self        query.Record
	names       []string
	// skip are the members the answer left out from its start (found
	// lost lately), drawn in their places but not asked: every pool's
	// gateways draw the same places, whatever each found lost; drawn
	// is how many places of the order were drawn.
	skip  map[string]bool
	drawn int

	mu   sync.Mutex
	recs []query.Record
	// judged are the records the last verdict was over (judgeSample):
	// those of members the answer is about.
	judged  []query.Record
	refused []string // replies not signed by their node, or out of bounds
	// FROM leases: recs are the rows of the members that answered
	// (answered), unverified how many name an owner not live here, lies
	// what members showed that their receipts do not back.
	answered   []string
	unverified int
	lies       []string
}

// sampleReply is one sampled member's reply, verified: its record, or
// its ledger's rows (FROM leases) with what their receipts showed.
type sampleReply struct {
	node       string
	recs       []query.Record
	unverified int
	lie        string
}

// startSample asks query id's sampled members for their records, in the
// background; the query's answer waits for them (finishSample).
func (rt *runtime) startSample(id QueryID, drawBy []byte, plan *query.Plan, wire, coord []byte, self query.Record, members, skip map[string]bool) *sampling {
	if rt.cfg.Sample.Size <= 0 || !run.Sampled(plan) || rt.undefended.Load() {
		return nil
	}
	names := make([]string, 0, len(members))
	for m := range members {
		names = append(names, m)
	}
	sort.Strings(names)
	if drawBy == nil {
		drawBy = id[:]
	}
	s := &sampling{done: make(chan struct{}), id: id, drawBy: drawBy, plan: plan, wire: wire, coord: coord, self: self, names: names, skip: skip}
	picked := s.draw(rt.cfg.Sample.Size)
	s.asked = len(picked)
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		defer close(s.done)
		rt.askAll(rt.ctx, s, picked, sampleConcurrency)
	}()
	return s
}

// askAll asks each of names for its record (its ledger's rows), at most
// concurrency at once, and adds what comes back to s; it returns when
// every request has ended.
func (rt *runtime) askAll(ctx context.Context, s *sampling, names []string, concurrency int) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, concurrency)
	for _, name := range names {
		if ctx.Err() != nil {
			break // the statement's time is up: judge with what came
		}
		if name == rt.net.Name() {
			own := sampleReply{node: name, recs: []query.Record{s.self}} // the asker's own word, to itself
			if s.plan.Table == query.TableLeases {
				own.recs = rt.leases.ledgerRows()
			}
			s.add(own, "")
			continue
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			rep, err := rt.askSample(s.id, s.wire, s.coord, s.plan, name)
			switch {
			case errors.Is(err, run.ErrForged) || errors.Is(err, errSampleRefused):
				s.add(sampleReply{}, name)
			case err == nil:
				s.add(rep, "")
			}
			// An unreachable member is one record fewer: the check
			// uses those that came.
		}()
	}
	wg.Wait()
}

func (s *sampling) add(rep sampleReply, refused string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rep.node != "" {
		s.recs = append(s.recs, rep.recs...)
		s.answered = append(s.answered, rep.node)
		s.unverified += rep.unverified
		if rep.lie != "" {
			s.lies = append(s.lies, rep.lie)
		}
	}
	if refused != "" {
		s.refused = append(s.refused, refused)
	}
}

// errSampleRefused is a sampled member's reply that is not a record of
// the plan's attributes within the catalog's bounds.
var errSampleRefused = errors.New("node: sampled record refused")

// askSample asks one sampled member for its record (or its ledger's
// rows), and verifies it.
func (rt *runtime) askSample(id QueryID, wire, coord []byte, plan *query.Plan, name string) (sampleReply, error) {
	ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.ExchangeTimeout)
	defer cancel()
	body := encodeBatch(batch{Entries: []entry{{ID: id, Kind: protoSample, Plan: wire, Origin: coord, Asker: rt.net.Name()}}})
	resp, err := rt.net.Exchange(ctx, name, body)
	rt.mu.Lock()
	rt.stats.Exchanges++
	rt.stats.BytesSent += int64(len(body))
	rt.stats.BytesReceived += int64(len(resp))
	if err != nil {
		rt.stats.Failed++
	}
	rt.mu.Unlock()
	if err != nil {
		return sampleReply{}, err
	}
	b, err := decodeBatch(resp)
	if err != nil || len(b.Entries) != 1 || b.Entries[0].Kind != protoSample || b.Entries[0].ID != id {
		return sampleReply{}, fmt.Errorf("%w: %s sent no sample reply", errSampleRefused, name)
	}
	row, sig, err := decodeSampleReply(b.Entries[0].Msg)
	if err != nil {
		return sampleReply{}, fmt.Errorf("%w: %s: %v", errSampleRefused, name, err)
	}
	if plan.Table == query.TableLeases {
		return rt.checkLedgerReply(id, plan, name, row, sig)
	}
	rec, err := run.SampleRecord(plan, rt.seal, id[:], name, row, sig)
	if err != nil {
		if !errors.Is(err, run.ErrForged) {
			err = fmt.Errorf("%w: %v", errSampleRefused, err)
		}
		return sampleReply{}, err
	}
	return sampleReply{node: name, recs: []query.Record{rec}}, nil
}

// checkLedgerReply verifies a sampled member's shown ledger (ledger.go):
// signed by it, rows of the plan's attributes, hours backed by its
// owners' receipts.
func (rt *runtime) checkLedgerReply(id QueryID, plan *query.Plan, name string, shown, sig []byte) (sampleReply, error) {
	if err := rt.seal.Verify(name, run.SampleMessage(id[:], name, shown), sig); err != nil {
		return sampleReply{}, err
	}
	rows, err := decodeShown(shown)
	if err != nil {
		return sampleReply{}, fmt.Errorf("%w: %s: %v", errSampleRefused, name, err)
	}
	l, err := checkShown(plan, name, rows, func(owner string) (identity.Public, bool) {
		m, ok := rt.net.Member(owner)
		return m.Key, ok && !m.Key.IsZero()
	})
	if err != nil {
		return sampleReply{}, fmt.Errorf("%w: %v", errSampleRefused, err)
	}
	return sampleReply{node: name, recs: l.recs, unverified: l.unverified, lie: l.lie}, nil
}

// answerSample is a sampled member's reply: its record's attributes that
// the plan reads, signed. A request whose plan is not a sampled aggregate
// gets an empty reply.
func (rt *runtime) answerSample(e entry) entry {
	reply := entry{ID: e.ID, Kind: protoSample}
	plan, err := query.Decode(e.Plan)
	if err != nil || !run.Sampled(plan) {
		return reply
	}
	var row []byte
	if plan.Table == query.TableLeases {
		row = encodeShown(rt.leases.ledgerShown(plan))
	} else {
		row = run.SampleRow(plan, rt.shownRecord(e))
	}
	sig := rt.seal.Sign(rt.net.Name(), run.SampleMessage(e.ID[:], rt.net.Name(), row))
	reply.Msg = encodeSampleReply(row, sig)
	return reply
}

// shownRecord is the record this peer shows query e's sample: the one it
// contributed to the query, or, before it joined, the one it will
// contribute (runtime.shown). A record changes (a probe, the embedded
// cluster's drift), and the check compares the sample with the gossip:
// a member that showed another record than it gave would make an honest
// answer look bent (a variance's bound by the sampled values' own
// deviations contested 21 of 100 honest grouped STDDEV(cpu_load)s at 100
// members with 10 s of drift, a reviewer's probe). After the instance is
// collected, the record it contributed, kept as long as its id (collect,
// runtime.kept); past maxShown such records, the record as it is now.
func (rt *runtime) shownRecord(e entry) query.Record {
	rec := recordFor(rt.net, rt.record(), e.Origin) // not under mu: Record is the node's
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if q := rt.queries[e.ID]; q != nil && q.rec != nil {
		return q.rec
	}
	if r, ok := rt.kept[e.ID]; ok {
		return r.rec
	}
	if r, ok := rt.shown[e.ID]; ok {
		return r.rec
	}
	if _, over := rt.gone[e.ID]; !over && len(rt.shown) < maxShown {
		rt.shown[e.ID] = earlyRecord{rec: rec, until: rt.round + int64(4*(query.MaxRounds+rt.cfg.Linger))}
	}
	return rec
}

// earlyRecord is a record shown a sample before joining its query
// (runtime.shown), or contributed by an instance since collected
// (runtime.kept).
type earlyRecord struct {
	rec   query.Record
	until int64 // the round until which it is kept
}

// maxShown bounds runtime.shown, the queries sampled here before they
// reached it (a member asking for samples of made-up queries fills it, up
// to this many records, for as long as a query may last): beyond it a
// later join contributes its record as it is then. It bounds
// runtime.kept apart: beyond it a sample after the instance was
// collected is shown the record as it is then.
const maxShown = 1024

// maxSampleRow bounds a sampled row: a plan reads at most a few dozen
// attributes, each at most query.MaxStringBytes; maxSampleSig a
// signature (ed25519's are 64 bytes).
const (
	maxSampleRow = 64 << 10
	maxSampleSig = 128
)

// encodeSampleReply writes a sample reply: row(len uvarint, bytes)
// signature(len uvarint, bytes).
func encodeSampleReply(row, sig []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(len(row)))
	out = append(out, row...)
	out = binary.AppendUvarint(out, uint64(len(sig)))
	return append(out, sig...)
}

func decodeSampleReply(b []byte) (row, sig []byte, err error) {
	d := wire.NewReader(b, ErrMalformed)
	row = d.Field(max(maxSampleRow, maxShownBytes))
	sig = d.Field(maxSampleSig)
	if err := d.Done(); err != nil {
		return nil, nil, err
	}
	return row, sig, nil
}

// finishSample checks query q's final answer res against its sample,
// once every sample request has ended: res then carries the check
// (Meta.Check) and, contested, says so in its status — or, where the
// plan is robust (run.Robust) and the answer converged (or ran out of
// rounds and nothing else), is the sample's own answer, its
// sample grown as far as that needs (answer.StatusSampled) while ctx
// lasts (the statement's context and timeout).
func (rt *runtime) finishSample(ctx context.Context, q *instance, s *sampling, res *answer.Answer) {
	if s == nil || res == nil || res.Meta == nil {
		return
	}
	select {
	case <-s.done:
	case <-rt.done:
		return
	}
	v, check := rt.judgeSample(q, s, res)
	rt.mu.Lock()
	converged := q.run.Converged() // the runtime's lock guards the instance
	// Only an answer that converged, or is partial for want of
	// convergence alone, may be stood in for: one partial for members it
	// left out or could not reach, or about a minority, stays partial
	// (the sample, of the same members, is as incomplete).
	standIn := res.Status == StatusConverged || res.Status == StatusPartial && q.outOfRounds
	rt.mu.Unlock()
	// The first sample could not tell, or the gossip did not converge
	// (the rule's verdict: an answer partial for a lost member is not a
	// reason to ask 448 more, some of them maybe lost too): the next More
	// members in the same order are asked, with the runtime's context. A
	// robust answer the gossip could not keep (made-up flows) is then the
	// sample's, grown until within the fallback's precision while the
	// statement's context lasts.
	plan := q.run.Plan()
	v, _ = rt.cfg.Sample.Grow(plan, v, check.Asked, len(s.names), check.Verdict == answer.CheckAgrees, converged, standIn,
		func(_, more int, fallback bool) (run.SampleVerdict, bool) {
			c := rt.ctx
			if fallback {
				c = ctx
			}
			if c.Err() != nil {
				return run.SampleVerdict{}, false
			}
			var w run.SampleVerdict
			w, check = rt.sampleMore(c, q, s, res, more)
			return w, true
		})
	if f := rt.cfg.Sample.Fallback; v.Contested && standIn {
		if width, why, ok := f.StandIn(plan, v); ok {
			check.Verdict, check.Reason = answer.CheckContested, v.Reason
			res.StandIn(v.Answer.Rows, width, why)
			return
		}
	}
	if v.Contested {
		check.Verdict, check.Reason = answer.CheckContested, v.Reason
		res.Contest(v.Reason)
	}
}

// draw takes the next more places of s's order (run.SampleOf) and
// returns the members in them that s does not skip: to ask. Called with
// s.mu held, or before s is shared.
func (s *sampling) draw(more int) []string {
	from := s.drawn
	s.drawn += more
	names := run.SampleOf(s.drawBy, s.names, from+more)
	names = names[min(from, len(names)):]
	if len(s.skip) == 0 {
		return names
	}
	return slices.DeleteFunc(names, func(n string) bool { return s.skip[n] })
}

// sampleMore asks the next more members of s's order after those drawn
// (the first asked, and the skipped among them), and judges res again
// with every record s holds.
func (rt *runtime) sampleMore(ctx context.Context, q *instance, s *sampling, res *answer.Answer, more int) (run.SampleVerdict, *answer.Check) {
	s.mu.Lock()
	names := s.draw(more)
	s.mu.Unlock()
	rt.askAll(ctx, s, names, escalateConcurrency)
	s.mu.Lock()
	s.asked += len(names)
	s.mu.Unlock()
	v, check := rt.judgeSample(q, s, res)
	check.Escalated = true
	return v, check
}

// partial is the sample's records as a pool's share of plan, a pool of
// peers members (gossipPartial): what the sample answers — over the
// records its last verdict was (judgeSample: the members the answer is
// about) — in the form that merges with other pools'.
func (s *sampling) partial(plan *query.Plan, peers int) (*run.Partial, error) {
	s.mu.Lock()
	recs := slices.Clone(s.judged)
	s.mu.Unlock()
	if len(recs) == 0 {
		return nil, errors.New("node: the sample that stood in holds no record")
	}
	part, err := run.ExactPartial(plan, recs)
	if err != nil {
		return nil, err
	}
	part.Peers = peers // the means are the sample's estimates of the pool's
	return part, nil
}

// minSampleAnswered is the fewest answers a sample that some member left
// unanswered is judged with: below it every member sought must answer.
const minSampleAnswered = 8

// judgeSample checks query q's final answer res against the records s
// holds, and sets res.Check to what it found.
func (rt *runtime) judgeSample(q *instance, s *sampling, res *answer.Answer) (run.SampleVerdict, *answer.Check) {
	s.mu.Lock()
	recs, refused, answered, lies, asked := s.recs, s.refused, s.answered, s.lies, s.asked
	check := &answer.Check{Asked: asked, Sampled: len(answered), Refused: refused, Unverified: s.unverified}
	s.mu.Unlock()
	res.Check = check
	if len(lies) > 0 {
		// A member showed hours its owners' receipts do not back: its
		// word is a lie about itself, whatever the totals say.
		return run.SampleVerdict{Contested: true, Reason: lies[0]}, check
	}
	if 2*len(answered) < min(rt.cfg.Sample.Size, asked) || len(answered) < asked && len(answered) < minSampleAnswered {
		// Fewer than half the sample it first sought, or a handful with
		// one missing (the asker's own record among them): in a cluster
		// smaller than the sample, all but a few answering is still
		// nearly all of it (before, any one member unreachable there left
		// every answer unchecked, a liar's included).
		check.Verdict = answer.CheckUnchecked
		check.Reason = fmt.Sprintf("%d of %d sampled members answered: too few to check the answer", len(answered), asked)
		return run.SampleVerdict{}, check
	}
	// The answer is about the live members it did not leave out: so is
	// the sample (a member that answered it and left since is not in
	// the answer's sums).
	members := memberSet(rt.net)
	rt.mu.Lock()
	in := func(name string) bool { return members[name] && !q.out(name) }
	kept := recs[:0:0]
	for _, r := range recs {
		if in(r["node"].Str) {
			kept = append(kept, r)
		}
	}
	keptMembers := 0
	for _, name := range answered {
		if in(name) {
			keptMembers++
		}
	}
	var v run.SampleVerdict
	var err error
	if q.run.Plan().Table == query.TableLeases {
		v, err = q.run.CheckLedgerSample(kept, keptMembers, res.Peers, rt.cfg.Sample)
	} else {
		v, err = q.run.CheckSample(kept, res.Peers, rt.cfg.Sample)
	}
	rt.mu.Unlock()
	s.mu.Lock()
	s.judged = kept
	s.mu.Unlock()
	check.Sampled = keptMembers
	if err != nil {
		check.Verdict, check.Reason = answer.CheckUnchecked, err.Error()
		return run.SampleVerdict{}, check
	}
	if v.Answer != nil {
		check.SetRows(v.Answer)
	}
	check.Verdict = answer.CheckAgrees
	return v, check
}
