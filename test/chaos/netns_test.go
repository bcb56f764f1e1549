//go:build chaos && linux

package chaos_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Topology
//
// Every name this suite creates starts with namePrefix, so a run can sweep what a crashed run
// left behind. The host network namespace gets nothing at all: no address, no route, no link,
// no firewall rule.
//
//	chaos-sw     a "switch" namespace holding the bridge br0 (the data network 10.200.0.0/24)
//	chaos-nX     one namespace per node: lo + eth0 (10.200.0.X/24), the other end of eth0
//	             being a port of br0 in chaos-sw
//
// The bridge lives in its own namespace rather than in the host's so that the host's
// bridge-netfilter settings and FORWARD policy (Docker sets it to DROP) cannot touch our
// traffic, and so that nothing we do can route a packet anywhere else: the node namespaces
// have a single route, 10.200.0.0/24 on eth0.
//
// The observer (this test process, in the host namespace) reaches each node's public API by
// opening its sockets *inside* the node's namespace (setns on a locked OS thread for the
// socket() call only, see dialInNetns) and connecting to the node's own address, which the
// kernel routes over that namespace's loopback. So the observer needs no address anywhere,
// and faults injected on eth0 (DROP rules, loss, delay) never touch the observer's path: a
// black-holed node can still be asked what it sees.
const (
	namePrefix = "chaos-"
	switchNS   = namePrefix + "sw"
	subnet     = "10.200.0"
	peerPort   = 7946
)

// runCmd runs a command and returns its combined output, failing with it on error.
func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// mustRun runs a command or fails the test.
func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// netnsPath is where `ip netns` keeps a named namespace.
func netnsPath(ns string) string { return "/run/netns/" + ns }

// inNetns runs fn on an OS thread switched into the network namespace ns. fn must only
// create sockets (a socket belongs to the namespace it was created in, wherever it is used
// afterwards). The thread is switched back; if that fails the thread is left locked so the
// runtime discards it when the goroutine exits.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(netnsPath(ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Keep the thread locked: it dies with this goroutine.
			errc <- fmt.Errorf("setns back from %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// dialInNetns returns a gRPC-style context dialer whose sockets live in namespace ns.
func dialInNetns(ns string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var conn net.Conn
		err := inNetns(ns, func() error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			conn = c
			return err
		})
		return conn, err
	}
}

// listenInNetns opens a TCP listener inside namespace ns.
func listenInNetns(ns, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// network is the data network of one test: the switch and the node namespaces on it.
type network struct {
	t   testing.TB
	nss []string
}

// newNetwork creates the switch namespace; hosts are added with addHost. Everything is
// removed when the test ends, whatever its outcome.
func newNetwork(t testing.TB) *network {
	t.Helper()
	n := &network{t: t}
	mustRun(t, "ip", "netns", "add", switchNS)
	n.nss = append(n.nss, switchNS)
	t.Cleanup(n.teardown)
	mustRun(t, "ip", "-n", switchNS, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", switchNS, "link", "add", "br0", "type", "bridge")
	mustRun(t, "ip", "-n", switchNS, "link", "set", "br0", "up")
	return n
}

// addHost creates namespace chaos-<name> with eth0 = ip/24 on the bridge.
func (n *network) addHost(name, ip string) string {
	t := n.t
	t.Helper()
	ns := namePrefix + name
	mustRun(t, "ip", "netns", "add", ns)
	n.nss = append(n.nss, ns)
	port := "p-" + name // switch-side end, inside chaos-sw only
	mustRun(t, "ip", "-n", switchNS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	mustRun(t, "ip", "-n", switchNS, "link", "set", port, "master", "br0", "up")
	mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
	mustRun(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	return ns
}

// teardown deletes every namespace of the network (with them go their links, bridge and
// firewall rules). Processes still inside are killed first by the caller's cleanups (they
// were registered later, so they run earlier); sweepNamespace also kills stragglers.
func (n *network) teardown() {
	for i := len(n.nss) - 1; i >= 0; i-- {
		if err := sweepNamespace(n.nss[i]); err != nil {
			n.t.Errorf("teardown: %v", err)
		}
	}
}

// sweepNamespace kills the processes left in ns (by pid: only this suite starts processes
// in chaos- namespaces) and deletes it.
func sweepNamespace(ns string) error {
	if _, err := os.Stat(netnsPath(ns)); err != nil {
		return nil
	}
	if out, err := runCmd("ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(out) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 && pid != os.Getpid() {
				_ = unix.Kill(pid, unix.SIGCONT)
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	var err error
	for i := 0; i < 50; i++ {
		if _, err = runCmd("ip", "netns", "del", ns); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// sweepLeftovers removes what an earlier, crashed run may have left: namespaces and host
// links named with our prefix, and our cgroups.
func sweepLeftovers() error {
	var errs []string
	if out, err := runCmd("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], namePrefix) {
				if err := sweepNamespace(f[0]); err != nil {
					errs = append(errs, err.Error())
				}
			}
		}
	}
	// This suite creates no link in the host namespace; remove any that carries our prefix
	// anyway (a run of an older layout, or a manual experiment).
	if out, err := runCmd("ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, namePrefix) {
				if _, err := runCmd("ip", "link", "del", name); err != nil {
					errs = append(errs, err.Error())
				}
			}
		}
	}
	if err := sweepCgroups(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("sweep: %s", strings.Join(errs, "; "))
	}
	return nil
}

// iptables runs iptables inside namespace ns.
func iptables(t testing.TB, ns string, args ...string) {
	t.Helper()
	mustRun(t, "ip", append([]string{"netns", "exec", ns, "iptables", "-w"}, args...)...)
}
