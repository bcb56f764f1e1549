package server

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// countingListener counts the connections it accepted that are still open.
type countingListener struct {
	net.Listener
	mu   sync.Mutex
	open int
}

func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open++
	l.mu.Unlock()
	return &countedConn{Conn: conn, l: l}, nil
}

func (l *countingListener) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// serveEcho serves a PeerService that sends every frame back, on a counting listener.
func serveEcho(t *testing.T) (string, *countingListener) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &countingListener{Listener: inner}
	addr, stop := servePeerServiceOn(l, func(stream clusterv1.PeerService_ExchangeServer) error {
		for {
			frame, err := stream.Recv()
			if err != nil {
				return nil
			}
			if err := stream.Send(&clusterv1.ExchangeResponse{Body: frame.GetBody()}); err != nil {
				return err
			}
		}
	})
	t.Cleanup(stop)
	return addr, l
}

// plainTransport dials without TLS or authentication; it is closed when the test ends.
func plainTransport(t *testing.T) *peerTransport {
	transport := &peerTransport{channel: peerChannel{dialOptions: []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}}}
	t.Cleanup(transport.close)
	return transport
}

func dialWithin(t *testing.T, transport *peerTransport, addr string, timeout time.Duration) (membership.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return transport.Dial(ctx, addr)
}

// requireEcho sends a heartbeat on conn and requires it back.
func requireEcho(t *testing.T, conn membership.Conn, name string) {
	t.Helper()
	hb := &membership.Message{Heartbeat: &membership.Heartbeat{ID: membership.MustParseNodeID(name + "@127.0.0.1:1"), ViewDigest: 7}}
	require.NoError(t, conn.Send(hb), "send on %s", name)
	got, err := conn.Recv()
	require.NoError(t, err, "the echo of %s", name)
	require.NotNil(t, got.Heartbeat, "%s gets its heartbeat back", name)
	require.Equal(t, hb.Heartbeat.ID, got.Heartbeat.ID, "%s gets its own heartbeat back", name)
}

func TestPeerDialsShareOneChannelYetEachHasItsOwnConnection(t *testing.T) {
	addr, listener := serveEcho(t)
	transport := plainTransport(t)

	first, err := dialWithin(t, transport, addr, 10*time.Second)
	require.NoError(t, err)
	channel := transport.channel.cc
	second, err := dialWithin(t, transport, addr, 10*time.Second)
	require.NoError(t, err)
	require.Same(t, channel, transport.channel.cc, "both dials go through the node's one peer channel")
	require.Equal(t, 2, listener.openConns(), "each dial has a TCP connection of its own")
	requireEcho(t, first, "first")
	requireEcho(t, second, "second")

	first.Close()
	_, err = first.Recv()
	require.Error(t, err, "a closed stream receives nothing more")
	require.Eventually(t, func() bool { return listener.openConns() == 1 }, 10*time.Second, 10*time.Millisecond,
		"closing a dial's stream closes its connection, and only its own")
	requireEcho(t, second, "second")

	second.Close()
	require.Eventually(t, func() bool { return listener.openConns() == 0 }, 10*time.Second, 10*time.Millisecond,
		"no connection is left once every stream is closed")
}

func TestPeerDialToAClosedPortFailsBeforeItsDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	transport := plainTransport(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = transport.Dial(ctx, addr)
	require.ErrorContains(t, err, "dial "+addr, "a refused dial fails and names the address")
	require.NoError(t, ctx.Err(), "a refused dial fails at once, not when its deadline passes")

	// The channel is still good for the next dial.
	echo, _ := serveEcho(t)
	conn, err := dialWithin(t, transport, echo, 10*time.Second)
	require.NoError(t, err)
	requireEcho(t, conn, "after")
	conn.Close()
}

func TestClosingThePeerChannelCutsItsConnectionsAndANewOneOpens(t *testing.T) {
	addr, listener := serveEcho(t)
	transport := plainTransport(t)
	conn, err := dialWithin(t, transport, addr, 10*time.Second)
	require.NoError(t, err)
	requireEcho(t, conn, "before")

	transport.close() // the node stops serving
	_, err = conn.Recv()
	require.Error(t, err, "the stream ends with its channel")
	require.Eventually(t, func() bool { return listener.openConns() == 0 }, 10*time.Second, 10*time.Millisecond,
		"closing the channel closes the connections dialled through it")

	again, err := dialWithin(t, transport, addr, 10*time.Second) // the node restarts
	require.NoError(t, err, "a dial after the channel closed opens a new one")
	requireEcho(t, again, "again")
	again.Close()
}

func TestDialWhereNothingListensIsRefusedAndATimeoutIsNot(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())
	transport := plainTransport(t)
	_, err = dialWithin(t, transport, closed, 5*time.Second)
	require.ErrorIs(t, err, membership.ErrConnectionRefused, "nothing listens at %s: the dial is refused", closed)

	// A listener that never answers the HTTP/2 handshake: the dial times out, not refused.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	_, err = dialWithin(t, transport, silent.Addr().String(), 300*time.Millisecond)
	require.Error(t, err, "a peer that never answers cannot be reached")
	require.NotErrorIs(t, err, membership.ErrConnectionRefused, "a dial that timed out is not a refusal")
}
