package membership

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

const (
	// sendQueueSize bounds the messages waiting for one stream. A peer that stops reading
	// fills it; later messages are dropped and the failure detector takes over.
	sendQueueSize = 256
	// closeGrace is how long a graceful close waits for the peer to end its side.
	closeGrace = 2 * time.Second
)

// connRunner drives one stream: a reader goroutine (or ServeConn's caller, for inbound
// streams) feeds received messages to the core, and a writer goroutine sends the queue. The
// writer runs only while there is something to send or the stream to finish: enqueue starts
// it, and it exits once the queue is empty, so an idle stream costs no goroutine. What the
// core answers to a message on the same stream (a heartbeat answering a heartbeat), the
// reader sends itself, once the core is done with the message.
//
// From the moment it has a conn until its stream is finished on the writing side, a runner
// holds one count of c.live, as does each writer goroutine while it runs.
type connRunner struct {
	c       *Cluster
	core    *core
	id      connID        // the core's name of the stream, in its inputs and outputs
	readDn  chan struct{} // closed when the reader stops
	wroteDn chan struct{} // closed when the stream is finished on the writing side

	// ownStep is set, under c.mu, while the stream's own reader runs a step: what the step
	// queues for this stream the reader sends itself once the step is over (sendOwn), so an
	// answer needs no writer goroutine. Only the stream's own goroutine may block on its
	// Send: a peer that stops reading stalls nothing but its own stream, which then times out.
	ownStep bool
	// ended is set, under c.closingMu, once the stream is finished on the writing side (end).
	ended bool
	// handled tells the reader, waiting in deliver, that its message was handled (false) or
	// that it takes over handing the inbox to the core (true).
	handled chan bool
	// stopReading is set, under c.mu, when the reader must stop: its stream ended, or the
	// node stopped or restarted.
	stopReading bool

	mu       sync.Mutex
	conn     Conn        // nil while a dial is under way
	queue    []*Message  // waiting to be sent, oldest first (enqueue bounds it)
	ownTail  bool        // the last message of queue is the runner's own (joinTailAlerts)
	one      [1]*Message // backs a queue of one message
	writing  bool        // a writer runs: a goroutine, or the reader in sendOwn
	closed   bool        // the core is done with the stream
	flush    bool        // with closed: send the queue and half-close rather than abort
	finished bool        // nothing more goes out: the stream was finished or a Send failed
}

// newRunnerLocked registers a runner for the core's stream id; conn is nil while a dial is
// under way.
func (c *Cluster) newRunnerLocked(id connID, conn Conn) *connRunner {
	r := newRunner(c)
	r.core, r.id = c.core, id
	c.runners[id] = r
	if conn != nil {
		r.attach(conn)
	}
	return r
}

// newRunner returns a runner of c's that no stream of the core owns yet.
func newRunner(c *Cluster) *connRunner {
	return &connRunner{
		c:       c,
		readDn:  make(chan struct{}),
		wroteDn: make(chan struct{}),
		handled: make(chan bool, 1),
	}
}

// forgetRunnerLocked unregisters r, if it is still the runner of its stream.
func (c *Cluster) forgetRunnerLocked(r *connRunner) {
	if c.runners[r.id] == r {
		delete(c.runners, r.id)
	}
}

// dialLocked starts the core's outbound stream id to addr.
func (c *Cluster) dialLocked(id connID, addr string) {
	r := c.newRunnerLocked(id, nil)
	if c.starting != nil {
		c.starting[id] = true
	}
	ctx := c.runCtx
	timeout := c.core.dialTimeout(id)
	c.live.Add(1)
	go func() {
		defer c.live.Done()
		dialCtx, cancel := context.WithTimeout(ctx, timeout)
		conn, err := c.transport.Dial(dialCtx, addr)
		cancel()
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			c.logger.Debug("dial failed", "addr", addr, "err", err)
			if c.core == r.core && c.runners[id] == r {
				c.forgetRunnerLocked(r)
				c.stepLocked(func(now time.Time) { c.core.ended(now, id, err) })
			}
			r.close(false)
			return
		}
		r.attach(conn)
		c.live.Add(1)
		go func() { defer c.live.Done(); r.run() }()
		if c.core == r.core && c.runners[id] == r {
			c.stepLocked(func(now time.Time) { c.core.dialed(now, id) })
		}
	}()
}

// attach gives the runner its stream; what was queued or asked for meanwhile goes ahead.
func (r *connRunner) attach(conn Conn) {
	r.c.live.Add(1) // the runner's count, released by end
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conn = conn
	if len(r.queue) > 0 || r.closed {
		r.startWriterLocked()
	}
}

// enqueue queues msg without blocking. Alerts join the alert message waiting last in the
// queue, if any. When the queue is full a relay (alerts, a plain update) is dropped; what
// only this stream carries (a heartbeat, a handshake, a leave, an answer) still goes, up to
// twice the size: a burst of relays must not silence a stream, which its peer would take for
// a failure.
func (r *connRunner) enqueue(msg *Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	relay := len(msg.Alerts) > 0 || plainUpdate(msg)
	switch {
	case r.closed || r.finished:
	case len(msg.Alerts) > 0 && r.joinTailAlerts(msg):
	case (relay && len(r.queue) >= sendQueueSize) || len(r.queue) >= 2*sendQueueSize:
		r.c.logger.Debug("send queue full, message dropped", "conn", r.id, "kind", msg.kind())
	default:
		if r.queue == nil {
			r.queue = r.one[:0] // a lone message needs no allocation
		}
		r.queue = append(r.queue, msg)
		r.ownTail = false
		if !r.ownStep {
			r.startWriterLocked()
		}
	}
}

// joinTailAlerts adds msg's alerts to the alert message last in the queue, if there is one
// with room, and reports whether it did. Messages are shared between streams, so the first
// join copies the tail into a message of the runner's own (ownTail), which later ones extend.
func (r *connRunner) joinTailAlerts(msg *Message) bool {
	if len(r.queue) == 0 {
		return false
	}
	tail := r.queue[len(r.queue)-1]
	if len(tail.Alerts) == 0 || len(tail.Alerts)+len(msg.Alerts) > maxCoalescedAlerts {
		return false
	}
	if !r.ownTail {
		own := make([]*Alert, len(tail.Alerts), 2*(len(tail.Alerts)+len(msg.Alerts)))
		copy(own, tail.Alerts)
		tail = &Message{Alerts: own}
		r.queue[len(r.queue)-1] = tail
		r.ownTail = true
	}
	tail.Alerts = append(tail.Alerts, msg.Alerts...)
	return true
}

// startWriterLocked starts a writer unless one runs, the stream is not there yet, or it is
// finished. The runner's own count of c.live is held then, so adding one cannot race with a
// Wait that saw zero.
func (r *connRunner) startWriterLocked() {
	if r.writing || r.conn == nil || r.finished {
		return
	}
	r.writing = true
	r.c.live.Add(1)
	go r.write()
}

// close tells the runner the core is done with the stream; with flush, queued messages go
// out first and the stream is half-closed, otherwise it is aborted.
//
// An abort cuts a Send in progress short by closing the conn: a Send blocks while the peer
// reads nothing, and the core aborts exactly such a stream when the peer's heartbeats stop
// coming in (the stream's reader may be the one stuck in Send, see ownStep).
func (r *connRunner) close(flush bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed, r.flush = true, flush
	if !flush {
		r.queue, r.ownTail = nil, false
	}
	sending := !flush && r.writing
	conn := r.conn
	r.startWriterLocked()
	r.mu.Unlock()
	if sending {
		conn.Close() // never blocks (Conn.Close)
	}
}

// abort cuts the stream at once.
func (r *connRunner) abort() {
	r.close(false)
	r.mu.Lock()
	conn := r.conn
	r.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// write runs a writer goroutine: it sends the queue (drain).
func (r *connRunner) write() {
	defer r.c.live.Done()
	r.drain(false)
}

// sendOwn sends what the reader's own step queued, on the reader's goroutine, unless a writer
// runs already or the stream is closing (a writer goroutine finishes it then).
func (r *connRunner) sendOwn() {
	r.mu.Lock()
	if len(r.queue) == 0 || r.writing {
		r.mu.Unlock()
		return
	}
	if r.conn == nil || r.finished || r.closed {
		r.startWriterLocked()
		r.mu.Unlock()
		return
	}
	r.writing = true
	r.mu.Unlock()
	r.drain(true)
}

// drain sends queued messages, oldest first, until the queue is empty; then it stops
// writing, or finishes the stream if the runner is closed. The caller set r.writing. On the
// reader's goroutine (own), finishing is handed to a writer goroutine, as it waits for the
// reader to stop.
func (r *connRunner) drain(own bool) {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			if !r.closed {
				r.writing = false
				r.queue = nil // an idle stream keeps no buffer
				r.mu.Unlock()
				return
			}
			if own {
				r.writing = false
				r.startWriterLocked()
				r.mu.Unlock()
				return
			}
			r.finished = true
			r.mu.Unlock()
			r.finish()
			return
		}
		msg, n := coalesce(r.queue)
		clear(r.queue[:n])
		r.queue = r.queue[n:]
		if len(r.queue) == 0 {
			r.ownTail = false // taken: it is being sent, and no longer changes
		}
		r.mu.Unlock()
		if err := r.conn.Send(msg); err != nil {
			r.mu.Lock()
			r.finished, r.queue, r.ownTail = true, nil, false
			r.mu.Unlock()
			r.conn.Close()
			r.end()
			return
		}
	}
}

// finish ends the stream the way close asked, once the queue is sent when flushing.
func (r *connRunner) finish() {
	defer r.end()
	if r.flush {
		_ = r.conn.CloseSend()
		select {
		case <-r.readDn:
		case <-time.After(closeGrace):
		}
	}
	r.conn.Close()
}

// end marks the stream finished on the writing side and releases the runner's count. It
// takes only closingMu, not the node's lock: hundreds of streams may end at once (a seed's
// joiners that gave up on their handshakes), and each taking the node's lock in turn would
// hold up everything else the node does (see runner_inbox.go).
func (r *connRunner) end() {
	close(r.wroteDn)
	r.c.closingMu.Lock()
	r.ended = true
	delete(r.c.closing, r)
	r.c.closingMu.Unlock()
	r.c.live.Done()
}

// abortAllLocked cuts every stream at once: the current ones and those still closing
// gracefully (a peer that never ends its side would otherwise hold each for closeGrace).
func (c *Cluster) abortAllLocked() {
	for id, r := range c.runners {
		delete(c.runners, id)
		r.abort()
	}
	c.closingMu.Lock()
	closing := slices.Collect(maps.Keys(c.closing))
	c.closingMu.Unlock()
	for _, r := range closing {
		r.abort()
	}
}

// run feeds received messages to the core (through the node's inbox) until the stream ends.
func (r *connRunner) run() {
	defer close(r.readDn)
	for {
		msg, err := r.conn.Recv()
		if r.c.deliver(r, msg, err) {
			r.abort()
			return
		}
		r.sendOwn()
	}
}
