package server

import (
	"math"

	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/apiconv"
	"github.com/meshnode/meshnode/membership"
)

// toEvent converts an event for the public API.
func toEvent(e membership.Event) *clusterv1.Event {
	out := &clusterv1.Event{Time: timestamppb.New(e.Time), Sequence: e.Sequence}
	switch e.Type {
	case membership.EventNodeUp:
		out.Kind = &clusterv1.Event_NodeUp{NodeUp: &clusterv1.NodeUp{Node: apiconv.NodeInfoToWire(e.Node)}}
	case membership.EventNodeDown:
		out.Kind = &clusterv1.Event_NodeDown{NodeDown: &clusterv1.NodeDown{
			Id: e.Node.ID.String(), Reason: apiconv.DownReasonToWire(e.Reason), Incarnation: e.Node.Incarnation,
		}}
	case membership.EventNodeUpdated:
		out.Kind = &clusterv1.Event_NodeUpdated{NodeUpdated: &clusterv1.NodeUpdated{Node: apiconv.NodeInfoToWire(e.Node)}}
	case membership.EventStatusChange:
		out.Kind = &clusterv1.Event_StatusChange{StatusChange: &clusterv1.StatusChange{
			Previous: apiconv.ClusterStatusToWire(e.Previous), Current: apiconv.ClusterStatusToWire(e.Current),
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
