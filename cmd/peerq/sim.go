package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peerq/peerq/aggregate"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/sim"
	"github.com/spf13/cobra"
)

func newSimCmd() *cobra.Command {
	var (
		expr, csvPath, plotPath, scheme, nFrom string
		cpuProfile                             string
		crashes, joins                         []string
		cfg                                    = sim.DefaultConfig(10_000)
		quiet                                  bool
	)
	cmd := &cobra.Command{
		Use:   "sim --nodes N -e STATEMENT",
		Short: "Run a statement's gossip protocols over N simulated peers and measure them against the exact answer",
		Long: `sim runs the real protocol cores (aggregate, topk) round by round for N peers in one
process, with synthetic peer records, message loss, crashes and joins, and prints a table per
round: messages, bytes, and the relative error of the originator, the median and the worst
peer against the exact answer computed over the live peers.`,
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
			switch scheme {
			case "flow-updating":
				cfg.Scheme = aggregate.FlowUpdating
			case "push-pull":
				cfg.Scheme = aggregate.PushPull
			default:
				return &exitError{exitUsage, fmt.Errorf("peerq: --scheme is flow-updating or push-pull")}
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
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			return runSim(cmd.OutOrStdout(), plans[0], cfg, csvPath, plotPath, quiet)
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
	f.IntVar(&cfg.MetricsSample, "sample", cfg.MetricsSample, "peers measured each round when a plan needs full estimates")
	f.StringVar(&csvPath, "csv", "", "write the per-round table as CSV to this file")
	f.StringVar(&plotPath, "plot", "", "draw error against round (log scale) as PNG to this file")
	f.BoolVar(&quiet, "quiet", false, "print only the summary, not the table per round")
	return cmd
}

func runSim(out io.Writer, plan *query.Plan, cfg sim.Config, csvPath, plotPath string, quiet bool) error {
	start := time.Now()
	s, err := sim.New(plan, cfg)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	setup := time.Since(start)
	topK := plan.Kind != query.PlanAggregate
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "round\talive\tmessages\tbytes\tmsg/peer\tB/peer\torigin err\tmedian err\tworst err\torigin's estimate\t"
	if topK {
		header = "round\talive\tmessages\tbytes\tmsg/peer\tB/peer\torigin exact\tpeers exact\tdead in origin\t"
	}
	if !quiet {
		fmt.Fprintln(tw, header)
	}
	var stats []sim.RoundStats
	for !s.Done() {
		st := s.Step()
		stats = append(stats, st)
		if quiet {
			continue
		}
		perPeer := float64(st.Messages) / float64(st.Alive)
		bPerPeer := float64(st.Bytes) / float64(st.Alive)
		if topK {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.2f\t%.0f\t%v\t%.2f%%\t%d\t\n", st.Round, st.Alive, st.Messages, st.Bytes,
				perPeer, bPerPeer, st.OriginErr == 0, 100*st.ExactShare, st.OriginDead)
		} else {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.2f\t%.0f\t%s\t%s\t%s\t±%s\t\n", st.Round, st.Alive, st.Messages, st.Bytes,
				perPeer, bPerPeer, pct(st.OriginErr), pct(st.MedianErr), pct(st.WorstErr), pct(st.ErrEstimate))
		}
	}
	tw.Flush()
	elapsed := time.Since(start)
	summarize(out, plan, cfg, s, stats, setup, elapsed)
	if csvPath != "" {
		if err := writeSimCSV(csvPath, stats); err != nil {
			return &exitError{exitUsage, err}
		}
	}
	if plotPath != "" {
		f, err := os.Create(plotPath)
		if err != nil {
			return &exitError{exitUsage, err}
		}
		defer f.Close()
		title := fmt.Sprintf("%s — N=%d, loss %.0f%%", plan.Text, cfg.Nodes, 100*cfg.Loss)
		if err := sim.PlotErrors(f, title, stats); err != nil {
			return &exitError{exitUsage, err}
		}
	}
	return nil
}

func pct(x float64) string {
	if x >= 0.01 {
		return fmt.Sprintf("%.2f%%", 100*x)
	}
	return fmt.Sprintf("%.2e", x)
}

func summarize(out io.Writer, plan *query.Plan, cfg sim.Config, s *sim.Sim, stats []sim.RoundStats, setup, elapsed time.Duration) {
	fmt.Fprintf(out, "\n%s\n", plan.Text)
	nFrom := "gossip estimate"
	if !cfg.NFromGossip {
		nFrom = "membership"
	}
	fmt.Fprintf(out, "N=%d, %d rounds, loss %.1f%%, scheme %s, number of peers from the %s, seed %d\n",
		cfg.Nodes, len(stats), 100*cfg.Loss, cfg.Scheme, nFrom, cfg.Seed)
	if len(stats) > 0 {
		var msgs, bytes, peerRounds float64
		for _, st := range stats {
			msgs += float64(st.Messages)
			bytes += float64(st.Bytes)
			peerRounds += float64(st.Alive)
		}
		fmt.Fprintf(out, "per peer per round: %.2f messages, %.0f bytes\n", msgs/peerRounds, bytes/peerRounds)
		last := stats[len(stats)-1]
		if plan.Kind == query.PlanAggregate {
			fmt.Fprintf(out, "final error: originator %s, median %s, worst %s (over %d peers)\n",
				pct(last.OriginErr), pct(last.MedianErr), pct(last.WorstErr), last.Measured)
			for _, target := range []float64{0.1, 0.01, 0.001} {
				fmt.Fprintf(out, "  every measured peer within %g%% from round %s\n", 100*target, firstRound(stats, func(st sim.RoundStats) bool { return st.WorstErr <= target }))
			}
			if ratio, ok := varianceRatio(stats); ok {
				fmt.Fprintf(out, "variance reduction per round: %.4f (median over the rounds; theory 1/(2√e) = %.4f)\n", ratio, query.VarianceFactor)
			}
		} else {
			fmt.Fprintf(out, "every peer holds the exact top-%d from round %s\n", plan.K,
				firstRound(stats, func(st sim.RoundStats) bool { return st.ExactShare == 1 }))
			fmt.Fprintf(out, "crashed peers in the originator's final list: %d\n", last.OriginDead)
		}
	}
	answer, err := s.Answer()
	if err == nil {
		printSimAnswer(out, "originator's answer", answer, 5)
	}
	printSimAnswer(out, "exact answer", s.Exact(), 5)
	fmt.Fprintf(out, "wall time %.2fs (setup %.2fs), peak RSS %s, %d goroutines\n",
		elapsed.Seconds(), setup.Seconds(), peakRSS(), runtime.NumGoroutine())
}

func firstRound(stats []sim.RoundStats, ok func(sim.RoundStats) bool) string {
	for i, st := range stats {
		if ok(st) {
			// It must hold from here on.
			all := true
			for _, later := range stats[i:] {
				all = all && ok(later)
			}
			if all {
				return strconv.Itoa(st.Round)
			}
		}
	}
	return "never"
}

// varianceRatio is the median over rounds of Variance[r+1]/Variance[r],
// while the variance is well above rounding.
func varianceRatio(stats []sim.RoundStats) (float64, bool) {
	var ratios []float64
	for i := 1; i < len(stats); i++ {
		a, b := stats[i-1].Variance, stats[i].Variance
		if a > 1e-20 && b > 0 {
			ratios = append(ratios, b/a)
		}
	}
	if len(ratios) == 0 {
		return 0, false
	}
	sort.Float64s(ratios)
	return ratios[len(ratios)/2], true
}

func printSimAnswer(out io.Writer, title string, res *query.Result, limit int) {
	var names []string
	for _, c := range res.Columns {
		names = append(names, c.Name)
	}
	fmt.Fprintf(out, "%s (%d rows): %s\n", title, len(res.Rows), strings.Join(names, " | "))
	for i, row := range res.Rows {
		if i == limit {
			fmt.Fprintf(out, "  ...\n")
			break
		}
		var cells []string
		for _, v := range row {
			cells = append(cells, v.String())
		}
		fmt.Fprintf(out, "  %s\n", strings.Join(cells, " | "))
	}
}

func writeSimCSV(path string, stats []sim.RoundStats) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"round", "alive", "messages", "bytes", "origin_err", "median_err", "worst_err", "measured", "exact_share", "variance", "origin_dead", "err_estimate"})
	for _, st := range stats {
		w.Write([]string{strconv.Itoa(st.Round), strconv.Itoa(st.Alive), strconv.Itoa(st.Messages), strconv.FormatInt(st.Bytes, 10),
			strconv.FormatFloat(st.OriginErr, 'g', -1, 64), strconv.FormatFloat(st.MedianErr, 'g', -1, 64),
			strconv.FormatFloat(st.WorstErr, 'g', -1, 64), strconv.Itoa(st.Measured),
			strconv.FormatFloat(st.ExactShare, 'g', -1, 64), strconv.FormatFloat(st.Variance, 'g', -1, 64), strconv.Itoa(st.OriginDead),
			strconv.FormatFloat(st.ErrEstimate, 'g', -1, 64)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// peakRSS reads the process's peak resident set size (Linux); "?" elsewhere.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, err := strconv.ParseFloat(strings.Fields(line)[1], 64)
			if err == nil {
				return query.FormatBytes(kb * 1024)
			}
		}
	}
	return "?"
}
