package membership

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestEventBusLetsDeliveredEventsGo(t *testing.T) {
	// A burst of events (a formation reports every other node up) must not stay in memory
	// once the handler has seen it: at 512 nodes the kept bursts were a seventh of the heap.
	var b eventBus
	var seen atomic.Int64
	unsubscribe := b.subscribe(func(Event) { seen.Add(1) })
	defer unsubscribe()
	const burst = 1000
	for range burst {
		b.publish([]Event{{Type: EventNodeUp, Node: NodeInfo{Metadata: map[string]string{"k": "v"}}}})
	}
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, s := range b.subs {
			if s.draining || s.queue != nil {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "the subscriber's queue should be released once its %d events are delivered", burst)
	require.EqualValues(t, burst, seen.Load(), "every event is delivered")
	b.wg.Wait()
}

func TestEventBusDeliversBatchesAndSingleEventsInOrderToEverySubscriber(t *testing.T) {
	var b eventBus
	const subscribers, total = 3, 2000
	var got [subscribers][]uint64
	var mu sync.Mutex
	for i := range subscribers {
		unsubscribe := b.subscribe(func(e Event) {
			mu.Lock()
			got[i] = append(got[i], e.Sequence)
			mu.Unlock()
		})
		defer unsubscribe()
	}
	seq := uint64(0)
	for seq < total {
		batch := make([]Event, 1+int(seq%5)) // one to five at a time: queues reused between bursts
		for j := range batch {
			seq++
			batch[j] = Event{Type: EventNodeUp, Sequence: seq}
		}
		b.publish(batch)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range subscribers {
			if len(got[i]) < int(seq) {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "every subscriber should get all %d events", seq)
	b.wg.Wait()
	for i := range subscribers {
		for j, s := range got[i] {
			require.Equal(t, uint64(j+1), s, "subscriber %d: event %d out of order", i, j)
		}
	}
}

func TestRecentEventsKeepTheLatestOldestFirst(t *testing.T) {
	r := eventRing{size: 4}
	require.Empty(t, r.list(), "nothing yet")
	for i := range 10 {
		r.add(Event{Sequence: uint64(i + 1)})
		var want []uint64
		for s := max(1, i-2); s <= i+1; s++ {
			want = append(want, uint64(s))
		}
		var have []uint64
		for _, e := range r.list() {
			have = append(have, e.Sequence)
		}
		require.Equal(t, want, have, "after %d events", i+1)
	}
}

func TestEventBusSharesABatchAmongItsSubscribers(t *testing.T) {
	// A formation publishes a thousand node_up events on every node; each subscriber must
	// read the published batch, not a copy of its own.
	var b eventBus
	release := make(chan struct{})
	const subscribers, batches, perBatch = 3, 10, 1000
	var seen atomic.Int64
	for range subscribers {
		unsubscribe := b.subscribe(func(Event) {
			<-release // held until the allocations are counted
			seen.Add(1)
		})
		defer unsubscribe()
	}
	published := make([][]Event, batches)
	for i := range published {
		published[i] = make([]Event, perBatch)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, batch := range published {
		b.publish(batch)
	}
	runtime.ReadMemStats(&after)
	close(release)
	oneCopy := uint64(perBatch) * uint64(unsafe.Sizeof(Event{}))
	require.Less(t, after.TotalAlloc-before.TotalAlloc, oneCopy,
		"publishing %d batches of %d events to %d subscribers should allocate less than one batch's copy", batches, perBatch, subscribers)
	require.Eventually(t, func() bool { return seen.Load() == subscribers*batches*perBatch }, 10*time.Second, time.Millisecond,
		"every subscriber should get every event")
	b.wg.Wait()
}
