package process_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	systemdUnit = "../../deploy/systemd/meshnode.service"
	systemdEnv  = "../../deploy/systemd/meshnode.env"
)

// agentFlagsAndEnv returns the flags and environment variables `node agent --help` lists.
func agentFlagsAndEnv(t *testing.T) (flags, envs map[string]bool) {
	t.Helper()
	out, _ := exec.Command(nodeBinary, "agent", "--help").CombinedOutput() // exit status 0 or 2, by the flag library
	flags, envs = map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--?([a-z][a-z0-9-]+)\b`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\[\$([A-Z][A-Z0-9_]*)\]`).FindAllStringSubmatch(string(out), -1) {
		envs[m[1]] = true
	}
	require.True(t, flags["cluster-name"] && envs["CLUSTER_NAME"], "node agent --help should list flags and variables:\n%s", out)
	return flags, envs
}

// The systemd unit passes only flags the node knows, its environment file sets (or shows,
// commented out) only variables the node reads, and the unit verifies with
// systemd-analyze, hardened to an exposure of at most 2 (of 10), when systemd-analyze is
// installed (.ci/run installs it).
func TestSystemdUnit(t *testing.T) {
	flags, envs := agentFlagsAndEnv(t)
	unit, err := os.ReadFile(systemdUnit)
	require.NoError(t, err)
	execStart := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindStringSubmatch(string(unit))
	require.NotNil(t, execStart, "ExecStart")
	args := strings.Fields(execStart[2])
	require.Equal(t, "agent", args[0])
	for _, arg := range args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		require.True(t, flags[name], "ExecStart passes --%s, which node agent does not know", name)
	}
	for _, want := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "EnvironmentFile=/etc/meshnode/meshnode.env", "LoadCredential=secret:"} {
		require.Contains(t, string(unit), "\n"+want, "the unit sets %s", want)
	}
	timeout := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)s$`).FindStringSubmatch(string(unit))
	require.NotNil(t, timeout)
	stop, _ := strconv.Atoi(timeout[1])
	require.Greater(t, stop, 10, "longer than the agent's graceful leave (10 s)")

	env, err := os.Open(systemdEnv)
	require.NoError(t, err)
	defer env.Close()
	sc := bufio.NewScanner(env)
	set := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		m := regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=`).FindStringSubmatch(line)
		if m == nil {
			continue
		}
		require.True(t, envs[m[1]], "%s in the environment file is no variable of node agent", m[1])
		if !strings.HasPrefix(line, "#") {
			set++
		}
	}
	require.NoError(t, sc.Err())
	require.Positive(t, set)

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze is not installed: the unit's verification is skipped (.ci/run installs systemd)")
		return
	}
	// verify checks that ExecStart's binary exists: point it at the node built for the tests.
	dir := t.TempDir()
	copyUnit := filepath.Join(dir, "meshnode.service")
	require.NoError(t, os.WriteFile(copyUnit, []byte(strings.Replace(string(unit), execStart[0], "ExecStart="+nodeBinary+" "+execStart[2], 1)), 0o644))
	out, err := execCmd(analyze, "verify", "--man=no", copyUnit)
	require.NoError(t, err, "systemd-analyze verify:\n%s", out)
	require.Empty(t, strings.TrimSpace(out), "systemd-analyze verify has no complaint")

	out, err = execCmd(analyze, "security", "--offline=true", copyUnit)
	if err != nil && strings.Contains(out, "offline") {
		t.Logf("this systemd-analyze has no offline security analysis: skipped\n%s", out)
		return
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
	require.NotNil(t, m, "systemd-analyze security:\n%s", out)
	exposure, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.LessOrEqual(t, exposure, 2.0, "the unit is hardened:\n%s", out)
	t.Logf("systemd-analyze security: exposure %.1f", exposure)
}

// execCmd runs a program and returns its combined output.
func execCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
