package server

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// pairedSessions returns the two ends of one authenticated stream.
func pairedSessions(t testing.TB, clientKeys, serverKeys [][]byte) (*session, *session) {
	t.Helper()
	nc, err := newNonce()
	require.NoError(t, err)
	ns, err := newNonce()
	require.NoError(t, err)
	c := &session{ring: keyring{keys: clientKeys}, local: dirClient, nonceC: nc, nonceS: ns}
	s := &session{ring: keyring{keys: serverKeys}, local: dirServer, nonceC: nc, nonceS: ns}
	return c, s
}

func TestSessionProofsBindBothNoncesAndTheSecret(t *testing.T) {
	key := [][]byte{[]byte("k1-0123456789abcdef")}
	c, s := pairedSessions(t, key, key)
	require.NoError(t, s.verifyProof(c.localProof()), "the client's proof verifies on the server")
	require.NoError(t, c.verifyProof(s.localProof()), "the server's proof verifies on the client")
	require.ErrorIs(t, c.verifyProof(c.localProof()), ErrWrongSecret, "a proof reflected back to its sender is refused")

	wrong, _ := pairedSessions(t, [][]byte{[]byte("other-secret-xyz")}, key)
	wrong.nonceC, wrong.nonceS = c.nonceC, c.nonceS
	require.ErrorIs(t, s.verifyProof(wrong.localProof()), ErrWrongSecret)

	other, _ := pairedSessions(t, key, key) // same secret, other stream's nonces
	require.ErrorIs(t, s.verifyProof(other.localProof()), ErrWrongSecret, "a proof recorded on another stream is refused")
}

func TestSessionFramesRejectTamperingReplayAndReordering(t *testing.T) {
	key := [][]byte{[]byte("k1-0123456789abcdef")}
	c, s := pairedSessions(t, key, key)
	body1, body2 := []byte("heartbeat-1"), []byte("heartbeat-2")
	seq1, mac1 := c.seal(body1)
	seq2, mac2 := c.seal(body2)

	tampered := bytes.Clone(body1)
	tampered[0] ^= 1
	require.ErrorIs(t, s.open(seq1, tampered, mac1), ErrWrongSecret, "a tampered body fails its MAC")
	require.ErrorIs(t, s.open(seq2, body2, mac2), ErrBadFrame, "frames must come in sequence")
	require.NoError(t, s.open(seq1, body1, mac1))
	require.ErrorIs(t, s.open(seq1, body1, mac1), ErrBadFrame, "a replay on the same stream is refused")
	require.NoError(t, s.open(seq2, body2, mac2))

	_, s2 := pairedSessions(t, key, key)
	require.ErrorIs(t, s2.open(seq1, body1, mac1), ErrWrongSecret, "a frame replayed on another stream fails its MAC")

	// A frame the server sent cannot be reflected back to it as if the client sent it.
	sseq, smac := s.seal(body1)
	s3 := &session{ring: s.ring, local: dirServer, nonceC: s.nonceC, nonceS: s.nonceS}
	require.ErrorIs(t, s3.open(sseq, body1, smac), ErrWrongSecret, "direction is part of the MAC")
}

func TestSessionKeyRotationSignsWithFirstAcceptsAny(t *testing.T) {
	oldKey, newKey := []byte("old-0123456789abcdef"), []byte("new-0123456789abcdef")
	c, s := pairedSessions(t, [][]byte{newKey, oldKey}, [][]byte{oldKey, newKey})
	require.NoError(t, s.verifyProof(c.localProof()), "signed with new, accepted by a node that also knows new")
	require.NoError(t, c.verifyProof(s.localProof()), "signed with old, accepted by a node that still knows old")
	seq, mac := c.seal([]byte("x"))
	require.NoError(t, s.open(seq, []byte("x"), mac))
}

func TestSessionWithoutSecretStillChecksSequence(t *testing.T) {
	c, s := pairedSessions(t, nil, nil)
	seq, mac := c.seal([]byte("x"))
	require.Nil(t, mac)
	require.NoError(t, s.open(seq, []byte("x"), mac))
	require.ErrorIs(t, s.open(seq, []byte("x"), mac), ErrBadFrame)
	require.ErrorIs(t, s.open(seq+1, []byte("x"), []byte("junk")), ErrBadFrame, "a MAC without a secret is a protocol error")
	require.True(t, errors.Is(s.checkMode(true), ErrLocalNoSecret))
}

// FuzzSessionOpen feeds arbitrary frames to a verifying session: it never panics and never
// accepts a frame that was not sealed by its peer.
func FuzzSessionOpen(f *testing.F) {
	key := [][]byte{[]byte("fuzz-key-0123456789")}
	f.Add(uint64(1), []byte("body"), []byte("mac"))
	f.Add(uint64(0), []byte{}, []byte{})
	f.Add(uint64(1<<63), bytes.Repeat([]byte{0xff}, 64), bytes.Repeat([]byte{0}, 32))
	f.Fuzz(func(t *testing.T, seq uint64, body, mac []byte) {
		_, s := pairedSessions(t, key, key)
		if err := s.open(seq, body, mac); err == nil {
			t.Fatalf("a forged frame was accepted: seq=%d", seq)
		}
	})
}

// FuzzDecodeMessage feeds arbitrary bytes to the peer message decoder: it never panics, it
// accepts what the path through protobuf alone accepts, with the same result, and anything it
// accepts encodes again.
func FuzzDecodeMessage(f *testing.F) {
	for _, seed := range peerMessageSeeds(f) {
		f.Add(seed)
	}
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := decodeMessage(body)
		want, wantErr := decodeProtoMessage(body)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%x: error %v, through protobuf %v", body, err, wantErr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(msg, want) {
			t.Fatalf("%x: decoded %+v, through protobuf %+v", body, msg, want)
		}
		if _, err := encodeMessage(msg); err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
	})
}

// BenchmarkSealAndOpenHeartbeat measures signing and verifying one heartbeat frame.
func BenchmarkSealAndOpenHeartbeat(b *testing.B) {
	key := [][]byte{[]byte("bench-key-0123456789abcdef")}
	c, s := pairedSessions(b, key, key)
	body := peerMessageSeeds(b)[1] // a heartbeat
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		seq, mac := c.seal(body)
		if err := s.open(seq, body, mac); err != nil {
			b.Fatal(err)
		}
	}
}
