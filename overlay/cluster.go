package overlay

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"
)

// Cluster is an embedded cluster: many real Serf peers in one process on
// one MemNetwork.
type Cluster struct {
	Mem   *MemNetwork
	Peers []*Overlay
	cfgs  []Config
	r     *rand.Rand
}

// StartCluster creates one peer per configuration on a new in-memory
// network and joins each to up to three random peers already in, one after
// the other: a join is a full state push-pull with its seeds, and one seed
// for everyone became the bottleneck past a few hundred peers. progress, if
// set, is called after each join with the peers created so far. Serve
// handlers are set by serve before any peer joins.
func StartCluster(ctx context.Context, cfgs []Config, serve func(i int, o *Overlay), progress func(joined int)) (*Cluster, error) {
	c := &Cluster{Mem: NewMemNetwork(), r: rand.New(rand.NewPCG(uint64(len(cfgs)), 7))}
	r := c.r
	for i, cfg := range cfgs {
		cfg.Mem = c.Mem
		if cfg.ClusterSize == 0 {
			cfg.ClusterSize = len(cfgs)
		}
		o, err := New(cfg)
		if err != nil {
			c.Shutdown()
			return nil, err
		}
		if serve != nil {
			serve(i, o)
		}
		c.Peers = append(c.Peers, o)
		c.cfgs = append(c.cfgs, cfg)
		if i > 0 {
			var seeds []string
			for k := 0; k < 3 && k < i; k++ {
				seeds = append(seeds, c.Peers[r.IntN(i)].JoinAddr())
			}
			jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := o.Join(jctx, seeds)
			cancel()
			if err != nil {
				c.Shutdown()
				return nil, fmt.Errorf("overlay: peer %d of %d: %w", i+1, len(cfgs), err)
			}
		}
		if progress != nil {
			progress(i + 1)
		}
	}
	return c, nil
}

// Restart starts peer i again after its overlay was shut down (a crash),
// at its old address, and joins it through up to three random live peers.
// serve is called before it joins, as in StartCluster.
func (c *Cluster) Restart(ctx context.Context, i int, serve func(o *Overlay)) (*Overlay, error) {
	old := c.Peers[i]
	_, port, err := splitHostPort(old.Addr())
	if err != nil {
		return nil, err
	}
	cfg := c.cfgs[i]
	cfg.MemPort = port
	if cfg.Identity != nil {
		// The same key, in a new life: claims made for the old one are
		// refused by the restarted peer.
		if cfg.Identity, err = cfg.Identity.Reborn(crand.Reader); err != nil {
			return nil, err
		}
		c.cfgs[i] = cfg
	}
	o, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if serve != nil {
		serve(o)
	}
	var seeds []string
	for tries := 0; len(seeds) < 3 && tries < 20; tries++ {
		k := c.r.IntN(len(c.Peers))
		if p := c.Peers[k]; k != i && !p.closed() {
			seeds = append(seeds, p.JoinAddr())
		}
	}
	c.Peers[i] = o
	if _, err := o.Join(ctx, seeds); err != nil {
		return o, fmt.Errorf("overlay: restarting peer %d: %w", i+1, err)
	}
	return o, nil
}

// Settled reports how many peers see every peer of the cluster alive.
func (c *Cluster) Settled() int {
	n := 0
	for _, p := range c.Peers {
		if p.Size() == len(c.Peers) {
			n++
		}
	}
	return n
}

// WaitSettled waits until every peer sees all the others, calling progress
// with the count of settled peers as it goes. Once a second, up to
// syncPerSecond of the peers that do not see the whole cluster yet each
// push and pull their state with a random other peer (a Serf join:
// memberlist's push-pull, the anti-entropy it runs on its own every few
// seconds): after the last join, what keeps a large cluster unsettled is
// pairs that gossip missed, waiting for that anti-entropy. 1,000 peers in
// 4 pools (peerq demo --nodes 1000 --pools 4) settled a median of 2.2 s
// after their last join with it, 12.8 s without (BENCHMARKS.md). Only
// while it waits: a settled cluster's push-pulls stay memberlist's.
func (c *Cluster) WaitSettled(ctx context.Context, progress func(settled int)) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	r := rand.New(rand.NewPCG(uint64(len(c.Peers)), 11))
	synced := time.Now()
	for {
		s := c.Settled()
		if progress != nil {
			progress(s)
		}
		if s == len(c.Peers) {
			return nil
		}
		if time.Since(synced) >= time.Second && ctx.Err() == nil {
			c.syncUnsettled(r)
			synced = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("overlay: %d of %d peers settled%s: %w", s, len(c.Peers), c.unsettled(3), ctx.Err())
		case <-tick.C:
		}
	}
}

// syncPerSecond bounds the unsettled peers WaitSettled has push and pull
// their state each second: a few hundred at once, right after the joins,
// would cost what memberlist's own anti-entropy every second did (a
// settled cloud's CPU 2.6 times, BENCHMARKS.md), and the tail it is for
// is a few peers.
const syncPerSecond = 16

// syncUnsettled has up to syncPerSecond random peers that do not see the
// whole cluster push and pull their state with a random other live peer,
// at once, and waits for them. A failed push-pull is no matter: the next
// second tries another. A push-pull with a peer cut off (MemNetwork's
// partitions and loss) waits out memberlist's TCP timeout (TunedConfig: 5
// s), by which a batch under way may hold WaitSettled past its ctx; no
// caller waits for a cluster it has cut.
func (c *Cluster) syncUnsettled(r *rand.Rand) {
	var un []*Overlay
	for _, p := range c.Peers {
		if !p.closed() && p.Size() < len(c.Peers) {
			un = append(un, p)
		}
	}
	r.Shuffle(len(un), func(i, j int) { un[i], un[j] = un[j], un[i] })
	var wg sync.WaitGroup
	for _, p := range un[:min(syncPerSecond, len(un))] {
		q := c.Peers[r.IntN(len(c.Peers))]
		if q == p || q.closed() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Its error is no matter (above): the next second tries another.
			if n, err := p.serf.Join([]string{q.JoinAddr()}, true); err == nil && n > 0 {
				p.refresh()
			}
		}()
	}
	wg.Wait()
}

// unsettled says, for up to max peers that do not see the whole cluster,
// which members they lack and in what state their Serf holds each: what
// one needs to tell a peer that never heard of another from one that
// declared it failed and was not told it lives.
func (c *Cluster) unsettled(max int) string {
	var b strings.Builder
	shown := 0
	for _, p := range c.Peers {
		if p.closed() || p.Size() == len(c.Peers) {
			continue
		}
		if shown == max {
			b.WriteString("; …")
			break
		}
		shown++
		states := map[string]string{}
		for _, m := range p.serf.Members() {
			states[m.Name] = m.Status.String()
			if m.Status == serf.StatusAlive && m.Tags[TagProtocol] == "" {
				states[m.Name] = "alive without peerq's tags"
			}
		}
		var lack []string
		for _, q := range c.Peers {
			if _, ok := p.Member(q.cfg.Name); !ok {
				st := states[q.cfg.Name]
				if st == "" {
					st = "unknown"
				}
				lack = append(lack, q.cfg.Name+" ("+st+")")
			}
		}
		fmt.Fprintf(&b, "; %s sees %d, lacks %s", p.cfg.Name, p.Size(), strings.Join(lack, ", "))
	}
	return b.String()
}

// Shutdown stops every peer, in parallel.
func (c *Cluster) Shutdown() {
	var wg sync.WaitGroup
	for _, p := range c.Peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Shutdown()
		}()
	}
	wg.Wait()
}
