// Command go-client lists the nodes a running node knows, then follows its events with the Go
// client, which resumes by itself after a broken stream.
//
//	go run ./examples/go-client --addr 127.0.0.1:4369
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/membership"
)

func main() {
	addr := flag.String("addr", client.DefaultAddr, "address of a running node")
	token := flag.String("token", os.Getenv("CLUSTER_API_TOKEN"), "API bearer token, if the node requires one")
	flag.Parse()

	var opts []client.Option
	if *token != "" {
		opts = append(opts, client.WithToken(*token))
	}
	c, err := client.Dial(*addr, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	nodes, err := c.Nodes(callCtx, false)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d nodes known by %s\n", len(nodes), *addr)
	for _, n := range nodes {
		fmt.Printf("  %-32s %s\n", n.ID, n.Status)
	}

	err = c.Watch(ctx, func(e client.Event) {
		switch {
		case e.Snapshot:
			fmt.Printf("watching (snapshot of %d nodes)\n", len(e.Nodes))
		case e.Type == membership.EventNodeUp:
			fmt.Printf("up   %s\n", e.Node.ID)
		case e.Type == membership.EventNodeDown:
			fmt.Printf("down %s (%s)\n", e.Node.ID, e.Reason)
		}
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
