// Command caller calls the resolver example's backends through meshnode:///, balancing
// round robin over the live nodes with role=api, and prints once a second which backends
// answered. Start or stop backends while it runs: a new one gets calls as soon as it has
// joined, one that leaves stops getting them before it drains, one that crashes or freezes
// stops getting them once the cluster reports it down.
//
//	go run ./examples/resolver/caller --target 'meshnode:///127.0.0.1:4370,127.0.0.1:4371?metadata.role=api&port_key=app_port'
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshnode/meshnode/client" // registers the meshnode resolver
	"github.com/meshnode/meshnode/examples/resolver/echo"
)

func main() {
	target := flag.String("target", "meshnode:///127.0.0.1:4370,127.0.0.1:4371?metadata.role=api&port_key=app_port", "meshnode:/// target of the backends")
	interval := flag.Duration("interval", 50*time.Millisecond, "pause between calls")
	token := flag.String("token", os.Getenv("CLUSTER_API_TOKEN"), "API token of the nodes, if they require one")
	flag.Parse()

	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(client.RoundRobinServiceConfig),
	}
	if *token != "" {
		// The registered resolver has no token: give this channel one that has.
		opts = append(opts, grpc.WithResolvers(client.NewResolverBuilder(client.WithToken(*token))))
	}
	cc, err := grpc.NewClient(*target, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "caller:", err)
		os.Exit(1)
	}
	defer cc.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tally, failed := map[string]int{}, 0
	report := time.NewTicker(time.Second)
	defer report.Stop()
	for ctx.Err() == nil {
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		name, err := echo.Call(callCtx, cc, "hello")
		cancel()
		switch {
		case err == nil:
			tally[name]++
		case ctx.Err() == nil:
			failed++
			fmt.Println("failed:", err)
		}
		select {
		case <-report.C:
			var parts []string
			for _, n := range slices.Sorted(maps.Keys(tally)) {
				parts = append(parts, fmt.Sprintf("%s=%d", n, tally[n]))
			}
			fmt.Printf("%s  failed=%d\n", strings.Join(parts, " "), failed)
			tally, failed = map[string]int{}, 0
		case <-time.After(*interval):
		case <-ctx.Done():
		}
	}
}
