// Package faultnet injects faults into a node's network from outside the node, for tests and
// benchmarks: a node started with server.WithNetwork(nw) listens and dials through nw, so nw
// sees every connection of the node (its peers', inbound and outbound, and the public API's,
// which shares the port) and can crash or freeze all of them at once. The node itself knows
// nothing of it; the product has no fault hook.
//
// Crash closes every connection now and refuses new ones, as a crashed process would: peers
// see their streams closed. The node's engine still runs, so it sees the same and reports its
// peers down; a test then calls the node's Stop, whose leave reaches nobody.
//
// Freeze makes every connection go silent both ways, as a paused process or a partition
// would: reads, writes, accepts and dials wait, connections the node closes stay open on the
// wire, and peers see only silence (heartbeat_timeout). Unlike a paused process, the frozen
// node's timers keep running: it too hears nothing, so it reports its peers down
// (heartbeat_timeout) after the same detection time, and redials them once healed.
//
// Heal ends a freeze (what waited goes ahead; connections the node closed meanwhile close on
// the wire now) or a crash (the node may listen and dial again: Stop, Heal, then Start restarts
// it on the same port).
package faultnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/internal/pooledread"
	"google.golang.org/grpc/mem"
)

// ErrCrashed is the error of every operation on a crashed network.
var ErrCrashed = errors.New("faultnet: network crashed")

// state is the fault a Network is in.
type state int32

const (
	healthy state = iota
	frozen
	crashed
)

// Network is a node's network with faults on demand. It satisfies server.Network. Create it
// with New; all methods are safe for concurrent use.
type Network struct {
	listenConfig net.ListenConfig
	dialer       net.Dialer

	// current is the state, written under mu and read without it on every read and write.
	current atomic.Int32
	// readsOnReady counts ReadOnReady calls, only for a test to see that gRPC makes them.
	readsOnReady atomic.Int64

	mu sync.Mutex
	// changed is closed, and replaced, at every change of state: what waits looks again.
	changed   chan struct{}
	conns     map[*conn]struct{}
	listeners map[*listener]struct{}
	// closedWhileFrozen are the connections the node closed while frozen: open on the wire
	// until the freeze ends.
	closedWhileFrozen []*conn
}

// New returns a healthy network over the operating system's TCP.
func New() *Network {
	return &Network{
		changed:   make(chan struct{}),
		conns:     map[*conn]struct{}{},
		listeners: map[*listener]struct{}{},
	}
}

// setStateLocked changes the state and wakes whatever waits on it.
func (nw *Network) setStateLocked(s state) {
	nw.current.Store(int32(s))
	close(nw.changed)
	nw.changed = make(chan struct{})
}

// Crash closes every listener and connection now and refuses new ones until Heal: peers see
// their streams closed, as when a process crashes. The listeners close first, as the kernel
// closes a dead process's oldest sockets first: a peer that redials as soon as its stream
// closes is refused, rather than accepted by a listener about to close and then reset. A
// frozen network crashes too.
func (nw *Network) Crash() {
	nw.mu.Lock()
	conns, listeners := nw.conns, nw.listeners
	nw.conns, nw.listeners = map[*conn]struct{}{}, map[*listener]struct{}{}
	nw.closedWhileFrozen = nil
	nw.setStateLocked(crashed)
	nw.mu.Unlock()
	for l := range listeners {
		l.crash()
	}
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// Freeze makes every connection silent both ways until Heal: reads, writes, accepts and dials
// wait (a read or write honours its deadline), and what the node closes stays open on the
// wire. A crashed network stays crashed.
func (nw *Network) Freeze() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.stateLocked() == healthy {
		nw.setStateLocked(frozen)
	}
}

// Heal ends a freeze or a crash: connections flow again, those the node closed while frozen
// close now, and the node may listen and dial again.
func (nw *Network) Heal() {
	nw.mu.Lock()
	if nw.stateLocked() == healthy {
		nw.mu.Unlock()
		return
	}
	closing := nw.closedWhileFrozen
	nw.closedWhileFrozen = nil
	for _, c := range closing {
		delete(nw.conns, c)
	}
	nw.setStateLocked(healthy)
	nw.mu.Unlock()
	for _, c := range closing {
		_ = c.Conn.Close()
	}
}

// stateLocked returns the state; nw.mu is held.
func (nw *Network) stateLocked() state { return state(nw.current.Load()) }

// gate returns the current state and the channel closed at its next change.
func (nw *Network) gate() (state, <-chan struct{}) {
	if s := state(nw.current.Load()); s == healthy {
		return s, nil // the path of every read and write of a healthy network: no lock
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.stateLocked(), nw.changed
}

// Listen listens on address (network "tcp", "tcp4" or "tcp6") through the network; it fails
// with ErrCrashed while the network is crashed.
func (nw *Network) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	if s, _ := nw.gate(); s == crashed {
		return nil, fmt.Errorf("listen on %s: %w", address, ErrCrashed)
	}
	inner, err := nw.listenConfig.Listen(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("faultnet: %w", err)
	}
	l := &listener{Listener: inner, nw: nw, closed: make(chan struct{}), crashed: make(chan struct{})}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.stateLocked() == crashed {
		_ = inner.Close()
		return nil, fmt.Errorf("listen on %s: %w", address, ErrCrashed)
	}
	nw.listeners[l] = struct{}{}
	return l, nil
}

// DialContext connects to address through the network. While the network is frozen it waits
// (until Heal, or until ctx ends); while it is crashed it fails with ErrCrashed.
func (nw *Network) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	for {
		s, changed := nw.gate()
		if s == crashed {
			return nil, fmt.Errorf("dial %s: %w", address, ErrCrashed)
		}
		if s == healthy {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("dial %s: frozen: %w", address, ctx.Err())
		}
	}
	inner, err := nw.dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("faultnet: %w", err)
	}
	c, err := nw.track(inner)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	return c, nil
}

// track wraps inner, unless the network crashed meanwhile.
func (nw *Network) track(inner net.Conn) (*conn, error) {
	c := &conn{Conn: inner, nw: nw, closed: make(chan struct{})}
	c.socket = pooledread.NewSocket(inner) // nil if none: ReadOnReady then reads as Read does
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.stateLocked() == crashed {
		_ = inner.Close()
		return nil, ErrCrashed
	}
	nw.conns[c] = struct{}{}
	return c, nil
}

// release closes c's connection on the wire, now, or when the freeze ends.
func (nw *Network) release(c *conn) error {
	nw.mu.Lock()
	if _, ok := nw.conns[c]; !ok { // closed by a crash already
		nw.mu.Unlock()
		return nil
	}
	if nw.stateLocked() == frozen {
		nw.closedWhileFrozen = append(nw.closedWhileFrozen, c)
		nw.mu.Unlock()
		// Whatever waits in the socket returns now, without a byte on the wire.
		return c.Conn.SetDeadline(time.Unix(1, 0))
	}
	delete(nw.conns, c)
	nw.mu.Unlock()
	return c.Conn.Close()
}

// listener is a listener of the network.
type listener struct {
	net.Listener
	nw        *Network
	closeOnce sync.Once
	closed    chan struct{} // closed by Close
	crashOnce sync.Once
	crashed   chan struct{} // closed by a crash, which closed the inner listener
}

// crash closes the socket; Accept then waits for Close, as a crashed process accepts nothing
// and its server has nothing to report.
func (l *listener) crash() {
	l.crashOnce.Do(func() { close(l.crashed) })
	_ = l.Listener.Close()
}

// Accept returns the next connection. While the network is frozen a new connection waits
// (the peer's connect succeeds, as the kernel's does, but nothing answers).
func (l *listener) Accept() (net.Conn, error) {
	for {
		inner, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.crashed:
				<-l.closed
				return nil, fmt.Errorf("faultnet: accept: %w", net.ErrClosed)
			default:
				// As it is: a server retries a temporary error (too many open files) and
				// stops on any other.
				return nil, err
			}
		}
		c, err := l.nw.track(inner)
		if err != nil {
			continue // crashed meanwhile: the next Accept fails
		}
		if err := l.waitThawed(); err != nil {
			_ = c.Close()
			return nil, err
		}
		return c, nil
	}
}

// waitThawed waits while the network is frozen; it fails once the listener is closed.
func (l *listener) waitThawed() error {
	for {
		s, changed := l.nw.gate()
		if s != frozen {
			return nil
		}
		select {
		case <-changed:
		case <-l.closed:
			return fmt.Errorf("faultnet: accept: %w", net.ErrClosed)
		}
	}
}

// Close closes the listener.
func (l *listener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	l.nw.mu.Lock()
	delete(l.nw.listeners, l)
	l.nw.mu.Unlock()
	err := l.Listener.Close()
	select {
	case <-l.crashed:
		return nil // closed by the crash already
	default:
	}
	if err != nil {
		return fmt.Errorf("faultnet: %w", err)
	}
	return nil
}

// deadline is a read or write deadline, which a wait while frozen honours.
type deadline struct {
	at time.Time
	// changed is closed when at changes; made by the first wait that needs it.
	changed chan struct{}
}

// conn is a connection of the network.
type conn struct {
	net.Conn
	nw        *Network
	closeOnce sync.Once
	closed    chan struct{}

	mu          sync.Mutex
	read, write deadline
	// held is data read from the socket that a freeze kept from the reader; holding says
	// whether there is any, without the lock.
	held    []byte
	holding atomic.Bool

	// socket is the socket underneath (nil if none), which ReadOnReady waits on without a
	// buffer.
	socket *pooledread.Socket
}

// wait returns once the network lets op through: at once when healthy; while frozen, when
// the freeze ends, the deadline d passes or the connection is closed.
func (c *conn) wait(op string, d *deadline) error {
	for {
		s, changed := c.nw.gate()
		switch s {
		case healthy:
			return nil
		case crashed:
			return c.opError(op, ErrCrashed)
		}
		c.mu.Lock()
		if d.changed == nil {
			d.changed = make(chan struct{})
		}
		at, moved := d.at, d.changed
		c.mu.Unlock()
		if err := c.sleep(op, at, changed, moved); err != nil {
			return err
		}
	}
}

// sleep waits until changed or moved is closed (nil), or the connection is closed or the
// deadline at (zero: none) passes (an error).
func (c *conn) sleep(op string, at time.Time, changed, moved <-chan struct{}) error {
	var expired <-chan time.Time
	if !at.IsZero() {
		left := time.Until(at)
		if left <= 0 {
			return c.opError(op, os.ErrDeadlineExceeded)
		}
		timer := time.NewTimer(left)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-changed:
		return nil
	case <-moved:
		return nil
	case <-c.closed:
		return c.opError(op, net.ErrClosed)
	case <-expired:
		return c.opError(op, os.ErrDeadlineExceeded)
	}
}

// opError is err as the net package reports it: a *net.OpError, whose Timeout says whether a
// deadline passed.
func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read reads what the peer sent. While the network is frozen it waits, and data that was
// already on its way to the reader is held until the freeze ends.
func (c *conn) Read(b []byte) (int, error) {
	if err := c.wait("read", &c.read); err != nil {
		return 0, err
	}
	if c.holding.Load() {
		return c.takeHeld(b), nil
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		if werr := c.wait("read", &c.read); werr != nil {
			c.hold(b[:n])
			return 0, werr
		}
	}
	return n, c.ended("read", err)
}

// takeHeld moves held data into b, as much as fits, and returns how much.
func (c *conn) takeHeld(b []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := copy(b, c.held)
	c.held = c.held[n:]
	c.holding.Store(len(c.held) > 0)
	return n
}

// hold keeps b, read from the socket when a freeze began, for the reads after the freeze.
func (c *conn) hold(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = append(c.held, b...)
	c.holding.Store(true)
}

// ReadOnReady is Read the way gRPC's transport prefers it (internal/pooledread): wait until
// data is there without a buffer, then read into one of bufSize bytes from pool, which gRPC
// puts back once consumed. Without it gRPC would give each connection of this wrapper a read
// buffer of its own for its whole life, which a node on plain TCP does not pay (some 80 KB a
// node in a benchmark of many). Faults act as on Read. It returns the buffer only with n > 0,
// and nil, 0, io.EOF at the end of the stream.
func (c *conn) ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	c.nw.readsOnReady.Add(1)
	if err := c.wait("read", &c.read); err != nil {
		return nil, 0, err
	}
	if c.socket == nil || c.holding.Load() {
		// No socket to wait on, or data to serve now: Read does it, into a pool buffer.
		return pooledread.ReadInto(c, bufSize, pool)
	}
	buf, n, err := c.socket.Read(bufSize, pool)
	if err != nil { // a deadline, a close (a crash, or the node's own while frozen), the end
		var failed *os.SyscallError
		if errors.As(err, &failed) {
			err = c.opError("read", err)
		}
		return nil, 0, c.ended("read", err)
	}
	if werr := c.wait("read", &c.read); werr != nil {
		c.hold((*buf)[:n])
		pool.Put(buf)
		return nil, 0, werr
	}
	return buf, n, nil
}

// ended is err as op returns it: a net.ErrClosed once the node closed the connection (a
// freeze may leave the socket open but cut short), else err itself.
func (c *conn) ended(op string, err error) error {
	if err == nil {
		return nil
	}
	select {
	case <-c.closed:
		return c.opError(op, net.ErrClosed)
	default:
		return err
	}
}

// Write sends b to the peer; while the network is frozen it waits first.
func (c *conn) Write(b []byte) (int, error) {
	if err := c.wait("write", &c.write); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(b)
	return n, c.ended("write", err)
}

// Close closes the connection; while the network is frozen it stays open on the wire until
// the freeze ends (a paused process closes nothing), but every wait on it returns.
func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.nw.release(c)
	})
	if err != nil {
		return fmt.Errorf("faultnet: close: %w", err)
	}
	return nil
}

// SetDeadline sets the read and write deadlines.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline, of the socket and of a wait while frozen.
func (c *conn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.read, t, c.Conn.SetReadDeadline)
}

// SetWriteDeadline sets the write deadline, of the socket and of a wait while frozen.
func (c *conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(&c.write, t, c.Conn.SetWriteDeadline)
}

// setDeadline moves d to t and passes it on to the socket, unless the connection is closed
// (a freeze then holds the socket's deadline in the past).
func (c *conn) setDeadline(d *deadline, t time.Time, set func(time.Time) error) error {
	select {
	case <-c.closed:
		return c.opError("set deadline", net.ErrClosed)
	default:
	}
	c.mu.Lock()
	d.at = t
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
	c.mu.Unlock()
	if err := set(t); err != nil {
		return fmt.Errorf("faultnet: %w", err)
	}
	return nil
}
