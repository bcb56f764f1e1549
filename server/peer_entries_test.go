package server

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// randomEntries returns n view entries: left, down and with attributes now and then.
func randomEntries(rng *rand.Rand, n int) []membership.MemberEntry {
	out := make([]membership.MemberEntry, n)
	for i := range out {
		host := "127.0.0.1"
		if rng.IntN(4) == 0 {
			host = "[::1]"
		}
		out[i] = membership.MemberEntry{
			ID:          membership.MustParseNodeID(fmt.Sprintf("n%d@%s:%d", rng.IntN(5000), host, 1+rng.IntN(65535))),
			Incarnation: rng.Uint64() >> rng.IntN(64),
			Left:        rng.IntN(6) == 0,
			Down:        rng.IntN(4) == 0,
		}
		if rng.IntN(8) == 0 {
			out[i].Attrs = &membership.Attributes{Version: rng.Uint64N(9), ProcessCount: rng.IntN(5)}
			for k := range rng.IntN(4) {
				if out[i].Attrs.Metadata == nil {
					out[i].Attrs.Metadata = map[string]string{}
				}
				out[i].Attrs.Metadata[fmt.Sprintf("k%d", k*rng.IntN(2))] = fmt.Sprintf("v%d", rng.IntN(3))[:rng.IntN(3)]
			}
		}
	}
	return out
}

// protoEntries is how protobuf's generated types carry entries.
func protoEntries(entries []membership.MemberEntry) []*clusterv1.MemberEntry {
	out := make([]*clusterv1.MemberEntry, len(entries))
	for i, e := range entries {
		state := clusterv1.MemberState_MEMBER_STATE_ALIVE
		if e.Left {
			state = clusterv1.MemberState_MEMBER_STATE_LEFT
		}
		out[i] = &clusterv1.MemberEntry{NodeId: e.ID.String(), Incarnation: e.Incarnation, State: state, Down: e.Down && !e.Left}
		if e.Attrs != nil {
			out[i].Info = encodeAttributes(*e.Attrs)
		}
	}
	return out
}

// TestHandWrittenViewsAreWhatProtobufWrites encodes updates and hellos with views by hand and
// checks that protobuf reads them as the messages its generated types would have sent, and
// that an update's bytes are those of protobuf's deterministic mode.
func TestHandWrittenViewsAreWhatProtobufWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		entries := randomEntries(rng, rng.IntN(30))
		u := &membership.Update{Full: rng.IntN(2) == 0, ReplyRequested: rng.IntN(2) == 0, Hop: uint32(rng.IntN(3)) << rng.IntN(30), Entries: entries}
		body, err := encodeMessage(&membership.Message{Update: u})
		require.NoError(t, err)
		want := &clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Update{Update: &clusterv1.MembershipUpdate{
			Full: u.Full, ReplyRequested: u.ReplyRequested, Entries: protoEntries(entries), Hop: u.Hop,
		}}}
		var got clusterv1.PeerMessage
		require.NoError(t, proto.Unmarshal(body, &got), "trial %d", trial)
		require.True(t, proto.Equal(want, &got), "trial %d: the update reads back as %v, want %v", trial, &got, want)
		wantBody, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		require.NoError(t, err)
		require.Equal(t, wantBody, body, "trial %d: the update's bytes are protobuf's (deterministic: maps in key order)", trial)

		h := &membership.Hello{ID: entries0(entries), Incarnation: 1 + rng.Uint64N(100), ProtocolVersion: 1, HeartbeatInterval: time.Second,
			MissThreshold: 3, Uptime: time.Minute, View: entries, ViewDigest: rng.Uint64(), ClusterName: "blue"}
		body, err = encodeMessage(&membership.Message{Hello: h})
		require.NoError(t, err)
		var hello clusterv1.PeerMessage
		require.NoError(t, proto.Unmarshal(body, &hello), "trial %d", trial)
		require.True(t, proto.Equal(&clusterv1.Hello{
			NodeId: h.ID.String(), Incarnation: h.Incarnation, ProtocolVersion: 1, HeartbeatInterval: durationpb.New(time.Second),
			HeartbeatMissThreshold: 3, Uptime: durationpb.New(time.Minute), Info: encodeAttributes(h.Attributes),
			View: protoEntries(entries), ViewDigest: h.ViewDigest, ClusterName: "blue",
		}, hello.GetHello()), "trial %d: the hello reads back as %v", trial, &hello)
	}
}

func entries0(entries []membership.MemberEntry) membership.NodeID {
	if len(entries) == 0 {
		return membership.MustParseNodeID("self@127.0.0.1:1")
	}
	return entries[0].ID
}

// TestHandReadViewsDecodeAsProtobufDoes feeds the decoder updates and hellos, well formed and
// not, written by protobuf and by hand: for each it accepts what the path through protobuf
// accepts, with the same result, and refuses what it refuses.
func TestHandReadViewsDecodeAsProtobufDoes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	marshal := func(pm *clusterv1.PeerMessage) []byte {
		b, err := proto.Marshal(pm)
		require.NoError(t, err)
		return b
	}
	update := func(entries ...*clusterv1.MemberEntry) []byte {
		return marshal(&clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Update{Update: &clusterv1.MembershipUpdate{Entries: entries, Hop: 2}}})
	}
	hello := func(entries ...*clusterv1.MemberEntry) []byte {
		return marshal(&clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Hello{Hello: &clusterv1.Hello{
			NodeId: "a@127.0.0.1:1", Incarnation: 3, ProtocolVersion: 1, HeartbeatInterval: durationpb.New(time.Second),
			HeartbeatMissThreshold: 3, View: entries, ViewDigest: 9,
		}}})
	}
	ok := &clusterv1.MemberEntry{NodeId: "b@127.0.0.1:2", Incarnation: 5}
	// attrs is an update of one plain entry whose attributes' fields are raw.
	attrs := func(fields ...byte) []byte {
		entry := append([]byte{0x0a, 0x03, 'b', '@', 'h', ':', '2', 0x18, 0x01, 0x22, byte(len(fields))}, fields...)
		return append([]byte{0x1a, byte(len(entry) + 2), 0x1a, byte(len(entry))}, entry...)
	}
	bodies := [][]byte{
		update(), hello(),
		update(ok), hello(ok),
		update(ok, &clusterv1.MemberEntry{NodeId: "c@h:3", Incarnation: 1, State: clusterv1.MemberState_MEMBER_STATE_LEFT, Down: true}),
		update(&clusterv1.MemberEntry{NodeId: "not an id", Incarnation: 1}),
		hello(&clusterv1.MemberEntry{NodeId: "not an id", Incarnation: 1}),
		update(&clusterv1.MemberEntry{NodeId: "b@h:2", State: clusterv1.MemberState(7)}),
		update(&clusterv1.MemberEntry{NodeId: "b@h:2", State: clusterv1.MemberState_MEMBER_STATE_UNSPECIFIED}),
		update(&clusterv1.MemberEntry{Incarnation: 4}),
		update(&clusterv1.MemberEntry{NodeId: "b@h:2", Info: &clusterv1.NodeAttributes{Version: 2, Metadata: map[string]string{"k": "v"}}}),
		hello(&clusterv1.MemberEntry{NodeId: "b@h:2", Info: &clusterv1.NodeAttributes{Version: 2}}),
		{0x1a, 0x09, 0x1a, 0x07, 0x0a, 0x03, 0xff, 0xfe, 0xfd, 0x18, 0x01},                    // an id that is not UTF-8
		{0x1a, 0x0c, 0x1a, 0x0a, 0x0a, 0x04, 'b', '@', 'h', ':', 0x0a, 0x00, 0x18, 0x01},      // the id twice
		{0x1a, 0x09, 0x1a, 0x07, 0x0a, 0x05, 'b', '@', 'h', ':', '2', 0x28},                   // a truncated field
		{0x1a, 0x0d, 0x1a, 0x09, 0x0a, 0x05, 'b', '@', 'h', ':', '2', 0x18, 0x01, 0x78, 1},    // an unknown field after the entry
		{0x1a, 0x0b, 0x1a, 0x09, 0x0a, 0x05, 'b', '@', 'h', ':', '2', 0x18, 0x01},             // a plain entry
		{0x1a, 0x0b, 0x1a, 0x09, 0x0a, 0x05, 'b', '@', 'h', ':', '2', 0x18, 0x00},             // an unspecified state
		{0x1a, 0x0d, 0x1a, 0x0b, 0x0a, 0x05, 'b', '@', 'h', ':', '2', 0x18, 0x01, 0x18, 0x02}, // the state twice: the last wins
		{0x1a, 0x04, 0x08, 0x01, 0x08, 0x00},                                                  // full twice: the last wins
		{0x1a, 0x02, 0x08, 0x02},                                                              // full as a varint other than 0 or 1
		{0x1a, 0x06, 0x20, 0x80, 0x80, 0x80, 0x80, 0x10},                                      // a hop over 32 bits
		{0x1a, 0x02, 0x1a, 0x00, 0x1a, 0x00},                                                  // a second update after the first
		{0x1a, 0x02, 0x1a, 0x00},                                                              // an entry with nothing in it
		update(&clusterv1.MemberEntry{NodeId: "b@h:2", State: clusterv1.MemberState_MEMBER_STATE_ALIVE, Info: &clusterv1.NodeAttributes{}}),
		update(&clusterv1.MemberEntry{NodeId: "b@h:2", State: clusterv1.MemberState_MEMBER_STATE_ALIVE,
			Info: &clusterv1.NodeAttributes{Version: 1 << 60, ProcessCount: 1<<32 - 1, Metadata: map[string]string{"": "x", "a": ""}}}),
		attrs(0x08, 0x01, 0x08, 0x02),                                                                     // the version twice
		attrs(0x10, 0x80, 0x80, 0x80, 0x80, 0x10),                                                         // a process count over 32 bits
		attrs(0x1a, 0x04, 0x0a, 0x01, 'k', 0x7a),                                                          // an unknown field in a metadata entry, truncated
		attrs(0x1a, 0x06, 0x0a, 0x01, 'k', 0x0a, 0x01, 'j'),                                               // a metadata key twice in one entry
		attrs(0x1a, 0x03, 0x12, 0x01, 0xff),                                                               // a metadata value that is not UTF-8
		attrs(0x1a, 0x03, 0x0a, 0x01, 'k', 0x1a, 0x03, 0x0a, 0x01, 'k'),                                   // one key in two entries
		attrs(0x1a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v', 0x1a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'w'), // the last value wins
		attrs(0x20, 0x01),              // an unknown attributes field
		attrs(0x1a, 0x02, 0x18, 0x01),  // a metadata entry with a field other than key and value
		{0x0a, 0x02, 0x42, 0x00},       // a hello with only an empty view entry
		{0x0a, 0x03, 0x42, 0x05, 0x00}, // a hello's view entry past the end
	}
	for range 50 {
		entries := randomEntries(rng, rng.IntN(20))
		bodies = append(bodies, update(protoEntries(entries)...), hello(protoEntries(entries)...))
		body, err := encodeMessage(&membership.Message{Update: &membership.Update{Entries: entries, Hop: 1}})
		require.NoError(t, err)
		bodies = append(bodies, body)
		// What nodes send is read by hand, but for the entries with attributes.
		msg, err := decodeWireUpdate(body)
		require.NoError(t, err)
		require.NotNil(t, msg, "%x: an update is read by hand", body)
		_, fields, views, ok := splitHello(hello(protoEntries(entries)...))
		require.True(t, ok, "a hello is split by hand")
		require.Equal(t, len(entries), views)
		for i := 0; len(fields) > 0; {
			num, typ, n := protowire.ConsumeTag(fields)
			m := protowire.ConsumeFieldValue(num, typ, fields[n:])
			if num == helloViewField {
				v, _ := protowire.ConsumeBytes(fields[n:])
				_, _, _, plain := decodePlainEntry(v)
				require.True(t, plain, "entry %d (%+v) is read by hand", i, entries[i])
				i++
			}
			fields = fields[n+m:]
		}
	}
	for _, body := range bodies {
		want, wantErr := decodeProtoMessage(body)
		got, gotErr := decodeMessage(body)
		require.Equal(t, wantErr == nil, gotErr == nil, "%x: errors %v (protobuf) and %v", body, wantErr, gotErr)
		if gotErr != nil {
			require.ErrorIs(t, gotErr, errBadMessage)
			continue
		}
		require.Equal(t, want, got, "%x decodes as protobuf decodes it", body)
	}
}

// TestHandCodedViewFieldNumbersMatchTheProto keeps the field numbers written and read by hand
// in step with peer.proto.
func TestHandCodedViewFieldNumbersMatchTheProto(t *testing.T) {
	pm := (&clusterv1.PeerMessage{}).ProtoReflect().Descriptor().Fields()
	hello := (&clusterv1.Hello{}).ProtoReflect().Descriptor().Fields()
	update := (&clusterv1.MembershipUpdate{}).ProtoReflect().Descriptor().Fields()
	entry := (&clusterv1.MemberEntry{}).ProtoReflect().Descriptor().Fields()
	for _, c := range []struct {
		proto int
		here  int
	}{
		{int(pm.ByName("hello").Number()), peerHelloField},
		{int(pm.ByName("update").Number()), peerUpdateField},
		{int(hello.ByName("view").Number()), helloViewField},
		{int(update.ByName("full").Number()), updateFullField},
		{int(update.ByName("reply_requested").Number()), updateReplyField},
		{int(update.ByName("entries").Number()), updateEntriesField},
		{int(update.ByName("hop").Number()), updateHopField},
		{int(entry.ByName("node_id").Number()), entryNodeIDField},
		{int(entry.ByName("incarnation").Number()), entryIncarnationField},
		{int(entry.ByName("state").Number()), entryStateField},
		{int(entry.ByName("info").Number()), entryInfoField},
		{int(entry.ByName("down").Number()), entryDownField},
	} {
		require.Equal(t, c.proto, c.here)
	}
}

// BenchmarkDecodeView decodes a full sync of a thousand entries, by hand and through protobuf.
func BenchmarkDecodeView(b *testing.B) {
	entries := randomEntries(rand.New(rand.NewPCG(1, 1)), 1000)
	for i := range entries {
		entries[i].Attrs = nil
	}
	body, err := encodeMessage(&membership.Message{Update: &membership.Update{Full: true, Entries: entries}})
	require.NoError(b, err)
	for _, c := range []struct {
		name   string
		decode func([]byte) (*membership.Message, error)
	}{{"by hand", decodeMessage}, {"through protobuf", decodeProtoMessage}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := c.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A view whose entries all carry attributes (as every view does above K+1 nodes) decodes
// with one allocation for all their attributes, not one per entry, and each entry keeps its
// own.
func TestViewAttributesDecodeIntoOneAllocation(t *testing.T) {
	entries := make([]membership.MemberEntry, 200)
	for i := range entries {
		entries[i] = membership.MemberEntry{
			ID:          membership.MustParseNodeID(fmt.Sprintf("n%03d@127.0.0.1:%d", i, 4000+i)),
			Incarnation: uint64(i + 1),
			Attrs:       &membership.Attributes{Version: uint64(i%3 + 1), ProcessCount: i % 5},
		}
	}
	body, err := proto.Marshal(&clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Update{
		Update: &clusterv1.MembershipUpdate{Full: true, Entries: protoEntries(entries)}}})
	require.NoError(t, err)
	withAttrs := testing.AllocsPerRun(20, func() { _, _ = decodeMessage(body) })
	for i := range entries {
		entries[i].Attrs = nil
	}
	bare, err := proto.Marshal(&clusterv1.PeerMessage{Kind: &clusterv1.PeerMessage_Update{
		Update: &clusterv1.MembershipUpdate{Full: true, Entries: protoEntries(entries)}}})
	require.NoError(t, err)
	without := testing.AllocsPerRun(20, func() { _, _ = decodeMessage(bare) })
	require.LessOrEqual(t, withAttrs, without+1, "the attributes of 200 entries cost one allocation")

	msg, err := decodeMessage(body)
	require.NoError(t, err)
	require.Len(t, msg.Update.Entries, 200)
	for i, e := range msg.Update.Entries {
		require.NotNil(t, e.Attrs, "entry %d keeps its attributes", i)
		require.Equal(t, membership.Attributes{Version: uint64(i%3 + 1), ProcessCount: i % 5}, *e.Attrs, "entry %d", i)
	}
}
