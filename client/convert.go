package client

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/apiconv"
	"github.com/meshnode/meshnode/membership"
)

// fromEvent converts an event from the wire.
func fromEvent(e *clusterv1.Event) Event {
	out := Event{Sequence: e.GetSequence(), Time: e.GetTime().AsTime(), wire: e}
	switch k := e.GetKind().(type) {
	case *clusterv1.Event_NodeUp:
		out.Type = membership.EventNodeUp
		out.Node = apiconv.NodeInfoFromWire(k.NodeUp.GetNode())
	case *clusterv1.Event_NodeDown:
		out.Type = membership.EventNodeDown
		id, _ := membership.ParseNodeID(k.NodeDown.GetId())
		out.Node = membership.NodeInfo{ID: id, Incarnation: k.NodeDown.GetIncarnation(), Status: membership.StatusDisconnected}
		out.Reason = apiconv.DownReasonFromWire(k.NodeDown.GetReason())
	case *clusterv1.Event_NodeUpdated:
		out.Type = membership.EventNodeUpdated
		out.Node = apiconv.NodeInfoFromWire(k.NodeUpdated.GetNode())
	case *clusterv1.Event_StatusChange:
		out.Type = membership.EventStatusChange
		out.Previous = apiconv.ClusterStatusFromWire(k.StatusChange.GetPrevious())
		out.Current = apiconv.ClusterStatusFromWire(k.StatusChange.GetCurrent())
	case *clusterv1.Event_Snapshot:
		out.Snapshot = true
		out.Nodes = apiconv.NodeInfosFromWire(k.Snapshot.GetNodes())
		out.Current = apiconv.ClusterStatusFromWire(k.Snapshot.GetStatus())
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
		out.Kind = &clusterv1.Event_Snapshot{Snapshot: &clusterv1.Snapshot{Nodes: apiconv.NodeInfosToWire(e.Nodes), Status: apiconv.ClusterStatusToWire(e.Current)}}
	case e.Type == membership.EventNodeUp:
		out.Kind = &clusterv1.Event_NodeUp{NodeUp: &clusterv1.NodeUp{Node: apiconv.NodeInfoToWire(e.Node)}}
	case e.Type == membership.EventNodeDown:
		out.Kind = &clusterv1.Event_NodeDown{NodeDown: &clusterv1.NodeDown{
			Id: e.Node.ID.String(), Reason: apiconv.DownReasonToWire(e.Reason), Incarnation: e.Node.Incarnation,
		}}
	case e.Type == membership.EventNodeUpdated:
		out.Kind = &clusterv1.Event_NodeUpdated{NodeUpdated: &clusterv1.NodeUpdated{Node: apiconv.NodeInfoToWire(e.Node)}}
	case e.Type == membership.EventStatusChange:
		out.Kind = &clusterv1.Event_StatusChange{StatusChange: &clusterv1.StatusChange{
			Previous: apiconv.ClusterStatusToWire(e.Previous), Current: apiconv.ClusterStatusToWire(e.Current),
		}}
	}
	return out
}
