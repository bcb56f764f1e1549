package server

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// frameSamples are frames as peers send them, and frames the fast path must leave to protobuf.
func frameSamples() []proto.Message {
	body := []byte{0x12, 0x04, 0x08, 0x01, 0x10, 0x02}
	mac := bytes.Repeat([]byte{0xab}, 32)
	big := bytes.Repeat([]byte{7}, 3000) // above gRPC's buffer pooling threshold
	auth := &clusterv1.AuthFrame{Version: 1, SecretConfigured: true, Nonce: bytes.Repeat([]byte{1}, 32)}
	return []proto.Message{
		&clusterv1.ExchangeRequest{},
		&clusterv1.ExchangeRequest{Body: body},
		&clusterv1.ExchangeRequest{Body: body, Sequence: 1},
		&clusterv1.ExchangeRequest{Body: body, Sequence: 1 << 40, Mac: mac},
		&clusterv1.ExchangeRequest{Sequence: 3, Mac: mac},
		&clusterv1.ExchangeRequest{Body: big, Sequence: 9, Mac: mac},
		&clusterv1.ExchangeRequest{Auth: auth},
		&clusterv1.ExchangeRequest{Body: body, Auth: auth},
		&clusterv1.ExchangeResponse{Body: body, Sequence: 2, Mac: mac},
		&clusterv1.ExchangeResponse{Body: big},
		&clusterv1.ExchangeResponse{Auth: auth},
		&emptypb.Empty{},
	}
}

func TestFrameCodecWritesWhatProtobufWrites(t *testing.T) {
	c := newFrameCodec(NewBufferPool())
	for _, m := range frameSamples() {
		want, err := proto.Marshal(m)
		require.NoError(t, err)
		got, err := c.Marshal(m)
		require.NoError(t, err, "marshal %v", m)
		require.True(t, bytes.Equal(want, got.Materialize()), "%T %v: wrote %x, proto.Marshal writes %x", m, m, got.Materialize(), want)
		got.Free()
	}
}

func TestFrameCodecReadsWhatProtobufReads(t *testing.T) {
	c := newFrameCodec(NewBufferPool())
	var wires [][]byte
	for _, m := range frameSamples() {
		if _, ok := m.(*clusterv1.ExchangeRequest); ok {
			b, err := proto.Marshal(m)
			require.NoError(t, err)
			wires = append(wires, b)
		}
	}
	wires = append(wires,
		[]byte{0x0a, 0x01, 0x05, 0x0a, 0x01, 0x06}, // the body twice: the last wins
		[]byte{0x10, 0x01, 0x10, 0x02},             // the sequence twice
		[]byte{0x0a, 0x00},                         // an empty body, present
		[]byte{0x28, 0x01},                         // an unknown field
		[]byte{0x08, 0x01},                         // the body with the wrong wire type
		[]byte{0x10, 0x80, 0x80},                   // a truncated sequence
		[]byte{0x1a, 0x09, 0x01},                   // a mac longer than the frame
		[]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // a varint past 64 bits
		[]byte{0x22, 0x02, 0x08, 0x01},                                           // an auth step
		[]byte{0x80},                                                             // a truncated tag
	)
	for _, wire := range wires {
		var want clusterv1.ExchangeRequest
		wantErr := proto.Unmarshal(wire, &want)
		got := &clusterv1.ExchangeRequest{Body: []byte("stale"), Sequence: 99}
		gotErr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(wire))}, got)
		require.Equal(t, wantErr == nil, gotErr == nil, "%x: errors %v and %v", wire, wantErr, gotErr)
		if wantErr == nil {
			require.True(t, proto.Equal(&want, got), "%x: read as %v, protobuf reads %v", wire, got, &want)
		}
		var resp clusterv1.ExchangeResponse
		require.Equal(t, wantErr == nil, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(wire))}, &resp) == nil,
			"%x: a response reads as a request does", wire)
	}
}

func TestFrameCodecCopiesOutOfTheReadBuffer(t *testing.T) {
	c := newFrameCodec(NewBufferPool())
	wire, err := proto.Marshal(&clusterv1.ExchangeResponse{Body: []byte{1, 2, 3}, Sequence: 4, Mac: []byte{5, 6}})
	require.NoError(t, err)
	var got clusterv1.ExchangeResponse
	require.NoError(t, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &got))
	clear(wire) // gRPC reuses its read buffers
	require.Equal(t, []byte{1, 2, 3}, got.GetBody(), "the body survives its buffer")
	require.Equal(t, []byte{5, 6}, got.GetMac(), "the mac survives its buffer")
	got.Body = append(got.Body, 9)
	require.Equal(t, []byte{5, 6}, got.GetMac(), "appending to the body leaves the mac alone")
}
