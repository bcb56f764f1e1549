package server

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Buffer sizes a node's pool keeps: every power of two from 2^minPooledShift to
// 2^maxPooledShift bytes. Smaller requests are below gRPC's pooling threshold (1 KiB) and
// never come here; larger ones (a peer message is capped well below) are allocated plainly.
const (
	minPooledShift = 8
	maxPooledShift = 20
)

// bufferPool is the gRPC buffer pool of one node: its connections read frames into it and
// its peer codec encodes and gathers messages in it. gRPC's default pool keeps five sizes
// (256 B, 4, 16 and 32 KiB, 1 MiB) and clears a buffer's whole capacity each time it hands
// it out, so a 60 KiB view (a joiner's hello from a seed of a thousand nodes) took a 1 MiB
// buffer and cleared all of it, twice per message. This pool keeps every power of two, so a
// buffer is at most twice what was asked, and clears only the length it hands out: what the
// caller sees is zeroed, as with gRPC's pool.
type bufferPool struct {
	tiers [maxPooledShift - minPooledShift + 1]sync.Pool
}

var _ mem.BufferPool = (*bufferPool)(nil)

// newBufferPool returns an empty pool.
func newBufferPool() *bufferPool { return &bufferPool{} }

// tierOf returns the tier of a buffer of capacity size, rounding up, and whether one holds it.
func tierOf(size int) (int, bool) {
	shift := minPooledShift
	if size > 1<<minPooledShift {
		shift = bits.Len(uint(size - 1))
	}
	return shift - minPooledShift, shift <= maxPooledShift
}

// Get returns a zeroed buffer of length size.
func (p *bufferPool) Get(size int) *[]byte {
	tier, pooled := tierOf(size)
	if !pooled {
		b := make([]byte, size)
		return &b
	}
	if buf, ok := p.tiers[tier].Get().(*[]byte); ok {
		*buf = (*buf)[:size]
		clear(*buf)
		return buf
	}
	b := make([]byte, size, 1<<(tier+minPooledShift))
	return &b
}

// Put returns buf to the pool. A buffer whose capacity is not one of the pool's sizes (not
// one it handed out) is left to the collector.
func (p *bufferPool) Put(buf *[]byte) {
	c := cap(*buf)
	tier, pooled := tierOf(c)
	if !pooled || c != 1<<(tier+minPooledShift) {
		return
	}
	p.tiers[tier].Put(buf)
}
