package process_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every numeric setting has a range, ports follow the node id rule, every listener address is
// checked and a set but empty secret is refused: the agent exits 2 with one line naming the
// field and the rule, before anything listens (a run that starts a node instead is killed
// after 20 s and fails the test).
func TestProcessSettingsOutOfRangeAreRefusedWithExit2(t *testing.T) {
	tests := []struct {
		label string
		env   []string
		args  []string
		flag  string
		rule  string
	}{
		{"interval 1300000h", nil, []string{"--heartbeat-interval", "1300000h"}, "--heartbeat-interval (CLUSTER_HEARTBEAT_INTERVAL)", "must be between 100ms and 10m0s"},
		{"interval 11m", nil, []string{"--heartbeat-interval", "11m"}, "--heartbeat-interval (CLUSTER_HEARTBEAT_INTERVAL)", "must be between 100ms and 10m0s"},
		{"threshold 19000000000", nil, []string{"--heartbeat-miss-threshold", "19000000000"}, "--heartbeat-miss-threshold (CLUSTER_HEARTBEAT_MISS_THRESHOLD)", "must be between 1 and 100"},
		{"threshold 101", []string{"CLUSTER_HEARTBEAT_MISS_THRESHOLD=101"}, nil, "--heartbeat-miss-threshold (CLUSTER_HEARTBEAT_MISS_THRESHOLD)", "must be between 1 and 100"},
		{"threshold beyond int64", nil, []string{"--heartbeat-miss-threshold", "99999999999999999999"}, "--heartbeat-miss-threshold (CLUSTER_HEARTBEAT_MISS_THRESHOLD)", "out of range"},
		{"process count 4294967297", nil, []string{"--process-count", "4294967297"}, "--process-count (CLUSTER_PROCESS_COUNT)", "must be between 0 and 2147483647"},
		{"port +80", nil, []string{"--port", "+80"}, "--port (CLUSTER_PORT)", "must contain only decimal digits"},
		{"port 07350", nil, []string{"--port", "07350"}, "--port (CLUSTER_PORT)", "must not have leading zeros"},
		{"port empty", nil, []string{"--port", ""}, "--port (CLUSTER_PORT)", "must not be empty"},
		{"port from env 07350", []string{"CLUSTER_PORT=07350"}, nil, "--port (CLUSTER_PORT)", "must not have leading zeros"},
		{"metrics addr notanaddr", nil, []string{"--metrics-addr", "notanaddr"}, "--metrics-addr (CLUSTER_METRICS_ADDR)", "port is missing"},
		{"metrics addr port 99999", []string{"CLUSTER_METRICS_ADDR=127.0.0.1:99999"}, nil, "--metrics-addr (CLUSTER_METRICS_ADDR)", "port must be between 1 and 65535"},
		{"secret set but empty", []string{"CLUSTER_SECRET="}, nil, "--secret-file or CLUSTER_SECRET", "CLUSTER_SECRET is set but empty"},
		{"secret set but blank", []string{"CLUSTER_SECRET=  "}, nil, "--secret-file or CLUSTER_SECRET", "CLUSTER_SECRET is set but empty"},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			args := []string{"agent", "--name", "a", "--host", "127.0.0.1"}
			if !strings.HasPrefix(strings.Join(tt.env, ","), "CLUSTER_PORT=") {
				args = append(args, "--port", "0")
			}
			args = append(args, tt.args...)
			out, code := runNodeEnv(t, tt.env, args...)
			require.Equal(t, 2, code, "output: %s", out)
			require.Len(t, splitLines(out), 1, "one message: %q", out)
			require.Contains(t, out, tt.flag+": ")
			require.Contains(t, out, tt.rule)
			require.NotContains(t, out, "node started")
		})
	}
}

// Every invalid field is listed in one message, listener addresses and secrets with the rest.
func TestProcessInvalidConfigIsOneMessageListingListenersAndSecretsToo(t *testing.T) {
	out, code := runNodeEnv(t, []string{"CLUSTER_SECRET="}, "agent", "--name", "a", "--host", "127.0.0.1",
		"--port", "+80", "--heartbeat-interval", "1300000h", "--heartbeat-miss-threshold", "19000000000",
		"--process-count", "4294967297", "--metrics-addr", "notanaddr", "--log-level", "loud")
	require.Equal(t, 2, code, "output: %s", out)
	require.Len(t, splitLines(out), 1, "one message: %q", out)
	for _, flag := range []string{"--port (CLUSTER_PORT)", "--heartbeat-interval (CLUSTER_HEARTBEAT_INTERVAL)",
		"--heartbeat-miss-threshold (CLUSTER_HEARTBEAT_MISS_THRESHOLD)", "--process-count (CLUSTER_PROCESS_COUNT)",
		"--metrics-addr (CLUSTER_METRICS_ADDR)", "--secret-file or CLUSTER_SECRET", "--log-level (LOG_LEVEL)"} {
		require.Contains(t, out, flag+": ")
	}
}
