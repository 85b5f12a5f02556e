package report

import (
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/peerq/peerq/sim"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// PlotErrors draws the relative error against the round on a log scale: the
// originator's, the median and the worst peer's, and beside them the slope
// push-pull averaging allows, √(1/(2√e)) a round for the error (the
// variance shrinks by 1/(2√e)), from the first round's median. It writes a
// PNG to w.
func PlotErrors(w io.Writer, title string, stats []sim.RoundStats) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "round"
	p.Y.Label.Text = "relative error (an error of 0 is drawn at 1e-9)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = powerTicks{}
	p.Add(plotter.NewGrid())

	const floor = 1e-9 // a log axis cannot show 0
	line := func(get func(sim.RoundStats) float64) plotter.XYs {
		var pts plotter.XYs
		for _, s := range stats {
			pts = append(pts, plotter.XY{X: float64(s.Round), Y: math.Max(get(s), floor)})
		}
		return pts
	}
	series := []struct {
		name string
		get  func(sim.RoundStats) float64
	}{
		{"originator", func(s sim.RoundStats) float64 { return s.OriginErr }},
		{"median peer", func(s sim.RoundStats) float64 { return s.MedianErr }},
		{"worst peer", func(s sim.RoundStats) float64 { return s.WorstErr }},
	}
	for i, s := range series {
		l, err := plotter.NewLine(line(s.get))
		if err != nil {
			return fmt.Errorf("sim: plot: %w", err)
		}
		l.Color = palette[i]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	if len(stats) > 0 {
		start := math.Max(stats[0].MedianErr, floor)
		slope := math.Sqrt(1 / (2 * math.Sqrt(math.E)))
		var pts plotter.XYs
		for _, s := range stats {
			pts = append(pts, plotter.XY{X: float64(s.Round), Y: math.Max(start*math.Pow(slope, float64(s.Round-stats[0].Round)), floor)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("sim: plot: %w", err)
		}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Color = palette[3]
		p.Add(l)
		p.Legend.Add("theory: √(1/(2√e))^round", l)
	}
	p.Legend.Top = true
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("sim: plot: %w", err)
	}
	_, err = wt.WriteTo(w)
	return err
}

var palette = []colorRGB{{31, 119, 180}, {44, 160, 44}, {214, 39, 40}, {120, 120, 120}}

type colorRGB struct{ r, g, b uint8 }

func (c colorRGB) RGBA() (r, g, b, a uint32) {
	return uint32(c.r) * 0x101, uint32(c.g) * 0x101, uint32(c.b) * 0x101, 0xffff
}

// powerTicks labels a log axis at the powers of ten: 1e-06 ... 1.
type powerTicks struct{}

func (powerTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		v := math.Pow(10, e)
		if v >= min && v <= max {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return ticks
}
