package client

import (
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// fromNodeInfo converts a node from the wire. An id that does not parse (a server speaking
// another dialect) leaves ID zero rather than failing the whole call.
func fromNodeInfo(n *clusterv1.NodeInfo) membership.NodeInfo {
	id, _ := membership.ParseNodeID(n.GetId())
	out := membership.NodeInfo{
		ID:           id,
		Incarnation:  n.GetIncarnation(),
		Direct:       n.GetDirect(),
		Status:       fromNodeStatus(n.GetStatus()),
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

func fromNodeInfos(nodes []*clusterv1.NodeInfo) []membership.NodeInfo {
	out := make([]membership.NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = fromNodeInfo(n)
	}
	return out
}

func fromNodeStatus(s clusterv1.NodeStatus) membership.NodeStatus {
	switch s {
	case clusterv1.NodeStatus_NODE_STATUS_CONNECTING:
		return membership.StatusConnecting
	case clusterv1.NodeStatus_NODE_STATUS_CONNECTED:
		return membership.StatusConnected
	case clusterv1.NodeStatus_NODE_STATUS_DISCONNECTED:
		return membership.StatusDisconnected
	default:
		return 0
	}
}

func fromClusterStatus(s clusterv1.ClusterStatus) membership.ClusterStatus {
	switch s {
	case clusterv1.ClusterStatus_CLUSTER_STATUS_STARTING:
		return membership.ClusterStarting
	case clusterv1.ClusterStatus_CLUSTER_STATUS_RUNNING:
		return membership.ClusterRunning
	case clusterv1.ClusterStatus_CLUSTER_STATUS_STOPPING:
		return membership.ClusterStopping
	default:
		return membership.ClusterStopped
	}
}

func fromDownReason(r clusterv1.NodeDownReason) membership.DownReason {
	switch r {
	case clusterv1.NodeDownReason_NODE_DOWN_REASON_HEARTBEAT_TIMEOUT:
		return membership.ReasonHeartbeatTimeout
	case clusterv1.NodeDownReason_NODE_DOWN_REASON_CONNECTION_CLOSED:
		return membership.ReasonConnectionClosed
	case clusterv1.NodeDownReason_NODE_DOWN_REASON_CONNECTION_REFUSED:
		return membership.ReasonConnectionRefused
	case clusterv1.NodeDownReason_NODE_DOWN_REASON_GRACEFUL_SHUTDOWN:
		return membership.ReasonGracefulShutdown
	default:
		return 0
	}
}

func fromHealthStatus(h clusterv1.HealthStatus) membership.HealthStatus {
	switch h {
	case clusterv1.HealthStatus_HEALTH_STATUS_HEALTHY:
		return membership.HealthHealthy
	case clusterv1.HealthStatus_HEALTH_STATUS_DEGRADED:
		return membership.HealthDegraded
	case clusterv1.HealthStatus_HEALTH_STATUS_CRITICAL:
		return membership.HealthCritical
	default:
		return 0
	}
}

// fromEvent converts an event from the wire.
func fromEvent(e *clusterv1.Event) Event {
	out := Event{Sequence: e.GetSequence(), Time: e.GetTime().AsTime()}
	switch k := e.GetKind().(type) {
	case *clusterv1.Event_NodeUp:
		out.Type = membership.EventNodeUp
		out.Node = fromNodeInfo(k.NodeUp.GetNode())
	case *clusterv1.Event_NodeDown:
		out.Type = membership.EventNodeDown
		id, _ := membership.ParseNodeID(k.NodeDown.GetId())
		out.Node = membership.NodeInfo{ID: id, Incarnation: k.NodeDown.GetIncarnation(), Status: membership.StatusDisconnected}
		out.Reason = fromDownReason(k.NodeDown.GetReason())
	case *clusterv1.Event_StatusChange:
		out.Type = membership.EventStatusChange
		out.Previous = fromClusterStatus(k.StatusChange.GetPrevious())
		out.Current = fromClusterStatus(k.StatusChange.GetCurrent())
	case *clusterv1.Event_Snapshot:
		out.Snapshot = true
		out.Nodes = fromNodeInfos(k.Snapshot.GetNodes())
		out.Current = fromClusterStatus(k.Snapshot.GetStatus())
	}
	return out
}
