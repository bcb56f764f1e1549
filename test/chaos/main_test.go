//go:build chaos && linux

// Package chaos_test is the fault-injection suite: every node a real `node agent` process
// in its own network namespace, faults injected the way operators meet them (signals,
// firewall rules, packet loss and delay, CPU starvation, restarts, intruders), every
// expectation checked through the public API with a deadline, every figure recorded.
//
// Run it with `make chaos` (root, Linux, iproute2 and iptables). See docs/reliability.md.
package chaos_test

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"testing"
)

var (
	// nodeBinary is the `node` binary built once for the run.
	nodeBinary string
	// artifactsDir keeps every node's log and the results file.
	artifactsDir string
	// resultsPath is the JSON-lines file the measured figures are appended to.
	resultsPath string
	// runID names this run in the results.
	runID string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "chaos: this suite creates network namespaces, firewall rules and cgroups: run it as root (make chaos)")
		return 1
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: %s not found: apt-get install -y iproute2 iptables\n", tool)
			return 1
		}
	}
	runID = time.Now().UTC().Format("20060102T150405Z")
	artifactsDir = os.Getenv("CHAOS_ARTIFACTS")
	if artifactsDir == "" {
		artifactsDir = filepath.Join(os.TempDir(), "meshnode-chaos")
	}
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	resultsPath = os.Getenv("CHAOS_RESULTS")
	if resultsPath == "" {
		resultsPath = filepath.Join(artifactsDir, "results.jsonl")
	}

	// One run at a time on a machine: the names and addresses are fixed.
	lock, err := os.OpenFile("/run/meshnode-chaos.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: another chaos run holds /run/meshnode-chaos.lock")
		return 1
	}

	if err := sweepLeftovers(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: cleaning up an earlier run:", err)
		return 1
	}
	defer func() {
		if err := sweepLeftovers(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: final sweep:", err)
		}
	}()
	// Interrupted (Ctrl-C, CI cancelling): remove everything before dying. The agents and
	// busy loops also die with this process (Pdeathsig); a run killed outright leaves only
	// namespaces and cgroups, which the next run sweeps.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigc
		fmt.Fprintf(os.Stderr, "chaos: %s: cleaning up\n", sig)
		_ = sweepLeftovers()
		os.Exit(2)
	}()

	dir, err := os.MkdirTemp("", "chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	nodeBinary = filepath.Join(dir, "node")
	build := exec.Command("go", "build", "-o", nodeBinary, "github.com/meshnode/meshnode/cmd/node")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: building node:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "chaos: node logs in %s, figures appended to %s\n", artifactsDir, resultsPath)
	return m.Run()
}

// getenv returns the environment variable k, or def when it is unset or empty.
func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
