package harness

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
)

// logCounts counts, per message, the log records of every node of the host
// (BENCH_COUNT_LOGS=1, diagnostics): what the nodes did, in numbers, without writing a log.
// One per process, as diagSink.
var logCounts = &countingHandler{counts: map[string]int{}}

// countingHandler is a slog handler that counts records by message, at debug level.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
	prev   map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.counts[r.Message]++
	h.mu.Unlock()
	return nil
}

func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// since returns the counts since the last call, most frequent first, on one line.
func (h *countingHandler) since() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	delta := map[string]int{}
	for msg, n := range h.counts {
		if d := n - h.prev[msg]; d > 0 {
			delta[msg] = d
		}
	}
	h.prev = maps.Clone(h.counts)
	keys := slices.SortedFunc(maps.Keys(delta), func(a, b string) int { return delta[b] - delta[a] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %q", delta[k], k))
	}
	return strings.Join(parts, ", ")
}
