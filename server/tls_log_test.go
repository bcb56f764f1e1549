package server

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPeerCertificateFailureIsLoggedOnceWithTheTLSReason(t *testing.T) {
	ca, other := newTestCA(t, "good"), newTestCA(t, "other")
	files := ca.issue(t, "a")
	files.CAFile = "" // TLS without --tls-ca: peers are verified against the system roots
	a, _ := startLogged(t, testConfig("a"), WithTLS(files))
	bFiles := other.issue(t, "b")
	bFiles.CAFile = ""
	cfg := testConfig("b", a.LocalID().String())
	cfg.ReconnectBaseDelay, cfg.ReconnectMaxDelay = 50*time.Millisecond, 200*time.Millisecond
	b, bLogs := startLogged(t, cfg, WithTLS(bFiles))
	const line = "TLS handshake with a peer failed on a certificate"
	require.Eventually(t, func() bool { return strings.Contains(bLogs.String(), line) }, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, bLogs.String(), "certificate signed by unknown authority", "the TLS reason is logged")
	require.Eventually(t, func() bool { return dials(b) >= 4 }, 10*time.Second, 10*time.Millisecond,
		"b keeps redialling a")
	require.Equal(t, 1, strings.Count(bLogs.String(), line), "once per peer and reason, not once per dial")
	require.Empty(t, connectedIDs(b))
}

// metricsText returns n's metrics as Prometheus serves them.
func metricsText(n *Node) string {
	rec := httptest.NewRecorder()
	n.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// dials reads meshnode_dials_total from n's metrics.
func dials(n *Node) int {
	for _, line := range strings.Split(metricsText(n), "\n") {
		if v, ok := strings.CutPrefix(line, "meshnode_dials_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return 0
}
