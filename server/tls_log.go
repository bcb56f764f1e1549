package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
)

// verifyLogged wraps the TLS credentials of peer dials: a handshake that fails on a
// certificate (the peer's failed verification here, or ours failed it there) is logged at
// warn level with the TLS reason, once per peer address and reason. The engine only sees a
// failed dial (connection_refused for a node not yet up), which does not say why.
type verifyLogged struct {
	credentials.TransportCredentials
	log *certFailureLog
}

// certFailureLog remembers which (address, reason) pairs were logged.
type certFailureLog struct {
	logger *slog.Logger
	mu     sync.Mutex
	seen   map[string]struct{}
}

// maxCertFailuresLogged bounds the pairs remembered; past it failures are not logged.
const maxCertFailuresLogged = 1024

func newVerifyLogged(creds credentials.TransportCredentials, logger *slog.Logger) *verifyLogged {
	return &verifyLogged{TransportCredentials: creds, log: &certFailureLog{logger: logger, seen: map[string]struct{}{}}}
}

// ClientHandshake runs the TLS handshake and logs a certificate failure.
func (v *verifyLogged) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := v.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		if reason, ok := certificateFailure(err); ok {
			v.log.once(raw.RemoteAddr().String(), reason)
		}
	}
	return conn, info, err
}

// Clone returns a copy sharing the log.
func (v *verifyLogged) Clone() credentials.TransportCredentials {
	return &verifyLogged{TransportCredentials: v.TransportCredentials.Clone(), log: v.log}
}

func (l *certFailureLog) once(addr, reason string) {
	key := addr + "\x00" + reason
	l.mu.Lock()
	_, seen := l.seen[key]
	if !seen && len(l.seen) < maxCertFailuresLogged {
		l.seen[key] = struct{}{}
	} else {
		seen = true
	}
	l.mu.Unlock()
	if !seen {
		l.logger.Warn("TLS handshake with a peer failed on a certificate (logged once per peer and reason)", "addr", addr, "reason", reason)
	}
}

// certificateFailure says whether err is a TLS handshake failure about a certificate, and
// why: ours of the peer's certificate, or the peer's alert about ours.
func certificateFailure(err error) (string, bool) {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var op *net.OpError
	switch {
	case errors.As(err, &verify):
		return "peer certificate failed verification: " + verify.Err.Error(), true
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return "peer certificate failed verification: " + err.Error(), true
	case errors.As(err, &op) && op.Op == "remote error":
		return "the peer refused the handshake: " + op.Err.Error(), true
	}
	return "", false
}
