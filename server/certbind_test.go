package server

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/meshnode/meshnode/membership"
)

// TestMutualTLSBindsTheNodeIDToItsCertificate has mallory, holding a certificate of the
// cluster's CA issued for the name "mallory" only, say hello to a as b. With mutual TLS the id
// is bound to the certificate: a refuses the stream with PermissionDenied and says why, keeps
// b, and still lets mallory in as itself.
func TestMutualTLSBindsTheNodeIDToItsCertificate(t *testing.T) {
	ca := newTestCA(t, "cluster")
	a, aLogs := startLogged(t, testConfig("a"), WithTLS(ca.issue(t, "a")))
	b, _ := startLogged(t, testConfig("b", a.LocalID().String()), WithTLS(ca.issue(t, "b")))
	requireFullMesh(t, 5*time.Second, a, b)
	ra := record(a)

	malloryFiles := ca.issueFor(t, "mallory", nil, []string{"mallory"})
	_, dialCfg, err := malloryFiles.tlsConfigs()
	require.NoError(t, err)
	transport := &peerTransport{channel: peerChannel{dialOptions: []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(dialCfg)),
		grpc.WithStreamInterceptor(newPeerAuth(nil, time.Second, 1, quietLogger()).clientInterceptor()),
	}}}
	t.Cleanup(transport.close)
	hello := func(id membership.NodeID) (*membership.Message, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		conn, err := transport.Dial(ctx, a.Addr().String())
		require.NoError(t, err, "mallory's certificate is signed by the cluster's CA")
		t.Cleanup(conn.Close)
		require.NoError(t, conn.Send(&membership.Message{Hello: &membership.Hello{
			ID: id, Incarnation: 1, ProtocolVersion: membership.ProtocolVersion,
			HeartbeatInterval: time.Second, MissThreshold: 3,
		}}))
		return conn.Recv()
	}

	_, err = hello(b.LocalID())
	require.Error(t, err, "a should refuse mallory speaking as b")
	require.Equal(t, codes.PermissionDenied, status.Code(err), "refused as %v", err)
	require.Contains(t, aLogs.String(), "certificate does not cover the id it claims")

	reply, err := hello(membership.MustParseNodeID("mallory@127.0.0.1:1"))
	require.NoError(t, err)
	require.NotNil(t, reply.Hello, "a should accept mallory speaking as itself, got %+v", reply)

	requireFullMesh(t, time.Second, a, b)
	require.Empty(t, ra.downs(b.LocalID()), "a should never report b down")
}
