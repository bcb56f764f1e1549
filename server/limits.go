package server

import (
	"container/list"
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/pooledread"
)

// What a client that has not authenticated can make a node hold is bounded before gRPC reads
// a byte of its messages: the listener sees each connection (connRegistry) and gRPC's tap
// handle sees each new stream's method and headers on its connection's reader (limiter.tap).
// The tap refuses, at once and with a clear status, a call to an unknown method, an API call
// without the token, and an unauthenticated call over the open-call cap; it gives the calls
// it admits a deadline. Peer handshakes have their own pool (handshakePool), watchers their
// own cap (apiService), and every message read is bounded by grpc.MaxRecvMsgSize.

// Names of the limits, as logged and as the label of meshnode_limit_hits_total.
const (
	limitAPIToken          = "api_token"
	limitOpenCalls         = "open_calls"
	limitPendingHandshakes = "pending_handshakes"
	limitIdleConnections   = "idle_connections"
	limitWatchers          = "watchers"
	limitUnknownMethod     = "unknown_method"
)

// callClass sorts the methods served on the port.
type callClass uint8

const (
	// classOpen: health and reflection, open to anyone by design.
	classOpen callClass = iota
	// classAPI: the public MembershipService, behind the API token when one is set.
	classAPI
	// classPeer: PeerService, behind the peer handshake.
	classPeer
)

// method is what the tap needs to know of a method.
type method struct {
	class     callClass
	streaming bool
}

// methodTable lists every method the server serves.
func methodTable(server *grpc.Server) map[string]method {
	out := map[string]method{}
	for name, info := range server.GetServiceInfo() {
		class := classOpen
		switch name {
		case clusterv1.PeerService_ServiceDesc.ServiceName:
			class = classPeer
		case clusterv1.MembershipService_ServiceDesc.ServiceName:
			class = classAPI
		}
		for _, m := range info.Methods {
			out["/"+name+"/"+m.Name] = method{class: class, streaming: m.IsClientStream || m.IsServerStream}
		}
	}
	return out
}

// limiter admits the streams of the node's port (its tap handle) and counts and logs what
// the limits refuse.
type limiter struct {
	// methods is filled once the services are registered, before the server serves.
	methods           map[string]method
	token             apiTokenAuth
	maxOpenCalls      int64
	openCallTimeout   time.Duration
	openStreamTimeout time.Duration
	openCalls         atomic.Int64
	conns             *connRegistry // nil: connections are not tracked
	report            *limitReporter
}

// tap is the server's tap handle (grpc.InTapHandle): it runs on the connection's reader
// before the stream exists, so what it refuses costs no goroutine and no read. It must not
// block.
func (l *limiter) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	m, ok := l.methods[info.FullMethodName]
	if !ok {
		l.report.hit(ctx, limitUnknownMethod)
		return nil, status.Errorf(codes.Unimplemented, "unknown method %s", quoteInput(info.FullMethodName))
	}
	conn := l.conns.lookup(ctx)
	var cleanup []func()
	switch {
	case m.class == classPeer:
		ctx = cancellablePeerStream(ctx, l.conns.peerStream(conn))
	case m.class == classAPI && l.token.enabled():
		if _, err := l.token.check(ctx); err != nil {
			l.report.hit(ctx, limitAPIToken)
			return nil, err
		}
	case m.class == classAPI && m.streaming:
		// WatchEvents without a token: the watchers cap bounds it.
	default:
		if l.openCalls.Add(1) > l.maxOpenCalls {
			l.openCalls.Add(-1)
			l.report.hit(ctx, limitOpenCalls)
			return nil, status.Errorf(codes.ResourceExhausted,
				"too many unauthenticated calls in progress (limit %d); retry later", l.maxOpenCalls)
		}
		cleanup = append(cleanup, func() { l.openCalls.Add(-1) })
		timeout := l.openCallTimeout
		if m.streaming {
			timeout = l.openStreamTimeout
		}
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			cleanup = append(cleanup, cancel)
		}
	}
	if conn != nil {
		l.conns.streamStarted(conn)
		cleanup = append(cleanup, func() { l.conns.streamEnded(conn) })
	}
	if len(cleanup) > 0 {
		context.AfterFunc(ctx, func() {
			for _, f := range cleanup {
				f()
			}
		})
	}
	return ctx, nil
}

// peerOrdinalKey is the context key of a peer stream's rank among the peer streams of its
// connection (1 for the first).
type peerOrdinalKey struct{}

// cancellablePeerStream gives a peer stream a context its serverConn can cancel (see
// cancellableStreams) and records its rank on its connection (0: unknown).
func cancellablePeerStream(ctx context.Context, ordinal int) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	ctx = context.WithValue(ctx, streamCancelKey{}, cancel)
	return context.WithValue(ctx, peerOrdinalKey{}, ordinal)
}

// reusedConnection says whether the peer stream of ctx came on a connection that carried an
// earlier peer stream.
func reusedConnection(ctx context.Context) bool {
	n, _ := ctx.Value(peerOrdinalKey{}).(int)
	return n > 1
}

// quoteInput quotes client input in an error at most in part: its first bytes and its length.
func quoteInput(s string) string {
	const keep = 64
	if len(s) <= keep {
		return `"` + s + `"`
	}
	return `"` + s[:keep] + `…" (` + strconv.Itoa(len(s)) + " bytes)"
}

// remoteHost returns the address of the client of ctx without its port ("" if unknown).
func remoteHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

// limitReporter counts every hit of a limit and logs it at most once per logEvery per limit.
type limitReporter struct {
	logger *slog.Logger
	count  func(limit string)

	mu   sync.Mutex
	last map[string]time.Time
}

func newLimitReporter(logger *slog.Logger, count func(string)) *limitReporter {
	return &limitReporter{logger: logger, count: count, last: map[string]time.Time{}}
}

// hit records that limit refused or cut a stream of the client of ctx.
func (r *limitReporter) hit(ctx context.Context, limit string) {
	remote := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	r.hitRemote(limit, remote)
}

// hitRemote records that limit refused or cut a stream or connection of remote.
func (r *limitReporter) hitRemote(limit, remote string) {
	if r == nil {
		return
	}
	r.count(limit)
	r.mu.Lock()
	now := time.Now()
	if last, seen := r.last[limit]; seen && now.Sub(last) < logEvery {
		r.mu.Unlock()
		return
	}
	r.last[limit] = now
	r.mu.Unlock()
	r.logger.Warn("refused or cut a stream or connection of a client not authenticated (logged once per 10s per limit)", "limit", limit, "remote", remote)
}

// connRegistry wraps the node's listener. It tracks every accepted connection and how many
// streams it has open, and whenever more than maxIdle have none it closes one: a connection
// that never opened a stream if there is one (idle since its accept, the TLS and HTTP/2
// handshakes included), oldest first, else the one idle longest since its last stream (a
// client between calls). Connections with a stream are bounded by the limits on streams.
type connRegistry struct {
	net.Listener
	maxIdle int
	floor   func() int // if set, a floor under maxIdle that grows with the cluster (admissionFloor)
	report  *limitReporter

	mu    sync.Mutex
	conns map[string]*trackedConn // by remote address
	fresh list.List               // of *trackedConn that never had a stream, oldest first
	idle  list.List               // of *trackedConn that had streams, idle longest first
}

// trackedConn is an accepted connection; its fields are guarded by its registry's lock.
type trackedConn struct {
	net.Conn
	reg         *connRegistry
	key         string
	streams     int
	peerStreams int
	idleElem    *list.Element // in fresh or idle; nil while the connection has a stream, or once forgotten
	idleList    *list.List
	forgotten   bool
	closeOnce   sync.Once
	// socket is the TCP socket under Conn for ReadOnReady (nil if Conn reads into pooled
	// buffers itself, or has no socket).
	socket *pooledread.Socket
}

// ReadOnReady keeps gRPC's pooled reads for a tracked connection (internal/pooledread):
// wrapped, it would otherwise hold a read buffer of its own for its whole life, 4 KiB for
// each peer or client connected, as a plain TCP connection does not.
func (c *trackedConn) ReadOnReady(bufSize int, pool mem.BufferPool) (*[]byte, int, error) {
	if r, ok := c.Conn.(pooledread.Reader); ok {
		return r.ReadOnReady(bufSize, pool)
	}
	if c.socket != nil {
		return c.socket.Read(bufSize, pool)
	}
	return pooledread.ReadInto(c.Conn, bufSize, pool)
}

func newConnRegistry(l net.Listener, maxIdle int, report *limitReporter) *connRegistry {
	return &connRegistry{Listener: l, maxIdle: max(maxIdle, 1), report: report, conns: map[string]*trackedConn{}}
}

// Accept accepts a connection and, past the idle cap, closes the one idle longest.
func (r *connRegistry) Accept() (net.Conn, error) {
	c, err := r.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, reg: r, key: c.RemoteAddr().String()}
	if _, pooled := c.(pooledread.Reader); !pooled {
		tc.socket = pooledread.NewSocket(c)
	}
	r.mu.Lock()
	r.conns[tc.key] = tc
	tc.idleElem, tc.idleList = r.fresh.PushBack(tc), &r.fresh
	victim := r.evictLocked()
	r.mu.Unlock()
	r.close(victim)
	return tc, nil
}

// evictLocked forgets and returns the connection to close when over the cap (else nil).
func (r *connRegistry) evictLocked() *trackedConn {
	limit := r.maxIdle
	if r.floor != nil {
		limit = max(limit, r.floor())
	}
	if r.fresh.Len()+r.idle.Len() <= limit {
		return nil
	}
	from := &r.fresh
	if from.Len() == 0 {
		from = &r.idle
	}
	victim := from.Front().Value.(*trackedConn)
	r.forgetLocked(victim)
	return victim
}

// close closes an evicted connection.
func (r *connRegistry) close(victim *trackedConn) {
	if victim == nil {
		return
	}
	r.report.hitRemote(limitIdleConnections, victim.key)
	_ = victim.Close()
}

// forgetLocked drops c from the registry.
func (r *connRegistry) forgetLocked(c *trackedConn) {
	if c.forgotten {
		return
	}
	c.forgotten = true
	if r.conns[c.key] == c {
		delete(r.conns, c.key)
	}
	r.unidleLocked(c)
}

// unidleLocked takes c out of its idle list.
func (r *connRegistry) unidleLocked(c *trackedConn) {
	if c.idleElem != nil {
		c.idleList.Remove(c.idleElem)
		c.idleElem, c.idleList = nil, nil
	}
}

// lookup returns the connection of the stream of ctx (nil if untracked).
func (r *connRegistry) lookup(ctx context.Context) *trackedConn {
	if r == nil {
		return nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns[p.Addr.String()]
}

// peerStream counts a peer stream on c and returns its rank there (0 if c is nil).
func (r *connRegistry) peerStream(c *trackedConn) int {
	if c == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c.peerStreams++
	return c.peerStreams
}

// streamStarted counts a stream on c: it is not idle any more.
func (r *connRegistry) streamStarted(c *trackedConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.streams++
	r.unidleLocked(c)
}

// streamEnded counts the end of a stream on c: with none left it is idle again.
func (r *connRegistry) streamEnded(c *trackedConn) {
	r.mu.Lock()
	c.streams--
	var victim *trackedConn
	if c.streams == 0 && !c.forgotten {
		c.idleElem, c.idleList = r.idle.PushBack(c), &r.idle
		victim = r.evictLocked()
	}
	r.mu.Unlock()
	r.close(victim)
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.reg.mu.Lock()
		c.reg.forgetLocked(c)
		c.reg.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}
