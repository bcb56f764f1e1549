package server

import (
	"log/slog"

	"github.com/meshnode/meshnode/membership"
)

// Defaults of the server options.
const (
	// DefaultMaxPeerMessageBytes bounds one peer frame: enough for a view of tens of
	// thousands of nodes, small enough that no peer can make a node buffer much.
	DefaultMaxPeerMessageBytes = 4 << 20
	// DefaultMaxPendingHandshakes caps inbound peer streams that have not authenticated yet.
	DefaultMaxPendingHandshakes = 64
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
}

// Option customises Start.
type Option func(*options)

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

// WithMetricsAddr serves Prometheus metrics at http://addr/metrics (e.g. "127.0.0.1:9469").
func WithMetricsAddr(addr string) Option { return func(o *options) { o.metricsAddr = addr } }
