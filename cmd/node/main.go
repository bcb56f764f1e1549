// Command node runs a cluster node (`node agent`) and talks to a running one (`node members`,
// `node watch`, `node health`, `node version`).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1
	exitConfig = 2
)

const usage = `usage: node <command> [flags]

commands:
  agent     run a cluster node until SIGINT/SIGTERM, then leave gracefully
  members   list the nodes a running node knows
  watch     stream a running node's events, one line each
  health    print a running node's cluster health report
  version   print the version

Run 'node <command> -h' for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitConfig
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "agent":
		return runAgent(ctx, rest, stdout, stderr)
	case "members":
		return runMembers(ctx, rest, stdout, stderr)
	case "watch":
		return runWatch(ctx, rest, stdout, stderr)
	case "health":
		return runHealth(ctx, rest, stdout, stderr)
	case "version", "--version", "-v":
		return runVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "node: unknown command %q\n\n%s", cmd, usage)
		return exitConfig
	}
}
