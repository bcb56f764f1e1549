package server_test

import (
	"context"
	"fmt"
	"time"

	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// Two nodes on loopback: the second joins through the first, each sees the other come up,
// and a graceful stop is reported as graceful_shutdown.
func Example() {
	ctx := context.Background()
	cfg := membership.DefaultConfig()
	cfg.Name, cfg.BindHost, cfg.Port = "seed1", "127.0.0.1", 0
	seed, err := server.Start(ctx, cfg)
	if err != nil {
		panic(err)
	}
	defer seed.Stop(ctx)

	down := make(chan string, 1)
	seed.OnNodeDown(func(n membership.NodeInfo, reason membership.DownReason) {
		down <- fmt.Sprintf("%s left: %s", n.ID.Name(), reason)
	})

	cfg2 := membership.DefaultConfig()
	cfg2.Name, cfg2.BindHost, cfg2.Port = "worker1", "127.0.0.1", 0
	cfg2.Seeds = []string{seed.LocalID().String()}
	worker, err := server.Start(ctx, cfg2)
	if err != nil {
		panic(err)
	}
	nodes, _ := worker.ConnectedNodes()
	fmt.Println("worker1 sees:", nodes[0].ID.Name())

	_ = worker.Stop(ctx)
	select {
	case line := <-down:
		fmt.Println(line)
	case <-time.After(5 * time.Second):
		fmt.Println("timeout")
	}
	// Output:
	// worker1 sees: seed1
	// worker1 left: graceful_shutdown
}
