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

// servePeerService serves f as PeerService.Exchange on loopback with the given server options
// and no interceptor; it returns the address and a function that stops serving.
func servePeerService(t *testing.T, f func(clusterv1.PeerService_ExchangeServer) error, opts ...grpc.ServerOption) (string, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return servePeerServiceOn(l, f, opts...)
}

// servePeerServiceOn is servePeerService on the listener l.
func servePeerServiceOn(l net.Listener, f func(clusterv1.PeerService_ExchangeServer) error, opts ...grpc.ServerOption) (string, func()) {
	server := grpc.NewServer(opts...)
	clusterv1.RegisterPeerServiceServer(server, exchangeFunc{f: f})
	served := make(chan struct{})
	go func() { defer close(served); _ = server.Serve(l) }()
	return l.Addr().String(), func() { server.Stop(); <-served }
}

// openExchange opens an Exchange stream to addr; the returned function closes its connection.
func openExchange(t *testing.T, addr string) (clusterv1.PeerService_ExchangeClient, func()) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	closeAll := func() { cancel(); _ = cc.Close() }
	client, err := clusterv1.NewPeerServiceClient(cc).Exchange(ctx)
	if err != nil {
		closeAll()
	}
	require.NoError(t, err)
	return client, closeAll
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
	}, grpc.InTapHandle(cancellableStreams))
	defer stop()

	client, closeClient := openExchange(t, addr)
	defer closeClient()

	var conn *serverConn
	select {
	case conn = <-conns:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never got its stream")
	}
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
	_, err := conn.Recv()
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
	}, grpc.InTapHandle(cancellableStreams))
	defer stop()

	client, closeClient := openExchange(t, addr)
	defer closeClient()
	body, err := encodeMessage(&membership.Message{Heartbeat: &membership.Heartbeat{ViewDigest: 7}})
	require.NoError(t, err)
	require.NoError(t, client.Send(&clusterv1.ExchangeRequest{Body: body}))
	require.NoError(t, client.CloseSend())
	_, err = client.Recv()
	require.ErrorIs(t, err, io.EOF, "the handler should end the stream cleanly after the half-close")
	select {
	case msg := <-got:
		require.Equal(t, uint64(7), msg.Heartbeat.ViewDigest)
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never received the message")
	}
}

func TestServerConnNeedsTheTapHandle(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	errs := make(chan error, 1)
	// No tap handle: the stream's context cannot be cancelled.
	addr, stop := servePeerService(t, func(stream clusterv1.PeerService_ExchangeServer) error {
		_, err := newServerConn(stream)
		errs <- err
		return err
	})
	defer stop()

	client, closeClient := openExchange(t, addr)
	defer closeClient()
	select {
	case err := <-errs:
		require.Error(t, err, "newServerConn should refuse a stream it cannot cancel")
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never ran")
	}
	_, err := client.Recv()
	require.Error(t, err)
}
