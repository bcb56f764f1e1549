package harness

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"

	"github.com/meshnode/meshnode/faultnet"
	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// ours runs meshnode nodes: real gRPC on 127.0.0.1.
type ours struct {
	p  Profile
	tr Sink
	// buffers is the gRPC buffer pool the nodes of this process share, as nodes that run in
	// one process may (server.WithBufferPool); nil with BENCH_NODE_POOLS=1 (diagnostics),
	// where each node keeps a pool of its own.
	buffers mem.BufferPool
}

func newOurs(p Profile, tr Sink) *ours {
	o := &ours{p: p, tr: tr}
	if os.Getenv("BENCH_NODE_POOLS") != "1" {
		o.buffers = server.NewBufferPool()
	}
	return o
}

func (o *ours) Name() string { return "meshnode" }

func (o *ours) config(name, seed string) *membership.Config {
	cfg := membership.DefaultConfig()
	cfg.Name = name
	cfg.BindHost = "127.0.0.1"
	cfg.Port = 0
	cfg.HeartbeatInterval = o.p.Interval
	cfg.HeartbeatMissThreshold = o.p.Threshold
	if seed != "" {
		cfg.Seeds = strings.Split(seed, ",")
	}
	if d, err := time.ParseDuration(os.Getenv("BENCH_HANDSHAKE_TIMEOUT")); err == nil {
		// Diagnostics only: the dial and handshake timeouts.
		cfg.DialTimeout, cfg.HandshakeTimeout = d, d
	}
	if n, err := strconv.Atoi(os.Getenv("BENCH_MONITORS")); err == nil && n >= 0 {
		// Diagnostics only: K, the monitors of each node (0: a full mesh at any size).
		cfg.Monitors = n
	}
	if n, err := strconv.Atoi(os.Getenv("BENCH_MISS_THRESHOLD")); err == nil && n > 0 {
		// Diagnostics only: heartbeats missed before a silence counts.
		cfg.HeartbeatMissThreshold = n
	}
	return cfg
}

func (o *ours) Describe() map[string]any {
	cfg := o.config("x", "")
	return map[string]any{
		"HeartbeatInterval":      cfg.HeartbeatInterval.String(),
		"HeartbeatMissThreshold": cfg.HeartbeatMissThreshold,
		"Monitors":               cfg.Monitors,
		"DialTimeout":            cfg.DialTimeout.String(),
		"HandshakeTimeout":       cfg.HandshakeTimeout.String(),
		"ReconnectBaseDelay":     cfg.ReconnectBaseDelay.String(),
		"ReconnectMaxDelay":      cfg.ReconnectMaxDelay.String(),
		"transport":              o.transport(),
		"BufferPool":             o.bufferPool(),
	}
}

func (o *ours) bufferPool() string {
	if o.buffers == nil {
		return "one per node"
	}
	return "one per process, shared by its nodes"
}

func (o *ours) transport() string {
	if GRPCDefaults() {
		return "gRPC with gRPC's own defaults (BENCH_GRPC=defaults: 32 KiB buffers, dynamic BDP windows), plaintext, no secret"
	}
	return fmt.Sprintf("gRPC with the node's defaults (buffers %d/%d B, static window %d B), plaintext, no secret",
		server.DefaultGRPCReadBufferSize, server.DefaultGRPCWriteBufferSize, server.DefaultGRPCWindowSize)
}

// GRPCDefaults reports whether BENCH_GRPC=defaults asks for gRPC's own buffer and window
// defaults instead of the node's tuned ones (to measure what the tuning changes).
func GRPCDefaults() bool { return os.Getenv("BENCH_GRPC") == "defaults" }

func (o *ours) Start(ctx context.Context, name, seed string) (Node, error) {
	tr := o.tr
	handler := func(e membership.Event) {
		switch e.Type {
		case membership.EventNodeUp:
			tr.Up(name, e.Node.ID.Name(), e.Time)
		case membership.EventNodeDown:
			tr.Down(name, e.Node.ID.Name(), e.Reason.String(), e.Time)
		}
	}
	// Faults come from outside the node, through its network: a crash closes every
	// connection, a freeze silences them all.
	nw := faultnet.New()
	logger, late := nodeLogger(name)
	var counter *nodeCounter
	opts := []server.Option{
		server.WithLogger(logger),
		server.WithEventHandler(handler),
		server.WithNetwork(nw),
		server.WithBufferPool(o.buffers),
	}
	if os.Getenv("BENCH_DIAG") != "" {
		// Diagnostics only: count dials and heartbeats, the node's and the process's.
		counter = &nodeCounter{}
		opts = append(opts, server.WithMetricsSink(counter))
	}
	if n, err := strconv.Atoi(os.Getenv("BENCH_ADMISSION")); err == nil && n > 0 {
		// Diagnostics only: room for n unauthenticated connections and handshakes.
		opts = append(opts, server.WithMaxPendingHandshakes(n), server.WithMaxIdleConnections(n))
	}
	if GRPCDefaults() {
		opts = append(opts, server.WithGRPCBufferSizes(32<<10, 32<<10), server.WithGRPCWindowSize(0))
	}
	var n *server.Node
	var err error
	if os.Getenv("BENCH_DIAG") != "" {
		// Diagnostics: the node's goroutines carry its name, in CPU profiles and goroutine
		// dumps (each goroutine it starts inherits the label).
		pprof.Do(ctx, pprof.Labels("node", name), func(ctx context.Context) {
			n, err = server.Start(ctx, o.config(name, seed), opts...)
		})
	} else {
		n, err = server.Start(ctx, o.config(name, seed), opts...)
	}
	if err != nil {
		return nil, err
	}
	return &ourNode{name: name, n: n, net: nw, addr: n.Addr().(*net.TCPAddr).String(), late: late, counter: counter}, nil
}

// Traffic reads the kernel counters of every TCP socket of the process.
func (o *ours) Traffic() Traffic { return ProcessTCPTraffic() }

type ourNode struct {
	name string
	addr string
	n    *server.Node
	net  *faultnet.Network
	// Diagnostics (BENCH_DIAG=1): a log turned on by Diag, and the node's counts.
	late    *lateLog
	counter *nodeCounter
}

func (n *ourNode) Name() string { return n.name }
func (n *ourNode) Addr() string { return n.addr }

// Kill crashes the node's network (every connection closed at once, nothing more in or out),
// then stops the node: its leave reaches nobody.
func (n *ourNode) Kill() {
	n.net.Crash()
	n.Leave()
}

// Freeze silences every connection of the node, both ways, with its sockets open.
func (n *ourNode) Freeze() { n.net.Freeze() }

func (n *ourNode) Leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.n.Stop(ctx)
}

// Close crashes the node if it still runs (teardown wants no leaves).
func (n *ourNode) Close() { n.Kill() }

// Diag returns the node's health (the nodes it knows and reaches, its seeds), how many it
// streams to, and its counts; it turns the node's debug log on (BENCH_LOG_DIR or the temporary
// directory), to see what the node does from then on.
func (n *ourNode) Diag() string {
	h := n.n.Health()
	direct := 0
	if nodes, err := n.n.Nodes(); err == nil {
		for _, info := range nodes {
			if info.Direct {
				direct++
			}
		}
	}
	out := fmt.Sprintf("known %d, connected %d, direct %d, status %s, seeds %+v", h.Known, h.Connected, direct, h.Status, h.Seeds)
	if n.counter != nil {
		dials, sent, recv, since := n.counter.summary()
		out += fmt.Sprintf("; dials %d, beats sent %d, received %d (last %v ago)", dials, sent, recv, since)
	}
	dir := cmp.Or(os.Getenv("BENCH_LOG_DIR"), os.TempDir())
	if n.late != nil && n.late.target.Load() == nil { // once: a second file would truncate the first
		if h := debugFileHandler(dir, n.name); h != nil {
			n.late.turnOn(h)
		}
	}
	return out
}

// Usage returns this process's usage.
func (o *ours) Usage(gc bool) Usage { return LocalUsage(gc) }

func (o *ours) FDs() int { return countFDs() }

// diagSink counts the engine's dials and heartbeats (BENCH_DIAG=1).
var diagSink diagCounter

type diagCounter struct{ dials, hbSent, hbRecv atomic.Int64 }

func (d *diagCounter) HeartbeatSent()                                { d.hbSent.Add(1) }
func (d *diagCounter) HeartbeatReceived(gap, interval time.Duration) { d.hbRecv.Add(1) }
func (d *diagCounter) DialStarted()                                  { d.dials.Add(1) }

// nodeLogger discards a node's log, but for diagnostics: with BENCH_COUNT_LOGS set, every
// node's records are counted by message (logCounts); with BENCH_LOG_ALL=dir, every node logs
// at debug level to dir/<name>.<pid>.log (skipHandler); the nodes named in BENCH_LOG_NODES
// (comma-separated) log at debug level to BENCH_LOG_DIR/<name>.<pid>.log. Otherwise, with
// BENCH_DIAG=1, the log writes nothing until Diag turns it on (late, nil in the other cases).
func nodeLogger(name string) (logger *slog.Logger, late *lateLog) {
	if os.Getenv("BENCH_COUNT_LOGS") != "" {
		return slog.New(logCounts), nil
	}
	if dir := os.Getenv("BENCH_LOG_ALL"); dir != "" {
		// every node, but for the two lines a formation writes by the hundred thousand
		if h := debugFileHandler(dir, name); h != nil {
			return slog.New(skipHandler{h}), nil
		}
	}
	if slices.Contains(strings.Split(os.Getenv("BENCH_LOG_NODES"), ","), name) {
		if h := debugFileHandler(cmp.Or(os.Getenv("BENCH_LOG_DIR"), os.TempDir()), name); h != nil {
			return slog.New(h), nil
		}
	}
	if os.Getenv("BENCH_DIAG") != "" {
		late = newLateLog()
		return slog.New(late), late
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil)), nil
}

// debugFileHandler returns a debug-level handler writing to dir/<name>.<pid>.log, nil if the
// file cannot be created.
func debugFileHandler(dir, name string) slog.Handler {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s.%d.log", name, os.Getpid())))
	if err != nil {
		return nil
	}
	return slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})
}

// skipHandler leaves out the records a formation writes by the hundred thousand.
type skipHandler struct{ slog.Handler }

func (h skipHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "node up" || r.Message == "send queue full, message dropped" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}
