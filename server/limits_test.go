package server

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/meshnode/meshnode/client"
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/pooledread"
	"github.com/meshnode/meshnode/membership"
)

func TestHandshakePoolNeverRefusesANewcomer(t *testing.T) {
	p := newHandshakePool(3, 3)
	a, v := p.admit("10.0.0.1", false)
	require.Nil(t, v)
	b, _ := p.admit("10.0.0.1", false)
	c, _ := p.admit("10.0.0.1", false)
	b.progressed.Store(true)
	c.progressed.Store(true)
	d, v := p.admit("10.0.0.1", false)
	require.Same(t, a, v, "the one still waiting for its first frame goes first")
	requireClosed(t, a.evicted)
	d.progressed.Store(true)
	_, v = p.admit("10.0.0.1", false)
	require.Same(t, b, v, "then the oldest")
	require.Equal(t, 3, p.pending())
	p.release(c)
	p.release(c)
	require.Equal(t, 2, p.pending(), "release is idempotent")
}

func TestHandshakePoolEvictsFromReusedConnectionsFirst(t *testing.T) {
	p := newHandshakePool(2, 2)
	fresh, _ := p.admit("10.0.0.1", false)
	reused, _ := p.admit("10.0.0.1", true)
	reused.progressed.Store(true)
	_, v := p.admit("10.0.0.1", false)
	require.Same(t, reused, v, "a second peer stream on one connection is not how nodes dial")
	require.NotNil(t, fresh)
}

func TestHandshakePoolEvictsFromTheHeaviestSource(t *testing.T) {
	p := newHandshakePool(4, 4)
	var flood []*pendingHandshake
	for range 3 {
		e, _ := p.admit("10.0.0.66", false)
		flood = append(flood, e)
	}
	real, _ := p.admit("10.0.0.2", false)
	for range 10 {
		e, v := p.admit("10.0.0.66", false)
		require.NotNil(t, v)
		require.Equal(t, "10.0.0.66", v.source, "the flooding address loses its own handshakes")
		flood = append(flood, e)
	}
	select {
	case <-real.evicted:
		t.Fatal("the other address's handshake was evicted")
	default:
	}
	// A second address coming while the pool is full takes from the heaviest source too.
	_, v := p.admit("10.0.0.3", false)
	require.Equal(t, "10.0.0.66", v.source)
}

func TestHandshakePoolPerSourceCap(t *testing.T) {
	p := newHandshakePool(10, 2)
	first, _ := p.admit("10.0.0.1", false)
	p.admit("10.0.0.1", false)
	_, v := p.admit("10.0.0.1", false)
	require.Same(t, first, v, "an address at its cap evicts its own, though the pool has room")
	_, v = p.admit("10.0.0.2", false)
	require.Nil(t, v)
}

func requireClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Fatal("channel not closed")
	}
}

// tapContext is the context gRPC hands the tap handle: the client's address and headers.
func tapContext(md metadata.MD) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}})
	return metadata.NewIncomingContext(ctx, md)
}

func TestTapRefusesBeforeAnythingIsRead(t *testing.T) {
	l := &limiter{
		methods: map[string]method{
			"/cluster.v1.MembershipService/GetNode": {class: classAPI},
			"/grpc.health.v1.Health/Check":          {class: classOpen},
		},
		token:        apiTokenAuth{token: []byte("tok")},
		maxOpenCalls: 1,
	}
	_, err := l.tap(tapContext(nil), &tap.Info{FullMethodName: "/cluster.v1.MembershipService/GetNode"})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no token: refused on the headers: %v", err)
	_, err = l.tap(tapContext(metadata.Pairs("authorization", "Bearer nope")), &tap.Info{FullMethodName: "/cluster.v1.MembershipService/GetNode"})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	ctx, err := l.tap(tapContext(metadata.Pairs("authorization", "Bearer tok")), &tap.Info{FullMethodName: "/cluster.v1.MembershipService/GetNode"})
	require.NoError(t, err)
	require.NotNil(t, ctx)

	long := "/" + strings.Repeat("x", 10000)
	_, err = l.tap(tapContext(nil), &tap.Info{FullMethodName: long})
	require.Equal(t, codes.Unimplemented, status.Code(err))
	require.Less(t, len(status.Convert(err).Message()), 200, "an unknown method is quoted in part only")

	parent, cancel := context.WithCancel(tapContext(nil))
	ctx, err = l.tap(parent, &tap.Info{FullMethodName: "/grpc.health.v1.Health/Check"})
	require.NoError(t, err)
	_, err = l.tap(tapContext(nil), &tap.Info{FullMethodName: "/grpc.health.v1.Health/Check"})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "over the open-call cap")
	cancel() // the first call ends: its place is free again
	<-ctx.Done()
	require.Eventually(t, func() bool {
		_, err := l.tap(tapContext(nil), &tap.Info{FullMethodName: "/grpc.health.v1.Health/Check"})
		return err == nil
	}, time.Second, time.Millisecond)
}

// dialRaw opens a gRPC client connection to n.
func dialRaw(t *testing.T, n *Node) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(n.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestOpenStreamsAreCappedAndGetADeadline(t *testing.T) {
	n, _ := startLogged(t, testConfig("a"), WithMaxOpenCalls(2, time.Second, 300*time.Millisecond))
	cc := dialRaw(t, n)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var watches []healthpb.Health_WatchClient
	for range 2 {
		w, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		_, err = w.Recv()
		require.NoError(t, err, "the first status arrives")
		watches = append(watches, w)
	}
	w, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = w.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "over the cap: %v", err)
	start := time.Now()
	for _, w := range watches {
		for {
			if _, err = w.Recv(); err != nil {
				break
			}
		}
	}
	require.Less(t, time.Since(start), 5*time.Second, "the open streams end at their deadline")
	// Their places are free again.
	require.Eventually(t, func() bool {
		_, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
}

func TestWatchersAreCapped(t *testing.T) {
	n, _ := startLogged(t, testConfig("a"), WithMaxWatchers(1))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first, err := clusterv1.NewMembershipServiceClient(dialRaw(t, n)).WatchEvents(ctx, &clusterv1.WatchEventsRequest{})
	require.NoError(t, err)
	_, err = first.Header()
	require.NoError(t, err, "the first watcher is registered")
	second, err := clusterv1.NewMembershipServiceClient(dialRaw(t, n)).WatchEvents(ctx, &clusterv1.WatchEventsRequest{})
	require.NoError(t, err)
	_, err = second.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "too many watchers")
}

func TestMessagesOverTheReceiveLimitAreRefusedUnread(t *testing.T) {
	n, _ := startLogged(t, testConfig("a"))
	cc := dialRaw(t, n)
	_, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{Service: strings.Repeat("x", DefaultMaxRecvMessageBytes)},
		grpc.MaxCallSendMsgSize(1<<30))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	_, err = healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "the connection still serves")
}

func TestIdleConnectionsOverTheCapAreClosedNeverUsedFirst(t *testing.T) {
	n, _ := startLogged(t, testConfig("a"), WithMaxIdleConnections(2))
	// A client that made a call: its connection is idle between calls.
	c, err := client.Dial(n.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Nodes(t.Context(), false)
	require.NoError(t, err)
	conns := dialRawConns(t, n.Addr().String(), 3)
	require.Eventually(t, func() bool { return closedByPeer(conns[0]) && closedByPeer(conns[1]) }, 5*time.Second, 20*time.Millisecond,
		"the oldest connections that never opened a stream are closed first")
	require.False(t, closedByPeer(conns[2]), "the newest stays")
	start := time.Now()
	_, err = c.Nodes(t.Context(), false)
	require.NoError(t, err, "the client's connection, idle between calls, was kept")
	require.Less(t, time.Since(start), time.Second)
}

// dialRawConns opens count TCP connections to addr that never send a byte, closed when the
// test ends.
func dialRawConns(t *testing.T, addr string, count int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range count {
		raw, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = raw.Close() })
		conns = append(conns, raw)
	}
	return conns
}

// closedByPeer reports whether the other end closed c (a read ends other than by timing out).
func closedByPeer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err := c.Read(make([]byte, 4096))
	return errors.Is(err, io.EOF) || (err != nil && !isTimeout(err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestLimitsOutOfRangeAreInvalidConfiguration(t *testing.T) {
	_, err := Start(t.Context(), testConfig("a"), WithMaxOpenCalls(0, time.Second, time.Second),
		WithMaxRecvMessageBytes(1024), WithMaxPendingHandshakes(-1))
	var ce *membership.ConfigError
	require.ErrorAs(t, err, &ce)
	for _, field := range []string{"MaxOpenCalls", "MaxRecvMessageBytes", "MaxPendingHandshakes"} {
		require.Contains(t, err.Error(), field)
	}
}

func TestEvictedHandshakeEndsWithResourceExhausted(t *testing.T) {
	cfg := withSecrets(testConfig("a"), "evict-test-secret-0123")
	a, logs := startLogged(t, cfg, WithMaxPendingHandshakes(1))
	first := openSilentPeerStream(t, a.Addr().String())
	require.Eventually(t, func() bool { return a.auth.pending.pending() == 1 }, 5*time.Second, time.Millisecond)
	cc := dialRaw(t, a)
	stream, err := clusterv1.NewPeerServiceClient(cc).Exchange(t.Context())
	require.NoError(t, err)
	require.Eventually(t, first.closed, 5*time.Second, 10*time.Millisecond, "the newcomer takes the silent stream's place")
	b := startNode(t, withSecrets(testConfig("b", a.LocalID().String()), "evict-test-secret-0123"))
	requireFullMesh(t, 5*time.Second, a, b)
	_, err = stream.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "the silent newcomer was evicted in turn by b: %v", err)
	require.Contains(t, logs.String(), "limit=pending_handshakes")
}

// TestMaxConnectionAgeWithoutGraceKeepsPeerStreams backs WithKeepalive's advice: an age limit
// without a grace period only refuses new streams on old connections (gRPC's GOAWAY), and
// peer streams, which live as long as their connection, are not cut.
func TestMaxConnectionAgeWithoutGraceKeepsPeerStreams(t *testing.T) {
	ka := WithKeepalive(keepalive.ServerParameters{MaxConnectionAge: 300 * time.Millisecond}, keepalive.EnforcementPolicy{})
	a, _ := startLogged(t, testConfig("a"), ka)
	b, _ := startLogged(t, testConfig("b", a.LocalID().String()), ka)
	requireFullMesh(t, 5*time.Second, a, b)
	ra, rb := record(a), record(b)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		require.Empty(t, ra.downs(b.LocalID()), "well past the age limit, no down")
		require.Empty(t, rb.downs(a.LocalID()))
	}
	requireFullMesh(t, time.Second, a, b)
	c, err := client.Dial(a.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Nodes(t.Context(), false)
	require.NoError(t, err, "API clients reconnect after the GOAWAY")
}

func TestHandshakePoolCapsGrowWithTheCluster(t *testing.T) {
	p := newHandshakePool(2, 1)
	known := 0
	p.floor = func() int { return 2 * known }
	first, _ := p.admit("10.0.0.1", false)
	_, v := p.admit("10.0.0.1", false)
	require.Same(t, first, v, "a small cluster keeps the configured per-source cap")
	known = 2 // twice the nodes known: 4
	for range 3 {
		_, v = p.admit("10.0.0.1", false)
		require.Nil(t, v, "a node that knows 2 nodes admits 4 handshakes, whatever the configured caps")
	}
	_, v = p.admit("10.0.0.1", false)
	require.NotNil(t, v, "past twice the nodes known, a newcomer evicts one")
}

func TestIdleConnectionCapGrowsWithTheNodesKnown(t *testing.T) {
	a := startNode(t, testConfig("a"), WithMaxIdleConnections(1))
	startNode(t, testConfig("b", a.Addr().String()))
	startNode(t, testConfig("c", a.Addr().String()))
	require.Eventually(t, func() bool { return a.cluster.KnownNodeCount() == 2 }, 5*time.Second, 10*time.Millisecond,
		"a should know b and c")
	conns := dialRawConns(t, a.Addr().String(), 5)
	require.Eventually(t, func() bool { return closedByPeer(conns[0]) }, 5*time.Second, 20*time.Millisecond,
		"the fifth connection without a stream is one past twice the nodes known: the oldest goes")
	for _, c := range conns[1:] {
		require.False(t, closedByPeer(c), "four connections without a stream stay: twice the 2 nodes a knows, over the cap of 1")
	}
}

func TestTrackedConnectionsReadIntoPooledBuffers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	reg := newConnRegistry(l, 8, nil)
	defer func() { require.NoError(t, reg.Close()) }()
	dialled, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer func() { _ = dialled.Close() }() // (closed by the test already, unless it failed first)
	accepted, err := reg.Accept()
	require.NoError(t, err)
	defer func() { require.NoError(t, accepted.Close()) }()

	// gRPC reads a connection that has this method into buffers from its pool, and gives any
	// other (a wrapper, as a tracked connection is) a read buffer of its own for its life.
	reader, ok := accepted.(pooledread.Reader)
	require.True(t, ok, "an accepted connection keeps gRPC's pooled reads")
	_, err = dialled.Write([]byte("ping"))
	require.NoError(t, err)
	pool := mem.DefaultBufferPool()
	buf, n, err := reader.ReadOnReady(1024, pool)
	require.NoError(t, err)
	require.Equal(t, "ping", string((*buf)[:n]), "the peer's bytes are read into the pooled buffer")
	pool.Put(buf)

	require.NoError(t, dialled.Close())
	buf, n, err = reader.ReadOnReady(1024, pool)
	require.Nil(t, buf)
	require.Zero(t, n)
	require.ErrorIs(t, err, io.EOF, "the peer's close is the end of the stream")
}
