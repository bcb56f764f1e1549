package membership

import "log/slog"

// connID names one stream (dialled or accepted) inside a core.
type connID uint64

// outputKind tells the runtime what an output asks for.
type outputKind int

const (
	// outSend: send msg on conn.
	outSend outputKind = iota + 1
	// outClose: close conn; with flush, after what was queued on it is sent.
	outClose
	// outDial: open an outbound stream to addr; it is known as conn from now on.
	outDial
	// outEvent: publish event.
	outEvent
	// outLog: log a line.
	outLog
)

// output is one effect the pure core asks its runtime to carry out.
type output struct {
	kind outputKind
	conn connID
	// pc is conn's stream, for outSend, outClose and outDial: the runtime finds the stream's
	// runner through it without a lookup by id (nil for outputs that name no stream).
	pc    *peerConn
	msg   *Message
	flush bool
	addr  string
	event Event
	level slog.Level
	text  string
	attrs []any
}
