package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// Event is one event of a watched node.
type Event struct {
	// Type is the kind of event; zero for a snapshot.
	Type membership.EventType
	// Snapshot marks the first event of a watch: Nodes holds every known node.
	Snapshot bool
	// Sequence is the node's event number (a snapshot carries the last event it includes).
	Sequence uint64
	// Time is when the node observed the event.
	Time time.Time
	// Node is the node that went up or down, or changed its process count or metadata.
	Node membership.NodeInfo
	// Nodes are the nodes of a snapshot.
	Nodes []membership.NodeInfo
	// Reason is why a node went down; zero (unknown) for a down inferred after a reconnect.
	Reason membership.DownReason
	// Previous and Current are the statuses of a status change; Current is also the node's
	// status in a snapshot.
	Previous, Current membership.ClusterStatus
	// Resynced marks an up or down inferred, after a broken stream, from the difference
	// between the last state seen and a fresh snapshot.
	Resynced bool

	// wire is the message the event came in, nil for an event built by the client.
	wire *clusterv1.Event
}

// Event returns e as a membership.Event (snapshots have no equivalent and give a zero Type).
func (e Event) Event() membership.Event {
	return membership.Event{
		Type: e.Type, Sequence: e.Sequence, Time: e.Time, Node: e.Node,
		Reason: e.Reason, Previous: e.Previous, Current: e.Current,
	}
}

// WatchOption customises Watch.
type WatchOption func(*watchOptions)

// watchOptions are the settings of one Watch.
type watchOptions struct {
	stopOnBreak bool
	onBreak     func(error)
	onResume    func(Resume)
}

// StopOnBreak makes Watch return as soon as the stream ends, instead of resuming it: with an
// error wrapping the stream's status, codes.Unavailable when the node stopped or cannot be
// reached.
func StopOnBreak() WatchOption { return func(o *watchOptions) { o.stopOnBreak = true } }

// OnBreak calls f with the error that broke the stream, once per break (not once per failed
// attempt to resume), before Watch tries to resume it.
func OnBreak(f func(err error)) WatchOption { return func(o *watchOptions) { o.onBreak = f } }

// OnResume calls f when a broken stream is resumed, before the ups and downs missed meanwhile
// are reported.
func OnResume(f func(Resume)) WatchOption { return func(o *watchOptions) { o.onResume = f } }

// Resume describes a watch resumed after a broken stream.
type Resume struct {
	// NodeRestarted reports that the node is a new incarnation: it restarted while the stream
	// was broken.
	NodeRestarted bool
	// SequenceRestarted reports that the node's sequence numbers started over (a new process
	// numbers its events from 1 again): the new snapshot's is lower than the last one seen.
	SequenceRestarted bool
	// LastSequence is the last sequence number seen before the break; Sequence is the new
	// snapshot's, after which the events go on.
	LastSequence, Sequence uint64
}

// Watch calls handler with a snapshot of the node's view, then with every event, until ctx
// ends (it then returns ctx's error) or the node refuses the watch for good (an
// authentication or unknown-method error). A broken stream is resumed with capped backoff:
// the client re-dials, takes a new snapshot and reports the ups and downs it missed
// (Resynced), so the caller never sees a transition twice or misses one. OnBreak and
// OnResume tell the caller about breaks and resumptions; with StopOnBreak, Watch returns at
// the first break instead.
func (c *Client) Watch(ctx context.Context, handler func(Event), opts ...WatchOption) error {
	var o watchOptions
	for _, opt := range opts {
		opt(&o)
	}
	w := &watcher{client: c, handler: handler, onResume: o.onResume}
	backoff := 100 * time.Millisecond
	for {
		err := w.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent(err) || o.stopOnBreak {
			return fmt.Errorf("watch %s: %w", c.addr, err)
		}
		if w.progressed {
			backoff = 100 * time.Millisecond
			if o.onBreak != nil {
				o.onBreak(err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// permanent reports errors that retrying cannot fix.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented, codes.InvalidArgument:
		return true
	}
	return false
}

// watcher holds what a Watch has reported so far, to resume without duplicates.
type watcher struct {
	client      *Client
	handler     func(Event)
	onResume    func(Resume)
	started     bool
	progressed  bool
	lastSeq     uint64
	incarnation uint64 // the node's, when onResume is set (0: unknown)
	connected   map[membership.NodeID]membership.NodeInfo
}

// errGap ends a stream whose sequence numbers skipped or went back.
var errGap = errors.New("event sequence gap")

// stream runs one WatchEvents stream until it breaks.
func (w *watcher) stream(ctx context.Context) error {
	w.progressed = false
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var incarnation uint64
	if w.onResume != nil {
		// Only the node's own info tells a restart apart from a broken connection.
		local, err := w.client.api.GetLocalNode(ctx, &clusterv1.GetLocalNodeRequest{})
		if err != nil {
			return err
		}
		incarnation = local.GetNode().GetIncarnation()
	}
	stream, err := w.client.api.WatchEvents(ctx, &clusterv1.WatchEventsRequest{Snapshot: true})
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	snap := fromEvent(first.GetEvent())
	if !snap.Snapshot {
		return fmt.Errorf("%w: the first event is not a snapshot", errGap)
	}
	if w.started && w.onResume != nil {
		w.onResume(Resume{
			NodeRestarted:     w.incarnation != 0 && incarnation != w.incarnation,
			SequenceRestarted: snap.Sequence < w.lastSeq,
			LastSequence:      w.lastSeq,
			Sequence:          snap.Sequence,
		})
	}
	w.incarnation = incarnation
	w.resync(snap)
	w.progressed = true
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		e := fromEvent(resp.GetEvent())
		if e.Sequence != w.lastSeq+1 {
			return fmt.Errorf("%w: got %d after %d", errGap, e.Sequence, w.lastSeq)
		}
		w.lastSeq = e.Sequence
		w.apply(e)
		w.handler(e)
	}
}

// resync reports the snapshot on the first stream, and on later ones only the transitions
// and the changes of attributes the broken stream missed.
func (w *watcher) resync(snap Event) {
	now := make(map[membership.NodeID]membership.NodeInfo)
	for _, n := range snap.Nodes {
		if n.Status == membership.StatusConnected {
			now[n.ID] = n
		}
	}
	w.lastSeq = snap.Sequence
	if !w.started {
		w.started = true
		w.connected = now
		w.handler(snap)
		return
	}
	for _, id := range sortedIDs(w.connected) {
		old := w.connected[id]
		if n, ok := now[id]; !ok || n.Incarnation != old.Incarnation {
			down := old
			down.Status = membership.StatusDisconnected
			w.handler(Event{Type: membership.EventNodeDown, Time: snap.Time, Node: down, Resynced: true})
		}
	}
	for _, id := range sortedIDs(now) {
		n := now[id]
		old, ok := w.connected[id]
		switch {
		case !ok || old.Incarnation != n.Incarnation:
			w.handler(Event{Type: membership.EventNodeUp, Time: snap.Time, Node: n, Resynced: true})
		case old.ProcessCount != n.ProcessCount || !maps.Equal(old.Metadata, n.Metadata):
			w.handler(Event{Type: membership.EventNodeUpdated, Time: snap.Time, Node: n, Resynced: true})
		}
	}
	w.connected = now
}

// apply tracks which nodes are connected.
func (w *watcher) apply(e Event) {
	switch e.Type {
	case membership.EventNodeUp:
		w.connected[e.Node.ID] = e.Node
	case membership.EventNodeDown:
		delete(w.connected, e.Node.ID)
	case membership.EventNodeUpdated:
		if _, ok := w.connected[e.Node.ID]; ok {
			w.connected[e.Node.ID] = e.Node
		}
	}
}

// sortedIDs returns the keys of m in id order, so inferred events come out deterministically.
func sortedIDs(m map[membership.NodeID]membership.NodeInfo) []membership.NodeID {
	return slices.SortedFunc(maps.Keys(m), membership.NodeID.Compare)
}
