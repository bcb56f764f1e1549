// Package apiconv converts between the membership types and the public API's wire types
// (cluster.v1), in both directions, from one table per enum: the server and the Go client
// share it, so they can never disagree on a value or a fallback.
package apiconv

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// pair is one value of an enum on both sides.
type pair[M, P comparable] struct {
	m M
	p P
}

// toWire returns v's wire value in table, unknown if v is not in it.
func toWire[M, P comparable](table []pair[M, P], v M, unknown P) P {
	for _, e := range table {
		if e.m == v {
			return e.p
		}
	}
	return unknown
}

// fromWire returns v's membership value in table, unknown if v is not in it.
func fromWire[M, P comparable](table []pair[M, P], v P, unknown M) M {
	for _, e := range table {
		if e.p == v {
			return e.m
		}
	}
	return unknown
}

var nodeStatuses = []pair[membership.NodeStatus, clusterv1.NodeStatus]{
	{membership.StatusConnecting, clusterv1.NodeStatus_NODE_STATUS_CONNECTING},
	{membership.StatusConnected, clusterv1.NodeStatus_NODE_STATUS_CONNECTED},
	{membership.StatusDisconnected, clusterv1.NodeStatus_NODE_STATUS_DISCONNECTED},
	{membership.StatusLeft, clusterv1.NodeStatus_NODE_STATUS_LEFT},
}

var clusterStatuses = []pair[membership.ClusterStatus, clusterv1.ClusterStatus]{
	{membership.ClusterStarting, clusterv1.ClusterStatus_CLUSTER_STATUS_STARTING},
	{membership.ClusterRunning, clusterv1.ClusterStatus_CLUSTER_STATUS_RUNNING},
	{membership.ClusterStopping, clusterv1.ClusterStatus_CLUSTER_STATUS_STOPPING},
	{membership.ClusterStopped, clusterv1.ClusterStatus_CLUSTER_STATUS_STOPPED},
}

var downReasons = []pair[membership.DownReason, clusterv1.NodeDownReason]{
	{membership.ReasonHeartbeatTimeout, clusterv1.NodeDownReason_NODE_DOWN_REASON_HEARTBEAT_TIMEOUT},
	{membership.ReasonConnectionClosed, clusterv1.NodeDownReason_NODE_DOWN_REASON_CONNECTION_CLOSED},
	{membership.ReasonConnectionRefused, clusterv1.NodeDownReason_NODE_DOWN_REASON_CONNECTION_REFUSED},
	{membership.ReasonGracefulShutdown, clusterv1.NodeDownReason_NODE_DOWN_REASON_GRACEFUL_SHUTDOWN},
}

var healthStatuses = []pair[membership.HealthStatus, clusterv1.HealthStatus]{
	{membership.HealthHealthy, clusterv1.HealthStatus_HEALTH_STATUS_HEALTHY},
	{membership.HealthDegraded, clusterv1.HealthStatus_HEALTH_STATUS_DEGRADED},
	{membership.HealthCritical, clusterv1.HealthStatus_HEALTH_STATUS_CRITICAL},
}

// NodeStatusToWire converts a node status; an unknown one is UNSPECIFIED.
func NodeStatusToWire(s membership.NodeStatus) clusterv1.NodeStatus {
	return toWire(nodeStatuses, s, clusterv1.NodeStatus_NODE_STATUS_UNSPECIFIED)
}

// NodeStatusFromWire converts a node status; an unknown one is the zero status.
func NodeStatusFromWire(s clusterv1.NodeStatus) membership.NodeStatus {
	return fromWire(nodeStatuses, s, 0)
}

// ClusterStatusToWire converts a cluster status; an unknown one is UNSPECIFIED.
func ClusterStatusToWire(s membership.ClusterStatus) clusterv1.ClusterStatus {
	return toWire(clusterStatuses, s, clusterv1.ClusterStatus_CLUSTER_STATUS_UNSPECIFIED)
}

// ClusterStatusFromWire converts a cluster status; an unknown one is stopped (a node that
// does not say it runs is not relied on).
func ClusterStatusFromWire(s clusterv1.ClusterStatus) membership.ClusterStatus {
	return fromWire(clusterStatuses, s, membership.ClusterStopped)
}

// DownReasonToWire converts a down reason; an unknown one is UNSPECIFIED.
func DownReasonToWire(r membership.DownReason) clusterv1.NodeDownReason {
	return toWire(downReasons, r, clusterv1.NodeDownReason_NODE_DOWN_REASON_UNSPECIFIED)
}

// DownReasonFromWire converts a down reason; an unknown one is the zero reason.
func DownReasonFromWire(r clusterv1.NodeDownReason) membership.DownReason {
	return fromWire(downReasons, r, 0)
}

// HealthStatusToWire converts a health grade; an unknown one is UNSPECIFIED.
func HealthStatusToWire(h membership.HealthStatus) clusterv1.HealthStatus {
	return toWire(healthStatuses, h, clusterv1.HealthStatus_HEALTH_STATUS_UNSPECIFIED)
}

// HealthStatusFromWire converts a health grade; an unknown one is the zero grade.
func HealthStatusFromWire(h clusterv1.HealthStatus) membership.HealthStatus {
	return fromWire(healthStatuses, h, 0)
}

// NodeInfoToWire converts a node for the public API.
func NodeInfoToWire(n membership.NodeInfo) *clusterv1.NodeInfo {
	out := &clusterv1.NodeInfo{
		Id:           n.ID.String(),
		Name:         n.ID.Name(),
		Host:         n.ID.Host(),
		Port:         uint32(n.ID.Port()),
		Status:       NodeStatusToWire(n.Status),
		ProcessCount: uint32(max(n.ProcessCount, 0)),
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

// NodeInfosToWire converts nodes for the public API.
func NodeInfosToWire(nodes []membership.NodeInfo) []*clusterv1.NodeInfo {
	out := make([]*clusterv1.NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = NodeInfoToWire(n)
	}
	return out
}

// NodeInfoFromWire converts a node from the wire. An id that does not parse (a server
// speaking another dialect) leaves ID zero rather than failing the whole call.
func NodeInfoFromWire(n *clusterv1.NodeInfo) membership.NodeInfo {
	id, _ := membership.ParseNodeID(n.GetId())
	out := membership.NodeInfo{
		ID:           id,
		Incarnation:  n.GetIncarnation(),
		Direct:       n.GetDirect(),
		Status:       NodeStatusFromWire(n.GetStatus()),
		ProcessCount: int(n.GetProcessCount()),
		Metadata:     n.GetMetadata(),
	}
	if n.GetLastHeartbeat() != nil {
		out.LastHeartbeat = n.GetLastHeartbeat().AsTime()
	}
	if n.GetUptime() != nil {
		out.Uptime = n.GetUptime().AsDuration()
	}
	return out
}

// NodeInfosFromWire converts nodes from the wire.
func NodeInfosFromWire(nodes []*clusterv1.NodeInfo) []membership.NodeInfo {
	out := make([]membership.NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = NodeInfoFromWire(n)
	}
	return out
}
