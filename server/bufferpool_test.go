package server

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

func TestBufferPoolHandsOutZeroedBuffersOfTheAskedLength(t *testing.T) {
	p := newBufferPool()
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
	p := newBufferPool()
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

// BenchmarkFrameCodecUnmarshalView reads a 60 KiB peer frame (a hello with the view of a
// thousand nodes) that arrives in four HTTP/2 frames, through gRPC's default pool and the
// node's pool.
func BenchmarkFrameCodecUnmarshalView(b *testing.B) {
	body := bytes.Repeat([]byte{7}, 60<<10)
	wire := appendFrame(nil, body, 42, bytes.Repeat([]byte{1}, 32))
	for _, bc := range []struct {
		name string
		pool mem.BufferPool
	}{{"default", mem.DefaultBufferPool()}, {"node", newBufferPool()}} {
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
