package membership

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memLink is an in-memory stream between two Clusters. Each direction is a channel; closing
// it is the sender's half-close. With deaf set, the dialling end's half-close never reaches
// the other end: a peer that stops answering while its stream stays open.
type memLink struct {
	toServer, toClient chan *Message
	done               chan struct{} // closed by Close on either end: the stream is cut
	once               sync.Once
	deaf               bool
}

// memEnd is one end of a memLink.
type memEnd struct {
	l        *memLink
	in, out  chan *Message
	dialling bool
	sendOnce sync.Once
}

func (e *memEnd) Send(msg *Message) error {
	select {
	case e.out <- msg:
		return nil
	case <-e.l.done:
		return io.EOF
	}
}

func (e *memEnd) Recv() (*Message, error) {
	select {
	case msg, ok := <-e.in:
		if !ok {
			return nil, io.EOF
		}
		return msg, nil
	case <-e.l.done:
		return nil, io.EOF
	}
}

func (e *memEnd) CloseSend() error {
	if e.dialling && e.l.deaf {
		return nil
	}
	e.sendOnce.Do(func() { close(e.out) })
	return nil
}

func (e *memEnd) Close() { e.l.once.Do(func() { close(e.l.done) }) }

// memNet connects Clusters by address; a dial runs the accepting side's ServeConn. Each
// node's streams, dialled and accepted, are subject to its memFaults.
type memNet struct {
	mu     sync.Mutex
	nodes  map[string]*Cluster
	faults map[string]*memFaults
	deaf   bool // streams dialled from now on have a deaf accepting end
	serve  sync.WaitGroup
}

func newMemNet() *memNet {
	return &memNet{nodes: map[string]*Cluster{}, faults: map[string]*memFaults{}}
}

func (n *memNet) Dial(ctx context.Context, addr string) (Conn, error) {
	n.mu.Lock()
	peer, faults, deaf := n.nodes[addr], n.faults[addr], n.deaf
	n.mu.Unlock()
	if peer == nil {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrConnectionRefused)
	}
	l := &memLink{toServer: make(chan *Message, 64), toClient: make(chan *Message, 64), done: make(chan struct{}), deaf: deaf}
	accepted, err := faults.wrap(&memEnd{l: l, in: l.toServer, out: l.toClient})
	if err != nil {
		return nil, fmt.Errorf("dial %s: connection refused: %w", addr, err)
	}
	n.serve.Add(1)
	go func() {
		defer n.serve.Done()
		_ = peer.ServeConn(context.Background(), accepted)
	}()
	return &memEnd{l: l, in: l.toClient, out: l.toServer, dialling: true}, nil
}

// add starts c, whose streams are subject to faults.
func (n *memNet) add(t *testing.T, c *Cluster, faults *memFaults) {
	t.Helper()
	n.mu.Lock()
	n.nodes[c.LocalID().Address()] = c
	n.faults[c.LocalID().Address()] = faults
	n.mu.Unlock()
	require.NoError(t, c.Start(context.Background()))
}

// faultsOf returns the memFaults of node c.
func (n *memNet) faultsOf(c *Cluster) *memFaults {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.faults[c.LocalID().Address()]
}

// crash crashes node c from outside (every stream cut, nobody told), then stops it: its leave
// reaches nobody.
func (n *memNet) crash(t *testing.T, c *Cluster) {
	t.Helper()
	n.faultsOf(c).crash()
	require.NoError(t, c.Stop(context.Background()))
}

// startMemNode starts a Cluster named name on network, at 127.0.0.1:port.
func startMemNode(t *testing.T, network *memNet, name string, port int, seeds ...string) *Cluster {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.Seeds = seeds
	cfg.HeartbeatInterval = time.Second
	return startConfiguredMemNode(t, network, cfg, port)
}

// startConfiguredMemNode starts a Cluster with cfg and opts on network, at 127.0.0.1:port.
func startConfiguredMemNode(t *testing.T, network *memNet, cfg *Config, port int, opts ...Option) *Cluster {
	t.Helper()
	id, err := NewNodeID(cfg.Name, "127.0.0.1", port)
	require.NoError(t, err)
	faults := newMemFaults()
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	c, err := New(id, cfg, faults.transport(network), opts...)
	require.NoError(t, err)
	network.add(t, c, faults)
	return c
}

func TestStopWithAnExpiredContextCutsStreamsWaitingForADeafPeer(t *testing.T) {
	network := newMemNet()
	b := startMemNode(t, network, "b", 2)
	network.deaf = true // b will not see a's half-close
	a := startMemNode(t, network, "a", 1, b.LocalID().String())
	require.Eventually(t, func() bool {
		n, _ := a.ConnectedCount()
		m, _ := b.ConnectedCount()
		return n == 1 && m == 1
	}, 5*time.Second, 5*time.Millisecond, "a and b should see each other connected")

	// a's leave goes out and its stream half-closes; b, frozen, never ends its side, so the
	// stream would wait closeGrace (2 s) for it. A context of 100 ms must cut it short.
	network.faultsOf(b).freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, a.Stop(ctx))
	took := time.Since(start)
	require.Less(t, took, closeGrace/2, "Stop should return soon after its context ends, not wait out closeGrace for a deaf peer")
	require.Equal(t, ClusterStopped, a.Status())

	network.faultsOf(b).heal()
	require.NoError(t, b.Stop(context.Background()))
	network.serve.Wait()
}
