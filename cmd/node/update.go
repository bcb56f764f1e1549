package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// newUpdateCommand wires `node update`.
func newUpdateCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Change the metadata or process count a running node advertises",
		Long: `update changes the metadata (--metadata, which replaces the whole map) and the process
count (--process-count) of the node at --addr; what it leaves out is kept. Every node that
streams to it (every node while the cluster is a full mesh) sees the change within a round trip
and fires a node_updated event, which node watch shows.

With --json it prints the API's UpdateLocalNodeResponse as JSON.`,
		Example: `  node update --metadata role=db,zone=eu-1
  node update --addr 10.0.0.1:4369 --process-count 12
  node update --metadata ''    # remove every metadata entry`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().SortFlags = false
	metadata := cmd.Flags().String("metadata", "", "comma-separated key=value pairs that replace the node's metadata (an empty value clears it)")
	processCount := cmd.Flags().Int64("process-count", 0, "the node's new process count, 0 to 2147483647")
	asJSON := cmd.Flags().Bool("json", false, "print the node's info after the change as JSON")
	f := newClientFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req, err := updateRequest(*metadata, cmd.Flags().Changed("metadata"), *processCount, cmd.Flags().Changed("process-count"))
		if err != nil {
			return configError(err)
		}
		return runUpdate(cmd.Context(), f, req, *asJSON, a.stdout)
	}
	return cmd
}

// updateRequest builds the API request of the flags given: at least one of them.
func updateRequest(metadata string, metadataSet bool, processCount int64, processCountSet bool) (*clusterv1.UpdateLocalNodeRequest, error) {
	if !metadataSet && !processCountSet {
		return nil, errors.New("nothing to change: give --metadata, --process-count or both")
	}
	var bad problems
	req := &clusterv1.UpdateLocalNodeRequest{}
	if metadataSet {
		md, err := parseMetadata(metadata)
		if err != nil {
			bad.add("--metadata", "%v", err)
		}
		req.Metadata, req.ClearMetadata = md, len(md) == 0
	}
	if processCountSet {
		if processCount < 0 || processCount > 2147483647 {
			bad.add("--process-count", "must be between 0 and 2147483647 (got %d)", processCount)
		}
		n := uint32(max(min(processCount, 2147483647), 0))
		req.ProcessCount = &n
	}
	if len(bad) > 0 {
		msgs := make([]string, len(bad))
		for i, p := range bad {
			msgs[i] = p.String()
		}
		return nil, errors.New("invalid flags: " + strings.Join(msgs, "; "))
	}
	return req, nil
}

// runUpdate sends req to the node at --addr and prints the node after the change.
func runUpdate(ctx context.Context, f *clientFlags, req *clusterv1.UpdateLocalNodeRequest, asJSON bool, stdout io.Writer) error {
	resp, err := callOnce(ctx, f, func(ctx context.Context, api clusterv1.MembershipServiceClient) (*clusterv1.UpdateLocalNodeResponse, error) {
		return api.UpdateLocalNode(ctx, req)
	})
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, resp, true)
	}
	n := resp.GetNode()
	fmt.Fprintf(stdout, "Updated %s: metadata %s, %s\n", n.GetId(), formatMetadata(n.GetMetadata()), plural(int(n.GetProcessCount()), "process", "processes"))
	return nil
}
