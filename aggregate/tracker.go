package aggregate

import "math"

// Tracker estimates, at one peer and from its own estimates alone, how far
// a converging answer still is from the truth. Gossip averaging shrinks the
// error geometrically, by about ρ = √(1/(2√e)) ≈ 0.55 a round, so the error
// left after a change of δ is about δ·ρ/(1−ρ) ≈ 1.2·δ. The Tracker takes the
// largest relative change of any value over the last Window rounds and
// scales it so. It is a local signal of convergence for progress reports
// and stopping, not a bound: message loss or churn can move the truth
// without moving the estimate.
type Tracker struct {
	// Window is how many rounds of changes count (2 by default).
	Window int
	prev   []float64
	recent []float64 // the largest relative change, per recent round
}

// rho is the per-round factor of the error.
var rho = math.Sqrt(1 / (2 * math.Sqrt(math.E)))

// Observe records this round's values and returns the estimated relative
// error, or 1 until two rounds have been seen or when the values changed
// shape (a group appeared or went).
func (t *Tracker) Observe(vals []float64) float64 {
	w := t.Window
	if w <= 0 {
		w = 2
	}
	change := 1.0
	if len(t.prev) == len(vals) && len(vals) > 0 {
		change = 0
		for i, x := range vals {
			d := math.Abs(x - t.prev[i])
			if scale := math.Abs(x); scale > 0 {
				d /= scale
			} else if d > 0 {
				d = 1
			}
			change = math.Max(change, d)
		}
	}
	t.prev = append(t.prev[:0], vals...)
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
