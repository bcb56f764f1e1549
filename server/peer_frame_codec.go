package server

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// Field numbers shared by ExchangeRequest and ExchangeResponse (proto/cluster/v1/peer.proto).
const (
	frameFieldBody     protowire.Number = 1
	frameFieldSequence protowire.Number = 2
	frameFieldMac      protowire.Number = 3
)

// frameCodec is gRPC's proto codec with a fast path for the frames of a peer stream: an
// ExchangeRequest or ExchangeResponse with no authentication step (every frame after the
// handshake) is written and read with protowire, without protobuf's reflection. The bytes
// are exactly those proto.Marshal writes, and anything else (another message, an AuthFrame,
// a repeated or unknown field) goes through the proto codec, so the fast path changes no
// behaviour. Its name is gRPC's "proto": the content type on the wire is unchanged.
type frameCodec struct {
	proto encoding.CodecV2
	pool  mem.BufferPool // the node's buffers (NewBufferPool, or WithBufferPool's)
}

// newFrameCodec returns the codec, falling back on gRPC's registered proto codec, with its
// buffers from pool.
func newFrameCodec(pool mem.BufferPool) frameCodec {
	return frameCodec{proto: encoding.GetCodecV2(grpcproto.Name), pool: pool}
}

// Name is the codec's content subtype, the proto codec's own.
func (frameCodec) Name() string { return grpcproto.Name }

// peerFrame is what ExchangeRequest and ExchangeResponse have in common.
type peerFrame interface {
	GetBody() []byte
	GetSequence() uint64
	GetMac() []byte
	GetAuth() *clusterv1.AuthFrame
	ProtoReflect() protoreflect.Message
}

// Marshal encodes v.
func (c frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(peerFrame)
	if !ok || f.GetAuth() != nil || len(f.ProtoReflect().GetUnknown()) > 0 {
		return c.proto.Marshal(v)
	}
	body, seq, mac := f.GetBody(), f.GetSequence(), f.GetMac()
	size := frameSize(body, seq, mac)
	if mem.IsBelowBufferPoolingThreshold(size) {
		return mem.BufferSlice{mem.SliceBuffer(appendFrame(make([]byte, 0, size), body, seq, mac))}, nil
	}
	buf := c.pool.Get(size)
	*buf = appendFrame((*buf)[:0], body, seq, mac)
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

// frameSize is the encoded size of a frame with these fields (proto3: zero values are left out).
func frameSize(body []byte, seq uint64, mac []byte) int {
	n := 0
	if len(body) > 0 {
		n += protowire.SizeTag(frameFieldBody) + protowire.SizeBytes(len(body))
	}
	if seq != 0 {
		n += protowire.SizeTag(frameFieldSequence) + protowire.SizeVarint(seq)
	}
	if len(mac) > 0 {
		n += protowire.SizeTag(frameFieldMac) + protowire.SizeBytes(len(mac))
	}
	return n
}

// appendFrame appends the fields in field-number order, as proto.Marshal does.
func appendFrame(b, body []byte, seq uint64, mac []byte) []byte {
	if len(body) > 0 {
		b = protowire.AppendTag(b, frameFieldBody, protowire.BytesType)
		b = protowire.AppendBytes(b, body)
	}
	if seq != 0 {
		b = protowire.AppendTag(b, frameFieldSequence, protowire.VarintType)
		b = protowire.AppendVarint(b, seq)
	}
	if len(mac) > 0 {
		b = protowire.AppendTag(b, frameFieldMac, protowire.BytesType)
		b = protowire.AppendBytes(b, mac)
	}
	return b
}

// Unmarshal decodes data into v.
func (c frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if _, ok := v.(peerFrame); !ok {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(c.pool)
	defer buf.Free()
	body, seq, mac, ok := parseFrame(buf.ReadOnlyData())
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	switch f := v.(type) {
	case *clusterv1.ExchangeRequest:
		f.Reset()
		f.Body, f.Sequence, f.Mac = body, seq, mac
	case *clusterv1.ExchangeResponse:
		f.Reset()
		f.Body, f.Sequence, f.Mac = body, seq, mac
	default:
		return c.proto.Unmarshal(data, v)
	}
	return nil
}

// parseFrame reads a frame made of body, sequence and mac, each at most once with its proper
// wire type. It copies body and mac out of b (one allocation for both). Anything else returns
// ok false, for the proto codec to handle with protobuf's full rules.
func parseFrame(b []byte) (body []byte, seq uint64, mac []byte, ok bool) {
	var rawBody, rawMac []byte
	var seen [frameFieldMac + 1]bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < frameFieldBody || num > frameFieldMac || seen[num] {
			return nil, 0, nil, false
		}
		seen[num] = true
		b = b[n:]
		switch {
		case num == frameFieldSequence && typ == protowire.VarintType:
			seq, n = protowire.ConsumeVarint(b)
		case num == frameFieldBody && typ == protowire.BytesType:
			rawBody, n = protowire.ConsumeBytes(b)
		case num == frameFieldMac && typ == protowire.BytesType:
			rawMac, n = protowire.ConsumeBytes(b)
		default:
			return nil, 0, nil, false
		}
		if n < 0 {
			return nil, 0, nil, false
		}
		b = b[n:]
	}
	if len(rawBody)+len(rawMac) > 0 {
		both := make([]byte, len(rawBody)+len(rawMac))
		copy(both, rawBody)
		copy(both[len(rawBody):], rawMac)
		body = both[:len(rawBody):len(rawBody)]
		if len(rawMac) > 0 {
			mac = both[len(rawBody):]
		}
	}
	return body, seq, mac, true
}
