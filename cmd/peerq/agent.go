package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/logutils"
	"github.com/peerq/peerq/api"
	"github.com/peerq/peerq/internal/durable"
	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/overlay"
	"github.com/peerq/peerq/probe"
	"github.com/peerq/peerq/server"
	"github.com/spf13/cobra"
)

// agentSettings are the agent's settings: the flags, each of which a
// --config file (HCL or JSON, keys named as the flags: config.go) may
// set; the command line wins over the file.
type agentSettings struct {
	Node       string
	Bind       string
	Advertise  string
	Exchange   string
	Join       []string
	Tag        []string
	DataDir    string
	Encrypt    string
	OldKeys    []string
	Round      time.Duration
	MinRound   time.Duration
	API        string
	LogLevel   string
	MaxQueries int
	MaxAsk     int
	AskQueue   int
	// RetryJoin keeps trying --join every RetryInterval (RetryMax times,
	// 0: for ever) instead of failing after JoinTimeout.
	RetryJoin     bool
	RetryInterval time.Duration
	RetryMax      int
	// Export are standing queries whose answers /metrics shows.
	Export []string
	// Pool names this agent's Serf pool in a cloud of pools; CloudJoin
	// are cloud-pool addresses (an agent's gossip port + 2) a gateway
	// joins through.
	Pool      string
	CloudJoin []string
	// TokenGroup, if set, may read the API token (a Prometheus server
	// running as its own user, in that group).
	TokenGroup string
}

// joinTimeout is how long --join tries without --retry-join.
const joinTimeout = 10 * time.Second

// fields maps each setting's flag name to where its value goes, for the
// config file's typed decoding.
func (s *agentSettings) fields() map[string]any {
	return map[string]any{"node": &s.Node, "bind": &s.Bind, "advertise": &s.Advertise, "exchange": &s.Exchange,
		"join": &s.Join, "tag": &s.Tag, "data-dir": &s.DataDir, "encrypt": &s.Encrypt, "old-key": &s.OldKeys, "round": (*jsonDuration)(&s.Round), "min-round": (*jsonDuration)(&s.MinRound),
		"api": &s.API, "log-level": &s.LogLevel, "max-queries": &s.MaxQueries, "max-ask": &s.MaxAsk, "ask-queue": &s.AskQueue,
		"retry-join": &s.RetryJoin, "retry-interval": (*jsonDuration)(&s.RetryInterval), "retry-max": &s.RetryMax, "export": &s.Export,
		"pool": &s.Pool, "cloud-join": &s.CloudJoin, "token-group": &s.TokenGroup}
}

func newAgentCmd() *cobra.Command { return agentCmd(&agentSettings{}) }

// agentCmd is the agent command, its settings in s.
func agentCmd(s *agentSettings) *cobra.Command {
	var configFile string
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
				if err := applyConfigFile(cmd, configFile, s); err != nil {
					return &exitError{exitUsage, err}
				}
			}
			return runAgent(cmd, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.Node, "node", "", "node name, unique in the cluster (default: the one in --data-dir, else the host name)")
	f.StringVar(&s.Bind, "bind", "0.0.0.0:7946", "gossip address, host:port")
	f.StringVar(&s.Advertise, "advertise", "", "gossip address the others reach, if not --bind")
	f.StringVar(&s.Exchange, "exchange", "", "protocol exchange address, host:port (default: --bind's host, its port + 1)")
	f.StringArrayVar(&s.Join, "join", nil, "address of a peer to join (repeatable); the agent fails if it joins no one within 10 s, unless --retry-join")
	f.StringVar(&s.Pool, "pool", "", "this agent's Serf pool in a cloud of pools (default: the cloud is one pool); its 3 gateways join the cloud pool on their gossip port + 2 (docs/AGENT.md)")
	f.StringArrayVar(&s.CloudJoin, "cloud-join", nil, "with --pool: the cloud pool's address of an agent of another pool, HOST:GOSSIP_PORT+2, through which this agent joins the cloud pool when it is a gateway (repeatable)")
	f.BoolVar(&s.RetryJoin, "retry-join", false, "keep trying --join (every --retry-interval, --retry-max times) rather than fail")
	f.DurationVar(&s.RetryInterval, "retry-interval", 30*time.Second, "wait between --retry-join attempts")
	f.IntVar(&s.RetryMax, "retry-max", 0, "attempts of --retry-join before failing (0: for ever)")
	f.StringArrayVar(&s.Tag, "tag", nil, "static tag key=value (repeatable)")
	f.StringArrayVar(&s.Export, "export", nil, "NAME=STATEMENT: a standing aggregate query whose answers /metrics shows as gauges labelled export=\"NAME\", e.g. \"peers_by_region=SELECT region, COUNT(*) FROM peers GROUP BY region EVERY 30s\" (repeatable)")
	f.StringVar(&s.DataDir, "data-dir", "", "directory for the journal, the lease table, the API token and Serf's snapshot")
	f.StringVar(&s.Encrypt, "encrypt", "", "base64 key of 16, 24 or 32 bytes: encrypts gossip and seals exchanges (the same on every agent)")
	f.StringArrayVar(&s.OldKeys, "old-key", nil, "base64 key that still opens gossip and exchanges, during a key rotation (repeatable; docs/SECURITY.md)")
	f.DurationVar(&s.Round, "round", 200*time.Millisecond, "longest gossip round: a peer's next round starts when its exchanges are back, at this at the latest")
	f.DurationVar(&s.MinRound, "min-round", 10*time.Millisecond, "shortest gossip round (bounds the CPU a fast network can take)")
	f.StringVar(&s.API, "api", api.DefaultAddr, "local HTTP API address (keep it on loopback)")
	f.StringVar(&s.TokenGroup, "token-group", "", "a group (name or number) that may read the API token in --data-dir: the file is given to it, mode 0640, e.g. prometheus for a scrape config's credentials_file (docs/AGENT.md)")
	f.StringVar(&configFile, "config", "", "file of settings named as the flags, HCL (FILE.hcl: join = [\"10.0.0.5:7946\"]) or JSON (FILE.json: {\"join\": [\"10.0.0.5:7946\"]}); flags given on the command line win (docs/AGENT.md)")
	f.StringVar(&s.LogLevel, "log-level", "info", "log lines shown (peerq's, Serf's and memberlist's): error, warn, info (with a line per member joined, failed, left or reaped) or debug")
	def := node.DefaultConfig(nil)
	f.IntVar(&s.MaxQueries, "max-queries", def.MaxQueries, "queries this peer takes part in at once (the cloud's: each reaches every peer); beyond, it asks none and joins none: their askers answer busy, retry after N s (exit 5)")
	f.IntVar(&s.MaxAsk, "max-ask", def.MaxAsk, "queries this agent asks at once; more are refused at once: busy, retry after N s (HTTP 429, exit 5)")
	f.IntVar(&s.AskQueue, "ask-queue", def.AskQueue, "queries that may wait for a place beyond --max-ask; more are refused (HTTP 429, exit 5)")
	return cmd
}

func runAgent(cmd *cobra.Command, s *agentSettings) error {
	logs, err := newLevelFilter(cmd.ErrOrStderr(), s.LogLevel)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if s.DataDir == "" {
		return &exitError{exitUsage, errors.New("peerq: --data-dir is required")}
	}
	if err := node.CheckPoolName(s.Pool); err != nil {
		return &exitError{exitUsage, fmt.Errorf("peerq: --pool: %w", err)}
	}
	if len(s.CloudJoin) > 0 && s.Pool == "" {
		return &exitError{exitUsage, errors.New("peerq: --cloud-join needs --pool: a cloud of one pool has no cloud pool")}
	}
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		return &exitError{exitUsage, err}
	}
	name, err := nodeName(s.DataDir, s.Node)
	if err != nil && name == "" {
		return &exitError{exitUsage, err}
	}
	// A data dir that cannot be written does not stop the agent: it says
	// so, and grants nothing until it can (the runtime checks it too).
	warnings := []string{}
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("cannot save the node name in the data dir: %v", err))
	}
	tags := map[string]string{}
	for _, t := range s.Tag {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return &exitError{exitUsage, fmt.Errorf("peerq: --tag %q is not key=value", t)}
		}
		tags[k] = v
	}
	var key []byte
	var oldKeys [][]byte
	if s.Encrypt != "" {
		if key, err = base64.StdEncoding.DecodeString(s.Encrypt); err != nil {
			return &exitError{exitUsage, fmt.Errorf("peerq: --encrypt is not base64: %w", err)}
		}
	}
	for _, k := range s.OldKeys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || key == nil {
			return &exitError{exitUsage, fmt.Errorf("peerq: --old-key needs --encrypt, and base64 (%v)", err)}
		}
		oldKeys = append(oldKeys, b)
	}
	prober, err := probe.New(s.DataDir, time.Now())
	if prober == nil {
		return &exitError{exitUsage, err}
	}
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("cannot store the reliability journal: %v", err))
	}
	defer prober.Close()
	rcfg := node.DefaultConfig(prober.Record)
	rcfg.Round, rcfg.MinRound, rcfg.DataDir, rcfg.Tags, rcfg.MaxQueries = s.Round, s.MinRound, s.DataDir, tags, s.MaxQueries
	rcfg.MaxAsk, rcfg.AskQueue = s.MaxAsk, s.AskQueue
	// peerq's own lines look like Serf's and memberlist's beside them:
	// date, time, level, "peerq:"; the level filter passes them as theirs.
	logger := log.New(logs, "", log.LstdFlags)
	rcfg.Logf = func(format string, args ...any) { logger.Printf("[WARN] peerq: "+format, args...) }
	rcfg.Infof = func(format string, args ...any) { logger.Printf("[INFO] peerq: "+format, args...) }
	snapshot := filepath.Join(s.DataDir, "serf.snapshot")
	if err := durable.Probe(durable.OS(), s.DataDir); err != nil {
		// Serf's snapshot needs a writable file: without it a restart
		// rejoins through --join only.
		warnings = append(warnings, fmt.Sprintf("the data dir cannot be written (%v): this agent grants no lease and owns no subcloud until it can; "+
			"Serf's snapshot is off", err))
		snapshot = ""
	}
	p, err := node.StartPeer(node.PeerConfig{Name: name, Bind: s.Bind, Advertise: s.Advertise, Exchange: s.Exchange, Key: key, OldKeys: oldKeys,
		SnapshotPath: snapshot, LogOutput: logs, Runtime: rcfg, Pool: s.Pool, CloudJoin: s.CloudJoin})
	if err != nil {
		return &exitError{exitUsage, err}
	}
	out := cmd.ErrOrStderr()
	token, err := api.LoadOrCreateToken(s.DataDir)
	if token == "" {
		p.Close()
		return &exitError{exitUsage, err}
	}
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("%v: this run's API token is %s (give it with --token)", err, token))
	} else if s.TokenGroup != "" {
		if err := api.ShareToken(s.DataDir, s.TokenGroup); err != nil {
			p.Close()
			return &exitError{exitUsage, fmt.Errorf("peerq: --token-group: %w", err)}
		}
	}
	scfg := server.DefaultConfig()
	scfg.Addr, scfg.Token, scfg.Logf = s.API, token, rcfg.Logf
	scfg.Version = version
	scfg.Commit, _ = buildCommit()
	srv, err := server.Start(p, scfg)
	if err != nil {
		p.Close()
		return &exitError{exitUsage, err}
	}
	defer srv.Close()
	if err := api.WriteAddr(s.DataDir, srv.Addr()); err != nil {
		warnings = append(warnings, fmt.Sprintf("cannot leave the API address in the data dir (%v): give --api %s to clients", err, srv.Addr()))
	}
	// The exports are checked now (a statement error stops the agent at
	// once) and started once the agent has joined: before, it is alone.
	exports := make([][2]string, len(s.Export))
	named := map[string]bool{}
	for i, e := range s.Export {
		name, stmt := exportName(e)
		if err := node.CheckExportName(name); err != nil || named[name] {
			p.Close()
			if err == nil {
				err = fmt.Errorf("two exports named %q: give each its own name", name)
			}
			return &exitError{exitUsage, fmt.Errorf("peerq: --export: %w", err)}
		}
		named[name] = name != ""
		if _, err := p.CheckExport(stmt); err != nil {
			p.Close()
			return &exitError{exitStatement, fmt.Errorf("peerq: --export: %w", err)}
		}
		exports[i] = [2]string{name, stmt}
	}
	fmt.Fprintf(out, "peerq agent %s: gossip on %s, exchanges on %s, API on %s (token in %s)\n", name,
		p.Addr(), p.ExchangeAddr(), srv.Addr(), filepath.Join(s.DataDir, api.TokenFile))
	for _, w := range warnings {
		fmt.Fprintf(out, "peerq agent %s: WARNING: %s\n", name, w)
	}
	if key == nil {
		fmt.Fprintf(out, "peerq agent %s: WARNING: no --encrypt key: gossip and exchanges travel in clear and are not "+
			"authenticated; any host that reaches these ports can read answers and, posing as a member, change "+
			"reservations. Use it on a trusted network only (docs/SECURITY.md).\n", name)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(s.Join) > 0 {
		// Its own address in a shared --join list, or one given twice, is
		// no peer to meet.
		others := map[string]bool{}
		for _, a := range s.Join {
			if a != p.Addr() && a != s.Bind && a != s.Advertise {
				others[a] = true
			}
		}
		p.Expect(len(others))
		if err := join(ctx, p, s, out); err != nil {
			p.Close()
			return &exitError{exitUsage, err}
		}
		fmt.Fprintf(out, "peerq agent %s: joined, %d peers\n", name, p.Network().Size())
	}
	for _, e := range exports {
		if err := p.Export(e[0], e[1]); err != nil {
			p.Close()
			return &exitError{exitUsage, fmt.Errorf("peerq: --export: %w", err)}
		}
	}
	beat := time.NewTicker(probe.HeartbeatEvery)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "peerq agent %s: leaving\n", name)
			return p.Leave()
		case t := <-beat.C:
			if err := prober.Heartbeat(t); err != nil {
				fmt.Fprintln(out, "peerq agent:", err)
			}
		}
	}
}

// exportName splits --export's NAME=STATEMENT; a statement alone has no
// name (its series are labelled with its text). No statement starts with
// a name and "=", so the two cannot be confused.
func exportName(flag string) (name, statement string) {
	if i := strings.IndexByte(flag, '='); i > 0 {
		if n := strings.TrimSpace(flag[:i]); !strings.ContainsAny(n, " \t\n(") {
			return n, strings.TrimSpace(flag[i+1:])
		}
	}
	return "", flag
}

// join joins through --join: for joinTimeout, or with --retry-join every
// RetryInterval up to RetryMax attempts. Failing, it says what to check.
func join(ctx context.Context, p *node.Peer, s *agentSettings, out io.Writer) error {
	for attempt := 1; ; attempt++ {
		jctx, cancel := context.WithTimeout(ctx, joinTimeout)
		err := p.Join(jctx, s.Join)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !s.RetryJoin || s.RetryMax > 0 && attempt >= s.RetryMax {
			if overlay.Refused(err) {
				// The error says why (another pool, or none): the
				// addresses and the key are right (helper-75).
				return fmt.Errorf("peerq: joined no one of %s: %w — give this agent the --pool of the agents it joins "+
					"(or none, if they have none), or --join agents of its own pool", strings.Join(s.Join, ", "), err)
			}
			return fmt.Errorf("peerq: joined no one of %s: %w — check the addresses, and that every agent has the same "+
				"--encrypt key (a peer with another key cannot decrypt the join); --retry-join keeps trying", strings.Join(s.Join, ", "), err)
		}
		fmt.Fprintf(out, "peerq agent: join attempt %d failed (%v); again in %v\n", attempt, err, s.RetryInterval)
		select {
		case <-time.After(s.RetryInterval):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == name {
		return name, nil // saved already: a read-only data dir does not stop a restart
	}
	return name, os.WriteFile(path, []byte(name+"\n"), 0o644)
}

// newLevelFilter passes on Serf's, memberlist's and peerq's log lines at
// or above a level (hashicorp/logutils; they prefix lines with [DEBUG],
// [INFO], [WARN] or [ERR]). Below debug, Serf's own member event lines
// ("serf: EventMemberJoin: n1 10.0.0.5") are left out: peerq logs each
// join, failure, leave and reap itself with the port and pool, and Serf's
// EventMemberUpdate comes with every lease's tag change.
func newLevelFilter(w io.Writer, level string) (io.Writer, error) {
	min, ok := map[string]logutils.LogLevel{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERR"}[strings.ToLower(level)]
	if !ok {
		return nil, fmt.Errorf("peerq: --log-level %q (expected debug, info, warn or error)", level)
	}
	f := &logutils.LevelFilter{Levels: []logutils.LogLevel{"DEBUG", "INFO", "WARN", "ERR"}, MinLevel: min, Writer: w}
	if min == "DEBUG" {
		return f, nil
	}
	return serfEventsOut{f}, nil
}

// serfEventsOut drops Serf's member event lines. Serf and memberlist
// write one line per Write (the log package's Logger).
type serfEventsOut struct{ w io.Writer }

func (s serfEventsOut) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("] serf: EventMember")) {
		return len(p), nil
	}
	return s.w.Write(p)
}
