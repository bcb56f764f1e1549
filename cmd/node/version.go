package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/buildinfo"
)

// newVersionCommand wires `node version`.
func newVersionCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Long: `version prints the version of this binary, the commit it was built from and when it was
built, its peer protocol and Go version. The commit and date come from the build's VCS stamp
where it has one, else from what make build sets.

With --addr (the flag only, not CLUSTER_ADDR) it also prints the build of the node there; with --json it prints the API's
BuildInfo as JSON (of the node at --addr when given).`,
		Example: `  node version
  node version --addr 10.0.0.1:4369
  node version --json | jq -r .commit`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().SortFlags = false
	asJSON := cmd.Flags().Bool("json", false, "print the build as JSON")
	f := newClientFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runVersion(cmd.Context(), f, cmd.Flags().Changed("addr"), *asJSON, a.stdout)
	}
	return cmd
}

// runVersion prints this binary's build and, when asked, the build of the node at --addr.
func runVersion(ctx context.Context, f *clientFlags, remote, asJSON bool, stdout io.Writer) error {
	local := buildinfo.Get().Proto()
	if !remote {
		if asJSON {
			return writeJSON(stdout, local, true)
		}
		fmt.Fprintln(stdout, versionLine(local))
		return nil
	}
	resp, err := callOnce(ctx, f, func(ctx context.Context, api clusterv1.MembershipServiceClient) (*clusterv1.GetLocalNodeResponse, error) {
		return api.GetLocalNode(ctx, &clusterv1.GetLocalNodeRequest{})
	})
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, resp.GetBuild(), true)
	}
	fmt.Fprintln(stdout, versionLine(local))
	if resp.GetBuild() == nil {
		fmt.Fprintf(stdout, "%s at %s: an older build that does not say\n", resp.GetNode().GetId(), f.addr.value)
		return nil
	}
	fmt.Fprintf(stdout, "%s at %s: %s\n", resp.GetNode().GetId(), f.addr.value, versionLine(resp.GetBuild()))
	return nil
}

// versionLine renders a build on one line, e.g.
//
//	node v1.2.0 (commit 0123456789ab, built 2026-12-03T05:00:00Z, peer protocol 1, go1.26.8 linux/amd64)
func versionLine(b *clusterv1.BuildInfo) string {
	info := buildinfo.Info{Version: b.GetVersion(), Commit: b.GetCommit(), Modified: b.GetModified()}
	if b.GetBuildTime() != nil {
		info.Date = b.GetBuildTime().AsTime()
	}
	return fmt.Sprintf("node %s (commit %s, built %s, peer protocol %d, %s %s)", info.Version, info.ShortCommit(),
		info.DateString(), b.GetProtocolVersion(), b.GetGoVersion(), b.GetPlatform())
}
