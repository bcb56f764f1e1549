// Command node runs a cluster node (`node agent`) and talks to a running one (`node members`,
// `node watch`, `node health`, `node update`); `node version` prints its build.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/internal/buildinfo"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a call failed, the node could not start or stop
	exitConfig  = 2 // invalid flags, environment or command line
)

// exitError is an error that ends the process with code; its message is printed as one line
// after the command's name.
type exitError struct {
	code int
	err  error
}

// Error returns the message.
func (e *exitError) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e *exitError) Unwrap() error { return e.err }

// configError is the exit error (exit 2) of invalid options.
func configError(err error) error { return &exitError{code: exitConfig, err: err} }

// failure is the exit error (exit 1) of something that went wrong at run time.
func failure(err error) error { return &exitError{code: exitFailure, err: err} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(&app{stdout: stdout, stderr: stderr})
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	name := "node"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, ee.err)
		}
		return ee.code
	}
	// A command line cobra refused: an unknown command or flag, a missing or extra argument.
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", name, err, name)
	return exitConfig
}

// app is what every command writes to.
type app struct {
	stdout, stderr io.Writer
}

// newRootCommand builds the command tree.
func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "node",
		Short: "Run and inspect meshnode cluster nodes",
		Long: `node runs a meshnode cluster node (node agent) and talks to a running one through its
public gRPC API: who is in the cluster (members), its events as they happen (watch), how
healthy it is (health), and the local node's metadata (update).

Every flag can also be set by the environment variable shown in its help; a flag wins over
its variable.`,
		Example: `  # A first node, and a second one that joins it
  node agent --name alpha --port 4369
  node agent --name beta --port 4370 --seeds 127.0.0.1:4369

  # Ask the first one
  node members --addr 127.0.0.1:4369`,
		Version:       versionLine(buildinfo.Get().Proto()),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return &exitError{code: exitConfig}
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddCommand(
		newAgentCommand(a),
		newMembersCommand(a),
		newWatchCommand(a),
		newHealthCommand(a),
		newUpdateCommand(a),
		newVersionCommand(a),
	)
	return root
}
