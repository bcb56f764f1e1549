package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/meshnode/meshnode/bench/internal/resolverbench"
)

// resolverModeTitle names the channels of the resolver benchmark.
var resolverModeTitle = map[string]string{
	"meshnode": "`meshnode:///`",
	"static":   "static list",
	"dns":      "`dns:///`",
}

// loadResolver reads the resolver benchmark's report; nil without error when there is none.
func loadResolver(path string) (*resolverbench.Report, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolver results: %w", err)
	}
	var r resolverbench.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("resolver results %s: %w", path, err)
	}
	if len(r.Trials) == 0 {
		return nil, fmt.Errorf("resolver results %s: no trial", path)
	}
	return &r, nil
}

// outcomes returns one mode's outcome of change i in every trial.
func outcomes(r *resolverbench.Report, mode string, i int) []resolverbench.Outcome {
	var out []resolverbench.Outcome
	for _, t := range r.Trials {
		for _, m := range t.Modes {
			if m.Mode == mode && i < len(m.Outcomes) {
				out = append(out, m.Outcomes[i])
			}
		}
	}
	return out
}

// fmtFailed summarizes failed-call counts over trials.
func fmtFailed(outs []resolverbench.Outcome) string {
	var vs []float64
	for _, o := range outs {
		vs = append(vs, float64(o.Failed))
	}
	s, ok := summarize(vs)
	if !ok {
		return ""
	}
	return s.fmt(func(v float64) string { return fmt.Sprintf("%.0f", v) })
}

// fmtFollow summarizes follow times, saying in how many trials the traffic had not followed.
func fmtFollow(outs []resolverbench.Outcome, join bool) string {
	var vs []float64
	notFollowed := 0
	for _, o := range outs {
		if !o.Followed {
			notFollowed++
			continue
		}
		vs = append(vs, o.Follow)
	}
	notYet := "still sent to it at the end of the run"
	if join {
		notYet = "never by the end of the run"
	}
	if notFollowed == len(outs) {
		if len(outs) == 1 {
			return notYet
		}
		return fmt.Sprintf("%s (%d of %d)", notYet, notFollowed, len(outs))
	}
	if !join && !slices.ContainsFunc(vs, func(v float64) bool { return v != 0 }) && notFollowed == 0 {
		if len(vs) == 1 {
			return "none"
		}
		return fmt.Sprintf("none (%d of %d)", len(vs), len(vs))
	}
	s, _ := summarize(vs)
	text := s.fmt(func(v float64) string {
		if v == 0 && !join {
			return "none"
		}
		return fmtDur(v)
	})
	if notFollowed > 0 {
		text += fmt.Sprintf("; %s in %d of %d", notYet, notFollowed, len(outs))
	}
	return text
}

// writeResolver writes the resolver benchmark's section.
func writeResolver(p func(string, ...any), r *resolverbench.Report, plotsLink string) {
	interval, _ := time.ParseDuration(r.Interval)
	bound := time.Duration(r.Threshold)*interval + interval
	p("## Client traffic through the `meshnode:///` resolver\n\n")
	p("Generated from `bench/results/resolver/resolver.json`, written by `bench/cmd/resolverbench`\n")
	p("(not part of `make bench`; run `make bench-resolver`, about 20 s per trial).\n\n")
	p("- Run `%s`: %s, %s, commit %s.\n", r.Run, r.Machine, r.GoVersion, r.Commit)
	p("  Command: `%s`\n", r.Command)
	p("- Nodes: heartbeat %s × %d. Each backend is a process: a node (role=api) and an echo gRPC\n", r.Interval, r.Threshold)
	p("  server on its own loopback address (127.0.0.11–16, one application port), joined through a\n")
	p("  seed process that is never faulted. A leaving backend follows the documented order: the\n")
	p("  leave goes out, the application drains (`GracefulStop`) %s later.\n", r.DrainDelay)
	p("- Three channels side by side, one call each every %s with a %s deadline, all `round_robin`,\n", r.Every, r.Deadline)
	p("  no keepalive, no health checking:\n")
	p("  - **`meshnode:///`**: `meshnode:///<seed>,<b4>?metadata.role=api&port=<app port>`;\n")
	p("  - **static list**: a manual resolver holding b1–b5's addresses, never updated;\n")
	p("  - **`dns:///`**: grpc-go's DNS resolver pointed at a DNS server on loopback\n")
	p("    (`dns://127.0.0.1:<port>/backends.meshbench.test:<app port>`) whose A records follow every\n")
	p("    change at the instant it is made, a better DNS than any real one. grpc-go asks it again\n")
	p("    only when a connection fails, and at most every 30 s.\n")
	p("- Changes, %s apart (the freeze's phase %s longer): b1 SIGKILLed, b2 SIGSTOPped (for the rest of\n", r.Settle, bound)
	p("  the run), b3 SIGTERMed (graceful leave), b6 started (its join is when `server.Start` returned).\n")
	p("- A call's backend is the one that answered, or, for a failed call, the one whose connection\n")
	p("  it was sent on (`grpc.Peer`). *Failed* counts the failed calls sent to the backend after the\n")
	p("  change, plus those of the phase that reached no backend. *Last call sent* is the time from the\n")
	p("  change to the last call sent to the backend (*none*: no call after the change); *first call served*,\n")
	p("  from the join to the first call the newcomer answered.\n\n")

	p("### Targets\n\n")
	p("Medians over trials (min–max, trials).\n\n")
	p("| change | target | %s | %s | %s | verdict (`meshnode:///`) |\n", resolverModeTitle["meshnode"], resolverModeTitle["static"], resolverModeTitle["dns"])
	p("|---|---|---|---|---|---|\n")
	idx := func(kind string) int {
		return slices.IndexFunc(resolverbench.Changes, func(c struct{ Kind, Backend string }) bool { return c.Kind == kind })
	}
	row := func(label, target string, i int, cell func([]resolverbench.Outcome) string, met func([]resolverbench.Outcome) bool) {
		p("| %s | %s |", label, target)
		for _, m := range resolverbench.Modes {
			p(" %s |", cell(outcomes(r, m, i)))
		}
		verdict := "**missed**"
		if met(outcomes(r, "meshnode", i)) {
			verdict = "**met**"
		}
		p(" %s |\n", verdict)
	}
	all := func(outs []resolverbench.Outcome, ok func(resolverbench.Outcome) bool) bool {
		return len(outs) > 0 && !slices.ContainsFunc(outs, func(o resolverbench.Outcome) bool { return !ok(o) })
	}
	leave, freeze, join := idx("leave"), idx("freeze"), idx("join")
	row("b3 leaves gracefully: failed calls", "0", leave, fmtFailed,
		func(outs []resolverbench.Outcome) bool {
			return all(outs, func(o resolverbench.Outcome) bool { return o.Failed == 0 })
		})
	row("b2 frozen: last call sent to it after the freeze", fmt.Sprintf("≤ %s (interval × threshold + interval)", fmtDur(bound.Seconds())), freeze,
		func(outs []resolverbench.Outcome) string { return fmtFollow(outs, false) },
		func(outs []resolverbench.Outcome) bool {
			return all(outs, func(o resolverbench.Outcome) bool { return o.Followed && o.Follow <= bound.Seconds() })
		})
	row("b6 joins: first call it serves after its join", "≤ 100 ms", join,
		func(outs []resolverbench.Outcome) string { return fmtFollow(outs, true) },
		func(outs []resolverbench.Outcome) bool {
			return all(outs, func(o resolverbench.Outcome) bool { return o.Followed && o.Follow <= 0.1 })
		})
	p("\n")

	p("### Every change\n\n")
	p("| change | measure | %s | %s | %s |\n", resolverModeTitle["meshnode"], resolverModeTitle["static"], resolverModeTitle["dns"])
	p("|---|---|---|---|---|\n")
	titles := map[string]string{
		"kill": "b1 SIGKILLed (no leave)", "freeze": "b2 SIGSTOPped", "leave": "b3 leaves gracefully", "join": "b6 joins",
	}
	for i, c := range resolverbench.Changes {
		p("| %s | failed calls |", titles[c.Kind])
		for _, m := range resolverbench.Modes {
			p(" %s |", fmtFailed(outcomes(r, m, i)))
		}
		p("\n")
		measure := "last call sent to it"
		if c.Kind == "join" {
			measure = "first call it serves"
		}
		p("| %s | %s |", titles[c.Kind], measure)
		for _, m := range resolverbench.Modes {
			p(" %s |", fmtFollow(outcomes(r, m, i), c.Kind == "join"))
		}
		p("\n")
	}
	p("| whole run | calls (failed) |")
	for _, m := range resolverbench.Modes {
		var cells []string
		for _, t := range r.Trials {
			for _, mr := range t.Modes {
				if mr.Mode == m {
					cells = append(cells, fmt.Sprintf("%d (%d)", mr.Calls, mr.Failed))
				}
			}
		}
		p(" %s |", strings.Join(cells, ", "))
	}
	p("\n\n")
	var queries []string
	for _, t := range r.Trials {
		queries = append(queries, fmt.Sprint(t.DNSQueries))
	}
	p("The `dns:///` channel asked the DNS server %s time(s) (per trial): grpc-go resolves at start,\n", strings.Join(queries, ", "))
	p("then again when a connection fails but no sooner than 30 s after its previous resolution, so\n")
	p("within a run shorter than that no change of the records reached its balancer.\n\n")
	p("How to read it. A crash closes the backend's sockets, so every channel's `round_robin` drops\n")
	p("it at once, whatever its resolver. A graceful leave fails no call on any channel: the drain's\n")
	p("GOAWAY moves the static and DNS channels too, one drain delay later, while `meshnode:///` has\n")
	p("stopped sending before the drain. The freeze is where the resolver matters: the frozen\n")
	p("backend's sockets stay open, so only a resolver told of the failure takes it out; the calls\n")
	p("`meshnode:///` still sends it until the cluster decides (interval × threshold) fail at their\n")
	p("deadline. A join reaches only `meshnode:///`.\n\n")
	p("![calls per backend over time, trial 1](%s/resolver.png)\n\n", plotsLink)
}

// plotResolver draws trial 1's timeline: one panel per channel, calls per second by backend
// and failed calls per second, with the changes marked.
func plotResolver(r *resolverbench.Report, path string) error {
	t := r.Trials[0]
	colors := map[string]color.Color{
		"b1": color.RGBA{R: 200, G: 40, B: 30, A: 255},
		"b2": color.RGBA{R: 240, G: 130, B: 30, A: 255},
		"b3": color.RGBA{R: 150, G: 60, B: 180, A: 255},
		"b4": color.RGBA{R: 0, G: 90, B: 200, A: 255},
		"b5": color.RGBA{R: 0, G: 160, B: 220, A: 255},
		"b6": color.RGBA{R: 30, G: 150, B: 60, A: 255},
	}
	var rows [][]*plot.Plot
	maxY := 0.0
	for _, m := range t.Modes {
		for _, s := range m.Served {
			for _, v := range s {
				maxY = math.Max(maxY, float64(v)/t.BinSeconds)
			}
		}
		for _, v := range m.Failures {
			maxY = math.Max(maxY, float64(v)/t.BinSeconds)
		}
	}
	for _, mode := range resolverbench.Modes {
		i := slices.IndexFunc(t.Modes, func(m resolverbench.ModeResult) bool { return m.Mode == mode })
		if i < 0 {
			continue
		}
		m := t.Modes[i]
		pl := plot.New()
		pl.Title.Text = strings.Trim(resolverModeTitle[mode], "`") + fmt.Sprintf(": %d calls, %d failed", m.Calls, m.Failed)
		pl.X.Label.Text = "seconds since the calls started"
		pl.Y.Label.Text = "calls/s (by start)"
		pl.X.Min, pl.X.Max = 0, t.EndSeconds
		pl.Y.Min, pl.Y.Max = 0, maxY*1.15
		pl.Legend.Top = true
		pl.Add(plotter.NewGrid())
		for _, c := range t.Changes {
			marker, err := plotter.NewLine(plotter.XYs{{X: c.At, Y: 0}, {X: c.At, Y: maxY * 1.15}})
			if err != nil {
				return err
			}
			marker.Color = color.Gray{Y: 120}
			marker.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			pl.Add(marker)
			label, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: c.At, Y: maxY * 1.08}}, Labels: []string{" " + c.Kind + " " + c.Backend}})
			if err != nil {
				return err
			}
			pl.Add(label)
		}
		series := func(counts []int) plotter.XYs {
			pts := make(plotter.XYs, len(counts))
			for j, v := range counts {
				pts[j] = plotter.XY{X: (float64(j) + 0.5) * t.BinSeconds, Y: float64(v) / t.BinSeconds}
			}
			return pts
		}
		for _, b := range []string{"b1", "b2", "b3", "b4", "b5", "b6"} {
			counts, ok := m.Served[b]
			if !ok {
				continue
			}
			line, err := plotter.NewLine(series(counts))
			if err != nil {
				return err
			}
			line.Color = colors[b]
			line.Width = vg.Points(1.2)
			pl.Add(line)
			pl.Legend.Add(b, line)
		}
		failed, err := plotter.NewLine(series(m.Failures))
		if err != nil {
			return err
		}
		failed.Color = color.Black
		failed.Width = vg.Points(1.5)
		failed.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		pl.Add(failed)
		pl.Legend.Add("failed", failed)
		rows = append(rows, []*plot.Plot{pl})
	}
	img := vgimg.New(9*vg.Inch, vg.Length(len(rows))*3*vg.Inch)
	dc := draw.New(img)
	canvases := plot.Align(rows, draw.Tiles{Rows: len(rows), Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}, dc)
	for j := range rows {
		rows[j][0].Draw(canvases[j][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("resolver plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("resolver plot: %w", err)
	}
	return f.Close()
}
