package harness

import (
	"context"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// ours runs meshnode nodes: real gRPC on 127.0.0.1.
type ours struct {
	p  Profile
	tr *Tracker
}

func newOurs(p Profile, tr *Tracker) *ours { return &ours{p: p, tr: tr} }

func (o *ours) Name() string { return "meshnode" }

func (o *ours) config(name, seed string) *membership.Config {
	cfg := membership.DefaultConfig()
	cfg.Name = name
	cfg.BindHost = "127.0.0.1"
	cfg.Port = 0
	cfg.HeartbeatInterval = o.p.Interval
	cfg.HeartbeatMissThreshold = o.p.Threshold
	if seed != "" {
		cfg.Seeds = []string{seed}
	}
	return cfg
}

func (o *ours) Describe() map[string]any {
	cfg := o.config("x", "")
	return map[string]any{
		"HeartbeatInterval":      cfg.HeartbeatInterval.String(),
		"HeartbeatMissThreshold": cfg.HeartbeatMissThreshold,
		"DialTimeout":            cfg.DialTimeout.String(),
		"HandshakeTimeout":       cfg.HandshakeTimeout.String(),
		"ReconnectBaseDelay":     cfg.ReconnectBaseDelay.String(),
		"ReconnectMaxDelay":      cfg.ReconnectMaxDelay.String(),
		"transport":              "gRPC (server defaults), plaintext, no secret",
	}
}

func (o *ours) Start(ctx context.Context, name, seed string) (Node, error) {
	tr := o.tr
	handler := func(e membership.Event) {
		switch e.Type {
		case membership.EventNodeUp:
			tr.Up(name, e.Node.ID.Name())
		case membership.EventNodeDown:
			tr.Down(name, e.Node.ID.Name(), e.Reason.String())
		}
	}
	n, err := server.Start(ctx, o.config(name, seed),
		server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		server.WithEventHandler(handler))
	if err != nil {
		return nil, err
	}
	return &ourNode{name: name, n: n, addr: n.Addr().(*net.TCPAddr).String()}, nil
}

// Traffic reads the kernel counters of every TCP socket of the process.
func (o *ours) Traffic() Traffic { return ProcessTCPTraffic() }

type ourNode struct {
	name string
	addr string
	n    *server.Node
}

func (n *ourNode) Name() string { return n.name }
func (n *ourNode) Addr() string { return n.addr }
func (n *ourNode) Kill()        { _ = n.n.Kill() }
func (n *ourNode) Freeze()      { n.n.Freeze() }
func (n *ourNode) Leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.n.Stop(ctx)
}
func (n *ourNode) Close() { _ = n.n.Kill() }
