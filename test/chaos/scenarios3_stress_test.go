//go:build chaos && linux

package chaos_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/membership"
)

// Scenarios 9–12: degraded links, a starved node, intruders, a larger cluster.

// durationEnv reads a duration from the environment (the long scenarios can be run at full
// length in a soak: CHAOS_LOSS_DURATION=3m).
func durationEnv(t *testing.T, key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return d
}

// heartbeatAges polls every node's view until stop and returns, per observer, the longest
// silence it showed for a connected peer (now − last heartbeat).
func heartbeatAges(nodes []*node, every time.Duration, stop <-chan struct{}) func() map[*node]time.Duration {
	var mu sync.Mutex
	worst := map[*node]time.Duration{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, n := range nodes {
				infos, err := n.current().all(time.Second)
				if err != nil {
					continue
				}
				now := time.Now()
				for _, info := range infos {
					if info.Status != membership.StatusConnected || info.LastHeartbeat.IsZero() {
						continue
					}
					if age := now.Sub(info.LastHeartbeat); age > worst[n] {
						mu.Lock()
						worst[n] = age
						mu.Unlock()
					}
				}
			}
		}
	}()
	return func() map[*node]time.Duration {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return worst
	}
}

// 9. 1 % and 5 % packet loss plus 50 ms ± 20 ms latency on every link → zero down events.
// The issue asks for 3 minutes each; CI runs 60 s each (CHAOS_LOSS_DURATION=3m for the
// full length).
func TestChaos09LossAndLatency(t *testing.T) {
	dur := durationEnv(t, "CHAOS_LOSS_DURATION", 60*time.Second)
	for _, tc := range []struct {
		id   string
		loss float64
	}{{"09a", 0.01}, {"09b", 0.05}} {
		t.Run(fmt.Sprintf("loss_%g_percent", tc.loss*100), func(t *testing.T) {
			s := newScenario(t, tc.id, fmt.Sprintf("%g %% loss + 50 ms ± 20 ms on every link for %s", tc.loss*100, human(dur)))
			c := newCluster(t, clusterOpts{size: 5})
			c.startAll()
			var ims []*impairment
			t0 := time.Now()
			for _, n := range c.nodes {
				ims = append(ims, impair(t, n, tc.loss, 50*time.Millisecond, 20*time.Millisecond))
				n.logf("test impairs eth0: loss %g, delay 50ms ± 20ms", tc.loss)
			}
			s.note("mechanism: %s", ims[0].mechanism)
			// Check that the delay is really there: TCP connects from n1 to n2 take a round trip.
			mRTT := s.info("TCP connect n1→n2 (one round trip)", "ms")
			for i := 0; i < 5; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				start := time.Now()
				conn, err := dialInNetns(c.nodes[0].ns)(ctx, c.nodes[1].addr())
				cancel()
				if err == nil {
					mRTT.addDuration("n1", "n2", time.Since(start), "")
					_ = conn.Close()
				}
			}
			stop := make(chan struct{})
			ages := heartbeatAges(c.nodes, 500*time.Millisecond, stop)
			time.Sleep(time.Until(t0.Add(dur))) // the prescribed fault duration
			close(stop)
			for _, im := range ims {
				im.remove()
			}
			var pk, dr uint64
			for _, im := range ims {
				st := im.stats()
				pk += st.Packets
				dr += st.Dropped
			}
			if pk > 0 {
				s.note("delayer: %d packets, %d dropped (%.2f %%), mean delay %s", pk, dr, 100*float64(dr)/float64(pk), ims[0].stats().MeanDelay.Round(time.Millisecond))
			}
			mAge := s.info("longest silence of a connected peer", "ms")
			for n, d := range ages() {
				mAge.addDuration(n.name, "", d, "polled every 500 ms")
			}
			countDowns(s.upTo("node_down events", "count", 0, "0"), c.nodes, nil, t0)
			if _, ok, state := c.waitMesh(c.nodes, 10*time.Second); !ok {
				t.Errorf("no full mesh after the impairment:\n%s", state)
			}
			c.checkAlternation()
		})
	}
}

// 10. A node starved of CPU for 60 s → it does not declare healthy peers down (a node that
// is itself late must not blame others), and the others follow the contract.
//
// Two strengths, both with the CFS period at its 1 s maximum and two busy loops sharing the
// node's cgroup: 20 ms of CPU per second (the node runs in short bursts, its own timers and
// its peers' heartbeats reach it up to a second late, below the 3 s threshold), and 5 ms per
// second (stalls pass the threshold, so its peers rightly time it out and close its streams).
// In both, the starved node must never blame a peer with heartbeat_timeout; a down it reports
// is only acceptable as the echo of a peer that cut it off first (connection_closed after that
// peer's own heartbeat_timeout of it).
func TestChaos10CPUStarvation(t *testing.T) {
	dur := durationEnv(t, "CHAOS_STARVE_DURATION", 60*time.Second)
	for _, tc := range []struct {
		id    string
		quota time.Duration
	}{{"10a", 20 * time.Millisecond}, {"10b", 5 * time.Millisecond}} {
		t.Run(fmt.Sprintf("quota_%s_per_s", tc.quota), func(t *testing.T) {
			starve(t, tc.id, tc.quota, time.Second, dur)
		})
	}
}

func starve(t *testing.T, id string, quota, period, dur time.Duration) {
	s := newScenario(t, id, fmt.Sprintf("one node starved of CPU (%s per %s) for %s", human(quota), human(period), human(dur)))
	c := newCluster(t, clusterOpts{size: 5})
	c.startAll()
	victim := c.nodes[4]
	healthy := others(c.nodes, victim)
	cg := newCPUCgroup(t, "starve", quota, period)
	// Two busy loops share the cgroup with the node, so it really competes for the quota.
	burners := startBurners(t, 2)
	for _, b := range burners {
		if err := cg.add(b.Process.Pid); err != nil {
			t.Fatalf("cgroup: %v", err)
		}
	}
	t0 := time.Now()
	if err := cg.add(victim.current().pid()); err != nil {
		t.Fatalf("cgroup: %v", err)
	}
	victim.logf("test starves the node: %s quota %s per %s, shared with 2 busy loops", cg.describe(), quota, period)
	s.note("%s: quota %s per %s, shared with 2 busy loops", cg.describe(), quota, period)

	// Sample how late the starved node answers its API, to show the starvation is real.
	stop := make(chan struct{})
	mLat := s.info("API latency of the starved node", "ms")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			start := time.Now()
			_, err := victim.current().cli.LocalNode(ctx)
			cancel()
			if err == nil {
				mLat.addDuration("test", victim.name, time.Since(start), "")
			}
		}
	}()
	ages := heartbeatAges([]*node{victim}, time.Second, stop)
	time.Sleep(time.Until(t0.Add(dur))) // the prescribed fault duration
	close(stop)
	wg.Wait()
	st := cg.stat()
	if err := cg.limit(0, period); err != nil {
		t.Errorf("lifting the limit: %v", err)
	}
	for _, b := range burners {
		_ = b.Process.Kill()
	}
	t1 := time.Now()
	victim.logf("test lifts the CPU limit")
	s.note("cpu.stat while starved: %d of %d periods throttled, throttled for %s (summed over the CPUs)",
		st["nr_throttled"], st["nr_periods"], time.Duration(st["throttled_time"]+1000*st["throttled_usec"]).Round(time.Millisecond))
	mAge := s.info("longest silence the starved node showed for a peer", "ms")
	for _, d := range ages() {
		mAge.addDuration(victim.name, "", d, "polled every 1 s")
	}

	// Whatever the others made of the starved node must follow the contract: a down is a
	// heartbeat_timeout (it never closed a stream).
	mVictim := s.info("downs of the starved node per healthy observer", "count")
	cuts := map[membership.NodeID][]time.Time{}
	for _, o := range healthy {
		downs := downsBetween([]*node{o}, []*node{victim}, t0)[o]
		mVictim.add(o.name, victim.name, float64(len(downs)), "")
		for _, e := range downs {
			if e.Reason != membership.ReasonHeartbeatTimeout {
				t.Errorf("%s reported the starved node down with %s, want heartbeat_timeout:\n%s", o.name, e.Reason, describe(downs))
			}
			cuts[o.id] = append(cuts[o.id], eventTime(e))
		}
	}
	// The starved node must not blame its healthy peers: each down it reports of a peer must
	// be the echo of that peer cutting it off (connection_closed, and the peer reported the
	// starved node down since the starved node last saw the peer come up).
	mBlame := s.upTo("downs of a peer that had not cut the starved node off", "count", 0, "0")
	mEcho := s.info("downs the starved node reported after a peer cut it off", "count")
	blame, echo := 0, 0
	lastUp := map[membership.NodeID]time.Time{}
	for _, e := range victim.current().events.list(nil) {
		id := e.Node.ID
		switch e.Type {
		case membership.EventNodeUp:
			lastUp[id] = eventTime(e)
			continue
		case membership.EventNodeDown:
		default:
			continue
		}
		if eventTime(e).Before(t0) {
			continue
		}
		cut := false
		for _, c := range cuts[id] {
			if c.After(lastUp[id]) && !c.After(eventTime(e)) {
				cut = true
			}
		}
		if e.Reason == membership.ReasonConnectionClosed && cut {
			echo++
			continue
		}
		blame++
		since := "it was up when the watch began"
		if !lastUp[id].IsZero() {
			since = fmt.Sprintf("it last came up at %s", lastUp[id].Format("15:04:05.000000"))
		}
		s.note("%s reported %s down (%s) at %s (%s); %s's own downs of %s: %s",
			victim.name, e.Node.ID.Name(), e.Reason, eventTime(e).Format("15:04:05.000000"), since,
			e.Node.ID.Name(), victim.name, clock(cuts[id]))
		var peerView string
		for _, o := range healthy {
			if o.id == id {
				peerView = describe(o.current().events.of(victim.id))
			}
		}
		t.Errorf("the starved node reported %s down (%s) at %s (%s): not the echo (connection_closed) of that peer cutting it off.\n  the starved node's events about it:\n%s  that peer's events about the starved node:\n%s",
			id, e.Reason, eventTime(e).Format("15:04:05.000000"), since,
			describe(victim.current().events.of(id)), peerView)
	}
	mBlame.add(victim.name, "", float64(blame), "")
	mEcho.add(victim.name, "", float64(echo), "")
	// Healthy nodes must not have lost each other.
	countDowns(s.upTo("downs among the healthy nodes", "count", 0, "0"), healthy, healthy, t0)
	checkMesh(c, s.upTo("full mesh after the limit is lifted", "ms", 10000, "≤ 10 s"), c.nodes, t1, "after feeding the node")
	c.checkAlternation()
}

// 11. A node with the wrong secret, and one with none, keep knocking for the whole run →
// never listed anywhere; no down events among the good nodes.
func TestChaos11Intruders(t *testing.T) {
	dur := durationEnv(t, "CHAOS_KNOCK_DURATION", 30*time.Second)
	s := newScenario(t, "11", fmt.Sprintf("wrong-secret and no-secret nodes knock for %s", human(dur)))
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(good, []byte("chaos-good-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("chaos-wrong-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{size: 5, flags: func(int) []string { return []string{"--secret-file", good} }})
	c.startAll()
	goodNodes := slices.Clone(c.nodes)
	seeds := strings.Join(ids(goodNodes), ",")
	w := c.addNode("w1", subnet+".101", []string{"--secret-file", wrong, "--seeds", seeds})
	z := c.addNode("z1", subnet+".102", []string{"--seeds", seeds})
	intruders := []*node{w, z}
	t0 := time.Now()
	for _, n := range intruders {
		n.start()
	}
	mList := s.upTo("times an intruder was listed by a good node", "count", 0, "0")
	mSee := s.upTo("good nodes an intruder lists as connected", "count", 0, "0")
	listed := map[*node]int{}
	seen := map[*node]int{}
	deadline := t0.Add(dur)
	for time.Now().Before(deadline) { // polled over the whole knocking period
		for _, g := range goodNodes {
			infos, err := g.current().all(time.Second)
			if err != nil {
				continue
			}
			for _, info := range infos {
				if info.ID == w.id || info.ID == z.id {
					listed[g]++
					g.logf("test: %s lists intruder %s as %s", g.name, info.ID, info.Status)
				}
			}
		}
		for _, in := range intruders {
			if got, err := in.current().connected(time.Second); err == nil && len(got) > seen[in] {
				seen[in] = len(got)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, g := range goodNodes {
		mList.check(g.name, "", float64(listed[g]), "")
	}
	for _, in := range intruders {
		mSee.check(in.name, "", float64(seen[in]), "")
	}
	countDowns(s.upTo("node_down events at the good nodes", "count", 0, "0"), goodNodes, nil, t0)
	// Knocks: the intruders' failed dials (their own logs, debug level) and the rejections
	// the good nodes logged. The knocking must go on over the whole run.
	mKnock := s.info("failed dials logged per intruder", "count")
	last := time.Time{}
	for _, in := range intruders {
		k, l := countLines(in.logText(), `"msg":"dial failed"`)
		mKnock.add(in.name, "", float64(k), "")
		if l.After(last) {
			last = l
		}
	}
	mRej := s.info("rejected handshakes logged per good node", "count")
	for _, g := range goodNodes {
		k, _ := countLines(g.logText(), "peer authentication failed")
		mRej.add(g.name, "", float64(k), "")
	}
	if last.Before(deadline.Add(-10 * time.Second)) {
		t.Errorf("the intruders stopped knocking: their last failed dial was at %s, the run ended at %s", last.Format("15:04:05"), deadline.Format("15:04:05"))
	}
	for _, in := range intruders {
		if !in.current().alive() {
			t.Errorf("intruder %s exited", in.name)
		}
	}
	c.checkAlternation()
}

// countLines counts the log lines containing pattern and returns the time of the last one.
func countLines(log, pattern string) (int, time.Time) {
	n := 0
	var last time.Time
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, pattern) {
			continue
		}
		n++
		if i := strings.Index(line, `"time":"`); i >= 0 {
			if ts, err := time.Parse(time.RFC3339Nano, line[i+8:i+8+strings.Index(line[i+8:], `"`)]); err == nil {
				last = ts
			}
		}
	}
	return n, last
}

// 12. 16-node cluster: formation through one seed, then kill a quarter of the nodes at once
// → survivors converge on the same membership.
func TestChaos12SixteenNodes(t *testing.T) {
	s := newScenario(t, "12", "16 nodes formed through one seed, a quarter killed at once")
	c := newCluster(t, clusterOpts{size: 16, seeds: func(i int, nodes []*node) []*node {
		if i == 0 {
			return nil
		}
		return nodes[:1]
	}})
	c.nodes[0].start()
	// Every other node starts at once, all seeding n1.
	t0 := time.Now()
	launchAll(c.nodes[1:])
	checkMesh(c, s.upTo("formation (15 nodes join through n1 at once)", "ms", 10000, "≤ 10 s to a full mesh"), c.nodes, t0, "formation")
	if t.Failed() {
		t.FailNow()
	}
	c.watchAll(c.nodes)
	c.waitSteady(c.nodes)
	// A quarter, the seed among them.
	victims := []*node{c.nodes[0], c.nodes[5], c.nodes[10], c.nodes[15]}
	survivors := others(c.nodes, victims...)
	t1 := time.Now()
	for _, v := range victims {
		_ = v.current().cmd.Process.Signal(syscall.SIGKILL)
		v.logf("test sends SIGKILL")
	}
	for _, v := range victims {
		v.current().stopW()
	}
	m := s.upTo("detection of each killed node", "ms", 1000, "≤ 1 s, connection_closed")
	for _, v := range victims {
		expectTransition(c, m, membership.EventNodeDown, survivors, v, t1, membership.ReasonConnectionClosed, "")
	}
	checkMesh(c, s.upTo("survivors converge", "ms", 10000, "≤ 10 s to the same membership"), survivors, t1, "after the kill")
	// And they stay converged: no killed node comes back through stale gossip.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // observation window for resurrections
		if ok, state := meshState(survivors); !ok {
			t.Errorf("the survivors' membership changed after converging:\n%s", state)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	countDowns(s.upTo("downs among survivors", "count", 0, "0"), survivors, survivors, t1)
	mUp := s.upTo("killed nodes reported up again", "count", 0, "0")
	for _, o := range survivors {
		n := 0
		for _, v := range victims {
			if _, ok := o.current().events.firstAfter(membership.EventNodeUp, v.id, t1); ok {
				n++
			}
		}
		mUp.check(o.name, "", float64(n), "")
	}
	c.checkAlternation()
}

// clock renders times of day.
func clock(ts []time.Time) string {
	if len(ts) == 0 {
		return "none"
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Format("15:04:05.000")
	}
	return strings.Join(out, ", ")
}
