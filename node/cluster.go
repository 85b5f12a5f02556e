package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/query"
)

// Embedded is an embedded cluster: many real Serf peers in one process,
// each with the runtime, on an in-memory network, with synthetic records.
type Embedded struct {
	Nodes   []*Node
	cluster *overlay.Cluster
	records []*syntheticRecord
	stop    chan struct{}
	wg      sync.WaitGroup
}

// EmbeddedConfig configures an embedded cluster.
type EmbeddedConfig struct {
	Nodes int
	Seed  uint64
	// Freeze keeps the records still; otherwise they drift every second.
	Freeze bool
	Round  time.Duration
	// MinRound is the shortest round (node.Config.MinRound; 0: its default).
	MinRound time.Duration
	// OnJoin, if set, is called as peers join (for a progress bar).
	OnJoin func(joined, total int)
}

// syntheticRecord is one demo peer's record: query.Synthetic, drifting.
type syntheticRecord struct {
	mu  sync.Mutex
	rec query.Record
}

func (s *syntheticRecord) get() query.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(query.Record, len(s.rec))
	for k, v := range s.rec {
		out[k] = v
	}
	return out
}

// staticTags are the synthetic attributes that are Serf tags.
var staticTags = []string{"region", "zone", "arch", "os", "class"}

// StartEmbedded starts the cluster: peer i is query.SyntheticName(i) with
// the record query.Synthetic(seed, i), its static attributes as Serf tags.
// It returns once every peer has joined; call WaitSettled to wait until
// every peer sees every other.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Round <= 0 {
		cfg.Round = 100 * time.Millisecond
	}
	e := &Embedded{stop: make(chan struct{})}
	var ocfgs []overlay.Config
	for i := 0; i < cfg.Nodes; i++ {
		rec := query.Synthetic(cfg.Seed, i)
		tags := map[string]string{}
		for _, t := range staticTags {
			tags[t] = rec[t].Str
			delete(rec, t)
		}
		delete(rec, "node")
		delete(rec, "addr")
		e.records = append(e.records, &syntheticRecord{rec: rec})
		ocfgs = append(ocfgs, overlay.Config{Name: query.SyntheticName(i), Tags: tags, ExchangeTimeout: 2 * time.Second})
	}
	var startErr error
	c, err := overlay.StartCluster(ctx, ocfgs, func(i int, o *overlay.Overlay) {
		ncfg := DefaultConfig(e.records[i].get)
		ncfg.Round, ncfg.MinRound, ncfg.Seed, ncfg.Tags = cfg.Round, cfg.MinRound, cfg.Seed*1_000_003+uint64(i)+1, ocfgs[i].Tags
		n, err := New(ncfg, o)
		if err != nil {
			startErr = errors.Join(startErr, err)
			return
		}
		e.Nodes = append(e.Nodes, n)
	}, func(joined int) {
		if cfg.OnJoin != nil {
			cfg.OnJoin(joined, cfg.Nodes)
		}
	})
	if err == nil && startErr != nil {
		c.Shutdown()
		err = startErr
	}
	if err != nil {
		for _, n := range e.Nodes {
			n.Close()
		}
		return nil, err
	}
	e.cluster = c
	if !cfg.Freeze {
		e.wg.Add(1)
		go e.drift(cfg.Seed)
	}
	return e, nil
}

// drift moves every record once a second, as machines' load and free
// memory move.
func (e *Embedded) drift(seed uint64) {
	defer e.wg.Done()
	r := rand.New(rand.NewPCG(seed, 0xd1f7))
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			for _, s := range e.records {
				s.mu.Lock()
				query.Drift(s.rec, r, 1)
				s.mu.Unlock()
			}
		}
	}
}

// WaitSettled waits until every peer sees every other alive.
func (e *Embedded) WaitSettled(ctx context.Context, progress func(settled, total int)) error {
	return e.cluster.WaitSettled(ctx, func(s int) {
		if progress != nil {
			progress(s, len(e.Nodes))
		}
	})
}

// Records returns every live peer's current record as the peers
// themselves would report it: the test oracle.
func (e *Embedded) Records() []query.Record {
	var out []query.Record
	for _, n := range e.Nodes {
		if !n.closed() {
			out = append(out, n.record())
		}
	}
	return out
}

// Close stops every peer.
func (e *Embedded) Close() {
	close(e.stop)
	e.wg.Wait()
	var wg sync.WaitGroup
	for _, n := range e.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Close()
		}()
	}
	wg.Wait()
	e.cluster.Shutdown()
}

// Cluster is the overlays of the peers, in the order of Nodes.
func (e *Embedded) Cluster() *overlay.Cluster { return e.cluster }

// Kill stops peer i without leaving: the others see it fail.
func (e *Embedded) Kill(i int) error {
	if i < 0 || i >= len(e.Nodes) {
		return fmt.Errorf("node: no peer %d", i)
	}
	return errors.Join(e.Nodes[i].Close(), e.cluster.Peers[i].Shutdown())
}
