package server

import (
	"log/slog"

	"google.golang.org/grpc"

	"github.com/meshnode/meshnode/membership"
)

// Defaults of the server options.
const (
	// DefaultMaxPeerMessageBytes bounds one peer frame: enough for a view of tens of
	// thousands of nodes, small enough that no peer can make a node buffer much.
	DefaultMaxPeerMessageBytes = 4 << 20
	// DefaultMaxPendingHandshakes caps inbound peer streams that have not authenticated yet:
	// enough for a few hundred nodes joining through one seed at once, few enough that a
	// flood of silent connections costs little until the handshake deadline drops them.
	DefaultMaxPendingHandshakes = 256

	// DefaultGRPCReadBufferSize and DefaultGRPCWriteBufferSize size the buffers of every
	// HTTP/2 connection on the port and of every peer dial. A node holds one connection per
	// peer, carrying one stream of small messages (a heartbeat is about 30 bytes), so gRPC's
	// 32 KiB per connection and direction cost memory per peer for nothing; larger messages
	// (a Hello with a big view) simply take more than one read or write.
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
	clusterOptions       []membership.Option
	maxPeerMessageBytes  int
	maxPendingHandshakes int
	handlers             []func(membership.Event)
	apiToken             string
	metricsAddr          string
	tls                  *TLSFiles
	grpcReadBuffer       int
	grpcWriteBuffer      int
	grpcWindow           int32
}

// Option customises Start.
type Option func(*options)

// newOptions returns the defaults with opts applied.
func newOptions(opts []Option) options {
	o := options{
		logger:               slog.Default(),
		maxPeerMessageBytes:  DefaultMaxPeerMessageBytes,
		maxPendingHandshakes: DefaultMaxPendingHandshakes,
		grpcReadBuffer:       DefaultGRPCReadBufferSize,
		grpcWriteBuffer:      DefaultGRPCWriteBufferSize,
		grpcWindow:           DefaultGRPCWindowSize,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLogger sets the logger of the node (default slog.Default()).
func WithLogger(logger *slog.Logger) Option { return func(o *options) { o.logger = logger } }

// WithClusterOptions passes options to the membership engine (a clock, a random seed, …).
func WithClusterOptions(opts ...membership.Option) Option {
	return func(o *options) { o.clusterOptions = append(o.clusterOptions, opts...) }
}

// WithMaxPeerMessageBytes bounds the size of one message on the port (default 4 MiB).
func WithMaxPeerMessageBytes(n int) Option { return func(o *options) { o.maxPeerMessageBytes = n } }

// WithMaxPendingHandshakes caps concurrent unauthenticated peer streams (default 64).
func WithMaxPendingHandshakes(n int) Option { return func(o *options) { o.maxPendingHandshakes = n } }

// WithEventHandler subscribes handler before the node starts, so it sees every event from
// the first status change on (see membership.Cluster.Subscribe).
func WithEventHandler(handler func(membership.Event)) Option {
	return func(o *options) { o.handlers = append(o.handlers, handler) }
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

// WithGRPCWindowSize sets the static HTTP/2 flow-control window of every stream and
// connection of the node (default DefaultGRPCWindowSize; gRPC raises sizes under 64 KiB to
// 64 KiB). Zero restores gRPC's dynamic windows, probed with BDP pings.
func WithGRPCWindowSize(size int32) Option { return func(o *options) { o.grpcWindow = size } }

// grpcDialTuning returns the dial options of the gRPC tuning.
func (o *options) grpcDialTuning() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithReadBufferSize(o.grpcReadBuffer),
		grpc.WithWriteBufferSize(o.grpcWriteBuffer),
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
	}
	if o.grpcWindow > 0 {
		opts = append(opts, grpc.StaticStreamWindowSize(o.grpcWindow), grpc.StaticConnWindowSize(o.grpcWindow))
	}
	return opts
}
