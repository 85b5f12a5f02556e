package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/peerq/peerq/sim"
	"github.com/peerq/peerq/sim/report"
	"github.com/spf13/cobra"
)

func newSimCmd() *cobra.Command {
	var (
		expr, scheme, nFrom, cpuProfile string
		crashes, joins                  []string
		cfg                             = sim.DefaultConfig(10_000)
		opts                            report.Options
	)
	cmd := &cobra.Command{
		Use:   "sim --nodes N -e STATEMENT",
		Short: "Run a statement's gossip protocols over N simulated peers and measure them against the exact answer",
		Long: `sim runs the real protocol cores (aggregate, topk) round by round for N peers in one
process, with synthetic peer records, message loss, crashes and joins, and prints a table per
round: messages, bytes, the relative error of the originator, the median and the worst peer
against the exact answer computed over the live peers, and the round at which the engine's
convergence rule calls the originator's answer final.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expr == "" {
				return &exitError{exitUsage, fmt.Errorf("peerq: give the statement with -e")}
			}
			plans, err := compileScript(expr, "")
			if err != nil {
				return err
			}
			if len(plans) != 1 {
				return &exitError{exitUsage, fmt.Errorf("peerq: sim runs one statement, got %d", len(plans))}
			}
			if cfg.Scheme, err = sim.ParseScheme(scheme); err != nil {
				return &exitError{exitUsage, err}
			}
			switch nFrom {
			case "gossip":
				cfg.NFromGossip = true
			case "membership":
				cfg.NFromGossip = false
			default:
				return &exitError{exitUsage, fmt.Errorf("peerq: --n-from is gossip or membership")}
			}
			for _, list := range []struct {
				in  []string
				out *[]sim.Event
			}{{crashes, &cfg.Crashes}, {joins, &cfg.Joins}} {
				for _, s := range list.in {
					e, err := sim.ParseEvent(s)
					if err != nil {
						return &exitError{exitUsage, err}
					}
					*list.out = append(*list.out, e)
				}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return &exitError{exitUsage, err}
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return &exitError{exitUsage, err}
				}
				defer pprof.StopCPUProfile()
			}
			if err := report.Run(cmd.OutOrStdout(), plans[0], cfg, opts); err != nil {
				return &exitError{exitUsage, err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&expr, "execute", "e", "", "the statement to simulate")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	f.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of simulated peers")
	f.IntVar(&cfg.Rounds, "rounds", 0, "rounds to run (0: the plan's budget for --nodes)")
	f.Float64Var(&cfg.Loss, "loss", 0, "probability that a message is lost")
	f.StringArrayVar(&crashes, "crash", nil, "crash a share of the live peers at a round: 0.2@5 (repeatable)")
	f.StringArrayVar(&joins, "join", nil, "add that share of --nodes new peers at a round: 0.1@10 (repeatable)")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the records and of every random choice")
	f.StringVar(&scheme, "scheme", "flow-updating", "averaging scheme: flow-updating or push-pull")
	f.StringVar(&nFrom, "n-from", "gossip", "number of peers for sums: gossip (estimated) or membership (known)")
	f.IntVar(&cfg.DetectRounds, "detect", cfg.DetectRounds, "rounds until survivors learn of a crash")
	f.IntVar(&cfg.FoldAfter, "fold-after", cfg.FoldAfter, "rounds a flow-updating link is kept, so its flow can be undone if the peer dies (0: the whole run when --crash is given, else 5)")
	f.BoolVar(&cfg.AllStart, "all-start", false, "start every peer at round 0 (default: peers join as the query reaches them, as in the runtime)")
	f.IntVar(&cfg.MetricsSample, "sample", cfg.MetricsSample, "peers measured each round when a plan needs full estimates")
	f.StringVar(&opts.CSVPath, "csv", "", "write the per-round table as CSV to this file")
	f.StringVar(&opts.PlotPath, "plot", "", "draw error against round (log scale) as PNG to this file")
	f.BoolVar(&opts.Quiet, "quiet", false, "print only the summary, not the table per round")
	f.BoolVar(&opts.Baseline, "baseline", false, "before the run, time one random 8-byte read from a 1 GiB array and print the time per peer-round against it")
	return cmd
}
