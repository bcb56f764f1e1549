package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// peerMessageSeeds returns encoded examples of every peer message: hello, heartbeat, update,
// leave, reject, one alert, a batch of alerts, unlink.
func peerMessageSeeds(t testing.TB) [][]byte {
	t.Helper()
	id := membership.MustParseNodeID("a@127.0.0.1:4369")
	other := membership.MustParseNodeID("b@[::1]:4370")
	msgs := []*membership.Message{
		{Hello: &membership.Hello{ID: id, Incarnation: 42, ProtocolVersion: 1, HeartbeatInterval: time.Second, MissThreshold: 3,
			Uptime: time.Minute, Attributes: membership.Attributes{Version: 2, ProcessCount: 3, Metadata: map[string]string{"k": "v"}},
			View: []membership.MemberEntry{{ID: other, Incarnation: 7}, {ID: membership.MustParseNodeID("c@h:1"), Incarnation: 1, Left: true}}, ViewDigest: 0xfeedface12345678, ClusterName: "blue", ViewSize: 1024, MonitorsSaid: true, HoldsYouDown: true, TakesReassert: true}},
		{Heartbeat: &membership.Heartbeat{ViewDigest: 0xdeadbeefcafef00d, ProcessCount: 3, AttributesVersion: 2}},
		{Update: &membership.Update{Full: true, ReplyRequested: true, Hop: 3, Entries: []membership.MemberEntry{{ID: other, Incarnation: 7}}}},
		{Leave: &membership.Leave{ID: id, Incarnation: 42}},
		{Reject: &membership.Reject{Reason: membership.RejectDuplicateStream, Detail: "dup"}},
		{Reject: &membership.Reject{Reason: membership.RejectClusterName, Detail: `cluster name "blue" here, none in the hello`}},
		{Alerts: []*membership.Alert{{Subject: other, Incarnation: 7, Observer: id, Reason: membership.ReasonConnectionClosed, Refused: true}}},
		{Alerts: []*membership.Alert{
			{Subject: other, Incarnation: 7, Observer: id, Reason: membership.ReasonHeartbeatTimeout},
			{Subject: other, Incarnation: 7, Observer: id, Up: true},
			{Subject: id, Incarnation: 42, Observer: other, Reason: membership.ReasonConnectionClosed, Decided: true, Hop: 2, Seq: 1796370154438935290, Round: 3},
		}},
		{Unlink: &membership.Unlink{}},
		{Reassert: &membership.Reassert{}},
		{Reject: &membership.Reject{Reason: membership.RejectMonitors, Detail: "monitors 10 here, 4 in the hello"}},
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
		if msg.Hello != nil {
			require.Equal(t, uint32(1024), msg.Hello.ViewSize, "the hello's view size survives decoding")
			require.True(t, msg.Hello.MonitorsSaid, "a K of 0 (a full mesh at any size) is said, not left out")
			require.Zero(t, msg.Hello.Monitors)
			require.True(t, msg.Hello.HoldsYouDown, "the hello's holds_you_down survives decoding")
			require.True(t, msg.Hello.TakesReassert, "the hello's takes_reassert survives decoding")
		}
	}
}

// A hello says its sender's K, which survives decoding; a hello without it (a node that
// predates the field) decodes as not saying it, so it is not checked.
func TestCodecCarriesTheHellosMonitors(t *testing.T) {
	hello := func(k int, said bool) *membership.Hello {
		body, err := encodeMessage(&membership.Message{Hello: &membership.Hello{
			ID: membership.MustParseNodeID("a@127.0.0.1:4369"), Incarnation: 1, ProtocolVersion: 1,
			HeartbeatInterval: time.Second, MissThreshold: 3, Monitors: k, MonitorsSaid: said}})
		require.NoError(t, err)
		msg, err := decodeMessage(body)
		require.NoError(t, err)
		return msg.Hello
	}
	h := hello(10, true)
	require.True(t, h.MonitorsSaid)
	require.Equal(t, 10, h.Monitors)
	h = hello(0, false)
	require.False(t, h.MonitorsSaid, "absent on the wire: not said")
}

func TestCodecRejectsMalformedMessages(t *testing.T) {
	bad := []*clusterv1.PeerMessage{
		{},
		{Kind: &clusterv1.PeerMessage_Hello{Hello: &clusterv1.Hello{NodeId: "1bad@h:1", Incarnation: 1}}},
		{Kind: &clusterv1.PeerMessage_Hello{Hello: &clusterv1.Hello{NodeId: "a@h:1"}}},
		{Kind: &clusterv1.PeerMessage_Leave{Leave: &clusterv1.Leave{NodeId: "nope"}}},
		{Kind: &clusterv1.PeerMessage_Update{Update: &clusterv1.MembershipUpdate{Entries: []*clusterv1.MemberEntry{{NodeId: "a@h:1"}}}}},
		{Kind: &clusterv1.PeerMessage_Heartbeat{Heartbeat: &clusterv1.Heartbeat{NodeId: "@@"}}},
		{Kind: &clusterv1.PeerMessage_Hello{Hello: &clusterv1.Hello{NodeId: "a@h:1", Incarnation: 1, ProtocolVersion: 1,
			HeartbeatInterval: durationpb.New(time.Second), HeartbeatMissThreshold: 3, ClusterName: "not a name"}}},
		{Kind: &clusterv1.PeerMessage_Alerts{Alerts: &clusterv1.AlertBatch{}}},
		{Kind: &clusterv1.PeerMessage_Alerts{Alerts: &clusterv1.AlertBatch{Alerts: []*clusterv1.Alert{
			{SubjectId: "a@h:1", ObserverId: "b@h:2", Reason: clusterv1.NodeDownReason_NODE_DOWN_REASON_CONNECTION_CLOSED},
			{SubjectId: "a@h:1", ObserverId: "not an id", Reason: clusterv1.NodeDownReason_NODE_DOWN_REASON_CONNECTION_CLOSED},
		}}}},
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

// TestPlainHeartbeatDecodingMatchesProtobuf checks the shortcut that decodes plain heartbeats
// without protobuf's reflection: for every body, it gives what proto.Unmarshal and the full
// checks give, or leaves the body to them.
func TestPlainHeartbeatDecodingMatchesProtobuf(t *testing.T) {
	hb := func(h *clusterv1.Heartbeat) []byte {
		b, err := proto.Marshal(&clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Heartbeat{Heartbeat: h}})
		require.NoError(t, err)
		return b
	}
	plain := [][]byte{
		hb(&clusterv1.Heartbeat{}),
		hb(&clusterv1.Heartbeat{ViewDigest: 0xdeadbeefcafef00d}),
		hb(&clusterv1.Heartbeat{ViewDigest: 1, ProcessCount: 4294967295, AttributesVersion: 1 << 63}),
		hb(&clusterv1.Heartbeat{ProcessCount: 7}),
		hb(&clusterv1.Heartbeat{ViewDigest: 5, NotMonitoring: true}),
		hb(&clusterv1.Heartbeat{ViewDigest: 5, AttributesDigest: 0xfeedfacecafebeef, AttributesVersion: 2}),
	}
	for _, body := range plain {
		require.NotNil(t, decodePlainHeartbeat(body), "%x is a plain heartbeat", body)
	}
	withID := hb(&clusterv1.Heartbeat{ViewDigest: 9, NodeId: "a@127.0.0.1:1"})
	others := [][]byte{
		withID,
		hb(&clusterv1.Heartbeat{Attributes: &clusterv1.NodeAttributes{Version: 3, Metadata: map[string]string{"k": "v"}}}),
		append(hb(&clusterv1.Heartbeat{ViewDigest: 1}), 0x1a, 0x00),    // a second kind after it (an empty update)
		append([]byte{0x12, 0x02, 0x10, 0x05}, 0x12, 0x02, 0x10, 0x06), // the heartbeat twice: protobuf merges
		{0x12, 0x04, 0x10, 0x05, 0x10, 0x06},                           // a field twice: the last wins
		{0x12, 0x06, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10},               // a process count over 32 bits
		{0x12, 0x03, 0x40, 0x01, 0x00},                                 // an unknown field
		{0x12, 0x02, 0x38, 0x01},                                       // the attributes digest as a varint
		{0x12, 0x02, 0x30, 0x02},                                       // not_monitoring as a varint other than 0 or 1
		{0x12, 0x02, 0x08, 0x01},                                       // the digest with the wrong wire type
		{0x12, 0x05, 0x09, 0x01},                                       // a truncated digest
		{0x12, 0x09, 0x09, 1, 2, 3, 4, 5, 6, 7},                        // a length past the end
		{0x0a, 0x00},                                                   // an empty hello
		{},
	}
	for _, body := range others {
		require.Nil(t, decodePlainHeartbeat(body), "%x is left to protobuf", body)
	}
	for _, body := range append(plain, others...) {
		want, wantErr := decodeMessage(body)
		var pm clusterv1.PeerMessage
		if err := proto.Unmarshal(body, &pm); err == nil && pm.GetHeartbeat() != nil {
			want, wantErr = decodeHeartbeat(pm.GetHeartbeat())
		}
		got, gotErr := decodeMessage(body)
		require.Equal(t, wantErr == nil, gotErr == nil, "%x: errors %v and %v", body, wantErr, gotErr)
		require.Equal(t, want, got, "%x decodes as protobuf decodes it", body)
	}
}

// TestPlainHeartbeatFieldNumbersMatchTheProto keeps the hand-read field numbers of
// decodePlainHeartbeat in step with peer.proto.
func TestPlainHeartbeatFieldNumbersMatchTheProto(t *testing.T) {
	pm := (&clusterv1.PeerMessage{}).ProtoReflect().Descriptor()
	hb := (&clusterv1.Heartbeat{}).ProtoReflect().Descriptor()
	require.EqualValues(t, pm.Fields().ByName("heartbeat").Number(), heartbeatKindField)
	require.EqualValues(t, hb.Fields().ByName("view_digest").Number(), heartbeatViewDigestField)
	require.EqualValues(t, hb.Fields().ByName("process_count").Number(), heartbeatProcessCountField)
	require.EqualValues(t, hb.Fields().ByName("attributes_version").Number(), heartbeatAttributesVersionField)
	require.EqualValues(t, hb.Fields().ByName("not_monitoring").Number(), heartbeatNotMonitoringField)
	require.EqualValues(t, hb.Fields().ByName("attributes_digest").Number(), heartbeatAttributesDigestField)
}
