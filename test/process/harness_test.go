// Package process_test runs real `node agent` processes on loopback and checks what users
// see through the public API.
package process_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/membership"
)

// nodeBinary is the `node` binary built once for the package.
var nodeBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "node-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nodeBinary = filepath.Join(dir, "node")
	build := exec.Command("go", "build", "-o", nodeBinary, "github.com/meshnode/meshnode/cmd/node")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building node:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running `node agent`.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	id     membership.NodeID
	addr   string
	mu     sync.Mutex
	log    strings.Builder
	exited chan struct{}
	err    error
	// token, when set, is sent as the API token by client.
	token string
}

// startAgent starts `node agent` with the given flags on a free loopback port and waits
// until it has logged its id. The process is killed when the test ends.
func startAgent(t *testing.T, name string, flags ...string) *proc {
	t.Helper()
	args := append([]string{"agent", "--name", name, "--host", "127.0.0.1", "--port", "0", "--log-format", "json"}, flags...)
	cmd := exec.Command(nodeBinary, args...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "start node %s", name)
	p := &proc{t: t, name: name, cmd: cmd, exited: make(chan struct{})}
	started := make(chan struct{})
	go p.scan(stderr, started)
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, p.logText())
		}
	})
	select {
	case <-started:
	case <-p.exited:
		t.Fatalf("node %s exited at start: %v\n%s", name, p.err, p.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("node %s did not start within 20s\n%s", name, p.logText())
	}
	return p
}

// scan keeps the log and picks the id and address from the "node started" line.
func (p *proc) scan(r io.Reader, started chan struct{}) {
	sc := bufio.NewScanner(r)
	once := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.log.WriteString(line + "\n")
		p.mu.Unlock()
		var rec struct {
			Msg    string `json:"msg"`
			ID     string `json:"id"`
			Listen string `json:"listen"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "node started" {
			once.Do(func() {
				p.id = membership.MustParseNodeID(rec.ID)
				p.addr = rec.Listen
				close(started)
			})
		}
	}
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig), "signal %s to %s", sig, p.name)
}

// waitExit waits for the process to exit and returns its exit code.
func (p *proc) waitExit(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("node %s did not exit within %s", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// client returns an API client of the process.
func (p *proc) client() *client.Client {
	p.t.Helper()
	var opts []client.Option
	if p.token != "" {
		opts = append(opts, client.WithToken(p.token))
	}
	c, err := client.Dial(p.addr, opts...)
	require.NoError(p.t, err)
	p.t.Cleanup(func() { _ = c.Close() })
	return c
}

// connected lists the ids p sees connected.
func (p *proc) connected() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nodes, err := p.client().Nodes(ctx, true)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID.String())
	}
	return out
}

// requireMesh waits until every process sees every other one connected.
func requireMesh(t *testing.T, timeout time.Duration, procs ...*proc) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, p := range procs {
			if len(p.connected()) != len(procs)-1 {
				return false
			}
		}
		return true
	}, timeout, 50*time.Millisecond, "every node should see the other %d connected", len(procs)-1)
}

// eventLog follows a process's events through WatchEvents.
type eventLog struct {
	mu     sync.Mutex
	events []client.Event
}

// watch follows p's events until the test ends; it returns once the watch is registered.
func watch(t *testing.T, p *proc) *eventLog {
	t.Helper()
	l := &eventLog{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		_ = p.client().Watch(ctx, func(e client.Event) {
			once.Do(func() { close(ready) })
			l.mu.Lock()
			l.events = append(l.events, e)
			l.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("watch of %s did not start", p.name)
	}
	return l
}

// down returns the first node_down for id, and whether there is one.
func (l *eventLog) down(id membership.NodeID) (client.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Type == membership.EventNodeDown && e.Node.ID == id {
			return e, true
		}
	}
	return client.Event{}, false
}

// count returns how many events of type typ concern id.
func (l *eventLog) count(typ membership.EventType, id membership.NodeID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Type == typ && e.Node.ID == id {
			n++
		}
	}
	return n
}
