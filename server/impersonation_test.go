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

// insiderStream opens an authenticated peer stream to target as a member holding the secret
// would, and says hello as id at incarnation.
func insiderStream(t *testing.T, secret string, target *Node, id membership.NodeID, incarnation uint64) membership.Conn {
	t.Helper()
	auth := newPeerAuth([][]byte{[]byte(secret)}, time.Second, 1, quietLogger())
	transport := &peerTransport{channel: peerChannel{dialOptions: []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStreamInterceptor(auth.clientInterceptor()),
	}}}
	t.Cleanup(transport.close)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, target.Addr().String())
	require.NoError(t, err, "the secret opens the stream")
	t.Cleanup(conn.Close)
	require.NoError(t, conn.Send(&membership.Message{Hello: &membership.Hello{
		ID: id, Incarnation: incarnation, ProtocolVersion: membership.ProtocolVersion,
		HeartbeatInterval: time.Second, MissThreshold: 3,
	}}))
	return conn
}

// requireUndisturbed checks for a while that a still lists b connected at its incarnation and
// never reported it down.
func requireUndisturbed(t *testing.T, a, b *Node, ra *recorder, incarnation uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second) // several heartbeat intervals and redials
	for time.Now().Before(deadline) {
		info, err := a.Node(b.LocalID())
		require.NoError(t, err, "a should still know b")
		require.Equal(t, membership.StatusConnected, info.Status, "a should keep b connected")
		require.Equal(t, incarnation, info.Incarnation, "a should keep b's own incarnation")
		require.Empty(t, ra.downs(b.LocalID()), "a should never report b down")
		time.Sleep(50 * time.Millisecond)
	}
	require.Zero(t, ra.ups(b.LocalID()), "a should report no new node_up for b")
}

// TestMemberCannotReplaceALiveNodeWithANewerIncarnation has a member holding the secret say
// hello as b with b's incarnation + 1. a holds a live stream with b: it refuses the claim,
// checks it by dialling b's address (the real b answers with its own incarnation), and keeps b.
func TestMemberCannotReplaceALiveNodeWithANewerIncarnation(t *testing.T) {
	const secret = "insider-secret-0123456789"
	a := startNode(t, withSecrets(testConfig("a"), secret))
	b := startNode(t, withSecrets(testConfig("b", a.LocalID().String()), secret))
	requireFullMesh(t, 5*time.Second, a, b)
	ra, rb := record(a), record(b)
	info, err := a.Node(b.LocalID())
	require.NoError(t, err)

	conn := insiderStream(t, secret, a, b.LocalID(), info.Incarnation+1)
	reply, err := conn.Recv()
	require.NoError(t, err)
	require.NotNil(t, reply.Reject, "a should refuse a second stream speaking as b, got %+v", reply)
	require.Equal(t, membership.RejectIDInUse, reply.Reject.Reason)

	requireUndisturbed(t, a, b, ra, info.Incarnation)
	require.Empty(t, rb.downs(a.LocalID()), "b should never see a go down")
}

// TestMemberCannotEvictALiveNodeWithForgedGossip has a member holding the secret, speaking as
// itself, gossip that b (alive) left at a newer incarnation. Only b can say it leaves: a keeps
// b connected at its own incarnation and reports nothing.
func TestMemberCannotEvictALiveNodeWithForgedGossip(t *testing.T) {
	const secret = "insider-secret-0123456789"
	a := startNode(t, withSecrets(testConfig("a"), secret))
	b := startNode(t, withSecrets(testConfig("b", a.LocalID().String()), secret))
	requireFullMesh(t, 5*time.Second, a, b)
	ra := record(a)
	info, err := a.Node(b.LocalID())
	require.NoError(t, err)

	mallory := membership.MustParseNodeID("mallory@127.0.0.1:1")
	conn := insiderStream(t, secret, a, mallory, 1)
	reply, err := conn.Recv()
	require.NoError(t, err)
	require.NotNil(t, reply.Hello, "a accepts mallory speaking for itself")
	require.NoError(t, conn.Send(&membership.Message{Update: &membership.Update{Entries: []membership.MemberEntry{
		{ID: b.LocalID(), Incarnation: info.Incarnation + 1, Left: true},
	}}}))

	requireUndisturbed(t, a, b, ra, info.Incarnation)
}
