package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
		name, bind, advertise, exchange, dataDir, encrypt, apiAddr, configFile, logLevel string
		joins, tags                                                                      []string
		round                                                                            time.Duration
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
			if configFile != "" {
				if err := applyConfigFile(cmd, configFile); err != nil {
					return &exitError{exitUsage, err}
				}
			}
			logs, err := newLevelWriter(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if dataDir == "" {
				return &exitError{exitUsage, errors.New("peerq: --data-dir is required")}
			}
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				return &exitError{exitUsage, err}
			}
			if name, err = nodeName(dataDir, name); err != nil {
				return &exitError{exitUsage, err}
			}
			ocfg := overlay.DefaultConfig(name)
			ocfg.BindAddr, ocfg.AdvertiseAddr, ocfg.ExchangeAddr = bind, advertise, exchange
			ocfg.SnapshotPath = filepath.Join(dataDir, "serf.snapshot")
			ocfg.LogOutput = logs
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
			cfg.Round, cfg.DataDir = round, dataDir
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
	f.StringVar(&configFile, "config", "", "JSON file of flag values, e.g. {\"bind\": \"0.0.0.0:7946\", \"join\": [\"10.0.0.5:7946\"], \"tag\": [\"region=eu\"]}; flags given on the command line win")
	f.StringVar(&logLevel, "log-level", "warn", "Serf and memberlist logs shown: error, warn, info or debug")
	return cmd
}

func exchangeAddr(n *node.Node) string {
	if m, ok := n.Overlay().Member(n.Name()); ok {
		return m.Exchange
	}
	return "?"
}

// nodeName picks the agent's name: the flag, else the one saved in the
// data dir, else the host name; it is saved so that a restart on the same
// data dir comes back with the same identity.
func nodeName(dataDir, flag string) (string, error) {
	path := filepath.Join(dataDir, "node-name")
	name := flag
	if name == "" {
		if b, err := os.ReadFile(path); err == nil {
			name = strings.TrimSpace(string(b))
		}
	}
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", err
		}
		name = h
	}
	return name, os.WriteFile(path, []byte(name+"\n"), 0o644)
}

// applyConfigFile sets, from a JSON object of flag names, every flag the
// command line did not set.
func applyConfigFile(cmd *cobra.Command, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("peerq: config: %w", err)
	}
	var values map[string]any
	if err := json.Unmarshal(b, &values); err != nil {
		return fmt.Errorf("peerq: config %s: %w", path, err)
	}
	for k, v := range values {
		f := cmd.Flags().Lookup(k)
		if f == nil {
			return fmt.Errorf("peerq: config %s: unknown setting %q", path, k)
		}
		if f.Changed {
			continue
		}
		items := []any{v}
		if list, ok := v.([]any); ok {
			items = list
		}
		for _, it := range items {
			if err := f.Value.Set(fmt.Sprint(it)); err != nil {
				return fmt.Errorf("peerq: config %s: %s: %w", path, k, err)
			}
		}
	}
	return nil
}

// levelWriter passes on the log lines at or above a level. Serf and
// memberlist prefix their lines with [DEBUG], [INFO], [WARN] or [ERR].
type levelWriter struct {
	w   io.Writer
	min int
}

var logLevels = map[string]int{"debug": 0, "info": 1, "warn": 2, "error": 3}

func newLevelWriter(w io.Writer, level string) (*levelWriter, error) {
	min, ok := logLevels[strings.ToLower(level)]
	if !ok {
		return nil, fmt.Errorf("peerq: --log-level %q (expected debug, info, warn or error)", level)
	}
	return &levelWriter{w: w, min: min}, nil
}

func (l *levelWriter) Write(p []byte) (int, error) {
	line := string(p)
	level := 1
	switch {
	case strings.Contains(line, "[DEBUG]"):
		level = 0
	case strings.Contains(line, "[WARN]"):
		level = 2
	case strings.Contains(line, "[ERR]"):
		level = 3
	}
	if level >= l.min {
		return l.w.Write(p)
	}
	return len(p), nil
}
