package membership

import (
	"sync/atomic"
	"testing"
	"time"

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
		b.publish(Event{Type: EventNodeUp, Node: NodeInfo{Metadata: map[string]string{"k": "v"}}})
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
