package node

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/query"
)

// churnQueries are the statements the churn tests ask: sums and counts
// (flows to undo), a maximum whose witness may be the lost member, a top-k
// that may name it, groups.
var churnQueries = []string{
	"SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 0",
	"SELECT MAX(mem_free), MIN(mem_free) FROM peers",
	"SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 3",
	"SELECT region, COUNT(*) FROM peers GROUP BY region",
}

// A member lost at each phase of a query — before it starts, as it
// spreads, while it converges, near its budget — with a failure detector
// too slow to help (Serf's verdict a minute away): the query's own peers
// find it lost (a refused connection at once; a silent machine by a ping
// and indirect probes), leave it out, undo their flows with it and drop
// what it gave; the answer is converged or exact over the others, names
// it, and is right over them. The lost member holds the largest mem_free:
// MAX and the top-k must find the next.
func TestLostMidQueryIsExcluded(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"stopped", "crashed"} {
		for _, at := range []time.Duration{-time.Second, 0, 150 * time.Millisecond, 500 * time.Millisecond, 1200 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s at %v", how, at), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					fcfg := fakenet.DefaultConfig()
					fcfg.Detect, fcfg.Jitter = time.Minute, 5*time.Millisecond
					c := startFake(t, 12, fcfg, 3, nil)
					asker := c.nodes[0]
					// The member with the most mem_free: lost.
					best := 1
					for i, r := range c.records() {
						if i > 0 && r["mem_free"].Num > c.records()[best]["mem_free"].Num {
							best = i
						}
					}
					lostName := c.nodes[best].Name()
					lose := func() {
						if how == "stopped" {
							c.nodes[best].Close()
							c.net.Stop(lostName) // its process is gone: connections refused
						} else {
							c.kill(best) // the machine is gone: silence
						}
					}
					all := c.records()
					var survivors []query.Record
					for i, r := range all {
						if i != best {
							survivors = append(survivors, r)
						}
					}
					if at < 0 {
						lose()
						elapse(-at)
					}
					outs := make([]*answer.Answer, len(churnQueries))
					errs := make([]error, len(churnQueries))
					var wg sync.WaitGroup
					for i, src := range churnQueries {
						wg.Add(1)
						go func() {
							defer wg.Done()
							outs[i], errs[i] = asker.Query(context.Background(), compile(t, asker, src), nil)
						}()
					}
					if at >= 0 {
						elapse(at)
						lose()
					}
					wg.Wait()
					for i, src := range churnQueries {
						res, err := outs[i], errs[i]
						p := compile(t, asker, src)
						if res == nil {
							t.Fatalf("%s: %v", src, err)
						}
						if res.Flagged() {
							t.Errorf("%s: partial (%s), want converged over the others", src, res.Reason)
							continue
						}
						// Over the members that took part: without the lost one
						// if the answer left it out (and names it), with it if
						// it took part before it was lost.
						excluded := slices.Contains(res.Excluded, lostName)
						want := query.Exact(p, all)
						if excluded {
							want = query.Exact(p, survivors)
						}
						if !closeTo(res, want) {
							t.Errorf("%s: %v, want %v (excluded %v)", src, res.Rows, want.Rows, res.Excluded)
						}
						if excluded && slices.Contains(res.Nodes, lostName) {
							t.Errorf("%s: the top-k names the member it left out", src)
						}
						// (An answer from the membership exchanges with no one:
						// it counts the member until some peer finds it lost.)
						if !excluded && !res.FromTags && (at < 0 || how == "stopped" && res.Took() > at+time.Second) {
							t.Errorf("%s: the member lost %v in did not count as lost (answered in %v)", src, at, res.Took())
						}
						t.Logf("%s: %s in %v, excluded %v", src, res.Status, res.Took().Round(time.Millisecond), res.Excluded)
					}
				})
			})
		}
	}
}

// A member left out although it is alive — cut off from everyone for a
// second, long before Serf would say anything — hears it once the cut
// heals, from the first peer it exchanges with, and stops contributing:
// the answer is over the others (it names the member) and right over
// them, whatever the member gave before it was cut and would give after.
//
// With a fanout (Config.Fanout) the member cut off announces to more peers
// and found several of them lost from where it was; once back, the peers
// that had left it out took its word on them and left alive members out
// (3 of 30 answers were over 27). A member left out is not heard on who is
// lost (runtime.takeExcluded).
func TestExcludedAliveMemberStops(t *testing.T) {
	t.Parallel()
	for _, fanout := range []int{0, 3} {
		t.Run(fmt.Sprintf("fanout %d", fanout), func(t *testing.T) {
			t.Parallel()
			excludedAliveMemberStops(t, fanout)
		})
	}
}

func excludedAliveMemberStops(t *testing.T, fanout int) {
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		fcfg.Detect = time.Minute
		// Rounds of 100 ms, as on a LAN (fakenet answers at once: rounds
		// would otherwise take MinRound, and the budget end before a probe).
		c := startFake(t, 30, fcfg, 5, func(cfg *Config) { cfg.MinRound, cfg.Fanout = cfg.Round, fanout })
		asker, cutIdx := c.nodes[0], 4
		cut := c.nodes[cutIdx].Name()
		var rest []string
		var survivors []query.Record
		for i, r := range c.records() {
			if i != cutIdx {
				rest = append(rest, c.nodes[i].Name())
				survivors = append(survivors, r)
			}
		}
		src := "SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 0"
		p := compile(t, asker, src)
		wait := queryLater(asker, p)
		elapse(600 * time.Millisecond) // it has taken part: its mass is in the flows
		c.net.Partition([]string{cut}, rest)
		elapse(1500 * time.Millisecond)
		c.net.Heal()
		res, err := wait()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(res.Excluded, cut) {
			// The rule may converge before any peer has found the member
			// cut off (its 8 rounds of random partners missed it: about
			// 1 run in 500 beside busy loops, fanout 0, also before
			// 2026-12-05's changes): its mass is still in the flows, so the
			// answer must be right over all 30 — right or flagged, as
			// always; what follows the exclusion is not tried then.
			if all := query.Exact(p, c.records()); res.Flagged() || !closeTo(res, all) {
				t.Fatalf("the member cut off was not left out, and the answer is %s %v in %v (%d rounds), want converged %v over all (excluded %v)",
					res.Status, res.Rows, res.Took(), res.Rounds, all.Rows, res.Excluded)
			}
			t.Logf("converged in %v (%d rounds) before the member cut off was found: right over all", res.Took(), res.Rounds)
			return
		}
		if res.Flagged() {
			t.Errorf("partial (%s) in %v, want converged over the others (unreachable at the end %v)", res.Reason, res.Took(), res.Unreachable)
		}
		if want := query.Exact(p, survivors); !closeTo(res, want) {
			t.Errorf("%v, want %v over the others", res.Rows, want.Rows)
		}
		announced := int64(0)
		for _, n := range c.nodes {
			announced += n.Stats().Announced
		}
		if (announced > 0) != (fanout > 0) {
			t.Errorf("fanout %d: %d announcements", fanout, announced)
		}
		if st, shown := asker.Stats().Announced, metric(t, asker, "peerq_queries_announced_total"); shown != strconv.FormatInt(st, 10) {
			t.Errorf("/metrics shows %s announcements, Stats %d", shown, st)
		}
		if got := c.nodes[cutIdx].Stats().Excluded; got < 1 {
			t.Errorf("the member left out never heard it (Stats.Excluded %d)", got)
		}
	})
}

// Churn as a schedule: in a fake cluster of 40 peers whose failure
// detector takes 7 s (Serf's at this size), one peer every
// PEERQ_FCHURN_EVERY (default 2.5 s) is killed — as a machine switched off, or a process
// stopped — and restarted on its own state 4 s later, while the asker asks
// the churn statements one after another for a minute of fake time. Every
// answer that is not partial is right over the members that took part: all
// those up throughout it and not left out, and any of those that went down
// or came up while it ran. The share of partial answers is reported (the
// goal, at 60 peers and 60%/min, is in BENCHMARKS.md).
//
// Two faults it found are fixed (BENCHMARKS.md, "Answers under churn"):
// an exclusion still on its way to the asker when its rule fired (the
// asker now confirms it, run.Instance.Report), about one answer in 400 a
// small group's average 1–2.4% off; and a member switched off mid-query
// that its partners found only after the answer, their timeouts stretched
// by local health that counted restarted members as its own mistakes
// (prober.restarted), one GROUP BY answer in 170. A WRONG line names the
// doubtful members' kills and restarts and where finding them stood.
//
//	go test ./node -run TestChurnSchedule -v -count=20   # 120 answers a run
//	PEERQ_FCHURN_GROUPS=1 ...                           # the GROUP BY alone
func TestChurnSchedule(t *testing.T) {
	t.Parallel()
	answersWanted := 120
	if raceDetector {
		answersWanted = 48 // each statement 8 times: the race run looks for races, 44 s for 120
	}
	if k, _ := strconv.Atoi(os.Getenv("PEERQ_FCHURN_ANSWERS")); k > 0 {
		answersWanted = k // a longer study
	}
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		fcfg.Detect, fcfg.Jitter = 7*time.Second, 2*time.Millisecond
		// One lost every 2.5 s is 60%/min at 40 peers, the issue's
		// harshest goal; PEERQ_FCHURN_EVERY sets another pace.
		n, every := 40, 2500*time.Millisecond
		if d, err := time.ParseDuration(os.Getenv("PEERQ_FCHURN_EVERY")); err == nil && d > 0 {
			every = d
		}
		c := startFake(t, n, fcfg, 11, func(cfg *Config) { cfg.MinRound = cfg.Round / 2 })
		asker := c.nodes[0]
		byName := map[string]query.Record{}
		for _, r := range c.records() {
			byName[r["node"].Str] = r
		}
		// The churn statements, and a GROUP BY that gossips (an AVG per
		// group: small groups' means are the slowest to mix).
		srcs := append(slices.Clone(churnQueries), "SELECT region, COUNT(*), AVG(cpu_load) FROM peers GROUP BY region")
		plans := make([]*query.Plan, len(srcs))
		for i, src := range srcs {
			plans[i] = compile(t, asker, src)
		}
		r := rand.New(rand.NewPCG(7, 7))
		// mu guards down and moved; c.nodes[i] is written only by the
		// restart of i, so the test reads names, not c.nodes, here.
		var mu sync.Mutex
		down := map[int]bool{}
		moved := map[string]bool{} // went down or came up since the last live(true)
		// history is each member's kills and restarts, in fake time since
		// the churn began: a WRONG answer names those of its doubtful members.
		history := map[string][]string{}
		began := time.Now()
		live := func(reset bool) (up, wentOrCame map[string]bool) {
			mu.Lock()
			defer mu.Unlock()
			up = map[string]bool{}
			for i := range n {
				if !down[i] {
					up[query.SyntheticName(i)] = true
				}
			}
			wentOrCame = maps.Clone(moved)
			if reset {
				moved = map[string]bool{}
			}
			return up, wentOrCame
		}
		stop := make(chan struct{})
		churned := make(chan struct{})
		// restarts are the restarts still to come: waited for before the
		// cluster closes.
		var restarts sync.WaitGroup
		go func() { // the churn, in fake time
			defer close(churned)
			tick := time.NewTicker(every)
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				i := 1 + r.IntN(n-1)
				mu.Lock()
				if down[i] {
					mu.Unlock()
					continue
				}
				down[i] = true
				moved[query.SyntheticName(i)] = true
				how := "switched off"
				if k%2 != 0 {
					how = "stopped"
				}
				history[query.SyntheticName(i)] = append(history[query.SyntheticName(i)], fmt.Sprintf("%s at %v", how, time.Since(began)))
				mu.Unlock()
				if k%2 == 0 {
					c.kill(i)
				} else {
					c.nodes[i].Close()
					c.net.Stop(c.nodes[i].Name())
				}
				restarts.Add(1)
				time.AfterFunc(4*time.Second, func() {
					defer restarts.Done()
					mu.Lock()
					defer mu.Unlock()
					// Not c.restart: its t.Fatal cannot end the test from
					// this goroutine.
					back, err := New(c.cfgs[i], c.net.Revive(c.nodes[i].Name()))
					if err != nil {
						t.Errorf("restart of %s: %v", c.nodes[i].Name(), err)
						return
					}
					c.nodes[i] = back
					delete(down, i)
					moved[query.SyntheticName(i)] = true
					history[query.SyntheticName(i)] = append(history[query.SyntheticName(i)], fmt.Sprintf("back at %v", time.Since(began)))
				})
			}
		}()
		answers, partial, excluded, fromTags := 0, 0, 0, 0
		reasons := map[string]int{}
		if os.Getenv("PEERQ_FCHURN_GROUPS") != "" {
			plans = plans[len(plans)-1:] // the gossiping GROUP BY alone
		}
		for k := 0; k < answersWanted; k++ {
			p := plans[k%len(plans)]
			before, _ := live(true)
			asked := time.Since(began)
			res, err := asker.Query(context.Background(), p, nil)
			after, during := live(false)
			if err != nil {
				t.Fatalf("%s: %v", p.Text, err)
			}
			answers++
			excluded += len(res.Excluded)
			if res.Flagged() {
				partial++
				reasons[strings.SplitN(res.Reason, ":", 2)[0]]++
				continue
			}
			if res.FromTags {
				// From Serf's member list, exchanging with no one: it
				// counts a member lost until some peer finds it, or Serf
				// does (docs/PQL.md).
				fromTags++
				continue
			}
			ok, core, doubt := rightOverTookPart(p, res, before, after, during, byName)
			if !ok {
				mu.Lock()
				var lives []string
				for _, m := range doubt {
					lives = append(lives, fmt.Sprintf("%s %v", m, history[m]))
				}
				// Where finding the doubtful members stood when the answer
				// came (under mu: a restart writes c.nodes under it).
				var found []string
				for _, m := range doubt {
					failed, verifying, lost := 0, 0, 0
					for _, x := range c.nodes {
						if x.closed() {
							continue
						}
						x.prober.mu.Lock()
						if _, ok := x.prober.sus.failed[m]; ok {
							failed++
						}
						if x.prober.sus.verifying[m] {
							verifying++
						}
						if _, ok := x.prober.lost[m]; ok {
							lost++
						}
						x.prober.mu.Unlock()
					}
					asker.prober.mu.Lock()
					_, askerFailed := asker.prober.sus.failed[m]
					asker.prober.mu.Unlock()
					found = append(found, fmt.Sprintf("%s: suspected by %d, verifying at %d, found lost by %d, suspected by the asker %v", m, failed, verifying, lost, askerFailed))
				}
				mu.Unlock()
				lives = append(lives, found...)
				t.Errorf("WRONG: %s: %v (%s; up throughout %d, in doubt %v; exact over those %v; %d rounds, error estimate %.4f, participants %.1f of %d peers; asked at %v, answered in %v; the doubtful: %s)",
					p.Text, res.Rows, res.Warning, len(core), doubt, query.Exact(p, core).Rows, res.Rounds, res.ErrEstimate, res.Participants, res.Peers, asked, res.Took(), strings.Join(lives, "; "))
			}
		}
		close(stop)
		<-churned
		// A restart still pending would start a peer after the cluster's
		// cleanup has closed the others, and the bubble would never end.
		restarts.Wait()
		// An answer that is partial is never wrong, so a runtime that gave
		// up on everything would pass the checks above: 3 in 2,400 were
		// partial at this pace (BENCHMARKS.md); a fifth is a regression.
		if partial*5 > answers {
			t.Errorf("%d of %d answers partial under churn (%v), want at most a fifth", partial, answers, reasons)
		}
		t.Logf("%d answers under churn (a peer in 40 lost every %v, down 4 s): %d partial (%.1f%%), %d from the member list, %d members left out in all; partial for %v",
			answers, every, partial, 100*float64(partial)/float64(answers), fromTags, excluded, reasons)
	})
}

// rightOverTookPart says whether an answer is right over the members that
// took part: who did is known only up to the members that went down or
// came up while it ran (live before it, after it, and those the churn
// moved in between: a member down at both ends may have been up for part
// of it, and one up at both ends may have been down), so every subset of
// those, with the members up throughout and not left out, is a right
// population. moved may be nil where the churn is too slow for a member to
// go and come back within one statement. It returns those up throughout
// and those in doubt.
func rightOverTookPart(p *query.Plan, res *answer.Answer, before, after, moved map[string]bool, byName map[string]query.Record) (ok bool, core []query.Record, doubt []string) {
	inDoubt := map[string]bool{}
	for m := range before {
		if after[m] && !moved[m] {
			if !slices.Contains(res.Excluded, m) {
				core = append(core, byName[m])
			}
		} else {
			inDoubt[m] = true
		}
	}
	for m := range after {
		if !before[m] {
			inDoubt[m] = true
		}
	}
	for m := range moved {
		inDoubt[m] = true
	}
	for m := range inDoubt {
		if !slices.Contains(res.Excluded, m) {
			doubt = append(doubt, m)
		}
	}
	slices.Sort(doubt)
	for mask := 0; mask < 1<<min(len(doubt), 10) && !ok; mask++ {
		recs := slices.Clone(core)
		for i, m := range doubt {
			if mask&(1<<i) != 0 {
				recs = append(recs, byName[m])
			}
		}
		ok = closeTo(res, query.Exact(p, recs))
	}
	return ok, core, doubt
}

// Left out of a query is not lost for a subcloud: a member cut off from
// the asker's side (with its owner, which still reaches it) is left out of
// the asker's answers, and keeps its lease and its place; the owner does
// not repair it. Leases follow Serf's verdict and the owner's own checks.
func TestExcludedIsNotReleased(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fcfg := fakenet.DefaultConfig()
		fcfg.Detect = time.Minute
		c := startFake(t, 10, fcfg, 9, func(cfg *Config) { cfg.MinRound = cfg.Round })
		asker, owner := c.nodes[0], c.nodes[1]
		res := ask(t, owner, compile(t, owner, "RESERVE 8 FROM peers WHERE node != 'peer-000000' AS kept FOR 5m"))
		var member *Node
		for _, m := range res.Nodes {
			if i := c.index(m); i > 1 {
				member = c.nodes[i]
				break
			}
		}
		if member == nil {
			t.Fatalf("no member to cut off among %v", res.Nodes)
		}
		var rest []string
		for _, n := range c.nodes {
			if n != owner && n != member {
				rest = append(rest, n.Name())
			}
		}
		var got *answer.Answer
		done := make(chan struct{})
		go func() {
			defer close(done)
			got = ask(t, asker, compile(t, asker, "SELECT COUNT(*) FROM peers WHERE mem_free >= 0"))
		}()
		elapse(300 * time.Millisecond)
		c.net.Partition([]string{owner.Name(), member.Name()}, rest)
		elapse(1500 * time.Millisecond)
		c.net.Heal() // the member hears it was left out, and stops
		<-done
		if !slices.Contains(got.Excluded, member.Name()) {
			t.Fatalf("the member cut off was not left out: %s, excluded %v", got.Status, got.Excluded)
		}
		if member.Stats().Excluded < 1 {
			t.Errorf("the member never heard it was left out")
		}
		elapse(5 * time.Second)
		if l, ok := member.leases.current(); !ok || l.Subcloud != "kept" {
			t.Errorf("the member left out of a query lost its lease: %+v %v", l, ok)
		}
		still := slices.Contains(ownedMembers(owner, "kept"), member.Name())
		_, _, repairs := ownedSize(owner, "kept")
		if !still || repairs != 0 {
			t.Errorf("the owner dropped the member left out of a query (still a member %v, repairs %d)", still, repairs)
		}
	})
}

// A member that hangs — silent to every exchange, yet alive in the
// membership for as long as it likes (Serf's verdict an hour away) — is
// found lost by the first statement after it hangs, and stays left out
// of every statement after, however long it stays: each one names it and
// is right over the others, and none waits to find it again, nor asks it
// for its record in the sample that checks the answer. (Its note used to
// expire after HintTTL, and every statement asked later paid the
// exchanges and probes that found it once more; the sample, drawn from
// every member, waited for it and left the answer unchecked.)
func TestHungMemberStaysLeftOut(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fcfg, c := startHanging(t)
		asker := c.nodes[0]
		const src = "SELECT COUNT(*), SUM(cpu_cores) FROM peers WHERE mem_free >= 0"
		p := compile(t, asker, src)
		at := time.Now()
		healthy := ask(t, asker, p)
		healthyWall := time.Since(at)
		if healthy.Check == nil || healthy.Check.Verdict != "agrees" {
			t.Fatalf("the healthy cluster's answer: check %+v, want the sample's agreement", healthy.Check)
		}
		hung := c.nodes[7].Name()
		c.kill(7)
		survivors := c.records()
		first := ask(t, asker, p)
		if !slices.Contains(first.Excluded, hung) || first.Flagged() {
			t.Fatalf("the statement after %s hung: %s (%s), left out %v", hung, first.Status, first.Reason, first.Excluded)
		}
		t.Logf("healthy %v, first after the hang %v", healthy.Took(), first.Took())
		// SHOW MEMBERS says why: alive to the membership, lost to this
		// agent's exchanges; the others ok.
		defer func() {
			show := ask(t, asker, compile(t, asker, "SHOW MEMBERS"))
			col := map[string]int{}
			for i, k := range show.Columns {
				col[k.Name] = i
			}
			for _, row := range show.Rows {
				name, status, ex := row[col["node"]].Str, row[col["status"]].Str, row[col["exchanges"]]
				switch {
				case name == asker.Name():
					if !ex.IsNull() {
						t.Errorf("SHOW MEMBERS: exchanges %v for the asker itself, want NULL", ex)
					}
				case name == hung:
					if status != "alive" || !strings.HasPrefix(ex.Str, "lost since ") || !strings.Contains(ex.Str, unreachablePrefix) {
						t.Errorf("SHOW MEMBERS: %s %s, exchanges %q; want alive, lost since …: unreachable…", name, status, ex.Str)
					}
				case ex.Str != "ok":
					t.Errorf("SHOW MEMBERS: %s exchanges %q, want ok", name, ex.Str)
				}
			}
		}()
		for i, wait := range []time.Duration{15 * time.Second, 40 * time.Second, 2 * time.Minute} {
			elapse(wait)
			at := time.Now()
			res := ask(t, asker, p)
			wall := time.Since(at)
			t.Logf("%v later: %s in %v (%v with the sample check), left out %v, check %s", wait, res.Status, res.Took(), wall, res.Excluded, res.Check.Verdict)
			if res.Flagged() || !slices.Contains(res.Excluded, hung) {
				t.Errorf("statement %d: %s (%s), left out %v; want converged without %s", i+2, res.Status, res.Reason, res.Excluded, hung)
			}
			if want := query.Exact(p, survivors); !closeTo(res, want) {
				t.Errorf("statement %d: %v, want %v", i+2, res.Rows, want.Rows)
			}
			if res.Took() > healthy.Took()+fcfg.Timeout/2 {
				t.Errorf("statement %d took %v, the healthy cluster's %v: it looked for %s again", i+2, res.Took(), healthy.Took(), hung)
			}
			// The sample is of the members the answer is over: it asks
			// none that hangs, and checks the answer.
			if wall > healthyWall+fcfg.Timeout/2 || res.Check == nil || res.Check.Verdict != "agrees" {
				t.Errorf("statement %d: %v with its sample check (healthy: %v), check %+v: it asked %s", i+2, wall, healthyWall, res.Check, hung)
			}
		}
	})
}

// startHanging starts 12 fake peers whose membership would take an hour
// to declare a member failed: one that hangs stays alive to it.
func startHanging(t *testing.T) (fakenet.Config, *cluster) {
	fcfg := fakenet.DefaultConfig()
	fcfg.Detect = time.Hour
	return fcfg, startFake(t, 12, fcfg, 5, nil)
}

// A member that hangs while a top-k runs is a straggler the asker goes
// after (run.Instance.Straggler): the exchange to it fails, the prober
// finds it lost, and the answer is the exact top-k of the others, naming
// it. The chase of a member that does not answer costs nothing the test
// can see: 24 rounds and 810 ms (the fake clock) with it, 34 rounds and
// 780 ms with the runtime's chase turned off; right and converged either
// way.
func TestHungMemberInATopK(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		_, c := startHanging(t)
		asker := c.nodes[0]
		p := compile(t, asker, "SELECT node, mem_free FROM peers ORDER BY mem_free DESC LIMIT 3")
		healthy := ask(t, asker, p)
		hung := c.nodes[7].Name()
		c.kill(7)
		survivors := c.records()
		res := ask(t, asker, p)
		t.Logf("healthy: %s in %v, %d rounds; with %s hung: %s in %v, %d rounds (%s), left out %v", healthy.Status, healthy.Took(), healthy.Rounds,
			hung, res.Status, res.Took(), res.Rounds, res.Reason, res.Excluded)
		sameAnswer(t, res, query.Exact(p, survivors), p.Text)
		if res.Flagged() || !slices.Contains(res.Excluded, hung) {
			t.Errorf("the top 3 with %s hung: %s (%s), left out %v; want converged without it", hung, res.Status, res.Reason, res.Excluded)
		}
	})
}
