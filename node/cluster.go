package node

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/query"
)

// Embedded is an embedded cluster: many real Serf peers in one process,
// each with the runtime, on an in-memory network, with synthetic records.
type Embedded struct {
	// Nodes are the peers' runtimes; a restarted peer gets a new one
	// (Restart replaces it under mu: read it so while peers restart).
	Nodes []*Node
	// clusters are the pools' Serf pools (one without Pools); peer i is
	// clusters[at[i].pool].Peers[at[i].j].
	clusters []*overlay.Cluster
	at       []poolSeat
	cloud    *EmbeddedCloud
	records  []*syntheticRecord
	ncfgs    []Config
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex // Nodes and down, while peers restart
	down     map[int]bool
}

// EmbeddedConfig configures an embedded cluster.
type EmbeddedConfig struct {
	Nodes int
	Seed  uint64
	// Freeze keeps the records still; otherwise they drift every second.
	Freeze bool
	// Round is the longest round (node.Config.Round; 0: EmbeddedRound).
	Round time.Duration
	// MinRound is the shortest round (node.Config.MinRound; 0:
	// EmbeddedMinRound, by size and cores).
	MinRound time.Duration
	// OnJoin, if set, is called as peers join (for a progress bar).
	OnJoin func(joined, total int)
	// DataDir, if set, gives each peer its own data dir, DataDir/name: its
	// lease, its owned subclouds and its journal survive a Restart.
	DataDir string
	// Pools, if more than 1, spreads the peers over that many Serf pools
	// (peer i in pool PoolName(i mod Pools)), each on its own in-memory
	// network, with a cloud pool of their gateways on another
	// (pools.go); 0 or 1 is one pool, as before.
	Pools int
}

// tally is the pools' counts of peers joined or settled, summed for a
// progress bar; safe for concurrent use.
type tally struct {
	mu     sync.Mutex
	counts []int
}

func newTally(n int) *tally { return &tally{counts: make([]int, n)} }

// set sets pool k's count and returns the total.
func (t *tally) set(k, v int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts[k] = v
	total := 0
	for _, x := range t.counts {
		total += x
	}
	return total
}

// poolSeat is where a peer of an embedded cluster sits: its pool, and its
// index among that pool's peers.
type poolSeat struct{ pool, j int }

// PoolName is the name of an embedded cluster's pool k.
func PoolName(k int) string { return fmt.Sprintf("pool%d", k) }

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

// SyntheticPeer is synthetic peer i's record and tags for a seed
// (query.Synthetic): its static attributes (region, zone, arch, os,
// class) are Serf tags, not in the record, and its node and addr are the
// network's.
func SyntheticPeer(seed uint64, i int) (query.Record, map[string]string) {
	rec := query.Synthetic(seed, i)
	tags := map[string]string{}
	for _, t := range []string{"region", "zone", "arch", "os", "class"} {
		tags[t] = rec[t].Str
		delete(rec, t)
	}
	delete(rec, "node")
	delete(rec, "addr")
	return rec, tags
}

// StartEmbedded starts the cluster: peer i is query.SyntheticName(i) with
// the record and tags of SyntheticPeer(seed, i).
// It returns once every peer has joined; call WaitSettled to wait until
// every peer sees every other.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	cfg = cfg.withRounds(goruntime.GOMAXPROCS(0))
	pools := max(cfg.Pools, 1)
	e := &Embedded{stop: make(chan struct{}), down: map[int]bool{}, Nodes: make([]*Node, cfg.Nodes), ncfgs: make([]Config, cfg.Nodes),
		at: make([]poolSeat, cfg.Nodes), clusters: make([]*overlay.Cluster, pools)}
	if pools > 1 {
		e.cloud = NewEmbeddedCloud(3 * pools)
	}
	ocfgs := make([][]overlay.Config, pools)
	index := make([][]int, pools) // the peers of each pool
	for i := 0; i < cfg.Nodes; i++ {
		rec, tags := SyntheticPeer(cfg.Seed, i)
		e.records = append(e.records, &syntheticRecord{rec: rec})
		name := query.SyntheticName(i)
		id, err := embeddedIdentity(cfg, name, i)
		if err != nil {
			return nil, err
		}
		k := i % pools
		if pools > 1 {
			tags[TagPool] = PoolName(k)
		}
		e.at[i] = poolSeat{pool: k, j: len(ocfgs[k])}
		// ClusterSize is the whole process's: the pools share its cores,
		// and 2 pools of 250 with the profile of 250 (1 s probes) did
		// not settle in 3 minutes; with that of 500, in 27 s
		// (overlay.TunedConfig). Past 1,000 peers Serf declares a failure
		// only minutes after it; a query's own probes (suspect.go) leave
		// a lost member out of the answer sooner.
		ocfgs[k] = append(ocfgs[k], overlay.Config{Name: name, Tags: tags, ExchangeTimeout: 2 * time.Second, Identity: id, ClusterSize: cfg.Nodes})
		index[k] = append(index[k], i)
	}
	var mu sync.Mutex // startErr, joined, the slices' elements
	var startErr error
	joined := newTally(pools)
	verified := NewSignatureCache() // the peers share a process, and so the signatures they checked
	var wg sync.WaitGroup
	for k := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := overlay.StartCluster(ctx, ocfgs[k], func(j int, o *overlay.Overlay) {
				i := index[k][j]
				ncfg := DefaultConfig(e.records[i].get)
				ncfg.Verified = verified
				ncfg.Round, ncfg.MinRound, ncfg.Seed, ncfg.Tags = cfg.Round, cfg.MinRound, cfg.Seed*1_000_003+uint64(i)+1, ocfgs[k][j].Tags
				// The last 64 membership events each, not 256: the joins
				// alone would fill 200 peers' logs with 40,000 events.
				ncfg.EventLog = 64
				if pools > 1 {
					ncfg.Pool, ncfg.Cloud = PoolName(k), e.cloud
				}
				if cfg.DataDir != "" {
					ncfg.DataDir = filepath.Join(cfg.DataDir, ocfgs[k][j].Name)
					if err := os.MkdirAll(ncfg.DataDir, 0o700); err != nil {
						mu.Lock()
						startErr = errors.Join(startErr, err)
						mu.Unlock()
						return
					}
				}
				n, err := New(ncfg, o)
				mu.Lock()
				defer mu.Unlock()
				e.ncfgs[i] = ncfg
				if err != nil {
					startErr = errors.Join(startErr, err)
					return
				}
				e.Nodes[i] = n
			}, func(j int) {
				total := joined.set(k, j)
				if cfg.OnJoin != nil {
					cfg.OnJoin(total, cfg.Nodes)
				}
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				startErr = errors.Join(startErr, fmt.Errorf("%s: %w", PoolName(k), err))
				return
			}
			e.clusters[k] = c
		}()
	}
	wg.Wait()
	if startErr != nil {
		for _, n := range e.Nodes {
			if n != nil {
				n.Close()
			}
		}
		for _, c := range e.clusters {
			if c != nil {
				c.Shutdown()
			}
		}
		return nil, startErr
	}
	if !cfg.Freeze {
		e.wg.Add(1)
		go e.drift(cfg.Seed)
	}
	return e, nil
}

// withRounds is cfg with the rounds it leaves at 0 set by its size, on
// cores cores: Round by EmbeddedRound, MinRound by EmbeddedMinRound, no
// longer than Round.
func (cfg EmbeddedConfig) withRounds(cores int) EmbeddedConfig {
	if cfg.Round <= 0 {
		cfg.Round = EmbeddedRound(cfg.Nodes)
	}
	if cfg.MinRound <= 0 {
		cfg.MinRound = min(EmbeddedMinRound(cfg.Nodes, cfg.Pools, cores), cfg.Round)
	}
	return cfg
}

// EmbeddedRound is the longest round of an embedded cluster of n peers:
// 100 ms, and 300 ms past 500. The round is how long a peer waits for its
// exchanges before it goes on without them; 1,000 peers in one process on
// 2 cores take longer than 100 ms to answer while a statement runs in
// each of 4 pools, so rounds ended unanswered, the pools' budgets (in
// rounds) ran out, and answers came back partial (BENCHMARKS.md, "Beyond
// one pool").
func EmbeddedRound(n int) time.Duration {
	if n > 500 {
		return 300 * time.Millisecond
	}
	return 100 * time.Millisecond
}

// EmbeddedMinRound is the shortest round of an embedded cluster of n
// peers in pools pools on cores cores: the CPU time the process needs to
// run every peer's round once (embeddedRoundCPU a peer, twice in a cloud
// of pools, where each pool runs a statement once per gateway asked), and
// at least a LAN's (Config.MinRound's default). A shorter round cannot be
// kept by all of them: the peers that get a core run ahead, each of their
// rounds mixes less, and the askers' budgets (in their rounds) run out.
// 1,000 peers in 4 pools on 2 cores, eight COUNTs in a row: with 10 ms,
// 42–47 rounds a pool and 1 answer in 16 partial; with 50 ms, 20–21
// rounds, none partial, and each answer sooner (BENCHMARKS.md, "The
// runtime's CPU an exchange").
func EmbeddedMinRound(n, pools, cores int) time.Duration {
	cpu := time.Duration(n) * embeddedRoundCPU
	if pools > 1 {
		cpu *= 2
	}
	return max(DefaultConfig(nil).MinRound, cpu/time.Duration(max(cores, 1)))
}

// embeddedRoundCPU is what a peer's round costs an embedded cluster's
// process: the exchange it starts, about 40 µs with the other side's
// work and the GC (BenchmarkExchangeCPU), and the rest of its round.
const embeddedRoundCPU = 50 * time.Microsecond

// embeddedIdentity is peer i's key: from its data dir if the cluster has
// one (it survives a Restart), else made from the seed.
func embeddedIdentity(cfg EmbeddedConfig, name string, i int) (*identity.Key, error) {
	if cfg.DataDir != "" {
		dir := filepath.Join(cfg.DataDir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		id, _, err := identity.Open(durable.OS(), dir, crand.Reader)
		return id, err
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], cfg.Seed)
	binary.LittleEndian.PutUint64(seed[8:], uint64(i))
	return identity.New(rand.NewChaCha8(seed))
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
// In a cluster of pools, each pool's peers see their own pool, and every
// pool has its gateways in the cloud pool.
func (e *Embedded) WaitSettled(ctx context.Context, progress func(settled, total int)) error {
	settled := newTally(len(e.clusters))
	var wg sync.WaitGroup
	errs := make([]error, len(e.clusters))
	for k, c := range e.clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = c.WaitSettled(ctx, func(s int) {
				total := settled.set(k, s)
				if progress != nil {
					progress(total, len(e.Nodes))
				}
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if e.cloud == nil {
		return nil
	}
	return e.cloud.waitPools(ctx, len(e.clusters), 3)
}

// Pools is the number of pools (1 without Pools).
func (e *Embedded) Pools() int { return len(e.clusters) }

// PoolOf is peer i's pool.
func (e *Embedded) PoolOf(i int) int { return e.at[i].pool }

// Close stops every peer.
func (e *Embedded) Close() {
	close(e.stop)
	e.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range e.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Close()
		}()
	}
	wg.Wait()
	for _, c := range e.clusters {
		c.Shutdown()
	}
	if e.cloud != nil {
		e.cloud.shutdown()
	}
}

// Kill stops peer i without leaving: the others see it fail.
func (e *Embedded) Kill(i int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if i < 0 || i >= len(e.Nodes) {
		return fmt.Errorf("node: no peer %d", i)
	}
	e.down[i] = true
	at := e.at[i]
	return errors.Join(e.Nodes[i].Close(), e.clusters[at.pool].Peers[at.j].Shutdown())
}

// Down reports whether peer i was killed and not restarted.
func (e *Embedded) Down(i int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.down[i]
}

// Restart starts a killed peer again, at its old address, on its own
// state (its data dir, with DataDir), and joins it to the others.
func (e *Embedded) Restart(ctx context.Context, i int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.down[i] {
		return fmt.Errorf("node: peer %d is not down", i)
	}
	var nerr error
	at := e.at[i]
	_, err := e.clusters[at.pool].Restart(ctx, at.j, func(o *overlay.Overlay) {
		n, err := New(e.ncfgs[i], o)
		if err != nil {
			nerr = err
			return
		}
		e.Nodes[i] = n
	})
	if err = errors.Join(nerr, err); err != nil {
		return err
	}
	delete(e.down, i)
	return nil
}

// ChurnConfig is how an embedded cluster's peers come and go.
type ChurnConfig struct {
	// PerMinute is the share of the peers killed each minute (0.1: 10%).
	PerMinute float64
	// Down is how long a killed peer stays down before it restarts.
	Down time.Duration
	// Spare are peers never killed (the asking peer, owners).
	Spare []int
	Seed  uint64
	// Log, if set, is told of each kill and restart.
	Log func(format string, args ...any)
}

// Churn kills random peers at the configured rate and restarts each after
// Down, on its own state, until ctx ends; then it restarts the peers still
// down and returns.
func (e *Embedded) Churn(ctx context.Context, cfg ChurnConfig) error {
	if cfg.PerMinute <= 0 {
		return errors.New("node: churn needs a positive rate")
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0xc4a2))
	spare := map[int]bool{}
	for _, i := range cfg.Spare {
		spare[i] = true
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	every := time.Duration(float64(time.Minute) / (cfg.PerMinute * float64(len(e.Nodes))))
	tick := time.NewTicker(every)
	defer tick.Stop()
	type pending struct {
		i  int
		at time.Time
	}
	var queue []pending
	restart := func(p pending) {
		rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.Restart(rctx, p.i); err != nil {
			logf("churn: restarting %s: %v", query.SyntheticName(p.i), err)
			return
		}
		logf("churn: restarted %s", query.SyntheticName(p.i))
	}
	for {
		select {
		case <-ctx.Done():
			for _, p := range queue {
				restart(p)
			}
			return nil
		case now := <-tick.C:
			for len(queue) > 0 && !now.Before(queue[0].at) {
				restart(queue[0])
				queue = queue[1:]
			}
			var live []int
			for i := range e.Nodes {
				if !spare[i] && !e.Down(i) {
					live = append(live, i)
				}
			}
			if len(live) == 0 {
				continue
			}
			i := live[r.IntN(len(live))]
			if err := e.Kill(i); err != nil {
				logf("churn: killing %s: %v", query.SyntheticName(i), err)
			}
			logf("churn: killed %s", query.SyntheticName(i))
			queue = append(queue, pending{i, now.Add(cfg.Down)})
		}
	}
}
