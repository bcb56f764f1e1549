package faultnet_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"

	"github.com/meshnode/meshnode/faultnet"
	"github.com/meshnode/meshnode/internal/pooledread"
	"github.com/meshnode/meshnode/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A faultnet network is what server.WithNetwork takes.
var _ server.Network = (*faultnet.Network)(nil)

// pair is a connection between a node's network (local: accepted or dialled through it) and a
// plain peer socket.
type pair struct {
	local, peer net.Conn
}

// listen listens on loopback through nw and closes the listener when the test ends.
func listen(t *testing.T, nw *faultnet.Network) net.Listener {
	t.Helper()
	l, err := nw.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// accepted connects a plain peer to a listener of nw.
func accepted(t *testing.T, nw *faultnet.Network) pair {
	t.Helper()
	l := listen(t, nw)
	peer, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	local, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = local.Close(); _ = peer.Close() })
	return pair{local: local, peer: peer}
}

// dialled connects nw to a plain peer's listener.
func dialled(t *testing.T, nw *faultnet.Network) pair {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	local, err := nw.DialContext(context.Background(), "tcp", l.Addr().String())
	require.NoError(t, err)
	peer, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = local.Close(); _ = peer.Close() })
	return pair{local: local, peer: peer}
}

// both runs f on a connection the network accepted and on one it dialled.
func both(t *testing.T, f func(t *testing.T, nw *faultnet.Network, p pair)) {
	t.Run("accepted", func(t *testing.T) { nw := faultnet.New(); f(t, nw, accepted(t, nw)) })
	t.Run("dialled", func(t *testing.T) { nw := faultnet.New(); f(t, nw, dialled(t, nw)) })
}

// send writes msg on from and reads it on to.
func send(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	_, err := from.Write([]byte(msg))
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	require.NoError(t, to.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(to, buf)
	require.NoError(t, err)
	require.Equal(t, msg, string(buf))
}

// readFails reads on c within d and returns the error (nil if data came).
func readFails(c net.Conn, d time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 16))
	return err
}

// isTimeout reports whether err is a passed deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

func TestHealthyNetworkPassesEverythingThrough(t *testing.T) {
	both(t, func(t *testing.T, _ *faultnet.Network, p pair) {
		send(t, p.local, p.peer, "ping")
		send(t, p.peer, p.local, "pong")
		require.NoError(t, p.local.Close())
		require.ErrorIs(t, readFails(p.peer, 5*time.Second), io.EOF, "a close reaches the peer")
	})
}

func TestCrashClosesEveryConnectionAndRefusesNewOnes(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		send(t, p.local, p.peer, "ping")
		nw.Crash()
		require.Error(t, readFails(p.peer, 5*time.Second), "the peer sees the connection closed")
		_, err := p.local.Write([]byte("x"))
		require.Error(t, err, "the crashed side cannot write")
		_, err = p.local.Read(make([]byte, 1))
		require.Error(t, err, "nor read")

		_, err = nw.DialContext(context.Background(), "tcp", p.peer.LocalAddr().String())
		require.ErrorIs(t, err, faultnet.ErrCrashed)
		_, err = nw.Listen(context.Background(), "tcp", "127.0.0.1:0")
		require.ErrorIs(t, err, faultnet.ErrCrashed)
	})
}

func TestCrashedListenerRefusesConnectionsAndAcceptWaitsForClose(t *testing.T) {
	nw := faultnet.New()
	l, err := nw.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	nw.Crash()
	_, err = net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	require.Error(t, err, "nothing listens on a crashed node's port")
	select {
	case err := <-accepted:
		t.Fatalf("Accept returned before Close: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	require.NoError(t, l.Close())
	require.ErrorIs(t, <-accepted, net.ErrClosed)

	nw.Heal()
	again, err := nw.Listen(context.Background(), "tcp", l.Addr().String())
	require.NoError(t, err, "after Heal the node listens again, on the same port")
	require.NoError(t, again.Close())
}

func TestFreezeSilencesBothDirectionsUntilHeal(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		send(t, p.local, p.peer, "before")
		nw.Freeze()

		// The peer's message does not reach the frozen side; a read honours its deadline.
		_, err := p.peer.Write([]byte("in"))
		require.NoError(t, err)
		require.True(t, isTimeout(readFails(p.local, 100*time.Millisecond)), "a frozen read waits until its deadline")

		// What the frozen side writes waits.
		require.NoError(t, p.local.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
		_, err = p.local.Write([]byte("out"))
		require.True(t, isTimeout(err), "a frozen write waits until its deadline: %v", err)
		require.NoError(t, p.local.SetWriteDeadline(time.Time{}))
		require.True(t, isTimeout(readFails(p.peer, 100*time.Millisecond)), "the peer hears nothing")

		wrote := make(chan error, 1)
		go func() {
			_, err := p.local.Write([]byte("out"))
			wrote <- err
		}()
		nw.Heal()
		require.NoError(t, <-wrote)
		require.NoError(t, p.local.SetReadDeadline(time.Time{}))
		buf := make([]byte, 2)
		_, err = io.ReadFull(p.local, buf)
		require.NoError(t, err)
		require.Equal(t, "in", string(buf), "after Heal the held message is read")
		buf = make([]byte, 3)
		require.NoError(t, p.peer.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = io.ReadFull(p.peer, buf)
		require.NoError(t, err)
		require.Equal(t, "out", string(buf))
	})
}

func TestDataAlreadyReadIsHeldDuringAFreeze(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 16)
			n, err := p.local.Read(buf) // waits in the socket, before the freeze
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(buf[:n])
		}()
		time.Sleep(50 * time.Millisecond)
		nw.Freeze()
		_, err := p.peer.Write([]byte("late"))
		require.NoError(t, err)
		select {
		case s := <-got:
			t.Fatalf("a frozen reader got %q", s)
		case <-time.After(200 * time.Millisecond):
		}
		nw.Heal()
		require.Equal(t, "late", <-got)
	})
}

func TestCloseWhileFrozenReachesThePeerOnlyAfterHeal(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		reading := make(chan error, 1)
		go func() {
			_, err := p.local.Read(make([]byte, 1))
			reading <- err
		}()
		time.Sleep(50 * time.Millisecond)
		nw.Freeze()
		require.NoError(t, p.local.Close())
		require.ErrorIs(t, <-reading, net.ErrClosed, "the node's own pending read returns at once")
		require.True(t, isTimeout(readFails(p.peer, 200*time.Millisecond)), "a paused process closes nothing")
		nw.Heal()
		require.ErrorIs(t, readFails(p.peer, 5*time.Second), io.EOF, "the close goes out once healed")
	})
}

func TestFrozenDialWaitsForHealOrItsContext(t *testing.T) {
	nw := faultnet.New()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	nw.Freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = nw.DialContext(ctx, "tcp", l.Addr().String())
	require.ErrorIs(t, err, context.DeadlineExceeded)

	dialled := make(chan error, 1)
	go func() {
		c, err := nw.DialContext(context.Background(), "tcp", l.Addr().String())
		if err == nil {
			_ = c.Close()
		}
		dialled <- err
	}()
	time.Sleep(50 * time.Millisecond)
	nw.Heal()
	require.NoError(t, <-dialled)
}

func TestFrozenListenerHoldsNewConnectionsUntilHeal(t *testing.T) {
	nw := faultnet.New()
	l := listen(t, nw)
	nw.Freeze()
	peer, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err, "the kernel still completes the connect")
	defer peer.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	select {
	case <-accepted:
		t.Fatal("a frozen node accepted a connection")
	case <-time.After(100 * time.Millisecond):
	}
	nw.Heal()
	c := <-accepted
	require.NotNil(t, c)
	defer c.Close()
	send(t, peer, c, "hello")
}

func TestCrashEndsAFreeze(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		nw.Freeze()
		reading := make(chan error, 1)
		go func() {
			_, err := p.local.Read(make([]byte, 1))
			reading <- err
		}()
		nw.Crash()
		require.Error(t, <-reading, "a crash ends the frozen read")
		require.Error(t, readFails(p.peer, 5*time.Second), "and closes the connection on the wire")
		nw.Freeze() // a crashed network stays crashed
		_, err := nw.Listen(context.Background(), "tcp", "127.0.0.1:0")
		require.ErrorIs(t, err, faultnet.ErrCrashed)
	})
}

func TestDataHeldPastAReadDeadlineIsReadAfterHeal(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		read := make(chan error, 1)
		go func() {
			_ = p.local.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err := p.local.Read(make([]byte, 16)) // waits in the socket, before the freeze
			read <- err
		}()
		time.Sleep(50 * time.Millisecond)
		nw.Freeze()
		_, err := p.peer.Write([]byte("kept"))
		require.NoError(t, err)
		require.True(t, isTimeout(<-read), "the read's deadline passes while the data is held")
		nw.Heal()
		require.NoError(t, p.local.SetReadDeadline(time.Now().Add(5*time.Second)))
		buf := make([]byte, 4)
		_, err = io.ReadFull(p.local, buf)
		require.NoError(t, err)
		require.Equal(t, "kept", string(buf), "nothing is lost")
	})
}

// asReadyReader returns c as gRPC sees it, failing the test if it does not read on ready.
func asReadyReader(t *testing.T, c net.Conn) pooledread.Reader {
	t.Helper()
	r, ok := c.(pooledread.Reader)
	require.True(t, ok, "%T does not implement ReadOnReady", c)
	return r
}

// trackingPool is a buffer pool that knows which of its buffers are out.
type trackingPool struct {
	mu      sync.Mutex
	gets    int
	out     map[*[]byte]bool
	foreign int // buffers put back that it never gave
}

func newTrackingPool() *trackingPool { return &trackingPool{out: map[*[]byte]bool{}} }

func (p *trackingPool) Get(size int) *[]byte {
	b := make([]byte, size)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets++
	p.out[&b] = true
	return &b
}

func (p *trackingPool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.out[b] {
		p.foreign++
	}
	delete(p.out, b)
}

// state returns how many buffers were taken, how many are out, and how many foreign ones came
// back.
func (p *trackingPool) state() (gets, out, foreign int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets, len(p.out), p.foreign
}

// owns reports whether b is a buffer of the pool that is out.
func (p *trackingPool) owns(b *[]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out[b]
}

// readResult is what a ReadOnReady returned.
type readResult struct {
	buf *[]byte
	n   int
	err error
}

// data is the bytes a result holds.
func (r readResult) data() string {
	if r.buf == nil {
		return ""
	}
	return string((*r.buf)[:r.n])
}

// readOnReady calls ReadOnReady on c in a goroutine; the result comes on the channel.
func readOnReady(t *testing.T, c net.Conn, pool mem.BufferPool) <-chan readResult {
	r := asReadyReader(t, c)
	got := make(chan readResult, 1)
	go func() {
		buf, n, err := r.ReadOnReady(64, pool)
		got <- readResult{buf, n, err}
	}()
	return got
}

// result waits for a ReadOnReady's result, at most 5 seconds.
func result(t *testing.T, got <-chan readResult) readResult {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("ReadOnReady did not return")
		return readResult{}
	}
}

// waitingInSocket waits until a ReadOnReady on a TCP connection has looked at its socket,
// found nothing and given the buffer back: it then waits for the socket to be readable.
func waitingInSocket(t *testing.T, pool *trackingPool) {
	t.Helper()
	require.Eventually(t, func() bool {
		gets, out, _ := pool.state()
		return gets > 0 && out == 0
	}, 5*time.Second, time.Millisecond, "the read holds no buffer while nothing is there")
}

// stillWaiting checks that a ReadOnReady has not returned after a moment.
func stillWaiting(t *testing.T, got <-chan readResult) {
	t.Helper()
	select {
	case r := <-got:
		t.Fatalf("ReadOnReady returned %q, %v while frozen", r.data(), r.err)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestReadOnReadyReadsIntoAPoolBufferOnlyOnceDataIsThere(t *testing.T) {
	both(t, func(t *testing.T, _ *faultnet.Network, p pair) {
		require.NoError(t, p.local.SetReadDeadline(time.Now().Add(5*time.Second)))
		pool := newTrackingPool()
		got := readOnReady(t, p.local, pool)
		waitingInSocket(t, pool)
		_, err := p.peer.Write([]byte("hello"))
		require.NoError(t, err)
		r := result(t, got)
		require.NoError(t, r.err)
		require.Equal(t, "hello", r.data())
		require.True(t, pool.owns(r.buf), "the buffer comes from the pool")
		pool.Put(r.buf)
		_, out, foreign := pool.state()
		require.Zero(t, out)
		require.Zero(t, foreign)
	})
}

func TestReadOnReadyWithoutASocketReadsIntoAPoolBuffer(t *testing.T) {
	nw := faultnet.New()
	inner, peer := net.Pipe()
	t.Cleanup(func() { _ = peer.Close() })
	local, err := faultnet.Wrap(nw, inner)
	require.NoError(t, err)
	t.Cleanup(func() { _ = local.Close() })
	pool := newTrackingPool()
	got := readOnReady(t, local, pool)
	_, err = peer.Write([]byte("piped"))
	require.NoError(t, err)
	r := result(t, got)
	require.NoError(t, r.err)
	require.Equal(t, "piped", r.data())
	require.True(t, pool.owns(r.buf))
	pool.Put(r.buf)

	require.NoError(t, peer.Close())
	r = result(t, readOnReady(t, local, pool))
	require.ErrorIs(t, r.err, io.EOF)
	require.Nil(t, r.buf)
	_, out, foreign := pool.state()
	require.Zero(t, out, "a failed read gives its buffer back")
	require.Zero(t, foreign)
}

func TestReadOnReadyReturnsEOFOnceThePeerCloses(t *testing.T) {
	both(t, func(t *testing.T, _ *faultnet.Network, p pair) {
		require.NoError(t, p.local.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := p.peer.Write([]byte("bye"))
		require.NoError(t, err)
		require.NoError(t, p.peer.Close())
		pool := newTrackingPool()
		r := result(t, readOnReady(t, p.local, pool))
		require.NoError(t, r.err)
		require.Equal(t, "bye", r.data())
		pool.Put(r.buf)
		r = result(t, readOnReady(t, p.local, pool))
		require.Equal(t, readResult{err: io.EOF}, r, "the end of the stream is no buffer, 0 bytes and io.EOF")
		_, out, _ := pool.state()
		require.Zero(t, out)
	})
}

func TestReadOnReadyWaitsWhileFrozenWithoutABuffer(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		nw.Freeze()
		pool := newTrackingPool()
		got := readOnReady(t, p.local, pool)
		_, err := p.peer.Write([]byte("thaw"))
		require.NoError(t, err)
		stillWaiting(t, got)
		gets, _, _ := pool.state()
		require.Zero(t, gets, "a frozen read takes no buffer")
		nw.Heal()
		r := result(t, got)
		require.NoError(t, r.err)
		require.Equal(t, "thaw", r.data())
	})
}

func TestReadOnReadyHoldsDataReadWhenAFreezeBegins(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		pool := newTrackingPool()
		got := readOnReady(t, p.local, pool)
		waitingInSocket(t, pool)
		nw.Freeze()
		_, err := p.peer.Write([]byte("kept"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { _, out, _ := pool.state(); return out == 1 },
			5*time.Second, time.Millisecond, "the data is read into a buffer, which the freeze holds")
		stillWaiting(t, got)
		require.NoError(t, p.local.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		r := result(t, got)
		require.True(t, isTimeout(r.err), "the deadline passes while the data is held: %v", r.err)
		require.Nil(t, r.buf)
		_, out, _ := pool.state()
		require.Zero(t, out, "the held data is copied out of the pool buffer")

		nw.Heal()
		require.NoError(t, p.local.SetReadDeadline(time.Now().Add(5*time.Second)))
		r = result(t, readOnReady(t, p.local, pool))
		require.NoError(t, r.err)
		require.Equal(t, "kept", r.data(), "nothing is lost")
	})
}

func TestReadOnReadyFailsOnCrash(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		pool := newTrackingPool()
		got := readOnReady(t, p.local, pool)
		waitingInSocket(t, pool)
		nw.Crash()
		r := result(t, got)
		require.ErrorIs(t, r.err, net.ErrClosed, "the crash closed the socket under the read")
		require.Nil(t, r.buf)
		r = result(t, readOnReady(t, p.local, pool))
		require.ErrorIs(t, r.err, faultnet.ErrCrashed)
		_, out, _ := pool.state()
		require.Zero(t, out)
	})
}

func TestReadOnReadyReturnsWhenTheNodeClosesWhileFrozen(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		pool := newTrackingPool()
		got := readOnReady(t, p.local, pool)
		waitingInSocket(t, pool)
		nw.Freeze()
		require.NoError(t, p.local.Close())
		r := result(t, got)
		require.ErrorIs(t, r.err, net.ErrClosed)
		require.Nil(t, r.buf)
		nw.Heal()
	})
}

func TestReadOnReadyHonoursTheReadDeadline(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		pool := newTrackingPool()
		require.NoError(t, p.local.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		r := result(t, readOnReady(t, p.local, pool))
		require.True(t, isTimeout(r.err), "waiting in the socket: %v", r.err)
		require.Nil(t, r.buf)

		nw.Freeze()
		require.NoError(t, p.local.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		r = result(t, readOnReady(t, p.local, pool))
		require.True(t, isTimeout(r.err), "waiting for the freeze to end: %v", r.err)
		require.Nil(t, r.buf)
		_, out, _ := pool.state()
		require.Zero(t, out)
	})
}

// TestGRPCReadsOnReady fails if gRPC stops reading a faultnet connection through ReadOnReady:
// it then gives each connection a 4 KiB read buffer for its whole life.
func TestGRPCReadsOnReady(t *testing.T) {
	serverNet, clientNet := faultnet.New(), faultnet.New()
	l := listen(t, serverNet)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		require.NoError(t, <-served)
	})

	cc, err := grpc.NewClient("passthrough:///"+l.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return clientNet.DialContext(ctx, "tcp", addr)
		}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())

	require.Positive(t, faultnet.ReadsOnReady(serverNet), "the server reads with ReadOnReady")
	require.Positive(t, faultnet.ReadsOnReady(clientNet), "the client reads with ReadOnReady")
}
