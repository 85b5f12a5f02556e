package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/peerq/peerq/internal/profile"
	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/shell"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newDemoCmd() *cobra.Command {
	var (
		cfg            = node.EmbeddedConfig{Nodes: 200, Seed: 1, Round: 100 * time.Millisecond}
		expr, file     string
		format         shell.Format
		settleTimout   time.Duration
		allowPartial   bool
		allowContested bool
		churn          string
		churnDown      time.Duration
		epochs         int
		cpuProfile     string
		memProfile     string
	)
	cmd := &cobra.Command{
		Use:   "demo [--nodes 200] [-e STATEMENT | -f FILE]",
		Short: "Start an embedded cluster of real Serf peers in this process and query it",
		Long: `demo starts an embedded cluster: --nodes real Serf peers in one process over an in-memory
network, each with a synthetic machine (phone, laptop, desktop or home server; the same seed gives
the same machines), and answers statements by gossip. With -e or -f it runs the statements and
exits; otherwise it reads statements, ended by ';', from standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Nodes < 2 {
				return &exitError{exitUsage, errors.New("peerq: --nodes must be at least 2")}
			}
			if cfg.Pools < 1 || cfg.Pools > cfg.Nodes {
				return &exitError{exitUsage, fmt.Errorf("peerq: --pools %d: want 1 to --nodes (%d)", cfg.Pools, cfg.Nodes)}
			}
			if !cmd.Flags().Changed("round") {
				cfg.Round = 0 // node.EmbeddedRound: by size
			}
			if !cmd.Flags().Changed("min-round") {
				cfg.MinRound = 0 // node.EmbeddedMinRound: by size and cores
			}
			var rate float64
			if churn != "" {
				var err error
				if rate, err = parseChurnRate(churn); err != nil {
					return &exitError{exitUsage, err}
				}
				if cfg.DataDir == "" {
					// Restarted peers come back on their own state.
					dir, err := os.MkdirTemp("", "peerq-demo-")
					if err != nil {
						return &exitError{exitUsage, err}
					}
					defer os.RemoveAll(dir)
					cfg.DataDir = dir
				}
			}
			var src, name string
			if expr != "" || file != "" {
				var err error
				if src, name, err = readStatements(cmd, expr, file); err != nil {
					return err
				}
				// Check the whole script before starting anything.
				if err := query.ParseScript(name, src); err != nil {
					return exitFor(shell.Place(src, name, shell.Statement{Line: 1, Column: 1}, err))
				}
			}
			stopProfile, err := profile.StartCPU(cpuProfile)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			defer stopProfile()
			ctx, cancel := context.WithTimeout(context.Background(), settleTimout)
			defer cancel()
			e, err := startDemo(ctx, cmd.ErrOrStderr(), cfg)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				defer debug.SetMemoryLimit(debug.SetMemoryLimit(demoMemoryLimit(liveHeap())))
			}
			var endChurn func() // stops the churn and waits for it; nil without --churn
			defer func() { stopDemo(cmd.ErrOrStderr(), e, endChurn, demoGrace) }()
			if memProfile != "" {
				// Deferred after stopDemo, so written before the peers stop: what the demo holds
				// while it runs, not what is left once it stopped.
				defer func() {
					if err := profile.WriteHeap(memProfile); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "peerq demo: %v\n", err)
					}
				}()
			}
			asker := e.Nodes[0]
			if rate > 0 {
				churnCtx, stopChurn := context.WithCancel(context.Background())
				churned := make(chan struct{})
				go func() {
					defer close(churned)
					e.Churn(churnCtx, node.ChurnConfig{PerMinute: rate, Down: churnDown, Spare: []int{0}, Seed: cfg.Seed})
				}()
				endChurn = func() { stopChurn(); <-churned }
				fmt.Fprintf(cmd.ErrOrStderr(), "peerq demo: churn: %.3g%% of the peers killed a minute (one every %.1fs), each restarted %v later on its own state; %s (this shell's peer) is spared\n",
					100*rate, 60/(rate*float64(cfg.Nodes)), churnDown, asker.Name())
			}
			out := cmd.OutOrStdout()
			if src != "" {
				sctx, stop := signal.NotifyContext(context.Background(), os.Interrupt) // Ctrl-C ends a WATCH cleanly
				defer stop()
				return exitFor(shell.RunScript(sctx, asker, src,
					shell.ScriptOptions{Name: name, Split: query.Split, Format: format, Out: out, AllowPartial: allowPartial, AllowContested: allowContested, Epochs: epochs}))
			}
			if isTerminal(cmd.InOrStdin()) {
				fmt.Fprintf(cmd.ErrOrStderr(), "Try:\n"+
					"  SELECT node, class, mem_free FROM peers WHERE mem_free >= 4GB ORDER BY reliability DESC LIMIT 10;\n"+
					"  SELECT region, COUNT(*), AVG(cpu_load), PERCENTILE(mem_free, 0.9) FROM peers GROUP BY region;\n")
			}
			return runShell(cmd, asker, "peer "+asker.Name()+" of the demo, in this process",
				shell.Config{Format: format, HistoryFile: defaultHistory(), AllowPartial: allowPartial, AllowContested: allowContested})
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of peers")
	f.IntVar(&cfg.Pools, "pools", 1, "spread the peers over this many Serf pools, joined by a cloud pool of their gateways (docs/PROTOCOLS.md, Pools)")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the peers' machines")
	f.BoolVar(&cfg.Freeze, "freeze", false, "keep the machines' load and free memory still (answers can be checked)")
	f.DurationVar(&cfg.Round, "round", cfg.Round, "longest gossip round: a peer's next round starts when its exchanges are back, at this at the latest (past 500 peers the default is 300ms)")
	f.DurationVar(&cfg.MinRound, "min-round", 10*time.Millisecond, "shortest gossip round (past 200 peers a core, 100 with --pools, the default grows with them: 50ms for 1,000 peers in 4 pools on 2 cores)")
	f.StringVarP(&expr, "execute", "e", "", "statement(s) to run, then exit")
	f.StringVarP(&file, "file", "f", "", "script of statements to run, then exit (- for stdin)")
	f.VarP(&format, "format", "F", "output format: table, csv, json or ndjson")
	f.DurationVar(&settleTimout, "settle-timeout", 3*time.Minute, "how long to wait for the cluster to form")
	allowFlags(cmd, &allowPartial, &allowContested, "with -e, -f or a pipe: ")
	f.IntVar(&epochs, "epochs", 0, "with -e or -f: end a WATCH after this many answers (default: until Ctrl-C)")
	f.StringVar(&churn, "churn", "", "kill and restart random peers at this rate, e.g. 10%/min (watch subclouds repair with SHOW SUBCLOUDS)")
	f.DurationVar(&churnDown, "churn-down", 30*time.Second, "with --churn: how long a killed peer stays down before it restarts")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	f.StringVar(&memProfile, "memprofile", "", "write a heap profile to this file when the shell ends, before the peers stop (go tool pprof)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "give each peer a data dir under this one (leases and owned subclouds survive restarts); --churn makes a temporary one if unset")
	return cmd
}

// startDemo starts the cluster with a progress line on w.
func startDemo(ctx context.Context, w io.Writer, cfg node.EmbeddedConfig) (*node.Embedded, error) {
	tty := isTerminal(w)
	start := time.Now()
	bar := func(stage string, done, total int) {
		if !tty {
			return
		}
		width := 30
		fill := width * done / max(total, 1)
		fmt.Fprintf(w, "\r%-8s [%s%s] %d/%d peers  %.1fs ", stage, strings.Repeat("#", fill), strings.Repeat(".", width-fill),
			done, total, time.Since(start).Seconds())
	}
	cfg.OnJoin = func(joined, total int) { bar("joining", joined, total) }
	e, err := node.StartEmbedded(ctx, cfg)
	if err != nil {
		return nil, err
	}
	joined := time.Since(start)
	if err := e.WaitSettled(ctx, func(s, total int) { bar("settling", s, total) }); err != nil {
		e.Close()
		return nil, err
	}
	if tty {
		fmt.Fprint(w, "\r\033[K")
	}
	if e.Pools() > 1 {
		fmt.Fprintf(w, "peerq demo: %d peers in %d pools joined in %.1fs, settled in %.1fs (every peer sees its pool, every pool's gateways the cloud pool)\n",
			cfg.Nodes, e.Pools(), joined.Seconds(), time.Since(start).Seconds())
		return e, nil
	}
	fmt.Fprintf(w, "peerq demo: %d peers joined in %.1fs, settled in %.1fs (every peer sees every other)\n",
		cfg.Nodes, joined.Seconds(), time.Since(start).Seconds())
	return e, nil
}

// demoMemoryLimit is the demo's soft memory limit (runtime/debug), given
// the live heap of its settled peers: 2.5 times that, at least 128 MiB.
// The collector's own goal is twice the live heap; what it held beyond
// that (pages freed but kept, stacks, its own metadata) put 200 idle
// peers at 300–340 MB resident where they hold ~110 MB. Under the limit
// the runtime hands freed pages back sooner, and collects more often only
// when the live heap has grown past ~2 times the settled one (a query of
// every peer at once), the way GOGC does. GOMEMLIMIT, if set, is used
// instead (BENCHMARKS.md, "The first hour").
func demoMemoryLimit(live uint64) int64 {
	return max(int64(live)*5/2, 128<<20)
}

// liveHeap is the heap the last collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// demoGrace is how long the demo waits for its peers to stop before it
// ends the process with them still running. The bound is 2 s to
// leave; a loaded laptop took 17 s to 2 min to close 200 peers one exchange
// timeout after another.
const demoGrace = 1500 * time.Millisecond

// stopDemo stops the churn, if any (first), and the embedded peers,
// saying so first, and waits for them at most grace. Ending the process
// with peers still running, or a churned one still restarting, is safe:
// they are in this process only, every peer's durable state (--data-dir)
// was made durable when it changed (a crash at any step is tested), and
// nobody outside waits for their leave messages.
func stopDemo(w io.Writer, e *node.Embedded, endChurn func(), grace time.Duration) {
	fmt.Fprintf(w, "peerq demo: stopping %d embedded peers\n", len(e.Nodes))
	done := make(chan struct{})
	go func() {
		if endChurn != nil {
			endChurn()
		}
		e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		fmt.Fprintf(w, "peerq demo: %d peers still stopping after %v: leaving them to the process's end\n", len(e.Nodes), grace)
	}
}

// isTerminal reports whether f is a terminal. A character device is not
// enough: /dev/null is one, and `peerq shell </dev/null` showed a prompt.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// parseChurnRate reads a churn rate such as 10%/min, 0.1/min, 1%/s or
// 30%/h as a share of the peers killed a minute.
func parseChurnRate(s string) (float64, error) {
	num, per, ok := strings.Cut(strings.ReplaceAll(s, " ", ""), "/")
	bad := fmt.Errorf("peerq: --churn %q: want a share of the peers and a unit of time, such as 10%%/min", s)
	if !ok {
		return 0, bad
	}
	scale := 1.0
	if strings.HasSuffix(num, "%") {
		num, scale = strings.TrimSuffix(num, "%"), 0.01
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) {
		return 0, bad
	}
	switch per {
	case "s", "sec":
		scale *= 60
	case "m", "min":
	case "h", "hour":
		scale /= 60
	default:
		return 0, bad
	}
	if v*scale > 60 {
		return 0, fmt.Errorf("peerq: --churn %q: more than every peer each second", s)
	}
	return v * scale, nil
}
