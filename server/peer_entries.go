package server

import (
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// Views travel as lists of MemberEntry: a thousand of them in the Hello a seed sends each
// joiner and in every sync. Through protobuf's reflection each entry cost a message of its
// own and its strings on both sides, which while a thousand nodes formed was over a third of
// all the garbage. This file writes and reads those lists (and the Update messages that carry
// them) by hand, in the wire format of peer.proto: what it writes is what protobuf's
// deterministic mode writes, and what it cannot read plainly (an unknown or repeated field,
// any malformed input) goes through protobuf as before, with the same checks and errors.

// Field numbers of peer.proto written and read by hand: PeerMessage.hello and .update,
// Hello.view, MembershipUpdate's fields, MemberEntry's and NodeAttributes' (and a map entry's).
const (
	peerHelloField        = 1
	peerUpdateField       = 3
	helloViewField        = 8
	updateFullField       = 1
	updateReplyField      = 2
	updateEntriesField    = 3
	updateHopField        = 4
	entryNodeIDField      = 1
	entryIncarnationField = 2
	entryStateField       = 3
	entryInfoField        = 4
	entryDownField        = 5
	attrsVersionField     = 1
	attrsProcessesField   = 2
	attrsMetadataField    = 3
	mapKeyField           = 1
	mapValueField         = 2
)

// appendEntries appends entries as the repeated MemberEntry field num, fields in number order
// and zero values left out (the state is never zero), as proto.Marshal writes them.
func appendEntries(b []byte, num protowire.Number, entries []membership.MemberEntry) []byte {
	var idBuf [128]byte
	for _, e := range entries {
		id := appendID(idBuf[:0], e.ID)
		var info []byte
		if e.Attrs != nil {
			info = appendAttributes(nil, *e.Attrs)
		}
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(entrySize(id, e, info)))
		b = appendEntry(b, id, e, info)
	}
	return b
}

// appendAttributes appends a's NodeAttributes fields, the metadata in key order (as
// protobuf's deterministic mode writes a map).
func appendAttributes(b []byte, a membership.Attributes) []byte {
	if a.Version != 0 {
		b = protowire.AppendTag(b, attrsVersionField, protowire.VarintType)
		b = protowire.AppendVarint(b, a.Version)
	}
	if a.ProcessCount != 0 {
		b = protowire.AppendTag(b, attrsProcessesField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(uint32(a.ProcessCount)))
	}
	// The keys sorted in a buffer on the stack (most nodes have a few): a seed writes its
	// whole view to every joiner, and slices.Sorted's slice per entry was a fifteenth of what
	// a host of 512 nodes allocated in a formation.
	keys := make([]string, 0, 8)
	for k := range a.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := a.Metadata[k] // an entry holds its key and value even when empty, as protobuf writes it
		b = protowire.AppendTag(b, attrsMetadataField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(2+protowire.SizeBytes(len(k))+protowire.SizeBytes(len(v))))
		b = protowire.AppendTag(b, mapKeyField, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, mapValueField, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return b
}

// appendID appends id's text, nothing for the zero id (proto3 leaves an empty string out).
func appendID(b []byte, id membership.NodeID) []byte {
	b, _ = id.AppendText(b) // it cannot fail
	return b
}

// entrySize is the encoded size of one MemberEntry's fields.
func entrySize(id []byte, e membership.MemberEntry, info []byte) int {
	n := 0
	if len(id) > 0 {
		n += 1 + protowire.SizeBytes(len(id))
	}
	if e.Incarnation != 0 {
		n += 1 + protowire.SizeVarint(e.Incarnation)
	}
	n += 1 + protowire.SizeVarint(uint64(entryState(e)))
	if e.Attrs != nil {
		n += 1 + protowire.SizeBytes(len(info))
	}
	if e.Down && !e.Left {
		n += 2
	}
	return n
}

// appendEntry appends one MemberEntry's fields.
func appendEntry(b, id []byte, e membership.MemberEntry, info []byte) []byte {
	if len(id) > 0 {
		b = protowire.AppendTag(b, entryNodeIDField, protowire.BytesType)
		b = protowire.AppendBytes(b, id)
	}
	if e.Incarnation != 0 {
		b = protowire.AppendTag(b, entryIncarnationField, protowire.VarintType)
		b = protowire.AppendVarint(b, e.Incarnation)
	}
	b = protowire.AppendTag(b, entryStateField, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(entryState(e)))
	if e.Attrs != nil {
		b = protowire.AppendTag(b, entryInfoField, protowire.BytesType)
		b = protowire.AppendBytes(b, info)
	}
	if e.Down && !e.Left {
		b = protowire.AppendTag(b, entryDownField, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

// entryState is e's state on the wire: alive or left, never unspecified.
func entryState(e membership.MemberEntry) clusterv1.MemberState {
	if e.Left {
		return clusterv1.MemberState_MEMBER_STATE_LEFT
	}
	return clusterv1.MemberState_MEMBER_STATE_ALIVE
}

// encodeUpdate encodes a PeerMessage carrying u.
func encodeUpdate(u *membership.Update) []byte {
	inner := make([]byte, 0, 16+len(u.Entries)*40)
	if u.Full {
		inner = protowire.AppendTag(inner, updateFullField, protowire.VarintType)
		inner = protowire.AppendVarint(inner, 1)
	}
	if u.ReplyRequested {
		inner = protowire.AppendTag(inner, updateReplyField, protowire.VarintType)
		inner = protowire.AppendVarint(inner, 1)
	}
	inner = appendEntries(inner, updateEntriesField, u.Entries)
	if u.Hop != 0 {
		inner = protowire.AppendTag(inner, updateHopField, protowire.VarintType)
		inner = protowire.AppendVarint(inner, uint64(u.Hop))
	}
	return appendWrapped(peerUpdateField, inner)
}

// appendWrapped returns a PeerMessage body whose message field num holds fields.
func appendWrapped(num protowire.Number, fields ...[]byte) []byte {
	n := 0
	for _, f := range fields {
		n += len(f)
	}
	b := make([]byte, 0, 1+protowire.SizeVarint(uint64(n))+n)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

// wireField is one field of a message read by hand: its number and wire type, and its value,
// a varint or length-delimited bytes.
type wireField struct {
	num    protowire.Number
	typ    protowire.Type
	varint uint64
	bytes  []byte
}

// nextField reads the field at the start of b and returns it with the rest of b; ok is false
// for a malformed field, or one of a wire type other than varint and length-delimited (which
// no field read by hand has).
func nextField(b []byte) (f wireField, rest []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return f, nil, false
	}
	f.num, f.typ, b = num, typ, b[n:]
	m := -1
	switch typ {
	case protowire.VarintType:
		f.varint, m = protowire.ConsumeVarint(b)
	case protowire.BytesType:
		f.bytes, m = protowire.ConsumeBytes(b)
	}
	if m < 0 {
		return f, nil, false
	}
	return f, b[m:], true
}

// decodeWireUpdate decodes a PeerMessage body that is one MembershipUpdate whose fields each
// come once (entries aside) with their own wire types. It returns nil for anything else, valid
// or not, for proto.Unmarshal and the full checks to handle; an entry it cannot read plainly
// goes through them alone (decodeWireEntry).
func decodeWireUpdate(body []byte) (*membership.Message, error) {
	inner, ok := wrapped(body, peerUpdateField)
	if !ok {
		return nil, nil
	}
	u := &membership.Update{}
	var seen [updateHopField + 1]bool
	entries := 0
	for rest := inner; len(rest) > 0; {
		f, r, ok := nextField(rest)
		if !ok || f.num < updateFullField || f.num > updateHopField {
			return nil, nil
		}
		rest = r
		if f.num == updateEntriesField && f.typ == protowire.BytesType {
			entries++
			continue
		}
		if seen[f.num] || f.typ != protowire.VarintType {
			return nil, nil
		}
		seen[f.num] = true
		switch f.num {
		case updateFullField, updateReplyField:
			if f.varint > 1 {
				return nil, nil
			}
			if f.num == updateFullField {
				u.Full = f.varint == 1
			} else {
				u.ReplyRequested = f.varint == 1
			}
		case updateHopField:
			if f.varint > math.MaxUint32 {
				return nil, nil
			}
			u.Hop = uint32(f.varint)
		default:
			return nil, nil
		}
	}
	var err error
	if u.Entries, err = decodeEntryFields(inner, updateEntriesField, entries); err != nil {
		return nil, err
	}
	return &membership.Message{Update: u}, nil
}

// wrapped returns the fields of body when body is exactly the message field num of a
// PeerMessage.
func wrapped(body []byte, num protowire.Number) ([]byte, bool) {
	got, typ, n := protowire.ConsumeTag(body)
	if n < 0 || got != num || typ != protowire.BytesType {
		return nil, false
	}
	inner, m := protowire.ConsumeBytes(body[n:])
	if m < 0 || n+m != len(body) {
		return nil, false
	}
	return inner, true
}

// decodeEntryFields decodes the count fields num of fields (a message's fields, known to
// parse) as MemberEntry messages, in order; fields of another wire type are left to protobuf.
func decodeEntryFields(fields []byte, num protowire.Number, count int) ([]membership.MemberEntry, error) {
	out := make([]membership.MemberEntry, 0, count)
	slab := attrSlab{size: count}
	for len(fields) > 0 {
		got, typ, n := protowire.ConsumeTag(fields)
		if n < 0 {
			return nil, fmt.Errorf("%w: a field that does not parse", errBadMessage) // checked before: not reached
		}
		m := protowire.ConsumeFieldValue(got, typ, fields[n:])
		if m < 0 {
			return nil, fmt.Errorf("%w: a field that does not parse", errBadMessage) // checked before: not reached
		}
		if got == num && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(fields[n:])
			e, err := decodeWireEntry(v, &slab)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		fields = fields[n+m:]
	}
	return out, nil
}

// decodeWireEntry decodes one encoded MemberEntry: by hand when each field comes at most once
// with its own wire type and the id parses; through protobuf and decodeEntries otherwise,
// which give the errors.
func decodeWireEntry(b []byte, slab *attrSlab) (membership.MemberEntry, error) {
	if e, attrs, info, ok := decodePlainEntry(b); ok {
		if info {
			e.Attrs = slab.put(attrs)
		}
		return e, nil
	}
	var wire clusterv1.MemberEntry
	if err := proto.Unmarshal(b, &wire); err != nil {
		return membership.MemberEntry{}, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	out, err := decodeEntries([]*clusterv1.MemberEntry{&wire})
	if err != nil {
		return membership.MemberEntry{}, err
	}
	return out[0], nil
}

// attrSlab hands out room for the attributes of decoded entries from one array per message
// (size: its entries), so that a view of a thousand entries, each with its attributes,
// costs one allocation for them rather than a thousand.
type attrSlab struct {
	size int
	free []membership.Attributes
}

// put stores a and returns where.
func (s *attrSlab) put(a membership.Attributes) *membership.Attributes {
	if len(s.free) == cap(s.free) { // never grown in place: the pointers handed out stay valid
		s.free = make([]membership.Attributes, 0, max(s.size, 1))
	}
	s.free = append(s.free, a)
	return &s.free[len(s.free)-1]
}

// decodePlainEntry is decodeWireEntry's hand-read path; false sends b through protobuf. The
// entry's attributes come apart (info: it has some), for the caller to give them room.
func decodePlainEntry(b []byte) (e membership.MemberEntry, attrs membership.Attributes, info, ok bool) {
	var seen [entryDownField + 1]bool
	var id []byte
	for len(b) > 0 {
		f, rest, good := nextField(b)
		if !good || f.num < entryNodeIDField || f.num > entryDownField || seen[f.num] ||
			(f.typ == protowire.BytesType) != (f.num == entryNodeIDField || f.num == entryInfoField) {
			return e, attrs, false, false
		}
		seen[f.num], b = true, rest
		switch f.num {
		case entryNodeIDField:
			id = f.bytes
		case entryInfoField:
			var plain bool
			if attrs, plain = decodePlainAttributes(f.bytes); !plain {
				return e, attrs, false, false
			}
			info = true
		case entryIncarnationField:
			e.Incarnation = f.varint
		case entryStateField:
			switch clusterv1.MemberState(f.varint) {
			case clusterv1.MemberState_MEMBER_STATE_ALIVE:
			case clusterv1.MemberState_MEMBER_STATE_LEFT:
				e.Left = true
			default:
				return e, attrs, false, false
			}
		case entryDownField:
			if f.varint > 1 {
				return e, attrs, false, false
			}
			e.Down = f.varint == 1
		}
	}
	if !utf8.Valid(id) {
		return e, attrs, false, false // protobuf's check of a string field, and its error
	}
	if !seen[entryStateField] {
		return e, attrs, false, false // unspecified: refused
	}
	parsed, err := membership.ParseNodeID(string(id))
	if err != nil {
		return e, attrs, false, false
	}
	e.ID = parsed
	e.Down = e.Down && !e.Left
	return e, attrs, info, true
}

// splitHello splits a PeerMessage body that is exactly one Hello into the Hello's fields
// other than its view, for protobuf, and the Hello's own fields with the number of view
// entries among them, for decodeEntryFields. Anything that does not split plainly returns
// false, for proto.Unmarshal to handle.
func splitHello(body []byte) (others, fields []byte, views int, ok bool) {
	fields, ok = wrapped(body, peerHelloField)
	if !ok {
		return nil, nil, 0, false
	}
	others = make([]byte, 0, 128)
	for inner := fields; len(inner) > 0; {
		num, typ, n := protowire.ConsumeTag(inner)
		if n < 0 {
			return nil, nil, 0, false
		}
		m := protowire.ConsumeFieldValue(num, typ, inner[n:])
		if m < 0 {
			return nil, nil, 0, false
		}
		if num == helloViewField && typ == protowire.BytesType {
			views++
		} else {
			others = append(others, inner[:n+m]...)
		}
		inner = inner[n+m:]
	}
	return others, fields, views, true
}

// decodePlainAttributes reads NodeAttributes fields by hand when each scalar comes at most once,
// each metadata entry holds at most one key and one value, every field has its own wire type
// and every string is UTF-8; false sends the entry through protobuf. A key repeated across
// entries keeps its last value, as protobuf keeps it.
func decodePlainAttributes(b []byte) (membership.Attributes, bool) {
	var a membership.Attributes
	var seen [attrsProcessesField + 1]bool
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || f.num < attrsVersionField || f.num > attrsMetadataField ||
			(f.typ == protowire.BytesType) != (f.num == attrsMetadataField) {
			return a, false
		}
		b = rest
		switch f.num {
		case attrsMetadataField:
			key, value, ok := decodePlainMapEntry(f.bytes)
			if !ok {
				return a, false
			}
			if a.Metadata == nil {
				a.Metadata = map[string]string{}
			}
			a.Metadata[key] = value
		case attrsVersionField, attrsProcessesField:
			if seen[f.num] || (f.num == attrsProcessesField && f.varint > math.MaxUint32) {
				return a, false
			}
			seen[f.num] = true
			if f.num == attrsVersionField {
				a.Version = f.varint
			} else {
				a.ProcessCount = int(f.varint)
			}
		}
	}
	return a, true
}

// decodePlainMapEntry reads one map<string, string> entry: a key and a value, each at most
// once and UTF-8 (a missing one is empty, as in protobuf).
func decodePlainMapEntry(b []byte) (key, value string, ok bool) {
	var seen [mapValueField + 1]bool
	for len(b) > 0 {
		f, rest, ok := nextField(b)
		if !ok || (f.num != mapKeyField && f.num != mapValueField) || f.typ != protowire.BytesType ||
			seen[f.num] || !utf8.Valid(f.bytes) {
			return "", "", false
		}
		seen[f.num], b = true, rest
		if f.num == mapKeyField {
			key = string(f.bytes)
		} else {
			value = string(f.bytes)
		}
	}
	return key, value, true
}
