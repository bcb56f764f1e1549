package server

import "google.golang.org/grpc/mem"

// Buffer sizes a node's pool keeps: every power of two from 2^minPooledShift to
// 2^maxPooledShift bytes. Smaller requests are below gRPC's pooling threshold (1 KiB) and
// never come here; larger ones (a peer message is capped well below) come from gRPC's
// fallback pool.
const (
	minPooledShift = 8
	maxPooledShift = 20
)

// NewBufferPool returns a gRPC buffer pool for nodes (WithBufferPool): their connections read
// frames into it and their peer codecs encode and gather messages in it. A node without one
// makes its own. Nodes that run in one process may share one pool: buffers are then reused
// across the nodes, where each node's own pool keeps a set of them (about 130 KB a node after a
// formation of a thousand nodes, until garbage collections find them unused).
//
// gRPC's default pool keeps five sizes (256 B, 4, 16 and 32 KiB, 1 MiB) and clears a buffer's
// whole capacity each time it hands it out, so a 60 KiB view (a joiner's hello from a seed of
// a thousand nodes) took a 1 MiB buffer and cleared all of it, twice per message. This one
// keeps every power of two, so a buffer, and what is cleared of it, is at most twice what was
// asked.
func NewBufferPool() mem.BufferPool {
	exponents := make([]uint8, 0, maxPooledShift-minPooledShift+1)
	for e := minPooledShift; e <= maxPooledShift; e++ {
		exponents = append(exponents, uint8(e))
	}
	pool, err := mem.NewBinaryTieredBufferPool(exponents...)
	if err != nil {
		return mem.DefaultBufferPool() // only for exponents past the word size, never these
	}
	return pool
}
