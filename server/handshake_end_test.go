package server

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// failingStream is a peer stream every read of which fails with err, as gRPC's reads do once
// the dialler cancelled the stream or the connection broke.
type failingStream struct {
	grpc.ServerStream
	ctx context.Context
	err error
}

func (s failingStream) Context() context.Context { return s.ctx }
func (s failingStream) RecvMsg(any) error        { return s.err }

// A dial a busy node gives up on (its timeout, or a neighbour the overlay no longer needs)
// ends its stream before the handshake: the accepting side counts no authentication failure
// and logs no warning for it. A frame that does not decode still counts as a bad frame.
func TestPeerStreamThatEndsBeforeItsHandshakeIsNoAuthenticationFailure(t *testing.T) {
	auth := newPeerAuth(nil, time.Second, 4, quietLogger())
	var reasons []string
	auth.onFailure = func(reason string) { reasons = append(reasons, reason) }
	handler := func(any, grpc.ServerStream) error {
		t.Error("the handler runs only after a handshake")
		return nil
	}
	ended := []error{
		status.Error(codes.Canceled, "context canceled"),
		io.EOF,
		status.Error(codes.Unavailable, "transport is closing"),
		status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
	}
	for _, err := range ended {
		got := auth.interceptServer(nil, failingStream{ctx: t.Context(), err: err}, nil, handler)
		require.Error(t, got, "a stream that ended before its handshake is refused")
	}
	require.Empty(t, reasons, "streams that ended before their handshake are no authentication failures")

	undecodable := status.Error(codes.Internal, "grpc: failed to unmarshal the received message")
	got := auth.interceptServer(nil, failingStream{ctx: t.Context(), err: undecodable}, nil, handler)
	require.Equal(t, codes.InvalidArgument, status.Code(got), "a frame that does not decode breaks the protocol")
	require.Equal(t, []string{"bad frame"}, reasons, "a frame that does not decode is counted as a bad frame")
}

// A peer stream that never completes its handshake is dropped at the deadline and counted
// as a handshake timeout, not as a malformed frame.
func TestSilentPeerStreamCountsAsAHandshakeTimeout(t *testing.T) {
	cfg := testConfig("a")
	cfg.HandshakeTimeout = 300 * time.Millisecond
	n, logs := startLogged(t, cfg)
	conn := openSilentPeerStream(t, n.Addr().String())
	require.Eventually(t, conn.closed, 5*time.Second, 20*time.Millisecond, "a peer stream that never authenticates is closed")
	require.Equal(t, codes.InvalidArgument, status.Code(conn.err), "dropped as a stream that broke the protocol: %v", conn.err)
	require.Eventually(t, func() bool { return authFailures(n)["handshake timeout"] == 1 }, 5*time.Second, 20*time.Millisecond,
		"the stream should count once as a handshake timeout; counted: %v", authFailures(n))
	require.Zero(t, authFailures(n)["bad frame"], "a handshake timeout is no malformed frame")
	require.Contains(t, logs.String(), `reason="handshake timeout"`, "the warning names the timeout")
}

// authFailures reads meshnode_auth_failures_total from n's metrics, by reason.
func authFailures(n *Node) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(metricsText(n), "\n") {
		rest, ok := strings.CutPrefix(line, `meshnode_auth_failures_total{reason="`)
		if !ok {
			continue
		}
		reason, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(value, 64)
		out[reason] = int(f)
	}
	return out
}
