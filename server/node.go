package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/mem"

	"github.com/meshnode/meshnode/membership"
)

// Node is a cluster node: the membership engine and its gRPC server, which serves the peer
// protocol and the public API on one port. Start one with Start. Its methods (node_api.go)
// are what an application needs: the local node, the nodes it knows, events, its own
// metadata, Stop and a restart; all are safe for concurrent use.
type Node struct {
	// cluster is the membership engine.
	cluster *membership.Cluster

	cfg    *membership.Config
	opts   options
	auth   *peerAuth
	port   int
	logger *slog.Logger
	health *health.Server
	// metrics are the node's Prometheus metrics.
	metrics *metrics
	// metricsServer serves /metrics when WithMetricsAddr is set.
	metricsServer *http.Server
	// serverCreds are the TLS credentials of the port, nil for plaintext.
	serverCreds credentials.TransportCredentials
	// bodies caches the encoded heartbeat shared by the node's peer streams.
	bodies *bodyCache
	// buffers is the gRPC buffer pool of the node's connections and peer codec.
	buffers mem.BufferPool
	// transport dials peers through the node's peer channel, closed when serving stops.
	transport *peerTransport
	// limits counts and logs what the limits on unauthenticated clients refuse or cut.
	limits *limitReporter

	mu       sync.Mutex
	server   *grpc.Server
	listener net.Listener
	serving  sync.WaitGroup
}

// Start validates cfg and the options (see Validate), binds the port, starts serving and joins
// the cluster through the seeds. It returns once each seed has answered or failed (see
// membership.Cluster.Start). Invalid configuration is refused before anything listens, with a
// *membership.ConfigError listing every invalid field.
func Start(ctx context.Context, cfg *membership.Config, opts ...Option) (*Node, error) {
	o := newOptions(opts)
	tlsSetup, err := validate(cfg, &o)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg.Clone(), opts: o, port: cfg.Port, logger: o.logger}
	listener, err := n.listen()
	if err != nil {
		return nil, err
	}
	n.port = listener.Addr().(*net.TCPAddr).Port
	id, err := membership.NewNodeID(cfg.Name, advertiseHost(cfg.AdvertiseHost, cfg.BindHost), n.port)
	if err != nil {
		_ = listener.Close()
		return nil, fmt.Errorf("local node id: %w", err)
	}
	logger := o.logger.With("node", id.String())
	n.logger = logger // every line of the node says which node wrote it
	n.auth = newPeerAuth(cfg.Secrets, cfg.HandshakeTimeout, o.maxPendingHandshakes, logger)
	n.auth.pending = newHandshakePool(o.maxPendingHandshakes, o.maxPendingPerSource)
	n.auth.pending.floor = n.admissionFloor
	dialCreds := insecure.NewCredentials()
	if tlsSetup != nil {
		n.serverCreds = credentials.NewTLS(tlsSetup.server)
		dialCreds = newVerifyLogged(credentials.NewTLS(tlsSetup.dial), logger)
	}
	n.bodies = &bodyCache{}
	n.buffers = o.bufferPool
	if n.buffers == nil {
		n.buffers = NewBufferPool()
	}
	dialOptions := append([]grpc.DialOption{
		grpc.WithTransportCredentials(dialCreds),
		grpc.WithStreamInterceptor(n.auth.clientInterceptor()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.maxRecvMessageBytes), grpc.ForceCodecV2(newFrameCodec(n.buffers))),
		experimental.WithBufferPool(n.buffers),
	}, o.grpcDialTuning()...)
	if nw := o.network; nw != nil {
		dialOptions = append(dialOptions, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return nw.DialContext(ctx, "tcp", addr)
		}))
	}
	n.transport = &peerTransport{bodies: n.bodies, channel: peerChannel{dialOptions: dialOptions}, maxMessage: o.maxPeerMessageBytes}
	n.metrics = newMetrics(func() *membership.Cluster { return n.cluster })
	n.auth.onFailure = func(reason string) { n.metrics.authFailures.WithLabelValues(reason).Inc() }
	n.limits = newLimitReporter(logger, func(limit string) { n.metrics.limitHits.WithLabelValues(limit).Inc() })
	n.auth.report = n.limits
	n.cluster, err = membership.New(id, cfg, n.transport, o.engineOptions(n.metrics)...)
	if err != nil {
		_ = listener.Close()
		return nil, err
	}
	n.trackHealth()
	n.Subscribe(n.metrics.observe)
	if o.metricsAddr != "" {
		if err := n.serveMetrics(o.metricsAddr); err != nil {
			_ = listener.Close()
			return nil, err
		}
	}
	for _, sub := range o.subscribers {
		sub(n.cluster)
	}
	n.serve(listener)
	if err := n.cluster.Start(ctx); err != nil {
		n.shutdown(ctx)
		return nil, err
	}
	return n, nil
}

// listen binds the configured (or, after a restart, the previously bound) port.
func (n *Node) listen() (net.Listener, error) {
	return n.listenOn(net.JoinHostPort(n.cfg.BindHost, strconv.Itoa(n.port)))
}

// listenOn listens on addr through the node's network.
func (n *Node) listenOn(addr string) (net.Listener, error) {
	var l net.Listener
	var err error
	if n.opts.network != nil {
		l, err = n.opts.network.Listen(context.Background(), "tcp", addr)
	} else {
		l, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// admissionFloor is a floor under the caps on pending handshakes and idle connections:
// twice the nodes this node knows. Every node of a cluster may dial one seed at once (all
// started together, or a partition healing), and a cap below the cluster's size would evict
// real peers, which then retry later and evict others. Only authenticated peers make a node
// know more nodes, so a flood of unauthenticated connections cannot raise it.
func (n *Node) admissionFloor() int {
	return 2 * n.cluster.KnownNodeCount() // set before the node serves, never changed
}

// serve starts the gRPC server on l, through a registry of its connections.
func (n *Node) serve(l net.Listener) {
	conns := newConnRegistry(l, n.opts.maxIdleConnections, n.limits)
	conns.floor = n.admissionFloor
	server := n.newGRPCServer(conns)
	n.mu.Lock()
	n.server, n.listener = server, l
	n.mu.Unlock()
	n.serving.Add(1)
	go func() {
		defer n.serving.Done()
		if err := server.Serve(conns); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.logger.Error("gRPC server stopped", "err", err)
		}
	}()
}

// Addr returns the address the node listens on.
func (n *Node) Addr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listener == nil {
		return nil
	}
	return n.listener.Addr()
}

// Start restarts a stopped node on the same port, as a new incarnation, and joins through the
// seeds again (as the package's Start does). Starting a running node is an error.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	running := n.server != nil
	n.mu.Unlock()
	if running {
		return fmt.Errorf("start %s: already running", n.cluster.LocalID())
	}
	l, err := n.listen()
	if err != nil {
		return err
	}
	if n.opts.metricsAddr != "" {
		if err := n.serveMetrics(n.opts.metricsAddr); err != nil {
			_ = l.Close()
			return err
		}
	}
	n.serve(l)
	if err := n.cluster.Start(ctx); err != nil {
		n.shutdown(ctx)
		return err
	}
	return nil
}

// Stop leaves the cluster gracefully: status stopping, a leave notice to every peer (each
// reports one node_down with reason graceful_shutdown), streams closed, status stopped; then it
// stops serving and releases the port. When ctx ends first, the remaining streams are cut.
// Stopping a stopped node does nothing and returns nil.
func (n *Node) Stop(ctx context.Context) error {
	err := n.cluster.Stop(ctx)
	n.shutdown(ctx)
	if errors.Is(err, membership.ErrNotRunning) {
		return nil // stopped already
	}
	return err
}

// shutdown stops the gRPC server (gracefully until ctx ends, then at once) and closes the
// connections the node dialled.
func (n *Node) shutdown(ctx context.Context) {
	defer n.transport.close()
	n.mu.Lock()
	server, metricsServer := n.server, n.metricsServer
	n.server, n.listener, n.metricsServer = nil, nil, nil
	n.mu.Unlock()
	if metricsServer != nil {
		_ = metricsServer.Close()
	}
	if server == nil {
		return
	}
	stopped := make(chan struct{})
	go func() { server.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		server.Stop()
		<-stopped
	}
	n.serving.Wait()
}

// serveMetrics serves /metrics on addr until the node stops for good.
func (n *Node) serveMetrics(addr string) error {
	l, err := n.listenOn(addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", n.metrics.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.mu.Lock()
	n.metricsServer = srv
	n.mu.Unlock()
	n.logger.Info("serving metrics", "addr", l.Addr().String())
	go func() { _ = srv.Serve(l) }()
	return nil
}

// MetricsHandler serves the node's Prometheus metrics, for applications that expose them on
// their own HTTP server.
func (n *Node) MetricsHandler() http.Handler { return n.metrics.handler() }
