package membership

import "time"

// ProtocolVersion is the peer protocol version this package speaks.
const ProtocolVersion = 1

// Message is one node-to-node message. Exactly one field is set. The transport translates it
// to and from the wire; the core never sees wire types.
type Message struct {
	// Hello opens the conversation in each direction.
	Hello *Hello
	// Heartbeat proves liveness and carries a digest of the sender's view.
	Heartbeat *Heartbeat
	// Update carries view entries, in full or as a delta.
	Update *Update
	// Leave says the sender is leaving gracefully.
	Leave *Leave
	// Reject refuses the stream; the sender closes it right after.
	Reject *Reject
	// Alerts are observers' reports about nodes they monitor, relayed over the overlay: one,
	// or several a node relays together, handled in order.
	Alerts []*Alert
	// Unlink closes a stream the overlay no longer needs: not a failure.
	Unlink *Unlink
	// Reassert asks one of the sender's observers to raise a new up alert about it.
	Reassert *Reassert
}

// Alert is an observer's report about its subject: it lost its stream to it (Up false, with
// the reason), or holds one again (Up true).
type Alert struct {
	// Subject is the node the alert is about.
	Subject NodeID
	// Incarnation is the subject's incarnation the observer saw.
	Incarnation uint64
	// Observer is the node that saw it.
	Observer NodeID
	// Reason is why the observer lost its stream; unset when Up.
	Reason DownReason
	// Up says the observer holds a working stream with the subject again.
	Up bool
	// Decided says Observer has decided the subject down for Reason on its observers'
	// alerts: a node that has not decided yet does so at once.
	Decided bool
	// Hop is how many streams the alert has crossed when it reaches the receiver: 1 from
	// Observer, one more at each relay; 0 when unknown. It sets how widely a receiver relays
	// it.
	Hop uint32
	// Seq orders Observer's alerts: each one it raises has a larger Seq than the one before.
	// A receiver keeps the latest per observer and subject, and ignores older ones that
	// reach it late over another path. 0: not numbered (a receiver takes an alert that
	// differs from the one it holds).
	Seq uint64
	// Round, in a decision, counts the times the subject's incarnation has been decided
	// down, this decision included, as the deciding node knows it. A receiver that has seen
	// as many downs of it already (it went down and came back since) ignores the decision,
	// so a copy delayed on a slow stream never takes down a node that came back. 0: unknown
	// (the receiver takes the decision).
	Round uint32
	// Refused, in a down alert, says Observer's dial to the subject's address was refused:
	// nothing listens there. A majority of the subject's observers saying so decides it
	// down without waiting for H of them (core.decide).
	Refused bool
}

// Unlink says the sender closes the stream because the overlay no longer needs it.
type Unlink struct{}

// Reassert asks the receiver, one of the sender's observers, to say again that it reaches the
// sender (a new up alert): a node holds the sender down on alerts older than its return.
type Reassert struct{}

// Hello is the membership handshake.
type Hello struct {
	// ID is the sender's own id: the only id the stream may speak for.
	ID NodeID
	// Incarnation is new on every start of the sender.
	Incarnation uint64
	// ProtocolVersion is the sender's peer protocol version.
	ProtocolVersion uint32
	// HeartbeatInterval is the sender's heartbeat period.
	HeartbeatInterval time.Duration
	// MissThreshold is the sender's missed-heartbeat threshold.
	MissThreshold int
	// Uptime is how long the sender's incarnation has run.
	Uptime time.Duration
	// Attributes are the sender's application attributes.
	Attributes Attributes
	// View is every node the sender knows, left nodes included, itself excluded. Only the
	// accepting side of a stream sends it, and only when its ViewDigest differs from the
	// dialler's.
	View []MemberEntry
	// ViewDigest is the digest of the sender's view and itself (as in Heartbeat); zero if
	// unknown.
	ViewDigest uint64
	// Expect is, in a dialler's hello, the node it meant to reach; zero when any node at the
	// address is welcome (a plain seed). A node with another id refuses the stream at once.
	Expect NodeID
	// ClusterName is the sender's Config.ClusterName ("" for none). A node with another name
	// (none and a name differ too) refuses the stream with RejectClusterName.
	ClusterName string
	// ViewSize is how many live nodes the sender's view holds, itself included (0: unknown,
	// as from a node that keeps a full mesh at any size). A node outside the overlay that
	// meets a peer whose view holds more than K+1 learns that the cluster runs the overlay
	// (joiningOverlay).
	ViewSize uint32
	// Monitors is the sender's Config.Monitors (K), when MonitorsSaid: a node whose own K
	// differs refuses the stream with RejectMonitors. Nodes with different K compute different
	// rings, and a failure whose observers they disagree on is never decided.
	Monitors int
	// MonitorsSaid says whether the hello carries Monitors (a node that predates the field
	// leaves it out, and is not checked).
	MonitorsSaid bool
	// HoldsYouDown, in the overlay, says the sender holds the receiver down as the cluster
	// decided it. A receiver that is alive asks its observers to say again that they reach it
	// (Reassert), so that nodes that missed the up alerts of its return hear them anew.
	HoldsYouDown bool
	// TakesReassert says the sender handles Reassert; a node that predates it would close the
	// stream on one, and is never sent one.
	TakesReassert bool
}

// Attributes is the application-level information a node advertises about itself.
type Attributes struct {
	// Version grows whenever ProcessCount or Metadata change.
	Version uint64
	// ProcessCount is the number of processes the application reports.
	ProcessCount int
	// Metadata is free-form application metadata.
	Metadata map[string]string
}

// MemberEntry is one node in a gossiped view.
type MemberEntry struct {
	// ID is the node's id.
	ID NodeID
	// Incarnation is the newest incarnation of the node the sender knows.
	Incarnation uint64
	// Left reports that this incarnation left gracefully.
	Left bool
	// Down reports that the sender holds this incarnation down (it failed, or the cluster
	// decided so). In the overlay a node that does not know this incarnation yet takes it as
	// down, never up; a node that knows it keeps its own status, which the alerts decide.
	Down bool
	// Attrs, when set, are the node's attributes: in the overlay a node learns the attributes
	// of a node it has no stream to from entries relayed with them.
	Attrs *Attributes
}

// Heartbeat is sent on every stream every interval. Its size does not depend on the cluster size.
type Heartbeat struct {
	// ViewDigest hashes the sender's live members (itself included).
	ViewDigest uint64
	// ProcessCount is the sender's current process count.
	ProcessCount int
	// AttributesVersion is the version of the sender's attributes.
	AttributesVersion uint64
	// Attributes is set only when they changed since the last heartbeat on this stream.
	Attributes *Attributes
	// ID, when not zero, must be the stream's authenticated id.
	ID NodeID
	// NotMonitoring, in the overlay, says the sender is not one of the receiver's observers:
	// the receiver owes it no heartbeats on this stream until a heartbeat without it arrives.
	NotMonitoring bool
	// AttributesDigest, in the overlay, hashes the attribute versions of the sender's live
	// members (itself included) while its view is settled; 0 when not said (a full mesh, a
	// view still changing, or a node that predates it).
	AttributesDigest uint64
}

// Update carries view entries.
type Update struct {
	// Full says Entries is the sender's whole view rather than a delta.
	Full bool
	// ReplyRequested asks for the entries the sender lacks or has older.
	ReplyRequested bool
	// Entries are the view entries.
	Entries []MemberEntry
	// Hop is how many streams the news in Entries has crossed when it reaches the receiver:
	// 1 from the node where it starts (the node that met a joiner), one more at each relay;
	// 0 when unknown (a view sync). In the overlay it sets how widely a receiver relays it.
	Hop uint32

	// answer marks, locally, the entries that answer a request on the stream they go out on
	// (onUpdate): not news to relay, and only this stream carries them, so a full send queue
	// keeps them as it keeps heartbeats. Not sent.
	answer bool
}

// Leave says the sender leaves the cluster gracefully.
type Leave struct {
	// ID is the leaving node; it must be the stream's authenticated id.
	ID NodeID
	// Incarnation is the leaving incarnation.
	Incarnation uint64
}

// RejectReason says why a stream was refused.
type RejectReason int

const (
	// RejectDuplicateStream: another stream between the two nodes wins.
	RejectDuplicateStream RejectReason = iota + 1
	// RejectSelf: the node dialled itself.
	RejectSelf
	// RejectProtocolVersion: incompatible protocol versions.
	RejectProtocolVersion
	// RejectStaleIncarnation: a newer incarnation of the sender is known, or this one left.
	RejectStaleIncarnation
	// RejectShuttingDown: the receiver is stopping.
	RejectShuttingDown
	// RejectBadMessage: a malformed message, or one speaking for another node.
	RejectBadMessage
	// RejectUnexpectedID: the node answering is not the node that was dialled.
	RejectUnexpectedID
	// RejectIDInUse: the receiver holds a live stream with the node the sender claims to be.
	RejectIDInUse
	// RejectClusterName: the sender's cluster name (Config.ClusterName) differs from the
	// receiver's; a node with a name and a node without one refuse each other too. Its
	// number leaves room for reasons added in between.
	RejectClusterName RejectReason = 20
	// RejectMonitors: the sender's K (Config.Monitors) differs from the receiver's.
	RejectMonitors RejectReason = 21
)

// String returns the reason in snake case.
func (r RejectReason) String() string {
	switch r {
	case RejectDuplicateStream:
		return "duplicate_stream"
	case RejectSelf:
		return "self"
	case RejectProtocolVersion:
		return "protocol_version"
	case RejectStaleIncarnation:
		return "stale_incarnation"
	case RejectShuttingDown:
		return "shutting_down"
	case RejectBadMessage:
		return "bad_message"
	case RejectUnexpectedID:
		return "unexpected_id"
	case RejectIDInUse:
		return "id_in_use"
	case RejectClusterName:
		return "cluster_name"
	case RejectMonitors:
		return "monitors"
	default:
		return "unknown"
	}
}

// Reject refuses a stream.
type Reject struct {
	// Reason is why.
	Reason RejectReason
	// Detail explains it to a human.
	Detail string
}

// kind names what m carries, for logs.
func (m *Message) kind() string {
	switch {
	case m.Hello != nil:
		return "hello"
	case m.Heartbeat != nil:
		return "heartbeat"
	case m.Update != nil && m.Update.Full:
		return "full update"
	case m.Update != nil:
		return "update"
	case m.Leave != nil:
		return "leave"
	case m.Reject != nil:
		return "reject"
	case len(m.Alerts) > 0:
		return "alerts"
	case m.Unlink != nil:
		return "unlink"
	case m.Reassert != nil:
		return "reassert"
	}
	return "empty"
}
