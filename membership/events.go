package membership

import (
	"sync"
	"sync/atomic"
)

// eventBus delivers events to subscribers. Publishing never blocks: each subscriber has its
// own queue, drained by a goroutine that exists only while the queue is not empty, so a slow
// handler delays only its own later events, handlers never run under the cluster's lock, and
// each handler sees events in the order they happened.
type eventBus struct {
	mu     sync.Mutex
	nextID uint64
	subs   map[uint64]*subscriber
	wg     sync.WaitGroup
}

// subscriber is one registered handler and its pending events.
type subscriber struct {
	handler  func(Event)
	queue    []Event
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

// publish queues e for every subscriber.
func (b *eventBus) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.subs {
		s.queue = append(s.queue, e)
		if !s.draining {
			s.draining = true
			b.wg.Add(1)
			go b.drain(s)
		}
	}
}

// drain delivers s's queue until it is empty, then exits. It takes the queue a burst at a
// time: publish runs under the cluster's lock, and must not wait for a drain that takes the
// bus's lock once per event.
func (b *eventBus) drain(s *subscriber) {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		if len(s.queue) == 0 || s.removed.Load() {
			s.draining = false
			s.queue = nil // the burst's backing array, and every event it held, can go
			b.mu.Unlock()
			return
		}
		burst := s.queue
		s.queue = nil
		b.mu.Unlock()
		for i := range burst {
			if s.removed.Load() {
				break
			}
			s.handler(burst[i])
			burst[i] = Event{} // delivered: the burst no longer keeps its node info alive
		}
	}
}
