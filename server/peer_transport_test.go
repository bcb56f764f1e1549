package server

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// exchangeFunc serves PeerService.Exchange with f.
type exchangeFunc struct {
	clusterv1.UnimplementedPeerServiceServer
	f func(clusterv1.PeerService_ExchangeServer) error
}

func (e exchangeFunc) Exchange(stream clusterv1.PeerService_ExchangeServer) error {
	return e.f(stream)
}

// servePeerService serves f as PeerService.Exchange on loopback, with the tap handle of the
// node's server and no interceptor; it returns the address and a function that stops serving.
func servePeerService(t *testing.T, f func(clusterv1.PeerService_ExchangeServer) error) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	server := grpc.NewServer(grpc.InTapHandle(cancellableStreams))
	clusterv1.RegisterPeerServiceServer(server, exchangeFunc{f: f})
	served := make(chan struct{})
	go func() { defer close(served); _ = server.Serve(l) }()
	return l.Addr().String(), func() { server.Stop(); <-served }
}

func TestServerConnCloseUnblocksRecvAndDeliversWhatWasSent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	type recvResult struct {
		msg *membership.Message
		err error
	}
	conns := make(chan *serverConn, 1)
	recvd := make(chan recvResult, 1)
	addr, stop := servePeerService(t, func(stream clusterv1.PeerService_ExchangeServer) error {
		conn, err := newServerConn(stream)
		if err != nil {
			return err
		}
		if err := conn.Send(&membership.Message{Heartbeat: &membership.Heartbeat{ViewDigest: 42}}); err != nil {
			return err
		}
		conns <- conn
		msg, err := conn.Recv() // the client sends nothing: only Close can end this
		recvd <- recvResult{msg, err}
		return nil
	})
	defer stop()

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := clusterv1.NewPeerServiceClient(cc).Exchange(ctx)
	require.NoError(t, err)

	conn := <-conns
	closed := make(chan struct{})
	go func() { conn.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Fatal("Close blocked")
	}
	select {
	case r := <-recvd:
		require.Error(t, r.err, "Recv should fail once the stream is closed")
		require.Nil(t, r.msg)
	case <-time.After(2 * time.Second):
		t.Fatal("Recv still blocked after Close")
	}
	_, err = conn.Recv()
	require.ErrorIs(t, err, io.EOF, "Recv after Close")
	require.ErrorIs(t, conn.Send(&membership.Message{Heartbeat: &membership.Heartbeat{}}), io.EOF, "Send after Close")

	// What was sent before Close still arrives, then the stream ends.
	f, err := client.Recv()
	require.NoError(t, err)
	msg, err := decodeMessage(f.GetBody())
	require.NoError(t, err)
	require.Equal(t, uint64(42), msg.Heartbeat.ViewDigest)
	_, err = client.Recv()
	require.Equal(t, codes.Canceled, status.Code(err), "the stream should end after the message, got %v", err)
}

func TestServerConnRecvReadsOnTheCallersGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	got := make(chan *membership.Message, 1)
	addr, stop := servePeerService(t, func(stream clusterv1.PeerService_ExchangeServer) error {
		conn, err := newServerConn(stream)
		if err != nil {
			return err
		}
		defer conn.Close()
		msg, err := conn.Recv()
		if err != nil {
			return err
		}
		got <- msg
		_, err = conn.Recv() // the client's half-close
		if !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	})
	defer stop()

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := clusterv1.NewPeerServiceClient(cc).Exchange(ctx)
	require.NoError(t, err)
	body, err := encodeMessage(&membership.Message{Heartbeat: &membership.Heartbeat{ViewDigest: 7}})
	require.NoError(t, err)
	require.NoError(t, client.Send(&clusterv1.ExchangeRequest{Body: body}))
	require.NoError(t, client.CloseSend())
	_, err = client.Recv()
	require.ErrorIs(t, err, io.EOF, "the handler should end the stream cleanly after the half-close")
	require.Equal(t, uint64(7), (<-got).Heartbeat.ViewDigest)
}

func TestServerConnNeedsTheTapHandle(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	server := grpc.NewServer() // no tap handle: the stream's context cannot be cancelled
	errs := make(chan error, 1)
	clusterv1.RegisterPeerServiceServer(server, exchangeFunc{f: func(stream clusterv1.PeerService_ExchangeServer) error {
		_, err := newServerConn(stream)
		errs <- err
		return err
	}})
	served := make(chan struct{})
	go func() { defer close(served); _ = server.Serve(l) }()
	defer func() { server.Stop(); <-served }()

	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := clusterv1.NewPeerServiceClient(cc).Exchange(ctx)
	require.NoError(t, err)
	require.Error(t, <-errs)
	_, err = client.Recv()
	require.Error(t, err)
}
