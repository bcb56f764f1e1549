package process_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runNode runs the binary to completion and returns its combined output and exit code.
func runNode(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runNodeEnv(t, nil, args...)
}

// runNodeEnv is runNode with extra environment variables (KEY=value), in an environment
// without any of the node's own. A run that has not ended within 20 s is killed and reads as
// exit code -1 (a node that started when it should have refused its configuration).
func runNodeEnv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBinary, args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	require.NoError(t, err)
	return string(out), 0
}

// nodeEnv lists the environment variables the node reads.
var nodeEnv = []string{
	"NODE_NAME", "CLUSTER_HOST", "CLUSTER_PORT", "CLUSTER_ADVERTISE", "CLUSTER_SEEDS", "CLUSTER_SECRET",
	"CLUSTER_HEARTBEAT_INTERVAL", "CLUSTER_HEARTBEAT_MISS_THRESHOLD", "CLUSTER_METADATA", "CLUSTER_PROCESS_COUNT",
	"LOG_FORMAT", "LOG_LEVEL", "CLUSTER_API_TOKEN", "CLUSTER_TLS_CERT", "CLUSTER_TLS_KEY", "CLUSTER_TLS_CA",
	"CLUSTER_METRICS_ADDR", "CLUSTER_ADDR",
}

// cleanEnv returns the test's environment without the variables the node reads (unset, not
// set to empty: a set but empty CLUSTER_SECRET is invalid configuration).
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(nodeEnv, name) {
			out = append(out, kv)
		}
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
