package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerq/peerq/answer"
	"github.com/peerq/peerq/fakenet"
)

// Standing queries: WATCH's epochs and --export's gauges. Their HTTP side
// (an answer line per epoch, /metrics over the API) is server's.

// realTimeCluster is a fake cluster in real time, for standing queries
// whose epochs wait on the wall clock.
func realTimeCluster(t *testing.T, n int) *cluster {
	return startFake(t, n, fakenet.DefaultConfig(), 1, func(c *Config) { c.Round = 20 * time.Millisecond })
}

func TestWatchEveryBelowRound(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := startFake(t, 2, fakenet.DefaultConfig(), 1, func(cfg *Config) { cfg.Round, cfg.MinRound = 2*time.Second, time.Second })
		err := c.nodes[0].Watch(context.Background(), "WATCH SELECT COUNT(*) FROM peers EVERY 1s", func(*answer.Answer, error) bool { return true })
		if err == nil || !strings.Contains(err.Error(), "shorter than this agent's round") {
			t.Errorf("EVERY 1s with 2s rounds: %v", err)
		}
		c.close()
	})
}

// --export: a standing query's latest answer as gauges, a group a gauge.
func TestExportGauges(t *testing.T) {
	t.Parallel()
	c := realTimeCluster(t, 8)
	if err := c.nodes[0].Export("", "SELECT SUM(peer_hours) FROM leases"); err != nil {
		t.Fatalf("an aggregate export: %v", err)
	}
	if err := c.nodes[0].Export("top", "SELECT node FROM peers LIMIT 3 EVERY 1s"); err == nil {
		t.Error("a top-k export was accepted")
	}
	if err := c.nodes[0].Export("by-region", "SELECT COUNT(*) FROM peers"); err == nil || !strings.Contains(err.Error(), `export name "by-region": want snake_case`) {
		t.Errorf("a name that is not snake_case: %v", err)
	}
	if err := c.nodes[0].Export("by_region", "SELECT region, COUNT(*), AVG(cpu_load) FROM peers WHERE mem_free >= 0B GROUP BY region EVERY 1s"); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[0].Export("by_region", "SELECT COUNT(*) FROM peers"); err == nil || !strings.Contains(err.Error(), `two exports named "by_region"`) {
		t.Errorf("a second export of the same name: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		total := 0.0
		text := metricsText(t, c.nodes[0])
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, `peerq_export_value{column="COUNT(*)",export="by_region",group="`) {
				var v float64
				fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v)
				total += v
			}
		}
		// The unnamed export is labelled with its statement.
		if total > 7.9 && total < 8.1 && strings.Contains(text, `peerq_export_epoch{export="WATCH SELECT SUM(peer_hours) FROM leases"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exported counts add up to %v, want 8; the unnamed export labelled with its statement:\n%s", total, text)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An export's first answer waits until the membership has settled: while
// members join, each epoch's COUNT(*) is exact for the members of the
// moment, and none is shown; the first shown is the settled cloud's.
func TestExportSettles(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		tune := func(cfg *Config) { cfg.ExportSettle = 3 * time.Second }
		c := startFake(t, 1, fakenet.DefaultConfig(), 1, tune)
		if err := c.nodes[0].Export("peers", "SELECT COUNT(*) FROM peers EVERY 1s"); err != nil {
			t.Fatal(err)
		}
		shown := func() string {
			for _, l := range strings.Split(metricsText(t, c.nodes[0]), "\n") {
				if v, ok := strings.CutPrefix(l, `peerq_export_value{column="COUNT(*)",export="peers",group=""} `); ok {
					return v
				}
			}
			return ""
		}
		// A member joins every second, for 8 s: the membership never
		// holds still for 3 s, and no epoch is shown.
		for range 8 {
			elapse(time.Second)
			if v := shown(); v != "" {
				t.Fatalf("with %d members joining, the export shows %s", len(c.nodes), v)
			}
			c.add(t, 1, tune)
		}
		// Still: the next complete epoch is shown, all 9.
		elapse(5 * time.Second)
		if v := shown(); v != "9" {
			t.Errorf("settled: the export shows %q, want 9", v)
		}
		c.close()
	})
}
