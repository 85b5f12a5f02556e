package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/overlay"
	"github.com/spf13/cobra"
)

func newAgentCmd() *cobra.Command {
	var (
		name, bind, advertise, exchange, dataDir, encrypt, apiAddr string
		joins, tags                                                []string
		round                                                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "agent --data-dir DIR [--bind 0.0.0.0:7946] [--join ADDR]... [--tag k=v]...",
		Short: "Run one real peer over real sockets",
		Long: `agent runs one peer: Serf membership and gossip on --bind (UDP and TCP), the protocol
exchanges on --exchange (TCP, advertised in a Serf tag), its machine probed with gopsutil, its
reliability kept in a journal in --data-dir. SIGINT or SIGTERM leaves the cluster gracefully.
The local HTTP API (docs/API.md) listens on --api with a token written to --data-dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return &exitError{exitUsage, errors.New("peerq: --data-dir is required")}
			}
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				return &exitError{exitUsage, err}
			}
			if name == "" {
				h, err := os.Hostname()
				if err != nil {
					return &exitError{exitUsage, err}
				}
				name = h
			}
			ocfg := overlay.DefaultConfig(name)
			ocfg.BindAddr, ocfg.AdvertiseAddr, ocfg.ExchangeAddr = bind, advertise, exchange
			ocfg.SnapshotPath = filepath.Join(dataDir, "serf.snapshot")
			ocfg.Tags = map[string]string{}
			for _, t := range tags {
				k, v, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return &exitError{exitUsage, fmt.Errorf("peerq: --tag %q is not key=value", t)}
				}
				ocfg.Tags[k] = v
			}
			if encrypt != "" {
				key, err := base64.StdEncoding.DecodeString(encrypt)
				if err != nil {
					return &exitError{exitUsage, fmt.Errorf("peerq: --encrypt is not base64: %w", err)}
				}
				ocfg.Key = key
			}
			prober, err := node.NewProber(dataDir, time.Now())
			if err != nil {
				return &exitError{exitUsage, err}
			}
			defer prober.Close()
			cfg := node.DefaultConfig(ocfg, prober.Record)
			cfg.Round = round
			n, err := node.New(cfg)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			out := cmd.ErrOrStderr()
			token, err := node.LoadOrCreateToken(dataDir)
			if err != nil {
				n.Close()
				return &exitError{exitUsage, err}
			}
			api, err := n.ServeAPI(apiAddr, token)
			if err != nil {
				n.Close()
				return &exitError{exitUsage, err}
			}
			defer api.Close()
			fmt.Fprintf(out, "peerq agent %s: gossip on %s, exchanges on %s, API on %s (token in %s)\n", name,
				n.Overlay().Addr(), exchangeAddr(n), api.Addr(), filepath.Join(dataDir, node.TokenFile))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if len(joins) > 0 {
				if err := n.Join(ctx, joins); err != nil {
					n.Close()
					return &exitError{exitUsage, err}
				}
				fmt.Fprintf(out, "peerq agent %s: joined, %d peers\n", name, n.Overlay().Size())
			}
			beat := time.NewTicker(node.HeartbeatEvery)
			defer beat.Stop()
			for {
				select {
				case <-ctx.Done():
					fmt.Fprintf(out, "peerq agent %s: leaving\n", name)
					return n.Leave()
				case t := <-beat.C:
					if err := prober.Heartbeat(t); err != nil {
						fmt.Fprintln(out, "peerq agent:", err)
					}
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "node", "", "node name, unique in the cluster (default: the host name)")
	f.StringVar(&bind, "bind", "0.0.0.0:7946", "gossip address, host:port")
	f.StringVar(&advertise, "advertise", "", "gossip address the others reach, if not --bind")
	f.StringVar(&exchange, "exchange", "0.0.0.0:7947", "protocol exchange address, host:port")
	f.StringArrayVar(&joins, "join", nil, "address of a peer to join (repeatable; retried with backoff)")
	f.StringArrayVar(&tags, "tag", nil, "static tag key=value (repeatable)")
	f.StringVar(&dataDir, "data-dir", "", "directory for the journal and Serf's snapshot")
	f.StringVar(&encrypt, "encrypt", "", "base64 key of 16, 24 or 32 bytes: encrypts gossip, authenticates exchanges")
	f.DurationVar(&round, "round", 200*time.Millisecond, "gossip round")
	f.StringVar(&apiAddr, "api", "127.0.0.1:7474", "local HTTP API address (keep it on loopback)")
	return cmd
}

func exchangeAddr(n *node.Node) string {
	if m, ok := n.Overlay().Member(n.Name()); ok {
		return m.Exchange
	}
	return "?"
}
