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
	if err := c.nodes[0].Export("SELECT SUM(peer_hours) FROM leases"); err != nil {
		t.Fatalf("an aggregate export: %v", err)
	}
	if err := c.nodes[0].Export("SELECT node FROM peers LIMIT 3 EVERY 1s"); err == nil {
		t.Error("a top-k export was accepted")
	}
	if err := c.nodes[0].Export("SELECT region, COUNT(*), AVG(cpu_load) FROM peers WHERE mem_free >= 0B GROUP BY region EVERY 1s"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		total := 0.0
		for _, l := range strings.Split(metricsText(t, c.nodes[0]), "\n") {
			if strings.HasPrefix(l, `peerq_export_value{column="COUNT(*)",export="1",group="`) {
				var v float64
				fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v)
				total += v
			}
		}
		if total > 7.9 && total < 8.1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exported counts add up to %v, want 8", total)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
