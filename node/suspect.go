package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/peerq/peerq/node/network"
	"github.com/peerq/peerq/run"
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

// suspicions is a peer's knowledge of unreachable peers. Guarded by n.mu.
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
// Called with n.mu held.
func (s *suspicions) reached(peer string, now time.Time) {
	s.lastOK[peer] = now
	delete(s.failed, peer)
	delete(s.confirmed, peer)
	delete(s.skewed, peer)
}

// reached records an exchange with peer: it is no longer lost for the
// queries asked from now on (those that left it out keep it out). Called
// with n.mu held.
func (n *Node) reached(peer string, now time.Time) {
	n.sus.reached(peer, now)
	if l, ok := n.lost[peer]; ok && now.Sub(l.at) < n.cfg.HintTTL && strings.HasPrefix(l.why, unreachablePrefix) {
		// Found lost by this peer's own probes, and alive: this peer's
		// timeouts were too short for the network or its own machine.
		n.degrade(now)
	}
	delete(n.lost, peer)
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

// degrade notes a member wrongly found lost. Called with n.mu held.
func (n *Node) degrade(now time.Time) {
	n.health = min(n.health+1, maxHealth)
	n.healthAt = now
	n.stats.FalseLost++
}

// healthFactor is the multiplier of this peer's suspicion timeouts, after
// letting health recover for the quiet time since the last mistake.
// Called with n.mu held.
func (n *Node) healthFactor(now time.Time) time.Duration {
	if n.health > 0 {
		if k := int(now.Sub(n.healthAt) / healthDecay); k > 0 {
			n.health = max(n.health-k, 0)
			n.healthAt = now
		}
	}
	return time.Duration(1 + n.health)
}

// failedWith records why an exchange with peer failed: a peer that
// refused it for clock skew is reachable, and is noted as skewed; any
// other failure is verified (a second ping) before it becomes a
// suspicion. Called with n.mu held.
func (n *Node) failedWith(peer string, err error, now time.Time) {
	var skew *network.SkewError
	switch {
	case errors.As(err, &skew):
		n.sus.skewed[peer] = skewNote{off: skew.Offset, at: now}
		delete(n.sus.failed, peer)
	case n.closed():
	case errors.Is(err, network.ErrNoEndpoint):
		n.declareLost(peer, "its address refused the connection", now)
	default:
		if l, ok := n.lost[peer]; ok && now.Sub(l.at) < n.cfg.HintTTL {
			return // verified while the exchange waited (suspectIfSlow)
		}
		n.verify(peer, now)
	}
}

// declareLost leaves a member this peer found lost out of every query it
// takes part in (each spreads the news with its messages), and out of
// the queries it asks next while the news is fresh (HintTTL). The
// member is not released from a subcloud for it: leases follow Serf's
// verdict and the owner's checks. Called with n.mu held.
func (n *Node) declareLost(name, why string, now time.Time) {
	if name == n.Name() {
		return
	}
	if _, ok := n.lost[name]; !ok {
		n.stats.Lost++
	}
	n.lost[name] = lostNote{why: why, at: now}
	n.sus.missed(name, now) // hinted too, for askers that have not heard yet
	for _, q := range n.queries {
		n.exclude(q, name, why)
	}
}

// lostNote is a member this peer found lost, and why.
type lostNote struct {
	why string
	at  time.Time
}

// skewedMembers are the members whose last exchange with this peer failed
// for clock skew, within ttl. Called with n.mu held.
func (s *suspicions) skewedMembers(now time.Time, ttl time.Duration, member func(string) bool) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, k := range s.skewed {
		if now.Sub(k.at) < ttl && member(name) {
			out[name] = k.off
		}
	}
	return out
}

// missed records a failed exchange with peer, seen at t. Called with n.mu
// held.
func (s *suspicions) missed(peer string, t time.Time) {
	if ok := s.lastOK[peer]; !t.After(ok) {
		return // we have heard from it since
	}
	if f, seen := s.failed[peer]; !seen || t.After(f) {
		s.failed[peer] = t
	}
}

// hints are the freshest failures to pass on.
func (s *suspicions) hints(now time.Time, ttl time.Duration) []hint {
	if len(s.failed) == 0 {
		return nil
	}
	out := make([]hint, 0, len(s.failed))
	for name, t := range s.failed {
		if age := now.Sub(t); age < ttl {
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
// and not cleared by a probe. Called with n.mu held.
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
// Called with n.mu held.
func (n *Node) verify(peer string, t time.Time) {
	if n.sus.verifying[peer] {
		return
	}
	n.sus.verifying[peer] = true
	helpers := n.helpersFor(peer)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.pingWithin(peer, n.verifyTimeout())
		var skew *network.SkewError
		reachedBy := ""
		if err != nil && !errors.As(err, &skew) && !errors.Is(err, network.ErrNoEndpoint) {
			n.mu.Lock()
			n.sus.missed(peer, t)
			n.mu.Unlock()
			again := make(chan error, 1)
			go func() { again <- n.pingWithin(peer, n.verifyTimeout()) }()
			reachedBy = n.probeThrough(peer, helpers)
			if <-again == nil {
				reachedBy = n.Name()
			}
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.sus.verifying, peer)
		now := n.now()
		switch {
		case err == nil || reachedBy != "":
			n.reached(peer, now)
		case errors.As(err, &skew):
			n.sus.skewed[peer] = skewNote{off: skew.Offset, at: now}
		case n.closed():
		case errors.Is(err, network.ErrNoEndpoint):
			n.declareLost(peer, "its address refused the connection", now)
		default:
			n.declareLost(peer, fmt.Sprintf(unreachablePrefix+": 2 pings and %d indirect probes failed", len(helpers)), now)
		}
	}()
}

// relook pings a member this peer found lost and Serf still lists: the
// rounds pass over it (roundPartner), so without a look it would stay
// left out of the queries asked here for HintTTL after it came back — a
// machine restarted in a few seconds, before Serf noticed. Called with
// n.mu held, once a second for up to maxRelooks such members.
func (n *Node) relook(peer string) {
	if n.sus.verifying[peer] {
		return
	}
	n.sus.verifying[peer] = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.pingWithin(peer, n.verifyTimeout())
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.sus.verifying, peer)
		if err == nil {
			n.reached(peer, n.now())
		}
	}()
}

// maxRelooks bounds the pings relook sends a second: a large cloud has
// tens of lost members listed at any time.
const maxRelooks = 4

// helpersFor picks the members that probe peer for this one: up to
// IndirectProbes live members, not peer, not this one. Called with n.mu
// held (it draws from n.r).
func (n *Node) helpersFor(peer string) []string {
	var out []string
	for tries := 0; len(out) < n.cfg.IndirectProbes && tries < 4*n.cfg.IndirectProbes; tries++ {
		h, ok := n.net.Sample(n.r)
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
func (n *Node) probeThrough(peer string, helpers []string) string {
	got := make(chan string, len(helpers))
	for _, h := range helpers {
		go func() {
			ctx, cancel := context.WithTimeout(n.ctx, n.verifyTimeout()+n.cfg.ExchangeTimeout/2)
			defer cancel()
			resp, err := n.net.Exchange(ctx, h, encodeBatch(batch{Entries: []entry{{Kind: protoProbe, Asker: peer}}}))
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
func (n *Node) answerProbe(target string) entry {
	n.mu.Lock()
	n.stats.Indirect++
	n.mu.Unlock()
	e := entry{Kind: protoProbe, Asker: target}
	if n.pingWithin(target, n.verifyTimeout()) == nil {
		e.Round = 1
	}
	return e
}

// verifyTimeout is how long the second ping after a failed exchange may
// take: short, since the peer was just tried, and every moment before a
// hint goes out is one in which an asker may trust a dead peer's mass.
func (n *Node) verifyTimeout() time.Duration {
	h := time.Duration(n.healthMul.Load())
	return min(max(4*time.Duration(n.exchangeTime.Load()), MinSuspect)*h, n.cfg.ExchangeTimeout/4*h, n.cfg.ExchangeTimeout)
}

// ping sends an empty exchange to peer: nil if it answered.
func (n *Node) ping(peer string) error { return n.pingWithin(peer, n.cfg.ExchangeTimeout) }

func (n *Node) pingWithin(peer string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(n.ctx, d)
	defer cancel()
	resp, err := n.net.Exchange(ctx, peer, encodeBatch(batch{}))
	if err == nil {
		_, err = decodeBatch(resp)
	}
	return err
}

// takeHints merges the hints a peer sent. Called with n.mu held.
func (n *Node) takeHints(hs []hint, now time.Time) {
	for _, h := range hs {
		if h.Name == n.Name() {
			continue
		}
		if _, ok := n.net.Member(h.Name); ok {
			n.sus.missed(h.Name, now.Add(-time.Duration(h.AgeMillis)*time.Millisecond))
		}
	}
}

// awaitProbes says whether an asker at the end of its budget holds its
// answer back: a probe of a suspect is still out, and its outcome decides
// between a final answer and a partial one — under loss, most suspects
// are peers whose messages were lost, and a probe clears them. It holds
// at most one whole probe (ProbeTries × ExchangeTimeout) past the budget;
// the gossip goes on meanwhile. Searches for RESERVE and repairs do not
// wait. Called with n.mu held.
func (n *Node) awaitProbes(q *instance, suspects []string, now time.Time) bool {
	if q.run.Plan().Reserve != nil {
		// A RESERVE's (or a repair's) search: its claims check every
		// candidate themselves, and a repair must not wait.
		return false
	}
	if run.Blocking(len(suspects), max(len(q.atStart), 1), q.run.Plan().Accuracy) == 0 {
		return false // too few to move the answer (blocking)
	}
	pending := false
	for _, s := range suspects {
		pending = pending || n.sus.probing[s]
	}
	if !pending {
		return false
	}
	if q.graceUntil.IsZero() {
		q.graceUntil = now.Add(time.Duration(n.cfg.ProbeTries) * n.cfg.ExchangeTimeout)
	}
	return now.Before(q.graceUntil)
}

// probeSuspects starts, for an asker, a probe of each suspect not being
// probed: ProbeTries pings, each within ExchangeTimeout. Called with n.mu
// held.
func (n *Node) probeSuspects(suspects []string) {
	for _, name := range suspects {
		if n.sus.probing[name] {
			continue
		}
		if t, ok := n.sus.confirmed[name]; ok && n.now().Sub(t) < n.cfg.ExchangeTimeout*time.Duration(n.cfg.ProbeTries) {
			continue // probed lately: wait for the failure detector
		}
		n.sus.probing[name] = true
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			err := errors.New("not probed")
			var skew *network.SkewError
			for try := 0; try < n.cfg.ProbeTries && err != nil && !errors.As(err, &skew) && !n.closed(); try++ {
				err = n.ping(name)
			}
			n.mu.Lock()
			defer n.mu.Unlock()
			delete(n.sus.probing, name)
			n.stats.Probes++
			switch {
			case err == nil:
				n.reached(name, n.now())
			case skew != nil:
				n.sus.skewed[name] = skewNote{off: skew.Offset, at: n.now()}
				delete(n.sus.failed, name)
			default:
				// Hinted by the others, and the asker's own probes fail:
				// lost, for this query and the next ones.
				n.sus.confirmed[name] = n.now()
				n.declareLost(name, "unreachable: the others' exchanges and the asker's probes failed", n.now())
			}
		}()
	}
}
