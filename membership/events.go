package membership

import "sync"

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
	removed  bool
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
				s.removed = true
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

// drain delivers s's queue until it is empty, then exits.
func (b *eventBus) drain(s *subscriber) {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		if len(s.queue) == 0 || s.removed {
			s.draining = false
			s.queue = nil // the burst's backing array, and every event it held, can go
			b.mu.Unlock()
			return
		}
		e := s.queue[0]
		s.queue[0] = Event{} // delivered: the queue no longer keeps its node info alive
		s.queue = s.queue[1:]
		b.mu.Unlock()
		s.handler(e)
	}
}
