package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meshnode/meshnode/client"
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// recordingProxy forwards TCP connections to target and records what clients send.
type recordingProxy struct {
	l      net.Listener
	mu     sync.Mutex
	client bytes.Buffer
	wg     sync.WaitGroup
	conns  []net.Conn
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &recordingProxy{l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(io.MultiWriter(out, p), in); _ = out.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

// Write records client bytes.
func (p *recordingProxy) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client.Write(b)
}

func (p *recordingProxy) recorded() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.client.Bytes())
}

func (p *recordingProxy) close() {
	_ = p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func TestReplayedStreamIsRejected(t *testing.T) {
	const secret = "replay-test-secret-0123"
	a, aLogs := startLogged(t, withSecrets(testConfig("a"), secret))
	proxy := newRecordingProxy(t, a.Addr().String())
	b := startNode(t, withSecrets(testConfig("b", proxy.l.Addr().String()), secret))
	requireFullMesh(t, 5*time.Second, a, b)
	// Let a few heartbeats pass through the proxy, then replay the whole byte stream.
	require.Eventually(t, func() bool { return len(proxy.recorded()) > 600 }, 5*time.Second, 20*time.Millisecond)
	ra := record(a)
	recorded := proxy.recorded()
	conn, err := net.Dial("tcp", a.Addr().String())
	require.NoError(t, err)
	_, _ = conn.Write(recorded)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, conn)
	_ = conn.Close()
	require.Eventually(t, func() bool { return strings.Contains(aLogs.String(), "wrong secret") }, 5*time.Second, 20*time.Millisecond,
		"a replayed handshake fails: the server's fresh nonce makes the recorded proof wrong")
	requireFullMesh(t, time.Second, a, b)
	require.Empty(t, ra.downs(b.LocalID()), "the replay disturbed nothing")
	require.Zero(t, ra.ups(b.LocalID()), "the replay brought no node up")
}

func TestFloodOfUnauthenticatedStreamsDoesNotStallHeartbeats(t *testing.T) {
	const secret = "flood-test-secret-0123"
	cfg := func(name string, seeds ...string) *membership.Config {
		c := withSecrets(testConfig(name, seeds...), secret)
		c.HeartbeatInterval, c.HandshakeTimeout = 500*time.Millisecond, 2*time.Second
		return c
	}
	a, _ := startLogged(t, cfg("a"))
	b, _ := startLogged(t, cfg("b", a.LocalID().String()))
	c, _ := startLogged(t, cfg("c", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b, c)
	recs := []*recorder{record(a), record(b), record(c)}

	// 500 streams at once: 50 connections × 10 silent PeerService streams, plus 50 raw TCP
	// connections that never even send the HTTP/2 preface.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	var refused, dropped sync.Map
	for i := range 50 {
		cc, err := grpc.NewClient(a.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer cc.Close()
		for j := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stream, err := clusterv1.NewPeerServiceClient(cc).Exchange(ctx)
				if err != nil {
					return
				}
				_, err = stream.Recv()
				switch status.Code(err) {
				case codes.ResourceExhausted:
					refused.Store(i*10+j, true)
				case codes.InvalidArgument:
					dropped.Store(i*10+j, true)
				}
			}()
		}
		raw, err := net.Dial("tcp", a.Addr().String())
		require.NoError(t, err)
		defer raw.Close()
	}
	// The cluster keeps its heartbeats through three detection windows.
	deadline := time.Now().Add(3 * 3 * 500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, r := range recs {
			for _, n := range []*Node{a, b, c} {
				require.Empty(t, r.downs(n.LocalID()), "no false down during the flood")
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	countOf := func(m *sync.Map) int {
		n := 0
		m.Range(func(any, any) bool { n++; return true })
		return n
	}
	t.Logf("flood: %d streams evicted by newer ones (over the cap), %d dropped at the handshake deadline", countOf(&refused), countOf(&dropped))
	require.Equal(t, 500, countOf(&refused)+countOf(&dropped), "every unauthenticated stream is evicted or dropped")
	requireFullMesh(t, time.Second, a, b, c)
}

func TestOversizedPeerMessageIsRejected(t *testing.T) {
	a := startNode(t, testConfig("a"))
	b := startNode(t, testConfig("b", a.LocalID().String()))
	requireFullMesh(t, 5*time.Second, a, b)
	cc, err := grpc.NewClient(a.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	require.NoError(t, err)
	defer cc.Close()
	stream, err := clusterv1.NewPeerServiceClient(cc).Exchange(t.Context())
	require.NoError(t, err)
	_ = stream.Send(&clusterv1.ExchangeRequest{Body: make([]byte, DefaultMaxPeerMessageBytes+1)})
	_, err = stream.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "got %v", err)
	requireFullMesh(t, time.Second, a, b)
}

func TestMutualTLSClusterAndWrongCA(t *testing.T) {
	ca, other := newTestCA(t, "good"), newTestCA(t, "evil")
	a, _ := startLogged(t, testConfig("a"), WithTLS(ca.issue(t, "a")))
	b, _ := startLogged(t, testConfig("b", a.LocalID().String()), WithTLS(ca.issue(t, "b")))
	requireFullMesh(t, 5*time.Second, a, b)

	intruder, _ := startLogged(t, testConfig("intruder", a.LocalID().String()), WithTLS(other.issue(t, "intruder")))
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		require.Equal(t, []string{b.LocalID().String()}, connectedIDs(a), "a sees only b, never the intruder")
		require.Empty(t, connectedIDs(intruder), "the intruder with another CA's certificate gets in nowhere")
		time.Sleep(50 * time.Millisecond)
	}

	files := ca.issue(t, "cli")
	good, err := client.TLSConfig(files.CAFile, files.CertFile, files.KeyFile)
	require.NoError(t, err)
	cl, err := client.Dial(a.Addr().String(), client.WithTLS(good))
	require.NoError(t, err)
	defer cl.Close()
	nodes, err := cl.Nodes(t.Context(), true)
	require.NoError(t, err)
	require.Len(t, nodes, 1)

	evil := other.issue(t, "evilcli")
	bad, err := client.TLSConfig(files.CAFile, evil.CertFile, evil.KeyFile)
	require.NoError(t, err)
	cl2, err := client.Dial(a.Addr().String(), client.WithTLS(bad))
	require.NoError(t, err)
	defer cl2.Close()
	_, err = cl2.Nodes(t.Context(), true)
	require.Error(t, err, "a client certificate from another CA is refused")
}
