package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"

	"github.com/meshnode/meshnode/membership"
)

// The fakes below stand for nodes and for gRPC's ClientConn, so the resolver's logic runs
// without a socket.

// fakeCluster holds fake nodes by membership address.
type fakeCluster struct {
	mu    sync.Mutex
	nodes map[string]*fakeNode
	dials []string
}

func newFakeCluster() *fakeCluster { return &fakeCluster{nodes: map[string]*fakeNode{}} }

// node adds a running fake node with metadata.
func (c *fakeCluster) node(name string, port int, metadata map[string]string) *fakeNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, err := membership.NewNodeID(name, "127.0.0.1", port)
	if err != nil {
		panic(err)
	}
	n := &fakeNode{
		info:   membership.NodeInfo{ID: id, Incarnation: 1, Status: membership.StatusConnected, Metadata: metadata},
		status: membership.ClusterRunning,
		peers:  map[membership.NodeID]membership.NodeInfo{},
	}
	c.nodes[id.Address()] = n
	return n
}

// dial opens a fake connection to the node at addr; unknown addresses fail their calls.
func (c *fakeCluster) dial(addr string) (watchConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dials = append(c.dials, addr)
	n, ok := c.nodes[addr]
	if !ok {
		return fakeConn{}, nil
	}
	return fakeConn{node: n}, nil
}

// builder returns a resolver builder that dials the fake nodes, with fast backoff and probes.
func (c *fakeCluster) builder() *ResolverBuilder {
	b := NewResolverBuilder(WithResolverProbeInterval(50 * time.Millisecond))
	b.dial = c.dial
	b.backoffBase, b.backoffMax = 5*time.Millisecond, 20*time.Millisecond
	return b
}

// fakeNode is a node seen through its public API.
type fakeNode struct {
	mu       sync.Mutex
	info     membership.NodeInfo
	status   membership.ClusterStatus
	peers    map[membership.NodeID]membership.NodeInfo
	frozen   bool  // LocalNode hangs until its deadline; an open stream stays silent
	down     bool  // every call fails with Unavailable
	watchErr error // WatchEvents fails with it (LocalNode still answers)
	stream   *fakeStream
	watches  int
	watching bool
}

// fakeStream is one WatchEvents stream of a fake node.
type fakeStream struct {
	events chan Event
	end    chan error
}

// peer returns a connected node for a snapshot or an up event.
func peer(name string, port int, metadata map[string]string) membership.NodeInfo {
	id, err := membership.NewNodeID(name, "127.0.0.1", port)
	if err != nil {
		panic(err)
	}
	return membership.NodeInfo{ID: id, Incarnation: 1, Status: membership.StatusConnected, Metadata: metadata}
}

// setPeers sets what the node's snapshots list, without events.
func (n *fakeNode) setPeers(nodes ...membership.NodeInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.peers = map[membership.NodeID]membership.NodeInfo{}
	for _, p := range nodes {
		n.peers[p.ID] = p
	}
}

// send delivers an event on the current stream (the test waits for one first).
func (n *fakeNode) send(t *testing.T, e Event) {
	t.Helper()
	n.mu.Lock()
	s := n.stream
	switch e.Type {
	case membership.EventNodeUp:
		n.peers[e.Node.ID] = e.Node
	case membership.EventNodeDown:
		delete(n.peers, e.Node.ID)
	case membership.EventNodeUpdated:
		n.peers[e.Node.ID] = e.Node
	case membership.EventStatusChange:
		n.status = e.Current
	}
	n.mu.Unlock()
	require.NotNil(t, s, "no stream on %s", n.info.ID)
	s.events <- e
}

func (n *fakeNode) up(t *testing.T, p membership.NodeInfo) {
	n.send(t, Event{Type: membership.EventNodeUp, Node: p})
}

func (n *fakeNode) downEvent(t *testing.T, p membership.NodeInfo) {
	n.send(t, Event{Type: membership.EventNodeDown, Node: membership.NodeInfo{ID: p.ID, Incarnation: p.Incarnation}, Reason: membership.ReasonConnectionClosed})
}

// breakStream ends the current stream with err.
func (n *fakeNode) breakStream(err error) {
	n.mu.Lock()
	s := n.stream
	n.stream = nil
	n.mu.Unlock()
	if s != nil {
		s.end <- err
	}
}

// kill makes the node unreachable and breaks its stream.
func (n *fakeNode) kill() {
	n.mu.Lock()
	n.down = true
	n.mu.Unlock()
	n.breakStream(status.Error(codes.Unavailable, "connection refused"))
}

// freeze makes the node silent: its stream stays open but nothing more comes.
func (n *fakeNode) freeze() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.frozen = true
}

// isWatched reports whether a resolver holds a stream of the node.
func (n *fakeNode) isWatched() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.watching && n.stream != nil
}

// fakeConn is a client of one fake node.
type fakeConn struct{ node *fakeNode }

var errNoNode = status.Error(codes.Unavailable, "no node at this address")

func (c fakeConn) LocalNode(ctx context.Context) (LocalNode, error) {
	n := c.node
	if n == nil {
		return LocalNode{}, errNoNode
	}
	n.mu.Lock()
	frozen, down := n.frozen, n.down
	info := n.info
	info.Metadata = maps.Clone(info.Metadata)
	st := n.status
	n.mu.Unlock()
	if down {
		return LocalNode{}, errNoNode
	}
	if frozen {
		<-ctx.Done()
		return LocalNode{}, status.FromContextError(ctx.Err()).Err()
	}
	return LocalNode{Node: info, Status: st}, nil
}

func (c fakeConn) Watch(ctx context.Context, handler func(Event), _ ...WatchOption) error {
	n := c.node
	if n == nil {
		return errNoNode
	}
	n.mu.Lock()
	if n.down {
		n.mu.Unlock()
		return errNoNode
	}
	if n.watchErr != nil {
		n.watches++
		n.mu.Unlock()
		return n.watchErr
	}
	s := &fakeStream{events: make(chan Event, 16), end: make(chan error, 1)}
	n.stream = s
	n.watches++
	n.watching = true
	snap := Event{Snapshot: true, Current: n.status, Nodes: slices.Collect(maps.Values(n.peers))}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.watching = false
		n.mu.Unlock()
	}()
	handler(snap)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.end:
			return fmt.Errorf("watch: %w", err)
		case e := <-s.events:
			handler(e)
		}
	}
}

func (fakeConn) Close() error { return nil }

// fakeCC records what the resolver pushes.
type fakeCC struct {
	mu     sync.Mutex
	states []resolver.State
	errs   []error
}

func (cc *fakeCC) UpdateState(s resolver.State) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.states = append(cc.states, s)
	return nil
}

func (cc *fakeCC) ReportError(err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.errs = append(cc.errs, err)
}

func (cc *fakeCC) NewAddress([]resolver.Address) { panic("deprecated NewAddress called") }

func (cc *fakeCC) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{Err: errors.New("not supported")}
}

// updates returns how many states were pushed.
func (cc *fakeCC) updates() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.states)
}

// last returns the addresses of the last state pushed (nil if none).
func (cc *fakeCC) last() []string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.states) == 0 {
		return nil
	}
	return stateAddrs(cc.states[len(cc.states)-1])
}

// lastState returns the last state pushed.
func (cc *fakeCC) lastState() resolver.State {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.states[len(cc.states)-1]
}

func stateAddrs(s resolver.State) []string {
	out := []string{}
	for _, ep := range s.Endpoints {
		for _, a := range ep.Addresses {
			out = append(out, a.Addr)
		}
	}
	return out
}

// waitAddrs waits until a state was pushed and the last one holds exactly want.
func (cc *fakeCC) waitAddrs(t *testing.T, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	require.Eventually(t, func() bool { return cc.updates() > 0 && slices.Equal(cc.last(), want) }, 5*time.Second, time.Millisecond,
		"want endpoints %v", want)
}

// waitSeen waits until some state pushed so far held exactly want: for a state that the next
// one may replace at once.
func (cc *fakeCC) waitSeen(t *testing.T, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	require.Eventually(t, func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return slices.ContainsFunc(cc.states, func(s resolver.State) bool { return slices.Equal(stateAddrs(s), want) })
	}, 5*time.Second, time.Millisecond, "want a state with endpoints %v", want)
}

// build starts a resolver of target over the fake cluster and closes it when the test ends.
func build(t *testing.T, c *fakeCluster, target string) (*fakeCC, resolver.Resolver) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	cc := &fakeCC{}
	r, err := c.builder().Build(resolver.Target{URL: *u}, cc, resolver.BuildOptions{})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return cc, r
}

func TestResolverFiltersByMetadata(t *testing.T) {
	c := newFakeCluster()
	seed := c.node("seed", 4001, map[string]string{"role": "api", "zone": "a"})
	seed.setPeers(
		peer("api1", 4002, map[string]string{"role": "api", "zone": "a"}),
		peer("api2", 4003, map[string]string{"role": "api", "zone": "b"}), // other zone
		peer("web1", 4004, map[string]string{"role": "web", "zone": "a"}), // other role
		peer("bare", 4005, nil), // no metadata
	)
	connecting := peer("api3", 4006, map[string]string{"role": "api", "zone": "a"})
	connecting.Status = membership.StatusConnecting
	gone := peer("api4", 4007, map[string]string{"role": "api", "zone": "a"})
	gone.Status = membership.StatusDisconnected
	seed.mu.Lock()
	seed.peers[connecting.ID], seed.peers[gone.ID] = connecting, gone
	seed.mu.Unlock()

	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001?metadata.role=api&metadata.zone=a")
	// The watched node itself matches and is included; only connected nodes count.
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002")

	// Endpoint attributes carry each node's metadata.
	st := cc.lastState()
	require.Len(t, st.Endpoints, 2)
	n, ok := NodeOfEndpoint(st.Endpoints[1])
	require.True(t, ok)
	require.Equal(t, "api1", n.ID.Name())
	require.Equal(t, map[string]string{"role": "api", "zone": "a"}, n.Metadata)
	require.Equal(t, []string{"127.0.0.1:4001", "127.0.0.1:4002"}, stateAddrs(resolver.State{Endpoints: st.Endpoints}))
	require.Len(t, st.Addresses, 2, "Addresses mirror Endpoints for older balancers")
}

func TestResolverExcludesWatchedNodeThatDoesNotMatch(t *testing.T) {
	c := newFakeCluster()
	seed := c.node("seed", 4001, map[string]string{"role": "seed"})
	seed.setPeers(peer("api1", 4002, map[string]string{"role": "api"}))
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001?metadata.role=api")
	cc.waitAddrs(t, "127.0.0.1:4002")
}

func TestResolverPortSelection(t *testing.T) {
	c := newFakeCluster()
	seed := c.node("seed", 4001, map[string]string{"grpc_port": "9001"})
	seed.setPeers(
		peer("a", 4002, map[string]string{"grpc_port": "9002"}),
		peer("b", 4003, nil), // no port key
		peer("c", 4004, map[string]string{"grpc_port": "0"}),   // invalid port
		peer("d", 4005, map[string]string{"grpc_port": "x12"}), // invalid port
	)
	for _, tc := range []struct {
		target string
		want   []string
	}{
		{"meshnode:///127.0.0.1:4001", []string{"127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003", "127.0.0.1:4004", "127.0.0.1:4005"}},
		{"meshnode:///127.0.0.1:4001?port=8080", []string{"127.0.0.1:8080"}}, // one address for all: one endpoint
		{"meshnode:///127.0.0.1:4001?port_key=grpc_port", []string{"127.0.0.1:9001", "127.0.0.1:9002"}},
		{"meshnode:///127.0.0.1:4001?port_key=grpc_port&port=8080", []string{"127.0.0.1:8080", "127.0.0.1:9001", "127.0.0.1:9002"}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			cc, r := build(t, c, tc.target)
			cc.waitAddrs(t, tc.want...)
			r.Close()
		})
	}
}

func TestResolverNodeDownAndUp(t *testing.T) {
	c := newFakeCluster()
	seed := c.node("seed", 4001, map[string]string{"role": "api"})
	a := peer("a", 4002, map[string]string{"role": "api"})
	b := peer("b", 4003, map[string]string{"role": "api"})
	seed.setPeers(a, b)
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001?metadata.role=api")
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003")
	before := cc.updates()

	// A down removes the endpoint with the very next update.
	seed.downEvent(t, a)
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4003")
	require.Equal(t, before+1, cc.updates())

	// Back up as a new incarnation with other metadata: the endpoint returns with them.
	a2 := a
	a2.Incarnation = 2
	a2.Metadata = map[string]string{"role": "api", "version": "2"}
	seed.up(t, a2)
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003")
	require.Equal(t, before+2, cc.updates())
	n, ok := NodeOfEndpoint(cc.lastState().Endpoints[1])
	require.True(t, ok)
	require.Equal(t, uint64(2), n.Incarnation)
	require.Equal(t, "2", n.Metadata["version"])
}

// A node whose metadata changes (node_updated) enters or leaves the filtered endpoints at
// once, without a new snapshot.
func TestResolverFollowsMetadataChanges(t *testing.T) {
	c := newFakeCluster()
	seed := c.node("seed", 4001, map[string]string{"role": "api"})
	a := peer("a", 4002, map[string]string{"role": "web"})
	seed.setPeers(a)
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001?metadata.role=api")
	cc.waitAddrs(t, "127.0.0.1:4001")

	a.Metadata = map[string]string{"role": "api"}
	seed.send(t, Event{Type: membership.EventNodeUpdated, Node: a})
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002")

	a.Metadata = map[string]string{"role": "batch"}
	seed.send(t, Event{Type: membership.EventNodeUpdated, Node: a})
	cc.waitAddrs(t, "127.0.0.1:4001")
}

func TestResolverDeduplicatesUpdates(t *testing.T) {
	c := newFakeCluster()
	seed := c.node("seed", 4001, map[string]string{"role": "api"})
	a := peer("a", 4002, map[string]string{"role": "api"})
	seed.setPeers(a)
	cc, r := build(t, c, "meshnode:///127.0.0.1:4001?metadata.role=api")
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002")
	require.Equal(t, 1, cc.updates(), "the snapshot gives one update")

	// Events that change nothing among the matching nodes push nothing; the state change that
	// follows them is the only update, so the count proves it without waiting on a timer.
	web := peer("web", 4003, map[string]string{"role": "web"})
	seed.up(t, web)        // does not match
	seed.downEvent(t, web) // does not match
	seed.up(t, a)          // already there, same info
	r.ResolveNow(resolver.ResolveNowOptions{})
	b := peer("b", 4004, map[string]string{"role": "api"})
	seed.up(t, b)
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4004")
	require.Equal(t, 2, cc.updates())

	// The probe refreshes the watched node's own info: the same info pushes nothing, other
	// metadata does (the next probe after the change).
	seed.mu.Lock()
	seed.info.Metadata = map[string]string{"role": "api", "weight": "3"}
	seed.mu.Unlock()
	require.Eventually(t, func() bool {
		n, _ := NodeOfEndpoint(cc.lastState().Endpoints[0])
		return n.Metadata["weight"] == "3"
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, 3, cc.updates())
}

func TestResolverWatchedNodeLeavesThenFailover(t *testing.T) {
	c := newFakeCluster()
	meta := map[string]string{"role": "api"}
	s1 := c.node("s1", 4001, meta)
	s2 := c.node("s2", 4002, meta)
	x := peer("x", 4003, meta)
	s1.setPeers(peer("s2", 4002, meta), x)
	s2.setPeers(peer("s1", 4001, meta), x)
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001,127.0.0.1:4002?metadata.role=api")
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003")
	watched, other := s1, s2
	require.Eventually(t, func() bool { return s1.isWatched() || s2.isWatched() }, 5*time.Second, time.Millisecond)
	if s2.isWatched() {
		watched, other = s2, s1
	}
	// The watched node starts leaving: it is dropped at once, before its stream ends, and the
	// resolver moves to the other seed, whose snapshot no longer lists it.
	other.setPeers(x)
	watched.send(t, Event{Type: membership.EventStatusChange, Previous: membership.ClusterRunning, Current: membership.ClusterStopping})
	cc.waitAddrs(t, other.info.ID.Address(), "127.0.0.1:4003")
	require.Eventually(t, other.isWatched, 5*time.Second, time.Millisecond)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for _, s := range cc.states {
		require.Contains(t, stateAddrs(s), "127.0.0.1:4003", "no state ever drops the node that stayed")
	}
}

func TestResolverFailsOverWhenWatchedNodeDies(t *testing.T) {
	c := newFakeCluster()
	meta := map[string]string{"role": "api"}
	s1 := c.node("s1", 4001, meta)
	s2 := c.node("s2", 4002, meta)
	x := peer("x", 4003, meta)
	s1.setPeers(peer("s2", 4002, meta), x)
	s2.setPeers(peer("s1", 4001, meta), x)
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001,127.0.0.1:4002")
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003")
	require.Eventually(t, func() bool { return s1.isWatched() || s2.isWatched() }, 5*time.Second, time.Millisecond)
	watched, other := s1, s2
	if s2.isWatched() {
		watched, other = s2, s1
	}
	// The stream breaks and the node is unreachable: it leaves the endpoints at once (the
	// other still lists it for a while), and the other seed's events take over.
	watched.kill()
	require.Eventually(t, other.isWatched, 5*time.Second, time.Millisecond)
	cc.waitAddrs(t, watched.info.ID.Address(), other.info.ID.Address(), "127.0.0.1:4003")
	other.downEvent(t, watched.info)
	cc.waitAddrs(t, other.info.ID.Address(), "127.0.0.1:4003")
	y := peer("y", 4004, meta)
	other.up(t, y)
	cc.waitAddrs(t, other.info.ID.Address(), "127.0.0.1:4003", "127.0.0.1:4004")
}

func TestResolverKeepsNodeWhoseWatchFailsBeforeItsSnapshot(t *testing.T) {
	c := newFakeCluster()
	s1 := c.node("s1", 4001, nil)
	s1.setPeers(peer("s2", 4002, nil), peer("x", 4003, nil))
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001")
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003")
	s2 := c.node("s2", 4002, nil)
	s2.mu.Lock()
	s2.watchErr = status.Error(codes.ResourceExhausted, "too many watchers")
	s2.mu.Unlock()
	// s1 dies: the resolver drops it and tries s2 (learned from s1), whose API answers but
	// refuses the watch. s2 stays an endpoint: nothing says it is gone.
	s1.kill()
	require.Eventually(t, func() bool {
		s2.mu.Lock()
		defer s2.mu.Unlock()
		return s2.watches >= 2
	}, 5*time.Second, time.Millisecond)
	cc.waitAddrs(t, "127.0.0.1:4002", "127.0.0.1:4003")
}

func TestResolverSkipsUnreachableSeed(t *testing.T) {
	c := newFakeCluster()
	s2 := c.node("s2", 4002, nil)
	s2.setPeers(peer("x", 4003, nil))
	// 127.0.0.1:4001 is not a node: whichever seed comes first, the resolver ends up on s2.
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001,127.0.0.1:4002")
	cc.waitAddrs(t, "127.0.0.1:4002", "127.0.0.1:4003")
}

func TestResolverFrozenWatchedNodeIsLeftByProbe(t *testing.T) {
	c := newFakeCluster()
	s1 := c.node("s1", 4001, nil)
	s2 := c.node("s2", 4002, nil)
	s1.setPeers(peer("s2", 4002, nil))
	s2.setPeers(peer("s1", 4001, nil))
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001,127.0.0.1:4002")
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002")
	require.Eventually(t, func() bool { return s1.isWatched() || s2.isWatched() }, 5*time.Second, time.Millisecond)
	watched, other := s1, s2
	if s2.isWatched() {
		watched, other = s2, s1
	}
	// Its stream stays open but the probe times out: the resolver drops it and moves on.
	watched.freeze()
	cc.waitSeen(t, other.info.ID.Address())
	require.Eventually(t, other.isWatched, 5*time.Second, time.Millisecond)
	// The other node's snapshot still lists it until the cluster decides; then it goes.
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002")
	other.downEvent(t, watched.info)
	cc.waitAddrs(t, other.info.ID.Address())
}

func TestResolverFailsOverToLearnedNodes(t *testing.T) {
	c := newFakeCluster()
	seed := c.node("seed", 4001, nil)
	m := c.node("m", 4002, nil)
	seed.setPeers(peer("m", 4002, nil))
	m.setPeers(peer("z", 4003, nil))
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001")
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002")
	// The only seed dies: the resolver watches a node it learned from the seed.
	seed.kill()
	require.Eventually(t, m.isWatched, 5*time.Second, time.Millisecond)
	cc.waitAddrs(t, "127.0.0.1:4002", "127.0.0.1:4003")
}

func TestResolverWaitsForStartingNode(t *testing.T) {
	c := newFakeCluster()
	seed := c.node("seed", 4001, nil)
	seed.status = membership.ClusterStarting
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001")
	require.Eventually(t, seed.isWatched, 5*time.Second, time.Millisecond)
	// Still starting: its partial view is not pushed. Running: it is.
	seed.up(t, peer("a", 4002, nil))
	require.Equal(t, 0, cc.updates())
	seed.send(t, Event{Type: membership.EventStatusChange, Previous: membership.ClusterStarting, Current: membership.ClusterRunning})
	cc.waitAddrs(t, "127.0.0.1:4001", "127.0.0.1:4002")
}

func TestResolverReportsErrorWhenNoNodeAnswers(t *testing.T) {
	c := newFakeCluster()
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001,127.0.0.1:4002")
	require.Eventually(t, func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return len(cc.errs) > 0
	}, 5*time.Second, time.Millisecond)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	require.ErrorIs(t, cc.errs[0], errNoNode)
	require.Empty(t, cc.states)
	// Every seed was tried, with backoff, again and again.
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Subset(t, c.dials, []string{"127.0.0.1:4001", "127.0.0.1:4002"})
}

func TestResolverEmptyMatchPushesEmptyState(t *testing.T) {
	c := newFakeCluster()
	c.node("seed", 4001, nil)
	cc, _ := build(t, c, "meshnode:///127.0.0.1:4001?metadata.role=api")
	cc.waitAddrs(t)
	require.Equal(t, 1, cc.updates())
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   resolverTarget
		err    string
	}{
		{target: "meshnode:///10.0.0.1:4369,10.0.0.2:4369?metadata.role=api&port=8080",
			want: resolverTarget{seeds: []string{"10.0.0.1:4369", "10.0.0.2:4369"}, filters: []filter{{"role", "api"}}, port: 8080}},
		{target: "meshnode:///n1@10.0.0.1:4369,[::1]:4370,10.0.0.1:4369?port_key=grpc&metadata.zone=b&metadata.a=1",
			want: resolverTarget{seeds: []string{"10.0.0.1:4369", "[::1]:4370"}, filters: []filter{{"a", "1"}, {"zone", "b"}}, portKey: "grpc"}},
		{target: "meshnode:///host.example:4369?metadata.role=",
			want: resolverTarget{seeds: []string{"host.example:4369"}, filters: []filter{{"role", ""}}}},
		{target: "meshnode://authority/10.0.0.1:4369", err: "an authority is not supported"},
		{target: "meshnode:///", err: "no seed address"},
		{target: "meshnode:///10.0.0.1", err: "invalid seed"},
		{target: "meshnode:///10.0.0.1:4369,", err: "invalid seed"},
		{target: "meshnode:///10.0.0.1:4369?port=0", err: "port must be 1-65535"},
		{target: "meshnode:///10.0.0.1:4369?port=+80", err: "invalid port"},
		{target: "meshnode:///10.0.0.1:4369?port=65536", err: "invalid port"},
		{target: "meshnode:///10.0.0.1:4369?port_key=", err: "port_key must name"},
		{target: "meshnode:///10.0.0.1:4369?role=api", err: `unknown parameter "role"`},
		{target: "meshnode:///10.0.0.1:4369?metadata.=x", err: "empty metadata key"},
		{target: "meshnode:///10.0.0.1:4369?metadata.role=a&metadata.role=b", err: "given 2 times"},
		{target: "meshnode:///10.0.0.1:4369?a=%zz", err: "query"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			u, err := url.Parse(tc.target)
			require.NoError(t, err)
			got, err := parseTarget(resolver.Target{URL: *u})
			if tc.err != "" {
				require.ErrorIs(t, err, errTarget)
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestBuildRefusesBadTarget(t *testing.T) {
	u, err := url.Parse("meshnode:///10.0.0.1:4369?roles=api")
	require.NoError(t, err)
	_, err = NewResolverBuilder().Build(resolver.Target{URL: *u}, &fakeCC{}, resolver.BuildOptions{})
	require.ErrorIs(t, err, errTarget)
}

func TestResolverRegistered(t *testing.T) {
	b := resolver.Get(Scheme)
	require.NotNil(t, b, "importing the package registers the scheme")
	require.Equal(t, "meshnode", b.Scheme())
}

func TestResolvedNodeEqual(t *testing.T) {
	a := ResolvedNode{ID: membership.MustParseNodeID("a@h:1"), Incarnation: 1, Metadata: map[string]string{"k": "v"}}
	require.True(t, a.Equal(ResolvedNode{ID: a.ID, Incarnation: 1, Metadata: map[string]string{"k": "v"}}))
	require.False(t, a.Equal(ResolvedNode{ID: a.ID, Incarnation: 2, Metadata: map[string]string{"k": "v"}}))
	require.False(t, a.Equal(ResolvedNode{ID: a.ID, Incarnation: 1}))
	require.False(t, a.Equal("a@h:1"))
	_, ok := NodeOfEndpoint(resolver.Endpoint{})
	require.False(t, ok)
}
