package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/probe"
	"github.com/peerq/peerq/query"
)

// lied are the attributes the liar exaggerates.
var lied = []string{"cpu_cores", "cpu_load", "mem_free", "disk_free"}

func main() {
	var (
		name     = flag.String("node", "", "node name (required)")
		bind     = flag.String("bind", "127.0.0.1:7946", "gossip address")
		exchange = flag.String("exchange", "", "exchange address (default: the gossip port + 1)")
		dataDir  = flag.String("data-dir", "", "data directory: the identity and the journal (required)")
		join     = flag.String("join", "", "comma-separated addresses to join")
		encrypt  = flag.String("encrypt", "", "the cluster key, base64")
		lie      = flag.String("lie", "inflate", "inflate (×1000 within the catalog's bounds) or extreme (the bounds)")
		round    = flag.Duration("round", 200*time.Millisecond, "gossip round")
	)
	flag.Parse()
	if err := run(*name, *bind, *exchange, *dataDir, *join, *encrypt, *lie, *round); err != nil {
		fmt.Fprintln(os.Stderr, "liar:", err)
		os.Exit(1)
	}
}

func run(name, bind, exchange, dataDir, join, encrypt, lie string, round time.Duration) error {
	if name == "" || dataDir == "" {
		return fmt.Errorf("--node and --data-dir are required")
	}
	if lie != "inflate" && lie != "extreme" {
		return fmt.Errorf("--lie %q: inflate or extreme", lie)
	}
	var key []byte
	if encrypt != "" {
		var err error
		if key, err = base64.StdEncoding.DecodeString(encrypt); err != nil {
			return fmt.Errorf("--encrypt: %w", err)
		}
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	prober, err := probe.New(dataDir, time.Now())
	if prober == nil {
		return err
	}
	defer prober.Close()
	cat := query.DefaultCatalog()
	record := func() query.Record {
		r := maps.Clone(prober.Record()) // the prober's own map: lie on a copy, the same lie each time
		for _, a := range lied {
			at, ok := cat.Lookup(a)
			v, has := r[a]
			if !ok || !has {
				continue
			}
			x := at.Max
			if lie == "inflate" {
				x = math.Min(1000*math.Max(v.Num, 1), at.Max)
			}
			r[a] = query.Num(v.Kind, x)
		}
		return r
	}
	cfg := node.DefaultConfig(record)
	cfg.Round, cfg.DataDir = round, dataDir
	p, err := node.StartPeer(node.PeerConfig{Name: name, Bind: bind, Exchange: exchange, Key: key,
		SnapshotPath: filepath.Join(dataDir, "serf.snapshot"), LogOutput: io.Discard, Runtime: cfg})
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if join != "" {
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.Join(jctx, strings.Split(join, ","))
		cancel()
		if err != nil {
			return fmt.Errorf("join %s: %w", join, err)
		}
	}
	r := record()
	fmt.Printf("liar %s (%s): gossip on %s, claiming cpu_cores %s, cpu_load %s, mem_free %s; %d peers\n",
		name, lie, p.Addr(), r["cpu_cores"], r["cpu_load"], r["mem_free"], p.Network().Size())
	<-ctx.Done()
	return p.Leave()
}
