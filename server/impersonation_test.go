package server

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshnode/meshnode/membership"
)

// TestAuthenticatedPeerCannotSpeakForAnother opens a real authenticated stream (it knows the
// secret), says hello as "mallory", then sends a leave and a heartbeat naming b. a must
// reject them, close the stream and keep b connected.
func TestAuthenticatedPeerCannotSpeakForAnother(t *testing.T) {
	const secret = "impersonation-secret-0123"
	a, aLogs := startLogged(t, withSecrets(testConfig("a"), secret))
	b, _ := startLogged(t, withSecrets(testConfig("b", a.LocalID().String()), secret))
	requireFullMesh(t, 5*time.Second, a, b)
	ra := record(a)

	for _, forged := range []*membership.Message{
		{Leave: &membership.Leave{ID: b.LocalID(), Incarnation: 1}},
		{Heartbeat: &membership.Heartbeat{ID: b.LocalID()}},
	} {
		auth := newPeerAuth([][]byte{[]byte(secret)}, time.Second, 1, quietLogger())
		transport := &peerTransport{channel: peerChannel{dialOptions: []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithStreamInterceptor(auth.clientInterceptor()),
		}}}
		t.Cleanup(transport.close)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		conn, err := transport.Dial(ctx, a.Addr().String())
		cancel()
		require.NoError(t, err, "the secret opens the stream")
		mallory := membership.MustParseNodeID("mallory@127.0.0.1:1")
		require.NoError(t, conn.Send(&membership.Message{Hello: &membership.Hello{
			ID: mallory, Incarnation: 1, ProtocolVersion: membership.ProtocolVersion,
			HeartbeatInterval: time.Second, MissThreshold: 3,
		}}))
		reply, err := conn.Recv()
		require.NoError(t, err)
		require.NotNil(t, reply.Hello, "a accepts mallory speaking for itself")
		require.NoError(t, conn.Send(forged))
		var rejected bool
		for {
			msg, err := conn.Recv()
			if err != nil {
				break
			}
			if msg.Reject != nil {
				require.Equal(t, membership.RejectBadMessage, msg.Reject.Reason)
				rejected = true
			}
		}
		conn.Close()
		require.True(t, rejected, "the forged message is rejected and the stream closed")
	}
	require.Contains(t, aLogs.String(), "speaks for another node")
	requireFullMesh(t, time.Second, a, b)
	require.Empty(t, ra.downs(b.LocalID()), "b was never reported down")
}
