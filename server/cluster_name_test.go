package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines contain text.
func (b *syncBuffer) count(text string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), text)
}

// startLoggedNode starts a node that logs into a buffer, stopped when the test ends.
func startLoggedNode(t *testing.T, cfg *membership.Config) (*Node, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	n, err := Start(context.Background(), cfg, WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	require.NoError(t, err, "start %s", cfg.Name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	return n, logs
}

// requireRefusedBySeed waits until x, whose one seed refuses it, has logged why (warning,
// once however many dials) and reports the seed unreachable with a last error containing
// reason, after several refused dials; x is connected to nobody.
func requireRefusedBySeed(t *testing.T, x *Node, xlog *syncBuffer, warning, reason string) {
	t.Helper()
	require.Eventually(t, func() bool { return xlog.count(warning) == 1 },
		5*time.Second, 10*time.Millisecond, "the refused node should say why: %q", warning)
	require.Eventually(t, func() bool {
		h := x.Health()
		return len(h.Seeds) == 1 && h.Seeds[0].FailedDials >= 3 && strings.Contains(h.Seeds[0].LastError, reason)
	}, 5*time.Second, 10*time.Millisecond, "x should keep redialling its seed, refused each time, its health saying %q", reason)
	require.Equal(t, 1, xlog.count(warning), "rate-limited: one line however many dials")
	require.Equal(t, 0, xlog.count("seed unreachable"), "one line, not two")
	xn, err := x.ConnectedCount()
	require.NoError(t, err)
	require.Zero(t, xn, "the refused node is connected to nobody")
}

// Over gRPC, a node of another cluster (another name, or none) dialling a seed is refused at
// the handshake: one line on each side, and it never joins; nodes of the same name form.
func TestClusterNameRefusesAnotherClusterOverGRPC(t *testing.T) {
	named := func(cluster, name string, seeds ...string) *membership.Config {
		cfg := testConfig(name, seeds...)
		cfg.ClusterName = cluster
		cfg.ReconnectMaxDelay = 300 * time.Millisecond
		return cfg
	}
	a, alog := startLoggedNode(t, named("blue", "a"))
	b := startNode(t, named("blue", "b", a.Addr().String()))
	requireFullMesh(t, 5*time.Second, a, b)

	for _, other := range []string{"green", ""} {
		x, xlog := startLoggedNode(t, named(other, "x"+other, a.Addr().String()))
		requireRefusedBySeed(t, x, xlog, "a node of another cluster refused the stream: the cluster names differ", "cluster_name")
		an, err := a.ConnectedCount()
		require.NoError(t, err)
		require.Equal(t, 1, an)
		_, err = a.Node(x.LocalID())
		require.ErrorIs(t, err, membership.ErrNodeNotFound)
		require.NoError(t, x.Stop(context.Background()))
	}
	require.Equal(t, 2, alog.count("refused a node of another cluster: the cluster names differ"), "one line per refused node")
	require.Equal(t, 1, alog.count(`peer_cluster_name=none`))
	require.Equal(t, 1, alog.count(`peer_cluster_name="\"green\""`)+alog.count(`peer_cluster_name="green"`))
}
