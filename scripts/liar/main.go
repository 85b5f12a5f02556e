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
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/probe"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
)

// lied are the attributes the liar exaggerates.
var lied = []string{"cpu_cores", "cpu_load", "mem_free", "disk_free"}

// options are the liar's flags.
type options struct {
	name, bind, exchange, dataDir, join, encrypt, lie string
	pool, cloudJoin, roster                           string
	round                                             time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.name, "node", "", "node name (required)")
	flag.StringVar(&o.bind, "bind", "127.0.0.1:7946", "gossip address")
	flag.StringVar(&o.exchange, "exchange", "", "exchange address (default: the gossip port + 1)")
	flag.StringVar(&o.dataDir, "data-dir", "", "data directory: the identity and the journal (required)")
	flag.StringVar(&o.join, "join", "", "comma-separated addresses to join")
	flag.StringVar(&o.encrypt, "encrypt", "", "the cluster key, base64")
	flag.StringVar(&o.lie, "lie", "inflate", "inflate (its record ×1000 within the catalog's bounds), extreme (at the bounds), selfrank (reliability 1, all else true), or gateway (its record true; as one of its pool's gateways, its pool's partial bent: sums and counts ×1000, a top-k's first row dropped)")
	flag.StringVar(&o.pool, "pool", "", "this peer's pool in a cloud of pools, as peerq agent --pool")
	flag.StringVar(&o.cloudJoin, "cloud-join", "", "with --pool: comma-separated cloud pool addresses of other pools' agents, as peerq agent --cloud-join")
	flag.StringVar(&o.roster, "roster", "", "with --lie gateway, its pool's gateways as its reports name them: alone (itself), made-up (itself and two names that are no gateway), more (its pool's gateways and two made-up names); default: the truth")
	flag.DurationVar(&o.round, "round", 200*time.Millisecond, "gossip round")
	flag.Parse()
	if err := lie(o); err != nil {
		fmt.Fprintln(os.Stderr, "liar:", err)
		os.Exit(1)
	}
}

func lie(o options) error {
	if o.name == "" || o.dataDir == "" {
		return fmt.Errorf("--node and --data-dir are required")
	}
	switch {
	case o.lie != "inflate" && o.lie != "extreme" && o.lie != "selfrank" && o.lie != "gateway":
		return fmt.Errorf("--lie %q: inflate, extreme, selfrank or gateway", o.lie)
	case o.lie == "gateway" && o.pool == "":
		return fmt.Errorf("--lie gateway needs --pool: a gateway is one of a pool's")
	case o.cloudJoin != "" && o.pool == "":
		return fmt.Errorf("--cloud-join needs --pool")
	case o.roster != "" && o.lie != "gateway":
		return fmt.Errorf("--roster needs --lie gateway: a roster is a gateway's report")
	case o.roster != "" && o.roster != "alone" && o.roster != "made-up" && o.roster != "more":
		return fmt.Errorf("--roster %q: alone, made-up or more", o.roster)
	}
	var key []byte
	if o.encrypt != "" {
		var err error
		if key, err = base64.StdEncoding.DecodeString(o.encrypt); err != nil {
			return fmt.Errorf("--encrypt: %w", err)
		}
	}
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return err
	}
	prober, err := probe.New(o.dataDir, time.Now())
	if prober == nil {
		return err
	}
	defer prober.Close()
	cat := query.DefaultCatalog()
	record := func() query.Record {
		r := maps.Clone(prober.Record()) // the prober's own map: lie on a copy, the same lie each time
		switch o.lie {
		case "gateway":
			return r
		case "selfrank":
			r["reliability"] = query.Num(query.KindRatio, 1)
			return r
		}
		for _, a := range lied {
			at, ok := cat.Lookup(a)
			v, has := r[a]
			if !ok || !has {
				continue
			}
			x := at.Max
			if o.lie == "inflate" {
				x = math.Min(1000*math.Max(v.Num, 1), at.Max)
			}
			r[a] = query.Num(v.Kind, x)
		}
		return r
	}
	cfg := node.DefaultConfig(record)
	cfg.Round, cfg.DataDir = o.round, o.dataDir
	var bent atomic.Int64
	if o.lie == "gateway" {
		cfg.BendPartial = func(p *run.Partial) {
			bend(p)
			fmt.Printf("liar %s: bent its pool's partial (%d so far)\n", o.name, bent.Add(1))
		}
		if o.roster != "" {
			var named atomic.Int64
			cfg.BendRoster = func(honest []string) []string {
				r := roster(o.roster, o.name, honest)
				fmt.Printf("liar %s: named %v as its pool's gateways, not %v (%d so far)\n", o.name, r, honest, named.Add(1))
				return r
			}
		}
	}
	pc := node.PeerConfig{Name: o.name, Bind: o.bind, Exchange: o.exchange, Key: key,
		SnapshotPath: filepath.Join(o.dataDir, "serf.snapshot"), LogOutput: io.Discard, Runtime: cfg, Pool: o.pool}
	if o.cloudJoin != "" {
		pc.CloudJoin = strings.Split(o.cloudJoin, ",")
	}
	p, err := node.StartPeer(pc)
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.join != "" {
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.Join(jctx, strings.Split(o.join, ","))
		cancel()
		if err != nil {
			return fmt.Errorf("join %s: %w", o.join, err)
		}
	}
	r := record()
	fmt.Printf("liar %s (%s): gossip on %s, claiming cpu_cores %s, cpu_load %s, mem_free %s; %d peers\n",
		o.name, o.lie, p.Addr(), r["cpu_cores"], r["cpu_load"], r["mem_free"], p.Network().Size())
	<-ctx.Done()
	return p.Leave()
}

// bend is a lying gateway's lie about its pool (--lie gateway): every
// sum and count ×1000 (a share of members with a value, a mean), a
// top-k's first row dropped — what node's tests call inflate, larger.
// roster is the lie a gateway named self tells about its pool's
// gateways (honest: as its pool lists them): itself alone, itself and two
// made-up names, or every gateway and two made-up names. Each would make its
// report a majority of the roster it names, if the asker took it
// (node/pools.go, current).
func roster(lie, self string, honest []string) []string {
	madeUp := []string{self + "-made-up-1", self + "-made-up-2"}
	switch lie {
	case "alone":
		return []string{self}
	case "made-up":
		return append([]string{self}, madeUp...)
	}
	return append(slices.Clone(honest), madeUp...)
}

func bend(p *run.Partial) {
	for _, g := range p.Groups {
		for i := range g.Means {
			g.Means[i] *= 1000
		}
	}
	if len(p.Top) > 0 {
		p.Top = p.Top[1:]
	}
}
