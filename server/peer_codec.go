package server

import (
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// errBadMessage reports a peer message that cannot be translated for the engine.
var errBadMessage = errors.New("malformed peer message")

// encodeMessage serializes an engine message as a PeerMessage body.
func encodeMessage(msg *membership.Message) ([]byte, error) {
	return encodeMessageWith(msg, encodeView)
}

// encodeView encodes a Hello's view: its repeated view field.
func encodeView(view []membership.MemberEntry) []byte {
	return appendEntries(nil, helloViewField, view)
}

// encodeMessageWith is encodeMessage with the view of a Hello encoded by view. A Hello's
// other fields go through protobuf and its view follows them (fields may come in any order).
func encodeMessageWith(msg *membership.Message, view func([]membership.MemberEntry) []byte) ([]byte, error) {
	pm := &clusterv1.PeerMessage{}
	switch {
	case msg.Hello != nil:
		h := msg.Hello
		fields, err := proto.Marshal(&clusterv1.Hello{
			NodeId:                 h.ID.String(),
			Incarnation:            h.Incarnation,
			ProtocolVersion:        h.ProtocolVersion,
			HeartbeatInterval:      durationpb.New(h.HeartbeatInterval),
			HeartbeatMissThreshold: uint32(h.MissThreshold),
			Uptime:                 durationpb.New(h.Uptime),
			Info:                   encodeAttributes(h.Attributes),
			ViewDigest:             h.ViewDigest,
			ExpectedId:             expectedID(h.Expect),
			ClusterName:            h.ClusterName,
			ViewSize:               h.ViewSize,
			Monitors:               monitorsField(h),
			HoldsYouDown:           h.HoldsYouDown,
			TakesReassert:          h.TakesReassert,
		})
		if err != nil {
			return nil, err
		}
		return appendWrapped(peerHelloField, fields, view(h.View)), nil
	case msg.Update != nil:
		return encodeUpdate(msg.Update), nil
	case msg.Heartbeat != nil:
		hb := msg.Heartbeat
		out := &clusterv1.Heartbeat{
			ViewDigest:        hb.ViewDigest,
			ProcessCount:      uint32(hb.ProcessCount),
			AttributesVersion: hb.AttributesVersion,
			NotMonitoring:     hb.NotMonitoring,
			AttributesDigest:  hb.AttributesDigest,
		}
		if hb.Attributes != nil {
			out.Attributes = encodeAttributes(*hb.Attributes)
		}
		if !hb.ID.IsZero() {
			out.NodeId = hb.ID.String()
		}
		pm.Kind = &clusterv1.PeerMessage_Heartbeat{Heartbeat: out}
	case msg.Leave != nil:
		pm.Kind = &clusterv1.PeerMessage_Leave{Leave: &clusterv1.Leave{NodeId: msg.Leave.ID.String(), Incarnation: msg.Leave.Incarnation}}
	case msg.Reject != nil:
		pm.Kind = &clusterv1.PeerMessage_Reject{Reject: &clusterv1.Reject{
			Reason: clusterv1.RejectReason(msg.Reject.Reason), Detail: msg.Reject.Detail,
		}}
	case len(msg.Alerts) == 1:
		pm.Kind = &clusterv1.PeerMessage_Alert{Alert: encodeAlert(msg.Alerts[0])}
	case len(msg.Alerts) > 1:
		batch := &clusterv1.AlertBatch{Alerts: make([]*clusterv1.Alert, len(msg.Alerts))}
		for i, a := range msg.Alerts {
			batch.Alerts[i] = encodeAlert(a)
		}
		pm.Kind = &clusterv1.PeerMessage_Alerts{Alerts: batch}
	case msg.Unlink != nil:
		pm.Kind = &clusterv1.PeerMessage_Unlink{Unlink: &clusterv1.Unlink{}}
	case msg.Reassert != nil:
		pm.Kind = &clusterv1.PeerMessage_Reassert{Reassert: &clusterv1.Reassert{}}
	default:
		return nil, fmt.Errorf("%w: empty message", errBadMessage)
	}
	return proto.Marshal(pm)
}

// expectedID is the wire form of a hello's expected id: empty when any node is welcome.
func expectedID(id membership.NodeID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

func encodeAttributes(a membership.Attributes) *clusterv1.NodeAttributes {
	return &clusterv1.NodeAttributes{Version: a.Version, ProcessCount: uint32(a.ProcessCount), Metadata: a.Metadata}
}

// decodeMessage parses and validates a PeerMessage body. Anything malformed is an error:
// the engine never sees it.
func decodeMessage(body []byte) (*membership.Message, error) {
	if msg := decodePlainHeartbeat(body); msg != nil {
		return msg, nil
	}
	if msg, err := decodeWireUpdate(body); msg != nil || err != nil {
		return msg, err
	}
	if others, fields, views, ok := splitHello(body); ok {
		var h clusterv1.Hello
		if err := proto.Unmarshal(others, &h); err != nil {
			return nil, fmt.Errorf("%w: %v", errBadMessage, err)
		}
		return decodeHelloWith(&h, func() ([]membership.MemberEntry, error) {
			return decodeEntryFields(fields, helloViewField, views)
		})
	}
	return decodeProtoMessage(body)
}

// decodeProtoMessage is decodeMessage through protobuf's reflection alone: what the
// shortcuts above must agree with.
func decodeProtoMessage(body []byte) (*membership.Message, error) {
	var pm clusterv1.PeerMessage
	if err := proto.Unmarshal(body, &pm); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	switch k := pm.Kind.(type) {
	case *clusterv1.PeerMessage_Hello:
		return decodeHelloWith(k.Hello, func() ([]membership.MemberEntry, error) { return decodeEntries(k.Hello.GetView()) })
	case *clusterv1.PeerMessage_Heartbeat:
		return decodeHeartbeat(k.Heartbeat)
	case *clusterv1.PeerMessage_Update:
		entries, err := decodeEntries(k.Update.GetEntries())
		if err != nil {
			return nil, err
		}
		return &membership.Message{Update: &membership.Update{
			Full: k.Update.GetFull(), ReplyRequested: k.Update.GetReplyRequested(), Entries: entries,
			Hop: k.Update.GetHop(),
		}}, nil
	case *clusterv1.PeerMessage_Leave:
		id, err := decodeID(k.Leave.GetNodeId())
		if err != nil {
			return nil, err
		}
		return &membership.Message{Leave: &membership.Leave{ID: id, Incarnation: k.Leave.GetIncarnation()}}, nil
	case *clusterv1.PeerMessage_Reject:
		return &membership.Message{Reject: &membership.Reject{
			Reason: membership.RejectReason(k.Reject.GetReason()), Detail: k.Reject.GetDetail(),
		}}, nil
	case *clusterv1.PeerMessage_Alert:
		a, err := decodeAlert(k.Alert)
		if err != nil {
			return nil, err
		}
		return &membership.Message{Alerts: []*membership.Alert{a}}, nil
	case *clusterv1.PeerMessage_Alerts:
		if len(k.Alerts.GetAlerts()) == 0 {
			return nil, fmt.Errorf("%w: an empty alert batch", errBadMessage)
		}
		alerts := make([]*membership.Alert, len(k.Alerts.GetAlerts()))
		for i, wire := range k.Alerts.GetAlerts() {
			a, err := decodeAlert(wire)
			if err != nil {
				return nil, fmt.Errorf("alert %d of %d: %w", i+1, len(alerts), err)
			}
			alerts[i] = a
		}
		return &membership.Message{Alerts: alerts}, nil
	case *clusterv1.PeerMessage_Unlink:
		return &membership.Message{Unlink: &membership.Unlink{}}, nil
	case *clusterv1.PeerMessage_Reassert:
		return &membership.Message{Reassert: &membership.Reassert{}}, nil
	case *clusterv1.PeerMessage_Fragment:
		return nil, fmt.Errorf("%w: a fragment out of place (fragments are joined before decoding)", errBadMessage)
	default:
		return nil, fmt.Errorf("%w: no message kind set", errBadMessage)
	}
}

func encodeAlert(a *membership.Alert) *clusterv1.Alert {
	return &clusterv1.Alert{
		SubjectId: a.Subject.String(), Incarnation: a.Incarnation, ObserverId: a.Observer.String(),
		Reason: clusterv1.NodeDownReason(a.Reason), Up: a.Up, Decided: a.Decided, Hop: a.Hop, Seq: a.Seq, Round: a.Round,
		Refused: a.Refused,
	}
}

func decodeAlert(a *clusterv1.Alert) (*membership.Alert, error) {
	subject, err := decodeID(a.GetSubjectId())
	if err != nil {
		return nil, fmt.Errorf("alert subject: %w", err)
	}
	observer, err := decodeID(a.GetObserverId())
	if err != nil {
		return nil, fmt.Errorf("alert observer: %w", err)
	}
	reason := membership.DownReason(a.GetReason())
	if !a.GetUp() && (reason < membership.ReasonHeartbeatTimeout || reason > membership.ReasonGracefulShutdown) {
		return nil, fmt.Errorf("%w: alert reason %d out of range", errBadMessage, a.GetReason())
	}
	return &membership.Alert{
		Subject: subject, Incarnation: a.GetIncarnation(), Observer: observer, Reason: reason, Up: a.GetUp(), Decided: a.GetDecided(),
		Hop: a.GetHop(), Seq: a.GetSeq(), Round: a.GetRound(), Refused: a.GetRefused(),
	}, nil
}

// decodeHelloWith checks and translates a Hello whose view view decodes.
func decodeHelloWith(h *clusterv1.Hello, view func() ([]membership.MemberEntry, error)) (*membership.Message, error) {
	id, err := decodeID(h.GetNodeId())
	if err != nil {
		return nil, err
	}
	if h.GetIncarnation() == 0 {
		return nil, fmt.Errorf("%w: incarnation must be set", errBadMessage)
	}
	interval, err := decodeDuration("heartbeat_interval", h.GetHeartbeatInterval())
	if err != nil {
		return nil, err
	}
	if interval <= 0 {
		return nil, fmt.Errorf("%w: heartbeat_interval must be positive", errBadMessage)
	}
	uptime, err := decodeDuration("uptime", h.GetUptime())
	if err != nil {
		return nil, err
	}
	if h.GetHeartbeatMissThreshold() < 1 || h.GetHeartbeatMissThreshold() > math.MaxInt32 {
		return nil, fmt.Errorf("%w: heartbeat_miss_threshold %d out of range", errBadMessage, h.GetHeartbeatMissThreshold())
	}
	entries, err := view()
	if err != nil {
		return nil, err
	}
	var expect membership.NodeID
	if h.GetExpectedId() != "" {
		if expect, err = decodeID(h.GetExpectedId()); err != nil {
			return nil, fmt.Errorf("expected_id: %w", err)
		}
	}
	if err := membership.ValidateClusterName(h.GetClusterName()); err != nil {
		return nil, fmt.Errorf("%w: cluster_name: %v", errBadMessage, err)
	}
	return &membership.Message{Hello: &membership.Hello{
		ClusterName:       h.GetClusterName(),
		ID:                id,
		Incarnation:       h.GetIncarnation(),
		ProtocolVersion:   h.GetProtocolVersion(),
		HeartbeatInterval: interval,
		MissThreshold:     int(h.GetHeartbeatMissThreshold()),
		Uptime:            max(uptime, 0),
		Attributes:        decodeAttributes(h.GetInfo()),
		View:              entries,
		ViewDigest:        h.GetViewDigest(),
		ViewSize:          h.GetViewSize(),
		Monitors:          int(h.GetMonitors()),
		MonitorsSaid:      h.Monitors != nil,
		HoldsYouDown:      h.GetHoldsYouDown(),
		TakesReassert:     h.GetTakesReassert(),
		Expect:            expect,
	}}, nil
}

// monitorsField is the monitors field of h's wire hello: its K, or absent if h does not say.
func monitorsField(h *membership.Hello) *uint32 {
	if !h.MonitorsSaid {
		return nil
	}
	k := uint32(h.Monitors)
	return &k
}

// heartbeatMessage is a decoded heartbeat and its message in one allocation.
type heartbeatMessage struct {
	msg membership.Message
	hb  membership.Heartbeat
}

func newHeartbeatMessage() *heartbeatMessage {
	m := &heartbeatMessage{}
	m.msg.Heartbeat = &m.hb
	return m
}

// Field numbers of peer.proto that decodePlainHeartbeat reads by hand: PeerMessage.heartbeat,
// and Heartbeat's view_digest, process_count, attributes_version, not_monitoring and
// attributes_digest.
const (
	heartbeatKindField              = 2
	heartbeatViewDigestField        = 1
	heartbeatProcessCountField      = 2
	heartbeatAttributesVersionField = 3
	heartbeatNotMonitoringField     = 6
	heartbeatAttributesDigestField  = 7
)

// decodePlainHeartbeat decodes the body of a heartbeat that has nothing but a view digest, a
// process count, an attributes version, the not-monitoring flag and an attributes digest,
// each at most once (what a node sends on a stream every interval), without going through
// protobuf's reflection. Anything else, valid or not, returns nil, for proto.Unmarshal and
// the full checks to handle.
func decodePlainHeartbeat(body []byte) *membership.Message {
	num, typ, n := protowire.ConsumeTag(body)
	if n < 0 || num != heartbeatKindField || typ != protowire.BytesType {
		return nil
	}
	inner, m := protowire.ConsumeBytes(body[n:])
	if m < 0 || n+m != len(body) {
		return nil
	}
	out := newHeartbeatMessage()
	var seen [heartbeatAttributesDigestField + 1]bool
	for len(inner) > 0 {
		num, typ, n := protowire.ConsumeTag(inner)
		if n < 0 || num < 1 || num > heartbeatAttributesDigestField || seen[num] {
			return nil
		}
		seen[num] = true
		inner = inner[n:]
		switch {
		case num == heartbeatViewDigestField && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(inner)
			if n < 0 {
				return nil
			}
			out.hb.ViewDigest, inner = v, inner[n:]
		case num == heartbeatAttributesDigestField && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(inner)
			if n < 0 {
				return nil
			}
			out.hb.AttributesDigest, inner = v, inner[n:]
		case num == heartbeatProcessCountField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(inner)
			if n < 0 || v > math.MaxUint32 {
				return nil
			}
			out.hb.ProcessCount, inner = int(v), inner[n:]
		case num == heartbeatAttributesVersionField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(inner)
			if n < 0 {
				return nil
			}
			out.hb.AttributesVersion, inner = v, inner[n:]
		case num == heartbeatNotMonitoringField && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(inner)
			if n < 0 || v > 1 {
				return nil
			}
			out.hb.NotMonitoring, inner = v == 1, inner[n:]
		default:
			return nil
		}
	}
	return &out.msg
}

func decodeHeartbeat(hb *clusterv1.Heartbeat) (*membership.Message, error) {
	m := newHeartbeatMessage()
	out := &m.hb
	out.ViewDigest = hb.GetViewDigest()
	out.ProcessCount = int(hb.GetProcessCount())
	out.AttributesVersion = hb.GetAttributesVersion()
	out.NotMonitoring = hb.GetNotMonitoring()
	out.AttributesDigest = hb.GetAttributesDigest()
	if hb.GetAttributes() != nil {
		attrs := decodeAttributes(hb.GetAttributes())
		out.Attributes = &attrs
	}
	if hb.GetNodeId() != "" {
		id, err := decodeID(hb.GetNodeId())
		if err != nil {
			return nil, err
		}
		out.ID = id
	}
	return &m.msg, nil
}

func decodeAttributes(a *clusterv1.NodeAttributes) membership.Attributes {
	return membership.Attributes{Version: a.GetVersion(), ProcessCount: int(a.GetProcessCount()), Metadata: a.GetMetadata()}
}

func decodeEntries(entries []*clusterv1.MemberEntry) ([]membership.MemberEntry, error) {
	out := make([]membership.MemberEntry, 0, len(entries))
	for _, e := range entries {
		id, err := decodeID(e.GetNodeId())
		if err != nil {
			return nil, err
		}
		switch e.GetState() {
		case clusterv1.MemberState_MEMBER_STATE_ALIVE, clusterv1.MemberState_MEMBER_STATE_LEFT:
		default:
			return nil, fmt.Errorf("%w: member %s has state %v", errBadMessage, id, e.GetState())
		}
		entry := membership.MemberEntry{
			ID: id, Incarnation: e.GetIncarnation(), Left: e.GetState() == clusterv1.MemberState_MEMBER_STATE_LEFT,
		}
		entry.Down = e.GetDown() && !entry.Left
		if e.GetInfo() != nil {
			attrs := decodeAttributes(e.GetInfo())
			entry.Attrs = &attrs
		}
		out = append(out, entry)
	}
	return out, nil
}

func decodeID(s string) (membership.NodeID, error) {
	id, err := membership.ParseNodeID(s)
	if err != nil {
		return membership.NodeID{}, fmt.Errorf("%w: %w", errBadMessage, err)
	}
	return id, nil
}

func decodeDuration(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", errBadMessage, field, err)
	}
	return d.AsDuration(), nil
}
