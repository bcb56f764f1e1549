package membership

import (
	"context"
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

// connRunner drives one stream: a writer goroutine drains its send queue, a reader goroutine
// (or ServeConn's caller, for inbound streams) feeds received messages to the core.
type connRunner struct {
	c       *Cluster
	core    *core
	id      connID
	queue   chan *Message
	done    chan struct{} // closed when the core is done with the stream
	once    sync.Once
	flush   bool
	ready   chan struct{} // closed once conn is set
	conn    Conn
	readDn  chan struct{} // closed when the reader stops
	wroteDn chan struct{} // closed when the writer stops
}

// newRunnerLocked registers a runner for stream id; conn is nil while a dial is under way.
func (c *Cluster) newRunnerLocked(id connID, conn Conn) *connRunner {
	r := &connRunner{
		c:       c,
		core:    c.core,
		id:      id,
		queue:   make(chan *Message, sendQueueSize),
		done:    make(chan struct{}),
		ready:   make(chan struct{}),
		readDn:  make(chan struct{}),
		wroteDn: make(chan struct{}),
	}
	c.runners[id] = r
	if conn != nil {
		r.conn = conn
		close(r.ready)
		c.live.Add(1)
		go r.write()
	}
	return r
}

// dialLocked starts an outbound stream.
func (c *Cluster) dialLocked(id connID, addr string) {
	r := c.newRunnerLocked(id, nil)
	if c.starting != nil {
		c.starting[id] = true
	}
	ctx := c.runCtx
	c.live.Add(1)
	go func() {
		defer c.live.Done()
		dialCtx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
		conn, err := c.transport.Dial(dialCtx, addr)
		cancel()
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			c.logger.Debug("dial failed", "addr", addr, "err", err)
			if c.core == r.core && c.runners[id] == r {
				delete(c.runners, id)
				c.stepLocked(func(now time.Time) { c.core.ended(now, id) })
			}
			r.close(false)
			return
		}
		r.conn = conn
		close(r.ready)
		c.live.Add(2)
		go r.write()
		go func() { defer c.live.Done(); r.run() }()
		if c.core == r.core && c.runners[id] == r {
			c.stepLocked(func(now time.Time) { c.core.dialed(now, id) })
		}
	}()
}

// enqueue queues msg without blocking; when the queue is full the message is dropped.
func (r *connRunner) enqueue(msg *Message) {
	select {
	case r.queue <- msg:
	default:
		r.c.logger.Debug("send queue full, message dropped", "conn", r.id)
	}
}

// close tells the runner the core is done with the stream; with flush, queued messages go
// out first and the stream is half-closed, otherwise it is aborted.
func (r *connRunner) close(flush bool) {
	r.once.Do(func() {
		r.flush = flush
		close(r.done)
	})
}

// abort cuts the stream at once.
func (r *connRunner) abort() {
	r.close(false)
	select {
	case <-r.ready:
		r.conn.Close()
	default:
	}
}

// write sends queued messages until the runner is closed.
func (r *connRunner) write() {
	defer r.c.live.Done()
	defer close(r.wroteDn)
	for {
		select {
		case msg := <-r.queue:
			if err := r.conn.Send(msg); err != nil {
				r.conn.Close()
				return
			}
		case <-r.done:
			r.finish()
			return
		}
	}
}

// finish ends the stream the way close asked.
func (r *connRunner) finish() {
	if !r.flush {
		r.conn.Close()
		return
	}
drain:
	for {
		select {
		case msg := <-r.queue:
			if err := r.conn.Send(msg); err != nil {
				r.conn.Close()
				return
			}
		default:
			break drain
		}
	}
	_ = r.conn.CloseSend()
	select {
	case <-r.readDn:
	case <-time.After(closeGrace):
	}
	r.conn.Close()
}

// run feeds received messages to the core until the stream ends.
func (r *connRunner) run() {
	defer close(r.readDn)
	c := r.c
	for {
		msg, err := r.conn.Recv()
		c.mu.Lock()
		if c.core != r.core {
			c.mu.Unlock()
			r.abort()
			return
		}
		if err != nil {
			if c.runners[r.id] == r {
				delete(c.runners, r.id)
			}
			c.stepLocked(func(now time.Time) { c.core.ended(now, r.id) })
			c.mu.Unlock()
			r.abort()
			return
		}
		if !c.frozen {
			c.stepLocked(func(now time.Time) { c.core.receive(now, r.id, msg) })
		}
		c.mu.Unlock()
	}
}
