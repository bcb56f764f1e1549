package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/membership"
)

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startLogged starts a node whose logs (debug and up) go to the returned buffer.
func startLogged(t *testing.T, cfg *membership.Config, opts ...Option) (*Node, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := Start(context.Background(), cfg, append([]Option{WithLogger(logger)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n, logs
}

func withSecrets(cfg *membership.Config, secrets ...string) *membership.Config {
	for _, s := range secrets {
		cfg.Secrets = append(cfg.Secrets, []byte(s))
	}
	return cfg
}

// requireApart asserts the two nodes never see each other during a few dial rounds.
func requireApart(t *testing.T, a, b *Node) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		require.Empty(t, connectedIDs(a), "%s must not admit %s", a.LocalID(), b.LocalID())
		require.Empty(t, connectedIDs(b), "%s must not admit %s", b.LocalID(), a.LocalID())
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSecretAndNoSecretNeverFormAClusterAndBothSayWhy(t *testing.T) {
	for _, secretDials := range []bool{true, false} {
		name := "no-secret node dials"
		if secretDials {
			name = "secret node dials"
		}
		t.Run(name, func(t *testing.T) {
			target, targetLogs := startLogged(t, withSecrets(testConfig("target"), "s3cret-s3cret-s3cret"))
			if secretDials {
				target, targetLogs = startLogged(t, testConfig("target"))
			}
			cfg := testConfig("dialer", target.LocalID().String())
			if secretDials {
				cfg = withSecrets(cfg, "s3cret-s3cret-s3cret")
			}
			dialer, dialerLogs := startLogged(t, cfg)
			requireApart(t, target, dialer)
			withSecret, without := targetLogs, dialerLogs
			if secretDials {
				withSecret, without = dialerLogs, targetLogs
			}
			require.Eventually(t, func() bool { return strings.Contains(withSecret.String(), "peer has no secret") }, 5*time.Second, 20*time.Millisecond,
				"the node with a secret should log that the peer has none")
			require.Eventually(t, func() bool { return strings.Contains(without.String(), "local node has no secret") }, 5*time.Second, 20*time.Millisecond,
				"the node without a secret should log that it has none")
			require.LessOrEqual(t, strings.Count(withSecret.String(), "peer authentication failed"), 2, "the failure log is rate-limited")
		})
	}
}

func TestWrongSecretIsRejectedAndLoggedWithoutTheSecret(t *testing.T) {
	a, aLogs := startLogged(t, withSecrets(testConfig("a"), "the-right-secret-123"))
	b, bLogs := startLogged(t, withSecrets(testConfig("b", a.LocalID().String()), "the-wrong-secret-456"))
	requireApart(t, a, b)
	require.Eventually(t, func() bool {
		return strings.Contains(aLogs.String(), "wrong secret") && strings.Contains(bLogs.String(), "wrong secret")
	}, 5*time.Second, 20*time.Millisecond, "both ends should log a wrong secret")
	for _, logs := range []string{aLogs.String(), bLogs.String()} {
		require.NotContains(t, logs, "the-right-secret-123")
		require.NotContains(t, logs, "the-wrong-secret-456")
	}
}

func TestSameSecretFormsACluster(t *testing.T) {
	a, _ := startLogged(t, withSecrets(testConfig("a"), "shared-secret-0123456789"))
	b, _ := startLogged(t, withSecrets(testConfig("b", a.LocalID().String()), "shared-secret-0123456789"))
	c, _ := startLogged(t, withSecrets(testConfig("c", b.LocalID().String()), "shared-secret-0123456789"))
	requireFullMesh(t, 5*time.Second, a, b, c)
}

func TestRollingKeyRotationWithoutAnyDown(t *testing.T) {
	const oldKey, newKey = "old-secret-0123456789", "new-secret-9876543210"
	var nodes []*Node
	var recs []*recorder
	var seeds []string
	for _, name := range []string{"a", "b", "c"} {
		n, _ := startLogged(t, withSecrets(testConfig(name, seeds...), oldKey))
		nodes = append(nodes, n)
		seeds = []string{n.LocalID().String()}
	}
	requireFullMesh(t, 5*time.Second, nodes...)
	for _, n := range nodes {
		recs = append(recs, record(n))
	}
	// A node restarts with new settings on the same port, as an operator would roll it.
	roll := func(i int, secrets ...string) {
		id := nodes[i].LocalID()
		require.NoError(t, nodes[i].Stop(context.Background()))
		cfg := withSecrets(testConfig(id.Name(), nodes[(i+1)%3].LocalID().String()), secrets...)
		cfg.Port = id.Port()
		nodes[i], _ = startLogged(t, cfg)
		requireFullMesh(t, 5*time.Second, nodes...)
	}
	for step, secrets := range [][]string{{oldKey, newKey}, {newKey, oldKey}, {newKey}} {
		for i := range nodes {
			roll(i, secrets...)
		}
		t.Logf("rotation step %d done", step+1)
	}
	for i, r := range recs {
		for j, n := range nodes {
			if i == j {
				continue
			}
			for _, reason := range r.downs(n.LocalID()) {
				require.Equal(t, membership.ReasonGracefulShutdown, reason, "only the planned restarts may be seen, never a failure")
			}
		}
	}
}

func TestAPITokenGuardsMembershipServiceButNotHealth(t *testing.T) {
	n, _ := startLogged(t, testConfig("a"), WithAPIToken("api-token-123"))
	ctx := context.Background()
	anon, err := client.Dial(n.Addr().String())
	require.NoError(t, err)
	defer anon.Close()
	_, err = anon.Nodes(ctx, false)
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no token: %v", err)

	wrong, err := client.Dial(n.Addr().String(), client.WithToken("nope"))
	require.NoError(t, err)
	defer wrong.Close()
	_, err = wrong.Nodes(ctx, false)
	require.Equal(t, codes.Unauthenticated, status.Code(err))

	good, err := client.Dial(n.Addr().String(), client.WithToken("api-token-123"))
	require.NoError(t, err)
	defer good.Close()
	_, err = good.Nodes(ctx, false)
	require.NoError(t, err)

	require.Equal(t, "SERVING", healthCheck(t, n.Addr().String()), "health stays open for probes")
}

func TestSilentConnectionIsDroppedAtTheHandshakeDeadline(t *testing.T) {
	cfg := testConfig("a")
	cfg.HandshakeTimeout = 300 * time.Millisecond
	n, _ := startLogged(t, cfg)
	b := startNode(t, testConfig("b", n.LocalID().String()))
	requireFullMesh(t, 5*time.Second, n, b)
	conn := openSilentPeerStream(t, n.Addr().String())
	require.Eventually(t, func() bool { return conn.closed() }, 5*time.Second, 20*time.Millisecond,
		"a peer stream that never authenticates is closed")
	requireFullMesh(t, time.Second, n, b)
}

// After a handshake timed out, the next gets twice as long, as a dialler that failed waits
// twice as long: on a machine so loaded that handshakes take longer than HandshakeTimeout,
// a fixed timeout on the accepting side would fail every try.
func TestHandshakeAfterATimedOutOneGetsTwiceAsLong(t *testing.T) {
	cfg := testConfig("a")
	cfg.HandshakeTimeout = 300 * time.Millisecond
	n := startNode(t, cfg)
	for _, want := range []string{"within 300ms", "within 600ms"} {
		conn := openSilentPeerStream(t, n.Addr().String())
		require.Eventually(t, conn.closed, 10*time.Second, 20*time.Millisecond, "a peer stream that never authenticates is closed")
		require.ErrorContains(t, conn.err, "handshake not completed "+want)
	}
}

func TestGarbageOnThePortHarmsNothing(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	ra := record(a)
	inputs := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		bytes.Repeat([]byte{0xff}, 64<<10),
		{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, // a TLS ClientHello start
		append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00),
	}
	for _, in := range inputs {
		c, err := net.Dial("tcp", a.Addr().String())
		require.NoError(t, err)
		_, _ = c.Write(in)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Read(make([]byte, 1024))
		_ = c.Close()
	}
	requireFullMesh(t, 2*time.Second, a, b)
	require.Empty(t, ra.downs(b.LocalID()), "garbage on the port must not disturb the cluster")
}

// A wrong token, however long, is never echoed back.
func TestAPITokenErrorsNeverEchoTheToken(t *testing.T) {
	n, _ := startLogged(t, testConfig("a"), WithAPIToken("api-token-123"))
	token := strings.Repeat("t0ken", 1600) // 8000 bytes
	wrong, err := client.Dial(n.Addr().String(), client.WithToken(token))
	require.NoError(t, err)
	defer wrong.Close()
	_, err = wrong.Nodes(context.Background(), false)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.NotContains(t, err.Error(), "t0kent0ken")
	require.Less(t, len(err.Error()), 400)
}
