// Command measure times what users of real `node agent` processes on loopback notice:
// how long a new node takes to be listed by every member, and how long SIGKILL and SIGSTOP
// of a member take to be reported by its last peer. It prints one line per trial and the
// medians.
//
//	go build -o bin/node ./cmd/node && go run ./test/measure -node bin/node -n 8,32 -trials 5
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/membership"
)

func main() {
	bin := flag.String("node", "bin/node", "path of the node binary")
	sizes := flag.String("n", "8,32", "cluster sizes")
	trials := flag.Int("trials", 5, "trials per size")
	interval := flag.Duration("interval", time.Second, "heartbeat interval")
	threshold := flag.Int("threshold", 2, "heartbeat miss threshold")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			fatal(err)
		}
		var join, kill, stop []time.Duration
		for trial := range *trials {
			r := runTrial(*bin, n, *interval, *threshold)
			fmt.Printf("n=%d trial=%d join=%s sigkill=%s sigstop=%s\n", n, trial+1, r.join, r.kill, r.stop)
			join, kill, stop = append(join, r.join), append(kill, r.kill), append(stop, r.stop)
		}
		fmt.Printf("n=%d median (of %d): join seen by all %s, SIGKILL seen by last peer %s, SIGSTOP seen by last peer %s (heartbeat %s x %d)\n",
			n, *trials, median(join), median(kill), median(stop), *interval, *threshold)
	}
}

type result struct{ join, kill, stop time.Duration }

// agent is one running node.
type agent struct {
	cmd  *exec.Cmd
	id   membership.NodeID
	addr string
}

func start(bin, name string, interval time.Duration, threshold int, seeds ...string) *agent {
	args := []string{"agent", "--name", name, "--host", "127.0.0.1", "--port", "0", "--log-format", "json",
		"--heartbeat-interval", interval.String(), "--heartbeat-miss-threshold", strconv.Itoa(threshold)}
	if len(seeds) > 0 {
		args = append(args, "--seeds", strings.Join(seeds, ","))
	}
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		fatal(err)
	}
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	a := &agent{cmd: cmd}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var rec struct{ Msg, ID, Listen string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "node started" {
			a.id, a.addr = membership.MustParseNodeID(rec.ID), rec.Listen
			break
		}
	}
	go func() {
		for sc.Scan() { // drain the log
		}
	}()
	return a
}

func (a *agent) client() *client.Client {
	c, err := client.Dial(a.addr)
	if err != nil {
		fatal(err)
	}
	return c
}

// watchDown returns a channel closed when c reports id down.
func watchDown(ctx context.Context, c *client.Client, id membership.NodeID, ready *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	var once, readyOnce sync.Once
	go func() {
		_ = c.Watch(ctx, func(e client.Event) {
			readyOnce.Do(ready.Done)
			if e.Type == membership.EventNodeDown && e.Node.ID == id {
				once.Do(func() { close(done) })
			}
		})
	}()
	return done
}

func runTrial(bin string, n int, interval time.Duration, threshold int) result {
	var r result
	seed := start(bin, "seed", interval, threshold)
	agents := []*agent{seed}
	for i := 1; i < n; i++ {
		agents = append(agents, start(bin, fmt.Sprintf("n%02d", i), interval, threshold, seed.id.String()))
	}
	defer func() {
		for _, a := range agents {
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
			_ = a.cmd.Process.Kill()
			_ = a.cmd.Wait()
		}
	}()
	clients := make([]*client.Client, len(agents))
	for i, a := range agents {
		clients[i] = a.client()
		defer clients[i].Close()
	}
	waitUntil(func() bool { return allSee(clients, n-1) }, 60*time.Second, "formation")

	// Join: a new node through one member, until every member lists it connected.
	t0 := time.Now()
	joiner := start(bin, "joiner", interval, threshold, agents[n/2].id.String())
	waitUntil(func() bool { return allSee(clients, n) }, 30*time.Second, "join")
	r.join = time.Since(t0)
	agents = append(agents, joiner)
	_ = joiner.cmd.Process.Signal(syscall.SIGTERM)
	waitUntil(func() bool { return allSee(clients, n-1) }, 30*time.Second, "joiner leave")

	r.kill = timeDown(clients[1:n-1], agents[n-1], syscall.SIGKILL)
	r.stop = timeDown(clients[1:n-2], agents[n-2], syscall.SIGSTOP)
	return r
}

// timeDown sends sig to victim and returns when the last of observers reports it down.
func timeDown(observers []*client.Client, victim *agent, sig syscall.Signal) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready sync.WaitGroup
	ready.Add(len(observers))
	var downs []<-chan struct{}
	for _, c := range observers {
		downs = append(downs, watchDown(ctx, c, victim.id, &ready))
	}
	ready.Wait()
	t0 := time.Now()
	_ = victim.cmd.Process.Signal(sig)
	for _, d := range downs {
		select {
		case <-d:
		case <-time.After(30 * time.Second):
			fatal(fmt.Errorf("%s of %s not reported within 30s", sig, victim.id))
		}
	}
	return time.Since(t0)
}

func allSee(clients []*client.Client, want int) bool {
	for _, c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		nodes, err := c.Nodes(ctx, true)
		cancel()
		if err != nil || len(nodes) < want {
			return false
		}
	}
	return true
}

func waitUntil(cond func() bool, limit time.Duration, what string) {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			fatal(fmt.Errorf("%s did not complete within %s", what, limit))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "measure:", err)
	os.Exit(1)
}
