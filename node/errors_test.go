package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/fakenet"
	"github.com/peerq/peerq/query"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Errors are not swallowed: what fails ends, is logged and is counted.

// logLines is a Config.Logf that keeps what it is told.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// with returns the lines that hold every one of words.
func (l *logLines) with(words ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, w := range words {
			if !strings.Contains(line, w) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// metricsText is n's collector in the text format that /metrics serves.
func metricsText(t *testing.T, n *Node) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(n.Metrics()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// metric is the value /metrics shows for a metric with no labels.
func metric(t *testing.T, n *Node, name string) string {
	t.Helper()
	v, ok := seriesText(t, n, name)
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	return v
}

// seriesText is the value /metrics shows for one series, as text, and
// whether it shows it.
func seriesText(t *testing.T, n *Node, name string) (string, bool) {
	t.Helper()
	for _, line := range strings.Split(metricsText(t, n), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v, true
		}
	}
	return "", false
}

// series is the value /metrics shows for one series, written as the
// text format writes it (labels in name order: `peerq_relays_total{result="delivered",way="out"}`),
// and whether it shows it.
func series(t *testing.T, n *Node, name string) (float64, bool) {
	t.Helper()
	v, ok := seriesText(t, n, name)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s %s: %v", name, v, err)
	}
	return f, true
}

// seriesSum is a series' sum over nodes (0 where one does not show it).
func seriesSum(t *testing.T, nodes []*Node, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, n := range nodes {
		v, _ := series(t, n, name)
		sum += v
	}
	return sum
}

// toldOnce checks that one failure shows once everywhere: stat (from
// Stats) is 1, so is the metric name in /metrics, and one line of the log
// holds words.
func toldOnce(t *testing.T, n *Node, stat int64, name string, logs *logLines, words ...string) {
	t.Helper()
	if stat != 1 {
		t.Errorf("Stats: %d, want 1 (%s)", stat, name)
	}
	if v := metric(t, n, name); v != "1" {
		t.Errorf("%s %s, want 1", name, v)
	}
	if got := logs.with(words...); len(got) != 1 {
		t.Errorf("logged %d times, want once: %q", len(got), got)
	}
}

// An answer the asker cannot read ends its query at once, partial, with
// the reason — not at the statement's timeout with no answer at all, its
// instance kept for ever. Here the asker's own record holds a number
// where the others' tag says text, +Inf: its GROUP BY key does not decode
// (run.GroupResults), from the first round on.
func TestUnreadableAnswerEndsQuery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		logs := &logLines{}
		i := 0
		c := startFake(t, 8, fakenet.DefaultConfig(), 1, func(cfg *Config) {
			if i == 0 {
				own := cfg.Record
				cfg.Record = func() query.Record {
					r := own()
					r["gpu"] = query.Num(query.KindNumber, math.Inf(1))
					return r
				}
				cfg.Logf = logs.logf
			}
			i++
		})
		tags := map[string]string{"gpu": "a100"}
		for k, v := range c.cfgs[1].Tags {
			tags[k] = v
		}
		if err := c.nodes[1].net.SetTags(tags); err != nil {
			t.Fatal(err)
		}
		elapse(5 * time.Second)
		asker := c.nodes[0]
		p := compile(t, asker, "SELECT gpu, AVG(cpu_load) FROM peers GROUP BY gpu")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		res, err := asker.Query(ctx, p, nil)
		took := time.Since(start) // fake time
		if err != nil {
			t.Fatalf("the query failed after %v: %v", took, err)
		}
		t.Logf("after %v, %d rounds: %s: %s", took, res.Rounds, res.Status, res.Reason)
		if took > 5*time.Second || res.Rounds > 3 {
			t.Errorf("the query ended after %v and %d rounds: not at once", took, res.Rounds)
		}
		if res.Status != StatusPartial || res.Converged {
			t.Errorf("status %s, converged %v: want partial", res.Status, res.Converged)
		}
		if !strings.Contains(res.Reason, "could not be read") || !strings.Contains(res.Reason, "malformed group key") {
			t.Errorf("the reason does not say what happened: %q", res.Reason)
		}
		if len(res.Columns) != len(p.Columns) {
			t.Errorf("the answer has no columns: %+v", res.Columns)
		}
		toldOnce(t, asker, asker.Stats().Unreadable, "peerq_queries_unreadable_total", logs, "could not be read")
		// The asker's instance ends and is collected, as any answered one.
		elapse(10 * time.Second)
		asker.rt.mu.Lock()
		left := len(asker.rt.queries)
		asker.rt.mu.Unlock()
		if left != 0 {
			t.Errorf("%d instances still at the asker", left)
		}
	})
}

// A member's lease tag that does not parse is read as unknown, as before,
// but no longer without a word: it is logged and counted once per member
// and tag however often the tags are read, and again if it breaks again
// after it was mended.
func TestMalformedLeaseTags(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		logs := &logLines{}
		i := 0
		c := startFake(t, 4, fakenet.DefaultConfig(), 1, func(cfg *Config) {
			if i == 0 {
				cfg.Logf = logs.logf
			}
			i++
		})
		n := c.nodes[0]
		show := func(until, since string) {
			t.Helper()
			tags := map[string]string{TagSubcloud: "pool", tagOwner: c.nodes[3].Name(), tagUntil: until, tagSince: since}
			for k, v := range c.cfgs[2].Tags {
				tags[k] = v
			}
			if err := c.nodes[2].net.SetTags(tags); err != nil {
				t.Fatal(err)
			}
			elapse(time.Second)
		}
		read := func() leaseOf {
			t.Helper()
			var l leaseOf
			for range 5 { // every membership answer reads them all
				l = n.sc.leaseView(n.net.Members())[c.nodes[2].Name()]
			}
			return l
		}
		bad := c.nodes[2].Name()
		show("soon", "1700000000000")
		if l := read(); l.subcloud != "pool" || l.until != 0 || l.since != 1700000000000 {
			t.Errorf("lease read as %+v: want pool, until unknown, since as shown", l)
		}
		if got := logs.with(bad, tagUntil, `"soon"`); len(got) != 1 {
			t.Errorf("logged %d times, want once: %q", len(got), logs.with(bad))
		}
		if st := n.Stats(); st.BadLeaseTags != 1 {
			t.Errorf("Stats.BadLeaseTags = %d, want 1", st.BadLeaseTags)
		}
		show("1700000000", "yesterday") // until mended, since broken
		if l := read(); l.until != 1700000000 || l.since != 0 {
			t.Errorf("lease read as %+v", l)
		}
		show("soon", "yesterday") // until broken again
		read()
		if got := logs.with(bad, tagUntil); len(got) != 2 {
			t.Errorf("the until tag, broken twice, logged %d times: %q", len(got), got)
		}
		if got := logs.with(bad, tagSince); len(got) != 1 {
			t.Errorf("the since tag logged %d times, want once: %q", len(got), got)
		}
		if st := n.Stats(); st.BadLeaseTags != 3 {
			t.Errorf("Stats.BadLeaseTags = %d, want 3", st.BadLeaseTags)
		}
		if v := metric(t, n, "peerq_lease_tags_malformed_total"); v != "3" {
			t.Errorf("peerq_lease_tags_malformed_total %s, want 3", v)
		}
	})
}

// refusingTags is a network that will not change the peer's tags.
type refusingTags struct{ *fakenet.Host }

func (refusingTags) SetTags(map[string]string) error { return errors.New("serf: tags too large") }

// A tag update the network refuses is logged and counted.
func TestTagUpdateFailures(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		nw := fakenet.New(fakenet.DefaultConfig())
		rec, tags := SyntheticPeer(1, 0)
		cfg := DefaultConfig(func() query.Record { return rec })
		logs := &logLines{}
		cfg.Tags, cfg.Logf = tags, logs.logf
		n, err := New(cfg, refusingTags{nw.Add(query.SyntheticName(0), tags)})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		n.leases.show()
		elapse(time.Second)
		toldOnce(t, n, n.Stats().TagFailures, "peerq_tag_update_failures_total", logs, "tags too large")
	})
}

// Every series the collector can show is in docs/API.md's table, so that
// an operator finds what it means. Mutation: before this test, four of
// them were not (records refused, lease requests refused, storage fault,
// skewed clocks).
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 128)
	newMetrics(metricsSource{}).Describe(ch)
	close(ch)
	n := 0
	for d := range ch {
		_, rest, _ := strings.Cut(d.String(), `fqName: "`)
		name, _, _ := strings.Cut(rest, `"`)
		if name == "" {
			t.Fatalf("no name in %s", d)
		}
		n++
		if !bytes.Contains(doc, []byte("`"+name)) {
			t.Errorf("%s is not in docs/API.md", name)
		}
	}
	if n < 30 {
		t.Fatalf("%d series described, want every one", n)
	}
}
