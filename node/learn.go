package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/peerq/peerq/node/network"
)

// What a pool's members learn of the cloud pool.
//
// A peer joins the cloud pool when it becomes one of its pool's gateways,
// through the addresses it was given (--cloud-join) and its pool's other
// gateways. When every gateway of a pool dies at once and the members
// that take their places were given no --cloud-join (an operator gives
// it to the first agents, not to every one), the new gateways had nobody
// to join: they started a cloud pool of their own, and their pool
// answered exact over itself, without the others. A Consul agent learns
// its servers from the servers; a member of a pool here asks a gateway
// of its pool, every Config.LearnEvery, which pools the cloud pool holds
// and where some of their gateways are (opLearn), and a new gateway
// joins through one of those addresses when the others fail, one more
// at each try (socketCloud.Join), and heals through one while the cloud
// pool holds no other pool. The pools it learned go into what it has
// known of (pools.view): if it finds none of them, its answers name them,
// partial, for Config.PoolMemory — not exact over the pools it found.
//
// A gateway is a stranger: what it tells is bounded (maxLearnedSeeds
// addresses, IP literals; maxLearnedPools names) and checked for shape,
// and a member keeps the pools any gateway told it for PoolMemory, so a
// liar that leaves pools out cannot make them forgotten. At worst it
// makes a future gateway try addresses that fail or stall (each only
// after the given ones, one per try: a join that could do without it is
// not held up) and name made-up pools as missing, partial, for
// PoolMemory (SECURITY.md).

// learnedCloud is what a peer knows of the cloud pool, from its pool's
// gateways or from the cloud pool itself while it is a gateway.
type learnedCloud struct {
	seeds []string             // cloud-pool gossip addresses of other pools' gateways
	pools map[string]time.Time // pools the cloud pool held, and when this peer last heard so
}

// heard keeps names as held at now, and forgets the pools it has not
// heard of for memory.
func (l *learnedCloud) heard(names []string, own string, now time.Time, memory time.Duration) {
	if l.pools == nil {
		l.pools = map[string]time.Time{}
	}
	for _, name := range names {
		if name != own && (len(l.pools) < maxLearnedPools || !l.pools[name].IsZero()) {
			l.pools[name] = now
		}
	}
	for name, at := range l.pools {
		if now.Sub(at) >= memory {
			delete(l.pools, name)
		}
	}
}

// next is the learned address a gateway tries at its k-th try, if any.
func (l *learnedCloud) next(k int) []string {
	if len(l.seeds) == 0 {
		return nil
	}
	return []string{l.seeds[k%len(l.seeds)]}
}

// cloudHeld is what a gateway knows of the cloud pool to tell its pool's
// members: every other pool's gateways' addresses (each member gets its
// own few: pickSeeds), and the pools held, sorted, with their digest.
type cloudHeld struct {
	addrs []string
	names []string
	sum   uint64
}

const (
	// maxLearnedSeeds bounds the addresses a member keeps: a join needs
	// one that answers.
	maxLearnedSeeds = 8
	// maxLearnedPools bounds the pools a peer keeps, as many as a pool
	// message's list may hold (poolDec); the names of a cloud of 1,000
	// pools are about 16 KB, told again only when they change: the member
	// sends the digest of the last list it was told.
	maxLearnedPools = 4096
	// maxPoolName bounds a pool's name as a gateway tells it.
	maxPoolName = 128
)

// heldBy is what a gateway knows of the cloud pool from its members:
// the pools with a gateway there, and the other pools' gateways'
// addresses.
func heldBy(members []network.Member, own string) cloudHeld {
	var h cloudHeld
	pools := map[string]bool{}
	for _, m := range members {
		name := m.Tags[TagPool]
		if name == "" || m.Tags[TagGateway] == "" {
			continue
		}
		pools[name] = true
		if name != own && m.Addr != "" {
			h.addrs = append(h.addrs, m.Addr)
		}
	}
	for name := range pools {
		h.names = append(h.names, name)
	}
	sort.Strings(h.names)
	if len(h.names) > maxLearnedPools {
		h.names = h.names[:maxLearnedPools]
	}
	sort.Strings(h.addrs)
	h.sum = namesDigest(h.names)
	return h
}

// namesDigest is a digest of a sorted list of names (0 for none).
func namesDigest(names []string) uint64 {
	if len(names) == 0 {
		return 0
	}
	d := uint64(len(names))
	for _, n := range names {
		d = (d ^ hash64(n)) * 1099511628211
	}
	return d
}

// pickSeeds is who's n addresses among addrs: those whose hash with who
// is lowest (rendezvous hashing), so that each member of a cloud joins
// and heals through its own few of the other pools' gateways, not every
// member through the same.
func pickSeeds(addrs []string, who string, n int) []string {
	type scored struct {
		h    uint64
		addr string
	}
	hw := hash64(who)
	s := make([]scored, 0, len(addrs))
	for _, a := range addrs {
		s = append(s, scored{mix64(hw ^ hash64(a)), a})
	}
	sort.Slice(s, func(i, j int) bool { return s[i].h < s[j].h || s[i].h == s[j].h && s[i].addr < s[j].addr })
	out := make([]string, 0, min(n, len(s)))
	for _, x := range s[:min(n, len(s))] {
		out = append(out, x.addr)
	}
	return out
}

// tell answers a member of this gateway's pool, from, that asks what the
// cloud pool holds (opLearn): its own few addresses, and the pools unless
// sum says it was told the same list before.
func (p *pools) tell(from string, sum []byte) poolResp {
	p.mu.Lock()
	held, in := p.held, p.cloud != nil // holding replaces held whole, never in place
	p.mu.Unlock()
	if !in {
		return poolResp{Err: fmt.Sprintf("%s %s", p.lan.Name(), notInCloud)}
	}
	// Outside p.mu: 3,000 gateways' addresses hashed and sorted.
	r := poolResp{Seeds: pickSeeds(held.addrs, from, maxLearnedSeeds)}
	if len(sum) == 8 && binary.BigEndian.Uint64(sum) == held.sum && held.sum != 0 {
		r.Unchanged = true
	} else {
		r.Held = held.names
	}
	return r
}

// holding notes, at a gateway's check, what the cloud pool holds: to tell
// its pool's members, and to keep as a member's would be, should it stop
// being a gateway. p.mu is held.
func (p *pools) holding(members []network.Member, now time.Time) {
	p.held = heldBy(members, p.cfg.Pool)
	if seeds := pickSeeds(p.held.addrs, p.lan.Name(), maxLearnedSeeds); len(seeds) > 0 {
		p.learned.seeds = seeds // alone, it keeps where the others were
	}
	p.learned.heard(p.held.names, p.cfg.Pool, now, p.cfg.PoolMemory)
}

// askToLearn starts, every Config.LearnEvery (30 s: a pool's gateways
// rarely die together, and what a member learned a minute ago is as good
// then), one ask of a gateway of this peer's pool (learn), unless one is
// out. p.mu is not held.
func (p *pools) askToLearn(now time.Time) {
	every := p.cfg.LearnEvery
	if every <= 0 {
		every = DefaultConfig(nil).LearnEvery // a Config made by hand
	}
	p.mu.Lock()
	if p.learnedAt.IsZero() {
		// Each member at its own phase, by its name: a pool's members,
		// started together, would otherwise ask at once, every time. The
		// first ask comes one to two periods after the start: while a
		// pool forms, its gateways are not in the cloud pool, and the
		// asks would only add to the joins' work.
		p.learnedAt = now.Add(time.Duration(hash64(p.lan.Name()) % uint64(every)))
	}
	if p.learning || now.Sub(p.learnedAt) < every {
		p.mu.Unlock()
		return
	}
	p.learning, p.learnedAt = true, now
	k := p.asked
	p.asked++
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], namesDigest(p.told))
	p.mu.Unlock()
	go p.learn(k, sum[:])
}

// learn asks one gateway of this peer's pool what the cloud pool holds —
// the k-th ask, so that each asks another than the last, and one that
// lies or hangs is not the only one heard — and keeps it if it is well
// formed; a failure keeps what it had. The first failure after a success
// is logged, and what a gateway told that was refused always (a gateway
// that lies, or is broken): not every failure, since while a pool forms
// its gateways are not in the cloud pool yet, and every member would say
// so every LearnEvery.
func (p *pools) learn(k int, sum []byte) {
	var why string
	refused := false
	defer func() {
		p.mu.Lock()
		p.learning = false
		say := refused || why != "" && p.learnErr == ""
		p.learnErr = why
		p.mu.Unlock()
		if say {
			p.logf("pools: learning what the cloud pool holds: %s", why) // not under p.mu
		}
	}()
	var gws []string
	for _, g := range Gateways(p.lan.Members(), p.cfg.Gateways) {
		if g != p.lan.Name() {
			gws = append(gws, g)
		}
	}
	if len(gws) == 0 {
		return
	}
	to := gws[k%len(gws)]
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ExchangeTimeout)
	defer cancel()
	resp, err := p.callLAN(ctx, to, poolReq{Op: opLearn, ID: make([]byte, len(QueryID{})), Msg: sum})
	if err != nil {
		// A gateway not in the cloud pool yet (its pool forming) is not
		// worth a line; an older peerq, or no answer, is.
		if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), notInCloud) {
			why = fmt.Sprintf("%s: %v", to, err)
		}
		return
	}
	self, _ := p.lan.Member(p.lan.Name())
	if err := checkLearned(resp, loopback(self.Addr)); err != nil {
		why, refused = fmt.Sprintf("%s told it, refused: %v", to, err), true
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cloud != nil {
		return // a gateway knows better, from the cloud pool itself
	}
	if len(resp.Seeds) > 0 {
		p.learned.seeds = slices.Clone(resp.Seeds)
	}
	if !resp.Unchanged {
		p.told = slices.Clone(resp.Held)
	}
	p.learned.heard(p.told, p.cfg.Pool, now, p.cfg.PoolMemory)
}

// notInCloud is what a gateway answers opLearn while it has not joined
// the cloud pool.
const notInCloud = "is not in the cloud pool now"

// loopback says addr's host is a loopback address: agents on one machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// checkLearned checks what a gateway told (opLearn): at most
// maxLearnedSeeds addresses, each an IP literal and a port — a name could
// stand for many hosts, each tried in turn — neither unspecified nor
// multicast, nor loopback unless this peer's own address is (agents on
// one machine); and at most maxLearnedPools names, sorted, of at most
// maxPoolName bytes, or none when it says the list is unchanged.
func checkLearned(r poolResp, loopbackOK bool) error {
	if len(r.Seeds) > maxLearnedSeeds || len(r.Held) > maxLearnedPools {
		return fmt.Errorf("%d addresses and %d pools, more than %d and %d", len(r.Seeds), len(r.Held), maxLearnedSeeds, maxLearnedPools)
	}
	for _, s := range r.Seeds {
		host, port, err := net.SplitHostPort(s)
		n, perr := strconv.Atoi(port)
		ip := net.ParseIP(host)
		if err != nil || perr != nil || n <= 0 || n > 65535 || ip == nil || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() && !loopbackOK {
			return fmt.Errorf("%q is not a cloud pool address (IP:PORT)", s)
		}
	}
	if r.Unchanged && len(r.Held) > 0 {
		return fmt.Errorf("a list of %d pools said to be unchanged", len(r.Held))
	}
	for i, name := range r.Held {
		if !poolNameOK(name) || i > 0 && r.Held[i-1] >= name {
			return fmt.Errorf("%q is not a pool's name in order", name)
		}
	}
	return nil
}

// poolNameOK says name could be a pool's, as another peer tells it: not
// empty, at most maxPoolName bytes, UTF-8.
func poolNameOK(name string) bool {
	return name != "" && len(name) <= maxPoolName && utf8.ValidString(name)
}
