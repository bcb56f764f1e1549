package main

import (
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

	"github.com/meshnode/meshnode/membership"
)

// callTimeout bounds one API call of a client command.
const callTimeout = 10 * time.Second

// newMembersCommand wires `node members`.
func newMembersCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the nodes a running node knows",
		Long: `members lists the connected nodes of the node at --addr; with --all, every node it
knows, whatever its status.`,
		Example: `  node members
  node members --addr 10.0.0.1:4369 --all
  node members --json | jq -r '.nodes[].id'`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().SortFlags = false
	all := cmd.Flags().Bool("all", false, "list every known node, not only the connected ones")
	asJSON := cmd.Flags().Bool("json", false, "print JSON")
	f := newClientFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runMembers(cmd.Context(), f, *all, *asJSON, a.stdout)
	}
	return cmd
}

// runMembers prints the nodes the node at --addr knows.
func runMembers(ctx context.Context, f *clientFlags, all, asJSON bool, stdout io.Writer) error {
	c, err := f.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	nodes, err := c.Nodes(ctx, !all)
	if err != nil {
		return callFailed(f.addr.value, err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(jsonNodes(nodes)); err != nil {
			return failure(fmt.Errorf("write: %w", err))
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tUPTIME\tLAST HEARTBEAT\tPROCESSES\tMETADATA")
	now := time.Now()
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", n.ID, n.Status, roundDuration(n.Uptime), ago(now, n.LastHeartbeat), n.ProcessCount, formatMetadata(n.Metadata))
	}
	_ = tw.Flush()
	return nil
}

// jsonNode is the JSON shape of a node.
type jsonNode struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Host          string            `json:"host"`
	Port          int               `json:"port"`
	Status        string            `json:"status"`
	Incarnation   uint64            `json:"incarnation"`
	ProcessCount  int               `json:"process_count"`
	LastHeartbeat *time.Time        `json:"last_heartbeat,omitempty"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Metadata      map[string]string `json:"metadata,omitempty"`
}

func toJSONNode(n membership.NodeInfo) jsonNode {
	out := jsonNode{
		ID: n.ID.String(), Name: n.ID.Name(), Host: n.ID.Host(), Port: n.ID.Port(), Status: n.Status.String(),
		Incarnation: n.Incarnation, ProcessCount: n.ProcessCount, UptimeSeconds: n.Uptime.Seconds(), Metadata: n.Metadata,
	}
	if !n.LastHeartbeat.IsZero() {
		t := n.LastHeartbeat.UTC()
		out.LastHeartbeat = &t
	}
	return out
}

func jsonNodes(nodes []membership.NodeInfo) []jsonNode {
	out := make([]jsonNode, len(nodes))
	for i, n := range nodes {
		out[i] = toJSONNode(n)
	}
	return out
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
