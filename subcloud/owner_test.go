package subcloud

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var (
	ownerSchedules = flag.Int("owner.schedules", 300, "how many random schedules TestOwnerProperty runs")
	ownerSeed      = flag.Uint64("owner.seed", 0, "run only this schedule of TestOwnerProperty (0: all)")
	ownerTrace     = flag.Bool("owner.trace", false, "log every event and action of TestOwnerProperty")
)

var errDiskFull = errors.New("disk full")

// The owner's lifecycle, model-checked: two Owners keep their subclouds
// over one pool of fake peers whose lease tables (memory and disk) are
// modeled, on a network that delivers requests in a random order, loses
// requests and replies, answers late, and peers that crash, restart, are
// falsely suspected, and whose disks fill up; the owners' own disks fail
// too, their users RESIZE, EXTEND and RELEASE at random, and the name's
// keepers sometimes side with a rival. After every step:
//
//   - no Owner counts more members than the size it keeps;
//   - every member an Owner counts as live (its confirmed expiry ahead)
//     holds that Owner's lease at the peer — so no peer is a live member of
//     two subclouds;
//   - what an Owner lacks it says: Short is the target minus its members;
//   - a yes (done, or incomplete) to the user comes only after a persist
//     that records the change succeeded, never after it failed, and the
//     disk then holds the change (the size, the term, or no subcloud); a
//     no leaves the size and the term as they were;
//   - a member that holds a longer term than the Owner's (an EXTEND that
//     failed) has its roll-back outstanding.
//
// Then a calm spell (every peer back, nothing lost, disks fine) must
// settle everything: each Owner's members are exactly the peers holding
// its lease, each for its term; a gone Owner leaves no peer holding its
// lease; an Owner that repairs and is short has no free peer left to
// claim; every change the user asked for was answered once.
func TestOwnerProperty(t *testing.T) {
	if *ownerSeed != 0 {
		runOwnerSchedule(t, *ownerSeed)
		return
	}
	n := *ownerSchedules
	if testing.Short() {
		n = min(n, 50)
	}
	var steps, reports, yes, persists int
	for seed := uint64(1); seed <= uint64(n); seed++ {
		s := runOwnerSchedule(t, seed)
		if s.failed {
			t.Fatalf("schedule %d failed (rerun alone with -owner.seed=%d)", seed, seed)
		}
		steps, reports, yes, persists = steps+s.steps, reports+s.reports, yes+s.yes, persists+s.persist
	}
	t.Logf("%d schedules, %d steps: %d answers to the user (%d yes), %d persists", n, steps, reports, yes, persists)
}

// opeer is a fake peer: its lease table in memory and on disk (a release
// its disk could not record comes back after a restart), and the term of
// the lease it holds.
type opeer struct {
	name                    string
	tb, disk                Table
	term, diskTerm          time.Duration
	up, suspected, diskFull bool
	// volatile: it let a lease go that its disk still holds (a release it
	// could not record): after a restart it holds it until it asks.
	volatile bool
	// extend is the EXTEND whose renewal set the lease it holds (nil:
	// anything else did).
	extend *oreq
}

func cloneTable(t Table) Table {
	if t.lease == nil {
		return Table{}
	}
	l := *t.lease
	return Table{lease: &l}
}

// apply is Table.Apply without the signatures (the owner side is what is
// under test, and signing every message would cost the schedules).
func (p *opeer) apply(now time.Time, owner string, req Request) Reply {
	next := cloneTable(p.tb)
	var l Lease
	var err error
	switch req.Op {
	case OpClaim:
		l, err = next.Claim(now, Claim{Subcloud: req.Subcloud, Owner: owner, Token: req.Token, Key: req.Key, For: req.For, Since: timeOf(req.Since)})
	case OpRenew:
		l, err = next.Renew(now, req.Subcloud, req.Token, req.For)
	case OpRelease:
		err = next.Release(now, req.Subcloud, req.Token)
	case OpCheck:
		var cur *Lease
		if cur, err = next.holder(now, req.Subcloud, req.Token); err == nil {
			l = *cur
		}
	default:
		err = ErrBadClaim
	}
	if err != nil {
		return replyOf(err, now)
	}
	rep := Reply{OK: true, Now: now.UnixNano()}
	if !next.equal(&p.tb) {
		term := p.term
		if req.Op == OpClaim || req.Op == OpRenew {
			term = req.For
		}
		if p.diskFull {
			if req.Op != OpRelease {
				return Reply{Refusal: RefusedStorage, Now: now.UnixNano()}
			}
			rep.Volatile, p.volatile = true, true
		} else {
			p.disk, p.diskTerm, p.volatile = cloneTable(next), term, false
		}
		p.tb, p.term, p.extend = next, term, nil
	}
	if req.Op == OpRenew {
		p.extend = nil // renewed now, as any renewal would have
	}
	if req.Op != OpRelease {
		rep.Expires = l.Expires.UnixNano()
	}
	return rep
}

type oflight struct {
	k      int
	id     uint64
	to     string
	req    Request
	extend *oreq // the EXTEND this renewal is for
}

type olate struct {
	k   int
	id  uint64
	rep Reply
	err error
}

// oreq is a change a user asked for, waiting for its answer.
type oreq struct {
	change Change
	size   int
	// rolled are the peers that took this EXTEND's term before it failed:
	// each must be rolled back (or owed a roll-back) while it holds it.
	rolled           map[*opeer]bool
	d, oldLease      time.Duration
	oldTarget        int
	persistOK, fails bool
}

type omodel struct {
	name, sub, token string
	o                *Owner
	persist          *Action
	disk             *OwnerState
	searches, votes  []uint64
	reqs             []*oreq
	asked, answered  int
	noRepair         bool
	rolled           []*oreq // EXTENDs that failed
	// wasMember are the peers it has counted: what becomes of them after
	// is its maintenance's, not its RESERVE's answer's. reserveClaims are
	// the peers its RESERVE claimed, laterClaims those claimed after
	// (repairs, RESIZE).
	wasMember, reserveClaims, laterClaims map[string]bool
	// need is the fewest members its RESERVE's yes may name.
	need int
}

type ownerSim struct {
	t                            *testing.T
	seed                         uint64
	r                            *rand.Rand
	now                          time.Time
	peers                        []*opeer
	byName                       map[string]*opeer
	owners                       []*omodel
	flights                      []oflight
	lates                        []olate
	loss, slow, diskFail, yield  float64
	calm                         bool
	fresh                        *oreq // the change being asked: an answer at once is its
	failed                       bool
	steps, reports, yes, persist int
}

func (s *ownerSim) fail(format string, args ...any) {
	s.t.Helper()
	if !s.failed {
		s.t.Errorf("seed %d, at %v: %s", s.seed, s.now.Sub(t0), fmt.Sprintf(format, args...))
	}
	s.failed = true
}

func testOwnerConfig() OwnerConfig { return DefaultOwnerConfig() }

func runOwnerSchedule(t *testing.T, seed uint64) *ownerSim {
	r := rand.New(rand.NewPCG(seed, 7))
	s := &ownerSim{t: t, seed: seed, r: r, now: t0, byName: map[string]*opeer{},
		loss: []float64{0, 0.05, 0.2}[r.IntN(3)], slow: []float64{0, 0.3}[r.IntN(2)],
		diskFail: []float64{0, 0.1, 0.3}[r.IntN(3)], yield: []float64{0, 0, 0.02}[r.IntN(3)]}
	nPeers := 3 + r.IntN(12)
	for i := 0; i < nPeers; i++ {
		p := &opeer{name: fmt.Sprintf("p%02d", i), up: true}
		s.peers = append(s.peers, p)
		s.byName[p.name] = p
	}
	nOwners := 1 + r.IntN(2)
	for k := 0; k < nOwners; k++ {
		m := &omodel{wasMember: map[string]bool{}, reserveClaims: map[string]bool{}, laterClaims: map[string]bool{}, name: fmt.Sprintf("o%d", k), sub: fmt.Sprintf("sc%d", k), token: strings.Repeat(string(rune('a'+k)), 32),
			noRepair: r.IntN(5) == 0}
		n := 1 + r.IntN(max(nPeers/nOwners, 1))
		atLeast := 0
		if r.IntN(3) == 0 {
			atLeast = 1 + r.IntN(n)
		}
		lease := []time.Duration{10 * time.Second, 30 * time.Second, time.Minute}[r.IntN(3)]
		o, err := NewOwner(testOwnerConfig(), Reserve{Subcloud: m.sub, Owner: m.name, Token: m.token, N: n, AtLeast: atLeast,
			Lease: lease, Plan: []byte("plan"), NoRepair: m.noRepair, Keepers: []string{"k1", "k2", "k3"}}, s.now, rand.New(rand.NewPCG(seed, uint64(k))))
		if err != nil {
			t.Fatal(err)
		}
		m.o, m.need = o, n
		if atLeast > 0 {
			m.need = atLeast
		}
		m.reqs = append(m.reqs, &oreq{change: ChangeReserve})
		m.asked++
		s.owners = append(s.owners, m)
	}
	for k := range s.owners {
		s.drain(k)
	}
	s.check()
	steps := 300 + r.IntN(1500)
	for s.steps = 0; s.steps < steps && !s.failed; s.steps++ {
		s.step()
		s.check()
	}
	if !s.failed {
		s.settle()
	}
	return s
}

// step is one random event.
func (s *ownerSim) step() {
	r := s.r
	switch x := r.IntN(100); {
	case x < 40 && len(s.flights) > 0:
		i := r.IntN(len(s.flights))
		f := s.flights[i]
		s.flights = append(s.flights[:i], s.flights[i+1:]...)
		s.deliver(f)
	case x < 50 && len(s.lates) > 0:
		i := r.IntN(len(s.lates))
		l := s.lates[i]
		s.lates = append(s.lates[:i], s.lates[i+1:]...)
		s.tracef("%s #%d answered late", s.owners[l.k].name, l.id)
		s.owners[l.k].o.Reply(s.now, l.id, l.rep, l.err)
		s.drain(l.k)
	case x < 65:
		s.now = s.now.Add(time.Duration(50+r.IntN(1500)) * time.Millisecond)
		for k, m := range s.owners {
			m.o.Tick(s.now)
			s.drain(k)
		}
	case x < 72:
		k := r.IntN(len(s.owners))
		s.answerPersist(k)
	case x < 78:
		k := r.IntN(len(s.owners))
		s.answerSearch(k)
		s.answerVote(k)
	case x < 81: // a peer crashes; the failure detector may say so
		p := s.peers[r.IntN(len(s.peers))]
		if p.up {
			p.up = false
			if r.IntN(4) > 0 {
				s.lost(p, "it failed")
			}
		}
	case x < 85: // a peer restarts: its table comes back from its disk
		p := s.peers[r.IntN(len(s.peers))]
		if !p.up || p.suspected {
			if !p.up {
				p.tb, p.term = cloneTable(p.disk), p.diskTerm
			}
			p.up = true
			s.back(p)
		}
	case x < 86: // a false suspicion
		if p := s.peers[r.IntN(len(s.peers))]; p.up {
			s.lost(p, "it failed")
		}
	case x < 88:
		p := s.peers[r.IntN(len(s.peers))]
		p.diskFull = !p.diskFull && r.IntN(3) == 0
	case x < 93: // a member asks its owner about its lease
		p := s.peers[r.IntN(len(s.peers))]
		s.ask(p)
	case x < 99:
		s.user(r.IntN(len(s.owners)))
	default:
		// a quiet step
	}
}

func (s *ownerSim) lost(p *opeer, why string) {
	s.tracef("%s lost (%s)", p.name, why)
	p.suspected = true
	for k, m := range s.owners {
		m.o.MemberLost(s.now, p.name, why)
		s.drain(k)
	}
}

func (s *ownerSim) back(p *opeer) {
	s.tracef("%s back", p.name)
	p.suspected = false
	for k, m := range s.owners {
		m.o.MemberBack(s.now, p.name)
		s.drain(k)
	}
}

// ask is a peer asking the owner of its lease whether it still holds it,
// and letting the lease go if not (Table.Drop).
func (s *ownerSim) ask(p *opeer) {
	l, ok := p.tb.Current(s.now)
	if !ok || !p.up {
		return
	}
	for _, m := range s.owners {
		if l.Token == m.token && !m.o.Holds(p.name) {
			p.tb = Table{}
			if !p.diskFull {
				p.disk = Table{}
			}
		}
	}
}

// user asks owner k for a change.
func (s *ownerSim) user(k int) {
	m, r := s.owners[k], s.r
	q := &oreq{oldLease: m.o.Lease(), oldTarget: m.o.Target()}
	switch x := r.IntN(10); {
	case x < 5:
		q.change, q.size = ChangeResize, 1+r.IntN(len(s.peers))
		s.tracef("%s RESIZE TO %d", m.name, q.size)
		m.reqs, m.asked = append(m.reqs, q), m.asked+1
		m.o.Resize(s.now, q.size)
	case x < 9:
		q.change, q.d = ChangeExtend, []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 3 * time.Minute}[r.IntN(4)]
		s.tracef("%s EXTEND FOR %v", m.name, q.d)
		m.reqs, m.asked = append(m.reqs, q), m.asked+1
		m.o.Extend(s.now, q.d)
	default:
		if r.IntN(3) > 0 {
			return // RELEASE is rarer still: it ends the schedule's interest in the owner
		}
		q.change = ChangeRelease
		s.tracef("%s RELEASE", m.name)
		m.reqs, m.asked = append(m.reqs, q), m.asked+1
		m.o.Release(s.now)
	}
	s.fresh = q
	s.drain(k)
	s.fresh = nil
}

// deliver carries one request to its peer, and its answer back: now, late,
// or never (lost on the way there or back).
func (s *ownerSim) deliver(f oflight) {
	m, p, r := s.owners[f.k], s.byName[f.to], s.r
	var err error
	switch {
	case !p.up && r.IntN(3) > 0:
		err = fmt.Errorf("dial %s: %w", f.to, ErrUnreachable)
	case !p.up:
		err = errLost
	case !s.calm && r.Float64() < s.loss/2:
		err = errLost // the request is lost
	}
	if err != nil {
		s.tracef("%s #%d to %s: %v", m.name, f.id, f.to, err)
		m.o.Reply(s.now, f.id, Reply{}, err)
		s.drain(f.k)
		return
	}
	rep := p.apply(s.now, m.name, f.req)
	if rep.OK && f.extend != nil {
		p.extend = f.extend
	}
	s.tracef("%s #%d %v at %s: ok %v %v", m.name, f.id, f.req.Op, f.to, rep.OK, rep.Refusal)
	switch x := r.Float64(); {
	case !s.calm && x < s.loss/2:
		m.o.Reply(s.now, f.id, Reply{}, errLost) // applied, the reply lost
	case !s.calm && x < s.loss/2+s.slow:
		s.lates = append(s.lates, olate{f.k, f.id, rep, nil})
		return
	default:
		m.o.Reply(s.now, f.id, rep, nil)
	}
	s.drain(f.k)
}

func (s *ownerSim) answerPersist(k int) {
	m := s.owners[k]
	a := m.persist
	if a == nil {
		return
	}
	m.persist = nil
	s.persist++
	s.tracef("%s persist #%d answered", m.name, a.ID)
	if !s.calm && s.r.Float64() < s.diskFail {
		s.tracef("  ... failed")
		for _, q := range m.reqs {
			if q.change == a.For {
				q.fails = true
			}
		}
		m.o.Persisted(s.now, a.ID, fmt.Errorf("write %s: %w", m.sub, errDiskFull))
	} else {
		if a.State == nil {
			m.disk = nil
		} else {
			st := a.State.clone()
			m.disk = &st
		}
		for _, q := range m.reqs {
			if q.change == a.For {
				q.persistOK = true
			}
		}
		m.o.Persisted(s.now, a.ID, nil)
	}
	s.drain(k)
}

// answerSearch answers a search with the peers that look free: in a
// stale view some held or down ones too, in a random order, cut short.
func (s *ownerSim) answerSearch(k int) {
	m, r := s.owners[k], s.r
	if len(m.searches) == 0 {
		return
	}
	id := m.searches[0]
	m.searches = m.searches[1:]
	if !s.calm && r.IntN(30) == 0 {
		m.o.Candidates(s.now, id, nil, errors.New("search timed out"))
		s.drain(k)
		return
	}
	var nodes []string
	for _, i := range r.Perm(len(s.peers)) {
		p := s.peers[i]
		_, held := p.tb.Current(s.now)
		if p.up && !held || !s.calm && r.IntN(6) == 0 {
			nodes = append(nodes, p.name)
		}
	}
	if !s.calm {
		nodes = nodes[:r.IntN(len(nodes)+1)]
	}
	m.o.Candidates(s.now, id, nodes, nil)
	s.drain(k)
}

func (s *ownerSim) answerVote(k int) {
	m := s.owners[k]
	if len(m.votes) == 0 {
		return
	}
	id := m.votes[0]
	m.votes = m.votes[1:]
	keepers := []string{"k1", "k2", "k3"}
	v := Vote{Keepers: keepers, Granted: keepers}
	if !s.calm && s.r.Float64() < s.yield {
		v = Vote{Keepers: keepers, Granted: []string{"k3"}, Rival: "rival", Rivals: 2}
	}
	m.o.NameVote(s.now, id, v)
	s.drain(k)
}

func (s *ownerSim) tracef(format string, args ...any) {
	if *ownerTrace {
		s.t.Logf("%9v "+format, append([]any{s.now.Sub(t0)}, args...)...)
	}
}

// drain takes owner k's actions.
func (s *ownerSim) drain(k int) {
	m := s.owners[k]
	for _, a := range m.o.Ready() {
		if *ownerTrace {
			switch a.Kind {
			case ActSend:
				s.tracef("%s → %s %v #%d for %v (purpose %d)", m.name, a.To, a.Req.Op, a.ID, a.Req.For, m.o.sent[a.ID].p)
			case ActPersist:
				tg := "nil"
				if a.State != nil {
					tg = fmt.Sprintf("target %d members %v term %v", a.State.Target, a.State.Order, a.State.Lease)
				}
				s.tracef("%s persist #%d for %v: %s", m.name, a.ID, a.For, tg)
			case ActReport:
				s.tracef("%s REPORT %v %v %v", m.name, a.Report.Change, a.Report.Outcome, a.Report.Err)
			case ActLog:
				s.tracef("%s log: %s", m.name, a.Text)
			default:
				s.tracef("%s %v #%d", m.name, a.Kind, a.ID)
			}
		}
		switch a.Kind {
		case ActSend:
			if a.Req.Subcloud != m.sub || a.Req.Token != m.token {
				s.fail("%s sent %+v", m.name, a.Req)
			}
			if a.Req.Op == OpClaim {
				if m.o.sent[a.ID].p == pClaim && m.o.job != nil && m.o.job.kind == jobReserve {
					m.reserveClaims[a.To] = true
				} else {
					m.laterClaims[a.To] = true
				}
			}
			f := oflight{k: k, id: a.ID, to: a.To, req: a.Req}
			if m.o.sent[a.ID].p == pExtend {
				for _, q := range m.reqs {
					if q.change == ChangeExtend {
						f.extend = q
					}
				}
			}
			s.flights = append(s.flights, f)
		case ActSearch:
			m.searches = append(m.searches, a.ID)
		case ActPersist:
			if m.persist != nil {
				s.fail("%s asked for persist %d while %d is in flight", m.name, a.ID, m.persist.ID)
			}
			a := a
			m.persist = &a
		case ActRegisterName:
			m.votes = append(m.votes, a.ID)
		case ActReport:
			s.reported(k, a.Report)
		case ActReleaseName, ActLog:
		default:
			s.fail("%s: unknown action %v", m.name, a.Kind)
		}
	}
}

// reported checks an answer to the user against what the disk holds.
func (s *ownerSim) reported(k int, rep *Report) {
	m := s.owners[k]
	s.reports++
	m.answered++
	var q *oreq
	for i, c := range m.reqs {
		if c.change == rep.Change && (s.fresh == nil || s.fresh.change != rep.Change || c == s.fresh) {
			q = c
			m.reqs = append(m.reqs[:i], m.reqs[i+1:]...)
			break
		}
	}
	if q == nil {
		s.fail("%s reported %v %v (%v) for no change asked", m.name, rep.Change, rep.Outcome, rep.Err)
		return
	}
	if (rep.Err == nil) != (rep.Outcome == OutcomeDone) {
		s.fail("%s: %v %v with error %v", m.name, rep.Change, rep.Outcome, rep.Err)
	}
	switch rep.Outcome {
	case OutcomeDone, OutcomeIncomplete:
		s.yes++
		switch {
		case !q.persistOK:
			s.fail("%s said yes (%v) to %v before a persist recorded it", m.name, rep.Outcome, rep.Change)
		case q.fails:
			s.fail("%s said yes (%v) to %v after its persist failed", m.name, rep.Outcome, rep.Change)
		}
		d := m.disk
		switch rep.Change {
		case ChangeReserve:
			if d == nil || d.Token != m.token {
				s.fail("%s: RESERVE answered yes, the disk has %+v", m.name, d)
			}
			if rep.Outcome == OutcomeDone && len(m.o.Members()) < m.need {
				s.fail("%s: RESERVE answered done with %d members, %d asked for", m.name, len(m.o.Members()), m.need)
			}
			if m.o.Phase() == PhaseHeld && m.o.Target() < m.need {
				s.fail("%s: RESERVE answered %v with a target of %d, %d asked for", m.name, rep.Outcome, m.o.Target(), m.need)
			}
			// Nobody outside its answer holds its lease, unless named, a
			// member lost since (its maintenance's: taken back, or dropped
			// when it asks), claimed by a repair, back from a disk that
			// could not record its release (it asks), or — claimed only
			// after the RESERVE's claim — owed a release (a repair's).
			for _, p := range s.peers {
				owed := m.o.releases[p.name] != nil && (m.laterClaims[p.name] || !m.reserveClaims[p.name]) || p.volatile
				if l, ok := p.tb.Current(s.now); ok && l.Token == m.token && !slices.Contains(m.o.Members(), p.name) &&
					!slices.Contains(rep.Unanswered, p.name) && !owed && !m.wasMember[p.name] && !repairing(m.o, p.name) {
					s.fail("%s: RESERVE answered yes with %v, and %s holds its lease unnamed", m.name, m.o.Members(), p.name)
				}
			}
		case ChangeResize:
			if d == nil || d.Target != q.size {
				s.fail("%s: RESIZE TO %d answered yes, the disk has %+v", m.name, q.size, d)
			}
		case ChangeExtend:
			if d == nil || d.Lease != q.d {
				s.fail("%s: EXTEND FOR %v answered yes, the disk has %+v", m.name, q.d, d)
			}
		case ChangeRelease:
			if d != nil {
				s.fail("%s: RELEASE answered yes, the disk still has it", m.name)
			}
		}
	default:
		if rep.Change == ChangeExtend {
			q.rolled = map[*opeer]bool{}
			for _, p := range s.peers {
				if p.extend == q {
					q.rolled[p] = true
				}
			}
			m.rolled = append(m.rolled, q)
		}
		var ce *ChangeError
		if !errors.As(rep.Err, &ce) || ce.Outcome != rep.Outcome || ce.Change != rep.Change {
			s.fail("%s: %v %v with error %#v", m.name, rep.Change, rep.Outcome, rep.Err)
		}
		if m.o.Phase() == PhaseHeld && m.o.op == nil {
			switch {
			case rep.Change == ChangeResize && m.o.Target() != q.oldTarget:
				s.fail("%s: RESIZE TO %d failed (%v) yet the target moved from %d to %d", m.name, q.size, rep.Err, q.oldTarget, m.o.Target())
			case rep.Change == ChangeExtend && m.o.Lease() != q.oldLease:
				s.fail("%s: EXTEND failed (%v) yet the term moved from %v to %v", m.name, rep.Err, q.oldLease, m.o.Lease())
			}
		}
		if rep.Change == ChangeRelease && rep.Outcome == OutcomeStorage && m.o.Phase() != PhaseHeld {
			s.fail("%s: RELEASE could not be recorded, yet the subcloud is %v", m.name, m.o.Phase())
		}
	}
}

// repairing is whether a repair of o's claims p, or may have.
func repairing(o *Owner, p string) bool {
	j := o.job
	if j == nil || j.kind != jobRepair {
		return false
	}
	_, held := j.held[p]
	return held || j.c.pending[p] || j.c.uncertain[p] || slices.Contains(j.free, p)
}

// check is the invariants that hold after every step.
func (s *ownerSim) check() {
	liveIn := map[string]string{}
	for _, m := range s.owners {
		o := m.o
		members := o.Members()
		for _, p := range members {
			m.wasMember[p] = true
		}
		if o.Phase() == PhaseHeld {
			if len(members) > o.Target() {
				s.fail("%s counts %d members, above its size %d", m.name, len(members), o.Target())
			}
			if o.Short() != o.Target()-len(members) {
				s.fail("%s is short of %d, says %d", m.name, o.Target()-len(members), o.Short())
			}
		} else if len(members) > 0 {
			s.fail("%s is %v with members %v", m.name, o.Phase(), members)
		}
		for _, p := range members {
			exp, _ := o.Expiry(p)
			if !exp.After(s.now) {
				continue // lapsed: it is dropped at its next renewal or check
			}
			if l, ok := s.byName[p].tb.Current(s.now); !ok || l.Token != m.token {
				s.fail("%s counts %s as a member until %v, but it holds %+v (held %v)", m.name, p, exp.Sub(t0), l, ok)
			}
			if other, dup := liveIn[p]; dup {
				s.fail("%s is a member of both %s and %s", p, other, m.sub)
			}
			liveIn[p] = m.sub
		}
		for _, q := range m.rolled {
			for p := range q.rolled {
				l, ok := p.tb.Current(s.now)
				switch {
				case p.extend != q || !ok || l.Token != m.token:
					delete(q.rolled, p) // rolled back, renewed, or gone
				case o.rollback[p.name] == nil && o.releases[p.name] == nil:
					s.fail("%s: %s holds the term of an EXTEND FOR %v that failed, and no roll-back (or release) is owed", m.name, p.name, q.d)
				}
			}
		}
	}
}

// settle is the calm spell at the end: every peer back and heard from,
// nothing lost, disks fine, accurate searches; then everything must be
// settled.
func (s *ownerSim) settle() {
	s.calm = true
	for _, p := range s.peers {
		if !p.up {
			p.tb, p.term = cloneTable(p.disk), p.diskTerm
			p.up = true
		}
		p.diskFull = false
		if p.suspected {
			s.back(p)
		}
	}
	for i := 0; i < 400 && !s.failed; i++ {
		s.quiesce()
		for _, p := range s.peers {
			s.ask(p)
		}
		s.now = s.now.Add(time.Second)
		for k, m := range s.owners {
			m.o.Tick(s.now)
			s.drain(k)
		}
		s.check()
	}
	s.quiesce()
	for _, m := range s.owners {
		o := m.o
		var holding []string
		for _, p := range s.peers {
			if l, ok := p.tb.Current(s.now); ok && l.Token == m.token {
				holding = append(holding, p.name)
				if p.term != o.Lease() {
					s.fail("%s: %s holds its lease for a term of %v, the owner's is %v", m.name, p.name, p.term, o.Lease())
				}
			}
		}
		members := o.Members()
		sort.Strings(members)
		if fmt.Sprint(members) != fmt.Sprint(holding) {
			s.fail("%s (%v) counts %v, the peers holding its lease are %v", m.name, o.Phase(), members, holding)
		}
		if m.asked != m.answered || len(m.reqs) > 0 {
			s.fail("%s: %d changes asked, %d answered (waiting: %v %+v)", m.name, m.asked, m.answered, m.reqs[0].change, *m.reqs[0])
		}
		switch o.Phase() {
		case PhaseGone:
			if !o.Idle() {
				s.fail("%s is gone but not idle", m.name)
			}
		case PhaseHeld:
			if len(o.rollback) > 0 || len(o.releases) > 0 {
				s.fail("%s still owes roll-backs %v or releases %v", m.name, len(o.rollback), len(o.releases))
			}
			if o.Short() > 0 && !m.noRepair {
				for _, p := range s.peers {
					if _, held := p.tb.Current(s.now); !held {
						s.fail("%s is short of %d while %s is free", m.name, o.Short(), p.name)
						break
					}
				}
			}
			if m.disk == nil || m.disk.Target != o.Target() || m.disk.Lease != o.Lease() {
				s.fail("%s: the disk has %+v, the owner target %d term %v", m.name, m.disk, o.Target(), o.Lease())
			}
		default:
			s.fail("%s still %v", m.name, o.Phase())
		}
	}
}

// quiesce delivers everything in flight and answers everything asked.
func (s *ownerSim) quiesce() {
	for i := 0; ; i++ {
		if i > 100_000 {
			s.fail("the owners do not quiesce")
			return
		}
		busy := false
		if len(s.flights) > 0 {
			f := s.flights[0]
			s.flights = s.flights[1:]
			s.deliver(f)
			busy = true
		}
		if len(s.lates) > 0 {
			l := s.lates[0]
			s.lates = s.lates[1:]
			s.owners[l.k].o.Reply(s.now, l.id, l.rep, l.err)
			s.drain(l.k)
			busy = true
		}
		for k, m := range s.owners {
			if m.persist != nil || len(m.searches) > 0 || len(m.votes) > 0 {
				s.answerPersist(k)
				s.answerSearch(k)
				s.answerVote(k)
				busy = true
			}
		}
		if !busy {
			return
		}
	}
}

// ---- transitions, one at a time ----

// rig drives one Owner by hand: the test answers each action itself.
type rig struct {
	t    *testing.T
	o    *Owner
	now  time.Time
	acts []Action
}

const rigLease = 30 * time.Second

// heldRig is an Owner restored with members p1..pn, confirmed until a
// lease from t0, renewed at t0.
func heldRig(t *testing.T, n int, edit func(*OwnerState, *OwnerConfig)) *rig {
	t.Helper()
	st := OwnerState{Subcloud: "sc", Token: tokA, Lease: rigLease, Members: map[string]time.Time{}, Plan: []byte("plan"),
		Target: n, Since: t0, Keepers: []string{"k1", "k2", "k3"}}
	for i := 1; i <= n; i++ {
		m := fmt.Sprintf("p%d", i)
		st.Members[m] = t0.Add(rigLease)
		st.Order = append(st.Order, m)
	}
	cfg := DefaultOwnerConfig()
	if edit != nil {
		edit(&st, &cfg)
	}
	o, err := Restore(cfg, "o", st, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	o.renewed, o.lastCheck, o.lastMaint = t0, t0, t0
	return &rig{t: t, o: o, now: t0}
}

// ready takes the Owner's new actions.
func (r *rig) ready() []Action {
	r.acts = r.o.Ready()
	return r.acts
}

func (r *rig) at(d time.Duration) { r.now = t0.Add(d) }

func (r *rig) tick(d time.Duration) []Action {
	r.at(d)
	r.o.Tick(r.now)
	return r.ready()
}

// sends are the requests among acts with op, by peer.
func sends(acts []Action, op Op) map[string]Action {
	out := map[string]Action{}
	for _, a := range acts {
		if a.Kind == ActSend && a.Req.Op == op {
			out[a.To] = a
		}
	}
	return out
}

func kinds(acts []Action, k ActionKind) []Action {
	var out []Action
	for _, a := range acts {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

// ok is a peer's yes, its lease running d from now.
func (r *rig) ok(d time.Duration) Reply {
	return Reply{OK: true, Now: r.now.UnixNano(), Expires: r.now.Add(d).UnixNano()}
}

func refusal(x Refusal) Reply { return Reply{Refusal: x, Now: t0.UnixNano()} }

// persist answers the persist among acts, and returns what came of it.
func (r *rig) persist(err error) []Action {
	r.t.Helper()
	ps := kinds(r.acts, ActPersist)
	if len(ps) != 1 {
		r.t.Fatalf("want one persist, got %+v", r.acts)
	}
	r.o.Persisted(r.now, ps[0].ID, err)
	return r.ready()
}

func reportOf(t *testing.T, acts []Action) *Report {
	t.Helper()
	rs := kinds(acts, ActReport)
	if len(rs) != 1 {
		t.Fatalf("want one report, got %+v", acts)
	}
	return rs[0].Report
}

func noReport(t *testing.T, acts []Action) {
	t.Helper()
	if rs := kinds(acts, ActReport); len(rs) > 0 {
		t.Fatalf("reported early: %+v", rs[0].Report)
	}
}

// The renewal round at a third of the term: each answer keeps, updates or
// drops its member, as node's renew does.
func TestOwnerRenewals(t *testing.T) {
	for _, c := range []struct {
		name    string
		rep     Reply
		err     error
		late    time.Duration // when the answer comes
		member  bool
		repairs bool // at once
		// then is what the former member gets, being back: a take-back
		// (it may hold the lease it confirmed), a release (its lease
		// has likely lapsed), or nothing (it holds none)
		then Op
	}{
		{"renewed", Reply{OK: true}, nil, time.Second, true, false, 0},
		{"refused", refusal(RefusedNoLease), nil, time.Second, false, true, 0},
		{"disk full", refusal(RefusedStorage), nil, time.Second, false, false, OpRenew},
		{"silent, lease still running", Reply{}, errLost, time.Second, true, false, 0},
		{"silent past its expiry", Reply{}, errLost, rigLease + time.Second, false, true, OpRelease},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := heldRig(t, 2, nil)
			if acts := r.tick(rigLease/3 - time.Millisecond); len(sends(acts, OpRenew)) > 0 {
				t.Fatalf("renewed before a third of the term: %+v", acts)
			}
			ren := sends(r.tick(rigLease/3), OpRenew)
			if len(ren) != 2 || ren["p1"].Req.For != rigLease || ren["p1"].Req.Token != tokA {
				t.Fatalf("renewals %+v", ren)
			}
			r.at(rigLease/3 + c.late)
			rep := c.rep
			if rep.OK {
				rep = r.ok(rigLease)
			}
			r.o.Reply(r.now, ren["p1"].ID, rep, c.err)
			r.o.Reply(r.now, ren["p2"].ID, r.ok(rigLease), nil)
			acts := r.ready()
			exp, member := r.o.Expiry("p1")
			if member != c.member {
				t.Fatalf("member %v, want %v (%+v)", member, c.member, acts)
			}
			if c.rep.OK && !exp.Equal(t0.Add(rigLease/3+rigLease)) {
				// Counted from when the renewal was sent: never longer
				// than the peer holds it.
				t.Errorf("expiry %v", exp.Sub(t0))
			}
			if !member && r.o.Short() != 1 {
				t.Errorf("short %d", r.o.Short())
			}
			if dropped := len(r.o.Dropped()) == 1; dropped != (c.then != 0) {
				t.Errorf("dropped %v", r.o.Dropped())
			}
			if c.then != 0 && sends(acts, c.then)["p1"].ID == 0 {
				t.Errorf("no %v to p1: %+v", c.then, acts)
			}
			if got := len(kinds(acts, ActSearch)) > 0; got != c.repairs {
				t.Errorf("repair started %v, want %v", got, c.repairs)
			}
			if len(kinds(acts, ActPersist)) != 1 || len(kinds(acts, ActRegisterName)) != 1 {
				t.Errorf("the round's end persists and registers the name: %+v", acts)
			}
		})
	}
}

// Member checks: a refusal loses the member at once, a refused
// connection after CheckMisses in a row, a timeout never.
func TestOwnerChecks(t *testing.T) {
	unreachable := fmt.Errorf("dial: %w", ErrUnreachable)
	for _, c := range []struct {
		name   string
		misses int
		rep    Reply
		err    error
		lost   []bool // after each check
		// first is what a loss sends first: a search (it holds no
		// lease), or a take-back (the membership still shows it, and
		// it may hold the lease: node's order, the repair after)
		first ActionKind
	}{
		{"holds it", 1, Reply{OK: true}, nil, []bool{false, false}, 0},
		{"refuses", 1, refusal(RefusedNoLease), nil, []bool{true}, ActSearch},
		{"no process", 1, Reply{}, unreachable, []bool{true}, ActSend},
		{"no process, two misses", 2, Reply{}, unreachable, []bool{false, true}, ActSend},
		{"times out", 1, Reply{}, errLost, []bool{false, false, false}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := heldRig(t, 1, func(_ *OwnerState, cfg *OwnerConfig) { cfg.CheckMisses = c.misses })
			for i, lost := range c.lost {
				at := time.Duration(i+1) * r.o.cfg.CheckEvery
				chk := sends(r.tick(at), OpCheck)["p1"]
				if chk.ID == 0 {
					t.Fatalf("check %d not sent", i)
				}
				r.o.Reply(r.now, chk.ID, c.rep, c.err)
				acts := r.ready()
				if _, member := r.o.Expiry("p1"); member == lost {
					t.Fatalf("check %d: member %v, want lost %v", i, member, lost)
				}
				if lost && (len(kinds(acts, ActPersist)) != 1 || len(kinds(acts, c.first)) != 1) {
					t.Errorf("a loss is persisted, and settled with a %v: %+v", c.first, acts)
				}
			}
		})
	}
}

// A loss the membership reports is repaired with the spares of the last
// search first (no search), one all-or-nothing claim per missing member;
// NO REPAIR only reports the shortfall.
func TestOwnerRepair(t *testing.T) {
	t.Run("spares first", func(t *testing.T) {
		r := heldRig(t, 2, nil)
		r.o.spares = []string{"s1", "s2"}
		r.o.MemberLost(r.now, "p2", "it failed")
		acts := r.ready()
		if r.o.Short() != 1 || len(kinds(acts, ActSearch)) != 0 {
			t.Fatalf("short %d, actions %+v", r.o.Short(), acts)
		}
		r.persist(nil)
		cl := sends(acts, OpClaim)
		if len(cl) != 1 || cl["s1"].ID == 0 || cl["s1"].Req.Since != t0.UnixNano() {
			t.Fatalf("claims %+v", cl)
		}
		if !r.o.Holds("s1") || !r.o.Busy() {
			t.Error("a peer being claimed is told it is held")
		}
		r.o.Reply(r.now, cl["s1"].ID, Reply{Refusal: RefusedHeld, Holder: "other"}, nil)
		cl = sends(r.ready(), OpClaim)
		if cl["s2"].ID == 0 {
			t.Fatalf("the refusal is backfilled from the next spare: %+v", r.acts)
		}
		r.o.Reply(r.now, cl["s2"].ID, r.ok(rigLease), nil)
		acts = r.ready()
		if r.o.Short() != 0 || fmt.Sprint(r.o.Members()) != "[p1 s2]" || r.o.st.Repairs != 1 {
			t.Fatalf("members %v short %d repairs %d", r.o.Members(), r.o.Short(), r.o.st.Repairs)
		}
		if len(kinds(acts, ActPersist)) != 1 {
			t.Errorf("a repair is persisted: %+v", acts)
		}
	})
	t.Run("nobody free backs off", func(t *testing.T) {
		r := heldRig(t, 2, nil)
		r.o.MemberLost(r.now, "p2", "it left")
		s := kinds(r.ready(), ActSearch)
		if len(s) != 1 {
			t.Fatalf("no search: %+v", r.acts)
		}
		for d := time.Duration(0); r.o.job != nil && d < time.Minute; {
			if len(s) == 1 {
				r.o.Candidates(r.now, s[0].ID, []string{"c1"}, nil)
				if c := sends(r.ready(), OpClaim)["c1"]; c.ID != 0 {
					r.o.Reply(r.now, c.ID, refusal(RefusedHeld), nil)
				}
			}
			d += r.o.cfg.SearchBackoff
			s = kinds(r.tick(d), ActSearch)
		}
		retry := r.o.retryAt.Sub(t0)
		if r.o.Busy() || retry < r.o.cfg.RepairBackoff {
			t.Fatalf("busy %v, retry at %v", r.o.Busy(), retry)
		}
		if acts := r.tick(retry - time.Millisecond); len(kinds(acts, ActSearch)) != 0 {
			t.Errorf("searched again inside the back-off: %+v", acts)
		}
		if acts := r.tick(retry + r.o.cfg.MaintainEvery); len(kinds(acts, ActSearch)) != 1 {
			t.Errorf("no search after the back-off, at the next maintenance: %+v", acts)
		}
	})
	t.Run("a repair that keeps failing says so once a minute", func(t *testing.T) {
		r := heldRig(t, 2, nil)
		r.o.MemberLost(r.now, "p2", "it left")
		var said []time.Duration // when a "found no replacement" was logged
		failed := 0
		acts := r.ready()
		step := r.o.cfg.SearchBackoff
		for d := time.Duration(0); d <= shortEvery+15*time.Second; d += step {
			if d > 0 {
				acts = r.tick(d)
			}
			for len(acts) > 0 {
				for _, a := range acts {
					switch {
					case a.Kind == ActSearch:
						r.o.Candidates(r.now, a.ID, []string{"c1"}, nil)
					case a.Kind == ActSend && a.Req.Op == OpClaim:
						r.o.Reply(r.now, a.ID, refusal(RefusedHeld), nil)
					case a.Kind == ActLog && strings.Contains(a.Text, "found no replacement"):
						said = append(said, d)
					}
				}
				acts = r.ready()
			}
			if r.o.retryAt.Sub(r.now) == r.o.cfg.RepairBackoff {
				failed++ // a repair failed at this step: its back-off starts now
			}
		}
		if failed < 10 {
			t.Fatalf("only %d repairs failed in %v: the rig did not drive them", failed, shortEvery+15*time.Second)
		}
		t.Logf("%d failed repairs, logged at %v", failed, said)
		if len(said) != 2 || said[1]-said[0] < shortEvery {
			t.Errorf("%d failed repairs logged at %v: want the first, then one a minute later", failed, said)
		}
	})
	t.Run("no repair", func(t *testing.T) {
		r := heldRig(t, 2, func(st *OwnerState, _ *OwnerConfig) { st.NoRepair = true })
		r.o.MemberLost(r.now, "p2", "it failed")
		acts := r.ready()
		if len(kinds(acts, ActSearch))+len(sends(acts, OpClaim)) != 0 || r.o.Short() != 1 {
			t.Fatalf("short %d, actions %+v", r.o.Short(), acts)
		}
		if len(kinds(acts, ActLog)) != 1 || !strings.Contains(kinds(acts, ActLog)[0].Text, "1 of 2 left") {
			t.Errorf("the loss is reported: %+v", acts)
		}
	})
}

// A former member that returns is taken back while the subcloud lacks it,
// released once it was replaced, and forgotten if it let the lease go.
func TestOwnerReturns(t *testing.T) {
	for _, c := range []struct {
		name     string
		replaced bool
		rep      Reply
		member   bool
	}{
		{"taken back", false, Reply{OK: true}, true},
		{"lapsed meanwhile", false, refusal(RefusedNoLease), false},
		{"replaced: released", true, Reply{OK: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := heldRig(t, 2, func(st *OwnerState, _ *OwnerConfig) { st.NoRepair = true })
			r.o.MemberLost(r.now, "p2", "it failed")
			r.ready()
			if c.replaced {
				r.o.st.Target = 1
			}
			r.at(time.Second)
			r.o.MemberBack(r.now, "p2")
			acts := r.ready()
			op := OpRenew
			if c.replaced {
				op = OpRelease
			}
			a := sends(acts, op)["p2"]
			if a.ID == 0 {
				t.Fatalf("want a %v to p2: %+v", op, acts)
			}
			rep := c.rep
			if rep.OK && op == OpRenew {
				rep = r.ok(rigLease)
			}
			r.o.Reply(r.now, a.ID, rep, nil)
			r.ready()
			if _, member := r.o.Expiry("p2"); member != c.member || len(r.o.Dropped()) != 0 {
				t.Fatalf("member %v, dropped %v", member, r.o.Dropped())
			}
			if c.member && r.o.Short() != 0 {
				t.Errorf("short %d", r.o.Short())
			}
		})
	}
}

// RESIZE TO a smaller size: on disk first, then the lowest-ranked members
// go; a failed write changes nothing.
func TestOwnerShrink(t *testing.T) {
	t.Run("done", func(t *testing.T) {
		r := heldRig(t, 3, nil)
		r.o.Resize(r.now, 1)
		acts := r.ready()
		noReport(t, acts)
		if len(sends(acts, OpRelease)) != 0 || kinds(acts, ActPersist)[0].State.Target != 1 {
			t.Fatalf("released before the new size was on disk: %+v", acts)
		}
		rel := sends(r.persist(nil), OpRelease)
		if len(rel) != 2 || rel["p2"].ID == 0 || rel["p3"].ID == 0 {
			t.Fatalf("releases %+v", rel)
		}
		r.o.Reply(r.now, rel["p2"].ID, Reply{OK: true}, nil)
		noReport(t, r.ready())
		r.o.Reply(r.now, rel["p3"].ID, refusal(RefusedNoLease), nil)
		if rep := reportOf(t, r.ready()); rep.Outcome != OutcomeDone || fmt.Sprint(r.o.Members()) != "[p1]" {
			t.Fatalf("report %+v, members %v", rep, r.o.Members())
		}
	})
	t.Run("a member does not answer", func(t *testing.T) {
		r := heldRig(t, 2, nil)
		r.o.Resize(r.now, 1)
		r.ready()
		rel := sends(r.persist(nil), OpRelease)
		rep := silentTries(t, r, rel["p2"].ID, "p2")
		if rep.Outcome != OutcomeIncomplete || fmt.Sprint(rep.Unanswered) != "[p2]" || fmt.Sprint(r.o.Dropped()) != "[p2]" {
			t.Fatalf("report %+v, dropped %v", rep, r.o.Dropped())
		}
		if r.o.Short() != 0 {
			t.Errorf("a member let go is no loss to repair: short %d", r.o.Short())
		}
	})
	t.Run("disk full", func(t *testing.T) {
		r := heldRig(t, 3, nil)
		r.o.Resize(r.now, 1)
		r.ready()
		acts := r.persist(errDiskFull)
		rep := reportOf(t, acts)
		if rep.Outcome != OutcomeStorage || !errors.Is(rep.Err, errDiskFull) || len(sends(acts, OpRelease)) != 0 {
			t.Fatalf("report %+v, %+v", rep, acts)
		}
		if r.o.Target() != 3 || fmt.Sprint(r.o.Members()) != "[p1 p2 p3]" {
			t.Errorf("target %d members %v: nothing changed", r.o.Target(), r.o.Members())
		}
		if ps := kinds(acts, ActPersist); len(ps) != 1 || ps[0].State.Target != 3 {
			t.Errorf("the state as it is is written again: %+v", ps)
		}
	})
}

// RESIZE TO a larger size claims what is missing, all or nothing, and
// answers once it is on disk.
func TestOwnerGrow(t *testing.T) {
	grow := func(t *testing.T) (*rig, map[string]Action) {
		r := heldRig(t, 1, nil)
		r.o.Resize(r.now, 3)
		s := kinds(r.ready(), ActSearch)
		if len(s) != 1 {
			t.Fatalf("no search: %+v", r.acts)
		}
		r.o.Candidates(r.now, s[0].ID, []string{"p1", "c1", "c2", "c3"}, nil)
		cl := sends(r.ready(), OpClaim)
		if len(cl) != 2 || cl["c1"].ID == 0 || cl["c2"].ID == 0 {
			t.Fatalf("claims %+v (a member is not claimed again)", cl)
		}
		return r, cl
	}
	t.Run("done", func(t *testing.T) {
		r, cl := grow(t)
		r.o.Reply(r.now, cl["c1"].ID, r.ok(rigLease), nil)
		r.o.Reply(r.now, cl["c2"].ID, r.ok(rigLease), nil)
		acts := r.ready()
		noReport(t, acts)
		if rep := reportOf(t, r.persist(nil)); rep.Outcome != OutcomeDone || r.o.Target() != 3 || len(r.o.Members()) != 3 {
			t.Fatalf("report %+v target %d members %v", rep, r.o.Target(), r.o.Members())
		}
		if fmt.Sprint(r.o.spares) != "[c3]" {
			t.Errorf("spares %v", r.o.spares)
		}
	})
	t.Run("not enough", func(t *testing.T) {
		r, cl := grow(t)
		r.o.Reply(r.now, cl["c1"].ID, r.ok(rigLease), nil)
		r.o.Reply(r.now, cl["c2"].ID, refusal(RefusedHeld), nil)
		r.o.Reply(r.now, sends(r.ready(), OpClaim)["c3"].ID, refusal(RefusedHeld), nil)
		for r.o.job != nil && r.o.job.c.State() == NeedCandidates {
			s := kinds(r.tick(r.now.Sub(t0)+time.Second), ActSearch)
			r.o.Candidates(r.now, s[0].ID, nil, nil)
			r.ready()
		}
		rep := reportOf(t, r.acts)
		if rep.Outcome != OutcomeNotEnough || !errors.Is(rep.Err, ErrNotEnoughPeers) || r.o.Target() != 1 {
			t.Fatalf("report %+v target %d", rep, r.o.Target())
		}
		if sends(r.acts, OpRelease)["c1"].ID == 0 {
			t.Errorf("what it got is released: %+v", r.acts)
		}
	})
	t.Run("disk full", func(t *testing.T) {
		r, cl := grow(t)
		r.o.Reply(r.now, cl["c1"].ID, r.ok(rigLease), nil)
		r.o.Reply(r.now, cl["c2"].ID, r.ok(rigLease), nil)
		r.ready()
		acts := r.persist(errDiskFull)
		noReport(t, acts) // it waits for the releases
		rel := sends(acts, OpRelease)
		r.o.Reply(r.now, rel["c1"].ID, Reply{OK: true}, nil)
		r.o.Reply(r.now, rel["c2"].ID, Reply{OK: true}, nil)
		rep := reportOf(t, r.ready())
		if rep.Outcome != OutcomeStorage || r.o.Target() != 1 || len(r.o.Members()) != 1 {
			t.Fatalf("report %+v target %d members %v", rep, r.o.Target(), r.o.Members())
		}
	})
	t.Run("cancelled while it waits for a repair", func(t *testing.T) {
		// The new size is on disk: the answer is incomplete, not failed.
		r, cl := grow(t)
		r.o.Reply(r.now, cl["c1"].ID, r.ok(rigLease), nil)
		r.o.Reply(r.now, cl["c2"].ID, r.ok(rigLease), nil)
		r.ready()
		r.o.MemberLost(r.now, "c1", "it failed")
		noReport(t, r.persist(nil))
		r.o.Cancel(r.now, context.DeadlineExceeded)
		rep := reportOf(t, r.ready())
		if rep.Outcome != OutcomeIncomplete || !errors.Is(rep.Err, context.DeadlineExceeded) || r.o.Target() != 3 || !strings.Contains(rep.Err.Error(), "2 of 3 now") {
			t.Fatalf("report %+v target %d", rep, r.o.Target())
		}
	})
}

// EXTEND FOR renews every member for the new term, all or nothing: a
// refusal, or a failed write, rolls back every member that took it.
func TestOwnerExtend(t *testing.T) {
	for _, c := range []struct {
		name      string
		p2        Reply
		p2err     error
		diskErr   error
		outcome   Outcome
		rollbacks string
	}{
		{"done", Reply{OK: true}, nil, nil, OutcomeDone, "[]"},
		{"a member refuses", refusal(RefusedStorage), nil, nil, OutcomeRefused, "[p1]"},
		{"a member is silent", Reply{}, errLost, nil, OutcomeRefused, "[p1 p2]"},
		{"disk full", Reply{OK: true}, nil, errDiskFull, OutcomeStorage, "[p1 p2]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := heldRig(t, 2, nil)
			r.o.Extend(r.now, 5*time.Minute)
			ext := sends(r.ready(), OpRenew)
			if len(ext) != 2 || ext["p1"].Req.For != 5*time.Minute {
				t.Fatalf("renewals %+v", ext)
			}
			r.o.Reply(r.now, ext["p1"].ID, r.ok(5*time.Minute), nil)
			p2 := c.p2
			if p2.OK {
				p2 = r.ok(5 * time.Minute)
			}
			r.o.Reply(r.now, ext["p2"].ID, p2, c.p2err)
			acts := r.ready()
			if c.p2.OK {
				noReport(t, acts)
				acts = r.persist(c.diskErr)
			}
			if rep := reportOf(t, acts); rep.Outcome != c.outcome {
				t.Fatalf("report %+v", rep)
			}
			var back []string
			for p, a := range sends(acts, OpRenew) {
				if a.Req.For != rigLease {
					t.Errorf("rolled back to %v", a.Req.For)
				}
				back = append(back, p)
			}
			sort.Strings(back)
			if fmt.Sprint(back) != c.rollbacks {
				t.Errorf("rolled back %v, want %s", back, c.rollbacks)
			}
			want := rigLease
			if c.outcome == OutcomeDone {
				want = 5 * time.Minute
			}
			if r.o.Lease() != want {
				t.Errorf("term %v, want %v", r.o.Lease(), want)
			}
			// A roll-back that gets no answer is sent again.
			for p, a := range sends(acts, OpRenew) {
				r.o.Reply(r.now, a.ID, Reply{}, errLost)
				if again := sends(r.tick(r.now.Sub(t0)+time.Minute), OpRenew)[p]; again.ID == 0 {
					t.Errorf("roll-back to %s not sent again: %+v", p, r.acts)
				}
			}
		})
	}
}

// silentTries has peer's release, sent as id, go unanswered ReleaseTries
// times, each try sent again after its wait, and returns the report that
// comes after the last: none comes before.
func silentTries(t *testing.T, r *rig, id uint64, peer string) *Report {
	t.Helper()
	for try := 1; ; try++ {
		r.o.Reply(r.now, id, Reply{}, errLost)
		acts := r.ready()
		if try == DefaultOwnerConfig().ReleaseTries {
			return reportOf(t, acts)
		}
		noReport(t, acts)
		again := sends(r.tick(r.now.Sub(t0)+5*time.Second), OpRelease)
		if again[peer].ID == 0 {
			t.Fatalf("try %d: %s's release not sent again: %+v", try, peer, r.acts)
		}
		id = again[peer].ID
	}
}

// RELEASE: off the disk first (a failure changes nothing), then every
// member is released, and the name given up.
func TestOwnerRelease(t *testing.T) {
	t.Run("done", func(t *testing.T) {
		r := heldRig(t, 2, nil)
		r.o.Release(r.now)
		acts := r.ready()
		if ps := kinds(acts, ActPersist); len(ps) != 1 || ps[0].State != nil || ps[0].For != ChangeRelease {
			t.Fatalf("persist %+v", ps)
		}
		acts = r.persist(nil)
		rel := sends(acts, OpRelease)
		if r.o.Phase() != PhaseGone || len(rel) != 2 || len(kinds(acts, ActReleaseName)) != 1 {
			t.Fatalf("phase %v, %+v", r.o.Phase(), acts)
		}
		r.o.Reply(r.now, rel["p1"].ID, Reply{OK: true}, nil)
		rep := silentTries(t, r, rel["p2"].ID, "p2")
		if rep.Outcome != OutcomeIncomplete || rep.Freed != 1 || fmt.Sprint(rep.Unanswered) != "[p2]" {
			t.Fatalf("report %+v", rep)
		}
		if r.o.Holds("p1") || r.o.Idle() {
			t.Error("released: not held, and p2 is still being released")
		}
		r.o.Reply(r.now, sends(r.tick(time.Minute), OpRelease)["p2"].ID, Reply{OK: true}, nil)
		if r.ready(); !r.o.Idle() {
			t.Errorf("idle once every release is answered: %+v", r.o)
		}
	})
	// A member silent at the first try, or refusing because it cannot
	// check the owner's signature yet, is sent its release again while
	// the user waits: RELEASE is done once it lets go, not incomplete.
	for _, first := range []struct {
		name string
		rep  Reply
		err  error
	}{{"silent once", Reply{}, errLost}, {"cannot check the signature once", refusal(RefusedForged), nil}} {
		t.Run(first.name, func(t *testing.T) {
			r := heldRig(t, 2, nil)
			r.o.Release(r.now)
			r.ready()
			rel := sends(r.persist(nil), OpRelease)
			r.o.Reply(r.now, rel["p1"].ID, Reply{OK: true}, nil)
			r.o.Reply(r.now, rel["p2"].ID, first.rep, first.err)
			noReport(t, r.ready())
			again := sends(r.tick(r.now.Sub(t0)+5*time.Second), OpRelease)
			if again["p2"].ID == 0 {
				t.Fatalf("p2's release not sent again: %+v", r.acts)
			}
			r.o.Reply(r.now, again["p2"].ID, Reply{OK: true}, nil)
			if rep := reportOf(t, r.ready()); rep.Outcome != OutcomeDone || rep.Freed != 2 || len(rep.Unanswered) != 0 || rep.Err != nil {
				t.Fatalf("report %+v", rep)
			}
			if !r.o.Idle() {
				t.Errorf("idle once every release is answered: %+v", r.o)
			}
		})
	}
	t.Run("disk full", func(t *testing.T) {
		r := heldRig(t, 2, nil)
		r.o.Release(r.now)
		r.ready()
		rep := reportOf(t, r.persist(errDiskFull))
		if rep.Outcome != OutcomeStorage || r.o.Phase() != PhaseHeld || len(sends(r.acts, OpRelease)) != 0 {
			t.Fatalf("report %+v phase %v", rep, r.o.Phase())
		}
	})
}

// The name: a majority of its keepers holding it for another owner gives
// the subcloud up; a split vote is only logged.
func TestOwnerNameVote(t *testing.T) {
	keepers := []string{"k1", "k2", "k3"}
	for _, c := range []struct {
		name string
		v    Vote
		gone bool
	}{
		{"held", Vote{Keepers: keepers, Granted: keepers}, false},
		{"contested", Vote{Keepers: keepers, Granted: []string{"k1"}, Rival: "x", Rivals: 1}, false},
		{"lost", Vote{Keepers: keepers, Granted: []string{"k1"}, Rival: "x", Rivals: 2}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := heldRig(t, 2, nil)
			r.tick(rigLease / 3)
			for _, a := range sends(r.acts, OpRenew) {
				r.o.Reply(r.now, a.ID, r.ok(rigLease), nil)
			}
			reg := kinds(r.ready(), ActRegisterName)
			if len(reg) != 1 {
				t.Fatalf("no registration: %+v", r.acts)
			}
			r.persist(nil)
			r.o.NameVote(r.now, reg[0].ID, c.v)
			acts := r.ready()
			if gone := r.o.Phase() == PhaseGone; gone != c.gone {
				t.Fatalf("gone %v: %+v", gone, acts)
			}
			if c.gone && (len(sends(acts, OpRelease)) != 2 || len(kinds(acts, ActReleaseName)) != 1 || kinds(acts, ActPersist)[0].State != nil) {
				t.Errorf("giving up releases the members and the name, off the disk: %+v", acts)
			}
		})
	}
}

// RESERVE: the search, the claims, the record, then yes; if the record
// fails, what it claimed is released before it says so.
func TestOwnerReserve(t *testing.T) {
	start := func(t *testing.T) *rig {
		o, err := NewOwner(DefaultOwnerConfig(), Reserve{Subcloud: "sc", Owner: "o", Token: tokA, N: 2, Lease: rigLease, Plan: []byte("plan")},
			t0, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		r := &rig{t: t, o: o, now: t0}
		s := kinds(r.ready(), ActSearch)
		if len(s) != 1 || !o.Holds("anyone") {
			t.Fatalf("search %+v", r.acts)
		}
		o.Candidates(r.now, s[0].ID, []string{"a", "b", "c"}, nil)
		cl := sends(r.ready(), OpClaim)
		o.Reply(r.now, cl["a"].ID, r.ok(rigLease), nil)
		o.Reply(r.now, cl["b"].ID, r.ok(rigLease), nil)
		noReport(t, r.ready())
		return r
	}
	t.Run("done", func(t *testing.T) {
		r := start(t)
		if ps := kinds(r.acts, ActPersist); len(ps) != 1 || ps[0].For != ChangeReserve || ps[0].State.Target != 2 {
			t.Fatalf("persist %+v", ps)
		}
		if rep := reportOf(t, r.persist(nil)); rep.Outcome != OutcomeDone || fmt.Sprint(r.o.Members()) != "[a b]" {
			t.Fatalf("report %+v members %v", rep, r.o.Members())
		}
	})
	t.Run("disk full", func(t *testing.T) {
		r := start(t)
		acts := r.persist(errDiskFull)
		noReport(t, acts)
		rel := sends(acts, OpRelease)
		if len(rel) != 2 || r.o.Phase() != PhaseGone || kinds(acts, ActPersist)[0].State != nil {
			t.Fatalf("%+v", acts)
		}
		r.o.Reply(r.now, rel["a"].ID, Reply{OK: true}, nil)
		r.o.Reply(r.now, rel["b"].ID, Reply{OK: true}, nil)
		if rep := reportOf(t, r.ready()); rep.Outcome != OutcomeStorage || !strings.Contains(rep.Err.Error(), "nothing stays reserved") {
			t.Fatalf("report %+v", rep)
		}
	})
}

// A RESERVE whose claim's answer was lost holds that peer as maybe
// claimed: its yes waits until the peer let go, or says it did not answer.
func TestOwnerReserveReleasesTheUncertain(t *testing.T) {
	// claim ends the claim holding a and c, b's claim unanswered: b's
	// release goes out beside the write.
	claim := func(t *testing.T) (*rig, uint64) {
		o, err := NewOwner(DefaultOwnerConfig(), Reserve{Subcloud: "sc", Owner: "o", Token: tokA, N: 2, Lease: rigLease, Plan: []byte("plan")},
			t0, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		r := &rig{t: t, o: o, now: t0}
		o.Candidates(r.now, kinds(r.ready(), ActSearch)[0].ID, []string{"a", "b", "c"}, nil)
		cl := sends(r.ready(), OpClaim)
		o.Reply(r.now, cl["a"].ID, r.ok(rigLease), nil)
		o.Reply(r.now, cl["b"].ID, Reply{}, errors.New("timed out")) // it may hold the lease
		c := sends(r.ready(), OpClaim)["c"]
		o.Reply(r.now, c.ID, r.ok(rigLease), nil)
		acts := r.ready()
		rel := sends(acts, OpRelease)
		if len(rel) != 1 || rel["b"].ID == 0 || len(kinds(acts, ActPersist)) != 1 {
			t.Fatalf("want b's release beside the write: %+v", acts)
		}
		return r, rel["b"].ID
	}
	start := func(t *testing.T) (*rig, uint64) {
		r, id := claim(t)
		noReport(t, r.persist(nil))
		return r, id
	}
	t.Run("it let go", func(t *testing.T) {
		r, id := start(t)
		r.o.Reply(r.now, id, Reply{OK: true}, nil)
		if rep := reportOf(t, r.ready()); rep.Outcome != OutcomeDone || len(rep.Unanswered) != 0 || fmt.Sprint(r.o.Members()) != "[a c]" {
			t.Fatalf("report %+v members %v", rep, r.o.Members())
		}
	})
	t.Run("disk full", func(t *testing.T) {
		// The write fails while b's release is out: the failure waits
		// for it with the members', and counts it among those claimed.
		r, b := claim(t)
		acts := r.persist(errDiskFull)
		noReport(t, acts)
		rel := sends(acts, OpRelease)
		if len(rel) != 2 {
			t.Fatalf("want a and c released beside b: %+v", acts)
		}
		r.o.Reply(r.now, rel["a"].ID, Reply{OK: true}, nil)
		r.o.Reply(r.now, rel["c"].ID, Reply{OK: true}, nil)
		noReport(t, r.ready()) // b's release is still out
		r.o.Reply(r.now, b, Reply{OK: true}, nil)
		if rep := reportOf(t, r.ready()); rep.Outcome != OutcomeStorage || !strings.Contains(rep.Err.Error(), "released the 3 peer(s) it claimed; nothing stays reserved") {
			t.Fatalf("report %+v", rep)
		}
	})
	t.Run("silent", func(t *testing.T) {
		r, id := start(t)
		rep := silentTries(t, r, id, "b")
		if rep.Outcome != OutcomeDone || fmt.Sprint(rep.Unanswered) != "[b]" || fmt.Sprint(r.o.Members()) != "[a c]" {
			t.Fatalf("report %+v members %v", rep, r.o.Members())
		}
	})
}

// A member lost as the RESERVE is recorded is repaired before the yes,
// which names as many as were asked for; not repaired within ResizeWait,
// the answer is incomplete and says what it holds.
func TestOwnerReserveRepairsBeforeItsYes(t *testing.T) {
	start := func(t *testing.T, candidates []string, noRepair bool, cancel error) *rig {
		o, err := NewOwner(DefaultOwnerConfig(), Reserve{Subcloud: "sc", Owner: "o", Token: tokA, N: 2, Lease: rigLease, Plan: []byte("plan"), NoRepair: noRepair},
			t0, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		r := &rig{t: t, o: o, now: t0}
		o.Candidates(r.now, kinds(r.ready(), ActSearch)[0].ID, candidates, nil)
		cl := sends(r.ready(), OpClaim)
		o.Reply(r.now, cl["a"].ID, r.ok(rigLease), nil)
		o.Reply(r.now, cl["b"].ID, r.ok(rigLease), nil)
		r.ready() // the write
		o.MemberLost(r.now, "a", "it failed")
		if cancel != nil {
			o.Cancel(r.now, cancel)
			r.acts = append(r.acts, r.o.Ready()...)
			return r
		}
		if acts := r.persist(nil); !noRepair {
			noReport(t, acts)
		}
		return r
	}
	t.Run("repaired", func(t *testing.T) {
		r := start(t, []string{"a", "b", "c"}, false, nil)
		c := sends(r.acts, OpClaim)["c"] // the spare, claimed at once
		if c.ID == 0 {
			t.Fatalf("want c claimed: %+v", r.acts)
		}
		r.o.Reply(r.now, c.ID, r.ok(rigLease), nil)
		if rep := reportOf(t, r.ready()); rep.Outcome != OutcomeDone || fmt.Sprint(r.o.Members()) != "[b c]" {
			t.Fatalf("report %+v members %v", rep, r.o.Members())
		}
	})
	t.Run("not in time", func(t *testing.T) {
		r := start(t, []string{"a", "b"}, false, nil)
		noReport(t, r.tick(DefaultOwnerConfig().ResizeWait-time.Millisecond))
		rep := reportOf(t, r.tick(DefaultOwnerConfig().ResizeWait))
		if rep.Outcome != OutcomeIncomplete || !strings.Contains(rep.Err.Error(), "1 of 2 now, being repaired") || r.o.Phase() != PhaseHeld {
			t.Fatalf("report %+v, phase %v", rep, r.o.Phase())
		}
	})
	// Nothing to wait for: NO REPAIR, or a user who stopped waiting as it
	// was recorded, is answered at once.
	t.Run("no repair", func(t *testing.T) {
		r := start(t, []string{"a", "b", "c"}, true, nil)
		if rep := reportOf(t, r.acts); rep.Outcome != OutcomeIncomplete || !strings.Contains(rep.Err.Error(), "1 of 2 now, not repaired (NO REPAIR)") {
			t.Fatalf("report %+v", rep)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		r := start(t, []string{"a", "b", "c"}, false, context.Canceled)
		noReport(t, r.acts)
		if rep := reportOf(t, r.persist(nil)); rep.Outcome != OutcomeIncomplete || !errors.Is(rep.Err, context.Canceled) {
			t.Fatalf("report %+v", rep)
		}
	})
}

// One change at a time: ALTER is refused while a repair or another change
// runs, and while the RESERVE is not answered.
func TestOwnerBusy(t *testing.T) {
	r := heldRig(t, 2, nil)
	r.o.MemberLost(r.now, "p2", "it failed") // a repair starts
	r.ready()
	for _, f := range []func(){func() { r.o.Resize(r.now, 5) }, func() { r.o.Extend(r.now, time.Hour) }} {
		f()
		if rep := reportOf(t, r.ready()); rep.Outcome != OutcomeRefused || !strings.Contains(rep.Err.Error(), "try again") {
			t.Errorf("report %+v", rep)
		}
	}
	if !r.o.Holds("anyone") || !r.o.Holds("p2") {
		t.Error("while it claims, the owner holds what it may have claimed")
	}
}

// The owner's table round-trips through its codec, and a restored Owner
// renews at once.
func TestOwnedCodec(t *testing.T) {
	r := heldRig(t, 3, nil)
	r.o.MemberLost(r.now, "p3", "it failed")
	st := r.o.State()
	st.Episodes = map[string]Span{"p1": {Start: t0, Until: t0.Add(time.Minute)}}
	st.Metered, st.Repairs, st.LastRepair, st.Key = time.Hour, 2, t0.Add(time.Second), "key"
	b := EncodeOwned([]OwnerState{st})
	got, err := DecodeOwned(b)
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	if !bytesEqual(EncodeOwned(got), b) || got[0].Members["p1"].UnixNano() != st.Members["p1"].UnixNano() ||
		got[0].Dropped["p3"].UnixNano() != st.Dropped["p3"].UnixNano() || got[0].Target != 3 || got[0].Lease != rigLease {
		t.Fatalf("round trip: %+v", got[0])
	}
	o, err := Restore(DefaultOwnerConfig(), "o", got[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Tick(t0)
	if ren := sends(o.Ready(), OpRenew); ren["p1"].ID == 0 || ren["p2"].ID == 0 || ren["p3"].ID == 0 {
		t.Errorf("a restored owner renews at once, and takes back p3 (nothing says it let go): %+v", ren)
	}
	for name, b := range map[string][]byte{
		"empty":      nil,
		"version":    append([]byte{9}, b[1:]...),
		"truncated":  b[:len(b)-1],
		"trailing":   append(append([]byte(nil), b...), 0),
		"two of one": EncodeOwned([]OwnerState{st, st}),
		"bad token":  EncodeOwned([]OwnerState{func() OwnerState { s := st; s.Token = "short"; return s }()}),
		"bad lease":  EncodeOwned([]OwnerState{func() OwnerState { s := st; s.Lease = time.Second; return s }()}),
	} {
		if _, err := DecodeOwned(b); !errors.Is(err, ErrMalformedOwned) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func FuzzDecodeOwned(f *testing.F) {
	st := OwnerState{Subcloud: "sc", Token: tokA, Lease: rigLease, Target: 2, Members: map[string]time.Time{"p1": t0},
		Dropped: map[string]time.Time{"p2": t0}, Order: []string{"p1"}, Plan: []byte("plan"), Keepers: []string{"k1"},
		Episodes: map[string]Span{"p1": {Start: t0, Until: t0}}, Since: t0}
	f.Add(EncodeOwned([]OwnerState{st}))
	f.Add(EncodeOwned(nil))
	f.Add([]byte{ownedVersion, 0xa1, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeOwned(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same,
		// and restores.
		again, err := DecodeOwned(EncodeOwned(got))
		if err != nil || !bytesEqual(EncodeOwned(again), EncodeOwned(got)) {
			t.Fatalf("%+v re-decodes as %+v, %v", got, again, err)
		}
		for _, s := range got {
			o, err := Restore(DefaultOwnerConfig(), "o", s, nil)
			if err != nil {
				t.Fatalf("decoded, not restored: %v", err)
			}
			o.Tick(t0)
			o.Ready()
		}
	})
}

// Wake is the earliest timed work: here the next member check.
func TestOwnerWake(t *testing.T) {
	r := heldRig(t, 2, nil)
	if w := r.o.Wake(); !w.Equal(t0.Add(r.o.cfg.CheckEvery)) {
		t.Errorf("wake at %v", w.Sub(t0))
	}
	r.o.Release(r.now)
	r.ready()
	r.persist(nil)
	if w := r.o.Wake(); !w.IsZero() {
		t.Errorf("gone, with releases in flight and nothing timed: wake at %v", w.Sub(t0))
	}
}

// Wake is never in the past while what is due waits for answers (a
// renewal round, member checks): a caller that sleeps until Wake would
// otherwise tick in a loop until they come.
func TestOwnerWakeWhileAnswersAreDue(t *testing.T) {
	r := heldRig(t, 2, nil)
	acts := r.tick(rigLease / 3) // the renewal round and the checks are due
	if len(sends(acts, OpRenew)) != 2 || len(sends(acts, OpCheck)) != 2 {
		t.Fatalf("at a third of the term: %+v", acts)
	}
	if w := r.o.Wake(); !w.After(r.now) {
		t.Errorf("renewals and checks in flight: wake at %v, now %v", w.Sub(t0), r.now.Sub(t0))
	}
	for _, a := range acts {
		if a.Kind == ActSend {
			r.o.Reply(r.now, a.ID, r.ok(rigLease), nil)
		}
	}
	r.ready()
	if w := r.o.Wake(); !w.Equal(r.now.Add(r.o.cfg.CheckEvery)) {
		t.Errorf("all answered: wake at %v, want the next check at %v", w.Sub(t0), r.now.Add(r.o.cfg.CheckEvery).Sub(t0))
	}
}
