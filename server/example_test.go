package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// Two nodes on loopback: worker1 joins through seed1 with the README's embedding code, sees
// seed1 come up and publishes its role; its graceful stop is reported as graceful_shutdown.
func Example() {
	ctx := context.Background()
	seedCfg := membership.DefaultLocalConfig() // 127.0.0.1, a free port, fast heartbeats
	seedCfg.Name = "seed1"
	down := make(chan string, 1)
	seed, err := server.Start(ctx, seedCfg, server.WithNodeDownHandler(func(n membership.NodeInfo, r membership.DownReason) {
		down <- fmt.Sprintf("%s left: %s", n.ID.Name(), r)
	}))
	if err != nil {
		panic(err)
	}
	defer seed.Stop(ctx)

	cfg := membership.DefaultLocalConfig() // the README's node is on a LAN: DefaultLANConfig
	cfg.Name, cfg.Seeds = "worker1", []string{seed.LocalID().String()}
	if err := embed(ctx, cfg); err != nil {
		panic(err)
	}
	select {
	case line := <-down:
		fmt.Println(line)
	case <-time.After(5 * time.Second):
		fmt.Println("timeout")
	}
	// Output:
	// first peer: seed1
	// connected: 1
	// worker1 left: graceful_shutdown
}

// embed runs a node configured by cfg the way the README's "Embedding in Go" says: its code
// between the README markers stands in the README word for word (TestREADMEEmbeddingIsTheExample).
func embed(ctx context.Context, cfg *membership.Config) error {
	// README:begin
	up := make(chan membership.NodeInfo, 16)
	node, err := server.Start(ctx, cfg, // binds, serves gRPC, joins through the seeds
		server.WithNodeUpHandler(func(n membership.NodeInfo) { up <- n }), // sees the first peers too
		server.WithNodeDownHandler(func(n membership.NodeInfo, r membership.DownReason) {
			slog.Warn("node down", "node", n.ID.String(), "reason", r.String())
		}),
		server.WithNodeUpdatedHandler(func(n membership.NodeInfo) {
			slog.Info("node updated", "node", n.ID.String(), "metadata", n.Metadata)
		}),
	)
	if err != nil {
		return fmt.Errorf("start node: %w", err) // a *membership.ConfigError lists every invalid field
	}
	defer node.Stop(ctx) // leaves gracefully: peers report graceful_shutdown
	fmt.Println("first peer:", (<-up).ID.Name())
	// Every peer streaming to the node sees its new metadata at once (node_updated).
	if err := node.SetMetadata(map[string]string{"role": "api"}); err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	connected, err := node.ConnectedCount()
	if err != nil {
		return fmt.Errorf("count connected nodes: %w", err)
	}
	fmt.Println("connected:", connected)
	// README:end
	return nil
}
