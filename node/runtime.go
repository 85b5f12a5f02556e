package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/peer"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// runtime is the query runtime, the peer's role in every query: the
// instances of the queries it takes part in (instance.go), its rounds —
// one exchange a round, carrying every query's message to the round's
// peer — the exchanges it serves, joining the queries it hears of, and
// the queries it asks (gossip), admitted within its bounds. The prober
// finds the members lost meanwhile and tells it (memberLost); the rest
// of the peer is reached through the fields below: the peer's record,
// its lease keeper (lease requests arrive in the same exchanges, and a
// query FROM leases reads its ledger) and the log.
//
// Locks: mu guards the gossip state below it; the prober's lock is taken
// after it, never before (suspect.go). No exchange, ping or fsync runs
// with mu held: exchanges run on the runtime's goroutines (wg), which
// the node's Close waits for.
type runtime struct {
	// pools is the pools role (nil in a cloud of one pool): it answers
	// protoPool entries.
	pools *pools
	cfg   Config
	net   Network
	now   func() time.Time // cfg.Clock
	// ctx ends when the node closes: exchanges in flight give up; done
	// is closed then.
	ctx  context.Context
	done <-chan struct{}
	wg   sync.WaitGroup

	prober *prober
	// seal signs this peer's top-k entries and checks the others' (seal.go).
	seal *sealer
	// observer bounds what members may claim of their reliability
	// (observe.go).
	observer *observer
	// undefended turns the defences against lying peers off — signatures,
	// the sample check, the reliability bound — for the cluster
	// benchmark's A/B of their cost (bench_test.go). Nothing else sets it.
	undefended atomic.Bool
	// fanout is Config.Fanout, which the cluster benchmark's A/B of it
	// changes between statements (bench_test.go): a query takes it when
	// it is bound.
	fanout atomic.Int32
	leases leaseSide
	// record is the peer's own record (Node.record): read without mu.
	record func() query.Record
	logf   func(format string, args ...any)

	mu        sync.Mutex // the gossip state below
	r         *mrand.Rand
	round     int64
	roundPeer string
	names     map[peer.ID]string
	queries   map[QueryID]*instance
	// gone remembers the queries this peer has collected, until the round
	// in the value: a late message for one must not bring it back (peers
	// that joined later would otherwise keep it alive for ever).
	gone map[QueryID]int64
	// ended are the queries known to be over, with the round until which
	// this peer tells the peers it exchanges with (a rumor), so that
	// everyone drops them long before their budget.
	ended map[QueryID]int64
	// told are the queries whose end this peer has told for its rounds,
	// until the round in the value: hearing it again does not start the
	// rumor anew (it would go round for ever, each peer passing it back
	// to those that had stopped: every exchange carrying every query that
	// ever ended).
	told map[QueryID]int64
	// shown are the records this peer showed the samples of queries it
	// had not joined yet (answerSample), with the round until which it
	// keeps them: joining one later, it contributes that record, so
	// that what it showed the asker's check is what it gave the gossip.
	// At most maxShown.
	shown map[QueryID]earlyRecord
	// kept are the records this peer's collected instances of sampled
	// plans contributed (collect), shown to a sample that comes after,
	// until the query's id is forgotten. At most maxShown, apart from
	// shown: queries asked here fill one, a member asking samples of
	// made-up queries the other.
	kept map[QueryID]earlyRecord
	// outTo counts the exchanges in flight to each peer (at most one;
	// exchanges of announcements alone are not counted: tick).
	outTo map[string]int
	// stats are the runtime's counters (Node.Stats adds the other roles').
	stats Stats

	// adm admits the queries this peer asks (admission.go).
	adm *admission
	// asking counts this peer's own queries not yet answered.
	asking atomic.Int64
	// instances counts the queries this peer takes part in (running()),
	// for admission without mu.
	instances atomic.Int64
	// exchangeTime is the recent exchanges' round trip (an average,
	// nanoseconds): how long a round waits for its exchange.
	exchangeTime atomic.Int64
	// inflight counts the exchanges this peer started that are not back;
	// roundDone says they all are: the next round may start. failed says
	// one of the round's exchanges got no answer: the round then lasts its
	// full Round, so that a peer that fails fast (not yet known to the
	// other side, shutting down) does not spin the rounds and burn the
	// query's budget in milliseconds.
	inflight  atomic.Int64
	failed    atomic.Bool
	idle      atomic.Bool // the last round sent nothing
	quiet     atomic.Bool // the last round found nothing to do (Config.QuietRound)
	roundDone chan struct{}
}

// leaseSide is what the runtime needs of the lease keeper (lease.go): it
// answers the lease requests that come in exchanges, and its ledger is
// the table FROM leases.
type leaseSide interface {
	handle(from string, msg []byte) []byte
	ledgerRows() []query.Record
	// ledgerShown is the ledger as a sampled member shows it to the
	// sample check of p (ledger.go).
	ledgerShown(p *query.Plan) []shownRow
}

// newRuntime makes the runtime of the peer on net; the node sets prober,
// leases, record and logf before start. seed seeds its random source (the
// rounds' peers, the cores').
func newRuntime(cfg Config, net Network, ctx context.Context, done <-chan struct{}, seed uint64) *runtime {
	rt := &runtime{cfg: cfg, net: net, now: cfg.Clock, ctx: ctx, done: done,
		r:     mrand.New(mrand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		names: map[peer.ID]string{}, queries: map[QueryID]*instance{}, gone: map[QueryID]int64{}, ended: map[QueryID]int64{}, told: map[QueryID]int64{}, shown: map[QueryID]earlyRecord{}, kept: map[QueryID]earlyRecord{},
		outTo: map[string]int{}, roundDone: make(chan struct{}, 1)}
	rt.adm = newAdmission(cfg, net.Name(), &rt.instances, done)
	rt.fanout.Store(int32(cfg.Fanout))
	return rt
}

// start runs the rounds until the node closes (done); wait waits for the
// runtime's goroutines after that.
func (rt *runtime) start() {
	rt.wg.Add(1)
	go rt.loop()
}

func (rt *runtime) wait() { rt.wg.Wait() }

// counters are the runtime's stats, with the queries it holds.
func (rt *runtime) counters() Stats {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	st := rt.stats
	st.Running = int64(len(rt.queries))
	st.Overloaded = rt.adm.overloaded.Load()
	return st
}

// membershipChanged tells the queries this peer asks of a member event.
func (rt *runtime) membershipChanged(e network.Event) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, q := range rt.queries {
		q.membershipChanged(e)
	}
}

func (rt *runtime) closed() bool {
	select {
	case <-rt.done:
		return true
	default:
		return false
	}
}

// roundPartner draws the round's peer from the membership, passing over
// (a few times) the members this peer found lost lately: Serf lists them
// until its verdict — seconds, or never for one that came back in time —
// and an exchange with one carries nothing and costs the round. ""
// without one. Called with rt.mu held.
func (rt *runtime) roundPartner() string {
	var peer string
	for try := 0; try < 4; try++ {
		p, ok := rt.net.Sample(rt.r)
		if !ok {
			return ""
		}
		peer = p
		if !rt.prober.isLost(p) {
			break
		}
	}
	return peer
}

// straggler is a member that a top-k this peer asks still waits to hear
// of, near its end (run.Instance.Straggler), and that this peer has not
// found lost: the round's partner, so that the asker meets it directly.
// "" when there is none. Called with rt.mu held.
func (rt *runtime) straggler() string {
	if rt.asking.Load() == 0 {
		return ""
	}
	for _, q := range rt.queries {
		if !q.origin || q.reported {
			continue
		}
		if p, ok := q.run.Straggler(); ok && !rt.prober.isLost(p) {
			return p
		}
	}
	return ""
}

// loop drives the rounds.
func (rt *runtime) loop() {
	defer rt.wg.Done()
	last := rt.now()
	for {
		select {
		case <-rt.done:
			return
		case <-rt.roundDone:
			if rt.inflight.Load() > 0 || rt.failed.Load() {
				// Something new to gossip (a query joined or asked), but
				// the last round's exchanges are still out: a round that
				// started now would count without hearing them, and burn
				// the queries' budgets in rounds that carry nothing new
				// (with many askers, joins come all the time). Wait for
				// them, or Round. An exchange that failed re-arms the
				// wait: that round lasts its full Round.
				continue
			}
			// The last round's exchanges are back: go on, after MinRound.
			if d := rt.cfg.MinRound - rt.now().Sub(last); d > 0 {
				select {
				case <-rt.done:
					return
				case <-time.After(d):
				}
			}
		case <-time.After(max(rt.roundLength()-rt.now().Sub(last), 0)):
		}
		last = rt.now()
		rt.tick()
	}
}

// roundLength is how long a round may last: Round, unless its exchanges
// are still out — then three times the recent exchanges' average round
// trip, at least two MinRounds, at most ExchangeTimeout. A round that
// starts before its exchanges are back may count without hearing them
// (on a machine busy enough every round did, and budgets ran out: 13% of
// 200 statements at once on 8 agents), hence the wait, which grows with
// the exchanges' time on a loaded machine or a slow network; rounds that
// heard nothing do not spend the budget (run.Instance). But one dead or
// slow partner must not hold a peer's rounds much longer than a typical
// exchange: waiting two Rounds for it (as before) held a peer that met a
// dead member for 40 of a LAN's 10 ms rounds — three times, with the
// retries — and under churn many peers stopped mixing while the asker,
// calm, answered without their mass mixed in (GROUP BY averages 1–3% off
// at 60 peers, 60%/min).
func (rt *runtime) roundLength() time.Duration {
	if rt.quiet.Load() && rt.inflight.Load() == 0 {
		return max(rt.cfg.QuietRound, rt.cfg.Round)
	}
	if rt.inflight.Load() == 0 || rt.idle.Load() || rt.failed.Load() {
		// Nothing out, the last round sent nothing (its partners'
		// exchanges still out) or one of its exchanges failed: a full
		// Round, not a spin.
		return rt.cfg.Round
	}
	return min(max(2*rt.cfg.MinRound, 3*time.Duration(rt.exchangeTime.Load())), rt.cfg.ExchangeTimeout)
}

// tick runs one round: every live instance takes its turn, the messages go
// out grouped by peer, one exchange each, and the replies come back in.
// Progress and answers are handed to their callers after the lock is let
// go.
func (rt *runtime) tick() {
	// The member set is read (O(N)) only by a peer that asks something.
	var members map[string]bool
	if rt.asking.Load() > 0 {
		members = memberSet(rt.net)
	}
	now := rt.now()
	rt.mu.Lock()
	rt.stats.Rounds++
	rt.round++
	peer := rt.roundPartner()
	if p := rt.straggler(); p != "" {
		peer = p
	}
	rt.roundPeer = peer
	if peer != "" {
		rt.names[peerID(peer)] = peer
	}
	for id, until := range rt.gone {
		if rt.round > until {
			delete(rt.gone, id)
		}
	}
	for _, m := range []map[QueryID]earlyRecord{rt.shown, rt.kept} {
		for id, r := range m {
			if rt.round > r.until {
				delete(m, id)
			}
		}
	}
	for id, until := range rt.told {
		if rt.round > until {
			delete(rt.told, id)
		}
	}
	rt.prober.tick(now)
	out := map[string][]entry{}
	var reports []report
	for id, q := range rt.queries {
		if q.expired(rt.round, rt.cfg.Linger, now, rt.prober.findWithin()) {
			rt.collect(id, q)
			continue
		}
		if q.origin && q.run.Final() {
			continue // lingering: counting down, sending nothing
		}
		q.run.Tick()
		for _, env := range q.run.Messages() {
			if to := rt.names[env.To]; to != "" {
				out[to] = append(out[to], q.entry(env.Msg, true, env.To))
			}
		}
		rt.announce(q, q.run.Announce(), out)
		if q.origin {
			if rp, ok := rt.askerRound(q, members, now); ok {
				reports = append(reports, rp)
			}
		}
	}
	// The news that queries ended goes with the round's exchange.
	if peer != "" {
		for id, until := range rt.ended {
			if rt.round > until {
				delete(rt.ended, id)
				rt.told[id] = rt.round + int64(4*(query.MaxRounds+rt.cfg.Linger))
				continue
			}
			out[peer] = append(out[peer], entry{ID: id, Kind: protoEnd})
		}
	}
	told := map[string]bool{} // the exchanges of announcements alone
	for to, es := range out {
		if announcements(es) {
			told[to] = true
			// Not counted: an exchange of announcements alone never holds
			// up the next round's messages to that peer (with 8 peers and
			// 200 queries at once, counting them made 4× the messages
			// skipped, and queries near the end of their budget).
			continue
		}
		if rt.outTo[to] > 0 {
			// One exchange in flight per peer: the last one to it is not
			// back (slow, or dead and being verified). This round's
			// messages to it are dropped, as lost ones are (the cores
			// retry); sending more would pile exchanges onto a peer that
			// may be gone, one a round until it is found lost.
			delete(out, to)
			rt.stats.Skipped++
			continue
		}
		rt.outTo[to]++
	}
	hints := rt.prober.hints(now)
	// Encoded here, under rt.mu: the entries hold the cores' messages,
	// which hold the cores' buffers.
	bodies := make(map[string][]byte, len(out))
	for to, es := range out {
		bodies[to] = encodeBatch(batch{Hints: hints, Entries: es})
	}
	rt.instances.Store(int64(rt.running()))
	rt.quiet.Store(len(rt.queries) == 0 && len(rt.ended) == 0 && len(out) == 0 && rt.prober.quiet())
	rt.mu.Unlock()
	for _, rp := range reports {
		rp.deliver()
	}
	rt.failed.Store(false)
	rt.idle.Store(len(out) == 0)
	for to, es := range out {
		// An exchange of announcements alone carries nothing the round
		// waits for: the round neither waits for it nor lasts a full
		// Round when it fails (the prober still hears of the failure).
		told := told[to]
		if !told {
			rt.inflight.Add(1)
		}
		rt.wg.Add(1)
		go func() {
			defer rt.wg.Done()
			ok := rt.exchange(to, es, bodies[to], told)
			if told {
				return
			}
			if !ok {
				rt.failed.Store(true)
				rt.wake() // the round's length changed: the loop re-arms
			}
			if rt.inflight.Add(-1) == 0 && !rt.failed.Load() {
				rt.wake()
			}
		}()
	}
}

// announcements says whether an exchange's entries are all
// announcements (entry.announces).
func announcements(es []entry) bool {
	for _, e := range es {
		if !e.announces() {
			return false
		}
	}
	return len(es) > 0
}

// announced says whether entries hold an announcement of query id.
func announced(entries []entry, id QueryID) bool {
	for _, e := range entries {
		if e.ID == id && e.announces() {
			return true
		}
	}
	return false
}

// announce tells k random live peers not known to hold query q of it —
// the plan alone, no message of the core — in this round's exchanges
// (one to each; a peer this round's messages already go to is not
// drawn). A peer that learns the query so joins it as from any request
// and starts its rounds; the query then reaches N peers in about
// log_{k+2} N rounds (query.SpreadRoundsFanout). Called with rt.mu held.
func (rt *runtime) announce(q *instance, k int, out map[string][]entry) {
	for try := 0; k > 0 && try < 2*k+2; try++ {
		p, ok := rt.net.Sample(rt.r)
		if !ok {
			return
		}
		id := peerID(p)
		if q.has[id] || rt.prober.isLost(p) || p == rt.net.Name() {
			continue
		}
		if _, sending := out[p]; sending {
			continue
		}
		rt.names[id] = p
		e := q.entry(nil, true, id)
		// The plan alone: the members this peer left out go with its
		// messages, to peers whose flows with them are at stake.
		e.Excluded = nil
		out[p] = append(out[p], e)
		rt.stats.Announced++
		k--
	}
}

// askerRound is the asking peer's part of a round for its query q: the
// members found skewed or suspected, the asker's own probes of those, the
// hold while a lost member may not yet have been found, a refusal at
// capacity (busy), and the convergence rule (report). It returns the
// round's report, if there is one. Called with rt.mu held.
func (rt *runtime) askerRound(q *instance, members map[string]bool, now time.Time) (report, bool) {
	if !q.reported {
		q.noteSkew(rt.prober.skewed(now, true, func(m string) bool { return members[m] }), members)
	}
	suspects := rt.prober.suspects(func(name string) bool { return members[name] && !q.out(name) })
	pending, grace := rt.prober.probeSuspects(suspects)
	if q.run.Spent() && q.awaitProbes(suspects, pending, grace, now) {
		return report{}, false
	}
	q.run.Hold(now.Sub(q.started) < rt.prober.findWithin())
	for name, why := range q.run.Implausible() {
		// Its own signed claim, which this asker's observations refuse
		// (met directly, most often as a straggler): its entry is not
		// in the answer, which says so and does not wait for it.
		q.exclude(name, why+"; its entry refused")
	}
	if len(q.refused) > 0 && !q.reported {
		// A peer at capacity would not join: the answer would leave it
		// out. Stop, and say busy — retry — rather than answer partial.
		q.reported, q.finishedAt = true, rt.round
		rt.end(q.id, len(members))
		return report{q: q, busy: rt.adm.busy(fmt.Sprintf("%d peer(s) were at capacity and would not take part (%s)",
			len(q.refused), strings.Join(sortedNames(q.refused, nil), ", ")))}, true
	}
	rp, ok := q.report(rt.round, rt.now(), members, suspects)
	if !ok {
		return report{}, false
	}
	if rp.final != nil {
		rt.end(q.id, len(members)) // over: the news spreads
	}
	if rp.unreadable != nil {
		rt.stats.Unreadable++
		rt.logf("query %s (%s): %s", q.planHash, q.run.Plan().Text, rp.final.Reason)
	}
	return rp, true
}

// wake lets the next round start after MinRound rather than Round: the
// last round's exchanges are back, or there is something new to gossip
// (a query joined or asked) and an idle peer must not sit out a Round.
func (rt *runtime) wake() {
	select {
	case rt.roundDone <- struct{}{}:
	default:
	}
}

// collect forgets an instance, remembering its id for a while so that late
// messages do not bring it back, and, for a plan the asker samples, the
// record it contributed, so that a sample that comes after (a member
// hears the query's end before the asker's sample request reaches it) is
// shown it, not the record as it is by then (runtime.kept). Called with
// rt.mu held.
func (rt *runtime) collect(id QueryID, q *instance) {
	delete(rt.queries, id)
	rt.gone[id] = rt.round + int64(4*(run.MaxRoundsFactor*q.run.Budget()+rt.cfg.Linger))
	if q.rec != nil && run.Sampled(q.run.Plan()) && len(rt.kept) < maxShown {
		rt.kept[id] = earlyRecord{rec: q.rec, until: rt.gone[id]}
	}
}

// end records that a query is over: this peer drops its instance (unless
// it asked it) and spreads the news for as many rounds as the query took
// to spread, once (not if it has told it already). Called with rt.mu
// held.
func (rt *runtime) end(id QueryID, peers int) {
	if _, ok := rt.ended[id]; ok {
		return
	}
	if _, ok := rt.told[id]; !ok { // told already: not anew
		rt.ended[id] = rt.round + int64(query.PushRounds(max(peers, 2)))
	}
	if q := rt.queries[id]; q != nil && !q.origin {
		rt.collect(id, q)
		rt.stats.Ended++
	}
}

// memberSet is the live members by name. Never call it with rt.mu held.
func memberSet(net Network) map[string]bool {
	ms := net.Members()
	set := make(map[string]bool, len(ms))
	for _, m := range ms {
		set[m.Name] = true
	}
	return set
}

// exchange sends one batch, its entries encoded in body, and steps the
// replies; it reports whether the round may go on at once: the peer
// answered, or refused the connection. told marks a batch of
// announcements alone, which tick did not count in outTo.
func (rt *runtime) exchange(to string, entries []entry, body []byte, told bool) bool {
	ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.ExchangeTimeout)
	sent := rt.now()
	ended := rt.prober.suspectIfSlow(to)
	resp, err := rt.net.Exchange(ctx, to, body)
	ended()
	cancel()
	now := rt.now()
	var replies batch
	var decodeErr error
	var rec query.Record
	if err == nil {
		noteTime(&rt.exchangeTime, now.Sub(sent))
		// Decoded before rt.mu, so that the record of a query handed
		// over (handOver) is read, as serve reads it, outside it.
		if replies, decodeErr = decodeBatch(resp); decodeErr == nil && handsOver(replies.Entries) && rt.joins(replies.Entries) {
			rec = rt.record()
		}
	} else {
		rt.prober.failedWith(to, err, now) // before rt.mu: a refused connection is a loss (memberLost)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if !told {
		if rt.outTo[to]--; rt.outTo[to] <= 0 {
			delete(rt.outTo, to)
		}
	}
	rt.stats.Exchanges++
	rt.stats.BytesSent += int64(len(body))
	if err != nil {
		rt.stats.Failed++
		// A refused connection is an answer: the peer is gone (and now
		// lost), and the next round need not wait a Round for it.
		return errors.Is(err, network.ErrNoEndpoint)
	}
	rt.prober.reached(to, now)
	rt.stats.BytesReceived += int64(len(resp))
	if decodeErr != nil {
		rt.stats.Malformed++
		return false
	}
	rt.prober.takeHints(replies.Hints, now)
	from := peerID(to)
	answered := make(map[QueryID]bool, len(replies.Entries))
	var holders map[QueryID]bool // queries this reply said it held (entry.holds)
	handed := 0                  // queries this reply handed over (handOver)
	for _, r := range replies.Entries {
		answered[r.ID] = true
		if r.Kind == protoEnd {
			rt.end(r.ID, rt.net.Size())
			continue
		}
		if r.announces() {
			// An honest peer hands over at most handOverMax a reply:
			// more are a liar's, and go no further.
			if handed++; handed > handOverMax {
				rt.stats.Malformed++
				continue
			}
			rt.handedOver(r, from, rec)
			continue
		}
		if q := rt.queries[r.ID]; q != nil && q.kind == r.Kind {
			if r.holds() {
				// Only the answer to an announcement of it says that,
				// once: a peer counts as one holder however many times
				// its reply says so.
				if !announced(entries, r.ID) || holders[r.ID] {
					rt.stats.Malformed++
					continue
				}
				if holders == nil {
					holders = map[QueryID]bool{}
				}
				holders[r.ID] = true
				q.heard(from)
				q.run.FoundHolder()
				rt.stats.AnnouncedHolders++
				continue
			}
			if !rt.takeExcluded(q, r.Excluded, to) {
				continue
			}
			if err := q.run.Step(from, r.Msg); err != nil {
				rt.stats.Malformed++
			} else {
				q.heard(from)
			}
		}
	}
	// A peer that answered nothing to a request sent without the plan no
	// longer has the query (it restarted, or let it go): the next request
	// carries the plan again.
	for _, e := range entries {
		if q := rt.queries[e.ID]; q != nil && e.Plan == nil && !answered[e.ID] {
			delete(q.has, from)
		}
	}
	return true
}

// serve answers an exchange: lease requests go to the lease table, every
// other entry to its query, joining the queries this peer has not heard
// of, and the replies go back in one batch.
func (rt *runtime) serve(from string, req []byte) ([]byte, error) {
	if rt.closed() {
		return nil, errors.New("node: closed")
	}
	b, err := decodeBatch(req)
	now := rt.now()
	rt.mu.Lock()
	rt.stats.Served++
	rt.stats.BytesReceived += int64(len(req))
	if err != nil {
		rt.stats.Malformed++
	} else {
		rt.prober.reached(from, now)
		rt.prober.takeHints(b.Hints, now)
	}
	rt.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var replies, gossip []entry
	for _, e := range b.Entries {
		switch e.Kind {
		case protoLease:
			// The lease table persists before it answers: not under rt.mu.
			replies = append(replies, entry{Kind: protoLease, Msg: rt.leases.handle(from, e.Msg)})
		case protoProbe:
			replies = append(replies, rt.prober.answerProbe(e.Asker)) // a ping: not under rt.mu
		case protoSample:
			replies = append(replies, rt.answerSample(e)) // reads the record: not under rt.mu
		case protoPool:
			var msg []byte
			if rt.pools.on() {
				msg = rt.pools.serveLAN(from, e.Msg)
			} else {
				msg = encodePool(poolResp{Err: "this peer's cloud is one pool"})
			}
			replies = append(replies, entry{ID: e.ID, Kind: protoPool, Msg: msg})
		default:
			gossip = append(gossip, e)
		}
	}
	var rec query.Record
	if rt.joins(gossip) {
		rec = rt.record()
	}
	peers := rt.net.Size()
	src := peerID(from)
	rt.mu.Lock()
	rt.names[src] = from
	for _, e := range gossip {
		switch e.Kind {
		case protoEnd:
			rt.end(e.ID, peers)
			continue
		case protoRefuse:
			if q := rt.queries[e.ID]; q != nil && q.origin {
				q.refuse(from)
			}
			continue
		}
		q := rt.queries[e.ID]
		held := q != nil
		if q == nil {
			_, over := rt.ended[e.ID]
			if _, told := rt.told[e.ID]; over || told {
				replies = append(replies, entry{ID: e.ID, Kind: protoEnd}) // the requester can drop it too
				continue
			}
			if q, err = rt.join(e, rec); err != nil {
				continue
			}
		}
		if q.kind != e.Kind {
			rt.stats.Malformed++
			continue
		}
		if !rt.takeExcluded(q, e.Excluded, from) {
			continue // this peer is left out of it: it gives no more
		}
		if e.announces() {
			// The plan alone, to join by. The sender holds the query:
			// it is not told of it again. If this peer held it before,
			// it says so (entry.holds): the sender counts it, and stops
			// announcing after run.StopAnnouncing such replies.
			q.heard(src)
			if held {
				replies = append(replies, entry{ID: e.ID, Kind: q.kind})
			}
			continue
		}
		if err := q.run.Step(src, e.Msg); err != nil {
			rt.stats.Malformed++
			continue
		}
		q.heard(src)
		for _, env := range q.run.Messages() {
			replies = append(replies, q.entry(env.Msg, false, src))
		}
	}
	if pulls(gossip) {
		replies = rt.handOver(from, replies)
	}
	resp := encodeBatch(batch{Hints: rt.prober.hints(now), Entries: replies})
	rt.stats.BytesSent += int64(len(resp))
	rt.mu.Unlock()
	return resp, nil
}

// handedOver takes a query a reply from peer from handed over (handOver):
// a query this peer holds already, the sender holds too; one it does not,
// it joins, as from a request, unless it ended here or this peer refused
// it. Called with rt.mu held; rec is this peer's record, read before.
func (rt *runtime) handedOver(e entry, from peer.ID, rec query.Record) {
	if e.Kind != protoAggregate && e.Kind != protoTopK {
		rt.stats.Malformed++
		return
	}
	q := rt.queries[e.ID]
	if q == nil {
		_, over := rt.ended[e.ID]
		if _, told := rt.told[e.ID]; over || told {
			return
		}
		var err error
		if q, err = rt.join(e, rec); err != nil {
			return
		}
	}
	if q.kind == e.Kind {
		q.heard(from)
	}
}

// handsOver says whether a reply hands over a query (an announcement):
// only then may it need this peer's record, and rt.mu to know.
func handsOver(es []entry) bool {
	for _, e := range es {
		if e.announces() {
			return true
		}
	}
	return false
}

// pulls says whether a request's entries are a query's exchange, whose
// reply may hand over other queries (handOver): a lease request's, a
// probe's, a sample's and a pool's replies are theirs alone, each read by
// its own protocol.
func pulls(gossip []entry) bool {
	for _, e := range gossip {
		if e.Kind == protoAggregate || e.Kind == protoTopK {
			return true
		}
	}
	return false
}

// handOverMax bounds the queries one reply hands over (handOver): a few
// hundred bytes of plan each.
const handOverMax = 2

// handOver adds to a reply to from, which exchanged with this peer for a
// query (pulls), up to handOverMax of the young queries this peer runs
// (run.Instance.Young: still spreading) that from is not known to hold —
// the plan alone, as an announcement — so that a peer pulling from one
// that holds a query learns it, as a peer pushed to does (push-pull rumor
// spreading: the last peers to hear of a query are found by their own
// exchanges too, not only by the holders' draws; Karp et al., "Randomized
// rumor spreading", 2000). A query is handed to a peer once (instance
// handed); it counts as holding it only once heard from, as after a push.
// A peer left out of a query, and the asker's own once finished or
// answered (busy), are not handed it. Called with rt.mu held, after the request's entries: a query
// the request named is held.
func (rt *runtime) handOver(from string, replies []entry) []entry {
	src := peerID(from)
	n := 0
	for _, q := range rt.queries {
		if n == handOverMax {
			break
		}
		if q.has[src] || q.handed[src] || q.out(from) || q.origin && (q.run.Final() || q.reported) || !q.run.Young() {
			continue
		}
		e := q.entry(nil, true, src)
		e.Excluded = nil // as in announce: the members left out go with messages
		replies = append(replies, e)
		if q.handed == nil {
			q.handed = map[peer.ID]bool{}
		}
		q.handed[src] = true
		rt.stats.HandedOver++
		n++
	}
	return replies
}

// takeExcluded merges the members a peer says are left out of query q, as
// the answer's peers found them, and reports whether this peer still takes
// part (it is not one of them). Called with rt.mu held.
func (rt *runtime) takeExcluded(q *instance, names []string, from string) bool {
	if q.out(from) {
		// A member this peer left out may have been cut off from the
		// others, and found them lost from where it was: its word on
		// who is lost is not taken (its message is refused by the
		// instance), or a member cut off for a second would, once
		// back, have alive members left out by everyone it reached.
		return true
	}
	for _, x := range names {
		if x == rt.net.Name() && !q.origin {
			rt.collect(q.id, q) // the others undo what it gave: it gives no more
			rt.stats.Excluded++
			return false
		}
		q.exclude(x, "lost while it ran, as its peers found")
	}
	return true
}

// memberLost leaves a member the prober found lost out of every query
// this peer takes part in (each spreads the news with its messages). The
// prober calls it without rt.mu.
func (rt *runtime) memberLost(name, why string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, q := range rt.queries {
		q.exclude(name, why)
	}
}

// joins reports whether a batch holds a query this peer would join: its
// record must then be read, before taking the lock.
func (rt *runtime) joins(es []entry) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, e := range es {
		if e.Kind != protoAggregate && e.Kind != protoTopK {
			continue
		}
		if _, ok := rt.queries[e.ID]; !ok {
			if _, over := rt.gone[e.ID]; !over {
				return true
			}
		}
	}
	return false
}

// running counts the queries that hold a place: all but the asker's own
// finished ones, lingering. Called with rt.mu held.
func (rt *runtime) running() int {
	k := 0
	for _, q := range rt.queries {
		if !(q.origin && q.run.Final()) {
			k++
		}
	}
	return k
}

// join creates this peer's instance of a query it hears of. Called with
// rt.mu held; rec is the peer's record, read before. A peer at MaxQueries
// refuses, and tells the asker once.
func (rt *runtime) join(e entry, rec query.Record) (*instance, error) {
	if _, ok := rt.gone[e.ID]; ok {
		rt.stats.Stale++
		return nil, errors.New("node: query already over here")
	}
	if rt.running() >= rt.cfg.MaxQueries || rt.adm.loaded() != "" {
		rt.stats.Refused++
		// Remember the refusal for the query's life, and say it once.
		rt.gone[e.ID] = rt.round + int64(4*(query.MaxRounds+rt.cfg.Linger))
		if e.Asker != "" && e.Asker != rt.net.Name() {
			id, asker := e.ID, e.Asker
			rt.wg.Add(1)
			go func() {
				defer rt.wg.Done()
				ctx, cancel := context.WithTimeout(rt.ctx, rt.cfg.ExchangeTimeout)
				defer cancel()
				body := encodeBatch(batch{Entries: []entry{{ID: id, Kind: protoRefuse}}})
				_, err := rt.net.Exchange(ctx, asker, body)
				// Unheard, the asker takes this peer for slow: its answer
				// waits, or is partial, rather than busy. Counted as any
				// exchange that got no answer.
				rt.mu.Lock()
				rt.stats.Exchanges++
				rt.stats.BytesSent += int64(len(body))
				if err != nil {
					rt.stats.Failed++
				}
				rt.mu.Unlock()
			}()
		}
		return nil, errors.New("node: too many queries")
	}
	if rec == nil {
		return nil, errors.New("node: no record") // the batch changed between the two looks
	}
	plan, err := query.Decode(e.Plan)
	if err != nil {
		rt.stats.Malformed++
		return nil, err
	}
	bound := recordFor(rt.net, rec, e.Origin)
	if r, ok := rt.shown[e.ID]; ok {
		bound = r.rec // what its sample was shown
		delete(rt.shown, e.ID)
	}
	q, err := rt.bind(e.ID, plan, e.Plan, e.Origin, e.Asker, e.Coverage, false, bound, rt.net.Size())
	if err != nil || q.kind != e.Kind {
		rt.stats.Malformed++
		return nil, fmt.Errorf("cannot join the query: %v", err)
	}
	q.run.JoinAt(int(e.Round))
	rt.stats.Joined++
	rt.queries[e.ID] = q
	rt.instances.Add(1)
	rt.wake()
	return q, nil
}

// bind makes this peer's instance of a plan, bound to this runtime — its
// random source, the round's peer, the membership — with rec as its
// contribution, or its ledger's rows FROM leases. Called with rt.mu held:
// rec is read before.
func (rt *runtime) bind(id QueryID, plan *query.Plan, wire, coord []byte, asker string, coverage uint32, origin bool, rec query.Record, peers int) (*instance, error) {
	rows := []query.Record{rec}
	if plan.Table == query.TableLeases {
		rows, rec = rt.leases.ledgerRows(), nil
	}
	q, err := newInstance(id, plan, wire, coord, asker, coverage, origin, rows, rt.now(), run.Config{Peers: peers, Rand: rt.r, Sampler: sampler{rt},
		Alive: func(name string) bool { return alive(rt.net, name) }, Linger: rt.cfg.Linger, CheckReceived: true, Retries: -1, SelfID: peerID(rt.net.Name()), IDOf: peerID, Self: rt.net.Name(), Members: func() []string { return memberNames(rt.net) },
		Seal: rt.seal, Query: id[:], Fanout: query.ResolveFanout(int(rt.fanout.Load()), plan.Kind, peers), Reliability: rt.reliabilityBound()})
	if q != nil {
		q.rec = rec
	}
	return q, err
}

// leaseContact is told how a lease request to a member of this pool went
// (ownerEnv.contact, relayIn): an answer clears what this peer's probes
// noted of it, as any exchange does; a failure sets them going, as a
// query's failed exchange does, and the member counts as unreachable
// once they have found it silent for HintTTL (silentFor). Another pool's
// member is its relays' to judge. Call it without rt.mu.
func (rt *runtime) leaseContact(peer string, err error) (time.Duration, bool) {
	if _, _, remote := remoteName(peer); remote || peer == rt.net.Name() {
		return 0, false
	}
	now := rt.now()
	if err == nil {
		rt.prober.reached(peer, now)
		return 0, false
	}
	rt.prober.failedWith(peer, err, now)
	return rt.prober.silentFor(peer, now)
}

// reliabilityBound is a query's run.Config.Reliability: the observer's
// bound on a node's claim (atMost, which remembers each member's for a
// second: a top-k checks every entry that enters a peer's list against
// it). Undefended (the cluster benchmark's switch), there is none.
func (rt *runtime) reliabilityBound() func(node string) (float64, bool) {
	return func(node string) (float64, bool) {
		if rt.undefended.Load() {
			return 0, false
		}
		return rt.observer.atMost(node, rt.now())
	}
}

// gossip runs a plan by gossip from this peer.
func (rt *runtime) gossip(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, error) {
	a, _, _, err := rt.askPlan(ctx, plan, progress, nil)
	return a, err
}

// search runs a subcloud's search for candidates (RESERVE's, a repair's,
// a resize's) and returns them, best first: in a cloud of pools in every
// pool, another pool's members named pool/name (relay.go).
func (rt *runtime) search(ctx context.Context, plan *query.Plan, progress func(answer.Progress)) (*answer.Answer, []string, error) {
	if rt.pools.on() {
		return rt.pools.search(ctx, plan, progress)
	}
	a, err := rt.gossip(ctx, plan, progress)
	if a == nil {
		return nil, nil, err
	}
	return a, a.Nodes, err
}

// gossipPartial runs plan as gossip does and also returns its pool's
// share (run.Partial, read from the asking instance once it answered):
// a gateway's run in its pool (pools.go), for the statement cloud, the
// cloud-wide query's ID. With one member, the peer alone, it is the
// peer's own record's.
//
// Where the sample stands in for a bent robust answer (status sampled),
// the share is the sample's: its members' signed records as the pool's
// partial (run.ExactPartial: the sampled distribution, over the pool's
// members), which merges with the other pools' as any partial does. The
// sample is drawn by cloud, not by this run's own ID, so that the pool's
// gateways, each running the statement apart, draw the same members and
// report the same partial: two samples of their own would disagree by
// their widths, more than the accuracy allows.
func (rt *runtime) gossipPartial(ctx context.Context, plan *query.Plan, cloud QueryID) (*answer.Answer, *run.Partial, error) {
	if rt.net.Size() == 1 {
		return rt.alonePartial(plan)
	}
	a, q, s, err := rt.askPlan(ctx, plan, nil, cloud[:])
	if q == nil || a == nil || a.Meta == nil {
		return a, nil, err
	}
	if a.Meta.Status == answer.StatusSampled && s != nil {
		part, perr := s.partial(plan, a.Meta.Peers)
		if perr != nil {
			return a, nil, errors.Join(err, perr)
		}
		return a, part, err
	}
	rt.mu.Lock()
	part, perr := q.run.Partial(a.Meta.Peers)
	rt.mu.Unlock()
	if perr != nil {
		return a, nil, errors.Join(err, perr)
	}
	return a, part, err
}

// alonePartial is the partial of a pool of one: this peer.
func (rt *runtime) alonePartial(plan *query.Plan) (*answer.Answer, *run.Partial, error) {
	b, err := run.Bind(plan, run.Config{Peers: 1, Rand: mrand.New(mrand.NewPCG(1, 1)), Sampler: nobody{}, Self: rt.net.Name()}) // one peer: no choices to make
	if err != nil {
		return nil, nil, err
	}
	q, err := b.New(true, recordFor(rt.net, rt.record(), rt.net.Coordinate()))
	if err != nil {
		return nil, nil, err
	}
	part, err := q.Partial(1)
	if err != nil {
		return nil, nil, err
	}
	a := &answer.Answer{Meta: &answer.Meta{Status: StatusExact, Converged: true, Peers: 1, MembersStart: 1, MembersEnd: 1, PlanHash: plan.Hash()}}
	return a, part, nil
}

// askPlan is gossip, with the asking instance (nil when it never started)
// and its sample (nil: none). Where the sample contests a robust answer,
// the sample's own stands in for it (run.Fallback). drawBy is what the
// sample's members are drawn by (SampleOf): nil is the query's own ID.
func (rt *runtime) askPlan(ctx context.Context, plan *query.Plan, progress func(answer.Progress), drawBy []byte) (*answer.Answer, *instance, *sampling, error) {
	ctx, release, err := rt.adm.Admit(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	defer release()
	rt.asking.Add(1)
	defer rt.asking.Add(-1)
	start := rt.now()
	wire, err := plan.Encode()
	if err != nil {
		return nil, nil, nil, err
	}
	// This peer's network coordinate travels beside the plan, so that
	// every peer can compute its rtt to the asker.
	coord := rt.net.Coordinate()
	rec := recordFor(rt.net, rt.record(), coord)
	members := memberSet(rt.net)
	peers := len(members)
	id := newQueryID()
	rt.mu.Lock()
	var coverage uint32
	if run.ProtocolOf(plan.Kind) == run.TopK {
		coverage = uint32(run.CoverageFor(peers))
	}
	q, err := rt.bind(id, plan, wire, coord, rt.net.Name(), coverage, true, rec, peers)
	if err != nil {
		rt.mu.Unlock()
		return nil, nil, nil, err
	}
	q.progress, q.started, q.atStart = progress, start, members
	// Members this peer found lost lately are left out from the start:
	// a query asked now would otherwise wait to find them again. The
	// sample does not ask them (startSample's skip): asked, a member that
	// hangs held every statement's check for the exchange timeout (2 s,
	// against 0.15 s of gossip) and, one of 8 sampled silent, left every
	// answer unchecked (scripts/netns-hang.sh).
	var leftOut map[string]bool
	for name, why := range rt.prober.lostLately(start) {
		if members[name] {
			q.exclude(name, why)
			if leftOut == nil {
				leftOut = map[string]bool{}
			}
			leftOut[name] = true
		}
	}
	rt.queries[id] = q
	rt.instances.Add(1)
	rt.mu.Unlock()
	rt.wake()
	sample := rt.startSample(id, drawBy, plan, wire, coord, rec, members, leftOut)

	var deadline <-chan time.Time
	if plan.TimeoutSeconds > 0 {
		deadline = time.After(time.Duration(plan.TimeoutSeconds * float64(time.Second)))
	}
	select {
	case out := <-q.result:
		if out.busy != nil {
			return nil, q, sample, out.busy
		}
		sctx := ctx
		if plan.TimeoutSeconds > 0 {
			var cancel context.CancelFunc
			sctx, cancel = context.WithDeadline(ctx, start.Add(time.Duration(plan.TimeoutSeconds*float64(time.Second))))
			defer cancel()
		}
		rt.finishSample(sctx, q, sample, out.ans)
		if out.ans != nil && out.ans.Meta != nil && !rt.undefended.Load() {
			if why := run.Implausible(plan, out.ans); why != "" {
				out.ans.Contest(why)
			}
		}
		return out.ans, q, sample, nil
	case <-deadline:
		a, err := rt.partial(q, ErrTimeout)
		return a, q, sample, err
	case <-ctx.Done():
		a, err := rt.partial(q, ctx.Err())
		return a, q, sample, err
	case <-rt.done:
		a, err := rt.partial(q, ErrClosed)
		return a, q, sample, err
	}
}

// partial stops a query early and returns its current answer with err.
func (rt *runtime) partial(q *instance, err error) (*answer.Answer, error) {
	members := memberSet(rt.net)
	rt.mu.Lock()
	q.run.Stop()
	if !q.reported {
		q.reported, q.finishedAt = true, rt.round
		rt.end(q.id, len(members))
	}
	suspects := rt.prober.suspects(func(name string) bool { return members[name] && !q.out(name) })
	a, rerr := q.run.Answer(q.population(members))
	rt.mu.Unlock()
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	res := q.result1(a, members, suspects, rt.now())
	res.Converged, res.Status = false, StatusPartial
	why := err.Error()
	switch {
	case errors.Is(err, context.Canceled):
		why = "canceled" // Ctrl-C, or the client went away
	case errors.Is(err, context.DeadlineExceeded):
		why = "the client's time limit ended it"
	}
	res.Reason = why
	return res, &stoppedError{err: err, msg: fmt.Sprintf("%s after %d rounds", why, a.Rounds)}
}

// recordFor is the record base of the peer on net for a query asked from
// the peer at coordinate coord: with its rtt to the asker.
func recordFor(net Network, base query.Record, coord []byte) query.Record {
	rec := make(query.Record, len(base)+1)
	for k, v := range base {
		rec[k] = v
	}
	if d, ok := net.RTT(coord); ok {
		rec["rtt"] = query.Num(query.KindDuration, d.Seconds())
	}
	return query.DefaultCatalog().Clamp(rec)
}

// memberNames are the live members' names: whom a top-k's coverage
// filter must hold. It takes no lock of the node's (it is called under
// rt.mu, and without).
func memberNames(net Network) []string {
	ms := net.Members()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// alive is the top-k cores' view of the membership: the live members, this
// peer included.
func alive(net Network, name string) bool {
	if name == net.Name() {
		return true
	}
	_, ok := net.Member(name)
	return ok
}

// sampler gives the cores the round's peer: every query of a round
// exchanges with the same peer, in one message. It is called under rt.mu.
type sampler struct{ rt *runtime }

// nobody is the sampler of a peer alone in its pool.
type nobody struct{}

func (nobody) Sample(*mrand.Rand) (peer.ID, bool) { return 0, false }

func (s sampler) Sample(*mrand.Rand) (peer.ID, bool) {
	if s.rt.roundPeer == "" {
		return 0, false
	}
	return peerID(s.rt.roundPeer), true
}

func newQueryID() QueryID {
	var id QueryID
	rand.Read(id[:])
	return id
}

// noteTime folds one measure into an average kept in an atomic.
func noteTime(avg *atomic.Int64, d time.Duration) {
	old := avg.Load()
	if old == 0 {
		avg.Store(int64(d))
		return
	}
	avg.Store(old + (int64(d)-old)/8)
}
