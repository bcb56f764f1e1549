package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// peerTransport implements membership.Transport over PeerService streams. Every dial gets its
// own HTTP/2 connection, so a broken stream means a broken connection and is seen at once.
type peerTransport struct {
	dialOptions []grpc.DialOption
}

// Dial opens an Exchange stream to addr and completes the authentication handshake within ctx.
func (t *peerTransport) Dial(ctx context.Context, addr string) (membership.Conn, error) {
	cc, err := grpc.NewClient(addr, t.dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	streamCtx, cancel := context.WithCancel(context.Background())
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
		_ = cc.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, r.err)
	}
	return &clientConn{stream: r.stream, cancel: cancel, cc: cc}, nil
}

// clientConn is the dialling end of a stream.
type clientConn struct {
	stream clusterv1.PeerService_ExchangeClient
	cancel context.CancelFunc
	cc     *grpc.ClientConn
	once   sync.Once
}

// Send encodes and sends one message.
func (c *clientConn) Send(msg *membership.Message) error {
	body, err := encodeMessage(msg)
	if err != nil {
		return err
	}
	return c.stream.Send(&clusterv1.ExchangeRequest{Body: body})
}

// Recv receives and decodes one message.
func (c *clientConn) Recv() (*membership.Message, error) {
	f, err := c.stream.Recv()
	if err != nil {
		return nil, err
	}
	return decodeMessage(f.GetBody())
}

// CloseSend half-closes the stream; the accepting side then ends it.
func (c *clientConn) CloseSend() error { return c.stream.CloseSend() }

// Close aborts the stream and its connection.
func (c *clientConn) Close() {
	c.once.Do(func() {
		c.cancel()
		go func() { _ = c.cc.Close() }()
	})
}

// serverConn is the accepting end of a stream. gRPC offers no way to unblock a server
// stream's Recv but to return from the handler, so a reader goroutine feeds a channel and
// Close simply stops listening to it.
type serverConn struct {
	stream clusterv1.PeerService_ExchangeServer
	frames chan recvResult
	closed chan struct{}
	once   sync.Once
}

type recvResult struct {
	msg *membership.Message
	err error
}

// newServerConn starts the reader of stream; it ends when the handler returns.
func newServerConn(stream clusterv1.PeerService_ExchangeServer) *serverConn {
	c := &serverConn{stream: stream, frames: make(chan recvResult), closed: make(chan struct{})}
	go c.read()
	return c
}

func (c *serverConn) read() {
	for {
		var r recvResult
		f, err := c.stream.Recv()
		if err != nil {
			r.err = err
		} else {
			r.msg, r.err = decodeMessage(f.GetBody())
		}
		select {
		case c.frames <- r:
		case <-c.closed:
			return
		}
		if r.err != nil {
			return
		}
	}
}

// Send encodes and sends one message.
func (c *serverConn) Send(msg *membership.Message) error {
	select {
	case <-c.closed:
		return io.EOF
	default:
	}
	body, err := encodeMessage(msg)
	if err != nil {
		return err
	}
	return c.stream.Send(&clusterv1.ExchangeResponse{Body: body})
}

// Recv returns the next message, or an error once the stream ended or was closed.
func (c *serverConn) Recv() (*membership.Message, error) {
	select {
	case r := <-c.frames:
		return r.msg, r.err
	case <-c.closed:
		return nil, io.EOF
	}
}

// CloseSend ends the stream: a server cannot half-close, and returning from the handler
// delivers what was sent before the status.
func (c *serverConn) CloseSend() error {
	c.Close()
	return nil
}

// Close ends the stream.
func (c *serverConn) Close() { c.once.Do(func() { close(c.closed) }) }

// peerService serves PeerService: each Exchange stream is handed to the membership engine.
type peerService struct {
	clusterv1.UnimplementedPeerServiceServer
	cluster *membership.Cluster
}

// Exchange runs one inbound peer stream until it ends.
func (s *peerService) Exchange(stream clusterv1.PeerService_ExchangeServer) error {
	conn := newServerConn(stream)
	defer conn.Close()
	if err := s.cluster.ServeConn(stream.Context(), conn); err != nil {
		if errors.Is(err, membership.ErrNotRunning) {
			return status.Error(codes.Unavailable, err.Error())
		}
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}
