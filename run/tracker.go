package run

import (
	"math"
	"sort"

	"github.com/peerq/peerq/aggregate"
)

// Tracker estimates, at one peer and from its own estimates alone, how far
// a converging answer still is from the truth. Gossip averaging shrinks the
// error geometrically, by about ρ = √(1/(2√e)) ≈ 0.55 a round, so the error
// left after a change of δ is about δ·ρ/(1−ρ) ≈ 1.2·δ. The Tracker takes the
// largest change over the last Window rounds and scales it so: for plain
// cells the relative change, for quantile sketches the largest move of
// their cumulative distribution (a quantile's error is a rank error: the
// value it reads can jump between two peers' values while the distribution
// is within a hair of still). It is a local signal of convergence for
// progress reports and stopping, not a bound: message loss or churn can
// move the truth without moving the estimate.
type Tracker struct {
	// Window is how many rounds of changes count (2 by default).
	Window   int
	prev     []float64
	prevCDFs [][]point
	recent   []float64 // the largest change, per recent round
}

// point is one step of a cumulative distribution.
type point struct {
	at  float64 // the bucket's value
	cum float64 // the share of mass at or below it
}

// rho is the per-round factor of the error.
var rho = math.Sqrt(1 / (2 * math.Sqrt(math.E)))

// Observe records this round's cells and quantile sketches and returns the
// estimated error, or 1 until two rounds have been seen or when the shape
// changed (a group appeared or went).
func (t *Tracker) Observe(cells []float64, sketches [][]aggregate.Bucket) float64 {
	w := t.Window
	if w <= 0 {
		w = 2
	}
	cdfs := make([][]point, len(sketches))
	for i, s := range sketches {
		cdfs[i] = cdf(s)
	}
	change := 1.0
	if len(t.prev) == len(cells) && len(t.prevCDFs) == len(cdfs) && len(cells)+len(cdfs) > 0 {
		change = 0
		for i, x := range cells {
			change = math.Max(change, relChange(t.prev[i], x))
		}
		for i, c := range cdfs {
			change = math.Max(change, cdfDistance(t.prevCDFs[i], c))
		}
	}
	t.prev = append(t.prev[:0], cells...)
	t.prevCDFs = cdfs
	t.recent = append(t.recent, change)
	if len(t.recent) > w {
		t.recent = t.recent[len(t.recent)-w:]
	}
	worst := 0.0
	for _, c := range t.recent {
		worst = math.Max(worst, c)
	}
	return math.Min(1, worst*rho/(1-rho))
}

func relChange(prev, x float64) float64 {
	d := math.Abs(x - prev)
	if scale := math.Abs(x); scale > 0 {
		return d / scale
	}
	if d > 0 {
		return 1
	}
	return 0
}

// cdf is a sketch's cumulative distribution (masses driven slightly
// negative by averaging count as zero, as aggregate.Quantile counts them).
func cdf(bs []aggregate.Bucket) []point {
	pts := make([]point, 0, len(bs))
	total := 0.0
	for _, b := range bs {
		pts = append(pts, point{at: aggregate.HistValue(b.Index), cum: max(b.Mass, 0)})
		total += max(b.Mass, 0)
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].at < pts[j].at })
	run := 0.0
	for i := range pts {
		run += pts[i].cum
		if total > 0 {
			pts[i].cum = run / total
		}
	}
	return pts
}

// cdfDistance is the largest gap between two cumulative distributions
// (Kolmogorov–Smirnov).
func cdfDistance(a, b []point) float64 {
	d, i, j := 0.0, 0, 0
	ca, cb := 0.0, 0.0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].at < b[j].at:
			ca = a[i].cum
			i++
		case i == len(a) || b[j].at < a[i].at:
			cb = b[j].cum
			j++
		default:
			ca, cb = a[i].cum, b[j].cum
			i++
			j++
		}
		d = math.Max(d, math.Abs(ca-cb))
	}
	return d
}
