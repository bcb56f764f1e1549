package membership

import "log/slog"

// connID names one stream (dialled or accepted) inside a core.
type connID uint64

// outputKind tells the runtime what an output asks for.
type outputKind int

const (
	// outSend: send msg on stream conn.
	outSend outputKind = iota + 1
	// outClose: close stream conn; with flush, after what was queued on it is sent. The core
	// has forgotten the stream: what still arrives on it is ignored.
	outClose
	// outDial: open the outbound stream conn to addr, then report it with dialed (or its
	// failure with ended).
	outDial
	// outEvent: publish event.
	outEvent
	// outLog: log a line.
	outLog
)

// output is one effect the pure core asks its runtime to carry out.
type output struct {
	kind outputKind
	// conn is the stream of outSend, outClose and outDial (zero for the other kinds), by the
	// id the core gave it (accept, or the outDial that opened it).
	conn  connID
	msg   *Message
	flush bool
	addr  string
	event *Event // outEvent only
	level slog.Level
	text  string
	attrs []any
}
