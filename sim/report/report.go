package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/internal/profile"
	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/run"
	"github.com/peerq/peerq/sim"
	"github.com/peerq/peerq/sim/latency"
)

// Options say what to write beside the table.
type Options struct {
	// Baseline measures, before the run, one random read from a 1 GiB
	// array (RandomRead) and prints the time per peer-round against it.
	Baseline bool
	// CSVPath, if set, gets the per-round table as CSV; PlotPath a PNG of
	// the error against the round.
	CSVPath, PlotPath string
	// Quiet prints only the summary.
	Quiet bool
	// RTT, if set, is a model of the network's round trips: the summary
	// then gives the answer's time in seconds, with rounds of at least
	// MinRound (the runtime's), beside a serf.Query's on the same model
	// (package latency, Serf).
	RTT      *latency.Model
	MinRound time.Duration
	Serf     latency.Serf
	// MemProfile, if set, gets a heap profile (go tool pprof) taken after
	// the last round, while the simulation is still live: what its peers
	// hold at the end of a run, which at a million peers is most of the
	// peak (their state grows with rounds).
	MemProfile string
}

// Run simulates plan with cfg and writes, to out, the table of rounds and
// the summary; then the CSV and the plot, if asked.
func Run(out io.Writer, plan *query.Plan, cfg sim.Config, opts Options) error {
	// The baseline runs first: its array is unmapped before the
	// simulation allocates, so the two never add up in RSS.
	var read time.Duration
	if opts.Baseline {
		var err error
		if read, err = RandomRead(BaselineBytes, 20_000_000); err != nil {
			return err
		}
	}
	start := time.Now()
	s, err := sim.New(plan, cfg)
	if err != nil {
		return err
	}
	setup := time.Since(start)
	topK := plan.Kind != query.PlanAggregate
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "round\talive\tmessages\tbytes\tmsg/peer\tB/peer\torigin err\tmedian err\tworst err\torigin's estimate\trule\t"
	if topK {
		header = "round\talive\tmessages\tbytes\tmsg/peer\tB/peer\torigin exact\tpeers exact\tdead in origin\trule\t"
	}
	if !opts.Quiet {
		fmt.Fprintln(tw, header)
	}
	var stats []sim.RoundStats
	var stepping, measuring time.Duration
	var peerRounds, working int64
	for !s.Done() {
		t0 := time.Now()
		s.Advance()
		t1 := time.Now()
		st := s.Measure()
		stepping += t1.Sub(t0)
		measuring += time.Since(t1)
		peerRounds += int64(st.Alive)
		working += int64(st.Working)
		stats = append(stats, st)
		if opts.Quiet {
			continue
		}
		perPeer := float64(st.Messages) / float64(st.Alive)
		bPerPeer := float64(st.Bytes) / float64(st.Alive)
		rule := ""
		if st.RuleConverged {
			rule = "final"
		}
		if topK {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.2f\t%.0f\t%v\t%.2f%%\t%d\t%s\t\n", st.Round, st.Alive, st.Messages, st.Bytes,
				perPeer, bPerPeer, st.OriginErr == 0, 100*st.ExactShare, st.OriginDead, rule)
		} else {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.2f\t%.0f\t%s\t%s\t%s\t±%s\t%s\t\n", st.Round, st.Alive, st.Messages, st.Bytes,
				perPeer, bPerPeer, pct(st.OriginErr), pct(st.MedianErr), pct(st.WorstErr), pct(st.ErrEstimate), rule)
		}
	}
	tw.Flush()
	if opts.MemProfile != "" {
		if err := profile.WriteHeap(opts.MemProfile); err != nil {
			return err
		}
	}
	c := Convergence(plan, stats)
	summarize(out, plan, cfg, s, stats, c, setup, time.Since(start))
	if opts.RTT != nil {
		inSeconds(out, cfg, stats, c, opts)
	}
	perPeerRound := float64(stepping.Nanoseconds()) / float64(max(peerRounds, 1))
	perWorking := float64(stepping.Nanoseconds()) / float64(max(working, 1))
	fmt.Fprintf(out, "time per peer-round %.0f ns (%d peer-rounds in %.2fs); per working peer-round %.0f ns (%d peer-rounds that held the query); measuring every peer's error besides: %.0f ns a peer-round (%.2fs)\n",
		perPeerRound, peerRounds, stepping.Seconds(), perWorking, working, float64(measuring.Nanoseconds())/float64(max(peerRounds, 1)), measuring.Seconds())
	if opts.Baseline {
		fmt.Fprintf(out, "baseline: one random 8-byte read from 1 GiB %.1f ns; time per peer-round ÷ read = %.1f, per working peer-round ÷ read = %.1f\n",
			float64(read.Nanoseconds()), perPeerRound/float64(read.Nanoseconds()), perWorking/float64(read.Nanoseconds()))
	}
	if err := honest(s); err != nil {
		return err
	}
	if opts.CSVPath != "" {
		if err := writeCSV(opts.CSVPath, stats); err != nil {
			return err
		}
	}
	if opts.PlotPath != "" {
		f, err := os.Create(opts.PlotPath)
		if err != nil {
			return err
		}
		title := fmt.Sprintf("%s — N=%d, loss %.0f%%", plan.Text, cfg.Nodes, 100*cfg.Loss)
		if err := PlotErrors(f, title, stats); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}

// inSeconds prints the run's rounds as seconds on opts.RTT, and a
// serf.Query's time and bytes on the same model. The asker's bytes are a
// peer's until the answer is final (the asker of a gossip aggregate is a
// peer like the others, plus the sample check's records).
func inSeconds(out io.Writer, cfg sim.Config, stats []sim.RoundStats, c Conv, opts Options) {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x277))
	round := opts.RTT.RoundTime(r, opts.MinRound, 100_000)
	fmt.Fprintf(out, "on the latency model (%s): a round %.1f ms (at least %v)", opts.RTT, float64(round)/1e6, opts.MinRound)
	gossip := time.Duration(c.RuleRound) * round
	if c.RuleRound > 0 {
		_, bytes := perPeerRound(stats)
		fmt.Fprintf(out, "; the answer final at round %d: %.2f s, a peer's bytes until then %.1f KB", c.RuleRound, gossip.Seconds(), bytes*float64(c.RuleRound)/1000)
	}
	fmt.Fprintln(out)
	// memberlist's LAN profile (Serf's default) and its WAN one, which it
	// advises across the internet: each modelled event by event, with its
	// own stream of the run's seed.
	for k, s := range []latency.Serf{opts.Serf, opts.Serf.WAN()} {
		st := s.Time(opts.RTT, cfg.Nodes, rand.New(rand.NewPCG(cfg.Seed, 0x5e2f+uint64(k))))
		fmt.Fprintf(out, "serf.Query, %s profile, on the same model (gossip every %v to %d, at most %d sends a member; %d answers of %d B at %.0f Mbit/s): reached %d, half by %.2f s, 99%% by %.2f s, all by %.2f s; last answer in at %.2f s (the asker's link alone %.2f s); Serf's default timeout %.1f s; the asker receives %.1f MB\n",
			s.Profile, s.GossipInterval, s.GossipNodes, s.RetransmitMult*int(math.Ceil(math.Log10(float64(cfg.Nodes)+1))), st.Reached-1, s.ReplyBytes, s.Bandwidth*8/1e6,
			st.Reached, st.Median.Seconds(), st.P99.Seconds(), st.Spread.Seconds(), st.Last.Seconds(), st.Link.Seconds(), st.Timeout.Seconds(), float64(st.Bytes)/1e6)
		if c.RuleRound > 0 {
			fmt.Fprintf(out, "gossip ÷ serf.Query, %s (last answer): %.2f\n", s.Profile, gossip.Seconds()/st.Last.Seconds())
		}
	}
}

// pct writes a relative error as a percentage with three significant
// digits, never in exponent notation, so that a column reads one way
// (12.4%, 0.00123%); errors below 10⁻¹² of the value read as 0%.
func pct(x float64) string {
	if math.IsNaN(x) {
		return "–" // not measured this round (under churn: at the final round only)
	}
	if x < 1e-14 {
		return "0%"
	}
	d := min(max(int(math.Ceil(-math.Log10(100*x)))+2, 2), 12)
	return strconv.FormatFloat(100*x, 'f', d, 64) + "%"
}

// perPeerRound is what a peer sent in a round, on average over the run:
// messages and bytes.
func perPeerRound(stats []sim.RoundStats) (msgs, bytes float64) {
	var peerRounds float64
	for _, st := range stats {
		msgs += float64(st.Messages)
		bytes += float64(st.Bytes)
		peerRounds += float64(st.Alive)
	}
	return msgs / peerRounds, bytes / peerRounds
}

func summarize(out io.Writer, plan *query.Plan, cfg sim.Config, s *sim.Sim, stats []sim.RoundStats, c Conv, setup, elapsed time.Duration) {
	fmt.Fprintf(out, "\n%s\n", plan.Text)
	nFrom := "gossip estimate"
	if !cfg.NFromGossip {
		nFrom = "membership"
	}
	fmt.Fprintf(out, "N=%d, %d rounds, loss %.1f%%, scheme %s, number of peers from the %s, seed %d\n",
		cfg.Nodes, len(stats), 100*cfg.Loss, cfg.Scheme, nFrom, cfg.Seed)
	if len(stats) > 0 {
		msgs, bytes := perPeerRound(stats)
		fmt.Fprintf(out, "per peer per round: %.2f messages, %.0f bytes\n", msgs, bytes)
		last := stats[len(stats)-1]
		if plan.Kind == query.PlanAggregate {
			fmt.Fprintf(out, "final error: originator %s, median %s, worst %s (over %d peers)\n",
				pct(last.OriginErr), pct(last.MedianErr), pct(last.WorstErr), last.Measured)
			for _, target := range []float64{0.1, 0.01, 0.001} {
				fmt.Fprintf(out, "  every measured peer within %g%% from round %s\n", 100*target, FirstRound(stats, func(st sim.RoundStats) bool { return st.WorstErr <= target }))
			}
			if ratio, ok := VarianceRatio(stats); ok {
				fmt.Fprintf(out, "variance reduction per round: %.4f (median over the rounds; theory 1/(2√e) = %.4f)\n", ratio, query.VarianceFactor)
			}
			if v, honestErr, ok := s.Check(); ok {
				verdict := "agrees"
				if v.Contested {
					verdict = "contested: " + v.Reason
				}
				if w, _, ok := run.DefaultSampleCheck().Fallback.StandIn(plan, v); ok && last.StandIn {
					verdict += fmt.Sprintf("; the answer is the sample's own (a robust aggregate), within ±%.2g%% at 95%%", 100*w)
				}
				fmt.Fprintf(out, "sample check of the final answer (%d sampled members): %s\n", v.Sampled, verdict)
				if cfg.Liars > 0 {
					flagged := "no"
					if last.Flagged {
						flagged = "yes"
					} else if last.StandIn {
						flagged = "no (answered by the sample)"
					}
					refused := 0
					for _, st := range stats {
						refused += st.LiesRefused
					}
					fmt.Fprintf(out, "liars %.2f%% (%s): honest error %s, flagged %s; messages refused for a lie %d\n",
						100*cfg.Liars, cfg.Lie, pct(honestErr), flagged, refused)
				}
			}
		} else {
			fmt.Fprintf(out, "every peer holds the exact top-%d from round %s\n", plan.K,
				FirstRound(stats, func(st sim.RoundStats) bool { return st.ExactShare == 1 }))
			fmt.Fprintf(out, "crashed peers in the originator's final list: %d\n", last.OriginDead)
			if cfg.Liars > 0 {
				refused := 0
				for _, st := range stats {
					refused += st.LiesRefused
				}
				fmt.Fprintf(out, "liars %.2f%% (%s): messages refused for a lie %d; forged entries %d in the originator's final list; liars ranked above what was observed of them %d; honest top-%d share %.0f%%; left out by the asker for claims it refused %d\n",
					100*cfg.Liars, cfg.Lie, refused, last.ForgedAccepted, last.SelfRanked, plan.K, 100*last.HonestShare, s.Judged())
			}
		}
		fmt.Fprintf(out, "engine's rule: final at round %s (originator's error then %s); originator truly within target from round %s\n",
			roundOrNever(c.RuleRound), pct(c.ErrAtRule), roundOrNever(c.TrueRound))
	}
	if o := s.Outcome(); o != nil {
		fmt.Fprintf(out, "under churn (median session %.0f rounds): %s\n", cfg.Session, describe(plan, o))
	}
	if ans, err := s.Answer(); err == nil {
		printAnswer(out, "originator's answer", ans, 5)
	}
	exactOf := "exact answer"
	if cfg.Session > 0 {
		exactOf = "exact answer over the members that took part"
	}
	printAnswer(out, exactOf, s.Exact(), 5)
	fmt.Fprintf(out, "wall time %.2fs (setup %.2fs), peak RSS %s, %d goroutines\n",
		elapsed.Seconds(), setup.Seconds(), peakRSS(), runtime.NumGoroutine())
}

// honest fails when the peers refused a message: every simulated peer is
// honest, so a refusal is a check on receipt (package run) that would
// refuse an honest peer in the runtime.
func honest(s *sim.Sim) error {
	if n, err := s.Refused(); n > 0 {
		return fmt.Errorf("report: %d messages from honest peers refused (the first: %w)", n, err)
	}
	return nil
}

func roundOrNever(r int) string {
	if r == 0 {
		return "never"
	}
	return strconv.Itoa(r)
}

// Conv is when a run converged: RuleRound, the first round at which the
// engine's rule (run.Rule) calls the originator's answer final, and the
// originator's error then; TrueRound, the first round from which the
// originator's answer stays within the plan's target (for top-k: exact).
// 0 is never.
type Conv struct {
	RuleRound, TrueRound int
	ErrAtRule            float64
}

// Convergence reads a run's rounds.
func Convergence(plan *query.Plan, stats []sim.RoundStats) Conv {
	var c Conv
	for _, st := range stats {
		if st.RuleConverged {
			c.RuleRound, c.ErrAtRule = st.Round, st.OriginErr
			break
		}
	}
	target := plan.Accuracy
	if plan.Kind != query.PlanAggregate {
		target = 0
	}
	if r, err := strconv.Atoi(FirstRound(stats, func(st sim.RoundStats) bool { return st.OriginErr <= target })); err == nil {
		c.TrueRound = r
	}
	return c
}

// FirstRound is the first round from which ok holds to the end, or
// "never".
func FirstRound(stats []sim.RoundStats, ok func(sim.RoundStats) bool) string {
	for i, st := range stats {
		if ok(st) {
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

// VarianceRatio is the median over rounds of Variance[r+1]/Variance[r],
// while the variance is well above rounding.
func VarianceRatio(stats []sim.RoundStats) (float64, bool) {
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

func printAnswer(out io.Writer, title string, res *answer.Answer, limit int) {
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

func writeCSV(path string, stats []sim.RoundStats) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"round", "alive", "messages", "bytes", "origin_err", "median_err", "worst_err", "measured", "exact_share", "variance", "origin_dead", "err_estimate", "rule_converged", "honest_err", "flagged"})
	for _, st := range stats {
		w.Write([]string{strconv.Itoa(st.Round), strconv.Itoa(st.Alive), strconv.Itoa(st.Messages), strconv.FormatInt(st.Bytes, 10),
			strconv.FormatFloat(st.OriginErr, 'g', -1, 64), strconv.FormatFloat(st.MedianErr, 'g', -1, 64),
			strconv.FormatFloat(st.WorstErr, 'g', -1, 64), strconv.Itoa(st.Measured),
			strconv.FormatFloat(st.ExactShare, 'g', -1, 64), strconv.FormatFloat(st.Variance, 'g', -1, 64), strconv.Itoa(st.OriginDead),
			strconv.FormatFloat(st.ErrEstimate, 'g', -1, 64), strconv.FormatBool(st.RuleConverged),
			strconv.FormatFloat(st.HonestErr, 'g', -1, 64), strconv.FormatBool(st.Flagged)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// describe is an outcome in a line: the status the runtime would give, the
// error over the members that took part, and who was left out.
func describe(plan *query.Plan, o *sim.Outcome) string {
	status := "partial"
	if o.Converged {
		status = "converged"
	}
	return fmt.Sprintf("%s at round %d, error %s over the %d members that took part (accuracy %g%%); left out %d by the query, %d on Serf's verdict; %d lost unconfirmed; %d lost before it started; %d left and %d joined while it ran",
		status, o.Round, pct(o.Err), o.TookPart, 100*plan.Accuracy, o.Excluded, o.ByVerdict, o.Unconfirmed, o.Ghosts, o.Crashed, o.Joined)
}

// Trials runs k simulations of plan under cfg, with seeds cfg.Seed,
// cfg.Seed+1, …, and writes one line each and a summary: the share of
// answers the runtime would call converged, and their error over the
// members that took part. It is for churn (cfg.Session): each trial is one
// statement asked at a random moment of the process.
func Trials(out io.Writer, plan *query.Plan, cfg sim.Config, k int) error {
	if cfg.Session <= 0 {
		return fmt.Errorf("report: trials measure answers under churn: give a session")
	}
	var outcomes []sim.Outcome
	start := time.Now()
	for i := 0; i < k; i++ {
		c := cfg
		c.Seed = cfg.Seed + uint64(i)
		s, err := sim.New(plan, c)
		if err != nil {
			return err
		}
		for !s.Done() && s.Outcome() == nil {
			s.Step()
		}
		if err := honest(s); err != nil {
			return fmt.Errorf("report: trial %d: %w", i, err)
		}
		o := s.Outcome()
		if o == nil {
			return fmt.Errorf("report: trial %d ended without an answer", i)
		}
		outcomes = append(outcomes, *o)
		fmt.Fprintf(out, "seed %d: %s\n", c.Seed, describe(plan, o))
	}
	sum := SummarizeTrials(plan, outcomes)
	fmt.Fprintf(out, "\n%s\nN=%d, median session %.0f rounds, left out after %d rounds (at most %d told), Serf's verdict after %d rounds, %d trials in %.1fs\n",
		plan.Text, cfg.Nodes, cfg.Session, cfg.ExcludeRounds, cfg.MaxExcluded, cfg.DetectRounds, k, time.Since(start).Seconds())
	fmt.Fprintf(out, "converged %d of %d (%.1f%%); error of the converged over the members that took part: median %s, worst %s; %d converged beyond the accuracy\n",
		sum.Converged, sum.Trials, 100*sum.Share(), pct(sum.MedianErr), pct(sum.WorstErr), sum.Beyond)
	fmt.Fprintf(out, "per answer: %.1f members left out (%.3f%% of those that took part), %.1f lost unconfirmed, %.1f lost before it started, rounds median %d\n",
		sum.Excluded, 100*sum.ExcludedShare, sum.Unconfirmed, sum.Ghosts, sum.Rounds)
	return nil
}

// TrialSummary sums up outcomes.
type TrialSummary struct {
	Trials, Converged, Beyond int
	// MedianErr and WorstErr are over the converged answers.
	MedianErr, WorstErr float64
	// Means per answer.
	Excluded, ExcludedShare, Unconfirmed, Ghosts float64
	Rounds                                       int
}

// Share is the share of converged answers.
func (t TrialSummary) Share() float64 { return float64(t.Converged) / float64(max(t.Trials, 1)) }

// SummarizeTrials sums up outcomes against plan's accuracy.
func SummarizeTrials(plan *query.Plan, outcomes []sim.Outcome) TrialSummary {
	t := TrialSummary{Trials: len(outcomes)}
	var errs []float64
	var rounds []int
	for _, o := range outcomes {
		rounds = append(rounds, o.Round)
		t.Excluded += float64(o.Excluded + o.ByVerdict)
		t.ExcludedShare += float64(o.Excluded+o.ByVerdict) / float64(max(o.TookPart, 1))
		t.Unconfirmed += float64(o.Unconfirmed)
		t.Ghosts += float64(o.Ghosts)
		if o.Converged {
			t.Converged++
			errs = append(errs, o.Err)
			if o.Err > plan.Accuracy {
				t.Beyond++
			}
		}
	}
	if n := float64(max(len(outcomes), 1)); n > 0 {
		t.Excluded, t.ExcludedShare, t.Unconfirmed, t.Ghosts = t.Excluded/n, t.ExcludedShare/n, t.Unconfirmed/n, t.Ghosts/n
	}
	if len(errs) > 0 {
		sort.Float64s(errs)
		t.MedianErr, t.WorstErr = errs[len(errs)/2], errs[len(errs)-1]
	}
	if len(rounds) > 0 {
		sort.Ints(rounds)
		t.Rounds = rounds[len(rounds)/2]
	}
	return t
}
