package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/overlay"
)

// EmbeddedCloud is the cloud pool of an embedded cluster of pools: the
// gateways' second Serf pool, real Serf on its own in-memory network
// (Cloud, for node.Config).
type EmbeddedCloud struct {
	mem  *overlay.MemNetwork
	size int

	mu      sync.Mutex
	members map[*cloudMember]bool
	joins   int
	// joined counts each peer's joins by its name: a peer not a
	// gateway now may have been one (a busy machine's false failures
	// re-choose a pool's gateways for a while), and ran statements then.
	joined map[string]int
}

// Joined is how many times the peer of that name joined the cloud pool.
func (c *EmbeddedCloud) Joined(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined[name]
}

// NewEmbeddedCloud is an empty cloud pool for about size gateways.
func NewEmbeddedCloud(size int) *EmbeddedCloud {
	return &EmbeddedCloud{mem: overlay.NewMemNetwork(), size: size, members: map[*cloudMember]bool{}, joined: map[string]int{}}
}

// cloudMember is one gateway's overlay in the cloud pool; Shutdown takes
// it out of the cloud's list of seeds.
type cloudMember struct {
	*overlay.Overlay
	c *EmbeddedCloud
}

func (m *cloudMember) Shutdown() error {
	m.c.mu.Lock()
	delete(m.c.members, m)
	m.c.mu.Unlock()
	return m.Overlay.Shutdown()
}

// Join implements Cloud: a new overlay on the cloud's network, joined
// through up to three members already in.
func (c *EmbeddedCloud) Join(ctx context.Context, name, pool string, id *identity.Key, _, _ []string) (CloudNetwork, error) {
	// A gateway that leaves and comes back is a new member under a new
	// name: Serf shuts down the loser of a conflict over a name, and the
	// others remember the old one's address for a while.
	c.mu.Lock()
	c.joins++
	c.joined[name]++
	cloudName := fmt.Sprintf("%s.%s.%d", name, pool, c.joins)
	c.mu.Unlock()
	o, err := overlay.New(overlay.Config{Name: cloudName, Tags: map[string]string{TagPool: pool, TagGateway: name}, Mem: c.mem, ClusterSize: c.size,
		ExchangeTimeout: 2 * time.Second, Identity: id})
	if err != nil {
		return nil, fmt.Errorf("node: the cloud pool: %w", err)
	}
	m := &cloudMember{Overlay: o, c: c}
	c.mu.Lock()
	var seeds []string
	for other := range c.members {
		if len(seeds) == 3 {
			break
		}
		seeds = append(seeds, other.JoinAddr())
	}
	c.members[m] = true
	c.mu.Unlock()
	if len(seeds) > 0 {
		if _, err := o.Join(ctx, seeds); err != nil {
			_ = m.Shutdown()
			return nil, fmt.Errorf("node: joining the cloud pool: %w", err)
		}
	}
	return m, nil
}

// waitPools waits until every member of the cloud pool sees pools pools
// with at least perPool gateways each (fewer when a pool is smaller).
func (c *EmbeddedCloud) waitPools(ctx context.Context, pools, perPool int) error {
	for {
		c.mu.Lock()
		ok := len(c.members) > 0
		for m := range c.members {
			counts := map[string]int{}
			for _, x := range m.Members() {
				counts[x.Tags[TagPool]]++
			}
			full := 0
			for _, n := range counts {
				if n >= perPool {
					full++
				}
			}
			if full < pools {
				ok = false
				break
			}
		}
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: waiting for every pool's gateways in the cloud pool: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *EmbeddedCloud) shutdown() {
	c.mu.Lock()
	ms := make([]*cloudMember, 0, len(c.members))
	for m := range c.members {
		ms = append(ms, m)
	}
	c.mu.Unlock()
	for _, m := range ms {
		_ = m.Shutdown()
	}
}
