package resolverbench

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Report is the file a run writes: its settings, the machine and every trial.
type Report struct {
	// Run is the start time of the run (UTC, compact), Command its command line.
	Run     string `json:"run"`
	Command string `json:"command"`
	// Machine, GoVersion and Commit say what ran it.
	Machine   string `json:"machine"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit"`
	// Interval and Threshold are the nodes' heartbeat settings.
	Interval  string `json:"interval"`
	Threshold int    `json:"threshold"`
	// Every, Deadline, DrainDelay and Settle are the Options of the trials.
	Every      string `json:"every"`
	Deadline   string `json:"deadline"`
	DrainDelay string `json:"drain_delay"`
	Settle     string `json:"settle"`
	// Trials are the trials, in order.
	Trials []Trial `json:"trials"`
}

// Machine describes the CPU and the number of CPUs.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return model + ", " + strconv.Itoa(runtime.NumCPU()) + " logical CPUs, " + runtime.GOOS + "/" + runtime.GOARCH
}

// GitCommit returns the checkout's short commit, with +uncommitted when the client package,
// the server or the membership engine differ from it.
func GitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := string(bytes.TrimSpace(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--", "../client", "../membership", "../server").Output(); err == nil && len(st) > 0 {
		commit += "+uncommitted"
	}
	return commit
}
