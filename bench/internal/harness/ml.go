package harness

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// mlSystem runs hashicorp/memberlist nodes on its own net transport (UDP + TCP on
// 127.0.0.1), wrapped to count bytes and to go silent on demand.
type mlSystem struct {
	p       Profile
	tr      Sink
	counter *ConnCounter
}

func newMemberlist(p Profile, tr Sink) *mlSystem {
	return &mlSystem{p: p, tr: tr, counter: NewConnCounter()}
}

func (m *mlSystem) Name() string { return "memberlist" }

// MemberlistConfig returns the memberlist configuration of a profile: DefaultLANConfig for
// "lan"; for "fast", DefaultLANConfig with the failure detector tuned to detect a dead node
// in about 1–2 s on a LAN/loopback (every changed setting is listed in FastOverrides).
func MemberlistConfig(profile string) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	if profile == "fast" {
		c.ProbeInterval = 500 * time.Millisecond  // LAN: 1s
		c.ProbeTimeout = 250 * time.Millisecond   // LAN: 500ms
		c.SuspicionMult = 2                       // LAN: 4 → suspicion 2×max(1,log10 N)×500ms
		c.SuspicionMaxTimeoutMult = 3             // LAN: 6
		c.GossipInterval = 100 * time.Millisecond // LAN: 200ms
		c.GossipNodes = 4                         // LAN: 3
		c.RetransmitMult = 3                      // LAN: 4
		c.PushPullInterval = 10 * time.Second     // LAN: 30s
		c.TCPTimeout = 2 * time.Second            // LAN: 10s
		c.GossipToTheDeadTime = 10 * time.Second  // LAN: 30s
		c.AwarenessMaxMultiplier = 4              // LAN: 8
	}
	return c
}

func (m *mlSystem) Describe() map[string]any {
	c := MemberlistConfig(m.p.Name)
	return map[string]any{
		"base":                    "DefaultLANConfig",
		"ProbeInterval":           c.ProbeInterval.String(),
		"ProbeTimeout":            c.ProbeTimeout.String(),
		"IndirectChecks":          c.IndirectChecks,
		"SuspicionMult":           c.SuspicionMult,
		"SuspicionMaxTimeoutMult": c.SuspicionMaxTimeoutMult,
		"GossipInterval":          c.GossipInterval.String(),
		"GossipNodes":             c.GossipNodes,
		"RetransmitMult":          c.RetransmitMult,
		"PushPullInterval":        c.PushPullInterval.String(),
		"TCPTimeout":              c.TCPTimeout.String(),
		"GossipToTheDeadTime":     c.GossipToTheDeadTime.String(),
		"AwarenessMaxMultiplier":  c.AwarenessMaxMultiplier,
		"DisableTcpPings":         c.DisableTcpPings,
		"EnableCompression":       c.EnableCompression,
		"UDPBufferSize":           c.UDPBufferSize,
		"transport":               "memberlist NetTransport on 127.0.0.1 (UDP+TCP), wrapped to count bytes",
	}
}

func (m *mlSystem) Start(ctx context.Context, name, seed string) (Node, error) {
	logger := log.New(io.Discard, "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"}, BindPort: 0, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	port := nt.GetAutoBindPort()
	var tp *mlTransport
	if os.Getenv("BENCH_ML_RAW") == "" {
		tp = newMLTransport(nt, m.counter)
	}
	conf := MemberlistConfig(m.p.Name)
	conf.Name = name
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = port
	conf.AdvertiseAddr = "127.0.0.1"
	conf.AdvertisePort = port
	conf.Logger = logger
	conf.Transport = tp
	if tp == nil { // diagnostics (BENCH_ML_RAW=1): memberlist's own transport, unwrapped
		conf.Transport = nt
	}
	conf.Events = &mlEvents{self: name, tr: m.tr}
	list, err := memberlist.Create(conf)
	if err != nil {
		_ = conf.Transport.Shutdown()
		return nil, err
	}
	node := &mlNode{name: name, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), list: list, tp: tp}
	if seed != "" {
		if _, err := list.Join(strings.Split(seed, ",")); err != nil {
			_ = list.Shutdown()
			return nil, err
		}
	}
	return node, nil
}

func (m *mlSystem) Traffic() Traffic { return m.counter.Total() }

// mlEvents feeds memberlist's join/leave notifications (a node is listed from NotifyJoin,
// reported down by NotifyLeave: dead or left) to the tracker.
type mlEvents struct {
	self string
	tr   Sink
}

func (e *mlEvents) NotifyJoin(n *memberlist.Node) { e.tr.Up(e.self, n.Name, time.Time{}) }

// NotifyLeave fires for dead and left nodes alike; memberlist v0.7.0 passes a Node whose
// State field is not updated, so the two cannot be told apart here.
func (e *mlEvents) NotifyLeave(n *memberlist.Node) {
	e.tr.Down(e.self, n.Name, "notify_leave", time.Time{})
}
func (e *mlEvents) NotifyUpdate(*memberlist.Node) {}

type mlNode struct {
	name string
	addr string
	list *memberlist.Memberlist
	tp   *mlTransport
}

func (n *mlNode) Name() string { return n.name }
func (n *mlNode) Addr() string { return n.addr }

// Kill shuts the node down without leaving: its UDP and TCP listeners close at once.
func (n *mlNode) Kill() { _ = n.list.Shutdown() }

// Freeze makes the wrapping transport drop every packet and stream, both ways.
func (n *mlNode) Freeze() {
	if n.tp != nil {
		n.tp.frozen.Store(true)
	}
}

// Leave broadcasts a leave (waiting up to 5 s for it to go out), then shuts down.
func (n *mlNode) Leave() {
	_ = n.list.Leave(5 * time.Second)
	_ = n.list.Shutdown()
}
func (n *mlNode) Close() { _ = n.list.Shutdown() }

// mlTransport wraps memberlist's NetTransport: it counts what is sent and, once frozen,
// drops every packet in and out, refuses to dial and holds accepted streams open unread.
type mlTransport struct {
	inner    *memberlist.NetTransport
	counter  *ConnCounter
	frozen   atomic.Bool
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	held     []net.Conn
}

var _ memberlist.NodeAwareTransport = (*mlTransport)(nil)

var errFrozen = errors.New("frozen")

func newMLTransport(inner *memberlist.NetTransport, counter *ConnCounter) *mlTransport {
	t := &mlTransport{
		inner: inner, counter: counter,
		packetCh: make(chan *memberlist.Packet), streamCh: make(chan net.Conn),
		done: make(chan struct{}),
	}
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

func (t *mlTransport) forwardPackets() {
	for {
		select {
		case p := <-t.inner.PacketCh():
			if t.frozen.Load() {
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *mlTransport) forwardStreams() {
	for {
		select {
		case c := <-t.inner.StreamCh():
			if t.frozen.Load() {
				t.mu.Lock()
				t.held = append(t.held, c)
				t.mu.Unlock()
				continue
			}
			select {
			case t.streamCh <- t.counter.Wrap(c):
			case <-t.done:
				_ = c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *mlTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *mlTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *mlTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.frozen.Load() {
		return time.Now(), nil
	}
	at, err := t.inner.WriteToAddress(b, a)
	if err == nil {
		t.counter.Packet(len(b))
	}
	return at, err
}

func (t *mlTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *mlTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *mlTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.frozen.Load() {
		return nil, errFrozen
	}
	c, err := t.inner.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return t.counter.Wrap(c), nil
}

func (t *mlTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *mlTransport) Shutdown() error {
	err := t.inner.Shutdown()
	t.once.Do(func() {
		close(t.done)
		t.mu.Lock()
		for _, c := range t.held {
			_ = c.Close()
		}
		t.held = nil
		t.mu.Unlock()
	})
	return err
}

// Usage returns this process's usage.
func (m *mlSystem) Usage(gc bool) Usage { return LocalUsage(gc) }

func (m *mlSystem) FDs() int { return countFDs() }
