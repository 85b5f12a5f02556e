package node

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/node/network"
)

// Suspicion: an answer is about the members alive when it is returned, and
// a member that crashed (or is cut off) during a query leaves the others'
// gossip state wrong until the failure detector declares it and its flows
// are undone — typically seconds after a query ends. So an asking peer does
// not call an answer final while a member may be unreachable.
//
// Every peer that fails an exchange pings the peer once more at once; if
// that fails too, it notes the peer and passes the note on (hints, at most
// MaxHints a batch, for HintTTL), first- or second-hand, in every exchange
// it makes; an exchange with a peer clears the note. The extra ping keeps
// a lost message from becoming a suspicion. The asking peer trusts no hint: it probes the hinted member
// itself, ProbeTries times. A member that answers is cleared; one that does
// not stays a suspect, and the answer waits until Serf declares it failed
// (then its flows are undone and the answer is the survivors') or is
// returned as partial when the budget ends. Loss only costs probes.

// prober is the peer's failure finding for the queries: SWIM's probes,
// per query (verify), the asker's own probes of the members others hint
// at (probeSuspects), the hints themselves, clock skew as the exchanges
// found it, and the peer's local health (Lifeguard). It decides that a
// member is lost and tells the runtime (onLost), which leaves it out of
// every query it takes part in; it reaches the network through probeNet.
//
// Locks: mu guards the state below it — suspicions, lost, health and the
// random source. The runtime calls the prober with its own lock held
// (n.mu, then p.mu: never the other way round); the prober calls onLost,
// which takes the runtime's lock, only with mu let go, and never from a
// call the runtime makes with its lock held — so declareLost and
// failedWith, which may call it, must be called without n.mu. That
// suffices to keep a lost member out of every query: onLost runs after
// the member is in lost, and a query asked meanwhile reads lost
// (lostLately) under the runtime's lock as it enters the query table;
// either it sees the member, or onLost, which waits for that lock, finds
// the query in the table. No lock is held across a ping or an exchange:
// they run on the prober's goroutines (wg), which close joins; its
// context is the node's, so closing the node cuts them short.
type prober struct {
	cfg    proberConfig
	net    probeNet
	onLost func(name, why string)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// healthMul is 1+health.level, for the timeouts read without mu;
	// counts are the prober's part of Stats, read without mu too.
	healthMul atomic.Int64
	counts    probeCounts

	mu  sync.Mutex
	r   *mrand.Rand
	sus suspicions
	// lost are the members this peer found lost lately (declareLost):
	// left out of the queries it takes part in, and of those it asks
	// while the news is fresh.
	lost   map[string]lostNote
	health health
	// relooking are the members a look at them again is under way for
	// (relook); looked is when the last round of looks began.
	relooking map[string]bool
	looked    time.Time
}

// proberConfig is how the prober probes: the node's Config's fields of
// the same names (their comments say what each costs), and the runtime's
// measures.
type proberConfig struct {
	HintTTL         time.Duration
	ProbeTries      int
	IndirectProbes  int
	ExchangeTimeout time.Duration
	// MinRound bounds how fast the news of a loss spreads (findWithin).
	MinRound time.Duration
	// ExchangeTime is the recent exchanges' round trip, as the runtime
	// measures it (0 before the first): the timeouts follow it.
	ExchangeTime func() time.Duration
	// Now is the wall clock (Config.Clock).
	Now func() time.Time
	// Rand draws the helpers of indirect probes.
	Rand *mrand.Rand
}

// probeNet is what the prober needs of the network (a Network is one).
// It must be safe for concurrent use; the prober calls Name, Member and
// Sample with its lock held, Exchange never.
type probeNet interface {
	Name() string
	Member(name string) (network.Member, bool)
	Sample(r *mrand.Rand) (string, bool)
	Exchange(ctx context.Context, peer string, req []byte) ([]byte, error)
}

// probeCounts are what the prober did (Stats' fields of the same names).
type probeCounts struct {
	lost, falseLost, probes, indirect atomic.Int64
}

// newProber makes the prober of the peer on net; ctx is the node's:
// when it ends, the probes in flight give up. onLost must be safe for
// concurrent use (it is called from the prober's goroutines).
func newProber(ctx context.Context, cfg proberConfig, net probeNet, onLost func(name, why string)) *prober {
	p := &prober{cfg: cfg, net: net, onLost: onLost, r: cfg.Rand, sus: newSuspicions(), lost: map[string]lostNote{}, relooking: map[string]bool{}}
	p.ctx, p.cancel = context.WithCancel(ctx)
	p.healthMul.Store(1)
	return p
}

// close stops the probes in flight and waits for the prober's
// goroutines. The node calls it once its own goroutines, which start
// probes, are done.
func (p *prober) close() {
	p.mu.Lock()
	p.cancel() // with mu held: see suspectIfSlow
	p.mu.Unlock()
	p.wg.Wait()
}

// reached records an exchange with peer: it answered, or it called. It
// is no longer lost for the queries asked from now on (those that left
// it out keep it out).
func (p *prober) reached(peer string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear(peer, now)
}

// clear is reached with mu held.
func (p *prober) clear(peer string, now time.Time) {
	p.sus.reached(peer, now)
	if l, ok := p.lost[peer]; ok && now.Sub(l.at) < p.cfg.HintTTL && strings.HasPrefix(l.why, unreachablePrefix) && !p.restarted(peer, l) {
		// Found lost by this peer's own probes, and alive: this peer's
		// timeouts were too short for the network or its own machine.
		p.health.mistake(now)
		p.counts.falseLost.Add(1)
	}
	delete(p.lost, peer)
}

// restarted says whether a member found lost (l) is back as a new
// incarnation (the membership shows another boot): it really was gone,
// and finding it lost was no mistake. Under churn most members found
// lost come back so, within seconds, often before Serf noticed they
// went; counted as mistakes, they stretched every timeout (up to
// 1+maxHealth times) just when losses had to be found fast: at 40 peers
// and a loss every 2.5 s a member switched off mid-query went unnoticed
// past the answer about once in 170 GROUP BY answers (TestChurnSchedule).
func (p *prober) restarted(peer string, l lostNote) bool {
	m, ok := p.net.Member(peer)
	return ok && l.boot != 0 && m.Boot != 0 && m.Boot != l.boot
}

// Local health, after Lifeguard (Dadgar, Banks and Kaufman, "Lifeguard:
// Local Health Awareness for More Accurate Failure Detection", 2018): a
// peer that finds members lost which then answer is itself slow — its
// machine loaded, its network congested — and every member it probes
// looks dead to it. Each such mistake raises health by one (at most
// maxHealth), and every timeout this peer's suspicion uses is multiplied
// by 1+health; a quiet healthDecay without one lowers it by one. On 200
// peers of one 2-core machine under churn, 4,067 members were found lost
// in 78 s for 26 that were (all the others' exchanges were slow), and the
// probes that found them made the machine slower still.
const (
	// unreachablePrefix begins the reason of a member this peer's own
	// probes found lost (not one whose address refused the connection: its
	// process was down, and may be back).
	unreachablePrefix = "unreachable"
	maxHealth         = 8
	healthDecay       = 5 * time.Second
)

// health is this peer's local health: level, raised by each member
// wrongly found lost, at the last change.
type health struct {
	level int
	at    time.Time
}

// mistake notes a member wrongly found lost.
func (h *health) mistake(now time.Time) {
	h.level = min(h.level+1, maxHealth)
	h.at = now
}

// factor is the multiplier of this peer's suspicion timeouts, after
// letting health recover for the quiet time since the last mistake.
func (h *health) factor(now time.Time) time.Duration {
	if h.level > 0 {
		if k := int(now.Sub(h.at) / healthDecay); k > 0 {
			h.level = max(h.level-k, 0)
			h.at = now
		}
	}
	return time.Duration(1 + h.level)
}

// tick is the prober's part of the runtime's round: health recovers, and
// once a second old news is forgotten and a few members found lost that
// the network still lists are looked at again (relook): those that
// answer are cleared, those still silent stay lost.
func (p *prober) tick(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthMul.Store(int64(p.health.factor(now)))
	// Once a second, by the clock: a quiet peer's rounds are a second
	// long, and a member that hangs keeps a peer's notes (relook) but not
	// its rounds short (quiet).
	if now.Sub(p.looked) < time.Second && !now.Before(p.looked) {
		return
	}
	p.looked = now
	p.sus.expire(now, p.cfg.HintTTL, func(name string) bool { _, ok := p.net.Member(name); return ok })
	var listed []string
	for name, l := range p.lost {
		if now.Sub(l.last()) >= p.cfg.HintTTL {
			delete(p.lost, name)
		} else if _, skewed := p.sus.skewed[name]; skewed {
			// It answered, refusing this peer's clock: not silent, and
			// left out while its skew note lasts. Looked at again every
			// second, it took one of the few looks a second from the
			// silent members, whose notes then ran out (7 runs in 300 of
			// TestSilentMembersStayLost, as ties fell).
		} else if _, ok := p.net.Member(name); ok && !p.sus.verifying[name] && !p.relooking[name] {
			listed = append(listed, name)
		}
	}
	// A few a second, the notes closest to expiring first (ties by name,
	// so that every note is reached in turn): a member that stays silent
	// keeps its note (relook) as long as there are no more than
	// maxRelooks·HintTTL/s of them.
	slices.SortFunc(listed, func(a, b string) int {
		if c := p.lost[a].last().Compare(p.lost[b].last()); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, name := range listed[:min(len(listed), maxRelooks)] {
		p.relook(name)
	}
}

// quiet says the prober has nothing to expire or look at again but the
// members it keeps finding silent: no member lost lately (a note not yet
// renewed), suspected, being verified or probed, or skewed. A quiet
// peer's rounds may then be longer (Config.QuietRound): a member that
// hangs for hours needs one look a second (tick), not short rounds.
func (p *prober) quiet() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.sus
	for _, l := range p.lost {
		if l.renewed.IsZero() {
			return false
		}
	}
	return len(s.failed) == 0 && len(s.confirmed) == 0 && len(s.skewed) == 0 &&
		len(s.probing) == 0 && len(s.verifying) == 0
}

// failedWith records why an exchange with peer failed: a peer that
// refused it for clock skew is reachable, and is noted as skewed; any
// other failure is verified (a second ping) before it becomes a
// suspicion. Call it without the runtime's lock: a refused connection is
// a loss (onLost).
func (p *prober) failedWith(peer string, err error, now time.Time) {
	p.mu.Lock()
	why := ""
	var skew *network.SkewError
	switch {
	case errors.As(err, &skew):
		p.sus.skewed[peer] = skewNote{off: skew.Offset, at: now}
		delete(p.sus.failed, peer)
	case p.ctx.Err() != nil:
	case errors.Is(err, network.ErrNoEndpoint):
		why = p.lose(peer, "its address refused the connection", now)
	default:
		if l, ok := p.lost[peer]; !ok || now.Sub(l.last()) >= p.cfg.HintTTL {
			p.verify(peer, now) // unless verified while the exchange waited (suspectIfSlow)
		}
	}
	p.mu.Unlock()
	if why != "" {
		p.onLost(peer, why)
	}
}

// declareLost leaves a member this peer found lost out of every query it
// takes part in (each spreads the news with its messages), and out of
// the queries it asks next while the news is fresh (HintTTL). The
// member is not released from a subcloud for it: leases follow Serf's
// verdict and the owner's checks (which count a member silent for
// HintTTL as unreachable: silentFor). Call it without the runtime's lock.
func (p *prober) declareLost(name, why string, now time.Time) {
	p.mu.Lock()
	why = p.lose(name, why, now)
	p.mu.Unlock()
	if why != "" {
		p.onLost(name, why)
	}
}

// lose notes name lost, with mu held, and returns why, for onLost once
// mu is let go ("" for this peer itself, never lost).
func (p *prober) lose(name, why string, now time.Time) string {
	if name == p.net.Name() {
		return ""
	}
	if _, ok := p.lost[name]; !ok {
		p.counts.lost.Add(1)
	}
	l := lostNote{why: why, at: now}
	if m, ok := p.net.Member(name); ok {
		l.boot = m.Boot
	}
	p.lost[name] = l
	p.sus.missed(name, now) // hinted too, for askers that have not heard yet
	return why
}

// lostNote is a member this peer found lost, and why.
type lostNote struct {
	why string
	at  time.Time // when this peer found it lost
	// renewed is when a look at it again (relook) last found it silent
	// (zero: not yet): the note lasts HintTTL from the later of the two.
	renewed time.Time
	// boot is its incarnation then (0: unknown): restarted.
	boot uint64
}

// last is when this peer last found the member silent.
func (l lostNote) last() time.Time {
	if l.renewed.IsZero() {
		return l.at
	}
	return l.renewed
}

// back forgets that a member was lost: the network says it joined, and
// the queries asked from now on count it.
func (p *prober) back(name string) {
	p.mu.Lock()
	delete(p.lost, name)
	p.mu.Unlock()
}

// isLost says whether this peer found name lost (and has not heard from
// it since).
func (p *prober) isLost(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.lost[name]
	return ok
}

// silentFor says how long this peer's own probes have found name silent,
// and whether that is HintTTL or more: found lost by its probes (not a
// refused connection, nor a hint), no exchange with it since (any clears
// the note: reached), and every look at it since (relook: two pings and
// the helpers' probes) unanswered. Never while this peer's own health is
// in doubt (a member it wrongly found lost lately): a peer too loaded to
// hear answers must not have members replaced on its word.
func (p *prober) silentFor(name string, now time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.lost[name]
	if !ok || !strings.HasPrefix(l.why, unreachablePrefix) || now.Sub(l.last()) >= p.cfg.HintTTL {
		return 0, false
	}
	d := now.Sub(l.at)
	return d, d >= p.cfg.HintTTL && p.health.factor(now) == 1
}

// lostNotes are the notes of the members found lost that are fresh at now
// (SHOW MEMBERS' exchanges column).
func (p *prober) lostNotes(now time.Time) map[string]lostNote {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]lostNote{}
	for name, l := range p.lost {
		if now.Sub(l.last()) < p.cfg.HintTTL {
			out[name] = l
		}
	}
	return out
}

// lostLately are the members found lost within HintTTL of now, with why:
// a query asked now leaves them out from the start, rather than wait to
// find them again.
func (p *prober) lostLately(now time.Time) map[string]string {
	out := map[string]string{}
	for name, l := range p.lostNotes(now) {
		out[name] = l.why
	}
	return out
}

// skewed are the members whose last exchange with this peer failed for
// clock skew, with their clock minus this one's: if fresh, those noted
// within HintTTL that member keeps (the answers leave them out); else
// every note not yet expired (SHOW MEMBERS).
func (p *prober) skewed(now time.Time, fresh bool, member func(string) bool) map[string]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fresh {
		return p.sus.skewedMembers(now, p.cfg.HintTTL, member)
	}
	out := make(map[string]time.Duration, len(p.sus.skewed))
	for name, k := range p.sus.skewed {
		out[name] = k.off
	}
	return out
}

// hints are the freshest failures this peer passes on in an exchange.
func (p *prober) hints(now time.Time) []hint {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sus.hints(now, p.cfg.HintTTL)
}

// takeHints merges the hints a peer sent.
func (p *prober) takeHints(hs []hint, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range hs {
		if h.Name == p.net.Name() {
			continue
		}
		if _, ok := p.net.Member(h.Name); ok {
			p.sus.missed(h.Name, now.Add(-time.Duration(h.AgeMillis)*time.Millisecond))
		}
	}
}

// suspects are the members an asker must not trust an answer over:
// hinted and not cleared by a probe, among those member keeps.
func (p *prober) suspects(member func(string) bool) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sus.suspects(member)
}

// suspicions is a peer's knowledge of unreachable peers: the prober's
// pure part (no I/O, no clock of its own), guarded by prober.mu.
type suspicions struct {
	failed  map[string]time.Time // when a failure to reach it was seen, first- or second-hand
	lastOK  map[string]time.Time // the last exchange with it that succeeded, first-hand
	probing map[string]bool      // an asker's probe is running
	// verifying peers get a second ping after a failed exchange.
	verifying map[string]bool
	// confirmed are members this peer probed and could not reach.
	confirmed map[string]time.Time
	// skewed are members that refused an exchange with this peer for the
	// time on it (network.SkewError): their clock minus this one's, and
	// when. They are not unreachable: they are left out of the answers
	// this peer asks, and named (or, if most members are, this peer's own
	// clock is the one that is off).
	skewed map[string]skewNote
}

type skewNote struct {
	off time.Duration
	at  time.Time
}

func newSuspicions() suspicions {
	return suspicions{failed: map[string]time.Time{}, lastOK: map[string]time.Time{}, probing: map[string]bool{},
		verifying: map[string]bool{}, confirmed: map[string]time.Time{}, skewed: map[string]skewNote{}}
}

// reached records an exchange with peer: it answered, or it called.
func (s *suspicions) reached(peer string, now time.Time) {
	s.lastOK[peer] = now
	delete(s.failed, peer)
	delete(s.confirmed, peer)
	delete(s.skewed, peer)
}

// skewedMembers are the members whose last exchange with this peer failed
// for clock skew, within ttl.
func (s *suspicions) skewedMembers(now time.Time, ttl time.Duration, member func(string) bool) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, k := range s.skewed {
		if now.Sub(k.at) < ttl && member(name) {
			out[name] = k.off
		}
	}
	return out
}

// missed records a failed exchange with peer, seen at t.
func (s *suspicions) missed(peer string, t time.Time) {
	if ok := s.lastOK[peer]; !t.After(ok) {
		return // we have heard from it since
	}
	if f, seen := s.failed[peer]; !seen || t.After(f) {
		s.failed[peer] = t
	}
}

// hints are the freshest failures to pass on. A failure noted after now
// (a caller reads the clock before another goroutine notes a miss: the
// exchange's handler, a probe's) is of age 0: a negative age made a
// uint32 past 2^31 that every receiver refused, with the whole exchange
// (a 2,000-peer demo under churn lost a WATCH to "malformed exchange:
// bad hint age").
func (s *suspicions) hints(now time.Time, ttl time.Duration) []hint {
	if len(s.failed) == 0 {
		return nil
	}
	out := make([]hint, 0, len(s.failed))
	for name, t := range s.failed {
		if age := max(now.Sub(t), 0); age < ttl {
			out = append(out, hint{Name: name, AgeMillis: uint32(age / time.Millisecond)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].AgeMillis < out[j].AgeMillis || out[i].AgeMillis == out[j].AgeMillis && out[i].Name < out[j].Name
	})
	return out[:min(len(out), MaxHints)]
}

// expire forgets what is older than ttl, and peers no longer members.
func (s *suspicions) expire(now time.Time, ttl time.Duration, member func(string) bool) {
	for name, t := range s.failed {
		if now.Sub(t) >= ttl || !member(name) {
			delete(s.failed, name)
		}
	}
	for name, t := range s.confirmed {
		if now.Sub(t) >= ttl || !member(name) {
			delete(s.confirmed, name)
		}
	}
	for name, k := range s.skewed {
		if now.Sub(k.at) >= ttl || !member(name) {
			delete(s.skewed, name)
		}
	}
	for name, t := range s.lastOK {
		if now.Sub(t) >= 10*ttl {
			delete(s.lastOK, name)
		}
	}
}

// suspects are the members an asker must not trust an answer over: hinted
// and not cleared by a probe.
func (s *suspicions) suspects(member func(string) bool) []string {
	var out []string
	for name := range s.failed {
		if member(name) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// verify finds out whether a peer an exchange with failed at t is lost,
// as SWIM's failure detector does, but for the queries only: a ping
// first; if that fails too, the peer is hinted, and it is pinged again
// while IndirectProbes other members are asked to ping it; if none of
// them reaches it, it is lost (declareLost). A refused connection is lost
// at once. Under loss every probe may fail for a live peer: with 20% of
// exchanges lost, one failure in about 3,000 ends so (0.2 × 0.2 × 0.36³);
// the answers then leave it out and name it, right over the others.
// Called with mu held.
func (p *prober) verify(peer string, t time.Time) {
	if p.sus.verifying[peer] {
		return
	}
	p.sus.verifying[peer] = true
	helpers := p.helpersFor(peer)
	p.look(peer, helpers, func() { p.sus.missed(peer, t) }, func() { delete(p.sus.verifying, peer) }, func(err error, now time.Time) string {
		if errors.Is(err, network.ErrNoEndpoint) {
			return p.lose(peer, "its address refused the connection", now)
		}
		return p.lose(peer, fmt.Sprintf(unreachablePrefix+": 2 pings and %d indirect probes failed", len(helpers)), now)
	})
}

// look examines peer (with helpers; first as examine's) on a goroutine
// of its own, and settles with mu held, after done, what every look
// settles: a member reached is cleared, one that refused this peer's
// clock answered (it is noted skewed), and a prober that stops notes
// nothing. A member still silent, or whose address refused the
// connection, is the caller's: silent says, with mu held, why to tell
// onLost ("" for nothing).
func (p *prober) look(peer string, helpers []string, first, done func(), silent func(err error, now time.Time) string) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err, reachedBy := p.examine(peer, helpers, first)
		var skew *network.SkewError
		p.mu.Lock()
		done()
		now, why := p.cfg.Now(), ""
		switch {
		case err == nil || reachedBy != "":
			p.clear(peer, now)
		case errors.As(err, &skew):
			p.sus.skewed[peer] = skewNote{off: skew.Offset, at: now}
		case p.ctx.Err() != nil:
		default:
			why = silent(err, now)
		}
		p.mu.Unlock()
		if why != "" {
			p.onLost(peer, why)
		}
	}()
}

// examine is SWIM's look at peer: a ping; if it fails (not refused, not
// for skew), first (with mu held) and then a second ping while helpers
// are asked to ping it. err is the first ping's; reachedBy names who
// reached it after that failed ("" for none). Call it without mu.
func (p *prober) examine(peer string, helpers []string, first func()) (err error, reachedBy string) {
	err = p.ping(peer, p.verifyTimeout())
	var skew *network.SkewError
	if err == nil || errors.As(err, &skew) || errors.Is(err, network.ErrNoEndpoint) {
		return err, ""
	}
	if first != nil {
		p.mu.Lock()
		first()
		p.mu.Unlock()
	}
	again := make(chan error, 1)
	go func() { again <- p.ping(peer, p.verifyTimeout()) }()
	reachedBy = p.probeThrough(peer, helpers)
	if <-again == nil {
		reachedBy = p.net.Name()
	}
	return err, reachedBy
}

// relook pings a member this peer found lost and Serf still lists: the
// rounds pass over it (roundPartner), so without a look it would stay
// left out of the queries asked here for HintTTL after it came back — a
// machine restarted in a few seconds, before Serf noticed. One still
// silent has its note renewed. Called with mu held, by tick, once a
// second for up to maxRelooks such members not being looked at already.
func (p *prober) relook(peer string) {
	p.relooking[peer] = true
	p.look(peer, p.helpersFor(peer), nil, func() { delete(p.relooking, peer) }, func(_ error, now time.Time) string {
		// Still silent to a ping, a second and the helpers' — the
		// evidence it was found lost on — and still listed by the
		// membership: it stays lost (a member that hangs, its process
		// stopped or its port cut, while Serf's probes of it pass, is
		// left out of every statement for as long as it does, not found
		// again by each one after HintTTL: 0.94 s a statement against
		// 0.18 s, 12 peers, TestHungMemberStaysLeftOut). Its first
		// finding stays the note's time: answering later is no mistake
		// of this peer's (clear). No hint: the members that need it
		// found it themselves, and hints of fresh losses are what a
		// batch has room for.
		if l, ok := p.lost[peer]; ok {
			l.renewed = now
			p.lost[peer] = l
		}
		return ""
	})
}

// maxRelooks bounds the pings relook sends a second: a large cloud has
// tens of lost members listed at any time.
const maxRelooks = 4

// helpersFor picks the members that probe peer for this one: up to
// IndirectProbes live members, not peer, not this one. Called with mu
// held (it draws from r).
func (p *prober) helpersFor(peer string) []string {
	var out []string
	for tries := 0; len(out) < p.cfg.IndirectProbes && tries < 4*p.cfg.IndirectProbes; tries++ {
		h, ok := p.net.Sample(p.r)
		if !ok {
			break
		}
		if h != peer && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// probeThrough asks each helper to ping peer (protoProbe), in parallel,
// and returns the first that reached it ("" if none did).
func (p *prober) probeThrough(peer string, helpers []string) string {
	got := make(chan string, len(helpers))
	for _, h := range helpers {
		go func() {
			ctx, cancel := context.WithTimeout(p.ctx, p.verifyTimeout()+p.cfg.ExchangeTimeout/2)
			defer cancel()
			resp, err := p.net.Exchange(ctx, h, encodeBatch(batch{Entries: []entry{{Kind: protoProbe, Asker: peer}}}))
			if err == nil {
				if b, err := decodeBatch(resp); err == nil && len(b.Entries) == 1 && b.Entries[0].Kind == protoProbe && b.Entries[0].Round == 1 {
					got <- h
					return
				}
			}
			got <- ""
		}()
	}
	for range helpers {
		if h := <-got; h != "" {
			return h
		}
	}
	return ""
}

// answerProbe pings target for a peer that could not reach it (an
// indirect probe) and says whether it answered.
func (p *prober) answerProbe(target string) entry {
	p.counts.indirect.Add(1)
	e := entry{Kind: protoProbe, Asker: target}
	if p.ping(target, p.verifyTimeout()) == nil {
		e.Round = 1
	}
	return e
}

// verifyTimeout is how long the second ping after a failed exchange may
// take: short, since the peer was just tried, and every moment before a
// hint goes out is one in which an asker may trust a dead peer's mass.
func (p *prober) verifyTimeout() time.Duration {
	h := time.Duration(p.healthMul.Load())
	return min(max(4*p.cfg.ExchangeTime(), MinSuspect)*h, p.cfg.ExchangeTimeout/4*h, p.cfg.ExchangeTimeout)
}

// ping sends an empty exchange to peer, giving up after d: nil if it
// answered.
func (p *prober) ping(peer string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	resp, err := p.net.Exchange(ctx, peer, encodeBatch(batch{}))
	if err == nil {
		_, err = decodeBatch(resp)
	}
	return err
}

// suspectIfSlow verifies peer (a ping, then indirect probes: verify) if
// the exchange just sent to it takes longer than suspectAfter, while the
// exchange goes on: its reply, if it comes, still counts. An exchange
// given up while the peer applied it would leave its flow on one side
// only — mass that no one holds until a retry gets through, which a
// converged answer would carry (Flow Updating conserves mass only over
// answered exchanges). Call the function returned when the exchange ends.
//
// It is a timer, not a goroutine waiting on one: every exchange a peer
// starts arms it, and a goroutine, a channel and a select an exchange were
// 6% of a 1,000-peer demo's CPU while it answered.
func (p *prober) suspectIfSlow(peer string) (ended func() bool) {
	t := time.AfterFunc(p.suspectAfter(), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		// close cancels with mu held: a probe started here is counted in
		// wg before close waits for it, or not started at all.
		if p.ctx.Err() == nil {
			p.verify(peer, p.cfg.Now())
		}
	})
	return t.Stop
}

// suspectAfter is how long an exchange may take before the peer is
// verified (SWIM's probe timeout, adapted to the exchanges' round trip):
// eight recent exchanges' time, at least MinSuspect, at most
// ExchangeTimeout. A peer lost without a word — a machine switched off —
// is then left out of the queries within about a second on a LAN
// (verify's pings take as long again), not the 2 s of ExchangeTimeout
// plus the probes: a query over a thousand peers takes about as long.
func (p *prober) suspectAfter() time.Duration {
	avg := p.cfg.ExchangeTime()
	if avg == 0 {
		return p.cfg.ExchangeTimeout
	}
	return min(max(8*avg, MinSuspect)*time.Duration(p.healthMul.Load()), p.cfg.ExchangeTimeout)
}

// findWithin is how long the query's peers take to find a member lost
// just before or as a query started: an exchange that outlasts
// suspectAfter, a ping and indirect probes (verifyTimeout each, and the
// probes' own), and a few rounds for the news. An answer not converged
// is held that long (run.Instance.Hold), rather than called partial for a
// member nobody could have found yet.
func (p *prober) findWithin() time.Duration {
	return p.suspectAfter() + 3*p.verifyTimeout() + 10*p.cfg.MinRound
}

// MinSuspect is the least time an exchange or a verifying ping is given.
const MinSuspect = 250 * time.Millisecond

// probeSuspects starts, for an asker, a probe of each suspect not being
// probed: ProbeTries pings, each within ExchangeTimeout. It says whether
// a probe of one of them is out, and how long an asker at the end of its
// budget may hold its answer for it: a whole probe (awaitProbes).
func (p *prober) probeSuspects(suspects []string) (pending bool, grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	grace = time.Duration(p.cfg.ProbeTries) * p.cfg.ExchangeTimeout
	for _, name := range suspects {
		if p.sus.probing[name] {
			pending = true
			continue
		}
		if t, ok := p.sus.confirmed[name]; ok && p.cfg.Now().Sub(t) < p.cfg.ExchangeTimeout*time.Duration(p.cfg.ProbeTries) {
			continue // probed lately: wait for the failure detector
		}
		p.sus.probing[name], pending = true, true
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			err := errors.New("not probed")
			var skew *network.SkewError
			for try := 0; try < p.cfg.ProbeTries && err != nil && !errors.As(err, &skew) && p.ctx.Err() == nil; try++ {
				err = p.ping(name, p.cfg.ExchangeTimeout)
			}
			p.mu.Lock()
			delete(p.sus.probing, name)
			p.counts.probes.Add(1)
			why := ""
			switch {
			case err == nil:
				p.clear(name, p.cfg.Now())
			case skew != nil:
				p.sus.skewed[name] = skewNote{off: skew.Offset, at: p.cfg.Now()}
				delete(p.sus.failed, name)
			default:
				// Hinted by the others, and the asker's own probes fail:
				// lost, for this query and the next ones.
				p.sus.confirmed[name] = p.cfg.Now()
				why = p.lose(name, "unreachable: the others' exchanges and the asker's probes failed", p.cfg.Now())
			}
			p.mu.Unlock()
			if why != "" {
				p.onLost(name, why)
			}
		}()
	}
	return pending, grace
}
