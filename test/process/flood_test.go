package process_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/meshnode/meshnode/client"
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// The bounds every flood is held to. The API's p99 is measured and logged against the 50 ms
// the threat model states; the test itself allows more, as the two shared cores of a loaded
// CI machine stall every process now and then whatever the node does (apiP99Bound).
const (
	rssBoundKiB     = 64 << 10
	goroutineBound  = 2000
	apiP99Target    = 50 * time.Millisecond
	apiP99Bound     = 250 * time.Millisecond
	floodDuration   = 3 * time.Second
	floodToken      = "flood-api-token-0123456789"
	floodSecret     = "flood-cluster-secret-0123456789"
	fourMiB         = 4 << 20
	reflectionPath  = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	healthWatchPath = "/grpc.health.v1.Health/Watch"
	getNodePath     = "/cluster.v1.MembershipService/GetNode"
	listNodesPath   = "/cluster.v1.MembershipService/ListNodes"
	exchangePath    = "/cluster.v1.PeerService/Exchange"
)

// floodTarget is a node under attack, a peer that watches it for false downs, and the
// instruments reading the node: its RSS, its goroutines, its API latency and its events.
type floodTarget struct {
	node, peer  *proc
	metricsAddr string
	events      []*eventLog
	api         *client.Client
}

// writeSecretFile writes the cluster secret to a file of the test's temporary directory.
func writeSecretFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte(floodSecret+"\n"), 0o600))
	return path
}

// startFloodTarget starts the node under attack (secret, API token, metrics) and a peer.
func startFloodTarget(t *testing.T, extra ...string) *floodTarget {
	t.Helper()
	secret := writeSecretFile(t)
	flags := append([]string{"--secret-file", secret, "--token", floodToken,
		"--heartbeat-interval", "500ms", "--heartbeat-miss-threshold", "3"}, extra...)
	node := startAgent(t, "target", append(flags, "--metrics-addr", "127.0.0.1:0")...)
	node.token = floodToken
	peer := startAgent(t, "peer", append(flags, "--seeds", node.id.String())...)
	peer.token = floodToken
	requireMesh(t, 10*time.Second, node, peer)
	f := &floodTarget{node: node, peer: peer, metricsAddr: metricsAddr(t, node)}
	f.events = []*eventLog{watch(t, node), watch(t, peer)}
	f.api = node.client()
	// The client connects lazily: one call opens its connection now, before any flood. A
	// connection still opening when a flood of new ones comes is the oldest without a
	// stream, and the idle cap closes it first, as it should.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := f.api.Nodes(ctx, true)
	require.NoError(t, err, "the API answers before the flood")
	return f
}

// metricsAddr reads the metrics address p logged at start.
func metricsAddr(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		sc := bufio.NewScanner(strings.NewReader(p.logText()))
		for sc.Scan() {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "serving metrics" {
				addr = rec.Addr
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond, "the node logs its metrics address")
	return addr
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// goroutines scrapes go_goroutines from the node's metrics.
func goroutines(addr string) (int, error) {
	v, err := scrapeMetric(addr, "go_goroutines")
	return int(v), err
}

// scrapeMetric reads one series (its name and labels exactly as exposed) from the metrics
// at addr.
func scrapeMetric(addr, series string) (float64, error) {
	httpClient := http.Client{Timeout: 2 * time.Second}
	resp, err := httpClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(rest, 64)
		}
	}
	return 0, fmt.Errorf("no %s in the metrics of %s", series, addr)
}

// floodReport is what a flood did to the node.
type floodReport struct {
	rssDeltaKiB    int64
	peakGoroutines int
	p99, max       time.Duration
	calls, failed  int
	firstErr       error
}

func (r floodReport) String() string {
	return fmt.Sprintf("RSS +%.1f MiB, peak %d goroutines, API p99 %s (max %s, %d calls, %d failed)",
		float64(r.rssDeltaKiB)/1024, r.peakGoroutines, r.p99.Round(100*time.Microsecond), r.max.Round(100*time.Microsecond), r.calls, r.failed)
}

// flood runs attack for floodDuration (attack must return once stop is closed) while
// measuring the node, then checks the bounds and that no node went down.
func (f *floodTarget) flood(t *testing.T, name string, attack func(stop <-chan struct{})) floodReport {
	t.Helper()
	pid := f.node.cmd.Process.Pid
	// A settled baseline: a few readings after a collection's worth of quiet.
	var base int64
	for range 5 {
		v, err := rssKiB(pid)
		require.NoError(t, err)
		if base == 0 || v < base {
			base = v
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var r floodReport
	var latencies []time.Duration
	// RSS every 20 ms; a node far over the bound ends the flood early, to spare the machine.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			v, err := rssKiB(pid)
			if err != nil {
				continue
			}
			mu.Lock()
			r.rssDeltaKiB = max(r.rssDeltaKiB, v-base)
			mu.Unlock()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if n, err := goroutines(f.metricsAddr); err == nil {
				mu.Lock()
				r.peakGoroutines = max(r.peakGoroutines, n)
				mu.Unlock()
			}
		}
	}()
	// The API, called every 10 ms on a connection opened before the flood.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			start := time.Now()
			_, err := f.api.Nodes(ctx, true)
			elapsed := time.Since(start)
			cancel()
			mu.Lock()
			latencies = append(latencies, elapsed)
			if err != nil {
				r.failed++
				if r.firstErr == nil {
					r.firstErr = err
				}
			}
			mu.Unlock()
		}
	}()
	attacked := make(chan struct{})
	go func() { defer close(attacked); attack(stop) }()
	deadline := time.After(floodDuration)
	func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-deadline:
				return
			case <-tick.C:
				mu.Lock()
				over := r.rssDeltaKiB > 4*rssBoundKiB
				mu.Unlock()
				if over {
					t.Logf("%s: RSS over four times the bound, flood ended early", name)
					return
				}
			}
		}
	}()
	close(stop)
	select {
	case <-attacked:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the attack did not end within 20 s of its stop", name)
	}
	wg.Wait()
	slices.Sort(latencies)
	r.calls = len(latencies)
	if n := len(latencies); n > 0 {
		r.p99 = latencies[min(n-1, n*99/100)]
		r.max = latencies[n-1]
	}
	t.Logf("%s: %s (p99 target %s)", name, r, apiP99Target)
	require.Less(t, r.rssDeltaKiB, int64(rssBoundKiB), "%s: the node's RSS grows by less than 64 MiB", name)
	require.Less(t, r.peakGoroutines, goroutineBound, "%s: the node runs fewer than %d goroutines", name, goroutineBound)
	require.Zero(t, r.failed, "%s: every API call succeeds during the flood (first error: %v)", name, r.firstErr)
	require.Less(t, r.p99, apiP99Bound, "%s: the API answers during the flood", name)
	for _, l := range f.events {
		for _, p := range []*proc{f.node, f.peer} {
			require.Zero(t, l.count(membership.EventNodeDown, p.id), "%s: no false down of %s", name, p.name)
		}
	}
	return r
}

// isDone says whether stop is closed.
func isDone(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// parallel runs n attackers and waits for them.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); fn(i) }()
	}
	wg.Wait()
}

func TestProcessFloodsOfUnauthenticatedClients(t *testing.T) {
	if testing.Short() {
		t.Skip("floods take a while")
	}
	cases := []struct {
		name   string
		attack func(t *testing.T, addr string, stop <-chan struct{})
	}{
		{"50000 reflection streams on one connection", func(t *testing.T, addr string, stop <-chan struct{}) {
			c, err := h2Dial(addr, true)
			if err != nil {
				return
			}
			defer c.close()
			for i := range 50000 {
				if i%1000 == 0 && isDone(stop) {
					break
				}
				if _, err := c.open(reflectionPath, false); err != nil {
					break
				}
			}
			<-stop
		}},
		{"64 reflection streams each sending an unfinished 4 MiB message", func(t *testing.T, addr string, stop <-chan struct{}) {
			c, err := h2Dial(addr, true)
			if err != nil {
				return
			}
			defer c.close()
			parallel(64, func(int) {
				if id, err := c.open(reflectionPath, false); err == nil {
					c.sendUnfinished(id, fourMiB, stop)
				}
			})
			<-stop
		}},
		{"32 unfinished 4 MiB GetNode requests without a token", func(t *testing.T, addr string, stop <-chan struct{}) {
			c, err := h2Dial(addr, true)
			if err != nil {
				return
			}
			defer c.close()
			parallel(32, func(int) {
				if id, err := c.open(getNodePath, false); err == nil {
					c.sendUnfinished(id, fourMiB, stop)
				}
			})
			<-stop
		}},
		{"5000 Health/Watch streams", func(t *testing.T, addr string, stop <-chan struct{}) {
			conns := make([]*h2conn, 50)
			parallel(len(conns), func(i int) {
				c, err := h2Dial(addr, true)
				if err != nil {
					return
				}
				conns[i] = c
				for range 100 {
					if _, err := conns[i].open(healthWatchPath, true); err != nil {
						return
					}
				}
			})
			<-stop
			for _, c := range conns {
				c.close()
			}
		}},
		{"5000 ListNodes streams without a token", func(t *testing.T, addr string, stop <-chan struct{}) {
			conns := make([]*h2conn, 50)
			parallel(len(conns), func(i int) {
				c, err := h2Dial(addr, true)
				if err != nil {
					return
				}
				conns[i] = c
				for range 100 {
					if _, err := conns[i].open(listNodesPath, false); err != nil {
						return
					}
				}
			})
			<-stop
			for _, c := range conns {
				c.close()
			}
		}},
		{"1000 HTTP/2 connections that send the preface and SETTINGS, then nothing", func(t *testing.T, addr string, stop <-chan struct{}) {
			conns := make([]*h2conn, 1000)
			parallel(10, func(i int) {
				for j := i * 100; j < (i+1)*100; j++ {
					conns[j], _ = h2Dial(addr, false)
				}
			})
			<-stop
			for _, c := range conns {
				c.close()
			}
		}},
		{"256 unauthenticated peer streams each sending an unfinished 4 MiB first frame", func(t *testing.T, addr string, stop <-chan struct{}) {
			conns := make([]*h2conn, 64)
			parallel(len(conns), func(i int) {
				c, err := h2Dial(addr, true)
				if err != nil {
					return
				}
				conns[i] = c
				parallel(4, func(int) {
					if id, err := conns[i].open(exchangePath, false); err == nil {
						conns[i].sendUnfinished(id, fourMiB, stop)
					}
				})
			})
			<-stop
			for _, c := range conns {
				c.close()
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := startFloodTarget(t)
			f.flood(t, tc.name, func(stop <-chan struct{}) { tc.attack(t, f.node.addr, stop) })
			// The node still serves after the flood, and nobody went down.
			require.Eventually(t, func() bool { return len(f.node.connected()) == 1 }, 5*time.Second, 50*time.Millisecond)
		})
	}
}

// firstAuthFrame is the first frame of a peer handshake, with a fresh nonce, in its gRPC
// length-prefixed form: anyone can send it, no secret needed.
func firstAuthFrame(t *testing.T) []byte {
	t.Helper()
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	body, err := proto.Marshal(&clusterv1.ExchangeRequest{Auth: &clusterv1.AuthFrame{Version: 1, SecretConfigured: true, Nonce: nonce}})
	require.NoError(t, err)
	msg := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(msg[1:], uint32(len(body)))
	return append(msg, body...)
}

// halfHandshakes keeps n peer streams open from 127.0.0.1, each stalled before the end of the
// handshake (before its first frame, or after the first frame when frame is set), and reopens
// each as soon as it ends (on the same connection, or a new one with fresh), until stop.
// opened counts the streams it opened, full those that ended with RESOURCE_EXHAUSTED (the
// seed's pending handshakes were full).
func halfHandshakes(addr string, n int, frame []byte, fresh bool, opened, full *atomic.Int64, stop <-chan struct{}) {
	parallel(n, func(int) {
		var c *h2conn
		defer func() { c.close() }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if c == nil || c.isClosed() || fresh {
				c.close()
				var err error
				if c, err = h2Dial(addr, true); err != nil {
					c = nil
					select {
					case <-stop:
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
			}
			id, err := c.open(exchangePath, false)
			if err != nil {
				c.close()
				c = nil
				continue
			}
			opened.Add(1)
			if frame != nil {
				_ = c.sendFlowControlled(id, frame, stop)
			}
			for {
				how := c.waitEnded(id, 100*time.Millisecond)
				if how == "8" {
					full.Add(1)
				}
				if how != "" {
					break
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}
	})
}

func TestProcessJoinThroughASeedFloodedWithHalfHandshakes(t *testing.T) {
	if testing.Short() {
		t.Skip("floods take a while")
	}
	for _, tc := range []struct {
		name              string
		firstFrame, fresh bool
	}{
		{"stalled before the first frame", false, false},
		{"stalled after the first frame", true, false},
		{"stalled after the first frame, a new connection each time", true, true},
	} {
		name := tc.name
		t.Run(name, func(t *testing.T) {
			secret := writeSecretFile(t)
			flags := []string{"--secret-file", secret, "--heartbeat-interval", "500ms", "--heartbeat-miss-threshold", "3"}
			seed := startAgent(t, "seed", append(flags, "--metrics-addr", "127.0.0.1:0")...)
			seedMetrics := metricsAddr(t, seed)
			stop := make(chan struct{})
			attacked := make(chan struct{})
			var opened, full atomic.Int64
			var frame []byte
			if tc.firstFrame {
				frame = firstAuthFrame(t)
			}
			go func() { defer close(attacked); halfHandshakes(seed.addr, 300, frame, tc.fresh, &opened, &full, stop) }()
			defer func() {
				close(stop)
				<-attacked
				t.Logf("%s: %d attacking streams opened", name, opened.Load())
			}()
			// The attack has all its streams open and the seed's pending handshakes full
			// before the node comes: an attacking stream was refused for it, or the seed
			// counts the limit's hits (on a busy machine, with a new connection for each
			// stream, the seed may close the attacker's connections before it answers any).
			pendingFull := func() bool {
				if full.Load() > 0 {
					return true
				}
				hits, err := scrapeMetric(seedMetrics, `meshnode_limit_hits_total{limit="pending_handshakes"}`)
				return err == nil && hits > 0
			}
			require.Eventually(t, func() bool { return opened.Load() >= 300 && pendingFull() }, 10*time.Second, 10*time.Millisecond,
				"the attack should open 300 streams and fill the seed's pending handshakes")
			start := time.Now()
			joiner := startAgent(t, "joiner", append(flags, "--seeds", seed.id.String())...)
			require.Eventually(t, func() bool {
				return slices.Contains(seed.connected(), joiner.id.String()) && slices.Contains(joiner.connected(), seed.id.String())
			}, 10*time.Second, 10*time.Millisecond, "the joiner gets through the flooded seed")
			joined := time.Since(start)
			t.Logf("%s: joined through the flooded seed in %s (process start included)", name, joined)
			require.Less(t, joined, 2*time.Second, "a real node joins through the flooded seed within 2 s")
		})
	}
}
