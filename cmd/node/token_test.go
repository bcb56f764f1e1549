package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

func writeTokenFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestClientCommandsReadTheTokenFromAFile(t *testing.T) {
	cfg := membership.DefaultConfig()
	cfg.Name, cfg.BindHost, cfg.Port = "alpha", "127.0.0.1", 0
	n, err := server.Start(t.Context(), cfg, server.WithAPIToken("s3cret-token"),
		server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Stop(t.Context()) })
	addr := n.Addr().String()

	code, _, errOut := runCLI(t, "health", "--addr", addr)
	require.Equal(t, 1, code, "no token: refused")
	require.Contains(t, errOut, "--token-file")

	code, out, errOut := runCLI(t, "health", "--addr", addr, "--token-file", writeTokenFile(t, "s3cret-token\n"))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "HEALTHY")

	t.Setenv("CLUSTER_API_TOKEN_FILE", writeTokenFile(t, "s3cret-token"))
	code, _, errOut = runCLI(t, "members", "--addr", addr)
	require.Equal(t, 0, code, "from the environment: %s", errOut)

	t.Setenv("CLUSTER_API_TOKEN", "wrong")
	code, _, _ = runCLI(t, "members", "--addr", addr)
	require.Equal(t, 2, code, "two tokens in the environment are ambiguous")
	code, _, errOut = runCLI(t, "members", "--addr", addr, "--token-file", writeTokenFile(t, "s3cret-token"))
	require.Equal(t, 0, code, "the flag wins over the environment: %s", errOut)
}

func TestTokenFileProblemsAreConfigErrorsWithoutTheToken(t *testing.T) {
	for name, args := range map[string][]string{
		"missing file": {"--token-file", filepath.Join(t.TempDir(), "nope")},
		"empty file":   {"--token-file", writeTokenFile(t, "\n\n")},
		"both":         {"--token-file", writeTokenFile(t, "a-token-value"), "--token", "another-token"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := runCLI(t, append([]string{"health", "--addr", "127.0.0.1:1"}, args...)...)
			require.Equal(t, 2, code, errOut)
			require.NotContains(t, errOut, "a-token-value")
			require.NotContains(t, errOut, "another-token")
		})
	}
}

func TestAgentTokenFileAndLimitFlags(t *testing.T) {
	f := newAgentFlags(pflag.NewFlagSet("agent", pflag.ContinueOnError))
	require.NoError(t, f.s.parse([]string{"--name", "a", "--token-file", writeTokenFile(t, "agent-token\n"), "--max-watchers", "3"}))
	_, err := f.config()
	require.NoError(t, err)
	opts, err := f.serverOptions()
	require.NoError(t, err)
	require.NotEmpty(t, opts)
	token, err := f.token.value()
	require.NoError(t, err)
	require.Equal(t, "agent-token", token)

	code, _, errOut := runCLI(t, "agent", "--name", "a", "--max-watchers", "0", "--max-open-calls", "-5", "--max-idle-connections", "1e3")
	require.Equal(t, 2, code)
	for _, field := range []string{"--max-watchers (CLUSTER_MAX_WATCHERS): must be at least 1", "--max-open-calls (CLUSTER_MAX_OPEN_CALLS): ", "--max-idle-connections (CLUSTER_MAX_IDLE_CONNECTIONS): "} {
		require.Contains(t, errOut, field, "every bad limit is listed")
	}
}
