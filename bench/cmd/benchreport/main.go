// Command benchreport turns the JSON lines of meshbench into BENCHMARKS.md and PNG plots.
//
//	benchreport -results results -out ../BENCHMARKS.md -plots results/plots
//
// For every cluster size and profile it uses the most recent run that measured it, so a quick
// run does not hide the larger sizes of an earlier full run (the machine section says which run
// each size comes from).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/meshnode/meshnode/bench/internal/harness"
)

const (
	ours   = "meshnode"
	theirs = "memberlist"
)

var profiles = []string{"lan", "fast"}

var profileTitle = map[string]string{
	"lan":  "LAN profile: meshnode heartbeat 1s × 3 vs memberlist DefaultLANConfig()",
	"fast": "fast profile: meshnode heartbeat 500ms × 2 vs memberlist tuned to detect in ~1–2 s",
}

func main() {
	var (
		dir      = flag.String("results", "results", "directory of *.jsonl and *.meta.json")
		out      = flag.String("out", "../BENCHMARKS.md", "markdown output")
		plots    = flag.String("plots", "results/plots", "directory of the PNG plots")
		relPlots = flag.String("plots-link", "bench/results/plots", "the plots directory as linked from the markdown")
		analysis = flag.String("analysis", "ANALYSIS.md", "hand-written analysis included verbatim (\"\" for none)")
		resolver = flag.String("resolver", "results/resolver/resolver.json", "results of cmd/resolverbench, reported when the file exists (\"\" for none)")
	)
	flag.Parse()
	recs, metas, err := load(*dir)
	if err != nil {
		fatal(err)
	}
	if len(recs) == 0 {
		fatal(fmt.Errorf("no records in %s", *dir))
	}
	var analysisText string
	if *analysis != "" {
		// A report without its analysis must not be written by accident (say, from the wrong
		// directory): the committed BENCHMARKS.md would silently lose it.
		a, err := os.ReadFile(*analysis)
		if err != nil {
			fatal(fmt.Errorf("analysis: %w (run from bench/, or pass -analysis)", err))
		}
		analysisText = strings.TrimSpace(string(a))
	}
	d := newData(recs, metas)
	if err := os.MkdirAll(*plots, 0o755); err != nil {
		fatal(err)
	}
	resolverReport, err := loadResolver(*resolver)
	if err != nil {
		fatal(err)
	}
	sim, err := loadSim(filepath.Join(*dir, "sim", "overlay.jsonl"))
	if err != nil {
		fatal(err)
	}
	var md strings.Builder
	d.write(&md, *relPlots, analysisText)
	writeCost(func(format string, args ...any) { fmt.Fprintf(&md, format, args...) }, sim, *relPlots)
	if resolverReport != nil {
		writeResolver(func(format string, args ...any) { fmt.Fprintf(&md, format, args...) }, resolverReport, *relPlots)
		if err := plotResolver(resolverReport, filepath.Join(*plots, "resolver.png")); err != nil {
			fatal(err)
		}
	}
	for _, sc := range []string{"formation", "join", "crash", "silent", "leave"} {
		if err := d.plot(sc, filepath.Join(*plots, sc+".png")); err != nil {
			fatal(err)
		}
	}
	if err := d.plotCost(sim, filepath.Join(*plots, "cost.png")); err != nil {
		fatal(err)
	}
	if err := os.WriteFile(*out, []byte(md.String()), 0o644); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "benchreport: %d records, wrote %s and plots in %s\n", len(recs), *out, *plots)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchreport:", err)
	os.Exit(1)
}

type meta map[string]any

func load(dir string) ([]harness.Record, map[string]meta, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, nil, err
	}
	var recs []harness.Record
	metas := map[string]meta{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r harness.Record
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Scenario != "" {
				recs = append(recs, r)
			}
		}
		_ = fh.Close()
		if b, err := os.ReadFile(strings.TrimSuffix(f, ".jsonl") + ".meta.json"); err == nil {
			var m meta
			if json.Unmarshal(b, &m) == nil {
				if run, _ := m["run"].(string); run != "" {
					metas[run] = m
				}
			}
		}
	}
	return recs, metas, nil
}

// data holds the records chosen for the report: per (N, profile), those of the latest run
// measuring it.
type data struct {
	recs  []harness.Record
	metas map[string]meta
	ns    []int
	runOf map[string]string // "N/profile" -> run
}

func key(n int, profile string) string { return fmt.Sprintf("%d/%s", n, profile) }

func newData(all []harness.Record, metas map[string]meta) *data {
	latest := map[string]string{}
	ns := map[int]bool{}
	for _, r := range all {
		if k := key(r.N, r.Profile); r.Run > latest[k] {
			latest[k] = r.Run
		}
		ns[r.N] = true
	}
	d := &data{metas: metas, runOf: latest}
	for _, r := range all {
		if r.Run == latest[key(r.N, r.Profile)] {
			d.recs = append(d.recs, r)
		}
	}
	for n := range ns {
		d.ns = append(d.ns, n)
	}
	sort.Ints(d.ns)
	return d
}

// select returns the records of system, profile, scenario and N.
func (d *data) sel(system, profile, scenario string, n int) []harness.Record {
	var out []harness.Record
	for _, r := range d.recs {
		if r.System == system && r.Profile == profile && r.Scenario == scenario && r.N == n {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b harness.Record) int { return a.Trial - b.Trial })
	return out
}

// value is a record's measure: seconds, +Inf when the change was never seen within the cap.
func value(r harness.Record) float64 {
	if !r.OK {
		return math.Inf(1)
	}
	if r.Stalled { // converged, but after the 30 s stall mark
		return r.Seconds
	}
	return r.Seconds
}

func metric(r harness.Record, key string) (float64, bool) {
	v, ok := r.Metrics[key].(float64)
	return v, ok
}

// stats is a median with its range over trials.
type stats struct {
	med, lo, hi float64
	n           int
}

func summarize(vs []float64) (stats, bool) {
	if len(vs) == 0 {
		return stats{}, false
	}
	s := slices.Clone(vs)
	sort.Float64s(s)
	var med float64
	if len(s)%2 == 1 {
		med = s[len(s)/2]
	} else {
		a, b := s[len(s)/2-1], s[len(s)/2]
		if math.IsInf(a, 1) || math.IsInf(b, 1) {
			med = math.Max(a, b)
		} else {
			med = (a + b) / 2
		}
	}
	return stats{med: med, lo: s[0], hi: s[len(s)-1], n: len(s)}, true
}

// timeStats summarizes a time scenario for one system.
func (d *data) timeStats(system, profile, scenario string, n int) (stats, bool) {
	var vs []float64
	for _, r := range d.sel(system, profile, scenario, n) {
		vs = append(vs, value(r))
	}
	return summarize(vs)
}

// ratioStats pairs our trial k with memberlist's trial k and summarizes ours/theirs.
func (d *data) ratioStats(profile, scenario string, n int, get func(harness.Record) (float64, bool)) (stats, bool) {
	theirsBy := map[int]harness.Record{}
	for _, r := range d.sel(theirs, profile, scenario, n) {
		theirsBy[r.Trial] = r
	}
	var rs []float64
	for _, r := range d.sel(ours, profile, scenario, n) {
		t, ok := theirsBy[r.Trial]
		if !ok {
			continue
		}
		a, ok1 := get(r)
		b, ok2 := get(t)
		if !ok1 || !ok2 || b == 0 || (math.IsInf(a, 1) && math.IsInf(b, 1)) {
			continue
		}
		if math.IsInf(b, 1) {
			rs = append(rs, 0)
			continue
		}
		rs = append(rs, a/b)
	}
	return summarize(rs)
}

func timeOf(r harness.Record) (float64, bool) { return value(r), true }

func fmtDur(s float64) string {
	switch {
	case math.IsInf(s, 1):
		return "never"
	case s >= 10:
		return fmt.Sprintf("%.1f s", s)
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 0.01:
		return fmt.Sprintf("%.0f ms", s*1000)
	default:
		return fmt.Sprintf("%.1f ms", s*1000)
	}
}

func fmtRatio(r float64) string {
	switch {
	case math.IsInf(r, 1):
		return "∞"
	case r == 0:
		return "0"
	case r >= 10:
		return fmt.Sprintf("%.0f", r)
	case r >= 0.1:
		return fmt.Sprintf("%.2f", r)
	default:
		return strconv.FormatFloat(r, 'g', 2, 64)
	}
}

func (s stats) fmt(f func(float64) string) string {
	if s.n == 1 {
		return f(s.med) + " (1 trial)"
	}
	return fmt.Sprintf("%s (%s–%s, %d)", f(s.med), f(s.lo), f(s.hi), s.n)
}

// counts returns how many records of a formation stalled (over 30 s) and how many never converged.
func (d *data) counts(system, profile string, n int) (stalled, never, total int) {
	for _, r := range d.sel(system, profile, "formation", n) {
		total++
		if r.Stalled {
			stalled++
		}
		if !r.OK {
			never++
		}
	}
	return
}

func (d *data) write(b *strings.Builder, plotsLink, analysis string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("# Benchmarks: meshnode vs hashicorp/memberlist\n\n")
	p("Generated by `bench/cmd/benchreport` from the JSON lines in `bench/results/` (one line per\n")
	p("measurement). Do not edit by hand: rerun `make bench` (or `make bench-full`). The analysis\n")
	p("section comes from `bench/ANALYSIS.md`.\n\n")

	d.writeMachine(p)
	d.writeTargets(p)
	if analysis != "" {
		p("%s\n\n", analysis)
	}
	d.writeMethod(p)
	for _, pr := range profiles {
		p("## %s\n\n", profileTitle[pr])
		d.writeTimeTable(p, pr, "formation", "Formation: N nodes started at once, each joining through node 0, until every node lists all N")
		d.writeTimeTable(p, pr, "join", "Join: one node joins a converged N-node cluster through one member, until all N list it")
		d.writeTimeTable(p, pr, "leave", "Graceful leave: one of N+1 nodes leaves, until the N others report it")
		d.writeTimeTable(p, pr, "crash", "Crash: one of N nodes crashes (sockets closed, no leave), until the N−1 others report it down")
		d.writeTimeTable(p, pr, "silent", "Silent failure: one of N−1 nodes goes silent with its sockets open, until the N−2 others report it down")
		d.writeSteady(p, pr)
	}
	p("## Plots\n\n")
	for _, sc := range []string{"formation", "join", "crash", "silent", "leave"} {
		p("![%s time vs N](%s/%s.png)\n\n", sc, plotsLink, sc)
	}
}

func (d *data) writeMachine(p func(string, ...any)) {
	p("## Machine and commands\n\n")
	runs := map[string]bool{}
	for _, r := range d.runOf {
		runs[r] = true
	}
	keys := make([]string, 0, len(runs))
	for r := range runs {
		keys = append(keys, r)
	}
	sort.Strings(keys)
	for _, run := range keys {
		m := d.metas[run]
		var sizes []string
		for _, n := range d.ns {
			for _, pr := range profiles {
				if d.runOf[key(n, pr)] == run {
					sizes = append(sizes, fmt.Sprintf("%d %s", n, pr))
				}
			}
		}
		p("- Run `%s` (%v), used for N = %s: %v, %v logical CPUs (GOMAXPROCS %v), %v RAM, Linux %v, %v, commit %v.\n",
			run, m["label"], strings.Join(sizes, ", "), m["cpu"], m["cpus"], m["gomaxprocs"], m["mem_total"], m["kernel"], m["go"], m["commit"])
		if c, ok := m["command"].(string); ok {
			p("  Command: `%s`\n", c)
		}
	}
	p("\nThe machine is shared: other builds and tests ran at the same time, so every figure is a\n")
	p("median with its range, and the two systems alternate trial by trial (odd trials meshnode\n")
	p("first, even trials memberlist first). Reproduce with `make bench` (N = 8, 32; under 5\n")
	p("minutes) or `make bench-full` (adds N = 128 and 256). A full trial forms the cluster,\n")
	p("waits out the formation's tail (2-s samples of the cluster's CPU use until one is at least\n")
	p("90 %% of the one before, at most a minute, from the runs after `scale-overlay-22-1024`; and\n")
	p("until the open descriptors change by at most one in 1,000 between two samples, from\n")
	p("`scale-overlay-32-1024` on), holds it steady, then times a join, a leave, a crash and a silent\n")
	p("failure, each begun 2 s after the one before was seen by all (100 ms in the runs before\n")
	p("`scale-overlay-15`).\n\n")
	for _, run := range keys {
		set, ok := d.metas[run]["settings"].(map[string]any)
		if !ok {
			continue
		}
		p("### Settings (run `%s`)\n\n", run)
		for _, pr := range profiles {
			for _, sys := range []string{ours, theirs} {
				s, ok := set[sys+"/"+pr].(map[string]any)
				if !ok {
					continue
				}
				p("- **%s, %s**: %s\n", sys, pr, joinSorted(s, "%s=%v"))
			}
		}
		p("\n")
		break
	}
}

// target is one line of the targets table.
type target struct {
	measure, goal  string
	oursV, theirsV string
	ratio          string
	verdict        string
}

func (d *data) writeTargets(p func(string, ...any)) {
	p("## Targets\n\n")
	p("Medians over trials; the ratio is ours/theirs computed pairwise per trial (median of the\n")
	p("per-trial ratios), so below 1 means meshnode is faster or smaller.\n\n")
	p("| measure | target | meshnode | memberlist | ratio ours/theirs | verdict |\n|---|---|---|---|---|---|\n")
	var ts []target
	timeTarget := func(pr, sc string, n int, goal string, limit float64) {
		o, ok := d.timeStats(ours, pr, sc, n)
		if !ok {
			t, tok := d.timeStats(theirs, pr, sc, n)
			tv := ""
			if tok {
				tv = t.fmt(fmtDur)
			}
			ts = append(ts, target{fmt.Sprintf("%s seen by all, %s, N = %d", sc, pr, n), goal, d.why(ours, pr, n), tv, "", d.whyVerdict(ours, pr, n)})
			return
		}
		t, tok := d.timeStats(theirs, pr, sc, n)
		r, rok := d.ratioStats(pr, sc, n, timeOf)
		v := "**met**"
		if o.med > limit {
			v = "**missed**"
		}
		rs := ""
		if rok {
			rs = r.fmt(fmtRatio)
		}
		tv := d.why(theirs, pr, n) // memberlist's cluster may not have held where ours did
		if tok {
			tv = t.fmt(fmtDur)
		}
		ts = append(ts, target{fmt.Sprintf("%s seen by all, %s, N = %d", sc, pr, n), goal, o.fmt(fmtDur), tv, rs, v})
	}
	for _, pr := range profiles {
		timeTarget(pr, "join", 32, "≤ 20 ms", 0.020)
		timeTarget(pr, "join", 128, "≤ 100 ms", 0.100)
	}
	// join ratios at every N
	for _, pr := range profiles {
		limit, goal := 0.1, "≥ 10× faster than memberlist LAN"
		if pr == "fast" {
			limit, goal = 1.0/3, "≥ 3× faster than memberlist fast"
		}
		worst, worstN, any := 0.0, 0, false
		for _, n := range d.ns {
			if r, ok := d.ratioStats(pr, "join", n, timeOf); ok {
				any = true
				if r.med >= worst {
					worst, worstN = r.med, n
				}
			}
		}
		if !any {
			continue
		}
		v := "**met**"
		if worst > limit {
			v = "**missed**"
		}
		ts = append(ts, target{fmt.Sprintf("join ratio, %s, every N", pr), goal, "", "", fmt.Sprintf("worst %s (N = %d)", fmtRatio(worst), worstN), v})
	}
	for _, pr := range profiles {
		worst, worstN, any := 0.0, 0, false
		for _, n := range d.ns {
			if n > 128 {
				continue
			}
			if r, ok := d.ratioStats(pr, "formation", n, timeOf); ok {
				any = true
				if r.med >= worst {
					worst, worstN = r.med, n
				}
			}
		}
		if any {
			v := "**met**"
			if worst > 1 {
				v = "**missed**"
			}
			ts = append(ts, target{fmt.Sprintf("formation, %s, every N ≤ 128", pr), "no slower than memberlist", "", "", fmt.Sprintf("worst %s (N = %d)", fmtRatio(worst), worstN), v})
		}
		st, nv, tot := 0, 0, 0
		for _, n := range d.ns {
			a, b, c := d.counts(ours, pr, n)
			st, nv, tot = st+a, nv+b, tot+c
		}
		ms, mn, mt := 0, 0, 0
		for _, n := range d.ns {
			a, b, c := d.counts(theirs, pr, n)
			ms, mn, mt = ms+a, mn+b, mt+c
		}
		v := "**met**"
		if st > 0 {
			v = "**missed**"
		}
		ts = append(ts, target{fmt.Sprintf("formation stalls (> 30 s), %s, all N", pr), "none",
			fmt.Sprintf("%d of %d (%d never)", st, tot, nv), fmt.Sprintf("%d of %d (%d never)", ms, mt, mn), "", v})
		if slices.Contains(d.ns, 256) {
			a, b, c := d.counts(ours, pr, 256)
			x, y, z := d.counts(theirs, pr, 256)
			v := "**met**"
			if b > 0 || a > 0 {
				v = "**missed**"
			}
			ts = append(ts, target{fmt.Sprintf("formation N = 256, %s", pr), "converges every time",
				fmt.Sprintf("%d of %d over 30 s, %d never", a, c, b), fmt.Sprintf("%d of %d over 30 s, %d never", x, z, y), "", v})
		}
	}
	for _, pr := range profiles {
		for _, n := range d.ns {
			if n <= 128 {
				timeTarget(pr, "crash", n, "≤ 100 ms", 0.100)
			}
		}
	}
	// Above 128 nodes the monitoring overlay's targets: news seen by all within 250 ms.
	for _, n := range d.ns {
		if n >= 256 {
			for _, sc := range []string{"join", "leave", "crash"} {
				timeTarget("lan", sc, n, "≤ 250 ms", 0.250)
			}
		}
	}
	for _, pr := range profiles {
		pf := harness.Profiles[pr]
		limit := (pf.Interval*time.Duration(pf.Threshold) + pf.Interval).Seconds()
		for _, n := range d.ns {
			if n >= 256 { // the overlay's target from 256 nodes: half a second more
				timeTarget(pr, "silent", n, fmt.Sprintf("≤ %s (interval × threshold + interval + 0.5 s)", fmtDur(limit+0.5)), limit+0.5)
				continue
			}
			timeTarget(pr, "silent", n, fmt.Sprintf("≤ %s (interval × threshold + interval)", fmtDur(limit)), limit)
		}
	}
	for _, pr := range profiles {
		timeTarget(pr, "leave", 32, "≤ 20 ms", 0.020)
	}
	steadyTarget := func(n int, key, label, goal string, limit float64, f func(float64) string) {
		where := fmt.Sprintf(", lan (1 s), N = %d", n)
		o, ok := d.metricStats(ours, "lan", n, key)
		if !ok {
			ts = append(ts, target{label + where, goal, d.why(ours, "lan", n), "", "", d.whyVerdict(ours, "lan", n)})
			return
		}
		t, tok := d.metricStats(theirs, "lan", n, key)
		r, rok := d.ratioStats("lan", "steady", n, func(r harness.Record) (float64, bool) { return metric(r, key) })
		v := "**met**"
		if o.med > limit {
			v = "**missed**"
		}
		rs := ""
		if rok {
			rs = r.fmt(fmtRatio)
		}
		tv := d.why(theirs, "lan", n)
		if tok {
			tv = t.fmt(f)
		}
		ts = append(ts, target{label + where, goal, o.fmt(f), tv, rs, v})
	}
	steadyTarget(128, "payload_bytes_per_node_s", "steady bytes sent per node per second (payload)", "≤ 10 KB/s", 10000, fmtBytesRate)
	steadyTarget(128, "wire_bytes_per_node_s", "steady bytes sent per node per second (on the wire)", "≤ 10 KB/s", 10000, fmtBytesRate)
	steadyTarget(128, "cpu_s_per_node_s", "steady CPU per node", "≤ 0.005 CPU-s/s", 0.005, fmtCPU)
	steadyTarget(128, "rss_bytes_per_node", "RSS per node", "≤ 8 MiB", 8<<20, fmtMiB)
	if slices.Contains(d.ns, 1024) {
		// the overlay's cost at 1,024 nodes: within 1.5× of 32 nodes' with the same K
		steadyTarget(1024, "cpu_s_per_node_s", "steady CPU per node", "≤ 0.002 CPU-s/s", 0.002, fmtCPU)
		steadyTarget(1024, "wire_bytes_per_node_s", "steady bytes sent per node per second (on the wire)", "≤ 3 KB/s", 3000, fmtBytesRate)
		steadyTarget(1024, "rss_bytes_per_node", "RSS per node", "≤ 3 MiB", 3<<20, fmtMiB)
	}
	fd, total, theirsFD := 0, 0, 0
	for _, r := range d.recs {
		if r.Scenario == "steady" {
			if r.System == ours {
				fd += r.FalseDowns
				total++
			} else {
				theirsFD += r.FalseDowns
			}
		}
	}
	v := "**met**"
	if fd > 0 {
		v = "**missed**"
	}
	ts = append(ts, target{"false downs in steady runs", "0", fmt.Sprintf("%d in %d runs", fd, total), fmt.Sprint(theirsFD), "", v})
	for _, t := range ts {
		p("| %s | %s | %s | %s | %s | %s |\n", t.measure, t.goal, t.oursV, t.theirsV, t.ratio, t.verdict)
	}
	p("\n")
}

// why explains a missing measurement: not run, or the cluster could not be formed and held.
func (d *data) why(system, pr string, n int) string {
	for _, r := range d.sel(system, pr, "setup", n) {
		if !r.OK {
			msg, _, _ := strings.Cut(r.Error, ":")
			return "not measurable: the cluster did not hold (" + msg + " within 60 s)"
		}
	}
	return "not measured"
}

func (d *data) whyVerdict(system, pr string, n int) string {
	if strings.HasPrefix(d.why(system, pr, n), "not measurable") {
		return "**missed**"
	}
	return "not measured"
}

func (d *data) metricStats(system, profile string, n int, key string) (stats, bool) {
	var vs []float64
	for _, r := range d.sel(system, profile, "steady", n) {
		if v, ok := metric(r, key); ok {
			vs = append(vs, v)
		}
	}
	return summarize(vs)
}

func fmtBytesRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.1f KB/s", v/1000)
	}
	return fmt.Sprintf("%.0f B/s", v)
}
func fmtCPU(v float64) string   { return fmt.Sprintf("%.4f", v) }
func fmtMiB(v float64) string   { return fmt.Sprintf("%.2f MiB", v/(1<<20)) }
func fmtCount(v float64) string { return fmt.Sprintf("%.1f", v) }

func (d *data) writeMethod(p func(string, ...any)) {
	// ¦ stands for a backquote, which a Go raw string cannot hold.
	p("%s", strings.ReplaceAll(methodText, "¦", "`"))
}

const methodText = `## What is measured

- **Both systems in one run, on 127.0.0.1 with real sockets**: meshnode over real gRPC
  (¦server.Start¦, plaintext, no secret, defaults except the heartbeat settings), its network
  wrapped only to crash or go silent on demand (¦faultnet¦); memberlist v0.7.0 over its own
  ¦NetTransport¦ (UDP + TCP), wrapped only to count bytes and to go silent on demand. Every (system, profile, N, trial) runs in a fresh worker process, so each system
  has its process to itself and memory is measured without leftovers.
- **Times** run from the action (the first start, the join, a crash of the node's network
  then ¦Stop()¦/¦Shutdown()¦, a freeze of the network/the dropping transport,
  ¦Stop()¦/¦Leave()¦) to the report that completes the
  condition (for a node run in a host process, a fault's time runs from when its host began
  it, not from when the worker sent the command over the pipe: each record's ¦fault_delay_s¦
  says how far apart those were, from ¦scale-overlay-33-1024¦ on), taken from each node's own notifications (meshnode events; memberlist's
  ¦EventDelegate¦: ¦NotifyJoin¦ to list, ¦NotifyLeave¦ to report down). Formations over 30 s
  count as stalls; "never" means the change was not seen by all within the cap (30 s for
  formations and joins, 60 s for failures).
- **Steady state** (10 s, after the formation's tail and 1 s of settling): *payload* is the TCP/UDP payload the nodes
  wrote (meshnode: the kernel's ¦tcpi_bytes_sent − tcpi_bytes_retrans¦ of every TCP socket of
  the process, i.e. gRPC's HTTP/2 frames; memberlist: every UDP packet written plus its TCP
  streams' kernel counters); *wire* adds the IP and TCP/UDP headers of every packet sent, pure
  ACKs included (52 bytes per TCP segment: IPv4 20 + TCP with timestamps 32, counted from
  ¦tcpi_segs_out¦; 28 per UDP datagram), which is how ¦/proc/net/dev¦ counts loopback bytes (an
  Ethernet link adds 14 bytes of header per packet); *lo* is the loopback interface's own
  counter, shared with the whole machine, so only a cross-check (an upper bound when other
  processes talk on loopback). CPU is ¦getrusage¦ of the process(es) over the window divided
  by N; RSS (VmRSS as the OS sees it at the end of the window, not forced down), Go heap in use
  (after a GC the harness forces once the trial's last scenario is over, so that the stall it
  causes does not slow the scenarios; right after the window before ¦scale-overlay-24-1024¦),
  goroutine stacks and goroutines are the growth over the empty process, divided by N.
- **Cluster sizes that do not fit one process.** meshnode opens a socket per stream end: in
  a full mesh (up to K+1 nodes) a node holds N−1 of them, in the overlay about 2K, and a
  formation's dials a quarter more; this machine's hard RLIMIT_NOFILE is 20000 (not raisable
  here). When the nodes' sockets exceed 15,000 the worker spreads meshnode's nodes round
  robin over several host processes (at 1,024 nodes, two) that report their events with their
  timestamps; memberlist always runs in one process. Every process keeps Go's own GOMAXPROCS
  (one per core). The formation tables give the process count.
- **When a formation does not converge** (a stall), a run with ¦-formation-attempts¦ above 1
  closes that cluster and forms a fresh one under new names, up to that many times; each try
  is a formation trial of its own in the tables. When none converges, the trial goes on with a
  cluster grown in waves of 16 nodes (each wave converged before the next), recorded as a
  ¦setup¦ line, so that join, leave, crash, silent failure and steady state are still
  measured.

`

func (d *data) writeTimeTable(p func(string, ...any), pr, sc, title string) {
	p("### %s\n\n", title)
	hasStall := sc == "formation"
	if hasStall {
		p("| N | meshnode median (min–max, trials) | memberlist median (min–max, trials) | ratio ours/theirs | meshnode stalls > 30 s | memberlist stalls > 30 s | meshnode processes |\n|---|---|---|---|---|---|---|\n")
	} else {
		p("| N | meshnode median (min–max, trials) | memberlist median (min–max, trials) | ratio ours/theirs | reasons (meshnode / memberlist) | false downs (ours / theirs) |\n|---|---|---|---|---|---|\n")
	}
	for _, n := range d.ns {
		o, ok1 := d.timeStats(ours, pr, sc, n)
		t, ok2 := d.timeStats(theirs, pr, sc, n)
		if !ok1 && !ok2 {
			continue
		}
		os, ts := d.why(ours, pr, n), d.why(theirs, pr, n)
		if ok1 {
			os = o.fmt(fmtDur)
		}
		if ok2 {
			ts = t.fmt(fmtDur)
		}
		rs := "—"
		if r, ok := d.ratioStats(pr, sc, n, timeOf); ok {
			rs = r.fmt(fmtRatio)
		}
		if hasStall {
			a, b, c := d.counts(ours, pr, n)
			x, y, z := d.counts(theirs, pr, n)
			procs := "1"
			for _, r := range d.sel(ours, pr, sc, n) {
				if v, ok := metric(r, "processes"); ok {
					procs = fmt.Sprint(v)
				}
			}
			p("| %d | %s | %s | %s | %d of %d (%d never) | %d of %d (%d never) | %s |\n", n, os, ts, rs, a, c, b, x, z, y, procs)
		} else {
			p("| %d | %s | %s | %s | %s / %s | %d / %d |\n", n, os, ts, rs,
				d.reasons(ours, pr, sc, n), d.reasons(theirs, pr, sc, n), d.falseDowns(ours, pr, sc, n), d.falseDowns(theirs, pr, sc, n))
		}
	}
	p("\n")
}

func (d *data) reasons(system, pr, sc string, n int) string {
	agg := map[string]int{}
	for _, r := range d.sel(system, pr, sc, n) {
		for k, v := range r.Reasons {
			agg[k] += v
		}
	}
	if len(agg) == 0 {
		return "—"
	}
	return joinSorted(agg, "%s ×%d")
}

// joinSorted formats every entry of m with format (key, value), in key order, comma-separated.
func joinSorted[V any](m map[string]V, format string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf(format, k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// falseDowns sums the false downs of a scenario's runs.
func (d *data) falseDowns(system, pr, sc string, n int) int {
	t := 0
	for _, r := range d.sel(system, pr, sc, n) {
		t += r.FalseDowns
	}
	return t
}

func (d *data) writeSteady(p func(string, ...any), pr string) {
	p("### Steady state, 10 s, per node\n\n")
	rows := []struct {
		key, label string
		f          func(float64) string
	}{
		{"payload_bytes_per_node_s", "bytes sent/s, payload", fmtBytesRate},
		{"wire_bytes_per_node_s", "bytes sent/s, on the wire (with headers and ACKs)", fmtBytesRate},
		{"lo_bytes_per_node_s", "lo interface bytes/s ÷ N (shared, upper bound)", fmtBytesRate},
		{"cpu_s_per_node_s", "CPU-s per s", fmtCPU},
		{"rss_bytes_per_node", "RSS", fmtMiB},
		{"heap_inuse_bytes_per_node", "Go heap in use", fmtMiB},
		{"stack_inuse_bytes_per_node", "goroutine stacks", fmtMiB},
		{"goroutines_per_node", "goroutines", fmtCount},
	}
	p("| N | measure | meshnode | memberlist | ratio ours/theirs |\n|---|---|---|---|---|\n")
	for _, n := range d.ns {
		if len(d.sel(ours, pr, "steady", n))+len(d.sel(theirs, pr, "steady", n)) == 0 {
			continue
		}
		for _, row := range rows {
			o, ok1 := d.metricStats(ours, pr, n, row.key)
			t, ok2 := d.metricStats(theirs, pr, n, row.key)
			os, ts, rs := "—", "—", "—"
			if ok1 {
				os = o.fmt(row.f)
			}
			if ok2 {
				ts = t.fmt(row.f)
			}
			if r, ok := d.ratioStats(pr, "steady", n, func(r harness.Record) (float64, bool) { return metric(r, row.key) }); ok {
				rs = r.fmt(fmtRatio)
			}
			p("| %d | %s | %s | %s | %s |\n", n, row.label, os, ts, rs)
		}
		p("| %d | false downs during the window | %d | %d | |\n", n, d.falseDowns(ours, pr, "steady", n), d.falseDowns(theirs, pr, "steady", n))
		if o, t := d.afterWindowFalse(ours, pr, n), d.afterWindowFalse(theirs, pr, n); o+t > 0 {
			p("| %d | false downs after the window, during the harness's forced garbage collection | %d | %d | |\n", n, o, t)
		}
	}
	p("\n")
}

// afterWindowFalse sums what the forced collection after the steady windows caused (runs
// that recorded it).
func (d *data) afterWindowFalse(system, pr string, n int) int {
	t := 0
	for _, r := range d.sel(system, pr, "steady", n) {
		if v, ok := metric(r, "false_downs_after_window"); ok {
			t += int(v)
		}
	}
	return t
}

// plot draws time vs N for one scenario: both systems, both profiles, medians with min–max bars.
func (d *data) plot(sc, path string) error {
	pl := plot.New()
	pl.Title.Text = map[string]string{
		"formation": "Formation: N nodes at once, until all list all",
		"join":      "Join: until all N members list the newcomer",
		"crash":     "Crash: until every other node reports it down",
		"silent":    "Silent failure: until every other node reports it down",
		"leave":     "Graceful leave: until every other node reports it",
	}[sc]
	pl.X.Label.Text = "N (nodes)"
	pl.Y.Label.Text = "seconds (log scale); median, bars min–max"
	pl.Y.Scale = plot.LogScale{}
	pl.Y.Tick.Marker = durationTicks{}
	pl.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, n := range d.ns {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: fmt.Sprint(n)})
	}
	pl.X.Tick.Marker = plot.ConstantTicks(ticks)
	pl.Legend.Top = true
	pl.Legend.Left = true
	pl.Add(plotter.NewGrid())
	styles := []struct {
		sys, pr string
		c       color.Color
		dashed  bool
		shape   draw.GlyphDrawer
	}{
		{ours, "lan", color.RGBA{R: 0, G: 90, B: 200, A: 255}, false, draw.CircleGlyph{}},
		{ours, "fast", color.RGBA{R: 0, G: 160, B: 220, A: 255}, true, draw.CircleGlyph{}},
		{theirs, "lan", color.RGBA{R: 200, G: 40, B: 30, A: 255}, false, draw.TriangleGlyph{}},
		{theirs, "fast", color.RGBA{R: 240, G: 130, B: 30, A: 255}, true, draw.TriangleGlyph{}},
	}
	capSec := 30.0
	if sc == "crash" || sc == "silent" || sc == "leave" {
		capSec = 60
	}
	capLine := plotter.NewFunction(func(float64) float64 { return capSec })
	capLine.Color = color.Gray{Y: 120}
	capLine.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	pl.Add(capLine)
	pl.Legend.Add(fmt.Sprintf("cap %.0f s: a point on it was never seen by all", capSec), capLine)
	for _, st := range styles {
		var pts plotter.XYs
		var errs plotter.YErrors
		for _, n := range d.ns {
			s, ok := d.timeStats(st.sys, st.pr, sc, n)
			if !ok {
				continue
			}
			clamp := func(v float64) float64 { return math.Max(math.Min(v, capSec), 1e-4) }
			med := clamp(s.med)
			pts = append(pts, plotter.XY{X: float64(n), Y: med})
			errs = append(errs, struct{ Low, High float64 }{med - clamp(s.lo), clamp(s.hi) - med})
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color = st.c
		line.Width = vg.Points(1.5)
		if st.dashed {
			line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		points.Color = st.c
		points.Shape = st.shape
		points.Radius = vg.Points(3)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err != nil {
			return err
		}
		eb.Color = st.c
		pl.Add(line, points, eb)
		pl.Legend.Add(fmt.Sprintf("%s (%s)", st.sys, st.pr), line, points)
	}
	// Room above the data for the legend.
	pl.Y.Max *= 10
	return pl.Save(8*vg.Inch, 5*vg.Inch, path)
}

// durationTicks labels a log-scale seconds axis at 1, 2 and 5 of every decade.
type durationTicks struct{}

func (durationTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for dec := math.Pow10(int(math.Floor(math.Log10(lo)))); dec <= hi; dec *= 10 {
		for m := 1.0; m < 10; m++ {
			v := dec * m
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				if v >= 1 {
					t.Label = strconv.FormatFloat(v, 'g', 3, 64) + " s"
				} else {
					t.Label = strconv.FormatFloat(v*1000, 'g', 3, 64) + " ms"
				}
			}
			ts = append(ts, t)
		}
	}
	return ts
}
