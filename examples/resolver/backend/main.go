// Command backend is one backend of the resolver example: it embeds a cluster node
// (server.Start) and serves the example's echo service beside it, announcing the service's
// port in the node's metadata (app_port), with role=api. Clients find it through
// meshnode:///, see ../caller.
//
//	go run ./examples/resolver/backend --name api1 --port 4370 --app-addr 127.0.0.1:8081
//	go run ./examples/resolver/backend --name api2 --port 4371 --app-addr 127.0.0.1:8082 --seeds 127.0.0.1:4370
//	go run ./examples/resolver/backend --name api3 --port 4372 --app-addr 127.0.0.1:8083 --seeds 127.0.0.1:4370
//
// On SIGINT or SIGTERM it leaves in the order that fails no call: first the membership
// (Stop), so every meshnode:/// resolver drops it from its balancer, then the application
// server drains (GracefulStop) the calls already under way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshnode/meshnode/examples/resolver/echo"
	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

func main() {
	name := flag.String("name", "", "node name (required)")
	host := flag.String("host", "127.0.0.1", "membership bind address")
	port := flag.Int("port", 0, "membership port (0: a free one)")
	seeds := flag.String("seeds", "", "comma-separated seeds (host:port) of a running node")
	appAddr := flag.String("app-addr", "127.0.0.1:0", "address of the application server (port 0: a free one)")
	drainDelay := flag.Duration("drain-delay", 200*time.Millisecond, "pause between leaving the membership and draining the application server")
	flag.Parse()
	if *name == "" {
		fmt.Fprintln(os.Stderr, "backend: --name is required")
		os.Exit(2)
	}
	cfg := membership.DefaultConfig()
	cfg.Name, cfg.BindHost, cfg.Port = *name, *host, *port
	cfg.HeartbeatInterval = time.Second
	if *seeds != "" {
		cfg.Seeds = strings.Split(*seeds, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := start(ctx, cfg, *appAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	slog.Info("backend started", "node", b.node.LocalID().String(), "app", b.appAddr)
	<-ctx.Done()
	slog.Info("leaving: membership first, then draining the application server")
	leaveCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.leave(leaveCtx, *drainDelay); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// backend is a node and the application server it announces.
type backend struct {
	name    string
	node    *server.Node
	app     *grpc.Server
	health  *health.Server
	appAddr string
	served  chan struct{} // closed when the application server returns
}

// Who answers the echo service with the backend's name.
func (b *backend) Who(context.Context, string) string { return b.name }

// start serves the application on appAddr, then starts the node with metadata role=api and
// app_port, so resolvers only ever see a node whose service already answers.
func start(ctx context.Context, cfg *membership.Config, appAddr string) (*backend, error) {
	l, err := net.Listen("tcp", appAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for the application: %w", err)
	}
	b := &backend{name: cfg.Name, app: grpc.NewServer(), health: health.NewServer(), appAddr: l.Addr().String(), served: make(chan struct{})}
	echo.Register(b.app, b)
	healthpb.RegisterHealthServer(b.app, b.health)
	go func() {
		defer close(b.served)
		if err := b.app.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			slog.Error("application server", "err", err)
		}
	}()
	cfg = cfg.Clone()
	cfg.Metadata = map[string]string{"role": "api", "app_port": strconv.Itoa(l.Addr().(*net.TCPAddr).Port)}
	b.node, err = server.Start(ctx, cfg)
	if err != nil {
		b.app.Stop()
		<-b.served
		return nil, fmt.Errorf("start node %s: %w", cfg.Name, err)
	}
	return b, nil
}

// leave takes the backend out without failing a call:
//
//  1. Stop the membership: every node reports the leave at once, and every meshnode:///
//     resolver takes the backend out of its balancer, so no new call is sent to it.
//     Health turns NOT_SERVING too, for clients that check it.
//  2. Wait drainDelay, a margin for resolvers that hear of the leave a little later.
//  3. Drain the application server: GracefulStop lets the calls under way finish; a call
//     that raced the leave is refused with GOAWAY before it starts, which gRPC retries on
//     another backend by itself.
//
// Stop tells every peer at once, then waits for the peers to close their streams, which a
// frozen peer never does before ctx ends; so the drain starts drainDelay after the leave
// began, not after Stop returns.
//
// Draining first would be the wrong order: the resolvers would still send calls to a server
// that refuses them until the node's heartbeats time out.
func (b *backend) leave(ctx context.Context, drainDelay time.Duration) error {
	b.health.Shutdown()
	leaving := make(chan struct{})
	var once sync.Once
	unsubscribe := b.node.OnStatusChange(func(_, current membership.ClusterStatus) {
		if current != membership.ClusterRunning {
			once.Do(func() { close(leaving) })
		}
	})
	defer unsubscribe()
	stopped := make(chan error, 1)
	go func() { stopped <- b.node.Stop(ctx) }()
	select {
	case <-leaving: // the leave is on its way to every peer
	case err := <-stopped:
		stopped <- err
	}
	select {
	case <-time.After(drainDelay):
	case <-ctx.Done():
	}
	drained := make(chan struct{})
	go func() { b.app.GracefulStop(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		b.app.Stop()
		<-drained
	}
	<-b.served
	if err := <-stopped; err != nil {
		return fmt.Errorf("leave the cluster: %w", err)
	}
	return nil
}
