package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"

	"github.com/meshnode/meshnode/membership"
)

// Defaults of the server options.
const (
	// DefaultMaxPeerMessageBytes bounds one peer message once the stream is authenticated:
	// enough for a view of tens of thousands of nodes. A message larger than a frame may be
	// travels as fragments, each under the receive limit, reassembled up to this size.
	DefaultMaxPeerMessageBytes = 4 << 20
	// DefaultMaxRecvMessageBytes bounds every gRPC message a node reads, before anything is
	// authenticated: an API, health or reflection request, a peer frame (the first ones
	// included). None of these needs more (an API request carries at most 4 KiB of
	// metadata, a peer frame at most a fragment), and an unauthenticated client can make
	// the node hold at most this much per stream it may open.
	DefaultMaxRecvMessageBytes = 64 << 10
	// MinRecvMessageBytes is the smallest receive limit: a peer fragment must fit.
	MinRecvMessageBytes = peerFragmentBytes + 1<<10
	// DefaultMaxPendingHandshakes caps inbound peer streams that have not authenticated yet:
	// enough for a few hundred nodes joining through one seed at once (the cap grows to twice
	// the nodes a node knows, so a larger cluster's joins fit too), few enough that a
	// flood of silent connections costs little (at most this many receive limits of memory,
	// 16 MiB at the defaults). A newcomer is never refused: it takes the place of the pending
	// handshake least likely to be a real peer (see WithMaxPendingHandshakes).
	DefaultMaxPendingHandshakes = 256
	// DefaultMaxPendingHandshakesPerSource caps the pending handshakes of one remote address.
	// By default it is the whole pool: nodes that share an address (behind a NAT, or many on
	// one host, as in tests and benchmarks) may all join one seed at once, and an address
	// flooding the pool is the one that loses handshakes when another address comes (see
	// WithMaxPendingHandshakes). Set it lower where every node has an address of its own.
	DefaultMaxPendingHandshakesPerSource = DefaultMaxPendingHandshakes

	// DefaultMaxConcurrentStreams is gRPC's MaxConcurrentStreams: the streams one HTTP/2
	// connection may have open at once (more are refused by HTTP/2 itself). A peer
	// connection carries one; an API client rarely needs more than a few.
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxIdleConnections caps the connections that have no stream open (including
	// those still in their TLS or HTTP/2 handshake): past it, the one idle longest is closed.
	// Each costs the node three goroutines and its buffers. The cap grows to twice the nodes
	// a node knows.
	DefaultMaxIdleConnections = 256
	// DefaultMaxConnectionIdle is gRPC's keepalive MaxConnectionIdle: a connection without a
	// stream for this long is closed gracefully (GOAWAY). Peer connections always have one.
	DefaultMaxConnectionIdle = 5 * time.Minute
	// DefaultMaxOpenCalls caps the calls in progress that no credential admits: health,
	// reflection, and the public API when no token is set (WatchEvents aside, which
	// DefaultMaxWatchers caps). More are refused at once with RESOURCE_EXHAUSTED.
	DefaultMaxOpenCalls = 256
	// DefaultOpenCallTimeout is the deadline of a unary call that no credential admits: its
	// request and its answer must be through by then.
	DefaultOpenCallTimeout = 10 * time.Second
	// DefaultOpenStreamTimeout is the deadline of a streaming call that no credential admits
	// (a reflection stream, a health Watch): gRPC clients re-open such streams at once.
	DefaultOpenStreamTimeout = 10 * time.Minute
	// DefaultMaxWatchers caps concurrent WatchEvents streams; more are refused with
	// RESOURCE_EXHAUSTED. Each may buffer DefaultWatchBuffer events.
	DefaultMaxWatchers = 256

	// DefaultGRPCReadBufferSize and DefaultGRPCWriteBufferSize size the buffers of every
	// HTTP/2 connection on the port and of every peer dial. A node holds one connection per
	// peer, carrying one stream of small messages (a heartbeat is about 30 bytes), so gRPC's
	// 32 KiB per connection and direction cost memory per peer for nothing; larger messages
	// (a Hello with a big view) simply take more than one read or write. The write buffer is
	// shared: a connection takes one from a pool for each write and gives it back once it is
	// flushed, so an idle connection holds none (gRPC's SharedWriteBuffer). gRPC pools the
	// read buffer of a plain TCP connection the same way by itself.
	DefaultGRPCReadBufferSize  = 4 << 10
	DefaultGRPCWriteBufferSize = 4 << 10
	// DefaultGRPCWindowSize is the static HTTP/2 flow-control window of every stream and
	// connection. A static window turns off gRPC's bandwidth-delay probing, which answers
	// every received data frame with a PING and its ACK: two extra packets per heartbeat.
	// 256 KiB still lets a maximal peer message through in a few round trips.
	DefaultGRPCWindowSize = 256 << 10
)

// options are the settings of Start beyond membership.Config.
type options struct {
	logger               *slog.Logger
	clock                membership.Clock
	randSeed             *uint64
	resolver             membership.Resolver
	metricsSinks         []membership.MetricsSink
	maxPeerMessageBytes  int
	maxRecvMessageBytes  int
	maxPendingHandshakes int
	maxPendingPerSource  int
	maxConcurrentStreams uint32
	maxIdleConnections   int
	keepalive            keepalive.ServerParameters
	keepalivePolicy      keepalive.EnforcementPolicy
	maxOpenCalls         int
	openCallTimeout      time.Duration
	openStreamTimeout    time.Duration
	maxWatchers          int
	// subscribers subscribe the handlers given as options before the node starts.
	subscribers     []func(*membership.Cluster)
	apiToken        string
	metricsAddr     string
	tls             *TLSFiles
	grpcReadBuffer  int
	grpcWriteBuffer int
	grpcWindow      int32
	bufferPool      mem.BufferPool // nil: the node makes its own (NewBufferPool)
	network         Network
}

// Option customises Start. Together with membership.Config, the options are everything an
// application sets on a node: the Config says what the node is and how it detects failures,
// the options what it runs with (a logger, handlers of its events, limits, TLS, metrics, a
// network, and for tests a clock and a random seed).
type Option func(*options)

// newOptions returns the defaults with opts applied.
func newOptions(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLogger sets the logger of the node (default slog.Default()).
func WithLogger(logger *slog.Logger) Option { return func(o *options) { o.logger = logger } }

// WithClock sets the clock of the membership engine: its timers and the times of its events
// (default: the system clock). Tests pass a fake one.
func WithClock(clock membership.Clock) Option { return func(o *options) { o.clock = clock } }

// WithRandSeed makes the jitter of heartbeats and redial backoffs reproducible (default: a
// random seed).
func WithRandSeed(seed uint64) Option { return func(o *options) { o.randSeed = &seed } }

// WithResolver sets the resolver of DNS seeds (default: one asking Config.DNSServer if set,
// else the system's resolver); *net.Resolver is one.
func WithResolver(r membership.Resolver) Option { return func(o *options) { o.resolver = r } }

// WithMetricsSink sends the engine's measurements (heartbeats sent and received, dials) to
// sink too, besides the node's Prometheus metrics. Its calls must be quick and must not call
// the node (see membership.MetricsSink).
func WithMetricsSink(sink membership.MetricsSink) Option {
	return func(o *options) { o.metricsSinks = append(o.metricsSinks, sink) }
}

// Network is how a node opens its connections: it listens on its port (peers, the public API,
// health) and on the metrics address through Listen, and dials its peers through DialContext,
// always with network "tcp". A net.ListenConfig and a net.Dialer together are one; the
// default is the operating system's TCP.
type Network interface {
	// Listen listens on address (host:port).
	Listen(ctx context.Context, network, address string) (net.Listener, error)
	// DialContext connects to address (host:port); it gives up when ctx ends.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// WithNetwork makes the node listen and dial through nw (see Network), which sees every
// connection of the node, inbound and outbound. Tests and benchmarks pass a faultnet.Network
// to crash or freeze a node from outside it.
func WithNetwork(nw Network) Option { return func(o *options) { o.network = nw } }

// WithMaxPeerMessageBytes bounds one peer message, reassembled from its fragments, on an
// authenticated stream (default DefaultMaxPeerMessageBytes).
func WithMaxPeerMessageBytes(n int) Option { return func(o *options) { o.maxPeerMessageBytes = n } }

// WithMaxRecvMessageBytes bounds every gRPC message the node reads, authenticated or not
// (gRPC's MaxRecvMsgSize, and the receive limit of its peer dials): larger ones are refused
// with RESOURCE_EXHAUSTED before they are read. Default DefaultMaxRecvMessageBytes, at least
// MinRecvMessageBytes.
func WithMaxRecvMessageBytes(n int) Option { return func(o *options) { o.maxRecvMessageBytes = n } }

// WithMaxPendingHandshakes caps concurrent unauthenticated peer streams (default
// DefaultMaxPendingHandshakes). A newcomer over this cap, or over the cap of its remote
// address (WithMaxPendingHandshakesPerSource), is not refused: it evicts a pending handshake,
// of its own address when that address is at its cap, else of the address holding the most;
// the one evicted is on a connection that already carried a peer stream if any, else one
// still waiting for its first frame, else the oldest. It ends with RESOURCE_EXHAUSTED. Every
// pending handshake also ends at the handshake deadline (membership.Config.HandshakeTimeout).
// Both caps are at least twice the number of nodes the node knows, whatever is set: every
// node of a cluster may dial one seed at once, and only authenticated peers make it know more.
func WithMaxPendingHandshakes(n int) Option { return func(o *options) { o.maxPendingHandshakes = n } }

// WithMaxPendingHandshakesPerSource caps the pending handshakes of one remote address
// (default DefaultMaxPendingHandshakesPerSource; see WithMaxPendingHandshakes).
func WithMaxPendingHandshakesPerSource(n int) Option {
	return func(o *options) { o.maxPendingPerSource = n }
}

// WithMaxConcurrentStreams sets gRPC's MaxConcurrentStreams, the streams one connection may
// have open at once (default DefaultMaxConcurrentStreams).
func WithMaxConcurrentStreams(n uint32) Option {
	return func(o *options) { o.maxConcurrentStreams = n }
}

// WithMaxIdleConnections caps the connections without an open stream; past it the one idle
// longest is closed (default DefaultMaxIdleConnections). The cap is at least twice the number
// of nodes the node knows, whatever is set (see WithMaxPendingHandshakes).
func WithMaxIdleConnections(n int) Option { return func(o *options) { o.maxIdleConnections = n } }

// WithKeepalive sets gRPC's keepalive parameters and enforcement policy of the port. The
// default is gRPC's, with MaxConnectionIdle set to DefaultMaxConnectionIdle. Keep
// MaxConnectionAgeGrace unset (infinite) if MaxConnectionAge is set: a peer stream lives as
// long as its connection, and a grace period would cut it (a false connection_closed).
func WithKeepalive(params keepalive.ServerParameters, policy keepalive.EnforcementPolicy) Option {
	return func(o *options) { o.keepalive, o.keepalivePolicy = params, policy }
}

// WithMaxOpenCalls caps the calls in progress that no credential admits (health,
// reflection, and the public API when no token is set, WatchEvents aside) and sets their
// deadlines: unary for a unary call, stream for a streaming one (0: none). Defaults
// DefaultMaxOpenCalls, DefaultOpenCallTimeout and DefaultOpenStreamTimeout.
func WithMaxOpenCalls(n int, unary, stream time.Duration) Option {
	return func(o *options) { o.maxOpenCalls, o.openCallTimeout, o.openStreamTimeout = n, unary, stream }
}

// WithMaxWatchers caps concurrent WatchEvents streams (default DefaultMaxWatchers).
func WithMaxWatchers(n int) Option { return func(o *options) { o.maxWatchers = n } }

// WithEventHandler subscribes handler before the node starts, so it sees every event from
// the first status change on, the node's first peers included. Each handler is called in
// order from a goroutine of its own (see Node.Subscribe).
func WithEventHandler(handler func(membership.Event)) Option {
	return subscribe(func(c *membership.Cluster) { c.Subscribe(handler) })
}

// WithNodeUpHandler calls handler for every node that becomes connected, from the node's
// first peers on (as WithEventHandler; see Node.OnNodeUp).
func WithNodeUpHandler(handler func(membership.NodeInfo)) Option {
	return subscribe(func(c *membership.Cluster) { c.OnNodeUp(handler) })
}

// WithNodeDownHandler calls handler for every node that goes down, with the reason, from the
// node's start on (as WithEventHandler; see Node.OnNodeDown).
func WithNodeDownHandler(handler func(membership.NodeInfo, membership.DownReason)) Option {
	return subscribe(func(c *membership.Cluster) { c.OnNodeDown(handler) })
}

// WithNodeUpdatedHandler calls handler for every connected node that changes its metadata or
// process count, from the node's start on (as WithEventHandler; see Node.OnNodeUpdated).
func WithNodeUpdatedHandler(handler func(membership.NodeInfo)) Option {
	return subscribe(func(c *membership.Cluster) { c.OnNodeUpdated(handler) })
}

// WithStatusChangeHandler calls handler for every change of the node's own status, the first
// (stopped to starting) included (as WithEventHandler; see Node.OnStatusChange).
func WithStatusChangeHandler(handler func(previous, current membership.ClusterStatus)) Option {
	return subscribe(func(c *membership.Cluster) { c.OnStatusChange(handler) })
}

// subscribe returns the option that runs sub on the engine before it starts.
func subscribe(sub func(*membership.Cluster)) Option {
	return func(o *options) { o.subscribers = append(o.subscribers, sub) }
}

// WithLocalEventHandler is WithEventHandler for a handler that needs the local node's id
// (known only once the node has bound its port): newHandler is called with it before the
// node starts, and the handler it returns sees every event from the first status change on.
// A logger of events uses it to say which node wrote each line.
func WithLocalEventHandler(newHandler func(local membership.NodeID) func(membership.Event)) Option {
	return subscribe(func(c *membership.Cluster) { c.Subscribe(newHandler(c.LocalID())) })
}

// WithAPIToken requires token as a bearer token on every MembershipService call (checked in
// constant time). Health and reflection stay open.
func WithAPIToken(token string) Option { return func(o *options) { o.apiToken = token } }

// WithTLS serves the port (peers and API) over TLS and dials peers with TLS; mutual when
// files.CAFile is set.
func WithTLS(files TLSFiles) Option { return func(o *options) { o.tls = &files } }

// WithMetricsAddr serves Prometheus metrics at http://addr/metrics (e.g. "127.0.0.1:9469"). The
// address is host:port (the host may be empty: every interface; port 0 picks a free one);
// Start refuses any other with a *membership.ConfigError before it binds anything.
func WithMetricsAddr(addr string) Option { return func(o *options) { o.metricsAddr = addr } }

// WithGRPCBufferSizes sets the read and write buffer sizes of every gRPC connection of the
// node: accepted (peers and API clients) and dialled (peers). Defaults
// DefaultGRPCReadBufferSize and DefaultGRPCWriteBufferSize; as in gRPC, zero or a negative
// size turns the buffer off.
func WithGRPCBufferSizes(read, write int) Option {
	return func(o *options) { o.grpcReadBuffer, o.grpcWriteBuffer = read, write }
}

// WithBufferPool gives the node the gRPC buffer pool its connections and peer codec take
// their buffers from (default: a pool of its own, NewBufferPool). Nodes that run in one
// process may share one, and then hold fewer buffers between them. A nil pool keeps the
// default.
func WithBufferPool(pool mem.BufferPool) Option { return func(o *options) { o.bufferPool = pool } }

// WithGRPCWindowSize sets the static HTTP/2 flow-control window of every stream and
// connection of the node (default DefaultGRPCWindowSize; gRPC raises sizes under 64 KiB to
// 64 KiB). Zero restores gRPC's dynamic windows, probed with BDP pings.
func WithGRPCWindowSize(size int32) Option { return func(o *options) { o.grpcWindow = size } }

// defaultOptions returns the options before any Option is applied.
func defaultOptions() options {
	return options{
		logger:               slog.Default(),
		maxPeerMessageBytes:  DefaultMaxPeerMessageBytes,
		maxRecvMessageBytes:  DefaultMaxRecvMessageBytes,
		maxPendingHandshakes: DefaultMaxPendingHandshakes,
		maxPendingPerSource:  DefaultMaxPendingHandshakesPerSource,
		maxConcurrentStreams: DefaultMaxConcurrentStreams,
		maxIdleConnections:   DefaultMaxIdleConnections,
		keepalive:            keepalive.ServerParameters{MaxConnectionIdle: DefaultMaxConnectionIdle},
		maxOpenCalls:         DefaultMaxOpenCalls,
		openCallTimeout:      DefaultOpenCallTimeout,
		openStreamTimeout:    DefaultOpenStreamTimeout,
		maxWatchers:          DefaultMaxWatchers,
		grpcReadBuffer:       DefaultGRPCReadBufferSize,
		grpcWriteBuffer:      DefaultGRPCWriteBufferSize,
		grpcWindow:           DefaultGRPCWindowSize,
	}
}

// validate refuses limits out of range, every problem at once, as membership.Config does.
func (o *options) validate() error {
	var problems []membership.FieldError
	bad := func(field, format string, args ...any) {
		problems = append(problems, membership.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	const maxLimit = 1 << 20
	for _, c := range []struct {
		field    string
		value    int
		min, max int
	}{
		{"MaxRecvMessageBytes", o.maxRecvMessageBytes, MinRecvMessageBytes, 1 << 30},
		{"MaxPeerMessageBytes", o.maxPeerMessageBytes, 1 << 10, 1 << 30},
		{"MaxPendingHandshakes", o.maxPendingHandshakes, 1, maxLimit},
		{"MaxPendingHandshakesPerSource", o.maxPendingPerSource, 1, maxLimit},
		{"MaxConcurrentStreams", int(o.maxConcurrentStreams), 1, maxLimit},
		{"MaxIdleConnections", o.maxIdleConnections, 1, maxLimit},
		{"MaxOpenCalls", o.maxOpenCalls, 1, maxLimit},
		{"MaxWatchers", o.maxWatchers, 1, maxLimit},
	} {
		if c.value < c.min || c.value > c.max {
			bad(c.field, "must be between %d and %d (got %d)", c.min, c.max, c.value)
		}
	}
	if o.openCallTimeout < 0 || o.openStreamTimeout < 0 {
		bad("OpenCallTimeout", "deadlines must not be negative (got %s and %s)", o.openCallTimeout, o.openStreamTimeout)
	}
	if o.keepalive.MaxConnectionIdle < 0 || o.keepalive.MaxConnectionAge < 0 || o.keepalive.MaxConnectionAgeGrace < 0 {
		bad("Keepalive", "durations must not be negative")
	}
	if len(problems) > 0 {
		return &membership.ConfigError{Problems: problems}
	}
	return nil
}

// engineOptions returns the options of the membership engine: the node's logger, clock,
// random seed and resolver, and its measurements sent to sink (the node's Prometheus metrics)
// and to the sinks of WithMetricsSink.
func (o *options) engineOptions(sink membership.MetricsSink) []membership.Option {
	if len(o.metricsSinks) > 0 {
		sink = metricsTee(append([]membership.MetricsSink{sink}, o.metricsSinks...))
	}
	opts := []membership.Option{membership.WithLogger(o.logger), membership.WithMetrics(sink)}
	if o.clock != nil {
		opts = append(opts, membership.WithClock(o.clock))
	}
	if o.randSeed != nil {
		opts = append(opts, membership.WithRandSeed(*o.randSeed))
	}
	if o.resolver != nil {
		opts = append(opts, membership.WithResolver(o.resolver))
	}
	return opts
}

// grpcDialTuning returns the dial options of the gRPC tuning.
func (o *options) grpcDialTuning() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithReadBufferSize(o.grpcReadBuffer),
		grpc.WithWriteBufferSize(o.grpcWriteBuffer),
		grpc.WithSharedWriteBuffer(true),
	}
	if o.grpcWindow > 0 {
		opts = append(opts, grpc.WithStaticStreamWindowSize(o.grpcWindow), grpc.WithStaticConnWindowSize(o.grpcWindow))
	}
	return opts
}

// grpcServerTuning returns the server options of the gRPC tuning.
func (o *options) grpcServerTuning() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ReadBufferSize(o.grpcReadBuffer),
		grpc.WriteBufferSize(o.grpcWriteBuffer),
		grpc.SharedWriteBuffer(true),
	}
	if o.grpcWindow > 0 {
		opts = append(opts, grpc.StaticStreamWindowSize(o.grpcWindow), grpc.StaticConnWindowSize(o.grpcWindow))
	}
	return opts
}
