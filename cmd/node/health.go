package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/client"
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// healthRefresh is how often `node health --watch` redraws.
const healthRefresh = time.Second

// newHealthCommand wires `node health`.
func newHealthCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Print a running node's cluster health report",
		Long: `health prints the cluster health report of the node at --addr: healthy, degraded or
critical, how many known nodes are connected, recent downs, its seeds and its latest events.

With --json it prints the API's GetHealthResponse as JSON (camelCase, 64-bit integers as
strings).`,
		Example: `  node health
  node health --addr 10.0.0.1:4369 --watch
  node health --json | jq -r .status`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().SortFlags = false
	watch := cmd.Flags().Bool("watch", false, "redraw the report every second until interrupted")
	asJSON := cmd.Flags().Bool("json", false, "print the report as JSON (with --watch, one report per line)")
	f := newClientFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runHealth(cmd.Context(), f, *watch, *asJSON, a.stdout)
	}
	return cmd
}

// runHealth prints the health report of the node at --addr, once or every second.
func runHealth(ctx context.Context, f *clientFlags, watch, asJSON bool, stdout io.Writer) error {
	c, err := f.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	tty, colour := isTerminal(stdout), colourOn(stdout)
	for {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		resp, err := c.API().GetHealth(callCtx, &clusterv1.GetHealthRequest{})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return callFailed(f.addr.value, err)
		}
		if asJSON {
			if err := writeJSON(stdout, resp, !watch); err != nil {
				return err
			}
		} else {
			if watch && tty {
				fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home, clear screen
			}
			fmt.Fprint(stdout, formatHealth(c.Addr(), client.HealthReport(resp), colour))
		}
		if !watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(healthRefresh):
		}
	}
}

// formatHealth renders the report; with colour on a terminal.
func formatHealth(addr string, r membership.HealthReport, colour bool) string {
	var b strings.Builder
	style := map[membership.HealthStatus]string{membership.HealthHealthy: styleGreen, membership.HealthDegraded: styleYellow, membership.HealthCritical: styleRed}[r.Status]
	status := paint(colour, styleBold+";"+style, strings.ToUpper(r.Status.String()))
	fmt.Fprintf(&b, "Cluster health at %s: %s\n", addr, status)
	fmt.Fprintf(&b, "  %s\n", r.Message)
	fmt.Fprintf(&b, "  nodes:        %d connected / %d known (%.1f%% available)\n", r.Connected, r.Known, r.AvailabilityPercent)
	fmt.Fprintf(&b, "  recent downs: %d in the last %s\n", r.RecentDowns, r.Window)
	fmt.Fprintf(&b, "  uptime:       %s\n", roundDuration(r.Uptime))
	if len(r.Seeds) > 0 {
		reachable := 0
		for _, s := range r.Seeds {
			if s.Reachable {
				reachable++
			}
		}
		fmt.Fprintf(&b, "  seeds:        %d of %d reachable\n", reachable, len(r.Seeds))
		for _, s := range r.Seeds {
			if s.Reachable {
				continue
			}
			why := s.LastError
			if why == "" {
				why = "not reached yet"
			}
			fmt.Fprintf(&b, "    %s unreachable: %s (%s)\n", s.Seed, why, plural(s.FailedDials, "failed dial", "failed dials"))
		}
	}
	if len(r.RecentEvents) > 0 {
		fmt.Fprintf(&b, "  recent events:\n")
		start := max(0, len(r.RecentEvents)-10)
		for _, e := range r.RecentEvents[start:] {
			fmt.Fprintf(&b, "    %s\n", formatEvent(colour, client.Event{
				Type: e.Type, Sequence: e.Sequence, Time: e.Time, Node: e.Node, Reason: e.Reason, Previous: e.Previous, Current: e.Current,
			}))
		}
	}
	return b.String()
}
