package client

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

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
	case clusterv1.NodeStatus_NODE_STATUS_LEFT:
		return membership.StatusLeft
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
	out := Event{Sequence: e.GetSequence(), Time: e.GetTime().AsTime(), wire: e}
	switch k := e.GetKind().(type) {
	case *clusterv1.Event_NodeUp:
		out.Type = membership.EventNodeUp
		out.Node = fromNodeInfo(k.NodeUp.GetNode())
	case *clusterv1.Event_NodeDown:
		out.Type = membership.EventNodeDown
		id, _ := membership.ParseNodeID(k.NodeDown.GetId())
		out.Node = membership.NodeInfo{ID: id, Incarnation: k.NodeDown.GetIncarnation(), Status: membership.StatusDisconnected}
		out.Reason = fromDownReason(k.NodeDown.GetReason())
	case *clusterv1.Event_NodeUpdated:
		out.Type = membership.EventNodeUpdated
		out.Node = fromNodeInfo(k.NodeUpdated.GetNode())
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

// Proto returns the event in the API's wire form: the message received, or, for an event
// Watch inferred after a broken stream (Resynced, which has no sequence number), one built
// from its fields.
func (e Event) Proto() *clusterv1.Event {
	if e.wire != nil {
		return e.wire
	}
	out := &clusterv1.Event{Time: timestamppb.New(e.Time), Sequence: e.Sequence}
	switch {
	case e.Snapshot:
		out.Kind = &clusterv1.Event_Snapshot{Snapshot: &clusterv1.Snapshot{Nodes: toNodeInfos(e.Nodes), Status: toClusterStatus(e.Current)}}
	case e.Type == membership.EventNodeUp:
		out.Kind = &clusterv1.Event_NodeUp{NodeUp: &clusterv1.NodeUp{Node: toNodeInfo(e.Node)}}
	case e.Type == membership.EventNodeDown:
		out.Kind = &clusterv1.Event_NodeDown{NodeDown: &clusterv1.NodeDown{
			Id: e.Node.ID.String(), Reason: toDownReason(e.Reason), Incarnation: e.Node.Incarnation,
		}}
	case e.Type == membership.EventNodeUpdated:
		out.Kind = &clusterv1.Event_NodeUpdated{NodeUpdated: &clusterv1.NodeUpdated{Node: toNodeInfo(e.Node)}}
	case e.Type == membership.EventStatusChange:
		out.Kind = &clusterv1.Event_StatusChange{StatusChange: &clusterv1.StatusChange{
			Previous: toClusterStatus(e.Previous), Current: toClusterStatus(e.Current),
		}}
	}
	return out
}

// toNodeInfo converts a node to the wire form.
func toNodeInfo(n membership.NodeInfo) *clusterv1.NodeInfo {
	out := &clusterv1.NodeInfo{
		Id:           n.ID.String(),
		Name:         n.ID.Name(),
		Host:         n.ID.Host(),
		Port:         uint32(n.ID.Port()),
		Status:       toNodeStatus(n.Status),
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
