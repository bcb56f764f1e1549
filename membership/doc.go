// Package membership is the domain of the cluster: node ids, configuration, the node table,
// failure detection, gossip and events. It imports no gRPC: a Cluster drives a pure state
// machine through a small Transport interface (the server package provides the gRPC one) and
// a Clock, so every transition can be tested with a fake clock and an in-memory network.
//
// Nodes are named name@host:port and form a full mesh: a node joins through seed nodes, the
// handshake swaps full views, and every node dials every node it learns of. Heartbeats flow
// on each stream every interval; a node that misses interval × threshold of them, breaks its
// stream, refuses connections or leaves is reported down with that reason:
//
//   - ReasonConnectionClosed: the stream broke without a leave notice (a crash);
//   - ReasonHeartbeatTimeout: silence while the stream looked open (a frozen process);
//   - ReasonConnectionRefused: a node learned from seeds or gossip whose first dial failed;
//   - ReasonGracefulShutdown: the node said it leaves.
//
// Applications start a node with server.Start, configured by a Config (DefaultLANConfig,
// DefaultLocalConfig) and the server package's options; the *server.Node it returns runs a
// Cluster over gRPC. New and Transport are for running the engine over another transport.
package membership
