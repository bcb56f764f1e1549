package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/faultnet"
	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// These tests run real nodes in the process, each with an application gRPC server beside
// it, and a real grpc.ClientConn dialled with meshnode:///.

// echoMethod answers with the name of the backend that served the call.
const echoMethod = "/meshnode.test.Echo/Name"

// namer is the echo service's handler type.
type namer interface{ name() string }

// echoService is a tiny gRPC service without generated code: StringValue in and out.
var echoService = grpc.ServiceDesc{
	ServiceName: "meshnode.test.Echo",
	HandlerType: (*namer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Name",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return wrapperspb.String(srv.(namer).name()), nil
		},
	}},
}

// backend is a node plus the application server it announces with its grpc_port metadata.
type backend struct {
	nodeName string
	node     *server.Node
	net      *faultnet.Network // the node's network, to crash or freeze it
	app      *grpc.Server
	health   *health.Server
	appAddr  string
	served   atomic.Int64
	done     chan struct{}
}

func (b *backend) name() string { b.served.Add(1); return b.nodeName }

// startBackend starts an application server, then a node announcing its port (role=api);
// seeds are membership addresses. Both stop when the test ends.
func startBackend(t *testing.T, name string, opts []server.Option, seeds ...string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &backend{nodeName: name, app: grpc.NewServer(), health: health.NewServer(), appAddr: l.Addr().String(), done: make(chan struct{})}
	b.app.RegisterService(&echoService, b)
	healthpb.RegisterHealthServer(b.app, b.health)
	go func() { defer close(b.done); _ = b.app.Serve(l) }()
	t.Cleanup(func() { b.app.Stop(); <-b.done })
	b.net = faultnet.New()
	opts = append(slices.Clone(opts), server.WithNetwork(b.net))
	b.node = startNode(t, name, map[string]string{"role": "api", "grpc_port": strconv.Itoa(l.Addr().(*net.TCPAddr).Port)}, opts, seeds...)
	return b
}

// startNode starts a node on loopback with fast heartbeats; it stops when the test ends.
func startNode(t *testing.T, name string, metadata map[string]string, opts []server.Option, seeds ...string) *server.Node {
	t.Helper()
	cfg := membership.DefaultConfig()
	cfg.Name, cfg.BindHost, cfg.Port = name, "127.0.0.1", 0
	cfg.Seeds = seeds
	cfg.Metadata = metadata
	cfg.HeartbeatInterval = 300 * time.Millisecond
	cfg.HeartbeatMissThreshold = 3
	cfg.DialTimeout = 2 * time.Second
	opts = append([]server.Option{server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	n, err := server.Start(context.Background(), cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	return n
}

// cluster starts a seed node (no role: never an endpoint) and n backends joined through it.
func cluster(t *testing.T, n int, opts ...server.Option) (*server.Node, []*backend) {
	t.Helper()
	seed := startNode(t, "seed", map[string]string{"role": "seed"}, opts)
	var backends []*backend
	for i := range n {
		backends = append(backends, startBackend(t, "api"+strconv.Itoa(i+1), opts, seed.LocalID().Address()))
	}
	require.Eventually(t, func() bool {
		c, _ := seed.ConnectedCount()
		return c == n
	}, 10*time.Second, 10*time.Millisecond)
	return seed, backends
}

// dialMesh dials the backends through meshnode:/// with round_robin.
func dialMesh(t *testing.T, seed *server.Node, serviceConfig string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	target := "meshnode:///" + seed.LocalID().Address() + "?metadata.role=api&port_key=grpc_port"
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
	}, opts...)
	cc, err := grpc.NewClient(target, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// call makes one call and returns the name of the backend that served it.
func call(ctx context.Context, cc *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, echoMethod, wrapperspb.String("hi"), out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// spread makes n calls and counts them by backend.
func spread(t *testing.T, cc *grpc.ClientConn, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		name, err := call(context.Background(), cc)
		require.NoError(t, err)
		counts[name]++
	}
	return counts
}

// waitServedBy waits until a round of calls reaches exactly the named backends.
func waitServedBy(t *testing.T, cc *grpc.ClientConn, names ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		counts := map[string]int{}
		for range 3 * len(names) {
			name, err := call(context.Background(), cc)
			if err != nil {
				return false
			}
			counts[name]++
		}
		if len(counts) != len(names) {
			return false
		}
		for _, n := range names {
			if counts[n] == 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "calls should reach exactly %v", names)
}

func TestResolverRoundRobinOverLiveNodes(t *testing.T) {
	seed, backends := cluster(t, 3)
	cc := dialMesh(t, seed, client.RoundRobinServiceConfig)
	waitServedBy(t, cc, "api1", "api2", "api3")
	counts := spread(t, cc, 30)
	for _, b := range backends {
		require.GreaterOrEqual(t, counts[b.nodeName], 5, "round robin spreads the calls: %v", counts)
	}

	// api2's node crashes (no leave) while its application server keeps serving: only the
	// resolver can take it out of the balancer, and it does.
	backends[1].net.Crash()
	require.NoError(t, backends[1].node.Stop(t.Context()), "the leave of a crashed node reaches nobody")
	waitServedBy(t, cc, "api1", "api3")
	before := backends[1].served.Load()
	counts = spread(t, cc, 30)
	require.Zero(t, counts["api2"])
	require.Equal(t, before, backends[1].served.Load(), "no call reaches the node the cluster reported down")

	// A new backend joins: it gets calls.
	startBackend(t, "api4", nil, seed.LocalID().Address())
	waitServedBy(t, cc, "api1", "api3", "api4")
}

func TestResolverFrozenNodeStopsGettingCalls(t *testing.T) {
	seed, backends := cluster(t, 2)
	cc := dialMesh(t, seed, client.RoundRobinServiceConfig)
	waitServedBy(t, cc, "api1", "api2")
	// api1's membership freezes (its application server still answers): once the cluster
	// reports it down (heartbeat timeout), calls stop reaching it.
	backends[0].net.Freeze()
	t.Cleanup(backends[0].net.Heal)
	waitServedBy(t, cc, "api2")
	before := backends[0].served.Load()
	spread(t, cc, 20)
	require.Equal(t, before, backends[0].served.Load())
}

func TestResolverGracefulLeaveFailsNoCall(t *testing.T) {
	seed, backends := cluster(t, 3)
	cc := dialMesh(t, seed, client.RoundRobinServiceConfig)
	waitServedBy(t, cc, "api1", "api2", "api3")

	// Calls run all along; api3 leaves the way the documentation says: membership first,
	// then the application server drains.
	ctx, cancel := context.WithCancel(context.Background())
	var failed, total atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := call(ctx, cc); err != nil && ctx.Err() == nil {
					failed.Add(1)
					t.Log("call failed:", err)
				}
				total.Add(1)
			}
		}()
	}
	leaving := backends[2]
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	require.NoError(t, leaving.node.Stop(stopCtx))
	stopCancel()
	// The resolver drops it as soon as the leave is reported; waiting for that before the
	// drain is what keeps the drain short.
	// Dropped means: 20 calls in a row served without it.
	lastServed, lastTotal := leaving.served.Load(), total.Load()
	require.Eventually(t, func() bool {
		if served := leaving.served.Load(); served != lastServed {
			lastServed, lastTotal = served, total.Load()
			return false
		}
		return total.Load()-lastTotal >= 20
	}, 5*time.Second, time.Millisecond)
	leaving.app.GracefulStop()
	require.Eventually(t, func() bool { return total.Load() > 200 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	wg.Wait()
	require.Zero(t, failed.Load(), "a graceful leave fails no call (%d calls)", total.Load())
	waitServedBy(t, cc, "api1", "api2")
}

func TestResolverWithHealthChecking(t *testing.T) {
	seed, backends := cluster(t, 2)
	cc := dialMesh(t, seed, `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`)
	waitServedBy(t, cc, "api1", "api2")
	// api2 reports NOT_SERVING: gRPC's health checking takes it out although the cluster
	// still lists it; SERVING again brings it back.
	backends[1].health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitServedBy(t, cc, "api1")
	backends[1].health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitServedBy(t, cc, "api1", "api2")
}

func TestResolverBuilderWithToken(t *testing.T) {
	const token = "s3cret-token"
	seed, _ := cluster(t, 2, server.WithAPIToken(token))

	// The registered builder has no token: the node refuses the watch, and calls fail.
	plain := dialMesh(t, seed, client.RoundRobinServiceConfig)
	_, err := call(context.Background(), plain)
	require.Error(t, err)
	t.Log("without the token:", err)

	// A builder with the token, passed to this channel only.
	cc := dialMesh(t, seed, client.RoundRobinServiceConfig, grpc.WithResolvers(client.NewResolverBuilder(client.WithToken(token))))
	waitServedBy(t, cc, "api1", "api2")
}

func TestResolverNoMatchingNodeFailsCalls(t *testing.T) {
	seed, _ := cluster(t, 1)
	cc, err := grpc.NewClient("meshnode:///"+seed.LocalID().Address()+"?metadata.role=nothing",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(client.RoundRobinServiceConfig))
	require.NoError(t, err)
	defer cc.Close()
	_, err = call(context.Background(), cc)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}
