package membership

import (
	"slices"
	"sync"
	"sync/atomic"
)

// eventBus delivers events to subscribers. Publishing never blocks: each subscriber has its
// own queue, drained by a goroutine that exists only while the queue is not empty, so a slow
// handler delays only its own later events, handlers never run under the cluster's lock, and
// each handler sees events in the order they happened. A published batch is shared by every
// subscriber's queue, never copied: a formation reports every other node up on every node,
// and a copy per subscriber, grown by doubling while a subscriber lagged, was up to a tenth
// of what a formation allocated.
type eventBus struct {
	mu     sync.Mutex
	nextID uint64
	subs   map[uint64]*subscriber
	wg     sync.WaitGroup
}

// subscriber is one registered handler and its pending events.
type subscriber struct {
	handler func(Event)
	// queue holds the batches published since the drain last took them, in order.
	queue [][]Event
	// spare is the list of a delivered run of batches, kept for the next one when it is
	// short: a formation publishes a batch per step, a few at a time, and without it each
	// run grew a new list from nothing.
	spare    [][]Event
	draining bool
	removed  atomic.Bool // read by drain without the lock, before each handler call
}

// subscribe registers handler and returns a func that removes it. Events already queued for
// the handler when it is removed are dropped.
func (b *eventBus) subscribe(handler func(Event)) (unsubscribe func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[uint64]*subscriber{}
	}
	b.nextID++
	id := b.nextID
	b.subs[id] = &subscriber{handler: handler}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if s := b.subs[id]; s != nil {
				s.removed.Store(true)
				s.queue = nil
				delete(b.subs, id)
			}
		})
	}
}

// publish queues the batch events, in order, for every subscriber. The bus owns events from
// then on: every subscriber reads the same array, and the caller must not write it again.
func (b *eventBus) publish(events []Event) {
	if len(events) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.subs {
		if s.queue == nil {
			s.queue, s.spare = s.spare, nil
		}
		s.queue = append(s.queue, events)
		if !s.draining {
			s.draining = true
			b.wg.Add(1)
			go b.drain(s)
		}
	}
}

// drain delivers s's queue until it is empty, then exits. It takes the queue a run of batches
// at a time: publish runs under the cluster's lock, and must not wait for a drain that takes
// the bus's lock once per event. A delivered batch is let go of at once; its array is freed
// when every subscriber has let go of it.
func (b *eventBus) drain(s *subscriber) {
	defer b.wg.Done()
	var delivered [][]Event // the run delivered last, emptied
	for {
		b.mu.Lock()
		if cap(delivered) > 0 && cap(delivered) <= maxSpareBatches && s.spare == nil {
			s.spare = delivered[:0]
		}
		if len(s.queue) == 0 || s.removed.Load() {
			s.draining = false
			s.queue = nil // the run's list, and every batch it held, can go
			b.mu.Unlock()
			return
		}
		run := s.queue
		s.queue = nil
		b.mu.Unlock()
	deliver:
		for i, batch := range run {
			for j := range batch {
				if s.removed.Load() {
					break deliver
				}
				s.handler(batch[j])
			}
			run[i] = nil // delivered: this queue no longer keeps the batch alive
		}
		clear(run) // a removed subscriber stops part way
		delivered = run
	}
}

// maxSpareBatches bounds the list of batches a subscriber keeps between runs
// (subscriber.spare).
const maxSpareBatches = 16

// eventRing keeps the latest events, up to its size, in an array allocated once.
type eventRing struct {
	buf  []Event
	next int // where the next event goes once buf is full: the oldest
	size int
}

// add remembers e, forgetting the oldest event if the ring is full.
func (r *eventRing) add(e Event) {
	if r.size == 0 {
		return
	}
	if len(r.buf) < r.size {
		if r.buf == nil {
			r.buf = make([]Event, 0, r.size)
		}
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.next] = e
	r.next = (r.next + 1) % r.size
}

// list returns the events held, oldest first, in a new slice.
func (r *eventRing) list() []Event {
	return slices.Concat(r.buf[r.next:], r.buf[:r.next])
}
