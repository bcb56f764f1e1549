package server

import (
	"sync"

	"github.com/meshnode/meshnode/membership"
)

// bodyCache keeps the encoding of the last heartbeat sent on a node's peer streams. The
// engine hands one shared heartbeat message to every stream due in a tick (messages are
// never changed once handed over), so it is encoded once rather than once per peer. A nil
// cache encodes every message.
type bodyCache struct {
	mu   sync.Mutex
	msg  *membership.Message
	body []byte // read-only once cached: gRPC copies it into its own frame
}

// encode returns the PeerMessage body of msg.
func (b *bodyCache) encode(msg *membership.Message) ([]byte, error) {
	if b == nil || msg.Heartbeat == nil {
		return encodeMessage(msg)
	}
	b.mu.Lock()
	if b.msg == msg {
		body := b.body
		b.mu.Unlock()
		return body, nil
	}
	b.mu.Unlock()
	body, err := encodeMessage(msg)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.msg, b.body = msg, body
	b.mu.Unlock()
	return body, nil
}
