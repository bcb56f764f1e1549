package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/apiconv"
	"github.com/meshnode/meshnode/internal/buildinfo"
	"github.com/meshnode/meshnode/membership"
)

// DefaultWatchBuffer is how many events a watcher may fall behind before it is cut off.
const DefaultWatchBuffer = 1024

// apiService serves the public MembershipService.
type apiService struct {
	clusterv1.UnimplementedMembershipServiceServer
	cluster     *membership.Cluster
	watchBuffer int
	watchers    func(delta int)
	// maxWatchers caps the WatchEvents streams in progress (0: no cap); active counts them.
	maxWatchers int64
	active      atomic.Int64
	report      *limitReporter
	logger      *slog.Logger // nil: no log
}

// apiError maps engine errors to gRPC status codes, in one place.
func apiError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, membership.ErrNotRunning):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, membership.ErrNodeNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, membership.ErrInvalidNodeID), errors.Is(err, membership.ErrInvalidConfig):
		return status.Error(codes.InvalidArgument, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

// GetLocalNode returns this node's info, status and uptime.
func (s *apiService) GetLocalNode(context.Context, *clusterv1.GetLocalNodeRequest) (*clusterv1.GetLocalNodeResponse, error) {
	resp := &clusterv1.GetLocalNodeResponse{Status: apiconv.ClusterStatusToWire(s.cluster.Status()), Build: buildinfo.Get().Proto()}
	info, err := s.cluster.LocalNode()
	if err != nil {
		id := s.cluster.LocalID()
		resp.Node = &clusterv1.NodeInfo{Id: id.String(), Name: id.Name(), Host: id.Host(), Port: uint32(id.Port()), Status: clusterv1.NodeStatus_NODE_STATUS_DISCONNECTED}
		return resp, nil
	}
	resp.Node = apiconv.NodeInfoToWire(info)
	resp.Uptime = durationpb.New(info.Uptime)
	return resp, nil
}

// ListNodes returns the known (or connected) nodes, with the serving node and the nodes that
// left when asked for, sorted by id.
func (s *apiService) ListNodes(_ context.Context, req *clusterv1.ListNodesRequest) (*clusterv1.ListNodesResponse, error) {
	list := s.cluster.Nodes
	if req.GetConnectedOnly() {
		list = s.cluster.ConnectedNodes
	}
	nodes, err := list()
	if err != nil {
		return nil, apiError(err)
	}
	if req.GetIncludeLeft() && !req.GetConnectedOnly() {
		left, err := s.cluster.LeftNodes()
		if err != nil {
			return nil, apiError(err)
		}
		nodes = append(nodes, left...)
	}
	self := s.cluster.LocalID()
	if req.GetIncludeSelf() {
		info, err := s.cluster.LocalNode()
		if err != nil {
			return nil, apiError(err)
		}
		nodes = append(nodes, info)
		slices.SortStableFunc(nodes, func(a, b membership.NodeInfo) int { return a.ID.Compare(b.ID) })
	} else if req.GetIncludeLeft() {
		slices.SortStableFunc(nodes, func(a, b membership.NodeInfo) int { return a.ID.Compare(b.ID) })
	}
	out := apiconv.NodeInfosToWire(nodes)
	for i, n := range nodes {
		out[i].Local = req.GetIncludeSelf() && n.ID == self && n.Status != membership.StatusLeft
	}
	return &clusterv1.ListNodesResponse{Nodes: out}, nil
}

// GetNode returns one node by id.
func (s *apiService) GetNode(_ context.Context, req *clusterv1.GetNodeRequest) (*clusterv1.GetNodeResponse, error) {
	id, err := membership.ParseNodeID(req.GetId())
	if err != nil {
		return nil, apiError(err)
	}
	info, err := s.cluster.Node(id)
	if err != nil {
		return nil, apiError(err)
	}
	return &clusterv1.GetNodeResponse{Node: apiconv.NodeInfoToWire(info)}, nil
}

// UpdateLocalNode changes the local node's process count and metadata; the cluster pushes the
// change to every peer at once.
func (s *apiService) UpdateLocalNode(_ context.Context, req *clusterv1.UpdateLocalNodeRequest) (*clusterv1.UpdateLocalNodeResponse, error) {
	var u membership.LocalUpdate
	if len(req.GetMetadata()) > 0 || req.GetClearMetadata() {
		u.Metadata = req.GetMetadata()
		if u.Metadata == nil {
			u.Metadata = map[string]string{}
		}
	}
	if req.ProcessCount != nil {
		n := int(req.GetProcessCount())
		u.ProcessCount = &n
	}
	if _, err := s.cluster.UpdateLocal(u); err != nil {
		return nil, apiError(err)
	}
	info, err := s.cluster.LocalNode()
	if err != nil {
		return nil, apiError(err)
	}
	if s.logger != nil {
		s.logger.Info("local node updated through the API", "metadata", formatMetadata(info.Metadata), "process_count", info.ProcessCount)
	}
	return &clusterv1.UpdateLocalNodeResponse{Node: apiconv.NodeInfoToWire(info)}, nil
}

// GetHealth returns the health report.
func (s *apiService) GetHealth(context.Context, *clusterv1.GetHealthRequest) (*clusterv1.GetHealthResponse, error) {
	h := s.cluster.Health()
	return &clusterv1.GetHealthResponse{
		Status:              apiconv.HealthStatusToWire(h.Status),
		ConnectedNodes:      uint32(h.Connected),
		KnownNodes:          uint32(h.Known),
		AvailabilityPercent: h.AvailabilityPercent,
		RecentEvents:        toEvents(h.RecentEvents),
		Uptime:              durationpb.New(h.Uptime),
		RecentDownCount:     uint32(h.RecentDowns),
		RecentWindow:        durationpb.New(h.Window),
		Message:             h.Message,
		Seeds:               toSeedStatuses(h.Seeds),
	}, nil
}

// WatchEvents streams events: the snapshot first if asked, then every event in order. A
// watcher that falls more than the buffer behind is cut off with RESOURCE_EXHAUSTED; the
// engine never waits for it. Past the watchers cap a new watcher is refused with
// RESOURCE_EXHAUSTED. The stream ends with UNAVAILABLE when the node stops.
func (s *apiService) WatchEvents(req *clusterv1.WatchEventsRequest, stream grpc.ServerStreamingServer[clusterv1.WatchEventsResponse]) error {
	if n := s.active.Add(1); s.maxWatchers > 0 && n > s.maxWatchers {
		s.active.Add(-1)
		s.report.hit(stream.Context(), limitWatchers)
		return status.Errorf(codes.ResourceExhausted, "too many watchers (limit %d); retry later", s.maxWatchers)
	}
	defer s.active.Add(-1)
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	events := make(chan membership.Event, s.watchBuffer)
	errOverflow := status.Errorf(codes.ResourceExhausted, "watcher fell more than %d events behind and was cut off; reconnect with snapshot to resync", s.watchBuffer)
	nodes, clusterStatus, lastSeq, unsubscribe := s.cluster.Watch(func(e membership.Event) {
		select {
		case events <- e:
		default:
			cancel(errOverflow)
		}
	})
	defer unsubscribe()
	s.watchers(1)
	defer s.watchers(-1)
	if err := stream.SendHeader(metadata.Pairs("x-watch-registered", "true")); err != nil {
		return err
	}
	if req.GetSnapshot() {
		snap := &clusterv1.Event{
			Time:     timestamppb.Now(),
			Sequence: lastSeq,
			Kind: &clusterv1.Event_Snapshot{Snapshot: &clusterv1.Snapshot{
				Nodes: apiconv.NodeInfosToWire(nodes), Status: apiconv.ClusterStatusToWire(clusterStatus),
			}},
		}
		if err := stream.Send(&clusterv1.WatchEventsResponse{Event: snap}); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); errors.Is(cause, errOverflow) {
				return errOverflow
			}
			return status.FromContextError(ctx.Err()).Err()
		case e := <-events:
			if err := stream.Send(&clusterv1.WatchEventsResponse{Event: toEvent(e)}); err != nil {
				return err
			}
			if e.Type == membership.EventStatusChange && e.Current == membership.ClusterStopped {
				return status.Error(codes.Unavailable, fmt.Sprintf("node %s stopped", s.cluster.LocalID()))
			}
		}
	}
}

// formatMetadata renders metadata as k=v pairs sorted by key, comma-separated.
func formatMetadata(md map[string]string) string {
	parts := make([]string, 0, len(md))
	for _, k := range slices.Sorted(maps.Keys(md)) {
		parts = append(parts, k+"="+md[k])
	}
	return strings.Join(parts, ",")
}
