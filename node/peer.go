package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

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
	ocfg.Tags = cfg.Runtime.Tags
	if cfg.Local {
		ocfg.Memberlist = overlay.TunedConfig(max(cfg.ClusterSize, 8))
	}
	ocfg.ExchangePool = cfg.ExchangePool
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
