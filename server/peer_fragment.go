package server

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// A node reads no gRPC message larger than its receive limit (WithMaxRecvMessageBytes), so
// that a client that has not authenticated cannot make it hold much. Peer messages can be
// larger (a Hello carries the whole view): a body over peerFragmentBytes is sent as a run of
// Fragment frames, each signed and sequenced like any frame, and the receiver joins them,
// up to the peer message limit (WithMaxPeerMessageBytes), before decoding.

// peerFragmentBytes is the most message bytes one frame carries. With its framing, sequence
// number and MAC, a frame stays under MinRecvMessageBytes.
const peerFragmentBytes = 32 << 10

// fragmentTag is the first byte of an encoded PeerMessage whose kind is a Fragment.
var fragmentTag = byte(protowire.EncodeTag(15, protowire.BytesType))

// sendFragments sends body, larger than peerFragmentBytes, as consecutive fragments.
func sendFragments(body []byte, send func(frame []byte) error) error {
	if len(body) > math.MaxUint32 {
		return fmt.Errorf("%w: %d bytes is too large to send", errBadMessage, len(body))
	}
	for off := 0; off < len(body); {
		n := min(peerFragmentBytes, len(body)-off)
		f := &clusterv1.Fragment{Data: body[off : off+n]}
		if off == 0 {
			f.Size = uint32(len(body))
		}
		frame, err := proto.Marshal(&clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Fragment{Fragment: f}})
		if err != nil {
			return fmt.Errorf("encode fragment: %w", err)
		}
		if err := send(frame); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// reassembler joins the fragments a stream receives. The zero value accepts messages up to
// DefaultMaxPeerMessageBytes.
type reassembler struct {
	max  int // the largest message accepted; 0: DefaultMaxPeerMessageBytes
	buf  []byte
	size int // the size of the message in progress; 0: none
}

// next takes the body of one frame and returns the message it is or completes, or nil
// while a fragmented message is still incomplete.
func (r *reassembler) next(body []byte) (*membership.Message, error) {
	if len(body) == 0 || body[0] != fragmentTag {
		if r.size != 0 {
			return nil, fmt.Errorf("%w: a message came in the middle of a fragmented one", errBadMessage)
		}
		return decodeMessage(body)
	}
	var pm clusterv1.PeerMessage
	if err := proto.Unmarshal(body, &pm); err != nil {
		return nil, fmt.Errorf("%w: fragment: %v", errBadMessage, err)
	}
	f := pm.GetFragment()
	if f == nil {
		return nil, fmt.Errorf("%w: a frame that starts as a fragment is not one", errBadMessage)
	}
	limit := r.max
	if limit <= 0 {
		limit = DefaultMaxPeerMessageBytes
	}
	switch {
	case r.size == 0 && f.GetSize() == 0:
		return nil, fmt.Errorf("%w: a fragmented message must open with its size", errBadMessage)
	case r.size == 0 && int64(f.GetSize()) > int64(limit):
		return nil, fmt.Errorf("%w: a message of %d bytes is over the limit of %d", errBadMessage, f.GetSize(), limit)
	case r.size == 0:
		r.size = int(f.GetSize())
		r.buf = make([]byte, 0, min(r.size, 1<<20))
	case f.GetSize() != 0:
		return nil, fmt.Errorf("%w: a fragment in the middle of a message set a size", errBadMessage)
	}
	if len(r.buf)+len(f.GetData()) > r.size {
		return nil, fmt.Errorf("%w: fragments beyond their message's %d bytes", errBadMessage, r.size)
	}
	r.buf = append(r.buf, f.GetData()...)
	if len(r.buf) < r.size {
		return nil, nil
	}
	whole := r.buf
	r.buf, r.size = nil, 0
	if len(whole) > 0 && whole[0] == fragmentTag {
		return nil, fmt.Errorf("%w: a fragmented message is itself a fragment", errBadMessage)
	}
	return decodeMessage(whole)
}
