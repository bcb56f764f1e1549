package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshnode/meshnode/client"
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// apiClient returns a raw MembershipService client of n.
func apiClient(t *testing.T, n *Node) clusterv1.MembershipServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(n.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return clusterv1.NewMembershipServiceClient(cc)
}

func TestAPIQueries(t *testing.T) {
	a := startNode(t, testConfig("a"))
	cfg := testConfig("b", a.LocalID().String())
	cfg.Metadata = map[string]string{"role": "worker"}
	cfg.ProcessCount = 3
	b := startNode(t, cfg)
	requireFullMesh(t, 5*time.Second, a, b)
	api := apiClient(t, a)
	ctx := t.Context()

	local, err := api.GetLocalNode(ctx, &clusterv1.GetLocalNodeRequest{})
	require.NoError(t, err)
	require.Equal(t, a.LocalID().String(), local.GetNode().GetId())
	require.Equal(t, clusterv1.ClusterStatus_CLUSTER_STATUS_RUNNING, local.GetStatus())

	list, err := api.ListNodes(ctx, &clusterv1.ListNodesRequest{ConnectedOnly: true})
	require.NoError(t, err)
	require.Len(t, list.GetNodes(), 1, "the local node is never listed")
	got := list.GetNodes()[0]
	require.Equal(t, b.LocalID().String(), got.GetId())
	require.Equal(t, "b", got.GetName())
	require.Equal(t, clusterv1.NodeStatus_NODE_STATUS_CONNECTED, got.GetStatus())
	require.Equal(t, uint32(3), got.GetProcessCount())
	require.Equal(t, map[string]string{"role": "worker"}, got.GetMetadata())
	require.NotNil(t, got.GetLastHeartbeat())

	one, err := api.GetNode(ctx, &clusterv1.GetNodeRequest{Id: b.LocalID().String()})
	require.NoError(t, err)
	require.Equal(t, b.LocalID().String(), one.GetNode().GetId())

	_, err = api.GetNode(ctx, &clusterv1.GetNodeRequest{Id: "ghost@127.0.0.1:1"})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = api.GetNode(ctx, &clusterv1.GetNodeRequest{Id: "1bad@host:1"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "name must start with a letter")

	health, err := api.GetHealth(ctx, &clusterv1.GetHealthRequest{})
	require.NoError(t, err)
	require.Equal(t, clusterv1.HealthStatus_HEALTH_STATUS_HEALTHY, health.GetStatus())
	require.Equal(t, uint32(1), health.GetConnectedNodes())
	require.InDelta(t, 100.0, health.GetAvailabilityPercent(), 0.001)
}

func TestListNodesIncludesSelfAndLeftNodesWhenAsked(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	c := startNode(t, testConfig("c", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b, c)
	api := apiClient(t, a)
	ctx := t.Context()

	list, err := api.ListNodes(ctx, &clusterv1.ListNodesRequest{ConnectedOnly: true, IncludeSelf: true})
	require.NoError(t, err)
	var ids []string
	for _, n := range list.GetNodes() {
		ids = append(ids, n.GetId())
		require.Equal(t, n.GetId() == a.LocalID().String(), n.GetLocal(), n.GetId())
	}
	require.Equal(t, []string{a.LocalID().String(), b.LocalID().String(), c.LocalID().String()}, ids, "sorted by id, the asked node included")

	require.NoError(t, b.Stop(ctx))
	require.Eventually(t, func() bool { return len(connectedIDs(a)) == 1 }, 5*time.Second, 10*time.Millisecond)
	list, err = api.ListNodes(ctx, &clusterv1.ListNodesRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetNodes(), 1, "a node that left is not listed unless asked for")
	list, err = api.ListNodes(ctx, &clusterv1.ListNodesRequest{IncludeLeft: true})
	require.NoError(t, err)
	require.Len(t, list.GetNodes(), 2)
	require.Equal(t, b.LocalID().String(), list.GetNodes()[0].GetId())
	require.Equal(t, clusterv1.NodeStatus_NODE_STATUS_LEFT, list.GetNodes()[0].GetStatus())
	require.False(t, list.GetNodes()[0].GetLocal())
	left, err := a.LeftNodes()
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, membership.StatusLeft, left[0].Status)
}

func TestProcessCountAndMetadataReachPeersWithTheNextHeartbeat(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	require.NoError(t, b.SetProcessCount(7))
	require.NoError(t, b.SetMetadata(map[string]string{"zone": "z1"}))
	require.Eventually(t, func() bool {
		info, err := a.Node(b.LocalID())
		return err == nil && info.ProcessCount == 7 && info.Metadata["zone"] == "z1"
	}, 5*time.Second, 10*time.Millisecond, "a should see b's new process count and metadata")
}

// UpdateLocalNode changes a node's attributes through the API; the peer's watcher gets
// node_updated well before the next heartbeat (a minute away here), and OnNodeUpdated fires.
func TestUpdateLocalNodeReachesAPeerAsNodeUpdatedAtOnce(t *testing.T) {
	slow := func(cfg *membership.Config) *membership.Config { cfg.HeartbeatInterval = time.Minute; return cfg }
	a := startNode(t, slow(testConfig("a")))
	b := startNode(t, slow(testConfig("b", a.LocalID().String())))
	requireFullMesh(t, 5*time.Second, a, b)
	updated := make(chan membership.NodeInfo, 4)
	defer a.OnNodeUpdated(func(n membership.NodeInfo) { updated <- n })()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := apiClient(t, a).WatchEvents(ctx, &clusterv1.WatchEventsRequest{Snapshot: true})
	require.NoError(t, err)
	_, err = stream.Recv() // the snapshot
	require.NoError(t, err)

	count := uint32(4)
	resp, err := apiClient(t, b).UpdateLocalNode(t.Context(), &clusterv1.UpdateLocalNodeRequest{
		Metadata: map[string]string{"role": "db"}, ProcessCount: &count,
	})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"role": "db"}, resp.GetNode().GetMetadata())
	require.Equal(t, uint32(4), resp.GetNode().GetProcessCount())

	got, err := stream.Recv()
	require.NoError(t, err)
	up := got.GetEvent().GetNodeUpdated()
	require.NotNil(t, up, "node_updated: %v", got)
	require.Equal(t, b.LocalID().String(), up.GetNode().GetId())
	require.Equal(t, map[string]string{"role": "db"}, up.GetNode().GetMetadata())
	require.Equal(t, uint32(4), up.GetNode().GetProcessCount())
	select {
	case n := <-updated:
		require.Equal(t, b.LocalID(), n.ID)
		require.Equal(t, 4, n.ProcessCount)
	case <-time.After(5 * time.Second):
		t.Fatal("OnNodeUpdated did not fire")
	}

	// Only the process count: the metadata stays. Clearing the metadata.
	count = 5
	resp, err = apiClient(t, b).UpdateLocalNode(t.Context(), &clusterv1.UpdateLocalNodeRequest{ProcessCount: &count})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"role": "db"}, resp.GetNode().GetMetadata())
	resp, err = apiClient(t, b).UpdateLocalNode(t.Context(), &clusterv1.UpdateLocalNodeRequest{ClearMetadata: true})
	require.NoError(t, err)
	require.Empty(t, resp.GetNode().GetMetadata())
	require.Equal(t, uint32(5), resp.GetNode().GetProcessCount())

	_, err = apiClient(t, b).UpdateLocalNode(t.Context(), &clusterv1.UpdateLocalNodeRequest{Metadata: map[string]string{"": "x"}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	count = 1 << 31
	_, err = apiClient(t, b).UpdateLocalNode(t.Context(), &clusterv1.UpdateLocalNodeRequest{ProcessCount: &count})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}

func TestUpdateLocalNodeNeedsTheAPIToken(t *testing.T) {
	a, err := Start(t.Context(), testConfig("a"), WithLogger(quietLogger()), WithAPIToken("the-token"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	_, err = apiClient(t, a).UpdateLocalNode(t.Context(), &clusterv1.UpdateLocalNodeRequest{Metadata: map[string]string{"k": "v"}})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	c, err := client.Dial(a.Addr().String(), client.WithToken("the-token"))
	require.NoError(t, err)
	defer c.Close()
	info, err := c.UpdateLocalNode(t.Context(), membership.LocalUpdate{Metadata: map[string]string{"k": "v"}})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"k": "v"}, info.Metadata)
}

func TestWatchEventsSnapshotThenLiveEventsWithoutGap(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	api := apiClient(t, a)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := api.WatchEvents(ctx, &clusterv1.WatchEventsRequest{Snapshot: true})
	require.NoError(t, err)
	md, err := stream.Header()
	require.NoError(t, err)
	require.Equal(t, []string{"true"}, md.Get("x-watch-registered"), "headers tell the client the watch is registered")
	first, err := stream.Recv()
	require.NoError(t, err)
	snap := first.GetEvent().GetSnapshot()
	require.NotNil(t, snap, "the first message is the snapshot")
	require.Len(t, snap.GetNodes(), 1)

	c := startNode(t, testConfig("c", a.LocalID().String()))
	require.NoError(t, c.Stop(t.Context()))
	var kinds []string
	seq := first.GetEvent().GetSequence()
	for len(kinds) < 2 {
		resp, err := stream.Recv()
		require.NoError(t, err)
		e := resp.GetEvent()
		require.Equal(t, seq+1, e.GetSequence(), "sequence numbers have no gap")
		seq = e.GetSequence()
		switch {
		case e.GetNodeUp() != nil:
			kinds = append(kinds, "up "+e.GetNodeUp().GetNode().GetName())
		case e.GetNodeDown() != nil:
			kinds = append(kinds, "down "+e.GetNodeDown().GetId()+" "+e.GetNodeDown().GetReason().String())
		}
	}
	require.Equal(t, []string{"up c", "down " + c.LocalID().String() + " NODE_DOWN_REASON_GRACEFUL_SHUTDOWN"}, kinds)
}

func TestSlowWatcherIsCutOffWithResourceExhausted(t *testing.T) {
	a := startNode(t, testConfig("a"))
	svc := &apiService{cluster: a.cluster, watchBuffer: 2, watchers: func(int) {}}
	stream := &stuckStream{ctx: t.Context(), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- svc.WatchEvents(&clusterv1.WatchEventsRequest{}, stream) }()
	require.Eventually(t, stream.registered, 5*time.Second, 5*time.Millisecond)
	// The watcher's first Send blocks; the engine keeps going and overflows its buffer.
	for i := 0; i < 3; i++ {
		n := startNode(t, testConfig("x"+string(rune('a'+i)), a.LocalID().String()))
		require.NoError(t, n.Stop(t.Context()))
	}
	close(stream.release)
	select {
	case err := <-done:
		require.Equal(t, codes.ResourceExhausted, status.Code(err), "got %v", err)
		require.Contains(t, status.Convert(err).Message(), "fell more than 2 events behind")
	case <-time.After(10 * time.Second):
		t.Fatal("the slow watcher was not cut off")
	}
	requireFullMesh(t, time.Second, a) // the engine was never slowed
}

func TestNodeStopEndsWatchStreamsWithAStatus(t *testing.T) {
	a := startNode(t, testConfig("a"))
	api := apiClient(t, a)
	stream, err := api.WatchEvents(t.Context(), &clusterv1.WatchEventsRequest{})
	require.NoError(t, err)
	_, err = stream.Header()
	require.NoError(t, err)
	require.NoError(t, a.Stop(t.Context()))
	for {
		_, err = stream.Recv()
		if err != nil {
			break
		}
	}
	require.Equal(t, codes.Unavailable, status.Code(err), "got %v", err)
}

func TestClientWatchResumesWithoutDuplicatesOrMisses(t *testing.T) {
	a, aNet := startFaultyNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	c, err := client.Dial(a.Addr().String())
	require.NoError(t, err)
	defer c.Close()

	var mu sync.Mutex
	var got []client.Event
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, func(e client.Event) {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		})
	}()
	events := func() []client.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]client.Event(nil), got...)
	}
	require.Eventually(t, func() bool { return len(events()) == 1 }, 5*time.Second, 10*time.Millisecond, "the snapshot comes first")
	require.True(t, events()[0].Snapshot)

	// Break the stream by crashing a and restarting it, and change the cluster meanwhile.
	crash(t, a, aNet)
	require.NoError(t, b.Stop(t.Context()))
	aNet.Heal()
	require.NoError(t, a.Start(t.Context()))
	require.Eventually(t, func() bool {
		for _, e := range events() {
			if e.Type == membership.EventNodeDown && e.Node.ID == b.LocalID() {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the watcher learns b went down even though it happened while the stream was broken")
	downs := 0
	for _, e := range events() {
		if e.Type == membership.EventNodeDown && e.Node.ID == b.LocalID() {
			downs++
			require.True(t, e.Resynced, "b's down happened while the stream was broken: it is inferred from the new snapshot")
		}
	}
	require.Equal(t, 1, downs, "one down for b, never two")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// stuckStream is a WatchEvents server stream whose Send blocks until released.
type stuckStream struct {
	grpc.ServerStreamingServer[clusterv1.WatchEventsResponse]
	ctx     context.Context
	release chan struct{}
	mu      sync.Mutex
	header  bool
}

func (s *stuckStream) Context() context.Context { return s.ctx }

func (s *stuckStream) SendHeader(metadata.MD) error {
	s.mu.Lock()
	s.header = true
	s.mu.Unlock()
	return nil
}

func (s *stuckStream) registered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header
}

func (s *stuckStream) Send(*clusterv1.WatchEventsResponse) error {
	<-s.release
	return nil
}

// A malformed id of a megabyte is answered with INVALID_ARGUMENT and a short message, which
// fits the headers of a client that accepts no more than 16 KiB of them; the Go client's
// error quotes the id only in part too.
func TestGetNodeWithAHugeMalformedIDAnswersInvalidArgumentBriefly(t *testing.T) {
	a := startNode(t, testConfig("a"))
	cc, err := grpc.NewClient(a.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithMaxHeaderListSize(16<<10))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	api := clusterv1.NewMembershipServiceClient(cc)
	// Just under the 64 KiB a request may be (a larger one is refused unread, RESOURCE_EXHAUSTED).
	huge := "1" + strings.Repeat("a", 60000-5) + "@h:1"

	_, err = api.GetNode(t.Context(), &clusterv1.GetNodeRequest{Id: huge})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "got %.300v", err)
	msg := status.Convert(err).Message()
	require.Less(t, len(msg), 400, "%.300q", msg)
	require.Contains(t, msg, "(60000 bytes)")
	require.Contains(t, msg, "name must be at most 64 characters")

	c, err := client.Dial(a.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Node(t.Context(), huge)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Less(t, len(err.Error()), 1000, "%.300q", err.Error())
}

// A node given a seed that nobody answers at is not healthy: GetHealth says no seed is
// reachable, why, and 0% availability, until a node appears there.
func TestGetHealthSaysWhenNoSeedIsReachable(t *testing.T) {
	port := freePorts(t, 1)[0]
	seed := fmt.Sprintf("127.0.0.1:%d", port)
	a := startNode(t, testConfig("a", seed))
	api := apiClient(t, a)

	h, err := api.GetHealth(t.Context(), &clusterv1.GetHealthRequest{})
	require.NoError(t, err)
	require.Equal(t, clusterv1.HealthStatus_HEALTH_STATUS_CRITICAL, h.GetStatus())
	require.Zero(t, h.GetAvailabilityPercent())
	require.Contains(t, h.GetMessage(), "no seed is reachable: "+seed)
	require.Len(t, h.GetSeeds(), 1)
	require.Equal(t, seed, h.GetSeeds()[0].GetSeed())
	require.False(t, h.GetSeeds()[0].GetReachable())
	require.Contains(t, h.GetSeeds()[0].GetLastError(), "connection refused")
	require.GreaterOrEqual(t, h.GetSeeds()[0].GetFailedDials(), uint32(1))

	cfg := testConfig("b")
	cfg.Port = port
	b := startNode(t, cfg)
	requireFullMesh(t, 10*time.Second, a, b)
	c, err := client.Dial(a.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	report, err := c.Health(t.Context())
	require.NoError(t, err)
	require.Equal(t, membership.HealthHealthy, report.Status, report.Message)
	require.Equal(t, []membership.SeedStatus{{Seed: seed, Reachable: true}}, report.Seeds)
	require.InDelta(t, 100.0, report.AvailabilityPercent, 0.001)
}

// With StopOnBreak, Watch ends with the stream: UNAVAILABLE when the node stops. With OnBreak
// and OnResume, the caller hears of the break once and of the resumption, with the restart.
func TestClientWatchStopOnBreakAndOnBreakOnResume(t *testing.T) {
	a := startNode(t, testConfig("a"))
	c, err := client.Dial(a.Addr().String())
	require.NoError(t, err)
	defer c.Close()

	snapshot := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(t.Context(), func(e client.Event) {
			if e.Snapshot {
				snapshot <- struct{}{}
			}
		}, client.StopOnBreak())
	}()
	<-snapshot
	require.NoError(t, a.Stop(t.Context()))
	select {
	case err := <-done:
		require.Equal(t, codes.Unavailable, status.Code(err), "got %v", err)
		require.Contains(t, err.Error(), "stopped")
	case <-time.After(10 * time.Second):
		t.Fatal("Watch with StopOnBreak did not return when the node stopped")
	}

	require.NoError(t, a.Start(t.Context()))
	var mu sync.Mutex
	var breaks []error
	var resumes []client.Resume
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		done <- c.Watch(ctx, func(e client.Event) {
			if e.Snapshot {
				snapshot <- struct{}{}
			}
		}, client.OnBreak(func(err error) {
			mu.Lock()
			breaks = append(breaks, err)
			mu.Unlock()
		}), client.OnResume(func(r client.Resume) {
			mu.Lock()
			resumes = append(resumes, r)
			mu.Unlock()
		}))
	}()
	<-snapshot
	require.NoError(t, a.Stop(t.Context()))
	require.NoError(t, a.Start(t.Context()))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(resumes) == 1 }, 15*time.Second, 20*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, breaks, 1, "one break, however many attempts to resume failed")
	require.Equal(t, codes.Unavailable, status.Code(breaks[0]))
	require.True(t, resumes[0].NodeRestarted)
	require.False(t, resumes[0].SequenceRestarted, "one process numbers its events on across restarts")
	require.Greater(t, resumes[0].Sequence, resumes[0].LastSequence)
}
