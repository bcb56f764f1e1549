package pooledread_test

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/mem"

	"github.com/meshnode/meshnode/internal/pooledread"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingPool is a buffer pool that counts the buffers out of it.
type countingPool struct {
	mu  sync.Mutex
	out map[*[]byte]bool
}

func newCountingPool() *countingPool { return &countingPool{out: map[*[]byte]bool{}} }

func (p *countingPool) Get(n int) *[]byte {
	b := make([]byte, n)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out[&b] = true
	return &b
}

func (p *countingPool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.out, b)
}

func (p *countingPool) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

var _ mem.BufferPool = (*countingPool)(nil)

// tcpPair returns both ends of a loopback TCP connection, closed when the test ends.
func tcpPair(t *testing.T) (accepted, dialled net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { require.NoError(t, l.Close()) }()
	dialled, err = net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	accepted, err = l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = accepted.Close()
		_ = dialled.Close()
	})
	return accepted, dialled
}

func TestReadWaitsForDataWithoutABufferThenReadsIntoOneFromThePool(t *testing.T) {
	accepted, dialled := tcpPair(t)
	socket := pooledread.NewSocket(accepted)
	require.NotNil(t, socket, "a TCP connection has a socket")
	pool := newCountingPool()

	type result struct {
		buf *[]byte
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		buf, n, err := socket.Read(4096, pool)
		done <- result{buf, n, err}
	}()
	// Nothing sent yet: the read waits, and holds no buffer while it does.
	require.Never(t, func() bool { return len(done) > 0 }, 100*time.Millisecond, 10*time.Millisecond, "the read waits for data")
	require.Zero(t, pool.outstanding(), "a read that waits holds no buffer")

	_, err := dialled.Write([]byte("hello"))
	require.NoError(t, err)
	var r result
	require.Eventually(t, func() bool {
		select {
		case r = <-done:
			return true
		default:
			return false
		}
	}, 5*time.Second, 5*time.Millisecond, "the read returns once data is there")
	require.NoError(t, r.err)
	require.Equal(t, "hello", string((*r.buf)[:r.n]), "the data is in the buffer")
	require.Equal(t, 1, pool.outstanding(), "the buffer came from the pool and stays out until its reader puts it back")
	require.Len(t, *r.buf, 4096, "the buffer has the size asked")
}

func TestReadReturnsEOFOnceThePeerCloses(t *testing.T) {
	accepted, dialled := tcpPair(t)
	pool := newCountingPool()
	require.NoError(t, dialled.Close())
	buf, n, err := pooledread.NewSocket(accepted).Read(4096, pool)
	require.Nil(t, buf)
	require.Zero(t, n)
	require.ErrorIs(t, err, io.EOF, "the end of the stream is io.EOF")
	require.Zero(t, pool.outstanding(), "no buffer stays out")
}

func TestReadEndsAtTheReadDeadline(t *testing.T) {
	accepted, _ := tcpPair(t)
	pool := newCountingPool()
	require.NoError(t, accepted.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	buf, _, err := pooledread.NewSocket(accepted).Read(4096, pool)
	require.Nil(t, buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "the socket's read deadline ends the wait")
	require.Zero(t, pool.outstanding())
}

func TestReadIntoServesAConnectionWithoutASocket(t *testing.T) {
	a, b := net.Pipe()
	defer func() { _ = a.Close() }()
	require.Nil(t, pooledread.NewSocket(a), "a pipe has no socket")
	pool := newCountingPool()
	go func() {
		_, _ = b.Write([]byte("hi"))
		_ = b.Close()
	}()
	buf, n, err := pooledread.ReadInto(a, 4096, pool)
	require.NoError(t, err)
	require.Equal(t, "hi", string((*buf)[:n]))
	pool.Put(buf)
	buf, n, err = pooledread.ReadInto(a, 4096, pool)
	require.Nil(t, buf, "no buffer is returned with nothing read")
	require.Zero(t, n)
	require.True(t, errors.Is(err, io.EOF), "the end of the pipe is io.EOF: %v", err)
	require.Zero(t, pool.outstanding(), "no buffer stays out")
}

// onePool hands out one buffer again and again.
type onePool struct{ buf []byte }

func (p *onePool) Get(int) *[]byte { return &p.buf }
func (p *onePool) Put(*[]byte)     {}

func TestReadAllocatesNothingButWhatThePoolHandsOut(t *testing.T) {
	// gRPC reads every heartbeat of every stream this way: a read must not allocate.
	accepted, dialled := tcpPair(t)
	socket := pooledread.NewSocket(accepted)
	pool := &onePool{buf: make([]byte, 64)}
	msg := []byte("beat")
	allocs := testing.AllocsPerRun(100, func() {
		_, err := dialled.Write(msg)
		require.NoError(t, err)
		_, n, err := socket.Read(64, pool)
		require.NoError(t, err)
		require.Equal(t, len(msg), n)
	})
	require.Zero(t, allocs, "a read of a ready socket allocates nothing")
}
