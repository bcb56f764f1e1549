package process_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/internal/dnstest"
)

// A cluster formed from one dnssrv+ seed served by a real DNS server on loopback, whose
// records change as pods come and go (the way a headless Service's SRV records do): five
// nodes form, a sixth joins once it is in the records, one leaves and drops out of them, a
// node that starts while the whole answer is empty joins once it is not, and a node with
// another cluster name is refused.
func TestDNSSRVSeedFormsAndFollowsTheRecords(t *testing.T) {
	dns, err := dnstest.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = dns.Close() })
	const srv = "_peer._tcp.meshnode.test"
	seedFlags := []string{"--seeds", "dnssrv+" + srv, "--dns-server", dns.Addr(), "--cluster-name", "blue"}

	ports := map[string]int{}
	records := map[string]bool{} // the pods in the SRV answer
	publish := func() {
		var rs []dnstest.SRV
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for n := range records {
				if !yield(n) {
					return
				}
			}
		}) {
			rs = append(rs, dnstest.SRV{Target: name + ".meshnode.test", Port: uint16(ports[name])})
		}
		dns.SetSRV(srv, rs...)
	}
	pod := func(name string) {
		// A port none of the other pods has: picked one after the other, two free ports
		// can be the same.
		taken := slices.Collect(maps.Values(ports))
		port := freePort(t)
		for slices.Contains(taken, port) {
			port = freePort(t)
		}
		ports[name] = port
		dns.SetHost(name+".meshnode.test", "127.0.0.1")
		records[name] = true
	}
	start := func(name string, extra ...string) *proc {
		flags := append([]string{"--port", strconv.Itoa(ports[name])}, seedFlags...)
		return startAgent(t, name, append(flags, extra...)...)
	}

	var nodes []*proc
	for i := 1; i <= 5; i++ {
		pod(fmt.Sprintf("n%d", i))
	}
	publish()
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, start(fmt.Sprintf("n%d", i)))
	}
	requireMesh(t, 30*time.Second, nodes...)
	for _, n := range nodes {
		require.Contains(t, n.logText(), `"msg":"DNS seed resolved"`)
	}

	// A pod added: in the records, it joins through them.
	pod("n6")
	publish()
	n6 := start("n6")
	nodes = append(nodes, n6)
	requireMesh(t, 30*time.Second, nodes...)

	// A pod gone: n5 leaves and drops out of the records; the others stop dialling its
	// address once they look it up again.
	n5 := nodes[4]
	gone := "127.0.0.1:" + strconv.Itoa(ports["n5"])
	delete(records, "n5")
	publish()
	n5.signal(syscall.SIGTERM)
	require.Equal(t, 0, n5.waitExit(15*time.Second))
	nodes = slices.Delete(nodes, 4, 5)
	requireMesh(t, 30*time.Second, nodes...)
	for _, n := range nodes {
		require.Eventually(t, func() bool {
			seeds, ok := seedsOf(n)
			return ok && !strings.Contains(seeds, gone)
		}, 30*time.Second, 100*time.Millisecond, "%s should drop the address of the pod gone", n.name)
	}

	// The whole answer empty: a node started then says so, and joins once the records are back.
	saved := records
	records = map[string]bool{}
	publish()
	pod("n7")
	delete(records, "n7")
	n7 := start("n7")
	require.Eventually(t, func() bool {
		return strings.Contains(n7.logText(), "DNS seed resolved to no address")
	}, 10*time.Second, 50*time.Millisecond, "n7 should say the answer is empty")
	require.Empty(t, n7.connected())
	records = saved
	records["n7"] = true
	publish()
	nodes = append(nodes, n7)
	requireMesh(t, 30*time.Second, nodes...)

	// Another cluster's node at an address of the records is refused, on both sides.
	pod("x")
	publish()
	x := startAgent(t, "x", "--port", strconv.Itoa(ports["x"]), "--seeds", "dnssrv+"+srv, "--dns-server", dns.Addr(), "--cluster-name", "green")
	require.Eventually(t, func() bool {
		return strings.Contains(x.logText(), "a node of another cluster refused the stream") ||
			strings.Contains(x.logText(), "refused a node of another cluster")
	}, 15*time.Second, 50*time.Millisecond, "x should say it was refused")
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if strings.Contains(n.logText(), "refused a node of another cluster") ||
				strings.Contains(n.logText(), "refused the node dialled: it belongs to another cluster") {
				return true
			}
		}
		return false
	}, 15*time.Second, 50*time.Millisecond, "the cluster's nodes should say they refused x (or were refused by it)")
	require.Empty(t, x.connected())
	for _, n := range nodes {
		require.NotContains(t, n.connected(), x.id.String())
		require.Len(t, n.connected(), len(nodes)-1)
	}
}

// seedsOf returns p's seeds as its health report lists them, one per line.
func seedsOf(p *proc) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := p.client().Health(ctx)
	if err != nil {
		return "", false
	}
	var b strings.Builder
	for _, s := range h.Seeds {
		b.WriteString(s.Seed + "\n")
	}
	return b.String(), true
}
