package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// peerTransport implements membership.Transport over PeerService streams, dialled through the
// node's peer channel. Every dial gets its own HTTP/2 connection, so a broken stream means a
// broken connection and is seen at once.
type peerTransport struct {
	channel peerChannel
	bodies  *bodyCache // shared with the node's peerService; may be nil
	// maxMessage bounds a peer message joined from fragments (0: the default).
	maxMessage int
}

// Dial opens an Exchange stream to addr and completes the authentication handshake within ctx.
func (t *peerTransport) Dial(ctx context.Context, addr string) (membership.Conn, error) {
	cc, router, err := t.channel.open()
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	dial, err := router.newDial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	streamCtx, cancel := context.WithCancel(context.WithValue(context.Background(), peerDialKey{}, dial))
	type result struct {
		stream clusterv1.PeerService_ExchangeClient
		err    error
	}
	done := make(chan result, 1)
	go func() {
		stream, err := clusterv1.NewPeerServiceClient(cc).Exchange(streamCtx)
		done <- result{stream, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		cancel()
		r = <-done
		if r.err == nil {
			r.err = ctx.Err()
		}
	}
	if r.err != nil {
		cancel()
		go dial.shutdown()
		if dial.refused() {
			return nil, fmt.Errorf("dial %s: %w: %w", addr, membership.ErrConnectionRefused, r.err)
		}
		return nil, fmt.Errorf("dial %s: %w", addr, r.err)
	}
	return &clientConn{stream: r.stream, cancel: cancel, dial: dial, bodies: t.bodies, frags: reassembler{max: t.maxMessage}}, nil
}

// close closes every connection the transport dialled (the node stops serving).
func (t *peerTransport) close() { t.channel.close() }

// clientConn is the dialling end of a stream.
type clientConn struct {
	stream clusterv1.PeerService_ExchangeClient
	cancel context.CancelFunc
	dial   *peerDial
	bodies *bodyCache
	once   sync.Once
	// The frames are reused: Send runs on one goroutine at a time, Recv too (membership.Conn),
	// and gRPC is done with a frame when the call returns.
	sendFrame clusterv1.ExchangeRequest
	recvFrame clusterv1.ExchangeResponse
	frags     reassembler
}

// Send encodes and sends one message, in fragments if it is large.
func (c *clientConn) Send(msg *membership.Message) error {
	body, err := c.bodies.encode(msg)
	if err != nil {
		return err
	}
	if len(body) > peerFragmentBytes {
		return sendFragments(body, c.sendBody)
	}
	return c.sendBody(body)
}

// sendBody sends one frame.
func (c *clientConn) sendBody(body []byte) error {
	c.sendFrame.Body = body
	return c.stream.Send(&c.sendFrame)
}

// Recv receives and decodes one message, joining its fragments.
func (c *clientConn) Recv() (*membership.Message, error) {
	for {
		if err := c.stream.RecvMsg(&c.recvFrame); err != nil {
			return nil, err
		}
		if msg, err := c.frags.next(c.recvFrame.GetBody()); err != nil || msg != nil {
			return msg, err
		}
	}
}

// CloseSend half-closes the stream; the accepting side then ends it.
func (c *clientConn) CloseSend() error { return c.stream.CloseSend() }

// Close aborts the stream and its connection.
func (c *clientConn) Close() {
	c.once.Do(func() {
		c.cancel()
		go c.dial.shutdown()
	})
}

// serverConn is the accepting end of a stream. Recv reads the gRPC stream directly on the
// caller's goroutine. A server stream's Recv only returns early when the stream's context
// ends, so every PeerService stream gets a context of its own from cancellableStreams, and
// Close cancels it.
type serverConn struct {
	stream clusterv1.PeerService_ExchangeServer
	cancel context.CancelFunc // ends the stream's context: a pending Recv returns at once
	bodies *bodyCache
	closed atomic.Bool
	// cert is the peer's verified client certificate (mutual TLS), nil without one: the id
	// of the peer's hello must be one it covers (certCovers). hellos counts hellos checked.
	cert    *x509.Certificate
	hellos  int
	refused error // why the stream was refused by the transport, ends the stream with its status
	// Reused as clientConn's are.
	sendFrame clusterv1.ExchangeResponse
	recvFrame clusterv1.ExchangeRequest
	frags     reassembler
}

// streamCancelKey is the context key of the cancel function cancellableStreams attaches.
type streamCancelKey struct{}

// cancellableStreams is the gRPC server's tap handle: it gives each PeerService stream a
// context that its serverConn can cancel. The handle runs before the stream is created and the
// context it returns becomes the stream's own, the one its Recv waits on. Cancelling it makes
// Recv fail at once and gRPC end the stream with codes.Canceled, after the messages already
// sent: nothing queued is discarded.
func cancellableStreams(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != clusterv1.PeerService_Exchange_FullMethodName {
		return ctx, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	return context.WithValue(ctx, streamCancelKey{}, cancel), nil
}

// newServerConn wraps stream; it fails if the stream's context was not made by
// cancellableStreams, as then Close could not unblock Recv.
func newServerConn(stream clusterv1.PeerService_ExchangeServer) (*serverConn, error) {
	cancel, ok := stream.Context().Value(streamCancelKey{}).(context.CancelFunc)
	if !ok {
		return nil, errors.New("peer stream context cannot be cancelled: gRPC server built without its tap handle")
	}
	return &serverConn{stream: stream, cancel: cancel, cert: verifiedPeerCert(stream.Context())}, nil
}

// Send encodes and sends one message, in fragments if it is large.
func (c *serverConn) Send(msg *membership.Message) error {
	if c.closed.Load() {
		return io.EOF
	}
	body, err := c.bodies.encode(msg)
	if err != nil {
		return err
	}
	if len(body) > peerFragmentBytes {
		return sendFragments(body, c.sendBody)
	}
	return c.sendBody(body)
}

// sendBody sends one frame.
func (c *serverConn) sendBody(body []byte) error {
	c.sendFrame.Body = body
	return c.stream.Send(&c.sendFrame)
}

// Recv returns the next message, joining its fragments, or an error once the stream ended
// or was closed.
func (c *serverConn) Recv() (*membership.Message, error) {
	if c.closed.Load() {
		return nil, io.EOF
	}
	for {
		if err := c.stream.RecvMsg(&c.recvFrame); err != nil {
			return nil, err
		}
		msg, err := c.frags.next(c.recvFrame.GetBody())
		if err != nil {
			return nil, err
		}
		if msg == nil {
			continue
		}
		if msg.Hello != nil && c.cert != nil && c.hellos == 0 {
			c.hellos++
			if err := certCovers(c.cert, msg.Hello.ID); err != nil {
				c.refused = err
				return nil, err
			}
		}
		return msg, nil
	}
}

// CloseSend ends the stream: a server cannot half-close, but ending the stream still
// delivers what was sent before.
func (c *serverConn) CloseSend() error {
	c.Close()
	return nil
}

// Close ends the stream without blocking: a pending Recv fails at once, later calls return
// io.EOF, and the peer receives what was sent before, then the end of the stream.
func (c *serverConn) Close() {
	c.closed.Store(true)
	c.cancel()
}

// peerService serves PeerService: each Exchange stream is handed to the membership engine.
type peerService struct {
	clusterv1.UnimplementedPeerServiceServer
	cluster *membership.Cluster
	bodies  *bodyCache // shared with the node's peerTransport; may be nil
	logger  *slog.Logger
	// maxMessage bounds a peer message joined from fragments (0: the default).
	maxMessage int
}

// Exchange runs one inbound peer stream until it ends.
func (s *peerService) Exchange(stream clusterv1.PeerService_ExchangeServer) error {
	conn, err := newServerConn(stream)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	conn.bodies = s.bodies
	conn.frags.max = s.maxMessage
	defer conn.Close()
	err = s.cluster.ServeConn(stream.Context(), conn)
	if conn.refused != nil { // read by the same goroutine's ServeConn, which has returned
		s.logger.Warn("peer refused: its certificate does not cover the id it claims", "problem", conn.refused.Error())
		return status.Error(codes.PermissionDenied, conn.refused.Error())
	}
	if err != nil {
		if errors.Is(err, membership.ErrNotRunning) {
			return status.Error(codes.Unavailable, err.Error())
		}
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}
