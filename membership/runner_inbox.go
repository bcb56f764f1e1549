package membership

import (
	"sync"
	"time"
)

// The node's streams hand what they read to the core through one inbox, and whichever reader
// finds the core idle hands it a whole batch under one hold of the node's lock.
//
// With a reader per stream taking the lock for each message, a node that many streams talk
// to at once (a seed while hundreds join through it, a node hearing of a crash from all its
// neighbours) passes its lock from goroutine to goroutine once per message. On a busy machine
// each pass waits for the next owner to be scheduled, behind every other runnable goroutine
// of the process, and the node falls seconds behind while its cores are not even busy: its
// peers' handshakes and heartbeats time out. With the inbox the lock changes hands once per
// batch, and a batch holds whatever arrived meanwhile.
//
// Each stream still hands over one message at a time: its reader waits until its message was
// handled (as it waited for the lock before), then sends what the core answered on the
// stream itself (sendOwn), so a peer that floods a stream slows only that stream's reading.

// inbox is the queue of messages read from the node's streams, waiting for the core.
type inbox struct {
	mu      sync.Mutex
	items   []inboxItem
	spare   []inboxItem // the previous batch's backing array, reused
	running bool        // a reader is handing the inbox to the core
}

// inboxItem is one message read from a stream, the error that ended it, or (admit) an
// inbound stream for the core to accept.
type inboxItem struct {
	r     *connRunner
	msg   *Message
	err   error
	admit bool
}

// deliver hands msg (or err) read by r to the core and returns once it was handled, and
// whether r's reader must stop: its stream ended, or the node stopped or restarted since.
func (c *Cluster) deliver(r *connRunner, msg *Message, err error) (stop bool) {
	c.hand(inboxItem{r: r, msg: msg, err: err})
	return r.stopReading
}

// admit hands the inbound stream of r, a runner no stream of the core owns yet, to the core
// and returns once the core accepted it (r.core and r.id set, r registered) or refused it,
// the node not running (r.core nil).
func (c *Cluster) admit(r *connRunner) { c.hand(inboxItem{r: r, admit: true}) }

// hand puts it in the inbox and returns once the core handled it: handled by the batch of
// another reader, or by this one's, if the core was idle or the reader of the batch before
// handed over to it.
func (c *Cluster) hand(it inboxItem) {
	r := it.r
	c.in.mu.Lock()
	c.in.items = append(c.in.items, it)
	if c.in.running {
		c.in.mu.Unlock()
		if takeOver := <-r.handled; takeOver {
			c.handleInbox(r)
		}
		return
	}
	c.in.running = true
	c.in.mu.Unlock()
	c.handleInbox(r)
}

// handleInbox hands the core the batch waiting in the inbox, which holds the message of self
// (the caller's stream), and tells every other reader of the batch that its message was
// handled. If more arrived meanwhile, the reader of the oldest takes over (its message is in
// the next batch), so that no reader handles batches for long while its own stream waits.
func (c *Cluster) handleInbox(self *connRunner) {
	c.in.mu.Lock()
	batch := c.in.items
	c.in.items, c.in.spare = c.in.spare[:0], nil
	c.in.mu.Unlock()

	c.mu.Lock()
	for i := range batch {
		c.handleLocked(&batch[i])
		c.tickOverdueLocked(batch[i+1:]) // the node's heartbeats do not wait for the batch to end
	}
	c.mu.Unlock()

	c.in.mu.Lock()
	var next *connRunner
	if len(c.in.items) > 0 {
		next = c.in.items[0].r // not in batch: its reader was waiting on its own message
	} else {
		c.in.running = false
	}
	c.in.mu.Unlock()
	for _, it := range batch {
		if it.r != self {
			it.r.handled <- false
		}
	}
	clear(batch) // no references kept
	c.in.mu.Lock()
	if c.in.spare == nil {
		c.in.spare = batch[:0]
	}
	c.in.mu.Unlock()
	if next != nil {
		next.handled <- true
	}
}

// handleLocked hands one item to the core, as the stream's reader did under the lock.
func (c *Cluster) handleLocked(it *inboxItem) {
	r := it.r
	switch {
	case it.admit:
		if c.core == nil || c.status == ClusterStopping {
			return // r.core stays nil: refused
		}
		c.stepLocked(func(now time.Time) {
			r.core, r.id = c.core, c.core.accept(now)
			c.runners[r.id] = r
		})
	case c.core != r.core:
		r.stopReading = true
	case it.err != nil:
		c.forgetRunnerLocked(r)
		c.stepLocked(func(now time.Time) { c.core.ended(now, r.id, it.err) })
		r.stopReading = true
	default:
		r.ownStep = true
		c.stepLocked(func(now time.Time) { c.core.receive(now, r.id, it.msg) })
		r.ownStep = false
	}
}
