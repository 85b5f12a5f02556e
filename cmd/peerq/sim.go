package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/peerq/peerq/internal/profile"
	"github.com/peerq/peerq/node"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/sim"
	"github.com/peerq/peerq/sim/latency"
	"github.com/peerq/peerq/sim/report"
	"github.com/spf13/cobra"
)

func newSimCmd() *cobra.Command {
	var (
		expr, scheme, nFrom, cpuProfile string
		crashes, joins                  []string
		cfg                             = sim.DefaultConfig(10_000)
		opts                            report.Options
		session, round, excludeAfter    time.Duration
		serfProbe                       time.Duration
		suspicionMult, trials, pools    int
		lie, rtt                        string
		bandwidth                       float64
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
			if cfg.Liars > 0 {
				if cfg.Lie, err = sim.ParseLie(lie); err != nil {
					return &exitError{exitUsage, err}
				}
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
			if session > 0 {
				if round <= 0 || excludeAfter <= 0 || serfProbe <= 0 || suspicionMult < 1 {
					return &exitError{exitUsage, fmt.Errorf("peerq: --session needs --round, --exclude-after, --serf-probe > 0 and --suspicion-mult ≥ 1")}
				}
				churn(&cfg, session, round, excludeAfter, serfProbe, suspicionMult, !cmd.Flags().Changed("detect"))
			} else if trials > 1 {
				return &exitError{exitUsage, fmt.Errorf("peerq: --trials measures answers under churn: give --session")}
			}
			// --pools and --trials print their own summaries: the flags
			// of the one run's report would be dropped without a word.
			if pools > 0 {
				if err := notWith(cmd, "--pools", reportFlags...); err != nil {
					return err
				}
			} else if trials > 1 {
				if err := notWith(cmd, "--trials", reportFlags...); err != nil {
					return err
				}
			}
			if rtt != "" {
				if opts.RTT, err = rttModel(rtt); err != nil {
					return &exitError{exitUsage, err}
				}
				if !(bandwidth > 0) {
					return &exitError{exitUsage, fmt.Errorf("peerq: --bandwidth %v: want megabits a second, > 0", bandwidth)}
				}
				opts.MinRound = node.DefaultConfig(nil).MinRound
				opts.Serf = latency.DefaultSerf()
				opts.Serf.Bandwidth = bandwidth * 1e6 / 8
			}
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(simGOGC)
			}
			stopProfile, err := profile.StartCPU(cpuProfile)
			if err != nil {
				return &exitError{exitUsage, err}
			}
			defer stopProfile()
			if pools > 0 {
				return simPools(cmd.OutOrStdout(), plans[0], cfg, pools)
			}
			if trials > 1 {
				if err := report.Trials(cmd.OutOrStdout(), plans[0], cfg, trials); err != nil {
					return &exitError{exitUsage, err}
				}
				return nil
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
	f.StringVar(&opts.MemProfile, "memprofile", "", "write a heap profile to this file after the last round, the simulation still live (go tool pprof -sample_index=inuse_space)")
	f.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "number of simulated peers")
	f.IntVar(&cfg.Rounds, "rounds", 0, "rounds to run (0: the plan's budget for --nodes, and past it while the asker's answer is not final, as the runtime runs it)")
	f.Float64Var(&cfg.Loss, "loss", 0, "probability that a message is lost")
	f.StringArrayVar(&crashes, "crash", nil, "crash a share of the live peers at a round: 0.2@5 (repeatable)")
	f.StringArrayVar(&joins, "join", nil, "add that share of --nodes new peers at a round: 0.1@10 (repeatable)")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the records and of every random choice")
	f.StringVar(&scheme, "scheme", "flow-updating", "averaging scheme: flow-updating or push-pull")
	f.StringVar(&nFrom, "n-from", "gossip", "number of peers for sums: gossip (estimated) or membership (known)")
	f.IntVar(&cfg.DetectRounds, "detect", cfg.DetectRounds, "rounds until survivors learn of a crash")
	f.IntVar(&cfg.FoldAfter, "fold-after", cfg.FoldAfter, "rounds a flow-updating link is kept, so its flow can be undone if the peer dies (0: the whole run when --crash is given, else 5)")
	f.BoolVar(&cfg.AllStart, "all-start", false, "start every peer at round 0 (default: peers join as the query reaches them, as in the runtime)")
	f.IntVar(&cfg.Fanout, "fanout", cfg.Fanout, "peers beyond its partner a peer tells of the query each round while it is young; -1: the engine's (3 for a top-k; for an aggregate 3 from 32 peers, else 0); 3 spreads a query to 10^6 peers in ~13 rounds")
	f.IntVar(&cfg.MetricsSample, "sample", cfg.MetricsSample, "peers measured each round when a plan needs full estimates")
	f.StringVar(&opts.CSVPath, "csv", "", "write the per-round table as CSV to this file")
	f.StringVar(&opts.PlotPath, "plot", "", "draw error against round (log scale) as PNG to this file")
	f.BoolVar(&opts.Quiet, "quiet", false, "print only the summary, not the table per round")
	f.StringVar(&rtt, "rtt", "", "a model of the network's round trips — lognormal:MEDIAN[:SIGMA] (lognormal:80ms) or a file of measured ones, one a line — to print the answer's time in seconds beside a serf.Query's on the same model")
	f.Float64Var(&bandwidth, "bandwidth", 100, "with --rtt: the asker's downlink in Mbit/s, which a serf.Query's answers cross")
	f.BoolVar(&opts.Baseline, "baseline", false, "before the run, time one random 8-byte read from a 1 GiB array and print the time per peer-round against it")
	f.DurationVar(&session, "session", 0, "churn as a process: the median time a peer stays (exponential sessions; as many join as leave), e.g. 1h")
	f.DurationVar(&round, "round", 100*time.Millisecond, "time per round, to turn --session and the delays below into rounds")
	f.DurationVar(&excludeAfter, "exclude-after", 750*time.Millisecond, "with --session: time from a member's loss until a query's peer leaves it out: an exchange past its time, a ping, a second ping with indirect probes (each at least 250 ms, node.MinSuspect); the set then spreads in log2(N) rounds")
	f.IntVar(&cfg.MaxExcluded, "max-excluded", node.MaxExcluded, "with --session: members a query's peers tell each other they left out (the runtime's bound); later losses wait for Serf's verdict")
	f.DurationVar(&serfProbe, "serf-probe", time.Second, "with --session: Serf's probe interval (memberlist's LAN profile), for its verdict on a lost member")
	f.IntVar(&suspicionMult, "suspicion-mult", 4, "with --session: Serf's suspicion multiplier: a verdict takes suspicion-mult × log10(N) probe intervals")
	f.Float64Var(&cfg.Liars, "liars", 0, "share of the peers that lie (never the asker), as --lie says; the peers then sign their top-k entries and check the others'")
	f.BoolVar(&cfg.CheckOnce, "check-once", false, "the sample check judges with its first sample alone, never asking more members on a doubt (to measure what the escalation adds)")
	f.StringVar(&lie, "lie", "forge", "with --liars: inflate (its attributes ×1000, within the catalog's bounds), extreme (at the bounds), flow (made-up flows), squares (made-up flows of sums of squares alone), forge (top-k entries written for other nodes), alter (others' entries changed under their signatures), drop (others' entries swallowed) or selfrank (claims reliability 1)")
	f.IntVar(&pools, "pools", 0, "spread the peers over this many pools, each run to its own final answer, and merge them as the asker of a cloud of pools does (1 runs one pool the same way, for A/B); loss and liars (each pool's sample check), no churn")
	f.IntVar(&trials, "trials", 1, "with --session: run this many statements (seeds --seed, --seed+1, …) and print the share the runtime would call converged and their error")
	return cmd
}

// simGOGC is the collector's target for peerq sim, unless GOGC is set: a
// simulation's heap is mostly its peers' state, which lives the whole run,
// and at Go's default (100) the heap grows to twice it between
// collections — at 10^6 peers with liars, the difference between 2 GiB and
// 3 GiB. At 50 it stays within 1.5 times; a collection comes twice as
// often, which the simulator's own garbage (records regenerated, liars'
// copies) no longer makes dear: a top-k with forging liars at 10^5 peers
// takes the user time it took at 100 before (BENCHMARKS.md, "The simulator
// at 10^6 with liars").
const simGOGC = 50

// churn sets cfg up for churn as a process: the session, the query's
// exclusions and, unless --detect was given, Serf's verdict, in rounds of
// round. A verdict takes SuspicionMult × log10(N) probe intervals
// (memberlist's suspicion timeout; Lifeguard can stretch it), at least
// one interval.
func churn(cfg *sim.Config, session, round, excludeAfter, probe time.Duration, mult int, serfDetect bool) {
	rounds := func(d time.Duration) int { return max(1, int(math.Ceil(float64(d)/float64(round)))) }
	cfg.Session = float64(session) / float64(round)
	cfg.ExcludeRounds = rounds(excludeAfter) + int(math.Ceil(math.Log2(float64(cfg.Nodes))))
	if serfDetect {
		verdict := time.Duration(float64(mult) * math.Max(1, math.Log10(float64(cfg.Nodes))) * float64(probe))
		cfg.DetectRounds = rounds(verdict)
	}
}

// reportFlags are the flags of one run's report (report.Options), which
// --pools and --trials do not print.
var reportFlags = []string{"rtt", "bandwidth", "baseline", "csv", "plot", "memprofile"}

// notWith refuses the flags among names that were given, for a mode that
// would run without them.
func notWith(cmd *cobra.Command, mode string, names ...string) error {
	var given []string
	for _, n := range names {
		if cmd.Flags().Changed(n) {
			given = append(given, "--"+n)
		}
	}
	if len(given) == 0 {
		return nil
	}
	return &exitError{exitUsage, fmt.Errorf("peerq: %s: not printed by %s, which prints a summary of its own; run without one or the other",
		strings.Join(given, ", "), mode)}
}

// rttModel reads --rtt: a log-normal ("lognormal:…"), or else a file of
// measured round trips. Its errors name the flag, and the file.
func rttModel(spec string) (*latency.Model, error) {
	if strings.HasPrefix(spec, "lognormal:") {
		m, err := latency.Parse(spec)
		if err != nil {
			return nil, fmt.Errorf("peerq: --rtt: %w", err)
		}
		return m, nil
	}
	text, err := os.ReadFile(spec)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("peerq: --rtt %q: no such file; give a file of round trips, one a line, or lognormal:MEDIAN[:SIGMA] (lognormal:80ms)", spec)
	}
	if err != nil {
		return nil, fmt.Errorf("peerq: --rtt: %w", err)
	}
	m, err := latency.FromText(text)
	if err != nil {
		return nil, fmt.Errorf("peerq: --rtt %s: %w", spec, err)
	}
	return m, nil
}

// simPools runs a statement over a cloud of pools (sim.RunPools) and
// prints its rounds, error and bytes.
func simPools(w io.Writer, plan *query.Plan, cfg sim.Config, pools int) error {
	start := time.Now()
	res, err := sim.RunPools(plan, cfg, pools)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	finals := slices.Clone(res.Final)
	slices.Sort(finals)
	fmt.Fprintf(w, "%d peers in %d pools: each pool's answer final at round %d (min) / %d (median) / %d (max), %d ran out of rounds (%d of them answered by their sample)\n",
		cfg.Nodes, pools, finals[0], finals[len(finals)/2], finals[len(finals)-1], res.OutOfRounds, res.OutOfRounds-res.Partial)
	fmt.Fprintf(w, "the asker's answer final at round %d (the slowest pool + %d for the cloud level), error %.4f%% against the exact answer\n",
		res.Rounds, sim.CloudRounds, 100*res.Err)
	fmt.Fprintf(w, "bytes per peer per round %.1f over the asker's %d rounds; %.1f over each pool's own rounds (%.1f per working peer-round); %.0f per peer for the answer; the cloud level %d bytes (plan and partials, 3 gateways a pool); %.1fs\n",
		res.BytesPerQueryRound, res.Rounds, res.BytesPerPeerRound, res.BytesPerWorkingRound, res.BytesPerPeer, res.CloudBytes, time.Since(start).Seconds())
	if cfg.Liars > 0 {
		if plan.Kind != query.PlanAggregate {
			fmt.Fprintf(w, "liars %.2f%% (%s): forged entries %d in the asker's answer; honest top-%d share %.0f%%\n",
				100*cfg.Liars, cfg.Lie, res.Forged, plan.K, 100*res.HonestShare)
		} else {
			flagged := "no"
			if len(res.Contested) > 0 {
				flagged = fmt.Sprintf("yes (%d of %d pools contested)", len(res.Contested), pools)
			}
			fmt.Fprintf(w, "liars %.2f%% (%s): honest error %.4f%%, flagged %s; %d pools answered by their sample\n",
				100*cfg.Liars, cfg.Lie, 100*res.HonestErr, flagged, res.Sampled)
		}
	}
	switch {
	case len(res.Contested) > 0: // contested, partial or not, as the runtime's answer says (node/pools.go)
		return &exitError{exitContested, fmt.Errorf("peerq: contested in %d pools: %s", len(res.Contested), res.Contested[0])}
	case res.Partial > 0:
		return &exitError{exitTimeout, fmt.Errorf("peerq: %d pools ran out of rounds, error %.4f", res.Partial, res.Err)}
	case cfg.Liars == 0 && res.Err > plan.Accuracy:
		// With liars the truth over every peer is no yardstick: the
		// liars' own claims are in the answer, as they are in the
		// runtime's (the honest error above is).
		return &exitError{exitTimeout, fmt.Errorf("peerq: error %.4f against the exact answer", res.Err)}
	}
	return nil
}
