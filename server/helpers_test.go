package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshnode/meshnode/faultnet"
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// testConfig is a node configuration on loopback with a free port and fast heartbeats.
func testConfig(name string, seeds ...string) *membership.Config {
	cfg := membership.DefaultConfig()
	cfg.Name = name
	cfg.BindHost = "127.0.0.1"
	cfg.Port = 0
	cfg.Seeds = seeds
	cfg.HeartbeatInterval = 300 * time.Millisecond
	cfg.HeartbeatMissThreshold = 3
	cfg.DialTimeout = 2 * time.Second
	return cfg
}

// startNode starts a node and stops it when the test ends.
func startNode(t *testing.T, cfg *membership.Config, opts ...Option) *Node {
	t.Helper()
	n, err := Start(context.Background(), cfg, append([]Option{WithLogger(quietLogger())}, opts...)...)
	require.NoError(t, err, "start %s", cfg.Name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	return n
}

// startFaultyNode starts a node whose network faults can be injected into (faultnet), and
// stops it when the test ends.
func startFaultyNode(t *testing.T, cfg *membership.Config, opts ...Option) (*Node, *faultnet.Network) {
	t.Helper()
	nw := faultnet.New()
	return startNode(t, cfg, append(opts, WithNetwork(nw))...), nw
}

// crash crashes n the way a process dies: every connection of its network closes at once
// and nothing more goes in or out; then it stops n, whose leave reaches nobody.
func crash(t *testing.T, n *Node, nw *faultnet.Network) {
	t.Helper()
	nw.Crash()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, n.Stop(ctx))
}

// quietLogger discards logs.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var listeners []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range listeners {
		require.NoError(t, l.Close())
	}
	return ports
}

// recorder keeps the events a node published.
type recorder struct {
	mu     sync.Mutex
	events []membership.Event
}

func record(n *Node) *recorder {
	r := &recorder{}
	n.Subscribe(func(e membership.Event) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, e)
	})
	return r
}

// downs returns the down reasons recorded for id.
func (r *recorder) downs(id membership.NodeID) []membership.DownReason {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []membership.DownReason
	for _, e := range r.events {
		if e.Type == membership.EventNodeDown && e.Node.ID == id {
			out = append(out, e.Reason)
		}
	}
	return out
}

// ups counts node_up events for id.
func (r *recorder) ups(id membership.NodeID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == membership.EventNodeUp && e.Node.ID == id {
			n++
		}
	}
	return n
}

// connectedIDs lists the ids n sees connected, sorted.
func connectedIDs(n *Node) []string {
	nodes, err := n.ConnectedNodes()
	if err != nil {
		return nil
	}
	var out []string
	for _, info := range nodes {
		out = append(out, info.ID.String())
	}
	return out
}

// requireFullMesh waits until every node sees every other one connected.
func requireFullMesh(t *testing.T, timeout time.Duration, nodes ...*Node) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			var want []string
			for _, o := range nodes {
				if o != n {
					want = append(want, o.LocalID().String())
				}
			}
			slices.Sort(want)
			if !slices.Equal(want, connectedIDs(n)) {
				return false
			}
		}
		return true
	}, timeout, 10*time.Millisecond, "every node should see the other %d connected", len(nodes)-1)
}

// healthCheck asks grpc.health.v1 for the overall status.
func healthCheck(t *testing.T, addr string) string {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	return resp.GetStatus().String()
}

// silentStream is a raw peer stream that never authenticates.
type silentStream struct {
	done chan struct{}
	err  error // how the stream ended, once done is closed
}

func (s *silentStream) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// openSilentPeerStream opens PeerService.Exchange without any interceptor and says nothing.
func openSilentPeerStream(t *testing.T, addr string) *silentStream {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := clusterv1.NewPeerServiceClient(cc).Exchange(ctx)
	require.NoError(t, err)
	s := &silentStream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_, s.err = stream.Recv()
	}()
	t.Cleanup(func() { cancel(); <-s.done; _ = cc.Close() })
	return s
}
