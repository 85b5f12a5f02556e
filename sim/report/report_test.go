package report

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerq/peerq/query"
	"github.com/peerq/peerq/sim"
	"github.com/peerq/peerq/sim/latency"
)

func TestConvergence(t *testing.T) {
	p, _ := query.CompileText("SELECT COUNT(*) FROM peers", query.DefaultCatalog(), query.DefaultConfig())
	stats := []sim.RoundStats{
		{Round: 1, OriginErr: 0.5}, {Round: 2, OriginErr: 0.005}, {Round: 3, OriginErr: 0.02},
		{Round: 4, OriginErr: 0.004}, {Round: 5, OriginErr: 0.003, RuleConverged: true}, {Round: 6, OriginErr: 0.001, RuleConverged: true},
	}
	c := Convergence(p, stats)
	if c.RuleRound != 5 || c.TrueRound != 4 || c.ErrAtRule != 0.003 {
		t.Errorf("%+v", c)
	}
	if FirstRound(stats, func(st sim.RoundStats) bool { return st.OriginErr < 0 }) != "never" {
		t.Error("never")
	}
}

// A small run writes its table, summary, CSV and plot.
func TestRun(t *testing.T) {
	p, _ := query.CompileText("SELECT AVG(cpu_load) FROM peers", query.DefaultCatalog(), query.DefaultConfig())
	dir := t.TempDir()
	var out bytes.Buffer
	cfg := sim.DefaultConfig(300)
	if err := Run(&out, p, cfg, Options{CSVPath: filepath.Join(dir, "r.csv"), PlotPath: filepath.Join(dir, "r.png")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"origin err", "engine's rule: final at round", "exact answer (1 rows)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "r.csv"))
	png, _ := os.ReadFile(filepath.Join(dir, "r.png"))
	if !bytes.HasPrefix(csv, []byte("round,alive")) || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("csv %q…, png %d bytes", csv[:min(20, len(csv))], len(png))
	}
}

// The baseline reads and times: a positive duration, from a mapping that
// is gone afterwards (a second call maps again).
func TestRandomRead(t *testing.T) {
	if _, err := RandomRead(1<<20, 1); errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err) // Windows: no mmap, no baseline (baseline_other.go)
	}
	for range 2 {
		d, err := RandomRead(1<<20, 1000)
		if err != nil || d <= 0 || d > time.Millisecond {
			t.Fatalf("RandomRead: %v, %v", d, err)
		}
	}
	if _, err := RandomRead(0, 10); err == nil {
		t.Error("an empty array was mapped")
	}
}

// One column reads one way: percentages, never an exponent.
func TestPct(t *testing.T) {
	for x, want := range map[float64]string{0.1243: "12.43%", 0.0123: "1.23%", 1.23e-5: "0.00123%", 0: "0%", 1e-9: "0.000000100%"} {
		if got := pct(x); got != want {
			t.Errorf("pct(%g) = %q, want %q", x, got, want)
		}
	}
}

// With a latency model the summary gives the answer in seconds beside a
// serf.Query's on the same model.
func TestRunInSeconds(t *testing.T) {
	p, err := query.CompileText("SELECT COUNT(*) FROM peers", query.DefaultCatalog(), query.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m, err := latency.Parse("lognormal:80ms")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	opts := Options{Quiet: true, RTT: m, MinRound: 10 * time.Millisecond, Serf: latency.DefaultSerf()}
	if err := Run(&out, p, sim.DefaultConfig(2000), opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"on the latency model (log-normal, median 80ms, sigma 0.5): a round 9", "the answer final at round", "serf.Query, LAN profile, on the same model", "serf.Query, WAN profile", "gossip ÷ serf.Query, LAN (last answer): ", "gossip ÷ serf.Query, WAN (last answer): "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}
