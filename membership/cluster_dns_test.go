package membership

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/internal/dnstest"
)

// Lookups against a real DNS server on loopback: every A/AAAA address of a dns+ seed at its
// port; SRV records, then their targets' addresses at the records' ports; a name with no
// record is an empty answer, not an error; a server that does not answer is an error.
func TestLookupSeedAgainstADNSServer(t *testing.T) {
	srv, err := dnstest.Start()
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Close()) }()
	r := newResolver(&Config{DNSServer: srv.Addr()})
	lookup := func(seed string) ([]string, error) {
		ds, err := ParseDNSSeed(seed)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return lookupSeed(ctx, r, ds)
	}

	srv.SetHost("mesh.test", "127.0.0.3", "127.0.0.2", "::1")
	addrs, err := lookup("dns+mesh.test:4369")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.2:4369", "127.0.0.3:4369", "[::1]:4369"}, addrs)

	srv.SetHost("pod-0.mesh.test", "127.0.0.1")
	srv.SetHost("pod-1.mesh.test", "127.0.0.1")
	srv.SetSRV("_peer._tcp.mesh.test", dnstest.SRV{Target: "pod-0.mesh.test", Port: 4001}, dnstest.SRV{Target: "pod-1.mesh.test", Port: 4002})
	addrs, err = lookup("dnssrv+_peer._tcp.mesh.test")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:4001", "127.0.0.1:4002"}, addrs)

	// A pod added, a pod gone.
	srv.SetHost("pod-2.mesh.test", "127.0.0.1")
	srv.SetSRV("_peer._tcp.mesh.test", dnstest.SRV{Target: "pod-1.mesh.test", Port: 4002}, dnstest.SRV{Target: "pod-2.mesh.test", Port: 4003})
	addrs, err = lookup("dnssrv+_peer._tcp.mesh.test.")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:4002", "127.0.0.1:4003"}, addrs)

	// A target that does not resolve is skipped while another does.
	srv.SetHost("pod-2.mesh.test")
	addrs, err = lookup("dnssrv+_peer._tcp.mesh.test")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:4002"}, addrs)

	// The whole answer empty, an unknown name: no address, no error.
	srv.SetSRV("_peer._tcp.mesh.test")
	addrs, err = lookup("dnssrv+_peer._tcp.mesh.test")
	require.NoError(t, err)
	require.Empty(t, addrs)
	addrs, err = lookup("dns+nowhere.test:1")
	require.NoError(t, err)
	require.Empty(t, addrs)

	// No server answering: an error that says what was looked up.
	require.NoError(t, srv.Close())
	_, err = lookup("dns+mesh.test:4369")
	require.ErrorContains(t, err, "look up mesh.test")
}

func TestParseDNSSeed(t *testing.T) {
	for seed, want := range map[string]DNSSeed{
		"dns+mesh.default.svc:4369":                 {Text: "dns+mesh.default.svc:4369", Name: "mesh.default.svc", Port: 4369},
		"dns+mesh.default.svc.cluster.local.:1":     {Text: "dns+mesh.default.svc.cluster.local.:1", Name: "mesh.default.svc.cluster.local", Port: 1},
		"dns+127.0.0.1:4369":                        {Text: "dns+127.0.0.1:4369", Name: "127.0.0.1", Port: 4369},
		"dnssrv+_peer._tcp.mesh.default.svc":        {Text: "dnssrv+_peer._tcp.mesh.default.svc", SRV: true, Name: "_peer._tcp.mesh.default.svc"},
		"dnssrv+_peer._tcp.mesh.svc.cluster.local.": {Text: "dnssrv+_peer._tcp.mesh.svc.cluster.local.", SRV: true, Name: "_peer._tcp.mesh.svc.cluster.local"},
	} {
		got, err := ParseDNSSeed(seed)
		require.NoError(t, err, seed)
		require.Equal(t, want, got)
	}
	for seed, msg := range map[string]string{
		"dns+mesh.svc":          "port is missing",
		"dns+mesh.svc:0":        "port must be",
		"dns+mesh.svc:65536":    "port must be",
		"dns+me_sh.svc:1":       "host must contain only",
		"dns+:1":                "host must not be empty",
		"dnssrv+":               "SRV name must not be empty",
		"dnssrv+_peer.._tcp.x":  "SRV name must not have an empty label",
		"dnssrv+_peer._tcp.x:1": "SRV name must contain only",
	} {
		_, err := ParseDNSSeed(seed)
		require.ErrorContains(t, err, msg, seed)
		require.ErrorIs(t, err, ErrInvalidNodeID)
		cfg := simConfig("a", seed)
		require.ErrorContains(t, cfg.Validate(), "Seeds: seed 0: invalid seed", seed)
	}
	cfg := simConfig("a")
	cfg.DNSServer = "nowhere"
	require.ErrorContains(t, cfg.Validate(), "DNSServer: invalid address")
}
