package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/meshnode/meshnode/membership"
)

// errCertDoesNotCoverID reports a peer whose verified certificate is not for the id its hello
// claims: with mutual TLS a node's id is bound to its certificate.
var errCertDoesNotCoverID = errors.New("peer certificate does not cover the id it claims")

// verifiedPeerCert returns the leaf of the client certificate chain the stream's peer
// presented and the server verified (mutual TLS), nil without one.
func verifiedPeerCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

// certCovers checks that cert is a certificate for id: its SANs (or, without DNS SANs, its
// common name) name the id's host, or name the node itself (a DNS SAN or common name equal to
// the id's name). A certificate for 127.0.0.1 covers every node on that host; one for
// "worker-1" covers worker-1 wherever it runs.
func certCovers(cert *x509.Certificate, id membership.NodeID) error {
	if cert.VerifyHostname(id.Host()) == nil || slices.Contains(cert.DNSNames, id.Name()) || cert.Subject.CommonName == id.Name() {
		return nil
	}
	return fmt.Errorf("%w: %s (certificate for %q, DNS %v, IP %v)", errCertDoesNotCoverID,
		id, cert.Subject.CommonName, cert.DNSNames, cert.IPAddresses)
}
