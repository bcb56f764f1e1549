package membership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const simSRV = "dnssrv+_peer._tcp.mesh.test"

// resolve hands n the outcome of a round of lookups of its DNS seed and settles.
func (n *simNode) resolve(addrs []string, err string) {
	n.core.seedsResolved(n.s.now, []seedResolution{{seed: simSRV, addrs: addrs, err: err}})
	n.flush()
	n.s.settle()
}

// dnsLogs returns the lines n logged about its DNS seed, as "LEVEL text".
func (n *simNode) dnsLogs() []string {
	var out []string
	for _, l := range n.logs {
		for i := 0; i+1 < len(l.attrs); i += 2 {
			if l.attrs[i] == "seed" && l.attrs[i+1] == simSRV {
				out = append(out, l.level.String()+" "+l.text)
			}
		}
	}
	return out
}

// The addresses a DNS seed resolves to are dialled as seeds; the node's own address is
// left out; an address gone from the answer is dropped; a failed lookup keeps the last
// answer; each change of outcome is logged once; lookups are needed while the node is
// alone or one of the addresses leads to no connected node.
func TestCoreDNSSeedsResolvedAddressesAreDialledAndFollowTheAnswer(t *testing.T) {
	s := newSim(t)
	a := s.add(simID("a", 4000), simConfig("a", simSRV))
	require.True(t, a.core.needsResolution(), "alone, with a DNS seed never answered")
	require.Equal(t, []SeedStatus{{Seed: simSRV, LastError: "not looked up yet"}}, a.core.seedStatuses())

	a.resolve(nil, "")
	require.Equal(t, []string{"WARN DNS seed resolved to no address; retrying with backoff while the node is alone or cannot reach part of the cluster"}, a.dnsLogs())
	a.resolve(nil, "")
	require.Len(t, a.dnsLogs(), 1, "the same outcome is not logged again")
	require.Equal(t, []SeedStatus{{Seed: simSRV, LastError: "resolved to no address"}}, a.core.seedStatuses())
	require.True(t, a.core.needsResolution(), "alone")

	a.resolve([]string{"127.0.0.1:4000"}, "")
	require.Empty(t, a.dialsTo("127.0.0.1:4000"), "its own address is not dialled")
	require.Empty(t, a.core.seedStatuses())

	b := s.add(simID("b", 4001), simConfig("b", simSRV))
	b.resolve([]string{"127.0.0.1:4000", "127.0.0.1:4001"}, "")
	s.advanceUntil(5*time.Second, func() bool { return s.fullMesh(a, b) }, "b should join a through the address resolved")
	require.Equal(t, []SeedStatus{{Seed: "127.0.0.1:4000 (" + simSRV + ")", Reachable: true}}, b.core.seedStatuses())
	require.False(t, b.core.needsResolution(), "every address resolved leads to a connected node")
	require.False(t, a.core.needsResolution(), "a is no longer alone and resolved only itself")

	// A lookup fails: the addresses are kept, the error logged once.
	b.resolve(nil, "i/o timeout")
	b.resolve(nil, "i/o timeout")
	require.Equal(t, []string{
		"INFO DNS seed resolved",
		"WARN DNS seed did not resolve; retrying with backoff while the node is alone or cannot reach part of the cluster",
	}, b.dnsLogs())
	require.Len(t, b.core.seeds, 1, "the last answer is kept")

	// A pod added: c resolves a, b and itself; a pod gone: b crashes and leaves the answer.
	c := s.add(simID("c", 4002), simConfig("c", simSRV))
	c.resolve([]string{"127.0.0.1:4000", "127.0.0.1:4001", "127.0.0.1:4002"}, "")
	s.advanceUntil(5*time.Second, func() bool { return s.fullMesh(a, b, c) }, "c should join")
	require.False(t, c.core.needsResolution())
	b.crash()
	s.advanceUntil(20*time.Second, func() bool { return c.core.needsResolution() }, "c cannot reach an address resolved: it looks up again")
	c.resolve([]string{"127.0.0.1:4000", "127.0.0.1:4002"}, "")
	require.Len(t, c.core.seeds, 1, "b's address is dropped")
	require.Equal(t, "127.0.0.1:4000", c.core.seeds[0].addr)
	require.False(t, c.core.needsResolution(), "a is reachable")

	// The whole answer empty: no seed left; alone again, the node needs lookups.
	c.resolve(nil, "")
	require.Empty(t, c.core.seeds)
	a.stop()
	s.advanceUntil(20*time.Second, func() bool { return c.core.needsResolution() }, "alone: c looks up again")
}
