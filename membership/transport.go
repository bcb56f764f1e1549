package membership

import (
	"context"
	"errors"
	"syscall"
)

// ErrConnectionRefused is what a Transport's Dial error matches (errors.Is) when nothing
// listens at the address, as a TCP dial's ECONNREFUSED also does. Above K+1 nodes an
// observer whose dials to a subject are refused twice in a row reports it down on its own
// (the subject crashed before any observer had a stream to it); any other failure, a dial
// that timed out or a stream cut before its handshake in a busy cluster, counts only once
// other observers report the subject.
var ErrConnectionRefused = errors.New("connection refused")

// refusedDial reports whether err, a dial's failure, says that nothing listens there.
func refusedDial(err error) bool {
	return errors.Is(err, ErrConnectionRefused) || errors.Is(err, syscall.ECONNREFUSED)
}

// Transport opens streams to peers. The server package implements it over gRPC; tests use
// an in-memory one. Inbound streams are handed to Cluster.ServeConn by whoever accepts them.
type Transport interface {
	// Dial opens a stream to the peer listening at addr (host:port). It returns once the
	// stream can carry messages (after any transport-level authentication), or an error
	// when the peer cannot be reached (matching ErrConnectionRefused when nothing listens at
	// addr); it must give up when ctx ends.
	Dial(ctx context.Context, addr string) (Conn, error)
}

// Conn is one bidirectional stream between two nodes.
//
// Send and CloseSend are called by one goroutine at a time (not always the same one: it may
// be the one that calls Recv, between two Recv calls), Recv by one goroutine at a time; Close
// may be called from any goroutine, any number of times, and must not block.
type Conn interface {
	// Send transmits one message.
	Send(msg *Message) error
	// Recv blocks for the next message; it returns an error once the stream has ended.
	Recv() (*Message, error)
	// CloseSend ends the sending direction after the messages already sent are delivered;
	// the stream ends once the peer closes its side (Recv then returns an error).
	CloseSend() error
	// Close aborts the stream at once: pending Send and Recv calls return errors.
	Close()
}
