package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runCLI runs a command and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// startTestNode runs an in-process node on a free loopback port.
func startTestNode(t *testing.T, name string, seeds ...string) *server.Node {
	t.Helper()
	cfg := membership.DefaultConfig()
	cfg.Name, cfg.BindHost, cfg.Port, cfg.Seeds = name, "127.0.0.1", 0, seeds
	cfg.Metadata = map[string]string{"role": name}
	n, err := server.Start(t.Context(), cfg, server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	require.Equal(t, 0, code)
	require.Regexp(t, `^node \S+ \(commit \S+, built \S+, peer protocol 1, go1\.\S+ \w+/\w+\)\n$`, out)
	code, viaFlag, _ := runCLI(t, "--version")
	require.Equal(t, 0, code)
	require.Equal(t, out, viaFlag)

	code, out, _ = runCLI(t, "version", "--json")
	require.Equal(t, 0, code)
	var b clusterv1.BuildInfo
	require.NoError(t, protojson.Unmarshal([]byte(out), &b), out)
	require.Equal(t, uint32(membership.ProtocolVersion), b.GetProtocolVersion())
	require.NotEmpty(t, b.GetVersion())
	require.Contains(t, out, `"goVersion"`)

	a := startTestNode(t, "alpha")
	code, out, errOut := runCLI(t, "version", "--addr", a.Addr().String())
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.True(t, strings.HasPrefix(lines[1], a.LocalID().String()+" at "+a.Addr().String()+": node "), lines[1])
}

func TestUnknownCommandExits2(t *testing.T) {
	code, _, errOut := runCLI(t, "frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown command "frobnicate"`)
	require.Contains(t, errOut, "node --help")
}

func TestAgentRejectsBadConfigListingEveryField(t *testing.T) {
	t.Setenv("CLUSTER_HEARTBEAT_MISS_THRESHOLD", "0")
	code, _, errOut := runCLI(t, "agent", "--name", "ok", "--port", "70000", "--seeds", "bad seed", "--heartbeat-interval", "1ms")
	require.Equal(t, 2, code)
	for _, field := range []string{"--port (CLUSTER_PORT): ", "--seeds (CLUSTER_SEEDS): ", "--heartbeat-interval (CLUSTER_HEARTBEAT_INTERVAL): must be between 100ms and 10m0s (got 1ms)",
		"--heartbeat-miss-threshold (CLUSTER_HEARTBEAT_MISS_THRESHOLD): "} {
		require.Contains(t, errOut, field)
	}
	require.NotContains(t, errOut, "HeartbeatInterval", "flags, not Go fields")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one message: %q", errOut)
}

func TestFlagsWinOverTheEnvironment(t *testing.T) {
	t.Setenv("NODE_NAME", "fromenv")
	t.Setenv("CLUSTER_PORT", "1234")
	f := newAgentFlags(pflag.NewFlagSet("agent", pflag.ContinueOnError))
	require.NoError(t, f.s.parse([]string{"--port", "0", "--host", "127.0.0.1"}))
	cfg, err := f.config()
	require.NoError(t, err)
	require.Equal(t, "fromenv", cfg.Name, "the environment fills what no flag set")
	require.Equal(t, 0, cfg.Port, "the flag wins over CLUSTER_PORT")
}

func TestMembersTableAndJSON(t *testing.T) {
	a := startTestNode(t, "alpha")
	startTestNode(t, "beta", a.LocalID().String())
	require.Eventually(t, func() bool { n, _ := a.ConnectedCount(); return n == 1 }, 5*time.Second, 10*time.Millisecond)

	code, out, errOut := runCLI(t, "members", "--addr", a.Addr().String())
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "ID")
	require.Contains(t, out, "beta@127.0.0.1:")
	require.Contains(t, out, "connected")
	require.Contains(t, out, "role=beta")
	require.Regexp(t, `(?m)^alpha@127\.0\.0\.1:\d+ \* +connected `, out, "the asked node is listed, marked")

	code, out, _ = runCLI(t, "members", "--json", "--all", "--addr", a.Addr().String())
	require.Equal(t, 0, code)
	var resp clusterv1.ListNodesResponse
	require.NoError(t, protojson.Unmarshal([]byte(out), &resp), out)
	require.Len(t, resp.GetNodes(), 2)
	require.Equal(t, "alpha", resp.GetNodes()[0].GetName())
	require.True(t, resp.GetNodes()[0].GetLocal())
	require.Equal(t, "beta", resp.GetNodes()[1].GetName())
	require.Equal(t, clusterv1.NodeStatus_NODE_STATUS_CONNECTED, resp.GetNodes()[1].GetStatus())
	requireAPIJSON(t, out)
}

func TestMembersAllShowsANodeThatLeftAsLeft(t *testing.T) {
	a := startTestNode(t, "alpha")
	b := startTestNode(t, "beta", a.LocalID().String())
	require.Eventually(t, func() bool { n, _ := a.ConnectedCount(); return n == 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, b.Stop(t.Context()))
	require.Eventually(t, func() bool { n, _ := a.ConnectedCount(); return n == 0 }, 5*time.Second, 10*time.Millisecond)

	code, out, errOut := runCLI(t, "members", "--all", "--addr", a.Addr().String())
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^beta@127\.0\.0\.1:\d+ +left `, out)
	code, out, _ = runCLI(t, "members", "--addr", a.Addr().String())
	require.Equal(t, 0, code)
	require.NotContains(t, out, "beta", "without --all only the connected nodes")

	code, out, _ = runCLI(t, "members", "--all", "--json", "--addr", a.Addr().String())
	require.Equal(t, 0, code)
	require.Contains(t, out, `"NODE_STATUS_LEFT"`)
}

// requireAPIJSON checks that out is the API's JSON: camelCase names, 64-bit integers as
// strings (so that jq does not round them).
func requireAPIJSON(t *testing.T, out string) {
	t.Helper()
	require.NotRegexp(t, `"[a-z]+_[a-z_]+":`, out, "camelCase names, not snake_case")
	require.NotRegexp(t, `"(incarnation|sequence)": *[0-9]`, out, "int64 as strings")
}

func TestHealthPlainWhenPiped(t *testing.T) {
	a := startTestNode(t, "alpha")
	code, out, _ := runCLI(t, "health", "--addr", a.Addr().String())
	require.Equal(t, 0, code)
	require.Contains(t, out, "HEALTHY")
	require.NotContains(t, out, "\x1b[", "no colour when not on a terminal")
}

func TestWatchPrintsOneLinePerEventUntilInterrupted(t *testing.T) {
	a := startTestNode(t, "alpha")
	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"watch", "--addr", a.Addr().String()}, &out, io.Discard) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "snapshot") }, 5*time.Second, 10*time.Millisecond)
	b := startTestNode(t, "beta", a.LocalID().String())
	require.NoError(t, b.Stop(t.Context()))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "graceful_shutdown") }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.Equal(t, 0, <-done, "interrupting watch is a normal exit")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, "snapshot, node_up, node_down: %q", out.String())
	require.Contains(t, lines[1], "node_up   beta@")
	require.Contains(t, lines[2], "node_down beta@")
}

func TestClientCommandsFailWithOneLineWhenUnreachable(t *testing.T) {
	for _, cmd := range []string{"members", "health", "watch"} {
		code, _, errOut := runCLI(t, cmd, "--addr", "127.0.0.1:1")
		require.Equal(t, 1, code, cmd)
		require.Equal(t, "node "+cmd+": cannot reach a node at 127.0.0.1:1 (is `node agent` running there?)\n", errOut)
	}
}

// Configuration errors quote at most a short prefix of each value, and its length.
func TestAgentConfigErrorsQuoteAtMostAPrefixOfTheInput(t *testing.T) {
	huge := strings.Repeat("z", 100_000)
	code, _, errOut := runCLI(t, "agent", "--name", "1"+huge, "--port", huge, "--heartbeat-interval", huge,
		"--heartbeat-miss-threshold", huge, "--process-count", huge, "--metadata", huge, "--seeds", huge)
	require.Equal(t, 2, code)
	for _, flag := range []string{"name", "port", "heartbeat-interval", "heartbeat-miss-threshold", "process-count", "metadata", "seeds"} {
		require.Contains(t, errOut, "--"+flag+" (")
	}
	require.Less(t, len(errOut), 2500, "%.500q", errOut)
	require.Contains(t, errOut, "(100000 bytes)")
}
