//go:build chaos && linux

package chaos_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CPU starvation uses the CFS bandwidth controller: cgroup v2 `cpu.max` where the cpu
// controller is on the unified hierarchy, else cgroup v1 `cpu.cfs_quota_us` /
// `cpu.cfs_period_us` (kernel CONFIG_CFS_BANDWIDTH). Every cgroup this suite makes is named
// chaos-… under the test process's own cgroup, and removed at the end.

// cpuHierarchy is where the cpu controller is mounted and our cgroup in it.
type cpuHierarchy struct {
	version int    // 1 or 2
	dir     string // the test process's own cgroup directory in that hierarchy
}

// findCPUHierarchy locates the cpu controller.
func findCPUHierarchy() (cpuHierarchy, error) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cpuHierarchy{}, err
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return cpuHierarchy{}, err
	}
	ownPath := func(match func(controllers string) bool) (string, bool) {
		for _, line := range strings.Split(string(own), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 && match(parts[1]) {
				return parts[2], true
			}
		}
		return "", false
	}
	var v1 *cpuHierarchy
	sc := bufio.NewScanner(strings.NewReader(string(mounts)))
	for sc.Scan() {
		// id parent major:minor root mountpoint opts … - fstype source superopts
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+4 {
			continue
		}
		mountpoint, fstype, superOpts := f[4], f[sep+1], f[sep+3]
		switch fstype {
		case "cgroup2":
			ctrl, err := os.ReadFile(filepath.Join(mountpoint, "cgroup.controllers"))
			if err != nil || !hasWord(string(ctrl), "cpu") {
				continue
			}
			p, ok := ownPath(func(c string) bool { return c == "" })
			if !ok {
				continue
			}
			return cpuHierarchy{version: 2, dir: filepath.Join(mountpoint, p)}, nil
		case "cgroup":
			if v1 != nil || !hasItem(superOpts, "cpu") {
				continue
			}
			p, ok := ownPath(func(c string) bool { return hasItem(c, "cpu") })
			if !ok {
				continue
			}
			v1 = &cpuHierarchy{version: 1, dir: filepath.Join(mountpoint, p)}
		}
	}
	if v1 != nil {
		return *v1, nil
	}
	return cpuHierarchy{}, errors.New("no cgroup cpu controller (cgroup v2 cpu.max or v1 cpu.cfs_quota_us) is mounted")
}

func hasWord(s, w string) bool {
	for _, x := range strings.Fields(s) {
		if x == w {
			return true
		}
	}
	return false
}

func hasItem(s, w string) bool {
	for _, x := range strings.Split(s, ",") {
		if x == w {
			return true
		}
	}
	return false
}

// cpuCgroup is one throttled cgroup.
type cpuCgroup struct {
	h   cpuHierarchy
	dir string
}

// newCPUCgroup creates a cgroup limited to quota of CPU time every period, removed when
// the test ends (its processes are moved back to the test's cgroup first).
func newCPUCgroup(t *testing.T, name string, quota, period time.Duration) *cpuCgroup {
	t.Helper()
	h, err := findCPUHierarchy()
	if err != nil {
		t.Skip(err.Error())
	}
	cg := &cpuCgroup{h: h, dir: filepath.Join(h.dir, namePrefix+name)}
	if h.version == 2 {
		// The controller must be enabled for our children.
		_ = os.WriteFile(filepath.Join(h.dir, "cgroup.subtree_control"), []byte("+cpu"), 0)
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		t.Fatalf("cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := removeCgroup(cg.dir, filepath.Dir(cg.dir), false); err != nil {
			t.Errorf("cgroup cleanup: %v", err)
		}
	})
	if err := cg.limit(quota, period); err != nil {
		t.Fatalf("cgroup limit: %v", err)
	}
	return cg
}

// limit sets the bandwidth; quota 0 removes the limit.
func (cg *cpuCgroup) limit(quota, period time.Duration) error {
	us := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }
	if cg.h.version == 2 {
		v := "max " + us(period)
		if quota > 0 {
			v = us(quota) + " " + us(period)
		}
		return os.WriteFile(filepath.Join(cg.dir, "cpu.max"), []byte(v), 0)
	}
	if quota <= 0 {
		return os.WriteFile(filepath.Join(cg.dir, "cpu.cfs_quota_us"), []byte("-1"), 0)
	}
	// The quota must stay valid against the period at every step.
	_ = os.WriteFile(filepath.Join(cg.dir, "cpu.cfs_quota_us"), []byte("-1"), 0)
	if err := os.WriteFile(filepath.Join(cg.dir, "cpu.cfs_period_us"), []byte(us(period)), 0); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cg.dir, "cpu.cfs_quota_us"), []byte(us(quota)), 0)
}

// add moves a process (all its threads) into the cgroup.
func (cg *cpuCgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

// describe returns the controller in use, for the record.
func (cg *cpuCgroup) describe() string {
	if cg.h.version == 2 {
		return "cgroup v2 cpu.max"
	}
	return "cgroup v1 cpu.cfs_quota_us/cfs_period_us"
}

// stat returns cpu.stat as a map (nr_periods, nr_throttled, throttled_time or
// throttled_usec…).
func (cg *cpuCgroup) stat() map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile(filepath.Join(cg.dir, "cpu.stat"))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

// removeCgroup moves the processes of dir to parent (or kills them), then removes dir.
func removeCgroup(dir, parent string, kill bool) error {
	var lastErr error
	for i := 0; i < 50; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		pids := strings.Fields(string(b))
		for _, p := range pids {
			if kill {
				if pid, err := strconv.Atoi(p); err == nil && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGCONT)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				continue
			}
			_ = os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(p), 0)
		}
		if lastErr = os.Remove(dir); lastErr == nil || os.IsNotExist(lastErr) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, lastErr)
}

// sweepCgroups removes chaos- cgroups a crashed run left, killing what is inside them (only
// this suite puts processes there).
func sweepCgroups() error {
	h, err := findCPUHierarchy()
	if err != nil {
		return nil
	}
	dirs, _ := filepath.Glob(filepath.Join(h.dir, namePrefix+"*"))
	var errs []error
	for _, d := range dirs {
		if err := removeCgroup(d, h.dir, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startBurners starts n busy loops (plain shell loops) and returns their processes; they
// are killed when the test ends.
func startBurners(t *testing.T, n int) []*exec.Cmd {
	t.Helper()
	var out []*exec.Cmd
	for i := 0; i < n; i++ {
		cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("burner: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		out = append(out, cmd)
	}
	return out
}
