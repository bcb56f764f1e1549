package server

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// bigHello is a Hello whose view of n nodes makes it far larger than a frame.
func bigHello(n int) *membership.Message {
	view := make([]membership.MemberEntry, n)
	for i := range view {
		view[i] = membership.MemberEntry{ID: membership.MustParseNodeID(fmt.Sprintf("node-%d@127.0.0.1:%d", i, 1+i%65535)), Incarnation: uint64(i + 1)}
	}
	return &membership.Message{Hello: &membership.Hello{
		ID: membership.MustParseNodeID("big@127.0.0.1:1"), Incarnation: 7, ProtocolVersion: membership.ProtocolVersion,
		HeartbeatInterval: time.Second, MissThreshold: 3, View: view,
	}}
}

// fragmentsOf encodes msg and cuts it as a stream would send it.
func fragmentsOf(t *testing.T, msg *membership.Message) [][]byte {
	t.Helper()
	body, err := encodeMessage(msg)
	require.NoError(t, err)
	var frames [][]byte
	require.NoError(t, sendFragments(body, func(b []byte) error { frames = append(frames, b); return nil }))
	return frames
}

func TestFragmentsJoinIntoTheMessage(t *testing.T) {
	msg := bigHello(5000)
	frames := fragmentsOf(t, msg)
	require.Greater(t, len(frames), 2)
	var r reassembler
	for i, f := range frames {
		require.LessOrEqual(t, len(f), peerFragmentBytes+64, "frame %d stays small", i)
		got, err := r.next(f)
		require.NoError(t, err)
		if i < len(frames)-1 {
			require.Nil(t, got, "no message before the last fragment")
			continue
		}
		require.NotNil(t, got)
		require.Len(t, got.Hello.View, 5000)
		require.Equal(t, msg.Hello.View[4999], got.Hello.View[4999])
	}
	// Then plain messages again.
	hb, err := encodeMessage(&membership.Message{Heartbeat: &membership.Heartbeat{ViewDigest: 9}})
	require.NoError(t, err)
	got, err := r.next(hb)
	require.NoError(t, err)
	require.Equal(t, uint64(9), got.Heartbeat.ViewDigest)
}

func TestMalformedFragmentsAreRefused(t *testing.T) {
	frames := fragmentsOf(t, bigHello(5000))
	hb, err := encodeMessage(&membership.Message{Heartbeat: &membership.Heartbeat{ViewDigest: 9}})
	require.NoError(t, err)
	frag := func(size uint32, data []byte) []byte {
		b, err := proto.Marshal(&clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Fragment{Fragment: &clusterv1.Fragment{Size: size, Data: data}}})
		require.NoError(t, err)
		return b
	}
	for name, seq := range map[string][][]byte{
		"a message in the middle":          {frames[0], hb},
		"a continuation with no start":     {frames[1]},
		"a second start":                   {frames[0], frames[0]},
		"over the limit":                   {frag(DefaultMaxPeerMessageBytes+1, []byte{1})},
		"more data than the size":          {frag(2, []byte{1, 2, 3})},
		"a fragment of fragments":          {frag(uint32(len(frames[1])), frames[1])},
		"a fragment decoded as a message":  {append([]byte{}, frames[0][:3]...)},
		"an empty fragmented message":      {frag(0, nil)},
		"garbage that starts like a frame": {{fragmentTag, 0xff, 0xff}},
	} {
		t.Run(name, func(t *testing.T) {
			var r reassembler
			var err error
			for _, f := range seq {
				if _, err = r.next(f); err != nil {
					break
				}
			}
			require.ErrorIs(t, err, errBadMessage)
		})
	}
}

func TestLargeMessagesCrossAStreamUnderTheReceiveLimit(t *testing.T) {
	msg := bigHello(30000) // about 1 MiB
	got := make(chan *membership.Message, 1)
	addr, stop := servePeerService(t, func(stream clusterv1.PeerService_ExchangeServer) error {
		conn, err := newServerConn(stream)
		if err != nil {
			return err
		}
		defer conn.Close()
		m, err := conn.Recv()
		if err != nil {
			return err
		}
		got <- m
		return conn.Send(msg)
	}, grpc.InTapHandle(cancellableStreams), grpc.MaxRecvMsgSize(DefaultMaxRecvMessageBytes))
	defer stop()
	stream, closeStream := openExchange(t, addr)
	defer closeStream()
	c := &clientConn{stream: stream}
	require.NoError(t, c.Send(msg))
	select {
	case m := <-got:
		require.Len(t, m.Hello.View, 30000, "the server joined the client's fragments")
	case <-time.After(10 * time.Second):
		t.Fatal("the large message never arrived")
	}
	m, err := c.Recv()
	require.NoError(t, err)
	require.Len(t, m.Hello.View, 30000, "the client joined the server's fragments")
}

// FuzzReassemble feeds frames (the input cut at each 0x00 0x00 pair) to a reassembler: it
// never panics and never holds more than its limit.
func FuzzReassemble(f *testing.F) {
	body, err := encodeMessage(bigHello(3))
	require.NoError(f, err)
	frag := func(size int, data []byte) []byte {
		b, err := proto.Marshal(&clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Fragment{Fragment: &clusterv1.Fragment{Size: uint32(size), Data: data}}})
		require.NoError(f, err)
		return b
	}
	half := len(body) / 2
	f.Add(bytes.Join([][]byte{frag(len(body), body[:half]), frag(0, body[half:])}, []byte{0, 0}))
	f.Add(bytes.Join([][]byte{body, frag(len(body), body)}, []byte{0, 0}))
	f.Add([]byte{fragmentTag, 4, 8, 200, 1, 18})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := reassembler{max: 100 << 10}
		for _, frame := range bytes.Split(in, []byte{0, 0}) {
			if _, err := r.next(frame); err != nil {
				return
			}
			if len(r.buf) > r.max || cap(r.buf) > 2*r.max {
				t.Fatalf("holds %d bytes (capacity %d), over the limit of %d", len(r.buf), cap(r.buf), r.max)
			}
		}
	})
}
