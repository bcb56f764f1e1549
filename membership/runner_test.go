package membership

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// recordingConn is a Conn that records what the runner does with it. Send blocks while
// hold is set, until the conn is closed or released.
type recordingConn struct {
	mu      sync.Mutex
	ops     []string
	hold    bool
	held    chan struct{} // closed when a Send starts waiting
	release chan struct{}
	closed  chan struct{}
	once    sync.Once
	heldAt  sync.Once
}

func newRecordingConn() *recordingConn {
	return &recordingConn{held: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{})}
}

func (c *recordingConn) record(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops = append(c.ops, op)
}

// recorded returns the operations so far.
func (c *recordingConn) recorded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ops...)
}

func (c *recordingConn) Send(msg *Message) error {
	c.mu.Lock()
	hold := c.hold
	c.mu.Unlock()
	if hold {
		c.heldAt.Do(func() { close(c.held) })
		select {
		case <-c.release:
		case <-c.closed:
			return io.EOF
		}
	}
	select {
	case <-c.closed:
		return io.EOF
	default:
	}
	switch {
	case msg.Heartbeat != nil:
		c.record(fmt.Sprintf("send %d", msg.Heartbeat.ViewDigest))
	case len(msg.Alerts) > 0:
		c.record(fmt.Sprintf("alerts %d", len(msg.Alerts)))
	case msg.Update != nil && msg.Update.Full:
		c.record(fmt.Sprintf("full update %d", len(msg.Update.Entries)))
	case msg.Update != nil:
		c.record(fmt.Sprintf("update %d", len(msg.Update.Entries)))
	}
	return nil
}

func (c *recordingConn) Recv() (*Message, error) {
	<-c.closed
	return nil, io.EOF
}

func (c *recordingConn) CloseSend() error {
	c.record("close send")
	return nil
}

func (c *recordingConn) Close() {
	c.once.Do(func() {
		c.record("close")
		close(c.closed)
	})
}

// heartbeat is a message told apart by n.
func heartbeat(n int) *Message { return &Message{Heartbeat: &Heartbeat{ViewDigest: uint64(n)}} }

// sends lists "send i" for i in [from, to).
func sends(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("send %d", i))
	}
	return out
}

// newRunnerCluster returns a stopped Cluster, enough to drive runners by hand.
func newRunnerCluster(t *testing.T) *Cluster {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = "a"
	id, err := NewNodeID("a", "127.0.0.1", 4369)
	require.NoError(t, err)
	c, err := New(id, cfg, nil, WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	return c
}

// requireClosed waits for ch to be closed, failing with what after a deadline.
func requireClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal(what)
	}
}

// requireLiveDone waits for every goroutine and stream counted in c.live.
func requireLiveDone(t *testing.T, c *Cluster) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.live.Wait(); close(done) }()
	requireClosed(t, done, "c.live still counts something")
}

// requireNothingLeft waits for c.live to drain and checks that no goroutine is left but those
// before ignores.
func requireNothingLeft(t *testing.T, c *Cluster, before goleak.Option) {
	t.Helper()
	requireLiveDone(t, c)
	require.NoError(t, goleak.Find(before), "no writer or reader goroutine should be left")
}

func TestRunnerSendsInOrderWithAWriterOnlyWhileBusy(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	conn := newRecordingConn()

	// Queued while the dial is under way: bounded, kept in order, no goroutine yet.
	const held = 2 * sendQueueSize // heartbeats: relays are dropped sooner
	c.mu.Lock()
	r := c.newRunnerLocked(1, nil)
	for i := range held + 10 {
		r.enqueue(heartbeat(i))
	}
	c.mu.Unlock()
	require.NoError(t, goleak.Find(before), "no writer without a conn")

	r.attach(conn)
	require.Eventually(t, func() bool { return len(conn.recorded()) == held }, 5*time.Second, time.Millisecond)
	require.Equal(t, sends(0, held), conn.recorded(), "what the queue held, in order; the overflow dropped")
	require.NoError(t, goleak.Find(before), "the writer exits once the queue is empty")

	// An idle runner starts a writer again for the next messages.
	c.mu.Lock()
	for i := 1000; i < 1003; i++ {
		r.enqueue(heartbeat(i))
	}
	c.mu.Unlock()
	require.Eventually(t, func() bool { return len(conn.recorded()) == held+3 }, 5*time.Second, time.Millisecond)
	require.Equal(t, sends(1000, 1003), conn.recorded()[held:])
	require.NoError(t, goleak.Find(before), "the writer exits once the queue is empty")

	// A graceful close: once the reader stops, the conn is closed and the runner is done.
	close(r.readDn)
	c.mu.Lock()
	r.close(true)
	r.enqueue(heartbeat(2000)) // after close: never sent
	c.mu.Unlock()
	requireClosed(t, r.wroteDn, "the stream should be finished on the writing side")
	require.Equal(t, []string{"close send", "close"}, conn.recorded()[held+3:])
	requireNothingLeft(t, c, before)
}

func TestRunnerQueueKeepsHeartbeatsAndAnswersWhenRelaysFillItAndJoinsAlerts(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	conn := newRecordingConn()
	alert := func(n int) *Message {
		msg := &Message{}
		for range n {
			msg.Alerts = append(msg.Alerts, &Alert{Observer: NodeID{}})
		}
		return msg
	}
	update := &Message{Update: &Update{Entries: []MemberEntry{{}}}}

	c.mu.Lock()
	r := c.newRunnerLocked(1, nil)
	shared := alert(1)
	r.enqueue(shared)
	r.enqueue(alert(2)) // joins the waiting alert message, which other streams may share: copied
	r.enqueue(alert(3))
	require.Len(t, shared.Alerts, 1, "a message handed to the runner is never changed")
	for range sendQueueSize + 10 {
		r.enqueue(update) // relays: dropped once the queue is full
	}
	r.enqueue(heartbeat(7)) // not a relay: still queued
	r.enqueue(alert(1))     // a relay, and no alert message last in the queue: dropped
	answer := &Message{Update: &Update{Entries: []MemberEntry{{}, {}}, answer: true}}
	r.enqueue(answer) // the answer to a view request: only this stream carries it, queued
	c.mu.Unlock()

	r.attach(conn)
	// (the writer sends the updates waiting in a row as one)
	want := []string{"alerts 6", fmt.Sprintf("update %d", sendQueueSize-1), "send 7", "update 2"}
	require.Eventually(t, func() bool { return len(conn.recorded()) == len(want) }, 5*time.Second, time.Millisecond,
		"the queue should send the joined alerts, the updates it had room for, the heartbeat and the answer")
	require.Equal(t, want, conn.recorded())

	close(r.readDn)
	c.mu.Lock()
	r.close(false)
	c.mu.Unlock()
	requireClosed(t, r.wroteDn, "the stream should be finished on the writing side")
	requireNothingLeft(t, c, before)
}

// TestRunnerSendsQueuedRelaysTogether holds the stream's first send so that relays queue up
// behind it: consecutive alerts go as one message, consecutive plain updates as one, in
// order; a full update is never merged.
func TestRunnerSendsQueuedRelaysTogether(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	conn := newRecordingConn()
	conn.hold = true
	alert := &Message{Alerts: []*Alert{{Incarnation: 1}}}
	update := func(n int, full bool) *Message {
		return &Message{Update: &Update{Full: full, Entries: make([]MemberEntry, n)}}
	}

	c.mu.Lock()
	r := c.newRunnerLocked(1, conn)
	r.enqueue(heartbeat(0))
	c.mu.Unlock()
	requireClosed(t, conn.held, "the first send should be under way")
	c.mu.Lock()
	for _, m := range []*Message{alert, alert, alert, update(2, false), update(3, false), update(4, true), alert, heartbeat(1), alert} {
		r.enqueue(m)
	}
	c.mu.Unlock()
	close(conn.release)
	want := []string{"send 0", "alerts 3", "update 5", "full update 4", "alerts 1", "send 1", "alerts 1"}
	require.Eventually(t, func() bool { return len(conn.recorded()) == len(want) }, 5*time.Second, time.Millisecond,
		"the queue should be sent")
	require.Equal(t, want, conn.recorded(), "consecutive relays travel together, in order")

	close(r.readDn)
	c.mu.Lock()
	r.close(true)
	c.mu.Unlock()
	requireClosed(t, r.wroteDn, "the stream should be finished on the writing side")
	requireNothingLeft(t, c, before)
}

func TestCoalesceKeepsMessagesWithinTheirBounds(t *testing.T) {
	queue := make([]*Message, 0, 2*maxCoalescedAlerts)
	for range 2*maxCoalescedAlerts + 1 {
		queue = append(queue, &Message{Alerts: []*Alert{{Incarnation: 7}}})
	}
	msg, n := coalesce(queue)
	require.Equal(t, maxCoalescedAlerts, n, "a coalesced message stands for at most maxCoalescedAlerts alerts")
	require.Len(t, msg.Alerts, maxCoalescedAlerts)

	big := &Message{Update: &Update{Entries: make([]MemberEntry, maxCoalescedEntries)}}
	msg, n = coalesce([]*Message{big, big})
	require.Equal(t, 1, n, "an update already at the bound goes alone")
	require.Same(t, big, msg, "a message that goes alone is sent as it is")

	asks := &Message{Update: &Update{ReplyRequested: true, Entries: make([]MemberEntry, 1)}}
	_, n = coalesce([]*Message{asks, asks})
	require.Equal(t, 1, n, "an update that asks for a reply is never merged")

	near := &Message{Update: &Update{Hop: 1, Entries: make([]MemberEntry, 1)}}
	far := &Message{Update: &Update{Hop: 4, Entries: make([]MemberEntry, 1)}}
	msg, n = coalesce([]*Message{near, near, far})
	require.Equal(t, 2, n, "updates merge only with updates as far from their source: the hop sets how widely the receiver relays")
	require.Equal(t, uint32(1), msg.Update.Hop, "a merged update keeps its parts' hop")
}

func TestRunnerFlushSendsTheQueueBeforeHalfClosing(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	conn := newRecordingConn()
	conn.hold = true // the first Send waits: the rest stays queued

	c.mu.Lock()
	r := c.newRunnerLocked(1, conn)
	for i := range 3 {
		r.enqueue(heartbeat(i))
	}
	r.close(true)
	c.mu.Unlock()
	close(r.readDn)
	close(conn.release)
	requireClosed(t, r.wroteDn, "the stream should be finished on the writing side")
	require.Equal(t, append(sends(0, 3), "close send", "close"), conn.recorded())
	requireNothingLeft(t, c, before)
}

func TestRunnerAbortDropsTheQueue(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	conn := newRecordingConn()
	conn.hold = true // the first Send waits until the conn is closed

	c.mu.Lock()
	r := c.newRunnerLocked(1, conn)
	for i := range 3 {
		r.enqueue(heartbeat(i))
	}
	c.mu.Unlock()
	r.abort()
	requireClosed(t, r.wroteDn, "the stream should be finished on the writing side")
	require.Equal(t, []string{"close"}, conn.recorded(), "nothing sent after an abort")
	requireNothingLeft(t, c, before)
}

func TestRunnerClosedBeforeItsDialEndsFinishesOnceAttached(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	conn := newRecordingConn()

	c.mu.Lock()
	r := c.newRunnerLocked(1, nil)
	r.enqueue(heartbeat(1))
	r.close(true)
	c.mu.Unlock()
	close(r.readDn)
	r.attach(conn)
	requireClosed(t, r.wroteDn, "the stream should be finished on the writing side")
	require.Equal(t, []string{"send 1", "close send", "close"}, conn.recorded())
	requireNothingLeft(t, c, before)
}

func TestRunnerAbortCutsAStuckSendShort(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	conn := newRecordingConn()
	conn.hold = true // the peer reads nothing: Send waits until the conn is closed

	c.mu.Lock()
	r := c.newRunnerLocked(1, conn)
	r.enqueue(heartbeat(1))
	c.mu.Unlock()
	requireClosed(t, conn.held, "the writer should be in Send")
	c.mu.Lock()
	r.close(false) // what the core does when the peer's heartbeats stop coming
	c.mu.Unlock()
	requireClosed(t, r.wroteDn, "an abort should end a stream whose Send is stuck")
	require.Equal(t, []string{"close"}, conn.recorded(), "nothing sent")
	close(r.readDn)
	requireNothingLeft(t, c, before)
}

func TestRunnerReaderSendsWhatItsOwnStepQueued(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	conn := newRecordingConn()

	c.mu.Lock()
	r := c.newRunnerLocked(1, conn)
	r.ownStep = true // as the stream's reader does while the core handles its message
	r.enqueue(heartbeat(1))
	r.enqueue(heartbeat(2))
	r.ownStep = false
	c.mu.Unlock()
	require.NoError(t, goleak.Find(before), "a step of the stream's own reader starts no writer")
	require.Empty(t, conn.recorded(), "nothing sent while the core holds its lock")

	r.sendOwn()
	require.Equal(t, sends(1, 3), conn.recorded(), "the reader sends what its step queued, in order, before it returns")
	require.NoError(t, goleak.Find(before))

	// Queued by another step (a tick): a writer goroutine sends it, as before.
	c.mu.Lock()
	r.enqueue(heartbeat(3))
	c.mu.Unlock()
	require.Eventually(t, func() bool { return len(conn.recorded()) == 3 }, 5*time.Second, time.Millisecond)
	r.abort()
	close(r.readDn)
	requireClosed(t, r.wroteDn, "the stream should be finished on the writing side")
	requireNothingLeft(t, c, before)
}

// Streams served while the node runs are accepted, each once, however many come at once (a
// seed that a cluster joins through: they are accepted in batches through the inbox); a
// stream served once the node stopped is refused and leaves nothing counted, so the node's
// Stop and the test's end find nothing running.
func TestServeConnAcceptsConcurrentStreamsAndRefusesThemOnceStopped(t *testing.T) {
	before := goleak.IgnoreCurrent()
	c := newRunnerCluster(t)
	require.NoError(t, c.Start(context.Background()))

	const streams = 64
	conns := make([]*recordingConn, streams)
	var served sync.WaitGroup
	for i := range conns {
		conns[i] = newRecordingConn()
		served.Go(func() {
			assert.NoError(t, c.ServeConn(context.Background(), conns[i]), "a running node serves the stream")
		})
	}
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.runners) == streams && len(c.core.conns) == streams
	}, 10*time.Second, 10*time.Millisecond, "every one of the %d streams should be accepted, each by a runner of its own", streams)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Stop(ctx), "the node stops, ending the streams it accepted")
	served.Wait()

	late := newRecordingConn()
	err := c.ServeConn(context.Background(), late)
	require.ErrorIs(t, err, ErrNotRunning, "a stopped node refuses the stream")
	requireNothingLeft(t, c, before)
}
