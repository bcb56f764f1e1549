package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/membership"
)

// newWatchCommand wires `node watch`.
func newWatchCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Stream a running node's events, one line each",
		Long: `watch prints a snapshot of the nodes the node at --addr knows, then every membership
event as it happens, one line each, until interrupted. Without --follow it exits 1 when the
stream ends (the node stopped or went away).

With --json each line is one API Event as JSON (camelCase, 64-bit integers as strings). An up
or down that --follow infers after a broken stream, from the difference between two
snapshots, has no sequence number.`,
		Example: `  node watch
  node watch --addr 10.0.0.1:4369 --follow
  node watch --json | jq -c 'select(.nodeDown)'`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().SortFlags = false
	asJSON := cmd.Flags().Bool("json", false, "print one JSON object per line")
	follow := cmd.Flags().Bool("follow", false, "when the stream ends (the node stopped or went away), say so and resume once the node answers again, instead of exiting 1")
	f := newClientFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runWatch(cmd.Context(), f, *asJSON, *follow, a.stdout, a.stderr)
	}
	return cmd
}

// runWatch streams the events of the node at --addr until ctx ends.
func runWatch(ctx context.Context, f *clientFlags, asJSON, follow bool, stdout, stderr io.Writer) error {
	c, err := f.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	// Fail fast with one line if the node cannot be reached at all.
	probe, cancel := context.WithTimeout(ctx, callTimeout)
	_, err = c.LocalNode(probe)
	cancel()
	if err != nil {
		return callFailed(f.addr.value, err)
	}
	colour := colourOn(stdout)
	show := func(e client.Event) {
		if asJSON {
			_ = writeJSON(stdout, e.Proto(), false)
			return
		}
		fmt.Fprintln(stdout, formatEvent(colour, e))
	}
	// Without --follow the watch ends with the stream; with it, the breaks and resumptions are
	// said on stderr, so stdout stays one event per line.
	opts := []client.WatchOption{client.StopOnBreak()}
	if follow {
		opts = []client.WatchOption{
			client.OnBreak(func(err error) {
				fmt.Fprintf(stderr, "node watch: %s; resuming when it answers again\n", describeWatchEnd(f.addr.value, err))
			}),
			client.OnResume(func(r client.Resume) {
				fmt.Fprintf(stderr, "node watch: %s\n", describeResume(f.addr.value, r))
			}),
		}
	}
	err = c.Watch(ctx, show, opts...)
	if err != nil && !errors.Is(err, context.Canceled) {
		return failure(errors.New(describeWatchEnd(f.addr.value, err)))
	}
	return nil
}

// describeWatchEnd says in one sentence why a watch stream ended.
func describeWatchEnd(addr string, err error) string {
	st, ok := statusOf(err)
	if !ok {
		return describe(addr, err)
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Sprintf("the stream ended: the node at %s stopped or cannot be reached (%s)", addr, st.Message())
	case codes.ResourceExhausted:
		return fmt.Sprintf("the stream ended: the node at %s cut this watcher off (%s)", addr, st.Message())
	default:
		return "the stream ended: " + describe(addr, err)
	}
}

// describeResume says in one sentence that a watch resumed, and what restarted meanwhile.
func describeResume(addr string, r client.Resume) string {
	msg := "resumed watching " + addr
	if r.NodeRestarted {
		msg += "; the node restarted meanwhile"
	}
	if r.SequenceRestarted {
		msg += fmt.Sprintf("; its sequence numbers restarted (last seen #%d, now #%d)", r.LastSequence, r.Sequence)
	}
	return msg + "; ups and downs missed meanwhile follow, marked"
}

// formatEvent renders an event as one line, its kind coloured when colour is set.
func formatEvent(colour bool, e client.Event) string {
	ts := e.Time.Local().Format(time.TimeOnly + ".000")
	resync := ""
	if e.Resynced {
		resync = " (missed while reconnecting)"
	}
	switch {
	case e.Snapshot:
		connected := 0
		for _, n := range e.Nodes {
			if n.Status == membership.StatusConnected {
				connected++
			}
		}
		return fmt.Sprintf("%s snapshot: node %s, %d connected of %s", ts, e.Current, connected, plural(len(e.Nodes), "known node", "known nodes"))
	case e.Type == membership.EventNodeUp:
		return fmt.Sprintf("%s #%d %s   %s%s", ts, e.Sequence, paint(colour, styleGreen, "node_up"), e.Node.ID, resync)
	case e.Type == membership.EventNodeDown:
		reason := e.Reason.String()
		if e.Reason == 0 {
			reason = "reason unknown"
		}
		return fmt.Sprintf("%s #%d %s %s (%s)%s", ts, e.Sequence, paint(colour, styleRed, "node_down"), e.Node.ID, reason, resync)
	case e.Type == membership.EventNodeUpdated:
		return fmt.Sprintf("%s #%d %s %s metadata %s, %s%s", ts, e.Sequence, paint(colour, styleYellow, "node_updated"), e.Node.ID,
			formatMetadata(e.Node.Metadata), plural(e.Node.ProcessCount, "process", "processes"), resync)
	case e.Type == membership.EventStatusChange:
		return fmt.Sprintf("%s #%d status    %s -> %s", ts, e.Sequence, e.Previous, e.Current)
	default:
		return fmt.Sprintf("%s #%d unknown event", ts, e.Sequence)
	}
}
