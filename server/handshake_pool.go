package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// handshakePool admits inbound peer streams that have not authenticated yet. It caps them in
// all and per source address, and never refuses a newcomer: when a cap is reached, the
// newcomer takes the place of the pending handshake that looks least like a peer about to
// finish, so that a flood of stalled handshakes cannot keep a real node out:
//
//   - among the handshakes of the source that holds its per-source cap, or else (the pool
//     being full) of the source that holds the most;
//   - first those on a connection that already carried a peer stream (nodes open one stream
//     per connection), then those still waiting for their first frame, then the oldest.
//
// A real handshake takes a round trip or two; to be evicted it would have to be the worst of
// its source while as many newer handshakes arrive as the cap allows.
type handshakePool struct {
	max, perSource int
	// floor, if set, returns a floor under both caps that grows with the cluster (see
	// admissionFloor).
	floor func() int

	mu       sync.Mutex
	total    int
	bySource map[string][]*pendingHandshake // in arrival order
}

// pendingHandshake is one admitted handshake.
type pendingHandshake struct {
	source string
	// reused says the stream's connection carried an earlier peer stream.
	reused  bool
	started time.Time
	// progressed is set once the first frame was read.
	progressed atomic.Bool
	// evicted is closed when the handshake loses its place to a newcomer.
	evicted chan struct{}
	// gone is set, under the pool's lock, once the handshake left the pool.
	gone bool
}

// newHandshakePool returns a pool of capacity handshakes, perSource of them from one
// address (perSource is clamped to 1..capacity).
func newHandshakePool(capacity, perSource int) *handshakePool {
	capacity = max(capacity, 1)
	return &handshakePool{max: capacity, perSource: min(max(perSource, 1), capacity), bySource: map[string][]*pendingHandshake{}}
}

// admit registers a handshake from source; it returns it and the handshake it evicted, if
// any (already out of the pool, its evicted channel closed).
func (p *handshakePool) admit(source string, reused bool) (entry, victim *pendingHandshake) {
	entry = &pendingHandshake{source: source, reused: reused, started: time.Now(), evicted: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	capacity, perSource := p.max, p.perSource
	if p.floor != nil {
		f := p.floor()
		capacity, perSource = max(capacity, f), max(perSource, f)
	}
	switch {
	case len(p.bySource[source]) >= perSource:
		victim = worst(p.bySource[source])
	case p.total >= capacity:
		var heaviest []*pendingHandshake
		for _, list := range p.bySource {
			if len(list) > len(heaviest) {
				heaviest = list
			}
		}
		victim = worst(heaviest)
	}
	if victim != nil {
		p.remove(victim)
		close(victim.evicted)
	}
	p.bySource[source] = append(p.bySource[source], entry)
	p.total++
	return entry, victim
}

// release takes a handshake out of the pool (it finished, failed or ended); it may be
// called more than once, and for an evicted handshake.
func (p *handshakePool) release(e *pendingHandshake) {
	if e == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.remove(e)
}

// remove drops e from the pool; p.mu is held.
func (p *handshakePool) remove(e *pendingHandshake) {
	if e.gone {
		return
	}
	e.gone = true
	list := p.bySource[e.source]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(p.bySource, e.source)
	} else {
		p.bySource[e.source] = list
	}
	p.total--
}

// pending returns how many handshakes the pool holds.
func (p *handshakePool) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// worst returns the handshake of list to evict first: on a reused connection, then without
// its first frame, then the oldest (list is in arrival order).
func worst(list []*pendingHandshake) *pendingHandshake {
	var w *pendingHandshake
	rank := func(e *pendingHandshake) int {
		r := 0
		if e.reused {
			r += 2
		}
		if !e.progressed.Load() {
			r++
		}
		return r
	}
	for _, e := range list {
		if w == nil || rank(e) > rank(w) {
			w = e
		}
	}
	return w
}
