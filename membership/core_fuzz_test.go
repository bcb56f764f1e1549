package membership

import (
	"encoding/binary"
	"testing"
	"time"
)

// fuzzIDs are the ids fuzzed messages may name: members, strangers and the receiver itself.
var fuzzIDs = []string{"a@127.0.0.1:4001", "b@127.0.0.1:4002", "c@127.0.0.1:4003", "x@10.0.0.9:1", "y@[::1]:2"}

// fuzzMessage builds one message from the front of data and returns the rest.
func fuzzMessage(data []byte) (*Message, []byte) {
	if len(data) < 10 {
		return nil, nil
	}
	kind, idx, n := data[0]%5, int(data[1])%len(fuzzIDs), binary.BigEndian.Uint64(data[2:10])
	data = data[10:]
	id := MustParseNodeID(fuzzIDs[idx])
	var entries []MemberEntry
	for i := 0; i < int(n%4) && len(data) >= 3; i++ {
		entries = append(entries, MemberEntry{ID: MustParseNodeID(fuzzIDs[int(data[0])%len(fuzzIDs)]), Incarnation: uint64(data[1]), Left: data[2]%2 == 1})
		data = data[3:]
	}
	switch kind {
	case 0:
		return &Message{Hello: &Hello{ID: id, Incarnation: n % 8, ProtocolVersion: uint32(n % 3), HeartbeatInterval: time.Duration(n%5000) * time.Millisecond,
			MissThreshold: int(n%4) + 1, Uptime: time.Duration(n), View: entries}}, data
	case 1:
		hb := &Heartbeat{ViewDigest: n, ProcessCount: int(n % 100), AttributesVersion: n % 5}
		if n%3 == 0 {
			hb.ID = id
		}
		if n%7 == 0 {
			hb.Attributes = &Attributes{Version: n % 5, Metadata: map[string]string{"k": "v"}}
		}
		return &Message{Heartbeat: hb}, data
	case 2:
		return &Message{Update: &Update{Full: n%2 == 0, ReplyRequested: n%3 == 0, Entries: entries}}, data
	case 3:
		return &Message{Leave: &Leave{ID: id, Incarnation: n % 8}}, data
	default:
		return &Message{Reject: &Reject{Reason: RejectReason(n % 9), Detail: "fuzz"}}, data
	}
}

// FuzzCoreReceive drives a node of a small simulated cluster with arbitrary messages on
// its live streams, interleaved with time: the engine never panics, never lists itself, and
// its event log per peer never holds two ups or two downs in a row.
func FuzzCoreReceive(f *testing.F) {
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 3, 0, 0, 0, 0, 0, 0, 0, 9, 2, 4, 1, 0})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 7, 0, 1, 9, 1, 2, 200, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSim(t)
		a := s.add("a@127.0.0.1:4001", nil)
		b := s.add("b@127.0.0.1:4002", simConfig("b", "a@127.0.0.1:4001"))
		c := s.add("c@127.0.0.1:4003", simConfig("c", "a@127.0.0.1:4001"))
		s.advance(100 * time.Millisecond)
		senders := []*simNode{b, c}
		for i := 0; len(data) > 0 && i < 64; i++ {
			from := senders[int(data[0])%2]
			var msg *Message
			msg, data = fuzzMessage(data)
			if msg == nil {
				break
			}
			if from.streamEnd(a) != nil {
				s.inject(from, a, msg)
			}
			s.advance(time.Duration(i%7) * 100 * time.Millisecond)
		}
		for _, id := range a.connectedIDs() {
			if id == a.id.String() {
				t.Fatal("a node lists itself")
			}
		}
		requireAlternating(t, a)
	})
}
