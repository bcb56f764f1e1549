package process_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n free loopback ports, all different: each is held until all are picked
// (a port picked and let go is free again, and the next pick may return it).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// command is a client command running in the background.
type command struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	exited         chan struct{}
}

// startCommand runs the binary with args in the background; it is killed when the test ends.
func startCommand(t *testing.T, args ...string) *command {
	t.Helper()
	c := &command{exited: make(chan struct{})}
	c.cmd = exec.Command(nodeBinary, args...)
	c.cmd.Env = cleanEnv()
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	require.NoError(t, c.cmd.Start())
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
		if t.Failed() {
			t.Logf("node %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), c.stdout.String(), c.stderr.String())
		}
	})
	return c
}

// exitCode waits for the command to exit and returns its code.
func (c *command) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		t.Fatalf("the command did not exit within %s\nstdout:\n%s\nstderr:\n%s", timeout, c.stdout.String(), c.stderr.String())
	}
	return c.cmd.ProcessState.ExitCode()
}

// logRecords returns p's JSON log records with message msg.
func (p *proc) logRecords(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range splitLines(p.logText()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// dialsTotal reads meshnode_dials_total from the metrics at addr (0 if unreadable).
func dialsTotal(addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "meshnode_dials_total "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return 0
}

// A seed that never answers is visible: a warning at info level naming the seed and the
// error (not one per dial), and a health report that is critical, says no seed is reachable
// and is not 100 % available.
func TestProcessUnreachableSeedIsWarnedAboutAndMakesHealthCritical(t *testing.T) {
	picked := freePorts(t, 2)
	seed := fmt.Sprintf("127.0.0.1:%d", picked[0])
	metrics := fmt.Sprintf("127.0.0.1:%d", picked[1])
	a := startAgent(t, "a", "--seeds", seed, "--log-level", "info", "--metrics-addr", metrics)
	require.Eventually(t, func() bool { return len(a.logRecords("seed unreachable; retrying with backoff")) > 0 },
		10*time.Second, 50*time.Millisecond, "a warning about the seed should be logged")
	rec := a.logRecords("seed unreachable; retrying with backoff")[0]
	require.Equal(t, "WARN", rec["level"])
	require.Equal(t, seed, rec["seed"])
	require.Contains(t, rec["err"], "connection refused")

	out, code := runNode(t, "health", "--addr", a.addr)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "CRITICAL")
	require.Contains(t, out, "no seed is reachable: "+seed)
	require.Contains(t, out, "(0.0% available)")
	require.NotContains(t, out, "100.0%")
	require.Contains(t, out, "seeds:        0 of 1 reachable")

	// Redialled meanwhile (backoff 200 ms doubling up to 5 s), but warned about once: the next
	// warning is due a minute after the first.
	require.Eventually(t, func() bool { return dialsTotal(metrics) >= 4 }, 15*time.Second, 100*time.Millisecond,
		"the seed should be redialled a few times")
	require.Len(t, a.logRecords("seed unreachable; retrying with backoff"), 1)
	require.Empty(t, a.logRecords("seed still unreachable; retrying with backoff"))

	// A node appears at the seed's address: a reaches it, says so once, and is healthy.
	var port string
	_, port, _ = strings.Cut(seed, ":")
	b := startAgent(t, "b", "--port", port)
	requireMesh(t, 15*time.Second, a, b)
	require.Eventually(t, func() bool { return len(a.logRecords("seed reachable again")) == 1 }, 5*time.Second, 50*time.Millisecond)
	out, code = runNode(t, "health", "--addr", a.addr)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "HEALTHY")
	require.Contains(t, out, "seeds:        1 of 1 reachable")
}

// `node watch` notices that the node it watches stopped: it says so and exits 1.
func TestProcessWatchSaysWhenTheNodeStopsAndExits1(t *testing.T) {
	a := startAgent(t, "a")
	w := startCommand(t, "watch", "--addr", a.addr)
	require.Eventually(t, func() bool { return strings.Contains(w.stdout.String(), "snapshot") }, 10*time.Second, 20*time.Millisecond)
	a.signal(syscall.SIGTERM)
	require.Equal(t, 0, a.waitExit(15*time.Second))
	require.Equal(t, 1, w.exitCode(t, 15*time.Second), "watch should end with the node")
	require.Contains(t, w.stderr.String(), "node watch: the stream ended: the node at "+a.addr+" stopped or cannot be reached")
	require.Contains(t, w.stderr.String(), "node "+a.id.String()+" stopped")
	require.Len(t, splitLines(w.stderr.String()), 1, "one line: %q", w.stderr.String())
}

// With --follow, `node watch` says when the stream is lost, when it resumes, and that the
// node restarted and its sequence numbers started over.
func TestProcessWatchFollowSaysWhenItResumesAndThatSequencesRestarted(t *testing.T) {
	port := fmt.Sprint(freePort(t))
	a := startAgent(t, "a", "--port", port)
	w := startCommand(t, "watch", "--follow", "--addr", a.addr)
	require.Eventually(t, func() bool { return strings.Contains(w.stdout.String(), "snapshot") }, 10*time.Second, 20*time.Millisecond)
	a.signal(syscall.SIGTERM)
	require.Equal(t, 0, a.waitExit(15*time.Second))
	require.Eventually(t, func() bool { return strings.Contains(w.stderr.String(), "resuming when it answers again") },
		10*time.Second, 20*time.Millisecond, "the lost stream is said")
	require.Contains(t, w.stderr.String(), "stopped or cannot be reached")

	startAgent(t, "a", "--port", port)
	require.Eventually(t, func() bool { return strings.Contains(w.stderr.String(), "resumed watching") }, 20*time.Second, 50*time.Millisecond,
		"the resumption is said")
	require.Contains(t, w.stderr.String(), "the node restarted meanwhile")
	require.Contains(t, w.stderr.String(), "its sequence numbers restarted")
	select {
	case <-w.exited:
		t.Fatalf("watch --follow exited")
	default:
	}
}
