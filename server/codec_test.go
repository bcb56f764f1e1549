package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// peerMessageSeeds returns encoded examples of every peer message: hello, heartbeat, update,
// leave, reject.
func peerMessageSeeds(t testing.TB) [][]byte {
	t.Helper()
	id := membership.MustParseNodeID("a@127.0.0.1:4369")
	other := membership.MustParseNodeID("b@[::1]:4370")
	msgs := []*membership.Message{
		{Hello: &membership.Hello{ID: id, Incarnation: 42, ProtocolVersion: 1, HeartbeatInterval: time.Second, MissThreshold: 3,
			Uptime: time.Minute, Attributes: membership.Attributes{Version: 2, ProcessCount: 3, Metadata: map[string]string{"k": "v"}},
			View: []membership.MemberEntry{{ID: other, Incarnation: 7}, {ID: membership.MustParseNodeID("c@h:1"), Incarnation: 1, Left: true}}, ViewDigest: 0xfeedface12345678}},
		{Heartbeat: &membership.Heartbeat{ViewDigest: 0xdeadbeefcafef00d, ProcessCount: 3, AttributesVersion: 2}},
		{Update: &membership.Update{Full: true, ReplyRequested: true, Entries: []membership.MemberEntry{{ID: other, Incarnation: 7}}}},
		{Leave: &membership.Leave{ID: id, Incarnation: 42}},
		{Reject: &membership.Reject{Reason: membership.RejectDuplicateStream, Detail: "dup"}},
	}
	var out [][]byte
	for _, m := range msgs {
		b, err := encodeMessage(m)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

func TestCodecRoundTripsEveryMessage(t *testing.T) {
	for _, body := range peerMessageSeeds(t) {
		msg, err := decodeMessage(body)
		require.NoError(t, err)
		again, err := encodeMessage(msg)
		require.NoError(t, err)
		var x, y clusterv1.PeerMessage
		require.NoError(t, proto.Unmarshal(body, &x))
		require.NoError(t, proto.Unmarshal(again, &y))
		require.True(t, proto.Equal(&x, &y), "round trip changed %v", &x)
	}
}

func TestCodecRejectsMalformedMessages(t *testing.T) {
	bad := []*clusterv1.PeerMessage{
		{},
		{Kind: &clusterv1.PeerMessage_Hello{Hello: &clusterv1.Hello{NodeId: "1bad@h:1", Incarnation: 1}}},
		{Kind: &clusterv1.PeerMessage_Hello{Hello: &clusterv1.Hello{NodeId: "a@h:1"}}},
		{Kind: &clusterv1.PeerMessage_Leave{Leave: &clusterv1.Leave{NodeId: "nope"}}},
		{Kind: &clusterv1.PeerMessage_Update{Update: &clusterv1.MembershipUpdate{Entries: []*clusterv1.MemberEntry{{NodeId: "a@h:1"}}}}},
		{Kind: &clusterv1.PeerMessage_Heartbeat{Heartbeat: &clusterv1.Heartbeat{NodeId: "@@"}}},
	}
	for _, pm := range bad {
		body, err := proto.Marshal(pm)
		require.NoError(t, err)
		_, err = decodeMessage(body)
		require.ErrorIs(t, err, errBadMessage, "%v should be refused", pm)
	}
	_, err := decodeMessage([]byte{0xff, 0xff, 0xff})
	require.ErrorIs(t, err, errBadMessage)
}

func TestHeartbeatFrameSizeDoesNotGrowWithTheCluster(t *testing.T) {
	hb := peerMessageSeeds(t)[1]
	key := [][]byte{[]byte("k-0123456789abcdef")}
	c, _ := pairedSessions(t, key, key)
	seq, mac := c.seal(hb)
	frame, err := proto.Marshal(&clusterv1.ExchangeRequest{Body: hb, Sequence: seq, Mac: mac})
	require.NoError(t, err)
	t.Logf("heartbeat body %d bytes, signed frame %d bytes (+5 gRPC, +9 HTTP/2 frame header)", len(hb), len(frame))
	require.Less(t, len(frame), 80, "a signed heartbeat frame stays small")
}
