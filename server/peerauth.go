package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// authVersion is the version of the peer authentication scheme.
const authVersion = 1

// nonceSize is the size of each side's handshake nonce.
const nonceSize = 32

// Errors of peer authentication; every one is matched with errors.Is.
var (
	// ErrPeerNoSecret: the peer runs without a secret while this node has one.
	ErrPeerNoSecret = errors.New("peer has no cluster secret but this node requires one")
	// ErrLocalNoSecret: the peer requires a secret while this node has none.
	ErrLocalNoSecret = errors.New("peer requires a cluster secret but this node has none")
	// ErrWrongSecret: the peer's proof or a message MAC does not match any of this node's secrets.
	ErrWrongSecret = errors.New("peer failed authentication: wrong cluster secret")
	// ErrBadFrame: a frame broke the protocol (missing handshake, bad sequence, replay, bad version).
	ErrBadFrame = errors.New("malformed or replayed peer frame")
)

// direction is which end of a stream sent a frame; it is part of every MAC so a frame cannot
// be reflected back to its sender.
type direction byte

const (
	dirClient direction = 'c' // sent by the node that opened the stream
	dirServer direction = 's' // sent by the node that accepted it
)

// keyring holds the cluster secrets: frames are signed with the first and accepted with any,
// so secrets can be rotated without downtime. An empty keyring means no authentication.
type keyring struct{ keys [][]byte }

// enabled reports whether a secret is configured.
func (k keyring) enabled() bool { return len(k.keys) > 0 }

// newNonce returns fresh random bytes for a handshake.
func newNonce() ([]byte, error) {
	n := make([]byte, nonceSize)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("peer auth nonce: %w", err)
	}
	return n, nil
}

// session is the authenticated state of one stream: both nonces, the key in use, and the
// sequence numbers of each direction.
type session struct {
	ring     keyring
	local    direction
	nonceC   []byte
	nonceS   []byte
	sendSeq  uint64
	recvSeq  uint64
	lastGood int // index of the key that last verified, tried first
	// sign and verify are reusable HMAC states; seal runs on the sending goroutine and open
	// on the receiving one, so each is used by one goroutine only.
	sign   hash.Hash
	verify []hash.Hash
}

// proof is the MAC with which side dir proves it knows key, bound to both nonces.
func (s *session) proof(key []byte, dir direction) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("meshnode/peer-auth/v1/proof"))
	m.Write([]byte{byte(dir)})
	m.Write(s.nonceC)
	m.Write(s.nonceS)
	return m.Sum(nil)
}

// frameMAC is the MAC of one body frame, computed with m, an HMAC of one key.
func (s *session) frameMAC(m hash.Hash, dir direction, seq uint64, body []byte) []byte {
	m.Reset()
	m.Write([]byte("meshnode/peer-auth/v1/frame"))
	m.Write([]byte{byte(dir)})
	m.Write(s.nonceC)
	m.Write(s.nonceS)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	m.Write(b[:])
	m.Write(body)
	return m.Sum(nil)
}

// signer returns the HMAC of the signing key, created once per stream (sending side only).
func (s *session) signer() hash.Hash {
	if s.sign == nil {
		s.sign = hmac.New(sha256.New, s.ring.keys[0])
	}
	return s.sign
}

// verifier returns the HMAC of key i, created once per stream (receiving side only).
func (s *session) verifier(i int) hash.Hash {
	if s.verify == nil {
		s.verify = make([]hash.Hash, len(s.ring.keys))
	}
	if s.verify[i] == nil {
		s.verify[i] = hmac.New(sha256.New, s.ring.keys[i])
	}
	return s.verify[i]
}

// localProof is this side's proof, made with the signing key (nil without a secret).
func (s *session) localProof() []byte {
	if !s.ring.enabled() {
		return nil
	}
	return s.proof(s.ring.keys[0], s.local)
}

// checkMode compares the peer's secret mode with ours.
func (s *session) checkMode(peerHasSecret bool) error {
	switch {
	case s.ring.enabled() && !peerHasSecret:
		return ErrPeerNoSecret
	case !s.ring.enabled() && peerHasSecret:
		return ErrLocalNoSecret
	}
	return nil
}

// verifyProof checks the peer's proof against every key, in constant time per key.
func (s *session) verifyProof(proof []byte) error {
	if !s.ring.enabled() {
		return nil
	}
	peer := s.peerDir()
	for i, key := range s.ring.keys {
		if hmac.Equal(proof, s.proof(key, peer)) {
			s.lastGood = i
			return nil
		}
	}
	return ErrWrongSecret
}

// seal returns the sequence number and MAC for the next outgoing body.
func (s *session) seal(body []byte) (uint64, []byte) {
	s.sendSeq++
	if !s.ring.enabled() {
		return s.sendSeq, nil
	}
	return s.sendSeq, s.frameMAC(s.signer(), s.local, s.sendSeq, body)
}

// open checks an incoming body frame: the next sequence number exactly, and a MAC made with
// any key. Frames replayed from this or another stream fail one or the other.
func (s *session) open(seq uint64, body, mac []byte) error {
	if seq != s.recvSeq+1 {
		return fmt.Errorf("%w: sequence %d, want %d", ErrBadFrame, seq, s.recvSeq+1)
	}
	if s.ring.enabled() {
		if !s.verifyMAC(seq, body, mac) {
			return ErrWrongSecret
		}
	} else if len(mac) != 0 {
		return fmt.Errorf("%w: unexpected MAC without a secret", ErrBadFrame)
	}
	s.recvSeq = seq
	return nil
}

// verifyMAC tries the key that last worked first, then the others.
func (s *session) verifyMAC(seq uint64, body, mac []byte) bool {
	peer := s.peerDir()
	if hmac.Equal(mac, s.frameMAC(s.verifier(s.lastGood), peer, seq, body)) {
		return true
	}
	for i := range s.ring.keys {
		if i != s.lastGood && hmac.Equal(mac, s.frameMAC(s.verifier(i), peer, seq, body)) {
			s.lastGood = i
			return true
		}
	}
	return false
}

// peerDir is the direction of frames the peer sends.
func (s *session) peerDir() direction {
	if s.local == dirClient {
		return dirServer
	}
	return dirClient
}

// openFrame checks a body frame; a handshake frame after the handshake is a protocol error.
func (s *session) openFrame(auth *clusterv1.AuthFrame, seq uint64, body, mac []byte) error {
	if auth != nil {
		return fmt.Errorf("%w: handshake frame after the handshake", ErrBadFrame)
	}
	return s.open(seq, body, mac)
}
