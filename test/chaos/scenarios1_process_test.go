//go:build chaos && linux

package chaos_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// Scenarios 1–3, 7, 8: faults of the process (signals and restarts).
// Heartbeat 1 s × 3 and five nodes unless stated.

// 1. SIGKILL one node → every other reports connection_closed within 1 s.
func TestChaos01SIGKILL(t *testing.T) {
	s := newScenario(t, "01", "SIGKILL one node")
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	victim := c.nodes[4]
	m := s.upTo("detection", "ms", 1000, "≤ 1 s, connection_closed")
	a := victim.current()
	t0 := a.signal(syscall.SIGKILL)
	a.stopW()
	expectTransition(c, m, membership.EventNodeDown, others(c.nodes, victim), victim, t0, membership.ReasonConnectionClosed, "")
	c.checkAlternation()
}

// 2. SIGSTOP one node → every other reports heartbeat_timeout within interval × threshold
// + 1 interval; SIGCONT → node_up everywhere, no restart needed.
func TestChaos02SIGSTOP(t *testing.T) {
	s := newScenario(t, "02", "SIGSTOP, then SIGCONT")
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	victim := c.nodes[4]
	peers := others(c.nodes, victim)
	bound := time.Duration(c.threshold+1) * c.interval
	floor := time.Duration(c.threshold-1) * c.interval
	m := s.upTo("detection", "ms", ms(bound), fmt.Sprintf("≤ %s (interval × threshold + interval), heartbeat_timeout", human(bound)))
	incarnation := c.nodes[0].current().events.snapshotOf(victim.id).Incarnation

	a := victim.current()
	t0 := a.signal(syscall.SIGSTOP)
	got := expectTransition(c, m, membership.EventNodeDown, peers, victim, t0, membership.ReasonHeartbeatTimeout, "")
	for o, e := range got {
		// The victim's last heartbeat left at most one interval before the stop, so a
		// timeout earlier than (threshold − 1) intervals after it is a false positive.
		if d := eventTime(e).Sub(t0); d < floor {
			t.Errorf("%s declared %s down %s after SIGSTOP: before interval × threshold of silence was possible", o.name, victim.name, d)
		}
	}

	mUp := s.upTo("up after SIGCONT", "ms", 10000, "≤ 10 s, same incarnation")
	t1 := a.signal(syscall.SIGCONT)
	ups := expectTransition(c, mUp, membership.EventNodeUp, peers, victim, t1, 0, "")
	for o, e := range ups {
		if e.Node.Incarnation != incarnation {
			t.Errorf("%s saw %s come back with incarnation %d, want the original %d (no restart happened)", o.name, victim.name, e.Node.Incarnation, incarnation)
		}
	}
	mMesh := s.upTo("full mesh after SIGCONT", "ms", 10000, "≤ 10 s")
	checkMesh(c, mMesh, c.nodes, t1, "after SIGCONT")
	// What the paused node itself made of it, for the record.
	for _, e := range a.events.list(func(e seenEvent) bool { return !eventTime(e).Before(t0) && e.Type == membership.EventNodeDown }) {
		s.note("paused node reported %s down (%s) %s after SIGSTOP", e.Node.ID.Name(), e.Reason, eventTime(e).Sub(t0).Round(time.Millisecond))
	}
	c.checkAlternation()
}

// 3. SIGTERM → graceful_shutdown everywhere within 1 s; never redialled.
func TestChaos03SIGTERM(t *testing.T) {
	s := newScenario(t, "03", "SIGTERM (graceful leave)")
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	victim := c.nodes[4]
	peers := others(c.nodes, victim)
	m := s.upTo("detection", "ms", 1000, "≤ 1 s, graceful_shutdown")
	a := victim.current()
	t0 := a.signal(syscall.SIGTERM)
	if code := a.waitExit(15 * time.Second); code != 0 {
		t.Errorf("node agent exited %d after SIGTERM, want 0", code)
	}
	a.stopW()
	expectTransition(c, m, membership.EventNodeDown, peers, victim, t0, membership.ReasonGracefulShutdown, "")

	// Never redialled: listen on the departed node's address and count connection attempts
	// over an observation window covering several redial backoff periods (200 ms doubling
	// to the 5 s cap would have dialled at least 4 times by then).
	window := 8 * time.Second
	l, err := listenInNetns(victim.ns, victim.addr())
	if err != nil {
		t.Fatalf("listen on %s: %v", victim.addr(), err)
	}
	var dials atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			victim.logf("test listener: connection from %s", conn.RemoteAddr())
			_ = conn.Close()
		}
	}()
	time.Sleep(window) // observation window: the scenario's "never"
	_ = l.Close()
	wg.Wait()
	mDial := s.upTo("redials of the departed node", "count", 0, fmt.Sprintf("0 in %s", human(window)))
	mDial.check("all", victim.name, float64(dials.Load()), "TCP connections to its address")
	mCount := s.upTo("node_down per observer", "count", 1, "exactly 1")
	for _, o := range peers {
		n := len(o.current().events.downs(t0))
		mCount.check(o.name, victim.name, float64(n), "")
		if n != 1 {
			t.Errorf("%s reported %d downs of %s:\n%s", o.name, n, victim.name, describe(o.current().events.of(victim.id)))
		}
		all, err := o.current().all(2 * time.Second)
		if err != nil {
			t.Errorf("list nodes of %s: %v", o.name, err)
			continue
		}
		for _, info := range all {
			if info.ID == victim.id && info.Status != membership.StatusDisconnected {
				t.Errorf("%s lists the departed %s as %s", o.name, victim.name, info.Status)
			}
		}
	}
	c.checkAlternation()
}

// 7. Restart with the same id and port after SIGKILL → old incarnation down, new one up
// everywhere within 2 s.
func TestChaos07RestartSameID(t *testing.T) {
	s := newScenario(t, "07", "SIGKILL, restart with the same id and port")
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	victim := c.nodes[4]
	peers := others(c.nodes, victim)
	oldInc := c.nodes[0].current().events.snapshotOf(victim.id).Incarnation
	old := victim.current()
	t0 := old.signal(syscall.SIGKILL)
	old.stopW()
	old.waitExit(5 * time.Second)
	// Restart at once: the peers may not even have noticed the old one is gone.
	tr := time.Now()
	nu := victim.start()
	mDown := s.upTo("old incarnation down", "ms", 2000, "≤ 2 s after the kill")
	mUp := s.upTo("new incarnation up", "ms", 2000, "≤ 2 s after the restart (exec)")
	downs := expectTransition(c, mDown, membership.EventNodeDown, peers, victim, t0, 0, "")
	ups := expectTransition(c, mUp, membership.EventNodeUp, peers, victim, tr, 0, "")
	for _, o := range peers {
		d, okd := downs[o]
		u, oku := ups[o]
		if okd && d.Node.Incarnation != 0 && d.Node.Incarnation != oldInc {
			t.Errorf("%s: down of incarnation %d, want the old %d", o.name, d.Node.Incarnation, oldInc)
		}
		if oku && u.Node.Incarnation <= oldInc {
			t.Errorf("%s: up of incarnation %d, want newer than %d", o.name, u.Node.Incarnation, oldInc)
		}
		if okd && oku && d.Sequence > u.Sequence {
			t.Errorf("%s: the new incarnation came up before the old one went down:\n%s", o.name, describe(o.current().events.of(victim.id)))
		}
	}
	s.note("restarted process logged its start %s after exec", nu.ready.Sub(tr).Round(time.Millisecond))
	checkMesh(c, s.upTo("full mesh", "ms", 2000, "≤ 2 s after the restart"), c.nodes, tr, "after the restart")
	c.checkAlternation()
}

// 8. Rolling restart of every node, one at a time (SIGTERM, then start again) → full mesh
// after each step; no node ever sees a node down that was not restarted.
func TestChaos08RollingRestart(t *testing.T) {
	s := newScenario(t, "08", "rolling restart (SIGTERM + start, one node at a time)")
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	mMesh := s.upTo("full mesh after a step", "ms", 10000, "≤ 10 s after the restart")
	mDown := s.upTo("graceful_shutdown seen", "ms", 1000, "≤ 1 s")
	type window struct {
		subject  *node
		from, to time.Time
	}
	var windows []window
	for _, n := range c.nodes {
		peers := others(c.nodes, n)
		old := n.current()
		from := time.Now()
		t0 := old.signal(syscall.SIGTERM)
		if code := old.waitExit(15 * time.Second); code != 0 {
			t.Errorf("%s exited %d after SIGTERM", n.name, code)
		}
		old.stopW()
		expectTransition(c, mDown, membership.EventNodeDown, peers, n, t0, membership.ReasonGracefulShutdown, "")
		tr := time.Now()
		nu := n.start()
		nu.watch()
		checkMesh(c, mMesh, c.nodes, tr, "after restarting "+n.name)
		windows = append(windows, window{subject: n, from: from, to: time.Now()})
	}
	// Every down anyone reported must be of the node restarted at that time.
	for _, o := range c.nodes {
		o.mu.Lock()
		procs := append([]*agent(nil), o.procs...)
		o.mu.Unlock()
		for _, a := range procs {
			if a.events == nil {
				continue
			}
			for _, e := range a.events.downs(time.Time{}) {
				ok := false
				for _, w := range windows {
					if w.subject.id == e.Node.ID && !eventTime(e).Before(w.from) && !eventTime(e).After(w.to) {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s (pid %d) saw %s down (%s) at %s while it was not being restarted",
						o.name, a.pid(), e.Node.ID, e.Reason, eventTime(e).Format("15:04:05.000"))
				}
			}
		}
	}
	c.checkAlternation()
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// snapshotOf returns the node's entry in the watch's first snapshot.
func (l *eventLog) snapshotOf(id membership.NodeID) membership.NodeInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.snapshot.Nodes {
		if n.ID == id {
			return n
		}
	}
	return membership.NodeInfo{}
}
