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

// memNet connects Clusters by address; a dial runs the accepting side's ServeConn.
type memNet struct {
	mu    sync.Mutex
	nodes map[string]*Cluster
	deaf  bool // streams dialled from now on have a deaf accepting end
	serve sync.WaitGroup
}

func (n *memNet) Dial(ctx context.Context, addr string) (Conn, error) {
	n.mu.Lock()
	peer, deaf := n.nodes[addr], n.deaf
	n.mu.Unlock()
	if peer == nil {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	l := &memLink{toServer: make(chan *Message, 64), toClient: make(chan *Message, 64), done: make(chan struct{}), deaf: deaf}
	n.serve.Add(1)
	go func() {
		defer n.serve.Done()
		_ = peer.ServeConn(context.Background(), &memEnd{l: l, in: l.toServer, out: l.toClient})
	}()
	return &memEnd{l: l, in: l.toClient, out: l.toServer, dialling: true}, nil
}

// startMemNode starts a Cluster named name on network, at 127.0.0.1:port.
func startMemNode(t *testing.T, network *memNet, name string, port int, seeds ...string) *Cluster {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.Seeds = seeds
	cfg.HeartbeatInterval = time.Second
	id, err := NewNodeID(name, "127.0.0.1", port)
	require.NoError(t, err)
	c, err := New(id, cfg, network, WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	network.mu.Lock()
	network.nodes[id.Address()] = c
	network.mu.Unlock()
	require.NoError(t, c.Start(context.Background()))
	return c
}

func TestStopWithAnExpiredContextCutsStreamsWaitingForADeafPeer(t *testing.T) {
	network := &memNet{nodes: map[string]*Cluster{}}
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
	b.Freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.NoError(t, a.Stop(ctx))
	took := time.Since(start)
	require.Less(t, took, closeGrace/2, "Stop should return soon after its context ends, not wait out closeGrace for a deaf peer")
	require.Equal(t, ClusterStopped, a.Status())

	b.Thaw()
	require.NoError(t, b.Kill())
	network.serve.Wait()
}
