package node

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/peerq/peerq/query"
)

// churnStatements are the five statements of the churn benchmark: a COUNT
// with a filter, a SUM, MIN and MAX, a top-10, a GROUP BY (with an AVG, so
// that it gossips).
var churnStatements = []string{
	"SELECT COUNT(*) FROM peers WHERE mem_free >= 2GB",
	"SELECT SUM(cpu_cores) FROM peers WHERE mem_free >= 0",
	"SELECT MIN(mem_free), MAX(mem_free) FROM peers",
	"SELECT node, reliability FROM peers ORDER BY reliability DESC LIMIT 10",
	"SELECT region, COUNT(*), AVG(cpu_load) FROM peers GROUP BY region",
}

// TestQueryChurnBenchmark measures answers under churn, as a user of the
// demo sees them: a frozen embedded cluster of PEERQ_QCHURN peers asks the
// five statements of churnStatements again and again for
// PEERQ_QCHURN_SECONDS (90) without churn, then as long with
// PEERQ_QCHURN_RATE of the peers killed a minute (0.1), each down
// PEERQ_QCHURN_DOWN (30s). It reports, for each phase, the answers, the
// share partial, the converged answers' median latency, and the converged
// answers that are not within 1% of the truth over the peers that took
// part (the live peers at the start or at the end of the statement, less
// those it left out).
//
//	PEERQ_QCHURN=60 PEERQ_QCHURN_RATE=0.1 PEERQ_QCHURN_DOWN=30s go test ./node -run TestQueryChurnBenchmark -v -timeout 30m
func TestQueryChurnBenchmark(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PEERQ_QCHURN"))
	if n == 0 {
		t.Skip("set PEERQ_QCHURN to the number of peers")
	}
	rate, _ := strconv.ParseFloat(os.Getenv("PEERQ_QCHURN_RATE"), 64)
	if rate <= 0 {
		rate = 0.1
	}
	down, err := time.ParseDuration(os.Getenv("PEERQ_QCHURN_DOWN"))
	if err != nil {
		down = 30 * time.Second
	}
	secs, _ := strconv.Atoi(os.Getenv("PEERQ_QCHURN_SECONDS"))
	if secs <= 0 {
		secs = 90
	}
	e := startEmbeddedWith(t, EmbeddedConfig{Nodes: n, Seed: 1, Freeze: true, DataDir: t.TempDir()})
	asker := e.Node(0)
	all := e.Records()
	byName := map[string]query.Record{}
	for _, r := range all {
		byName[r["node"].Str] = r
	}
	stmts := churnStatements
	if k, err := strconv.Atoi(os.Getenv("PEERQ_QCHURN_ONLY")); err == nil && k >= 0 && k < len(stmts) {
		stmts = stmts[k : k+1] // one statement, to study it
	}
	plans := make([]*query.Plan, len(stmts))
	for i, src := range stmts {
		if plans[i], err = asker.Compile(src); err != nil {
			t.Fatal(err)
		}
	}
	live := func() map[string]bool {
		out := map[string]bool{}
		for i := range e.Nodes {
			if !e.Down(i) {
				out[query.SyntheticName(i)] = true
			}
		}
		return out
	}
	type tally struct {
		answers, partial, wrong, excluded int
		lat, latClean                     []time.Duration
		rounds                            []int
		reasons                           map[string]int
	}
	// counters sums what the live peers' runtimes did, and the asker's
	// recent exchange time: where a phase's time goes.
	counters := func() (st Stats) {
		for i := range e.Nodes {
			if e.Down(i) {
				continue
			}
			s := e.Node(i).Stats()
			st.Rounds += s.Rounds
			st.Exchanges += s.Exchanges
			st.Failed += s.Failed
			st.Lost += s.Lost
			st.FalseLost += s.FalseLost
			st.Probes += s.Probes
			st.Indirect += s.Indirect
		}
		return st
	}
	phase := func(name string, d time.Duration) tally {
		c0, t0 := counters(), time.Now()
		defer func() {
			c1 := counters()
			t.Logf("bench: %s: peers' rounds %d, exchanges %d (failed %d), members found lost %d (%d wrongly), probes %d (indirect %d) in %v; asker's exchange time %v",
				name, c1.Rounds-c0.Rounds, c1.Exchanges-c0.Exchanges, c1.Failed-c0.Failed, c1.Lost-c0.Lost, c1.FalseLost-c0.FalseLost, c1.Probes-c0.Probes, c1.Indirect-c0.Indirect,
				time.Since(t0).Round(time.Second), time.Duration(asker.rt.exchangeTime.Load()))
		}()
		tl := tally{reasons: map[string]int{}}
		end := time.Now().Add(d)
		for k := 0; time.Now().Before(end); k++ {
			p := plans[k%len(plans)]
			before := live()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			res, err := asker.Query(ctx, p, nil)
			cancel()
			after := live()
			if res == nil {
				t.Logf("%s: %s: %v", name, p.Text, err)
				continue
			}
			tl.answers++
			tl.excluded += len(res.Excluded)
			if res.Status == StatusPartial {
				tl.partial++
				why := res.Reason
				if i := len(why); i > 40 {
					why = why[:40]
				}
				tl.reasons[why]++
				continue
			}
			tl.lat = append(tl.lat, res.Took())
			tl.rounds = append(tl.rounds, res.Rounds)
			if len(res.Excluded) == 0 {
				tl.latClean = append(tl.latClean, res.Took())
			}
			ok, core, doubt := rightOverTookPart(p, res, before, after, nil, byName)
			if !ok {
				tl.wrong++
				t.Logf("%s: WRONG: %s: %v (excluded %v; up throughout %d, in doubt %v; exact over those up throughout %v; %d rounds, error estimate %.4f, participants %.1f of %d peers, %v)",
					name, p.Text, res.Rows, res.Warning, len(core), doubt, query.Exact(p, core).Rows, res.Rounds, res.ErrEstimate, res.Participants, res.Peers, res.Took())
			}
		}
		sort.Slice(tl.lat, func(i, j int) bool { return tl.lat[i] < tl.lat[j] })
		sort.Slice(tl.latClean, func(i, j int) bool { return tl.latClean[i] < tl.latClean[j] })
		sort.Ints(tl.rounds)
		med := time.Duration(0)
		if len(tl.lat) > 0 {
			med = tl.lat[len(tl.lat)/2]
			t.Logf("bench: %s: rounds median %d; converged without anyone left out: %d, median %v", name, tl.rounds[len(tl.rounds)/2],
				len(tl.latClean), tl.latClean[len(tl.latClean)/2].Round(time.Millisecond))
		}
		t.Logf("bench: %s: %d answers, %d partial (%.1f%%), %d wrong, converged median %v, %d members left out in all; partial reasons %v",
			name, tl.answers, tl.partial, 100*float64(tl.partial)/float64(max(tl.answers, 1)), tl.wrong, med.Round(time.Millisecond), tl.excluded, tl.reasons)
		return tl
	}
	quiet := phase("no churn", time.Duration(secs)*time.Second)
	ctx, stop := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- e.Churn(ctx, ChurnConfig{PerMinute: rate, Down: down, Spare: []int{0}, Seed: 1})
	}()
	churned := phase(fmt.Sprintf("churn %.0f%%/min, down %v", 100*rate, down), time.Duration(secs)*time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ratio := func(tl tally) time.Duration {
		if len(tl.lat) == 0 {
			return 0
		}
		return tl.lat[len(tl.lat)/2]
	}
	if q := ratio(quiet); q > 0 {
		t.Logf("bench: converged latency, churn ÷ no churn: %.2f", float64(ratio(churned))/float64(q))
	}
	if churned.wrong > 0 || quiet.wrong > 0 {
		t.Errorf("wrong and unflagged answers: %d without churn, %d with", quiet.wrong, churned.wrong)
	}
}
