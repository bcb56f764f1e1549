package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/internal/quote"
	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// stopTimeout bounds the graceful leave on SIGINT/SIGTERM.
const stopTimeout = 10 * time.Second

// newAgentCommand wires `node agent`.
func newAgentCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a cluster node until SIGINT or SIGTERM, then leave gracefully",
		Long: `agent runs a cluster node: it listens on --host:--port, joins the cluster through its
--seeds, serves the public API there, and logs every node that joins or leaves. On SIGINT or
SIGTERM it tells its peers it leaves, closes its streams and exits 0.

Invalid configuration is refused before anything listens, with one message listing every
invalid field (exit 2).`,
		Example: `  # The first node of a cluster, on every interface, port 4369
  node agent --name alpha

  # A node that joins through two seeds, with a shared secret and JSON logs
  CLUSTER_SECRET=$(cat /etc/meshnode/secret) node agent --name beta --port 4370 \
    --seeds 10.0.0.1:4369,gamma@10.0.0.2:4369 --log-format json

  # Everything from the environment
  NODE_NAME=gamma CLUSTER_PORT=4371 CLUSTER_SEEDS=127.0.0.1:4369 node agent`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().SortFlags = false
	f := newAgentFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f.s.applyEnv()
		return runAgent(cmd.Context(), f, a.stderr)
	}
	return cmd
}

// runAgent runs a node with the options f until ctx ends, then stops it gracefully.
func runAgent(ctx context.Context, f *agentFlags, stderr io.Writer) error {
	cfg, extra, logger, err := f.setup(stderr)
	if err != nil {
		return configError(err)
	}

	// Events reach the logger from a goroutine of their own, after Stop has returned: the
	// agent waits until the logger has written the last one (the status stopped) before it
	// exits, so the log always ends with it.
	logged := make(chan struct{})
	loggedStop := sync.OnceFunc(func() { close(logged) })
	events := func(local membership.NodeID) func(membership.Event) {
		log := eventLogger(logger.With("node", local.String()))
		return func(e membership.Event) {
			log(e)
			if e.Type == membership.EventStatusChange && e.Current == membership.ClusterStopped {
				loggedStop()
			}
		}
	}
	opts := append([]server.Option{server.WithLogger(logger), server.WithLocalEventHandler(events)}, extra...)
	node, err := server.Start(ctx, cfg, opts...)
	if err != nil {
		var ce *membership.ConfigError
		if errors.As(err, &ce) {
			return configError(f.s.relabel(err))
		}
		return failure(err)
	}
	logger = logger.With("node", node.LocalID().String())
	logger.Info("node started", "id", node.LocalID().String(), "listen", node.Addr().String(), "status", node.Status().String())
	for _, s := range cfg.Secrets {
		if len(s) < 16 {
			logger.Warn("cluster secret is shorter than 16 bytes; use a long random secret")
			break
		}
	}

	<-ctx.Done()
	logger.Info("signal received, leaving the cluster")
	stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := node.Stop(stopCtx); err != nil {
		logger.Error("stop failed", "err", err)
		return failure(fmt.Errorf("stop: %w", err))
	}
	select {
	case <-logged:
	case <-stopCtx.Done():
	}
	return nil
}

// eventLogger logs membership events one line each; the node an event is about is the
// field peer, a down's reason the field reason, so that JSON logs can be filtered on them.
func eventLogger(logger *slog.Logger) func(membership.Event) {
	return func(e membership.Event) {
		peer := e.Node.ID.String()
		switch e.Type {
		case membership.EventNodeUp:
			logger.Info("Node joined: "+peer, "peer", peer, "incarnation", strconv.FormatUint(e.Node.Incarnation, 10))
		case membership.EventNodeDown:
			logger.Info(fmt.Sprintf("Node left: %s (%s)", peer, e.Reason), "peer", peer, "reason", e.Reason.String(), "incarnation", strconv.FormatUint(e.Node.Incarnation, 10))
		case membership.EventNodeUpdated:
			logger.Info("Node updated: "+peer, "peer", peer, "metadata", formatMetadata(e.Node.Metadata), "process_count", e.Node.ProcessCount)
		case membership.EventStatusChange:
			logger.Info(fmt.Sprintf("Status: %s -> %s", e.Previous, e.Current), "previous", e.Previous.String(), "current", e.Current.String())
		}
	}
}

// newLogger builds the agent's logger, or returns a *membership.ConfigError naming every
// invalid log setting.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var bad problems
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		bad.add("LogLevel", "%s is not a level: want debug, info, warn or error", quote.Input(level))
	}
	if format != "text" && format != "json" {
		bad.add("LogFormat", "%s is not a format: want text or json", quote.Input(format))
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
