package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"os"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// simPoint is one figure of the overlay simulator (membership's TestOverlaySimulationAtScale
// with SIM_RESULTS set): messages per node and per stream per heartbeat interval at N nodes.
type simPoint struct {
	N                 int     `json:"n"`
	K                 int     `json:"k"`
	MessagesPerNode   float64 `json:"messages_per_node_per_interval"`
	MessagesPerStream float64 `json:"messages_per_stream_per_interval"`
}

// loadSim reads the simulator's figures, the last one per N; a missing file is no figures.
func loadSim(path string) ([]simPoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("simulator figures: %w", err)
	}
	defer f.Close()
	byN := map[int]simPoint{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var p simPoint
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return nil, fmt.Errorf("simulator figures %s:%d: %w", path, line, err)
		}
		byN[p.N] = p
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("simulator figures: %w", err)
	}
	out := make([]simPoint, 0, len(byN))
	for _, p := range byN {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b simPoint) int { return a.N - b.N })
	return out, nil
}

// costPanel is one measure of the cost plot.
type costPanel struct {
	key, title, unit string
	scale            float64 // the measure is divided by it for the axis
}

// plotCost draws the steady state's cost per node against N on the LAN profile, both systems,
// one panel per measure (log–log), and the simulator's messages per node per interval beside
// them.
func (d *data) plotCost(sim []simPoint, path string) error {
	panels := []costPanel{
		{"cpu_s_per_node_s", "CPU per node", "CPU-s per s", 1},
		{"wire_bytes_per_node_s", "Wire per node (sent, with headers)", "KB per s", 1000},
		{"rss_bytes_per_node", "RSS per node", "MiB", 1 << 20},
	}
	var plots []*plot.Plot
	for _, pn := range panels {
		pl, err := d.costPlot(pn)
		if err != nil {
			return err
		}
		plots = append(plots, pl)
	}
	plots = append(plots, simPlot(sim))
	const w, h = 6 * vg.Inch, 4 * vg.Inch
	img := vgimg.New(2*w, 2*h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Points(10), PadY: vg.Points(10)}
	canvases := plot.Align([][]*plot.Plot{{plots[0], plots[1]}, {plots[2], plots[3]}}, tiles, dc)
	for r := range 2 {
		for c := range 2 {
			plots[2*r+c].Draw(canvases[r][c])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// costPlot draws one measure against N for both systems (medians).
func (d *data) costPlot(pn costPanel) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = pn.title + " (LAN, steady state)"
	pl.X.Label.Text = "N (nodes, log scale)"
	pl.Y.Label.Text = pn.unit + " (log scale)"
	pl.X.Scale, pl.Y.Scale = plot.LogScale{}, plot.LogScale{}
	pl.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var ticks []plot.Tick
	for _, n := range d.ns {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: fmt.Sprint(n)})
	}
	pl.X.Tick.Marker = plot.ConstantTicks(ticks)
	pl.Legend.Top, pl.Legend.Left = true, true
	pl.Add(plotter.NewGrid())
	for _, st := range []struct {
		sys   string
		c     color.Color
		shape draw.GlyphDrawer
	}{
		{ours, color.RGBA{R: 0, G: 90, B: 200, A: 255}, draw.CircleGlyph{}},
		{theirs, color.RGBA{R: 200, G: 40, B: 30, A: 255}, draw.TriangleGlyph{}},
	} {
		var pts plotter.XYs
		for _, n := range d.ns {
			if s, ok := d.metricStats(st.sys, "lan", n, pn.key); ok && s.med > 0 {
				pts = append(pts, plotter.XY{X: float64(n), Y: s.med / pn.scale})
			}
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		line.Color, line.Width = st.c, vg.Points(1.5)
		points.Color, points.Shape, points.Radius = st.c, st.shape, vg.Points(3)
		pl.Add(line, points)
		pl.Legend.Add(st.sys, line, points)
	}
	pl.Y.Max *= 4 // room for the legend
	return pl, nil
}

// simPlot draws the simulator's messages per node per interval against N.
func simPlot(sim []simPoint) *plot.Plot {
	pl := plot.New()
	pl.Title.Text = "Simulator: messages per node per interval (K = 10)"
	pl.X.Label.Text = "N (nodes, log scale)"
	pl.Y.Label.Text = "messages sent per node per interval"
	pl.X.Scale = plot.LogScale{}
	pl.Add(plotter.NewGrid())
	var pts plotter.XYs
	var ticks []plot.Tick
	for _, p := range sim {
		pts = append(pts, plotter.XY{X: float64(p.N), Y: p.MessagesPerNode})
		ticks = append(ticks, plot.Tick{Value: float64(p.N), Label: fmt.Sprint(p.N)})
	}
	if len(pts) == 0 {
		pl.Title.Text += ": no figures (make sim-scale)"
		return pl
	}
	pl.X.Tick.Marker = plot.ConstantTicks(ticks)
	if line, points, err := plotter.NewLinePoints(pts); err == nil {
		line.Color, line.Width = color.RGBA{R: 0, G: 130, B: 60, A: 255}, vg.Points(1.5)
		points.Color = line.Color
		pl.Add(line, points)
		pl.Legend.Add("simulated overlay", line, points)
	}
	bound := plotter.NewFunction(func(float64) float64 { return float64(2 * sim[0].K) })
	bound.Color = color.Gray{Y: 120}
	bound.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	pl.Add(bound)
	pl.Legend.Add("2K: one message per stream", bound)
	pl.Y.Min, pl.Y.Max = 0, float64(2*sim[0].K)*1.3
	pl.Legend.Top = true
	return pl
}

// writeCost writes the cost section: the plot and the simulator's figures.
func writeCost(p func(string, ...any), sim []simPoint, plotsLink string) {
	p("## Cost per node against N\n\n")
	p("Steady-state cost per node on the LAN profile (medians of the rows above) and, beside it, the\n")
	p("simulator's messages per node per interval (`make sim-scale`, virtual time, K = 10).\n\n")
	p("![cost per node vs N](%s/cost.png)\n\n", plotsLink)
	if len(sim) == 0 {
		return
	}
	p("| N (simulated) | messages per node per interval | per stream |\n|---|---|---|\n")
	for _, s := range sim {
		p("| %d | %.2f | %.3f |\n", s.N, s.MessagesPerNode, s.MessagesPerStream)
	}
	p("\n")
}
