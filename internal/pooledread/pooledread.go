// Package pooledread lets a wrapper of a TCP connection keep gRPC's pooled reads. gRPC's
// HTTP/2 transport gives a plain *net.TCPConn no read buffer of its own: it waits until the
// socket is readable, takes a buffer from a pool, reads, and puts it back once the frames in
// it are handled. A connection of any other type (a wrapper that counts or injects faults)
// gets a bufio.Reader of its own for its whole life (4 KiB at the node's settings), unless it
// has the method gRPC looks for:
//
//	ReadOnReady(bufSize int, pool mem.BufferPool) (buf *[]byte, n int, err error)
//
// A wrapper implements it with a Socket's Read.
package pooledread

import (
	"io"
	"net"
	"os"
	"syscall"

	"google.golang.org/grpc/mem"
)

// Reader is what gRPC's transport looks for on a connection to read into pooled buffers.
type Reader interface {
	// ReadOnReady waits until data is there, then reads up to bufSize bytes into a buffer
	// from pool. It returns the buffer only with n > 0, and nil, 0, io.EOF at the end of the
	// stream.
	ReadOnReady(bufSize int, pool mem.BufferPool) (buf *[]byte, n int, err error)
}

// Socket reads a connection's socket into pooled buffers. It serves one reader at a time (gRPC
// has one reader goroutine per connection): the read in progress is kept in it, so that the
// callback handed to the socket is made once, not at every read of every heartbeat.
type Socket struct {
	raw syscall.RawConn
	// The read in progress: what was asked, and what came of it.
	bufSize int
	pool    mem.BufferPool
	buf     *[]byte
	n       int
	err     error
	readFn  func(fd uintptr) bool
}

// NewSocket returns the socket under c, nil if c has none (Read then cannot serve it).
func NewSocket(c net.Conn) *Socket {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &Socket{raw: raw}
	s.readFn = s.readReady
	return s
}

// Read waits until the socket is readable, without a buffer, then reads up to bufSize bytes
// into a buffer from pool, as Reader's ReadOnReady. The socket's read deadline and its closing
// end the wait with the net package's errors.
func (s *Socket) Read(bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	s.bufSize, s.pool = bufSize, pool
	err := s.raw.Read(s.readFn)
	buf, n, rerr := s.buf, s.n, s.err
	s.pool, s.buf, s.err = nil, nil, nil
	switch {
	case err != nil: // a deadline, or the socket closed
		return nil, 0, err
	case rerr != nil:
		return nil, 0, os.NewSyscallError("read", rerr)
	case n == 0: // read(2) reports the peer's close as 0 bytes; a reader expects io.EOF
		return nil, 0, io.EOF
	}
	return buf, n, nil
}

// readReady reads what the non-blocking socket fd holds and says whether the read is over. On
// EAGAIN (nothing there) it gives the buffer back and the socket waits for readability.
func (s *Socket) readReady(fd uintptr) bool {
	s.buf = s.pool.Get(s.bufSize)
	for {
		s.n, s.err = syscall.Read(int(fd), *s.buf)
		if s.err != syscall.EINTR {
			break
		}
	}
	if s.n <= 0 { // EAGAIN, an error, or 0 for the end of the stream
		s.n = 0
		s.pool.Put(s.buf)
		s.buf = nil
	}
	return s.err != syscall.EAGAIN
}

// ReadInto is ReadOnReady for a connection without a socket: a buffer from pool and r's own
// Read. It returns the buffer only with n > 0.
func ReadInto(r io.Reader, bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	buf := pool.Get(bufSize)
	n, err := r.Read(*buf)
	if n == 0 {
		pool.Put(buf)
		return nil, 0, err
	}
	return buf, n, err
}
