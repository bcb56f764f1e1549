package membership

import "log/slog"

// connID names one stream (dialled or accepted) inside a core.
type connID uint64

// outputKind tells the runtime what an output asks for.
type outputKind int

const (
	// outSend: send msg on pc.
	outSend outputKind = iota + 1
	// outClose: close pc; with flush, after what was queued on it is sent.
	outClose
	// outDial: open the outbound stream pc to addr.
	outDial
	// outEvent: publish event.
	outEvent
	// outLog: log a line.
	outLog
)

// output is one effect the pure core asks its runtime to carry out.
type output struct {
	kind outputKind
	// pc is the stream of outSend, outClose and outDial (nil for the other kinds): the runtime
	// reaches the stream's runner through it, without a lookup by id.
	pc    *peerConn
	msg   *Message
	flush bool
	addr  string
	event Event
	level slog.Level
	text  string
	attrs []any
}
