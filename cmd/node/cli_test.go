package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// commands are every command a user runs, with cobra's completion.
var commands = []string{"agent", "members", "watch", "health", "update", "version", "completion"}

func TestEveryCommandHasItsOwnHelp(t *testing.T) {
	for _, cmd := range commands {
		t.Run(cmd, func(t *testing.T) {
			code, out, errOut := runCLI(t, cmd, "--help")
			require.Equal(t, 0, code, errOut)
			require.Empty(t, errOut)
			require.Contains(t, out, "Usage:\n  node "+cmd)
			require.Contains(t, out, "  -h, --help ")
			if cmd != "completion" {
				require.Contains(t, out, "Examples:\n  ")
			}
			for _, line := range strings.Split(out, "\n") {
				require.LessOrEqual(t, strings.Count(line, "(default"), 1, "one default per flag: %q", line)
				require.NotRegexp(t, regexp.MustCompile(`^\s+-[a-z][a-z-]`), line, "double-dash flags only")
			}
			code, viaHelp, _ := runCLI(t, "help", cmd)
			require.Equal(t, 0, code)
			require.Equal(t, out, viaHelp, "node help %s prints the help of %s", cmd, cmd)
		})
	}
}

func TestTopLevelHelpListsTheCommands(t *testing.T) {
	code, out, _ := runCLI(t, "--help")
	require.Equal(t, 0, code)
	for _, cmd := range commands {
		require.Regexp(t, regexp.MustCompile(`(?m)^  `+cmd+` +\S`), out)
	}
	code, _, errOut := runCLI(t)
	require.Equal(t, 2, code, "no command is a usage error")
	require.Contains(t, errOut, "Available Commands:")
}

func TestAgentHelpShowsEachFlagsVariableAndOneDefault(t *testing.T) {
	_, out, _ := runCLI(t, "agent", "--help")
	require.Regexp(t, `--heartbeat-interval duration +heartbeat period, 100ms to 10m \[\$CLUSTER_HEARTBEAT_INTERVAL\] \(default 5s\)\n`, out)
	require.Regexp(t, `--advertise host +[^\n]*\[\$CLUSTER_ADVERTISE\]\n`, out, "no default of its own: the help says what applies")
	require.Regexp(t, `--name string +[^\n]*\[\$NODE_NAME\]\n`, out)
}

func TestCompletionScriptsAreGenerated(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "__start_node", "zsh": "#compdef node", "fish": "complete -c node"} {
		code, out, errOut := runCLI(t, "completion", shell)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, marker, shell)
	}
}

func TestUnknownFlagIsAUsageError(t *testing.T) {
	code, _, errOut := runCLI(t, "members", "--bogus")
	require.Equal(t, 2, code)
	require.Equal(t, "node members: unknown flag: --bogus\nRun 'node members --help' for usage.\n", errOut)
	code, _, errOut = runCLI(t, "members", "extra")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `"extra"`)
}

func TestAgentReportsABadLogFormatWithTheOtherInvalidFields(t *testing.T) {
	t.Setenv("LOG_LEVEL", "loud")
	code, _, errOut := runCLI(t, "agent", "--name", "ok", "--log-format", "xml", "--heartbeat-interval", "1ms")
	require.Equal(t, 2, code)
	require.Equal(t, `node agent: invalid cluster config: `+
		`--heartbeat-interval (CLUSTER_HEARTBEAT_INTERVAL): must be between 100ms and 10m0s (got 1ms); `+
		`--log-format (LOG_FORMAT): "xml" is not a format: want text or json; `+
		`--log-level (LOG_LEVEL): "loud" is not a level: want debug, info, warn or error`+"\n", errOut)
}

func TestClientAddrValidationExits2(t *testing.T) {
	for _, cmd := range []string{"members", "watch", "health"} {
		code, _, errOut := runCLI(t, cmd, "--addr", "not an address")
		require.Equal(t, 2, code, cmd)
		require.True(t, strings.HasPrefix(errOut, "node "+cmd+": --addr: "), errOut)
		require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	}
}

func TestHealthJSONIsTheAPIResponse(t *testing.T) {
	a := startTestNode(t, "alpha")
	code, out, errOut := runCLI(t, "health", "--json", "--addr", a.Addr().String())
	require.Equal(t, 0, code, errOut)
	require.Empty(t, errOut)
	var resp clusterv1.GetHealthResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &resp), out)
	require.Equal(t, clusterv1.HealthStatus_HEALTH_STATUS_HEALTHY, resp.GetStatus())
	require.NotEmpty(t, resp.GetRecentEvents())
	requireAPIJSON(t, out)
	require.Regexp(t, `"sequence": *"1"`, out)
}

func TestWatchJSONIsOneAPIEventPerLine(t *testing.T) {
	a := startTestNode(t, "alpha")
	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"watch", "--json", "--addr", a.Addr().String()}, &out, io.Discard) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "snapshot") }, 5*time.Second, 10*time.Millisecond)
	b := startTestNode(t, "beta", a.LocalID().String())
	require.NoError(t, b.Stop(t.Context()))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "GRACEFUL_SHUTDOWN") }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.Equal(t, 0, <-done)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	kinds := []string{"snapshot", "nodeUp", "nodeDown"}
	for i, line := range lines {
		var e clusterv1.Event
		require.NoError(t, protojson.Unmarshal([]byte(line), &e), line)
		require.Contains(t, line, `"`+kinds[i]+`"`)
		requireAPIJSON(t, line)
	}
}

func TestUpdateChangesTheNodeAndAPeersWatchShowsIt(t *testing.T) {
	a := startTestNode(t, "alpha")
	b := startTestNode(t, "beta", a.LocalID().String())
	require.Eventually(t, func() bool { n, _ := b.ConnectedCount(); return n == 1 }, 5*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"watch", "--addr", b.Addr().String()}, &out, io.Discard) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "snapshot") }, 5*time.Second, 10*time.Millisecond)

	code, stdout, errOut := runCLI(t, "update", "--addr", a.Addr().String(), "--metadata", "role=db", "--process-count", "1")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "Updated "+a.LocalID().String()+": metadata role=db, 1 process\n", stdout)
	require.Eventually(t, func() bool {
		return strings.Contains(out.String(), "node_updated "+a.LocalID().String()+" metadata role=db, 1 process")
	}, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.Equal(t, 0, <-done)

	code, stdout, _ = runCLI(t, "update", "--json", "--addr", a.Addr().String(), "--process-count", "2")
	require.Equal(t, 0, code)
	var resp clusterv1.UpdateLocalNodeResponse
	require.NoError(t, protojson.Unmarshal([]byte(stdout), &resp), stdout)
	require.Equal(t, map[string]string{"role": "db"}, resp.GetNode().GetMetadata(), "--metadata left out: kept")
	require.Equal(t, uint32(2), resp.GetNode().GetProcessCount())
	requireAPIJSON(t, stdout)

	code, _, errOut = runCLI(t, "update", "--addr", a.Addr().String())
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "nothing to change")
	code, _, errOut = runCLI(t, "update", "--addr", a.Addr().String(), "--metadata", "novalue", "--process-count", "-1")
	require.Equal(t, 2, code)
	require.Equal(t, `node update: invalid flags: --metadata: "novalue" is not key=value; --process-count: must be between 0 and 2147483647 (got -1)`+"\n", errOut)
	code, _, errOut = runCLI(t, "update", "--addr", "127.0.0.1:1", "--process-count", "1")
	require.Equal(t, 1, code)
	require.Equal(t, "node update: cannot reach a node at 127.0.0.1:1 (is `node agent` running there?)\n", errOut)
}

// Every command that prints data has --json, and what it prints is the API's JSON: it parses
// with protojson's rules into the API message, and holds no snake_case name and no 64-bit
// integer as a number.
func TestEveryCommandsJSONIsTheAPIsJSON(t *testing.T) {
	a := startTestNode(t, "alpha")
	startTestNode(t, "beta", a.LocalID().String())
	require.Eventually(t, func() bool { n, _ := a.ConnectedCount(); return n == 1 }, 5*time.Second, 10*time.Millisecond)
	addr := a.Addr().String()
	for _, tc := range []struct {
		args []string
		into proto.Message
	}{
		{[]string{"members", "--json", "--all"}, &clusterv1.ListNodesResponse{}},
		{[]string{"health", "--json"}, &clusterv1.GetHealthResponse{}},
		{[]string{"update", "--json", "--metadata", "k=v"}, &clusterv1.UpdateLocalNodeResponse{}},
		{[]string{"version", "--json"}, &clusterv1.BuildInfo{}},
		{[]string{"version", "--json", "--addr", addr}, &clusterv1.BuildInfo{}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := tc.args
			if tc.args[0] != "version" {
				args = append(args, "--addr", addr)
			}
			code, out, errOut := runCLI(t, args...)
			require.Equal(t, 0, code, errOut)
			require.NoError(t, protojson.Unmarshal([]byte(out), tc.into), out)
			requireAPIJSON(t, out)
			require.True(t, strings.HasSuffix(out, "}\n"), "one JSON document")
		})
	}
	// watch --json is tested line by line in TestWatchJSONIsOneAPIEventPerLine.
	code, out, _ := runCLI(t, "members", "--json", "--addr", addr)
	require.Equal(t, 0, code)
	require.Regexp(t, `"incarnation": "\d+"`, out, "int64 as a string")
}

// A Config field is named in errors by the flag of the same name in kebab case, so a new
// option needs no entry of its own: ClusterName is --cluster-name (CLUSTER_NAME).
func TestConfigErrorsNameTheFlagOfEachField(t *testing.T) {
	s := newSettings(pflag.NewFlagSet("t", pflag.ContinueOnError))
	s.str("cluster-name", "CLUSTER_NAME", "", "a label")
	s.str("host", "CLUSTER_HOST", "", "bind address")
	s.str("max-pending-handshakes-per-source", "CLUSTER_MAX_PENDING_HANDSHAKES_PER_SOURCE", "1", "a limit")
	err := s.relabel(&membership.ConfigError{Problems: []membership.FieldError{
		{Field: "MaxPendingHandshakesPerSource", Message: "m1"}, {Field: "ClusterName", Message: "m2"},
		{Field: "BindHost", Message: "m3"}, {Field: "DialTimeout", Message: "m4"},
	}})
	require.Equal(t, "invalid cluster config: --cluster-name (CLUSTER_NAME): m2; --host (CLUSTER_HOST): m3; "+
		"--max-pending-handshakes-per-source (CLUSTER_MAX_PENDING_HANDSHAKES_PER_SOURCE): m1; DialTimeout: m4", err.Error(),
		"in the order of the flags; a field no flag sets keeps its name")
}

// An agent stopped by its signal exits only once its log says so: the last line is the
// status change to stopped, written before run returns (events reach the logger from a
// goroutine of their own, and a process that exits first loses the line).
func TestAgentLogEndsWithTheStatusStoppedBeforeItExits(t *testing.T) {
	for range 5 {
		ctx, cancel := context.WithCancel(t.Context())
		var logged syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"agent", "--name", "alone", "--host", "127.0.0.1", "--port", "0", "--log-format", "json"}, io.Discard, &logged)
		}()
		require.Eventually(t, func() bool { return strings.Contains(logged.String(), `"msg":"node started"`) },
			10*time.Second, 10*time.Millisecond, "the agent did not start: %s", logged.String())
		cancel()
		require.Equal(t, 0, <-done, "the agent exits 0 once it has left: %s", logged.String())
		lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
		require.Contains(t, lines[len(lines)-1], `"current":"stopped"`, "the log's last line is the status stopped:\n%s", logged.String())
	}
}
