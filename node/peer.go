package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/peerq/peerq/identity"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/overlay"
)

// PeerConfig configures a real peer: Serf on sockets, the exchange
// listener, and the runtime.
type PeerConfig struct {
	// Name is the node name, unique in the cluster.
	Name string
	// Bind is the gossip address (UDP and TCP), Advertise the one others
	// reach if not Bind, Exchange the exchange listener's address; port 0
	// takes any free port.
	Bind, Advertise, Exchange string
	// Key (16, 24 or 32 bytes), if set, encrypts gossip and seals
	// exchanges; OldKeys open them too, during a key rotation.
	Key     []byte
	OldKeys [][]byte
	// SnapshotPath lets a restarted peer rejoin those it knew.
	SnapshotPath string
	// LogOutput receives Serf's and memberlist's logs; nil discards them.
	LogOutput io.Writer
	// Local tunes memberlist for peers on one host (loopback tests):
	// shorter probes and timeouts than the LAN profile.
	Local bool
	// ClusterSize tunes memberlist, with Local, for that many peers in one
	// process (overlay.TunedConfig); 0 is 8.
	ClusterSize int
	// ExchangePool is overlay.Config's: idle connections kept per peer
	// (0 the default, -1 none).
	ExchangePool int
	// Runtime is the runtime's configuration; its Tags are the peer's
	// static tags.
	Runtime Config
	// Pool, if set, makes this peer's Serf pool one pool of a cloud of
	// pools (Runtime.Pool; pools.go). While it is a gateway it is also a
	// member of the cloud pool on its gossip port + 2 (exchanges + 3),
	// joined through the other gateways of its pool and CloudJoin:
	// addresses of agents' cloud ports (host:port+2), any of which may be
	// a gateway now.
	Pool      string
	CloudJoin []string
}

// Peer is a running real peer: its overlay and its runtime.
type Peer struct {
	*Node
	ov *overlay.Overlay
}

// StartPeer creates the peer's overlay on its sockets and starts its
// runtime. It joins no one yet.
func StartPeer(cfg PeerConfig) (*Peer, error) { return startPeer(cfg, nil) }

// startPeer is StartPeer with the runtime's network wrapped by wrap, if
// set: a test's lying peer on real sockets (its wire rewritten).
func startPeer(cfg PeerConfig, wrap func(Network) Network) (*Peer, error) {
	ocfg := overlay.DefaultConfig(cfg.Name)
	if cfg.Bind != "" {
		ocfg.BindAddr = cfg.Bind
	}
	if cfg.Exchange != "" {
		ocfg.ExchangeAddr = cfg.Exchange
	}
	ocfg.AdvertiseAddr, ocfg.Key, ocfg.OldKeys, ocfg.SnapshotPath, ocfg.LogOutput = cfg.Advertise, cfg.Key, cfg.OldKeys, cfg.SnapshotPath, cfg.LogOutput
	// The tags pool and gateway are peerq's own, with --pool or without:
	// a peer of a cloud of one pool tagged pool=a was admitted to pool a
	// and took a gateway's place there that it never served.
	tags := map[string]string{}
	for k, v := range cfg.Runtime.Tags {
		if k == TagPool || k == TagGateway {
			return nil, fmt.Errorf("node: the tag %q is peerq's own (--pool sets pool; gateway marks the cloud pool's members)", k)
		}
		tags[k] = v
	}
	if cfg.Pool != "" {
		tags[TagPool] = cfg.Pool
		cfg.Runtime.Pool = cfg.Pool
	}
	cfg.Runtime.Tags = tags
	ocfg.Tags = cfg.Runtime.Tags
	if cfg.Local {
		ocfg.Memberlist = overlay.TunedConfig(max(cfg.ClusterSize, 8))
	}
	ocfg.ExchangePool = cfg.ExchangePool
	// Both ways: a cloud of one pool admits no member of a pool, as a
	// pool admits none of another or of none. Admitted one way only, an
	// agent restarted with --pool counted the old cloud's members, which
	// did not count it, and both answered exact (and a cloud of one pool
	// has no cloud pool through which the two could meet).
	ocfg.Admit = func(tags map[string]string) error { return poolMember(cfg.Pool, tags) }
	// The identity first: the overlay shows it in the peer's tags and
	// seals every exchange with it.
	if cfg.Runtime.Identity == nil {
		fsys := cfg.Runtime.FS
		if fsys == nil {
			fsys = durable.OS()
		}
		var id *identity.Key
		var note string
		var err error
		if cfg.Runtime.DataDir == "" {
			// A peer without a data dir (tests): an identity for this
			// process only.
			id, err = identity.New(rand.Reader)
		} else {
			id, note, err = identity.Open(fsys, cfg.Runtime.DataDir, rand.Reader)
		}
		switch {
		case errors.Is(err, identity.ErrEphemeral) && cfg.Runtime.Logf != nil:
			cfg.Runtime.Logf("%v: this peer's identity lasts until it stops", err)
		case errors.Is(err, identity.ErrEphemeral):
		case err != nil:
			return nil, fmt.Errorf("node: %w", err)
		}
		if note != "" && cfg.Runtime.Logf != nil {
			cfg.Runtime.Logf("%s", note)
		}
		cfg.Runtime.Identity = id
	}
	ocfg.Identity, ocfg.Logf = cfg.Runtime.Identity, cfg.Runtime.Logf
	ocfg.Clock = cfg.Runtime.Clock // the exchanges' times are the runtime's (nil: time.Now)
	ov, err := overlay.New(ocfg)
	if err != nil {
		return nil, err
	}
	if cfg.Pool != "" {
		cfg.Runtime.Cloud = &socketCloud{cfg: cfg, lan: ov}
	}
	var nw Network = ov
	if wrap != nil {
		nw = wrap(ov)
	}
	n, err := New(cfg.Runtime, nw)
	if err != nil {
		return nil, errors.Join(err, ov.Shutdown())
	}
	return &Peer{Node: n, ov: ov}, nil
}

// Join joins the cluster through the seeds, retrying until ctx ends.
func (p *Peer) Join(ctx context.Context, seeds []string) error {
	_, err := p.ov.Join(ctx, seeds)
	return err
}

// Expect says the peer is to join n seeds: until it meets a member, its
// answers over the peers are partial, saying so (overlay.Expect). An
// agent with --retry-join serves while it tries them, and answered exact
// over itself while every try was refused.
func (p *Peer) Expect(n int) { p.ov.Expect(n) }

// Addr is the peer's gossip address, for others to join.
func (p *Peer) Addr() string { return p.ov.Addr() }

// ExchangeAddr is the address of the peer's exchange listener.
func (p *Peer) ExchangeAddr() string {
	if m, ok := p.ov.Member(p.Name()); ok {
		return m.Exchange
	}
	return ""
}

// Leave leaves the cluster gracefully (the others see "left", not
// "failed"), then stops.
func (p *Peer) Leave() error {
	err := p.ov.Leave()
	return errors.Join(err, p.Close())
}

// Close stops the runtime and shuts the overlay down without leaving.
func (p *Peer) Close() error {
	return errors.Join(p.Node.Close(), p.ov.Shutdown())
}

// poolMember admits to pool's Serf only members of pool that are not
// gateways' members of the cloud pool: a pool and the cloud pool share
// the cluster key and a host's ports (the cloud's at the gossip port + 2),
// so a cloud seed that is another agent's pool address would otherwise
// make the two one cluster — the pool would count the cloud's members and
// take them for its gateways. pool "" is a cloud of one pool (no
// --pool), which admits no member of a pool.
func poolMember(pool string, tags map[string]string) error {
	switch {
	case tags[TagGateway] != "":
		return fmt.Errorf("a member of the cloud pool (gateway %s of pool %s), not of %s", tags[TagGateway], tags[TagPool], poolPhrase(pool))
	case tags[TagPool] != pool:
		return fmt.Errorf("a member of %s, not of %s (a cloud's agents are all given --pool or none is)", poolPhrase(tags[TagPool]), poolPhrase(pool))
	}
	return nil
}

// poolPhrase names pool in a sentence: "pool a", or for "" a cloud of
// one pool.
func poolPhrase(pool string) string {
	if pool == "" {
		return "a cloud of one pool (no --pool)"
	}
	return "pool " + pool
}

// cloudMemberTags admits to the cloud pool only gateways' members of it.
func cloudMemberTags(tags map[string]string) error {
	if tags[TagGateway] == "" || tags[TagPool] == "" {
		return fmt.Errorf("a member of pool %q's own Serf, not of the cloud pool", tags[TagPool])
	}
	return nil
}

// socketCloud joins a gateway to the cloud pool over sockets: a second
// Serf on the peer's gossip port + 2 (memberlist's WAN profile, as
// Consul's servers' WAN pool), its exchanges on port + 3.
type socketCloud struct {
	cfg   PeerConfig
	lan   *overlay.Overlay
	joins atomic.Int64
}

// cloudPort is the cloud pool's gossip address of the peer whose pool
// gossip address is addr.
func cloudPort(addr string, plus int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p+plus)), nil
}

func (c *socketCloud) Join(ctx context.Context, name, pool string, id *identity.Key, gateways, learned []string) (CloudNetwork, error) {
	first := len(gateways) == 0 || Gateways(c.lan.Members(), len(gateways)+1)[0] == name
	lan := c.lan.Addr()
	adv, err := cloudPort(lan, 2)
	if err != nil {
		return nil, err
	}
	ocfg := overlay.DefaultConfig(fmt.Sprintf("%s.%s.%d", name, pool, c.joins.Add(1)))
	_, advPort, _ := net.SplitHostPort(adv)
	host := "0.0.0.0"
	if c.cfg.Bind != "" {
		host, _, _ = net.SplitHostPort(c.cfg.Bind)
	}
	ocfg.BindAddr = net.JoinHostPort(host, advPort)
	if ocfg.ExchangeAddr, err = cloudPort(ocfg.BindAddr, 1); err != nil {
		return nil, err
	}
	if c.cfg.Advertise != "" {
		ocfg.AdvertiseAddr = adv
	}
	ocfg.Key, ocfg.OldKeys, ocfg.LogOutput, ocfg.Identity, ocfg.Logf = c.cfg.Key, c.cfg.OldKeys, c.cfg.LogOutput, id, c.cfg.Runtime.Logf
	ocfg.Clock = c.cfg.Runtime.Clock
	ocfg.Tags = map[string]string{TagPool: pool, TagGateway: name}
	ocfg.Admit = cloudMemberTags
	if c.cfg.Local {
		ocfg.Memberlist = overlay.TunedConfig(max(c.cfg.ClusterSize, 8))
	} else {
		ocfg.Memberlist = overlay.WANConfig()
	}
	o, err := overlay.New(ocfg)
	if err != nil {
		return nil, fmt.Errorf("node: the cloud pool: %w", err)
	}
	seeds := c.seeds(gateways, adv)
	var tried []string // learned addresses: one at a time, each only if all before failed
	for _, a := range learned {
		if a != adv && !slices.Contains(seeds, a) && !slices.Contains(tried, a) {
			tried = append(tried, a)
		}
	}
	m := &socketMember{Overlay: o, c: c, name: name, adv: adv}
	if len(seeds) == 0 && len(tried) == 0 {
		return m, nil // the first gateway of the cloud: the others join it
	}
	var joinErr error
	if len(seeds) > 0 {
		jctx := ctx
		if first {
			// Alone it starts the cloud pool and heals into the others
			// later (Heal): its pool waits for no longer than one join's
			// try. It waited for the caller's 30 s, and its pool's
			// statements failed meanwhile.
			var cancel context.CancelFunc
			jctx, cancel = context.WithTimeout(ctx, firstJoinWait)
			defer cancel()
		}
		if _, joinErr = o.Join(jctx, seeds); joinErr == nil {
			return m, nil
		}
	}
	// What its pool's gateways told it (learn.go), after the addresses it
	// was given and its pool's gateways: a learned address that stalls —
	// a liar's, or a host gone — holds up no join that could do without
	// it (Serf visits seeds one at a time, each for up to its TCP
	// timeout).
	for _, a := range tried {
		_, err := o.Join(ctx, []string{a})
		if err == nil {
			return m, nil
		}
		joinErr = errors.Join(joinErr, err)
	}
	if first {
		// Its pool's first gateway starts the cloud pool alone when
		// nobody is there yet; Heal merges it with the others later
		// (pools.noteAlone logs it if that lasts).
		return m, nil
	}
	return nil, errors.Join(fmt.Errorf("node: joining the cloud pool through %v and %d learned address(es): %w", seeds, len(tried), joinErr), o.Shutdown())
}

// seeds are the cloud pool addresses a gateway joins and heals through,
// other than its own (adv): --cloud-join's, and those of its pool's other
// gateways (their pool gossip addresses + 2).
func (c *socketCloud) seeds(gateways []string, adv string) []string {
	seeds := slices.Clone(c.cfg.CloudJoin)
	for _, g := range gateways {
		if a, err := cloudPort(g, 2); err == nil && a != adv && !slices.Contains(seeds, a) {
			seeds = append(seeds, a)
		}
	}
	return slices.DeleteFunc(seeds, func(s string) bool { return s == adv })
}

// firstJoinWait is how long its pool's first gateway tries the cloud
// pool's seeds before it starts the cloud pool alone.
const firstJoinWait = 5 * time.Second

// Seeds are the cloud pool's addresses this agent was given (--cloud-join):
// other pools are expected there (pools.cutOff).
func (c *socketCloud) Seeds() []string { return c.cfg.CloudJoin }

// socketMember is a gateway's overlay in the cloud pool.
type socketMember struct {
	*overlay.Overlay
	c    *socketCloud
	name string // its name in its pool
	adv  string // its address in the cloud pool
}

// Heal joins the seeds again — --cloud-join's and its pool's gateways'
// now, and learned (pools.tend gives one it learned while the cloud pool
// holds no other pool) — so that two gateways that each started the
// cloud pool alone (their pools formed at once) become one pool, as
// memberlist merges the states of any two members that join. The seeds
// are read anew each time: a gateway that started alone, its pool's
// others not yet known, healed through nobody, for good. A failure is
// for the next heal to mend; that the cloud pool holds no other pool is
// what tells (pools.noteAlone), not whether a seed answered — the seeds
// include the pool's own gateways.
func (m *socketMember) Heal(ctx context.Context, learned []string) {
	k := m.c.cfg.Runtime.Gateways
	if k <= 0 {
		k = DefaultConfig(nil).Gateways
	}
	var gws []string
	for _, g := range Gateways(m.c.lan.Members(), k) {
		if mem, ok := m.c.lan.Member(g); ok && g != m.name {
			gws = append(gws, mem.Addr)
		}
	}
	seeds := m.c.seeds(gws, m.adv)
	for _, a := range learned {
		if a != m.adv && !slices.Contains(seeds, a) {
			seeds = append(seeds, a)
		}
	}
	if len(seeds) > 0 {
		_, _ = m.Join(ctx, seeds)
	}
}
