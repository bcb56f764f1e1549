// Command resolverbench measures how a gRPC client's traffic follows backends that crash,
// freeze, leave and join, through three resolvers side by side in one run: meshnode:///, a
// static list (a manual resolver holding the first backends' addresses) and grpc-go's
// dns:/// (pointed at a DNS server on loopback whose records follow the changes at once).
// Every channel uses round_robin and calls every -every with a 1 s deadline.
//
//	cd bench && go build -o ../bin/resolverbench ./cmd/resolverbench && ../bin/resolverbench -out results/resolver/resolver.json
//
// It writes the trials as JSON; bench/cmd/benchreport turns them into a section of
// BENCHMARKS.md and a plot.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/meshnode/meshnode/bench/internal/resolverbench"
)

func main() {
	var (
		backend    = flag.Bool("backend", false, "internal: run one backend process")
		name       = flag.String("name", "", "backend: node name")
		ip         = flag.String("ip", "127.0.0.1", "backend: loopback address to bind")
		appPort    = flag.Int("app-port", 0, "backend: application port (0: a node without application)")
		seed       = flag.String("seed", "", "backend: membership address of a running node")
		interval   = flag.Duration("interval", time.Second, "heartbeat interval")
		threshold  = flag.Int("threshold", 3, "heartbeat miss threshold")
		drainDelay = flag.Duration("drain-delay", 200*time.Millisecond, "pause between a backend's leave and its drain")
		every      = flag.Duration("every", 2*time.Millisecond, "period of each channel's calls")
		settle     = flag.Duration("settle", 3*time.Second, "length of each phase after its change (the freeze's: + interval × threshold + interval)")
		trials     = flag.Int("trials", 3, "trials")
		out        = flag.String("out", "results/resolver/resolver.json", "output JSON")
	)
	flag.Parse()
	if *backend {
		err := resolverbench.RunBackend(resolverbench.BackendArgs{
			Name: *name, IP: *ip, AppPort: *appPort, Seed: *seed,
			Interval: *interval, Threshold: *threshold, DrainDelay: *drainDelay,
		}, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	report := resolverbench.Report{
		Run:       time.Now().UTC().Format("20060102T150405Z"),
		Command:   strings.Join(append([]string{"resolverbench"}, os.Args[1:]...), " "),
		Machine:   resolverbench.Machine(),
		GoVersion: runtime.Version(),
		Commit:    resolverbench.GitCommit(),
		Interval:  interval.String(), Threshold: *threshold, Every: every.String(),
		Deadline: "1s", DrainDelay: drainDelay.String(), Settle: settle.String(),
	}
	start := time.Now()
	for t := 1; t <= *trials; t++ {
		trial, err := resolverbench.Run(resolverbench.Options{
			Exe: exe, Interval: *interval, Threshold: *threshold, Every: *every, Deadline: time.Second,
			DrainDelay: *drainDelay, Settle: *settle, Trial: t, Log: os.Stderr,
		})
		if err != nil {
			fatal(fmt.Errorf("trial %d: %w", t, err))
		}
		for _, m := range trial.Modes {
			var parts []string
			for _, o := range m.Outcomes {
				parts = append(parts, fmt.Sprintf("%s %s: failed %d, follow %.3fs (followed %t)", o.Kind, o.Backend, o.Failed, o.Follow, o.Followed))
			}
			fmt.Fprintf(os.Stderr, "resolverbench: trial %d %-8s calls %d failed %d | %s\n", t, m.Mode, m.Calls, m.Failed, strings.Join(parts, "; "))
		}
		report.Trials = append(report.Trials, *trial)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fatal(err)
	}
	b, err := json.MarshalIndent(report, "", " ")
	if err != nil {
		fatal(err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "resolverbench: %d trials in %s, results in %s\n", *trials, time.Since(start).Round(time.Second), *out)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "resolverbench:", err)
	os.Exit(1)
}
