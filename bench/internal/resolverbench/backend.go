// Package resolverbench measures how a gRPC client's traffic follows the cluster's backends
// through three name resolvers side by side: meshnode:///, a static list and grpc-go's
// dns:///. Backends are processes (a node and an echo server each), so a crash is a
// SIGKILL and a freeze a SIGSTOP of a real process.
package resolverbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/meshnode/meshnode/examples/resolver/echo"
	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// BackendArgs configure one backend process.
type BackendArgs struct {
	// Name is the node's name (and what the echo service answers).
	Name string
	// IP is the loopback address the node and the application bind, e.g. 127.0.0.11.
	IP string
	// AppPort is the application's port; 0 runs a node without application (the seed).
	AppPort int
	// Seed is the membership address of a running node ("" for the first).
	Seed string
	// Interval and Threshold are the heartbeat settings.
	Interval  time.Duration
	Threshold int
	// DrainDelay is the pause between leaving the membership and draining the application.
	DrainDelay time.Duration
}

// Ready is the line a backend prints on stdout once its node has joined.
type Ready struct {
	// Name is the node's name.
	Name string `json:"name"`
	// Membership is the node's membership address.
	Membership string `json:"membership"`
	// App is the application's address ("" for the seed).
	App string `json:"app"`
	// JoinedUnixNano is when server.Start returned: the node had joined.
	JoinedUnixNano int64 `json:"joined_unix_ns"`
}

// namedEcho answers the echo service with a name.
type namedEcho string

// Who returns the backend's name.
func (n namedEcho) Who(context.Context, string) string { return string(n) }

// RunBackend runs a backend until SIGTERM, then leaves in the documented order: membership
// first, then, after DrainDelay, GracefulStop of the application. It prints Ready on out
// once the node has joined.
func RunBackend(args BackendArgs, out io.Writer) error {
	var app *grpc.Server
	served := make(chan struct{})
	appAddr := ""
	metadata := map[string]string{"role": "seed"}
	if args.AppPort != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(args.IP, strconv.Itoa(args.AppPort)))
		if err != nil {
			return fmt.Errorf("backend %s: listen for the application: %w", args.Name, err)
		}
		appAddr = l.Addr().String()
		app = grpc.NewServer()
		echo.Register(app, namedEcho(args.Name))
		go func() {
			defer close(served)
			if err := app.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				fmt.Fprintln(os.Stderr, "backend: application server:", err)
			}
		}()
		metadata = map[string]string{"role": "api"}
	} else {
		close(served)
	}
	cfg := membership.DefaultConfig()
	cfg.Name, cfg.BindHost, cfg.Port = args.Name, args.IP, 0
	cfg.HeartbeatInterval, cfg.HeartbeatMissThreshold = args.Interval, args.Threshold
	cfg.Metadata = metadata
	if args.Seed != "" {
		cfg.Seeds = []string{args.Seed}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	node, err := server.Start(context.Background(), cfg, server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return fmt.Errorf("backend %s: start node: %w", args.Name, err)
	}
	joined := time.Now()
	if err := json.NewEncoder(out).Encode(Ready{Name: args.Name, Membership: node.LocalID().Address(), App: appAddr, JoinedUnixNano: joined.UnixNano()}); err != nil {
		return fmt.Errorf("backend %s: report ready: %w", args.Name, err)
	}
	<-sigs
	// The example's order (examples/resolver/backend): the leave goes out to every peer,
	// the drain starts DrainDelay later, whether or not Stop has returned (it waits for
	// every peer to close its stream, which a frozen one never does).
	leaving := make(chan struct{})
	var once sync.Once
	unsubscribe := node.OnStatusChange(func(_, current membership.ClusterStatus) {
		if current != membership.ClusterRunning {
			once.Do(func() { close(leaving) })
		}
	})
	defer unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- node.Stop(ctx) }()
	select {
	case <-leaving:
	case err := <-stopped:
		stopped <- err
	}
	if app != nil {
		time.Sleep(args.DrainDelay)
		app.GracefulStop()
	}
	<-served
	if err := <-stopped; err != nil {
		return fmt.Errorf("backend %s: leave: %w", args.Name, err)
	}
	return nil
}
