package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNodeNotFound is returned by Node for an id the local node does not know.
var ErrNodeNotFound = errors.New("node not found")

// recentEventsKept is how many events RecentEvents remembers.
const recentEventsKept = 64

// Cluster is one node's membership runtime: it runs the core state machine, its timers, its
// dials and its streams, and publishes events. Many Clusters can live in one process.
// Applications get one over gRPC with server.Start; New runs one over any Transport. All
// methods are safe for concurrent use.
type Cluster struct {
	id        NodeID
	transport Transport
	clock     Clock
	logger    *slog.Logger
	bus       eventBus
	in        inbox        // what the streams read, on its way to the core (runner_inbox.go)
	known     atomic.Int64 // nodes in the view after the last step (KnownNodeCount)

	mu        sync.Mutex
	cfg       *Config
	rng       *rand.Rand
	status    ClusterStatus
	core      *core
	runners   map[connID]*connRunner   // the driver of each stream of core, by the core's id for it
	closingMu sync.Mutex               // guards closing and each runner's ended; taken after mu
	closing   map[*connRunner]struct{} // closed gracefully, still flushing or waiting for the peer
	live      sync.WaitGroup
	timer     Timer
	timerAt   time.Time
	timerGen  uint64 // counts arms and stops: a callback of an older timer finds it changed
	// waitingSet is the set tickLocked hands the core, kept from one tick to the next.
	waitingSet map[connID]struct{}
	lastInc    uint64
	seq        uint64
	recent     eventRing
	startedAt  time.Time
	runCtx     context.Context
	cancelRun  context.CancelFunc
	starting   map[connID]bool
	started    chan struct{}
	metrics    MetricsSink

	// DNS seeds (cluster_dns.go): the resolver, the lookups of the current run (cancelled by
	// Stop) and their pacing.
	resolver  Resolver
	dnsCtx    context.Context
	dnsCancel context.CancelFunc
	dnsTimer  Timer
	dnsDelay  time.Duration
	dnsLast   string
	dnsRounds sync.WaitGroup
}

// Option customises a Cluster made with New. A node started with server.Start gets these
// from the server's options (server.WithLogger, WithClock, WithRandSeed, WithResolver,
// WithMetricsSink): an application sets a Config and server options, nothing else.
type Option func(*Cluster)

// WithClock sets the clock (default: the system clock). Tests pass a fake one.
func WithClock(clock Clock) Option { return func(c *Cluster) { c.clock = clock } }

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(logger *slog.Logger) Option { return func(c *Cluster) { c.logger = logger } }

// WithRandSeed makes the jitter of heartbeats and backoffs reproducible.
func WithRandSeed(seed uint64) Option {
	return func(c *Cluster) { c.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// New returns a stopped Cluster for the local node id, which must carry cfg.Name. The
// configuration is validated and copied.
func New(id NodeID, cfg *Config, transport Transport, opts ...Option) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if id.IsZero() || id.Name() != cfg.Name {
		return nil, fmt.Errorf("local node id %q does not carry the configured name %q", id, cfg.Name)
	}
	c := &Cluster{
		id:        id,
		transport: transport,
		clock:     SystemClock{},
		logger:    slog.Default(),
		cfg:       cfg.Clone(),
		runners:   map[connID]*connRunner{},
		closing:   map[*connRunner]struct{}{},
		recent:    eventRing{size: recentEventsKept},
	}
	for _, opt := range opts {
		opt(c)
	}
	if c.metrics == nil {
		c.metrics = noMetrics{}
	}
	if c.rng == nil {
		c.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if c.resolver == nil {
		c.resolver = newResolver(c.cfg)
	}
	c.logger = c.logger.With("node", id.String())
	return c, nil
}

// Start joins the cluster: it looks up the DNS seeds (within DialTimeout), dials the seeds
// and returns once each seed has answered or failed (at most DialTimeout more, or when ctx
// ends). A node whose seeds are all unreachable
// still runs and keeps redialling them. A stopped node can be started again; each start is
// a new incarnation.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.status != ClusterStopped {
		status := c.status
		c.mu.Unlock()
		return fmt.Errorf("start %s: node is %s", c.id, status)
	}
	var resolved []seedResolution
	if hasDNSSeeds(c.cfg) {
		// DNS seeds are looked up before the first dials (without the lock: it is I/O).
		c.mu.Unlock()
		lookupCtx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
		resolved = c.resolveSeeds(lookupCtx)
		cancel()
		c.mu.Lock()
		if c.status != ClusterStopped {
			status := c.status
			c.mu.Unlock()
			return fmt.Errorf("start %s: node is %s", c.id, status)
		}
	}
	now := c.clock.Now()
	c.lastInc = max(uint64(now.UnixNano()), c.lastInc+1)
	c.startedAt = now
	c.runCtx, c.cancelRun = context.WithCancel(context.Background())
	c.core = newCore(c.id, c.lastInc, c.cfg, now, c.rng, c.metrics)
	c.starting = map[connID]bool{}
	started := make(chan struct{})
	c.started = started
	c.setStatusLocked(ClusterStarting)
	c.stepLocked(func(now time.Time) {
		c.core.start(now)
		if resolved != nil {
			c.core.seedsResolved(now, resolved)
		}
	})
	c.startDNSLocked(resolved)
	c.mu.Unlock()

	wait, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	select {
	case <-started:
	case <-wait.Done():
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == ClusterStarting {
		c.starting = nil
		c.setStatusLocked(ClusterRunning)
	}
	return nil
}

// Stop leaves the cluster gracefully: status stopping, a leave notice to every peer, streams
// closed, timers stopped, status stopped. Peers report exactly one node_down with reason
// graceful_shutdown. When ctx ends first, the remaining streams are cut.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.status != ClusterRunning && c.status != ClusterStarting {
		c.mu.Unlock()
		return fmt.Errorf("stop %s: %w", c.id, ErrNotRunning)
	}
	c.setStatusLocked(ClusterStopping)
	c.stepLocked(func(now time.Time) { c.core.leave(now) })
	c.stopTimerLocked()
	c.stopDNSLocked()
	c.mu.Unlock()
	c.dnsRounds.Wait()

	drained := make(chan struct{})
	go func() { c.live.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		c.mu.Lock()
		c.abortAllLocked()
		c.mu.Unlock()
		<-drained
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancelRun()
	c.stopTimerLocked()
	c.core = nil
	c.runners = map[connID]*connRunner{}
	c.setStatusLocked(ClusterStopped)
	return nil
}

// ServeConn runs an inbound stream accepted by the transport until it ends. It returns
// ErrNotRunning at once if the node is not running.
//
// The stream is accepted through the node's inbox, as its messages are handed over: a seed
// that hundreds of nodes dial at once accepts their streams in batches, under one hold of its
// lock each, rather than passing the lock from one accepting goroutine to the next.
func (c *Cluster) ServeConn(ctx context.Context, conn Conn) error {
	r := newRunner(c)
	if c.admit(r); r.core == nil {
		return fmt.Errorf("serve stream on %s: %w", c.id, ErrNotRunning)
	}
	r.attach(conn) // what the core queued or closed meanwhile goes ahead now
	stop := context.AfterFunc(ctx, conn.Close)
	defer stop()
	r.run()
	<-r.wroteDn
	return nil
}

// stepLocked runs one core input at the current time and carries out its effects.
func (c *Cluster) stepLocked(input func(now time.Time)) {
	now := c.clock.Now()
	input(now)
	outs := c.core.takeOutputs()
	c.applyLocked(outs)
	c.core.recycleOutputs(outs)
	c.checkStartedLocked()
	c.armTimerLocked(now)
	c.known.Store(int64(c.core.members.len()))
}

// applyLocked carries out the core's effects; none of them blocks.
func (c *Cluster) applyLocked(outs []output) {
	var events []Event // handed to the bus, which shares it with every subscriber
	if n := countEvents(outs); n > 0 {
		events = make([]Event, 0, n)
	}
	for _, o := range outs {
		switch o.kind {
		case outSend:
			if r := c.runners[o.conn]; r != nil {
				r.enqueue(o.msg)
			}
		case outClose:
			if r := c.runners[o.conn]; r != nil {
				c.forgetRunnerLocked(r)
				if o.flush {
					c.closingMu.Lock()
					if !r.ended {
						c.closing[r] = struct{}{} // until it ends (connRunner.end), for abortAllLocked
					}
					c.closingMu.Unlock()
				}
				r.close(o.flush)
			}
		case outDial:
			c.dialLocked(o.conn, o.addr)
		case outEvent:
			events = append(events, c.numberLocked(*o.event))
		case outLog:
			c.logger.Log(context.Background(), o.level, o.text, o.attrs...)
		}
	}
	c.bus.publish(events)
}

// countEvents counts the events among outs.
func countEvents(outs []output) int {
	n := 0
	for _, o := range outs {
		if o.kind == outEvent {
			n++
		}
	}
	return n
}

// publishLocked numbers an event, remembers it and hands it to the subscribers.
func (c *Cluster) publishLocked(e Event) { c.bus.publish([]Event{c.numberLocked(e)}) }

// numberLocked numbers an event, remembers it among the recent ones and logs it; it returns
// the numbered event, for the subscribers.
func (c *Cluster) numberLocked(e Event) Event {
	c.seq++
	e.Sequence = c.seq
	c.recent.add(e)
	switch e.Type {
	case EventNodeUp:
		c.logger.Debug("node up", "peer", e.Node.ID.String(), "incarnation", e.Node.Incarnation)
	case EventNodeDown:
		c.logger.Debug("node down", "peer", e.Node.ID.String(), "reason", e.Reason.String())
	}
	return e
}

// setStatusLocked changes the local status and publishes the change.
func (c *Cluster) setStatusLocked(status ClusterStatus) {
	prev := c.status
	c.status = status
	c.publishLocked(Event{Type: EventStatusChange, Time: c.clock.Now(), Previous: prev, Current: status})
}

// checkStartedLocked ends Start's wait once every initial dial has settled.
func (c *Cluster) checkStartedLocked() {
	if c.starting == nil || c.started == nil {
		return
	}
	for id := range c.starting {
		if !c.core.handshaking(id) {
			delete(c.starting, id)
		}
	}
	if len(c.starting) == 0 {
		close(c.started)
		c.started = nil
	}
}

// armTimerLocked makes sure the timer fires at the core's next wake-up.
func (c *Cluster) armTimerLocked(now time.Time) {
	if c.core == nil {
		return
	}
	at := c.core.nextWake(now)
	if at.IsZero() || (c.timer != nil && !at.Before(c.timerAt)) {
		return
	}
	c.stopTimerLocked()
	c.timerAt = at
	c.timerGen++
	core, gen := c.core, c.timerGen
	c.timer = c.clock.AfterFunc(max(at.Sub(c.clock.Now()), 0), func() { c.onTimer(core, gen) })
}

// stopTimerLocked cancels the pending wake-up. A callback that fired already and waits for
// the lock finds the timer changed and does nothing.
func (c *Cluster) stopTimerLocked() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
		c.timerAt = time.Time{}
		c.timerGen++
	}
}

// onTimer runs the core's tick, unless the timer it was armed by was stopped or replaced
// meanwhile (a batch of the inbox ran the tick first: tickOverdueLocked).
func (c *Cluster) onTimer(core *core, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.core != core || c.status == ClusterStopping || gen != c.timerGen {
		return
	}
	c.tickLocked(nil)
}

// tickOverdueLocked runs the core's tick at once if its wake-up is overdue by a fiftieth of
// an interval. The inbox calls it between the messages of a batch: a node whose batches are
// long (a seed while hundreds of nodes join through it) holds its lock for all of a batch,
// and on a busy machine a batch is descheduled many times before it ends; the timer's
// goroutine, waiting for the lock (or for a core to run on), would send this node's
// heartbeats only after the batch, seconds late, and its observers would time it out. A
// wake-up less overdue is left to the timer: a seed with a thousand handshakes under way has
// one every few milliseconds, and a tick between every two messages would slow its batches.
func (c *Cluster) tickOverdueLocked(rest []inboxItem) {
	if c.timer == nil || c.core == nil || c.status == ClusterStopping ||
		c.clock.Now().Sub(c.timerAt) < c.cfg.HeartbeatInterval/50 {
		return
	}
	c.tickLocked(rest)
}

// tickLocked stops the timer and runs the core's tick. The core learns which streams have a
// message waiting in the inbox, read but not handled yet (rest: what remains of the batch
// being handled, if any): on a busy node a message may wait there longer than a timeout, and
// its stream must not be taken for silent meanwhile.
func (c *Cluster) tickLocked(rest []inboxItem) {
	c.stopTimerLocked()
	waiting := c.waitingLocked(rest)
	c.stepLocked(func(now time.Time) { c.core.tickWaiting(now, waiting) })
	clear(waiting)
}

// waitingLocked returns the set of the core's streams with a message in rest or in the
// inbox (reused from one tick to the next).
func (c *Cluster) waitingLocked(rest []inboxItem) map[connID]struct{} {
	if c.waitingSet == nil {
		c.waitingSet = map[connID]struct{}{}
	}
	add := func(items []inboxItem) {
		for i := range items {
			if it := &items[i]; it.msg != nil && it.r.core == c.core {
				c.waitingSet[it.r.id] = struct{}{}
			}
		}
	}
	add(rest)
	c.in.mu.Lock()
	add(c.in.items)
	c.in.mu.Unlock()
	return c.waitingSet
}
