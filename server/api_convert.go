package server

import (
	"math"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// toNodeInfo converts a node for the public API.
func toNodeInfo(n membership.NodeInfo) *clusterv1.NodeInfo {
	out := &clusterv1.NodeInfo{
		Id:           n.ID.String(),
		Name:         n.ID.Name(),
		Host:         n.ID.Host(),
		Port:         uint32(n.ID.Port()),
		Status:       toNodeStatus(n.Status),
		ProcessCount: uint32(n.ProcessCount),
		Metadata:     n.Metadata,
		Incarnation:  n.Incarnation,
		Direct:       n.Direct,
	}
	if !n.LastHeartbeat.IsZero() {
		out.LastHeartbeat = timestamppb.New(n.LastHeartbeat)
	}
	if n.Uptime > 0 {
		out.Uptime = durationpb.New(n.Uptime)
	}
	return out
}

func toNodeInfos(nodes []membership.NodeInfo) []*clusterv1.NodeInfo {
	out := make([]*clusterv1.NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = toNodeInfo(n)
	}
	return out
}

func toNodeStatus(s membership.NodeStatus) clusterv1.NodeStatus {
	switch s {
	case membership.StatusConnecting:
		return clusterv1.NodeStatus_NODE_STATUS_CONNECTING
	case membership.StatusConnected:
		return clusterv1.NodeStatus_NODE_STATUS_CONNECTED
	case membership.StatusDisconnected:
		return clusterv1.NodeStatus_NODE_STATUS_DISCONNECTED
	case membership.StatusLeft:
		return clusterv1.NodeStatus_NODE_STATUS_LEFT
	default:
		return clusterv1.NodeStatus_NODE_STATUS_UNSPECIFIED
	}
}

func toClusterStatus(s membership.ClusterStatus) clusterv1.ClusterStatus {
	switch s {
	case membership.ClusterStarting:
		return clusterv1.ClusterStatus_CLUSTER_STATUS_STARTING
	case membership.ClusterRunning:
		return clusterv1.ClusterStatus_CLUSTER_STATUS_RUNNING
	case membership.ClusterStopping:
		return clusterv1.ClusterStatus_CLUSTER_STATUS_STOPPING
	case membership.ClusterStopped:
		return clusterv1.ClusterStatus_CLUSTER_STATUS_STOPPED
	default:
		return clusterv1.ClusterStatus_CLUSTER_STATUS_UNSPECIFIED
	}
}

func toDownReason(r membership.DownReason) clusterv1.NodeDownReason {
	switch r {
	case membership.ReasonHeartbeatTimeout:
		return clusterv1.NodeDownReason_NODE_DOWN_REASON_HEARTBEAT_TIMEOUT
	case membership.ReasonConnectionClosed:
		return clusterv1.NodeDownReason_NODE_DOWN_REASON_CONNECTION_CLOSED
	case membership.ReasonConnectionRefused:
		return clusterv1.NodeDownReason_NODE_DOWN_REASON_CONNECTION_REFUSED
	case membership.ReasonGracefulShutdown:
		return clusterv1.NodeDownReason_NODE_DOWN_REASON_GRACEFUL_SHUTDOWN
	default:
		return clusterv1.NodeDownReason_NODE_DOWN_REASON_UNSPECIFIED
	}
}

func toHealthStatus(h membership.HealthStatus) clusterv1.HealthStatus {
	switch h {
	case membership.HealthHealthy:
		return clusterv1.HealthStatus_HEALTH_STATUS_HEALTHY
	case membership.HealthDegraded:
		return clusterv1.HealthStatus_HEALTH_STATUS_DEGRADED
	case membership.HealthCritical:
		return clusterv1.HealthStatus_HEALTH_STATUS_CRITICAL
	default:
		return clusterv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED
	}
}

// toEvent converts an event for the public API.
func toEvent(e membership.Event) *clusterv1.Event {
	out := &clusterv1.Event{Time: timestamppb.New(e.Time), Sequence: e.Sequence}
	switch e.Type {
	case membership.EventNodeUp:
		out.Kind = &clusterv1.Event_NodeUp{NodeUp: &clusterv1.NodeUp{Node: toNodeInfo(e.Node)}}
	case membership.EventNodeDown:
		out.Kind = &clusterv1.Event_NodeDown{NodeDown: &clusterv1.NodeDown{
			Id: e.Node.ID.String(), Reason: toDownReason(e.Reason), Incarnation: e.Node.Incarnation,
		}}
	case membership.EventNodeUpdated:
		out.Kind = &clusterv1.Event_NodeUpdated{NodeUpdated: &clusterv1.NodeUpdated{Node: toNodeInfo(e.Node)}}
	case membership.EventStatusChange:
		out.Kind = &clusterv1.Event_StatusChange{StatusChange: &clusterv1.StatusChange{
			Previous: toClusterStatus(e.Previous), Current: toClusterStatus(e.Current),
		}}
	}
	return out
}

func toEvents(events []membership.Event) []*clusterv1.Event {
	out := make([]*clusterv1.Event, len(events))
	for i, e := range events {
		out[i] = toEvent(e)
	}
	return out
}

// toSeedStatuses converts the seeds of a health report for the public API.
func toSeedStatuses(seeds []membership.SeedStatus) []*clusterv1.SeedStatus {
	if len(seeds) == 0 {
		return nil
	}
	out := make([]*clusterv1.SeedStatus, len(seeds))
	for i, s := range seeds {
		out[i] = &clusterv1.SeedStatus{
			Seed: s.Seed, Reachable: s.Reachable, LastError: s.LastError, FailedDials: uint32(min(s.FailedDials, math.MaxUint32)),
		}
	}
	return out
}
