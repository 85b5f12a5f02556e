package node

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
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
// of its pool, every Config.LearnEvery, which pools the cloud pool holds and
// where their gateways are (opLearn), and a new gateway joins through
// those addresses too. The pools it learned go into what it has seen
// (pools.seen): if it finds none of them, its answers name them,
// partial, for Config.PoolMemory — not exact over the pools it found.
//
// A gateway is a stranger: what it tells is bounded (maxLearnedSeeds
// addresses, maxLearnedPools names) and checked for shape, and at worst
// it makes a future gateway try joins that fail, and name pools that do
// not exist as missing for PoolMemory (partial, never bent: SECURITY.md).

// learnedCloud is what a peer knows of the cloud pool, from its pool's
// gateways or from the cloud pool itself while it is a gateway.
type learnedCloud struct {
	seeds []string             // cloud-pool gossip addresses of other pools' gateways
	pools map[string]time.Time // pools the cloud pool held, and when this peer was told
}

const (
	// maxLearnedSeeds bounds the addresses a member keeps: a join needs
	// one that answers.
	maxLearnedSeeds = 8
	// maxLearnedPools bounds the pools a member keeps (the names of a
	// cloud of 1,024 pools are about 16 KB).
	maxLearnedPools = 1024
	// maxPoolName bounds a pool's name as a gateway tells it.
	maxPoolName = 128
)

// learnFrom is what a gateway knows of the cloud pool from its members:
// every pool with a gateway there, and addresses of other pools' gateways
// — one of each pool in turn, so that a few pools' deaths leave some.
func learnFrom(members []network.Member, own string, now time.Time) learnedCloud {
	l := learnedCloud{pools: map[string]time.Time{}}
	byPool := map[string][]string{}
	for _, m := range members {
		name := m.Tags[TagPool]
		if name == "" || m.Tags[TagGateway] == "" {
			continue
		}
		if len(l.pools) < maxLearnedPools || l.pools[name] != (time.Time{}) {
			l.pools[name] = now
		}
		if name != own && m.Addr != "" {
			byPool[name] = append(byPool[name], m.Addr)
		}
	}
	names := make([]string, 0, len(byPool))
	for name, addrs := range byPool {
		sort.Strings(addrs)
		names = append(names, name)
	}
	sort.Strings(names)
	for i := 0; len(l.seeds) < maxLearnedSeeds; i++ {
		more := false
		for _, name := range names {
			if addrs := byPool[name]; i < len(addrs) {
				more = true
				if len(l.seeds) < maxLearnedSeeds {
					l.seeds = append(l.seeds, addrs[i])
				}
			}
		}
		if !more {
			break
		}
	}
	return l
}

// tell answers a member of this gateway's pool that asks what the cloud
// pool holds (opLearn).
func (p *pools) tell() poolResp {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cloud == nil {
		return poolResp{Err: fmt.Sprintf("%s is not in the cloud pool now", p.lan.Name())}
	}
	r := poolResp{Seeds: slices.Clone(p.learned.seeds)}
	for name := range p.learned.pools {
		r.Held = append(r.Held, name)
	}
	sort.Strings(r.Held)
	return r
}

// askToLearn starts, every Config.LearnEvery (30 s: a pool's gateways
// rarely die together, and what a member learned a minute ago is as good
// then), one ask of a gateway of this
// peer's pool (learn), unless one is out. p.mu is not held.
func (p *pools) askToLearn(now time.Time) {
	p.mu.Lock()
	if p.learning || now.Sub(p.learnedAt) < p.cfg.LearnEvery {
		p.mu.Unlock()
		return
	}
	p.learning, p.learnedAt = true, now
	k := p.asked
	p.asked++
	p.mu.Unlock()
	go p.learn(k)
}

// learn asks one gateway of this peer's pool what the cloud pool holds —
// the k-th ask, so that each asks another than the last, and one that
// lies or hangs is not the only one heard — and keeps it if it is well
// formed; a failure keeps what it had.
func (p *pools) learn(k int) {
	defer func() {
		p.mu.Lock()
		p.learning = false
		p.mu.Unlock()
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
	resp, err := p.callLAN(ctx, to, poolReq{Op: opLearn, ID: make([]byte, len(QueryID{}))})
	if err != nil {
		return // it is not in the cloud pool yet, or did not answer
	}
	l, err := checkLearned(resp, p.cfg.Pool, p.now())
	if err != nil {
		p.logf("pools: %s told what the cloud pool holds, refused: %v", to, err)
		return
	}
	p.mu.Lock()
	if p.cloud == nil { // a gateway knows better, from the cloud pool itself
		p.learned = l
	}
	p.mu.Unlock()
}

// checkLearned checks what a gateway told (opLearn) and makes it a
// learnedCloud: at most maxLearnedSeeds addresses, each host:port, and
// maxLearnedPools names of at most maxPoolName bytes.
func checkLearned(r poolResp, own string, now time.Time) (learnedCloud, error) {
	l := learnedCloud{pools: map[string]time.Time{}}
	if len(r.Seeds) > maxLearnedSeeds || len(r.Held) > maxLearnedPools {
		return l, fmt.Errorf("%d addresses and %d pools, more than %d and %d", len(r.Seeds), len(r.Held), maxLearnedSeeds, maxLearnedPools)
	}
	for _, s := range r.Seeds {
		host, port, err := net.SplitHostPort(s)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || n <= 0 || n > 65535 || len(s) > 300 {
			return l, fmt.Errorf("%q is not a cloud pool address (HOST:PORT)", s)
		}
	}
	for _, name := range r.Held {
		if name == "" || len(name) > maxPoolName || !utf8.ValidString(name) {
			return l, fmt.Errorf("%q is not a pool's name", name)
		}
		if name != own {
			l.pools[name] = now
		}
	}
	l.seeds = slices.Clone(r.Seeds)
	return l, nil
}
