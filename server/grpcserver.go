package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/patience"
	"github.com/meshnode/meshnode/membership"
)

// newGRPCServer builds the node's gRPC server: PeerService behind the HMAC interceptor, the
// public MembershipService behind recovery and logging, plus health and reflection, every
// stream admitted by the limiter first (conns: the connections of the listener it serves).
func (n *Node) newGRPCServer(conns *connRegistry) *grpc.Server {
	recover := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		n.logger.Error("panic in gRPC handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	logger := logging.LoggerFunc(func(ctx context.Context, level logging.Level, msg string, fields ...any) {
		n.logger.Log(ctx, slog.Level(level), msg, fields...)
	})
	logged := selector.MatchFunc(func(_ context.Context, meta interceptors.CallMeta) bool {
		return meta.Service == clusterv1.MembershipService_ServiceDesc.ServiceName
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(apiLogLevel)}
	watchLogOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(watchLogLevel)}
	token := apiTokenAuth{token: []byte(n.opts.apiToken)}
	limits := &limiter{
		token:             token,
		maxOpenCalls:      int64(n.opts.maxOpenCalls),
		openCallTimeout:   n.opts.openCallTimeout,
		openStreamTimeout: n.opts.openStreamTimeout,
		conns:             conns,
		report:            n.limits,
	}
	opts := []grpc.ServerOption{
		// Every message read, authenticated or not, is small: a peer message larger than a
		// frame travels in fragments (peer_fragment.go).
		grpc.MaxRecvMsgSize(n.opts.maxRecvMessageBytes),
		grpc.MaxConcurrentStreams(n.opts.maxConcurrentStreams),
		grpc.KeepaliveParams(n.opts.keepalive),
		grpc.KeepaliveEnforcementPolicy(n.opts.keepalivePolicy),
		// Peer frames skip protobuf's reflection; every other message is plain proto.
		grpc.ForceServerCodecV2(newFrameCodec(n.buffers)),
		experimental.BufferPool(n.buffers),
		// A connection that does not complete its HTTP/2 (and TLS) handshake in time is
		// dropped: after patience.Max times HandshakeTimeout (20 s by default), as long as a
		// dialler may wait for its handshake, since a loaded machine can take that long to
		// serve a real one; the cap on idle connections bounds what silent ones cost.
		grpc.ConnectionTimeout(n.cfg.HandshakeTimeout * patience.Max),
		// Admits each stream before anything of it is read (and gives each peer stream a
		// context its serverConn can cancel to unblock Recv).
		grpc.InTapHandle(limits.tap),
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(recover),
			selector.UnaryServerInterceptor(n.metrics.grpc.UnaryServerInterceptor(), logged),
			selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(logger, logOpts...), logged),
			token.unary(),
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(recover),
			// Per-message RPC metrics on the peer streams would cost more than the heartbeats
			// they count; the engine's own metrics cover them.
			selector.StreamServerInterceptor(n.metrics.grpc.StreamServerInterceptor(), logged),
			selector.StreamServerInterceptor(logging.StreamServerInterceptor(logger, watchLogOpts...), logged),
			token.stream(),
			n.auth.serverInterceptor(),
		),
	}
	opts = append(opts, n.opts.grpcServerTuning()...)
	if n.serverCreds != nil {
		opts = append(opts, grpc.Creds(n.serverCreds))
	}
	server := grpc.NewServer(opts...)
	clusterv1.RegisterPeerServiceServer(server, &peerService{cluster: n.cluster, bodies: n.bodies, maxMessage: n.opts.maxPeerMessageBytes, logger: n.logger})
	clusterv1.RegisterMembershipServiceServer(server, &apiService{
		cluster: n.cluster, watchBuffer: DefaultWatchBuffer, maxWatchers: int64(n.opts.maxWatchers), report: n.limits,
		logger:   n.logger,
		watchers: func(d int) { n.metrics.watchers.Add(float64(d)) },
	})
	healthpb.RegisterHealthServer(server, n.health)
	reflection.Register(server)
	limits.methods = methodTable(server)
	n.metrics.countAPI(apiServices{server})
	return server
}

// apiServices narrows the services of a server to the public API when the RPC metrics
// pre-register their series: only its calls are counted, and the series of every method of
// every other service, each with every status code, would cost each node memory for zeros.
type apiServices struct{ server *grpc.Server }

// GetServiceInfo returns the public API's entry of the server's services.
func (s apiServices) GetServiceInfo() map[string]grpc.ServiceInfo {
	name := clusterv1.MembershipService_ServiceDesc.ServiceName
	return map[string]grpc.ServiceInfo{name: s.server.GetServiceInfo()[name]}
}

// apiLogLevel logs successful API calls at debug level and failures at warn.
func apiLogLevel(code codes.Code) logging.Level {
	switch code {
	case codes.OK, codes.Canceled, codes.NotFound, codes.InvalidArgument:
		return logging.LevelDebug
	default:
		return logging.LevelWarn
	}
}

// watchLogLevel is apiLogLevel for the streams of the public API (WatchEvents): a watcher
// that ends on its own deadline, or because the node stopped, ended as watchers do, so the
// line is at debug level like a cancelled one. A watcher cut off or refused at a limit is
// worth a warning.
func watchLogLevel(code codes.Code) logging.Level {
	switch code {
	case codes.DeadlineExceeded, codes.Unavailable:
		return logging.LevelDebug
	default:
		return apiLogLevel(code)
	}
}

// ReadinessService is the grpc.health.v1 service name of readiness: SERVING only while the
// node runs and has joined a cluster (at least one peer connected), or runs with no seed
// configured (the first node by configuration); NOT_SERVING otherwise. The empty service name
// is liveness: SERVING while the process serves gRPC. Kubernetes' native gRPC probes tell
// them apart with `grpc: {port, service}`.
const ReadinessService = "meshnode.readiness"

// trackHealth keeps grpc.health.v1 in step with the node: the empty name (liveness) is
// SERVING while the process serves; the public API's name is SERVING while the node runs;
// ReadinessService follows ready.
func (n *Node) trackHealth() {
	n.health = health.NewServer()
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	n.health.SetServingStatus(clusterv1.MembershipService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	n.health.SetServingStatus(ReadinessService, healthpb.HealthCheckResponse_NOT_SERVING)
	n.Subscribe(func(membership.Event) {
		// Each event's handler reads the node's state as it is now: the last one sets
		// what the last change left.
		running := n.Status() == membership.ClusterRunning
		n.health.SetServingStatus(clusterv1.MembershipService_ServiceDesc.ServiceName, servingStatus(running))
		n.health.SetServingStatus(ReadinessService, servingStatus(running && n.ready()))
	})
}

// ready reports whether the node has joined a cluster (a peer connected) or is the first node
// by configuration (no seed).
func (n *Node) ready() bool {
	if len(n.cfg.Seeds) == 0 {
		return true
	}
	connected, err := n.ConnectedCount()
	return err == nil && connected > 0
}

// servingStatus is SERVING when ok, else NOT_SERVING.
func servingStatus(ok bool) healthpb.HealthCheckResponse_ServingStatus {
	if ok {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}
