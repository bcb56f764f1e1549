package membership

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeResolver answers SRV lookups of any name with records it is told, counts the lookups,
// and blocks every lookup while block is set (until the lookup's context ends).
type fakeResolver struct {
	mu      sync.Mutex
	records []*net.SRV
	lookups int
	block   bool
}

func (r *fakeResolver) set(records ...*net.SRV) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = records
}

func (r *fakeResolver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups
}

func (r *fakeResolver) LookupSRV(ctx context.Context, _, _, _ string) (string, []*net.SRV, error) {
	r.mu.Lock()
	r.lookups++
	block, records := r.block, append([]*net.SRV(nil), r.records...)
	r.mu.Unlock()
	if block {
		<-ctx.Done()
		return "", nil, ctx.Err()
	}
	return "", records, nil
}

func (r *fakeResolver) LookupHost(context.Context, string) ([]string, error) {
	return []string{"127.0.0.1"}, nil
}

// startDNSMemNode starts a Cluster on network at 127.0.0.1:port whose seed is a dnssrv+ seed
// answered by r.
func startDNSMemNode(t *testing.T, network *memNet, name string, port int, r Resolver, dialTimeout time.Duration) *Cluster {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.Seeds = []string{"dnssrv+_peer._tcp.mesh.test"}
	cfg.HeartbeatInterval = time.Second
	cfg.DialTimeout = dialTimeout
	return startConfiguredMemNode(t, network, cfg, port, WithResolver(r))
}

// The runtime looks DNS seeds up while the node is alone, makes no query once every address
// leads to a connected node, looks up again once it is alone again (its peer crashed), and Stop
// cuts a lookup under way short.
func TestClusterLooksDNSSeedsUpWhileNeeded(t *testing.T) {
	network := newMemNet()
	defer network.serve.Wait()
	r := &fakeResolver{}
	b := startDNSMemNode(t, network, "b", 4001, r, time.Second)
	defer func() { _ = b.Stop(context.Background()) }()
	require.Equal(t, 1, r.count(), "looked up at start")
	require.Eventually(t, func() bool { return r.count() >= 3 }, 10*time.Second, 10*time.Millisecond, "alone: looked up again")

	a := startMemNode(t, network, "a", 4000)
	r.set(&net.SRV{Target: "a.mesh.test.", Port: 4000}, &net.SRV{Target: "b.mesh.test.", Port: 4001})
	require.Eventually(t, func() bool { n, _ := b.ConnectedCount(); return n == 1 }, 10*time.Second, 10*time.Millisecond,
		"b joins a once the records name it")
	settled := r.count()
	require.Never(t, func() bool { return r.count() > settled+1 }, 2500*time.Millisecond, 50*time.Millisecond,
		"no query while every address leads to a connected node")

	network.crash(t, a)
	before := r.count()
	require.Eventually(t, func() bool { return r.count() > before }, 10*time.Second, 10*time.Millisecond, "alone again: looked up again")

	// A lookup that hangs: Stop does not wait for it.
	r.mu.Lock()
	r.block = true
	r.mu.Unlock()
	hung := r.count()
	require.Eventually(t, func() bool { return r.count() > hung }, 40*time.Second, 10*time.Millisecond, "a lookup under way")
	start := time.Now()
	require.NoError(t, b.Stop(context.Background()))
	require.Less(t, time.Since(start), 3*time.Second, "Stop cuts the lookup short")

	// Start with a lookup that hangs: bounded by DialTimeout; Stop cuts the next one short.
	c := startDNSMemNode(t, network, "c", 4002, r, 300*time.Millisecond)
	hung = r.count()
	require.Eventually(t, func() bool { return r.count() > hung }, 10*time.Second, 10*time.Millisecond, "a lookup under way")
	start = time.Now()
	require.NoError(t, c.Stop(context.Background()))
	require.Less(t, time.Since(start), 3*time.Second, "Stop cuts the lookup short")
}
