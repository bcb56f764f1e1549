package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/membership"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// newVersionCommand wires `node version`.
func newVersionCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version, commit and build date",
		Example: "  node version",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(a.stdout, versionLine())
			return nil
		},
	}
}

// versionLine is the one line `node version` prints.
func versionLine() string {
	return fmt.Sprintf("node %s (peer protocol %d, %s %s/%s)", version, membership.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
