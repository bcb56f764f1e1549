package server

import (
	"context"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// thinTimeouts reads TCP_THIN_LINEAR_TIMEOUTS off c's socket.
func thinTimeouts(t *testing.T, c net.Conn) int {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	require.True(t, ok, "%T should be a socket", c)
	raw, err := sc.SyscallConn()
	require.NoError(t, err)
	var v int
	var opErr error
	require.NoError(t, raw.Control(func(fd uintptr) {
		v, opErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_THIN_LINEAR_TIMEOUTS)
	}))
	require.NoError(t, opErr)
	return v
}

// A peer connection, dialled or accepted, retransmits a lost heartbeat at a steady pace
// (linear timeouts), so that a few losses in a row on a lossy link do not silence a live
// peer past its timeout.
func TestPeerConnectionsAreThinStreams(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	reg := newConnRegistry(l, 8, newLimitReporter(slog.New(slog.DiscardHandler), func(string) {}))
	defer func() { _ = reg.Close() }()

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := reg.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := defaultOptions()
	dialled, err := o.dialPeer(ctx, l.Addr().String())
	require.NoError(t, err)
	defer func() { _ = dialled.Close() }()
	in, ok := <-accepted
	require.True(t, ok, "the registry should accept the dial")
	defer func() { _ = in.Close() }()

	require.Equal(t, 1, thinTimeouts(t, dialled), "a dialled peer connection should use linear retransmission timeouts")
	require.Equal(t, 1, thinTimeouts(t, in.(*trackedConn).Conn), "an accepted connection should use linear retransmission timeouts")

	plain, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer func() { _ = plain.Close() }()
	require.Equal(t, 0, thinTimeouts(t, plain), "the option is off by default, so the checks above can fail")
}
