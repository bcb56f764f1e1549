package server

import (
	"sync"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// bodyCache keeps what the engine hands to many streams in the same form, encoded once:
//   - the last heartbeats: the engine sends one shared heartbeat message to every stream due
//     in a tick (one of two: to the peers it checks, and to the others), so each is encoded
//     once rather than once per peer;
//   - the entries of the last view sent in a Hello: the engine keeps its view in one slice
//     until it changes, so forming a cluster of N nodes encodes each view once, not in each
//     of the N handshakes;
//   - the last few other messages: a relay (an alert, a join) goes to many streams as one
//     message, and is encoded once rather than once per stream.
//
// Both rely on the engine never changing a message, or a view slice, once handed over. A nil
// cache encodes everything afresh. A sweep every bodyIdle, at a heartbeat's encoding, lets go
// of what no stream asked for since the sweep before: a steady cluster sends no views and few
// relays, and the last ones of its formation (views of every node) would otherwise stay for
// good.
type bodyCache struct {
	mu       sync.Mutex
	beats    [2]cachedBody // by Heartbeat.NotMonitoring
	relays   [relayBodies]cachedBody
	next     int // the relays slot to fill next
	view     []membership.MemberEntry
	entries  []byte           // the view's encoded Hello field; read-only once cached
	viewUsed bool             // the view's entries were asked for since the last sweep
	sweepAt  time.Time        // when the next sweep is due
	clock    func() time.Time // time.Now if nil (tests set it)
}

// now is the cache's clock.
func (b *bodyCache) now() time.Time {
	if b.clock != nil {
		return b.clock()
	}
	return time.Now()
}

// bodyIdle is the time between sweeps: a cached view or relay no stream asks for goes after
// one to two of them.
const bodyIdle = 5 * time.Second

// relayBodies is how many of the last other messages (relays: alerts, updates) the cache
// keeps: the engine hands one relay to up to 2K streams at once, and a burst of them (a
// crash's alerts, a formation's joins) interleaves a few.
const relayBodies = 8

// encode returns the PeerMessage body of msg. A heartbeat is encoded under the lock, so the
// streams of a tick that ask for the same new heartbeat at once wait for one encoding (about
// a microsecond) instead of each making its own.
func (b *bodyCache) encode(msg *membership.Message) ([]byte, error) {
	switch {
	case b == nil:
		return encodeMessage(msg)
	case msg.Hello != nil:
		return encodeMessageWith(msg, b.viewEntries)
	case msg.Heartbeat == nil:
		return b.relayBody(msg)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := &b.beats[0]
	if msg.Heartbeat.NotMonitoring {
		slot = &b.beats[1]
	}
	if slot.msg != msg {
		body, err := encodeMessage(msg)
		if err != nil {
			return nil, err
		}
		slot.msg, slot.body = msg, body
		b.sweepLocked(b.now())
	}
	return slot.body, nil
}

// sweepLocked, at most once per bodyIdle, lets go of the view and the relays no stream asked
// for since the sweep before.
func (b *bodyCache) sweepLocked(now time.Time) {
	if now.Before(b.sweepAt) {
		return
	}
	b.sweepAt = now.Add(bodyIdle)
	if !b.viewUsed {
		b.view, b.entries = nil, nil
	}
	b.viewUsed = false
	for i := range b.relays {
		if !b.relays[i].used {
			b.relays[i] = cachedBody{}
		}
		b.relays[i].used = false
	}
}

// cachedBody is a message and its encoded body.
type cachedBody struct {
	msg  *membership.Message
	body []byte // read-only once cached: gRPC copies it into its own frame
	used bool   // asked for since the last sweep (relays)
}

// viewEntries returns the encoded view field of a Hello carrying view, reusing that of the
// last view when view is the same slice (same first element and length). A view not cached
// is encoded outside the lock: while hundreds of nodes join through one seed, its view changes
// with every join, and its handshakes, each encoding a view of a thousand entries, must not
// wait for one another.
func (b *bodyCache) viewEntries(view []membership.MemberEntry) []byte {
	if len(view) == 0 {
		return nil
	}
	b.mu.Lock()
	if len(b.view) == len(view) && &b.view[0] == &view[0] {
		defer b.mu.Unlock()
		b.viewUsed = true
		return b.entries
	}
	b.mu.Unlock()
	entries := encodeView(view)
	b.mu.Lock()
	b.view, b.entries, b.viewUsed = view, entries, true
	b.mu.Unlock()
	return entries
}

// relayBody returns the body of msg, encoded once for all the streams it goes to. It is
// encoded outside the lock (the streams of a burst must not wait for one another); the cache
// holds the message, so its address is not reused while cached.
func (b *bodyCache) relayBody(msg *membership.Message) ([]byte, error) {
	b.mu.Lock()
	for i := range b.relays {
		if c := &b.relays[i]; c.msg == msg {
			c.used = true
			body := c.body // read under the lock: another stream may refill the slot next
			b.mu.Unlock()
			return body, nil
		}
	}
	b.mu.Unlock()
	body, err := encodeMessage(msg)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.relays[b.next] = cachedBody{msg: msg, body: body, used: true}
	b.next = (b.next + 1) % len(b.relays)
	b.mu.Unlock()
	return body, nil
}
