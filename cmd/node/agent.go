package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/quote"
	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// stopTimeout bounds the graceful leave on SIGINT/SIGTERM.
const stopTimeout = 10 * time.Second

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newAgentFlags()
	f.s.fs.SetOutput(stderr)
	if err := f.s.parse(args); err != nil {
		if errors.Is(err, errHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "node agent: %v\n", err)
		return exitConfig
	}
	cfg, extra, logger, err := f.setup(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "node agent: %v\n", err)
		return exitConfig
	}
	for _, s := range cfg.Secrets {
		if len(s) < 16 {
			logger.Warn("cluster secret is shorter than 16 bytes; use a long random secret")
			break
		}
	}

	opts := append([]server.Option{server.WithLogger(logger), server.WithEventHandler(eventLogger(logger))}, extra...)
	node, err := server.Start(ctx, cfg, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "node agent: %v\n", err)
		var ce *membership.ConfigError
		if errors.As(err, &ce) {
			return exitConfig
		}
		return exitError
	}
	logger.Info("node started", "id", node.LocalID().String(), "listen", node.Addr().String(), "status", node.Status().String())

	<-ctx.Done()
	logger.Info("signal received, leaving the cluster")
	stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := node.Stop(stopCtx); err != nil {
		logger.Error("stop failed", "err", err)
		return exitError
	}
	return exitOK
}

// eventLogger logs membership events one line each.
func eventLogger(logger *slog.Logger) func(membership.Event) {
	return func(e membership.Event) {
		switch e.Type {
		case membership.EventNodeUp:
			logger.Info("Node joined: "+e.Node.ID.String(), "incarnation", e.Node.Incarnation)
		case membership.EventNodeDown:
			logger.Info(fmt.Sprintf("Node left: %s (%s)", e.Node.ID, e.Reason))
		case membership.EventStatusChange:
			logger.Info(fmt.Sprintf("Status: %s -> %s", e.Previous, e.Current))
		}
	}
}

// newLogger builds the agent's logger.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %s: want debug, info, warn or error", quote.Input(level))
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %s: want text or json", quote.Input(format))
	}
}
