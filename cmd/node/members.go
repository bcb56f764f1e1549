package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// callTimeout bounds one API call of a client command.
const callTimeout = 10 * time.Second

// newMembersCommand wires `node members`.
func newMembersCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the nodes a running node knows",
		Long: `members lists the nodes the node at --addr sees connected, itself included and
marked with *; with --all, every node it knows, whatever its status, and the nodes that left
gracefully (status left) while it remembers them.

With --json it prints the API's ListNodesResponse as JSON (camelCase, 64-bit integers such as
incarnation as strings); the asked node has "local": true.`,
		Example: `  node members
  node members --addr 10.0.0.1:4369 --all
  node members --json | jq -r '.nodes[].id'`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().SortFlags = false
	all := cmd.Flags().Bool("all", false, "list every known node, not only the connected ones, and those that left gracefully (as left) while this node remembers them")
	asJSON := cmd.Flags().Bool("json", false, "print JSON")
	f := newClientFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runMembers(cmd.Context(), f, *all, *asJSON, a.stdout)
	}
	return cmd
}

// runMembers prints the nodes the node at --addr knows, itself included and marked.
func runMembers(ctx context.Context, f *clientFlags, all, asJSON bool, stdout io.Writer) error {
	resp, err := callOnce(ctx, f, func(ctx context.Context, api clusterv1.MembershipServiceClient) (*clusterv1.ListNodesResponse, error) {
		return api.ListNodes(ctx, &clusterv1.ListNodesRequest{ConnectedOnly: !all, IncludeSelf: true, IncludeLeft: all})
	})
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, resp, true)
	}
	colour := colourOn(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tUPTIME\tLAST HEARTBEAT\tPROCESSES\tMETADATA")
	now := time.Now()
	for _, n := range resp.GetNodes() {
		id, heard := n.GetId(), "-"
		if n.GetLocal() {
			id += " *"
		} else if n.GetLastHeartbeat() != nil {
			heard = ago(now, n.GetLastHeartbeat().AsTime())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", id, paintStatus(colour, n.GetStatus()), roundDuration(n.GetUptime().AsDuration()),
			heard, n.GetProcessCount(), formatMetadata(n.GetMetadata()))
	}
	_ = tw.Flush()
	return nil
}

// paintStatus names a status, coloured when colour is set: every colour code has the same
// length, so the table's columns stay aligned.
func paintStatus(colour bool, s clusterv1.NodeStatus) string {
	style := map[clusterv1.NodeStatus]string{
		clusterv1.NodeStatus_NODE_STATUS_CONNECTED:    styleGreen,
		clusterv1.NodeStatus_NODE_STATUS_CONNECTING:   styleYellow,
		clusterv1.NodeStatus_NODE_STATUS_DISCONNECTED: styleRed,
	}[s]
	if style == "" {
		style = styleGrey
	}
	return paint(colour, style, nodeStatus(s))
}

// nodeStatus names a status as the Go API does: connected, left, …
func nodeStatus(s clusterv1.NodeStatus) string {
	name, ok := strings.CutPrefix(s.String(), "NODE_STATUS_")
	if !ok {
		return "unknown"
	}
	return strings.ToLower(name)
}

// writeJSON prints m as the API's JSON (protojson: camelCase names, 64-bit integers as
// strings, enums by name), indented or on one line. protojson varies its whitespace on
// purpose; the output is laid out again here, so it is the same from one build to the next.
func writeJSON(w io.Writer, m proto.Message, indent bool) error {
	data, err := protojson.Marshal(m)
	if err != nil {
		return failure(fmt.Errorf("encode JSON: %w", err))
	}
	var out bytes.Buffer
	if indent {
		err = json.Indent(&out, data, "", "  ")
	} else {
		err = json.Compact(&out, data)
	}
	if err != nil {
		return failure(fmt.Errorf("lay out JSON: %w", err))
	}
	out.WriteByte('\n')
	if _, err := w.Write(out.Bytes()); err != nil {
		return failure(fmt.Errorf("write: %w", err))
	}
	return nil
}

// roundDuration prints a duration to the second ("-" when zero).
func roundDuration(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(time.Second).String()
}

// ago prints how long ago t was ("never" when zero).
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Millisecond).String() + " ago"
}

// formatMetadata prints k=v pairs sorted by key ("-" when empty).
func formatMetadata(md map[string]string) string {
	if len(md) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(md)) {
		parts = append(parts, k+"="+md[k])
	}
	return strings.Join(parts, ",")
}
