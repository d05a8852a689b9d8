package eval

import (
	"fmt"
	"image/color"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// FileName is a file name for a run's plot: scenario, backend and label, e.g.
// "four-rates-inproc-braid-round-robin.png".
func (r *Result) FileName() string { return r.baseName() + ".png" }

// baseName is FileName without its extension, which names the run's other files too.
func (r *Result) baseName() string {
	s := strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.':
			return c
		}
		return '-'
	}, r.Scenario+"-"+r.Backend+"-"+r.Label())
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	return strings.Trim(s, "-")
}

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
}

// Plot writes a PNG of a run into dir: each path's throughput over time (Bin-wide bins), the
// goodput delivered to the application, and a vertical line at each event. It returns the
// file's path.
func Plot(sc *Scenario, r *Result, dir string) (string, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %s, %s backend — %.1f Mbit/s, %.0f%% of the %.0f Mbit/s sum",
		r.Scenario, r.Label(), r.Backend, r.GoodputMbit, r.PctOfSum, r.SumRateMbit)
	p.X.Label.Text = "time since the workload's start (s)"
	p.Y.Label.Text = fmt.Sprintf("Mbit/s (%.0f ms bins)", r.BinSec*1000)
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = false
	ymax := 1.0
	series := func(vals []float64) plotter.XYs {
		xy := make(plotter.XYs, len(vals))
		for i, v := range vals {
			xy[i].X = (float64(i) + 0.5) * r.BinSec
			xy[i].Y = v
			ymax = max(ymax, v)
		}
		return xy
	}
	for i, vals := range r.PathSeries {
		l, err := plotter.NewLine(series(vals))
		if err != nil {
			return "", err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.2)
		p.Add(l)
		orig := i
		if i < len(r.Paths) {
			orig = r.Paths[i]
		}
		name := fmt.Sprintf("path %d", orig)
		if orig < len(sc.Paths) {
			if ps := sc.Paths[orig]; ps.Loss.Rate > 0 {
				name += fmt.Sprintf(" (%s, %v, loss %s)", ps.Rate, ps.Delay, ps.Loss)
			} else {
				name += fmt.Sprintf(" (%s, %v)", ps.Rate, ps.Delay)
			}
		}
		p.Legend.Add(name, l)
	}
	// Whole messages arrive in steps (a 1 MiB message is 84 Mbit/s of a 100 ms bin), so the
	// goodput is drawn as a centred 500 ms moving average.
	g, err := plotter.NewLine(series(movingAverage(r.Goodput, 5)))
	if err != nil {
		return "", err
	}
	g.Color = color.Black
	g.Width = vg.Points(2)
	p.Add(g)
	p.Legend.Add("goodput (delivered, 500 ms average)", g)
	for k, e := range r.Events {
		l, err := plotter.NewLine(plotter.XYs{{X: e.AtSec, Y: 0}, {X: e.AtSec, Y: ymax * 1.05}})
		if err != nil {
			return "", err
		}
		l.Color = color.RGBA{0xaa, 0, 0, 0xff}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		if k == 0 {
			p.Legend.Add("event", l)
		}
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: e.AtSec, Y: ymax * 1.05}}, Labels: []string{e.Event[strings.Index(e.Event, " ")+1:]}})
		if err == nil {
			p.Add(lab)
		}
	}
	p.Y.Min, p.Y.Max = 0, ymax*1.12
	p.X.Min, p.X.Max = 0, r.DurationSec
	out := filepath.Join(dir, r.FileName())
	if err := p.Save(10*vg.Inch, 4.5*vg.Inch, out); err != nil {
		return "", err
	}
	return out, nil
}

// movingAverage returns the centred moving average of v over w bins (fewer at the ends).
func movingAverage(v []float64, w int) []float64 {
	out := make([]float64, len(v))
	for i := range v {
		lo, hi := max(i-w/2, 0), min(i+w/2+1, len(v))
		var sum float64
		for _, x := range v[lo:hi] {
			sum += x
		}
		out[i] = sum / float64(hi-lo)
	}
	return out
}
