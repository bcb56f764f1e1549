package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/patience"
)

// peerAuth owns authentication of PeerService streams: the nonce handshake and the sequence
// number and HMAC of every frame. The membership engine behind it only ever sees frames that
// passed verification.
type peerAuth struct {
	ring             keyring
	handshakeTimeout time.Duration
	// patience stretches handshakeTimeout after handshakes timed out (up to patience.Max
	// times), as the dialling side's patience does: on a machine so loaded that a handshake
	// takes longer than the timeout, closing every stream at it would fail every dial.
	// handshakePool bounds what the longer wait can cost.
	patience  patience.Adaptive
	pending   *handshakePool // caps concurrent unauthenticated inbound streams
	logger    *slog.Logger
	onFailure func(reason string)
	report    *limitReporter // counts and logs evictions; may be nil

	mu       sync.Mutex
	lastLogs map[string]time.Time
}

// logEvery rate-limits authentication failure logs per reason.
const logEvery = 10 * time.Second

// newPeerAuth returns the authenticator for the given secrets (none: no authentication, but
// the handshake still tells each side the other's mode, so a mismatch is reported clearly).
func newPeerAuth(secrets [][]byte, handshakeTimeout time.Duration, maxPending int, logger *slog.Logger) *peerAuth {
	return &peerAuth{
		ring:             keyring{keys: secrets},
		handshakeTimeout: handshakeTimeout,
		pending:          newHandshakePool(maxPending, maxPending),
		logger:           logger,
		lastLogs:         map[string]time.Time{},
		onFailure:        func(string) {},
	}
}

// isPeerExchange selects the PeerService stream.
func isPeerExchange(_ context.Context, meta interceptors.CallMeta) bool {
	return meta.FullMethod() == clusterv1.PeerService_Exchange_FullMethodName
}

// serverInterceptor returns the stream server interceptor, applied to PeerService only.
func (a *peerAuth) serverInterceptor() grpc.StreamServerInterceptor {
	return selector.StreamServerInterceptor(a.interceptServer, selector.MatchFunc(isPeerExchange))
}

// clientInterceptor returns the stream client interceptor, applied to PeerService only.
func (a *peerAuth) clientInterceptor() grpc.StreamClientInterceptor {
	return selector.StreamClientInterceptor(a.interceptClient, selector.MatchFunc(isPeerExchange))
}

// errHandshakeEvicted ends a pending handshake whose place a newcomer took.
var errHandshakeEvicted = errors.New("pending peer handshake evicted: too many unauthenticated peer streams; retry")

// errHandshakeTimeout ends a handshake the dialler did not complete within the deadline.
var errHandshakeTimeout = errors.New("peer handshake timed out")

func (a *peerAuth) interceptServer(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	entry, victim := a.pending.admit(remoteHost(ctx), reusedConnection(ctx))
	if victim != nil {
		a.report.hitRemote(limitPendingHandshakes, victim.source)
	}
	sess, err := a.serverHandshake(ss, entry)
	a.pending.release(entry)
	if errors.Is(err, errHandshakeEvicted) {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	if err != nil {
		a.fail(ctx, err)
		return status.Error(authCode(err), err.Error())
	}
	return handler(srv, &authedServerStream{ServerStream: ss, frames: frameAuth[*clusterv1.ExchangeResponse, *clusterv1.ExchangeRequest]{sess: sess, auth: a}})
}

// serverHandshake runs the accepting side of the handshake within the handshake deadline
// (HandshakeTimeout, longer after handshakes timed out: peerAuth.patience), unless entry is
// evicted first. Either way it returns at once: the caller's status ends the stream, which
// ends the handshake's pending read.
func (a *peerAuth) serverHandshake(ss grpc.ServerStream, entry *pendingHandshake) (*session, error) {
	type result struct {
		sess *session
		err  error
	}
	done := make(chan result, 1)
	go func() {
		sess, err := a.runServerHandshake(ss, entry)
		done <- result{sess, err}
	}()
	timeout := a.patience.Timeout(a.handshakeTimeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err == nil {
			a.patience.Finished(time.Since(entry.started), a.handshakeTimeout)
		}
		return r.sess, r.err
	case <-timer.C:
		a.patience.TimedOut()
		return nil, fmt.Errorf("%w: handshake not completed within %s", errHandshakeTimeout, timeout)
	case <-entry.evicted:
		return nil, errHandshakeEvicted
	}
}

// runServerHandshake reads the dialler's first frame, answers, and checks its proof; entry
// records the progress.
func (a *peerAuth) runServerHandshake(ss grpc.ServerStream, entry *pendingHandshake) (*session, error) {
	sess := &session{ring: a.ring, local: dirServer}
	var hello clusterv1.ExchangeRequest
	if err := ss.RecvMsg(&hello); err != nil {
		return nil, handshakeReadError("reading handshake", err)
	}
	entry.progressed.Store(true)
	auth := hello.GetAuth()
	if err := checkAuthFrame(auth); err != nil {
		return nil, err
	}
	sess.nonceC = auth.GetNonce()
	nonce, err := newNonce()
	if err != nil {
		return nil, err
	}
	sess.nonceS = nonce
	reply := &clusterv1.ExchangeResponse{Auth: &clusterv1.AuthFrame{
		Version: authVersion, SecretConfigured: a.ring.enabled(), Nonce: nonce, Proof: sess.localProof(),
	}}
	if err := ss.SendMsg(reply); err != nil {
		return nil, fmt.Errorf("sending handshake: %w", err)
	}
	if err := sess.checkMode(auth.GetSecretConfigured()); err != nil {
		return nil, err
	}
	if !a.ring.enabled() {
		return sess, nil
	}
	var proof clusterv1.ExchangeRequest
	if err := ss.RecvMsg(&proof); err != nil {
		return nil, handshakeReadError("reading proof", err)
	}
	if proof.GetAuth() == nil {
		return nil, fmt.Errorf("%w: expected the handshake proof", ErrBadFrame)
	}
	return sess, sess.verifyProof(proof.GetAuth().GetProof())
}

func (a *peerAuth) interceptClient(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	sess, err := a.clientHandshake(cs)
	if err != nil {
		a.fail(ctx, err)
		return nil, err
	}
	return &authedClientStream{ClientStream: cs, frames: frameAuth[*clusterv1.ExchangeRequest, *clusterv1.ExchangeResponse]{sess: sess, auth: a}}, nil
}

// clientHandshake runs the dialling side of the handshake; the caller bounds it with ctx.
func (a *peerAuth) clientHandshake(cs grpc.ClientStream) (*session, error) {
	nonce, err := newNonce()
	if err != nil {
		return nil, err
	}
	sess := &session{ring: a.ring, local: dirClient, nonceC: nonce}
	hello := &clusterv1.ExchangeRequest{Auth: &clusterv1.AuthFrame{Version: authVersion, SecretConfigured: a.ring.enabled(), Nonce: nonce}}
	if err := cs.SendMsg(hello); err != nil {
		return nil, fmt.Errorf("sending handshake: %w", err)
	}
	var reply clusterv1.ExchangeResponse
	if err := cs.RecvMsg(&reply); err != nil {
		return nil, fmt.Errorf("reading handshake: %w", err)
	}
	auth := reply.GetAuth()
	if err := checkAuthFrame(auth); err != nil {
		return nil, err
	}
	if err := sess.checkMode(auth.GetSecretConfigured()); err != nil {
		return nil, err
	}
	sess.nonceS = auth.GetNonce()
	verified := sess.verifyProof(auth.GetProof())
	if a.ring.enabled() {
		// The proof goes out even when the server's failed, so the server can tell a wrong
		// secret from a broken stream; an HMAC under the wrong key reveals nothing.
		proof := &clusterv1.ExchangeRequest{Auth: &clusterv1.AuthFrame{Version: authVersion, SecretConfigured: true, Proof: sess.localProof()}}
		if err := cs.SendMsg(proof); err != nil && verified == nil {
			return nil, fmt.Errorf("sending proof: %w", err)
		}
	}
	if verified != nil {
		return nil, verified
	}
	return sess, nil
}

// checkAuthFrame validates the first frame of a direction.
func checkAuthFrame(auth *clusterv1.AuthFrame) error {
	switch {
	case auth == nil:
		return fmt.Errorf("%w: expected the authentication handshake first", ErrBadFrame)
	case auth.GetVersion() != authVersion:
		return fmt.Errorf("%w: authentication version %d, want %d", ErrBadFrame, auth.GetVersion(), authVersion)
	case len(auth.GetNonce()) != nonceSize:
		return fmt.Errorf("%w: nonce of %d bytes, want %d", ErrBadFrame, len(auth.GetNonce()), nonceSize)
	}
	return nil
}

// handshakeReadError is the error of a handshake frame the accepting side could not read
// (what it was reading): a stream that ended first (the dialler gave up on it, as a dial
// that timed out or that the overlay no longer needs does; the connection broke) is a
// transport error, no authentication failure; anything else, a frame that does not decode,
// breaks the protocol. Counted as bad frames, the dials a busy formation gives up on filled
// the authentication failures and their warnings.
func handshakeReadError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable:
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrBadFrame, what, err)
}

// fail logs an authentication failure, at most once per reason every logEvery.
func (a *peerAuth) fail(ctx context.Context, err error) {
	reason := "bad frame"
	switch {
	case errors.Is(err, errHandshakeTimeout):
		reason = "handshake timeout"
	case errors.Is(err, ErrPeerNoSecret):
		reason = "peer has no secret"
	case errors.Is(err, ErrLocalNoSecret):
		reason = "local node has no secret"
	case errors.Is(err, ErrWrongSecret):
		reason = "wrong secret"
	case !errors.Is(err, ErrBadFrame):
		return // a transport error, not an authentication failure
	}
	a.onFailure(reason)
	a.mu.Lock()
	last, seen := a.lastLogs[reason]
	now := time.Now()
	if seen && now.Sub(last) < logEvery {
		a.mu.Unlock()
		return
	}
	a.lastLogs[reason] = now
	a.mu.Unlock()
	remote := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	a.logger.Warn("peer authentication failed", "reason", reason, "remote", remote, "err", err.Error())
}

// authCode maps an authentication error to a gRPC code (a handshake not completed in time
// as a frame that breaks the protocol).
func authCode(err error) codes.Code {
	if errors.Is(err, ErrBadFrame) || errors.Is(err, errHandshakeTimeout) {
		return codes.InvalidArgument
	}
	return codes.Unauthenticated
}

// exchangeFrame is a frame of the peer stream, as a type: a request (dialler to acceptor) or
// a response.
type exchangeFrame interface {
	*clusterv1.ExchangeRequest | *clusterv1.ExchangeResponse
	peerFrame
}

// msgStream is what the two sides of a gRPC stream share.
type msgStream interface {
	Context() context.Context
	SendMsg(m any) error
	RecvMsg(m any) error
}

// frameAuth signs the frames one side of an authenticated stream sends (Out) and verifies the
// frames it receives (In).
type frameAuth[Out, In exchangeFrame] struct {
	sess *session
	auth *peerAuth
}

// send seals m, which must be an Out, and sends it on s.
func (a frameAuth[Out, In]) send(s msgStream, m any) error {
	f, ok := m.(Out)
	if !ok {
		return status.Errorf(codes.Internal, "unexpected frame type %T", m)
	}
	seq, mac := a.sess.seal(f.GetBody())
	switch f := any(f).(type) {
	case *clusterv1.ExchangeRequest:
		f.Sequence, f.Mac = seq, mac
	case *clusterv1.ExchangeResponse:
		f.Sequence, f.Mac = seq, mac
	}
	return s.SendMsg(m)
}

// recv receives m, which must be an In, from s and accepts it only if its sequence and MAC
// verify.
func (a frameAuth[Out, In]) recv(s msgStream, m any) error {
	if err := s.RecvMsg(m); err != nil {
		return err
	}
	f, ok := m.(In)
	if !ok {
		return status.Errorf(codes.Internal, "unexpected frame type %T", m)
	}
	if err := a.sess.openFrame(f.GetAuth(), f.GetSequence(), f.GetBody(), f.GetMac()); err != nil {
		a.auth.fail(s.Context(), err)
		return status.Error(authCode(err), err.Error())
	}
	return nil
}

// authedServerStream signs what the accepting side sends (responses) and verifies what it
// receives (requests).
type authedServerStream struct {
	grpc.ServerStream
	frames frameAuth[*clusterv1.ExchangeResponse, *clusterv1.ExchangeRequest]
}

// SendMsg seals an ExchangeResponse.
func (s *authedServerStream) SendMsg(m any) error { return s.frames.send(s.ServerStream, m) }

// RecvMsg accepts an ExchangeRequest only if its sequence and MAC verify.
func (s *authedServerStream) RecvMsg(m any) error { return s.frames.recv(s.ServerStream, m) }

// authedClientStream signs what the dialling side sends (requests) and verifies what it
// receives (responses).
type authedClientStream struct {
	grpc.ClientStream
	frames frameAuth[*clusterv1.ExchangeRequest, *clusterv1.ExchangeResponse]
}

// SendMsg seals an ExchangeRequest.
func (s *authedClientStream) SendMsg(m any) error { return s.frames.send(s.ClientStream, m) }

// RecvMsg accepts an ExchangeResponse only if its sequence and MAC verify.
func (s *authedClientStream) RecvMsg(m any) error { return s.frames.recv(s.ClientStream, m) }
