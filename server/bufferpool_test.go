package server

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

func TestBufferPoolHandsOutZeroedBuffersOfTheAskedLength(t *testing.T) {
	p := NewBufferPool()
	for _, size := range []int{0, 1, 255, 256, 257, 1500, 4096, 60 << 10, 1 << 20} {
		buf := p.Get(size)
		require.Len(t, *buf, size, "Get(%d) length", size)
		require.GreaterOrEqual(t, cap(*buf), size)
		assert.LessOrEqual(t, cap(*buf), max(2*size, 1<<minPooledShift), "Get(%d) wastes at most half its buffer", size)
		for i := range *buf {
			(*buf)[i] = 0xAA // dirty it before it goes back
		}
		p.Put(buf)
		again := p.Get(size)
		assert.True(t, bytes.Equal(*again, make([]byte, size)), "a reused buffer of %d bytes must come back zeroed", size)
		p.Put(again)
	}
}

func TestBufferPoolServesOversizedAndOddBuffersZeroed(t *testing.T) {
	p := NewBufferPool()
	big := p.Get(1<<maxPooledShift + 1)
	assert.Len(t, *big, 1<<maxPooledShift+1, "a buffer above the largest size is served as asked")
	p.Put(big)
	odd := bytes.Repeat([]byte{0xAA}, 3000)
	odd = odd[:100]
	p.Put(&odd) // a capacity the pool never hands out
	got := p.Get(2000)
	assert.Len(t, *got, 2000, "a buffer comes with the length asked, whatever went back into the pool")
	assert.True(t, bytes.Equal(*got, make([]byte, 2000)), "a buffer comes zeroed, whatever went back into the pool")
}

// countingPool counts the buffers a pool hands out.
type countingPool struct {
	mem.BufferPool
	gets atomic.Int64
}

func (p *countingPool) Get(length int) *[]byte {
	p.gets.Add(1)
	return p.BufferPool.Get(length)
}

// TestNodesInOneProcessTakeTheirBuffersFromThePoolTheyShare gives two nodes one pool and a
// third none: the messages of a kilobyte or more that the two exchange with each other and
// with the third (their hellos carry 2 KB of metadata) take their buffers from the shared
// pool, and a nil pool leaves a node working on its own.
func TestNodesInOneProcessTakeTheirBuffersFromThePoolTheyShare(t *testing.T) {
	shared := &countingPool{BufferPool: NewBufferPool()}
	large := func(name string, seeds ...string) *membership.Config {
		cfg := testConfig(name, seeds...)
		cfg.Metadata = map[string]string{"blob": string(bytes.Repeat([]byte{'x'}, 2000))}
		return cfg
	}
	a := startNode(t, large("a"), WithBufferPool(shared))
	b := startNode(t, large("b", a.LocalID().String()), WithBufferPool(shared))
	requireFullMesh(t, 10*time.Second, a, b)
	require.Positive(t, shared.gets.Load(), "the join of two nodes given a shared pool should take its buffers from it")
	before := shared.gets.Load()
	c := startNode(t, large("c", a.LocalID().String()), WithBufferPool(nil))
	requireFullMesh(t, 10*time.Second, a, b, c)
	require.Greater(t, shared.gets.Load(), before, "a third node's join should take buffers from the pool of the two that share one")
}

// BenchmarkFrameCodecUnmarshalView reads a 60 KiB peer frame (a hello with the view of a
// thousand nodes) that arrives in four HTTP/2 frames, through gRPC's default pool and the
// node's pool.
func BenchmarkFrameCodecUnmarshalView(b *testing.B) {
	body := bytes.Repeat([]byte{7}, 60<<10)
	wire := appendFrame(nil, body, 42, bytes.Repeat([]byte{1}, 32))
	for _, bc := range []struct {
		name string
		pool mem.BufferPool
	}{{"default", mem.DefaultBufferPool()}, {"node", NewBufferPool()}} {
		b.Run(bc.name, func(b *testing.B) {
			c := newFrameCodec(bc.pool)
			var msg clusterv1.ExchangeRequest
			b.ReportAllocs()
			for b.Loop() {
				var data mem.BufferSlice
				for rest := wire; len(rest) > 0; {
					n := min(len(rest), 16<<10)
					buf := bc.pool.Get(n)
					copy(*buf, rest[:n])
					data = append(data, mem.NewBuffer(buf, bc.pool))
					rest = rest[n:]
				}
				if err := c.Unmarshal(data, &msg); err != nil {
					b.Fatal(err)
				}
				data.Free()
			}
		})
	}
}
