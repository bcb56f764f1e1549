// Command meshbench measures meshnode and hashicorp/memberlist side by side on loopback and
// writes one JSON line per measurement.
//
//	meshbench -n 8,32 -out results/quick.jsonl
//
// The orchestrator runs every (system, profile, N, trial) in a fresh worker process (itself
// with -worker), so each system has the whole process to itself, all of its nodes share it,
// and memory, goroutines and sockets are measured without leftovers of the other system.
// Systems alternate: odd trials run meshnode first, even trials memberlist first.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/bench/internal/harness"
)

// buildCommit is set by the Makefile (-ldflags -X): the engine commit the binary was built
// from. Without it the run records the checkout's HEAD at start.
var buildCommit string

func main() {
	var (
		worker     = flag.Bool("worker", false, "internal: run one worker")
		hostMode   = flag.Bool("host", false, "internal: host nodes for a worker (stdin/stdout)")
		procs      = flag.Int("processes", 0, "worker: host processes (0: one, unless the sockets do not fit)")
		system     = flag.String("system", "meshnode", "worker: meshnode or memberlist")
		profile    = flag.String("profile", "lan", "worker: lan or fast (or lan3s: lan at a 3 s interval, for diagnosis)")
		n          = flag.Int("nodes", 8, "worker: N")
		trial      = flag.Int("trial", 1, "worker: trial number")
		scenarios  = flag.String("scenarios", "all", "worker: all, formation, or silent (formation, steady, then only the silent failure)")
		steady     = flag.Duration("steady", 10*time.Second, "steady-state window (0 skips it)")
		grace      = flag.Duration("formation-grace", 0, "extra wait after a 30 s formation stall, to tell late from never")
		attempts   = flag.Int("formation-attempts", 1, "all-at-once formations a full trial tries before it grows the cluster in waves")
		failureCap = flag.Duration("failure-cap", 60*time.Second, "cap on crash, silent and leave waits")
		cpuprof    = flag.String("cpuprofile", "", "worker: CPU profile of the steady window")
		memprof    = flag.String("memprofile", "", "worker: heap profile after the steady window")
		formprof   = flag.String("formation-cpuprofile", "", "worker: CPU profile of the formation")
		faultprof  = flag.String("fault-cpuprofile", "", "worker: path prefix of a CPU profile of each fault scenario (<prefix>.<scenario>.pprof)")

		ns          = flag.String("n", "8,32", "cluster sizes")
		profiles    = flag.String("profiles", "lan,fast", "profiles")
		systems     = flag.String("systems", "meshnode,memberlist", "systems")
		trials      = flag.Int("trials", 3, "full trials per (system, profile, N)")
		steadyTr    = flag.Int("steady-trials", 1, "trials (the first ones) that include the steady window")
		steadyProf  = flag.String("steady-profiles", "lan,fast", "profiles whose trials include the steady window")
		formExtra   = flag.Int("formation-trials", 5, "extra formation-only trials per (system, profile, N), to count stalls")
		out         = flag.String("out", "results/bench.jsonl", "output JSON lines")
		label       = flag.String("label", "quick", "label of the run")
		profileDir  = flag.String("profile-dir", "", "if set, CPU/heap profiles of every steady window go here")
		workerQuiet = flag.Bool("quiet", false, "print less progress")
	)
	flag.Parse()
	if *hostMode {
		if err := harness.RunHost(*system, *profile, os.Stdin, os.Stdout); err != nil {
			fatal(err)
		}
		return
	}
	if *worker {
		enc := json.NewEncoder(os.Stdout)
		err := harness.RunWorker(harness.Options{
			System: *system, Profile: *profile, N: *n, Trial: *trial, Scenarios: *scenarios,
			Steady: *steady, StallAfter: 30 * time.Second, FormationGrace: *grace, FailureCap: *failureCap, FormationAttempts: *attempts,
			CPUProfile: *cpuprof, MemProfile: *memprof, FormationCPUProfile: *formprof, FaultCPUProfile: *faultprof, Processes: *procs,
			Emit: func(r harness.Record) { _ = enc.Encode(r) },
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}

	o := orchestrator{
		steady: *steady, grace: *grace, attempts: *attempts, failureCap: *failureCap, label: *label,
		run: time.Now().UTC().Format("20060102T150405Z"), profileDir: *profileDir, quiet: *workerQuiet,
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fatal(err)
	}
	f, err := os.Create(*out)
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	o.out = f
	o.writeMeta(strings.TrimSuffix(*out, ".jsonl")+".meta.json", os.Args, *profiles)
	sizes := parseInts(*ns)
	start := time.Now()
	for _, N := range sizes {
		for _, p := range strings.Split(*profiles, ",") {
			for t := 1; t <= *trials; t++ {
				for _, s := range order(strings.Split(*systems, ","), t) {
					o.runWorker(s, p, N, t, "all", t <= *steadyTr && slices.Contains(strings.Split(*steadyProf, ","), p))
				}
			}
			for t := 1; t <= *formExtra; t++ {
				for _, s := range order(strings.Split(*systems, ","), t) {
					o.runWorker(s, p, N, 100+t, "formation", false)
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "meshbench: done in %s, results in %s\n", time.Since(start).Round(time.Second), *out)
}

// order alternates the systems: as given on odd trials, reversed on even ones.
func order(s []string, trial int) []string {
	if trial%2 == 1 {
		return s
	}
	r := make([]string, len(s))
	for i := range s {
		r[i] = s[len(s)-1-i]
	}
	return r
}

type orchestrator struct {
	out           *os.File
	steady, grace time.Duration
	attempts      int
	failureCap    time.Duration
	label, run    string
	profileDir    string
	quiet         bool
}

func (o *orchestrator) runWorker(system, profile string, n, trial int, scenarios string, steady bool) {
	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	args := []string{"-worker", "-system", system, "-profile", profile, "-nodes", strconv.Itoa(n),
		"-trial", strconv.Itoa(trial), "-scenarios", scenarios, "-formation-grace", o.grace.String(),
		"-failure-cap", o.failureCap.String(), "-formation-attempts", strconv.Itoa(o.attempts)}
	if steady {
		args = append(args, "-steady", o.steady.String())
		if o.profileDir != "" {
			base := filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-n%d", system, profile, n))
			args = append(args, "-cpuprofile", base+".cpu.pprof", "-memprofile", base+".heap.pprof")
		}
	} else {
		args = append(args, "-steady", "0")
	}
	// A worker that hangs is killed; its host processes see their stdin close and exit.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	runErr := cmd.Run()
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	got := 0
	for sc.Scan() {
		var r harness.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue
		}
		r.Run, r.Label = o.run, o.label
		line, _ := json.Marshal(r)
		_, _ = o.out.Write(append(line, '\n'))
		got++
		if !o.quiet {
			fmt.Fprintf(os.Stderr, "  %-10s %-4s N=%-3d t=%-3d %-9s %s\n", system, profile, n, trial, r.Scenario, summary(r))
		}
	}
	if runErr != nil || got == 0 {
		fmt.Fprintf(os.Stderr, "meshbench: worker %s %s N=%d trial %d: %v (%d records)\n", system, profile, n, trial, runErr, got)
		r := harness.Record{Run: o.run, Label: o.label, Time: time.Now().UTC().Format(time.RFC3339Nano),
			System: system, Profile: profile, N: n, Trial: trial, Scenario: "worker",
			Error: fmt.Sprint(runErr)}
		line, _ := json.Marshal(r)
		_, _ = o.out.Write(append(line, '\n'))
	}
	_ = o.out.Sync()
	if !o.quiet {
		fmt.Fprintf(os.Stderr, "  (%s)\n", time.Since(t0).Round(10*time.Millisecond))
	}
}

func summary(r harness.Record) string {
	if r.Scenario == "steady" {
		m := r.Metrics
		return fmt.Sprintf("payload %.0f B/s wire %.0f B/s cpu %.4f rss %.2f MiB heap %.2f MiB gor %.1f false_downs %d",
			m["payload_bytes_per_node_s"], m["wire_bytes_per_node_s"], m["cpu_s_per_node_s"],
			toF(m["rss_bytes_per_node"])/(1<<20), toF(m["heap_inuse_bytes_per_node"])/(1<<20), m["goroutines_per_node"], r.FalseDowns)
	}
	s := fmt.Sprintf("%.4fs ok=%v", r.Seconds, r.OK)
	if r.Stalled {
		s += " STALLED"
	}
	if r.Missing > 0 {
		s += fmt.Sprintf(" missing=%d %v", r.Missing, r.MissingList)
	}
	if r.FalseDowns > 0 {
		s += fmt.Sprintf(" false_downs=%d", r.FalseDowns)
	}
	if r.Error != "" {
		s += " error=" + r.Error
	}
	return s
}

func toF(v any) float64 {
	f, _ := v.(float64)
	return f
}

// writeMeta records the machine, the command and every setting of the run.
func (o *orchestrator) writeMeta(path string, args []string, profiles string) {
	meta := map[string]any{
		"run":        o.run,
		"label":      o.label,
		"command":    strings.Join(args, " "),
		"go":         runtime.Version(),
		"gomaxprocs": runtime.GOMAXPROCS(0),
		"cpu":        cpuModel(),
		"cpus":       runtime.NumCPU(),
		"mem_total":  memTotal(),
		"kernel":     kernel(),
		"commit":     gitCommit(),
		"settings":   map[string]any{},
	}
	settings := meta["settings"].(map[string]any)
	for _, p := range strings.Split(profiles, ",") {
		tr := harness.NewTracker()
		for _, s := range []string{"meshnode", "memberlist"} {
			settings[s+"/"+p] = harness.NewSystem(s, harness.Profiles[p], tr).Describe()
		}
	}
	b, _ := json.MarshalIndent(meta, "", "  ")
	_ = os.WriteFile(path, append(b, '\n'), 0o644)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return ""
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func gitCommit() string {
	if buildCommit != "" {
		return buildCommit
	}
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--", "../membership", "../server").Output(); err == nil && len(st) > 0 {
		s += "+uncommitted engine changes"
	}
	return s
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "meshbench:", err)
	os.Exit(1)
}
