package harness

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// lateLog is a node's log that writes nothing until turned on (diagnostics): a node found
// stuck during a formation is then logged at debug level from that moment on, without the
// cost of logging every node from the start.
type lateLog struct {
	target *atomic.Pointer[slog.Handler]
	// derive rebuilds, on the target, the attributes and groups added to this handler, in
	// the order they were added.
	derive []func(slog.Handler) slog.Handler
}

func newLateLog() *lateLog { return &lateLog{target: new(atomic.Pointer[slog.Handler])} }

// turnOn sends the log to h from now on.
func (l *lateLog) turnOn(h slog.Handler) { l.target.CompareAndSwap(nil, &h) }

func (l *lateLog) Enabled(ctx context.Context, level slog.Level) bool {
	h := l.target.Load()
	return h != nil && (*h).Enabled(ctx, level)
}

func (l *lateLog) Handle(ctx context.Context, r slog.Record) error {
	h := l.target.Load()
	if h == nil {
		return nil
	}
	t := *h
	for _, d := range l.derive {
		t = d(t)
	}
	return t.Handle(ctx, r)
}

func (l *lateLog) with(d func(slog.Handler) slog.Handler) *lateLog {
	return &lateLog{target: l.target, derive: append(l.derive[:len(l.derive):len(l.derive)], d)}
}

func (l *lateLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return l.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

func (l *lateLog) WithGroup(name string) slog.Handler {
	return l.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// nodeCounter counts one node's heartbeats and dials, and the process's (diagSink).
type nodeCounter struct {
	diagCounter
	lastRecv atomic.Int64 // when the last heartbeat came, in Unix nanoseconds (0: none yet)
}

func (d *nodeCounter) HeartbeatSent() { d.diagCounter.HeartbeatSent(); diagSink.HeartbeatSent() }
func (d *nodeCounter) DialStarted()   { d.diagCounter.DialStarted(); diagSink.DialStarted() }
func (d *nodeCounter) HeartbeatReceived(gap, interval time.Duration) {
	d.diagCounter.HeartbeatReceived(gap, interval)
	diagSink.HeartbeatReceived(gap, interval)
	d.lastRecv.Store(time.Now().UnixNano())
}

// summary says what the node counted, and how long ago its last heartbeat came (0: none).
func (d *nodeCounter) summary() (dials, sent, recv int64, sinceRecv time.Duration) {
	if at := d.lastRecv.Load(); at != 0 {
		sinceRecv = time.Since(time.Unix(0, at)).Round(time.Millisecond)
	}
	return d.dials.Load(), d.hbSent.Load(), d.hbRecv.Load(), sinceRecv
}

var _ membership.MetricsSink = (*nodeCounter)(nil)
