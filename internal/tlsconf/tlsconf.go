// Package tlsconf builds the TLS configurations of the node (its port and its peer dials) and
// of the API clients from PEM files, one way for both.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/meshnode/meshnode/internal/quote"
)

// Material is what the PEM files hold: a certificate with its key (none: no certificate to
// present) and the CAs to verify the other side with (nil: the system roots, and no client
// certificate asked for).
type Material struct {
	// Certificates holds the key pair, if any.
	Certificates []tls.Certificate
	// CAs verifies the other side; nil for the system roots.
	CAs *x509.CertPool
}

// Load reads caFile (empty: none) and the key pair certFile and keyFile (both empty: none).
func Load(caFile, certFile, keyFile string) (Material, error) {
	var m Material
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return Material{}, fmt.Errorf("load TLS key pair: %w", err)
		}
		m.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pool, err := CertPool(caFile)
		if err != nil {
			return Material{}, err
		}
		m.CAs = pool
	}
	return m, nil
}

// CertPool reads a PEM file of CA certificates.
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", quote.Input(path))
	}
	return pool, nil
}

// Server returns the configuration of a port: it presents the certificate and, with CAs,
// requires a client certificate they signed (mutual TLS).
func (m Material) Server() *tls.Config {
	cfg := &tls.Config{Certificates: m.Certificates, MinVersion: tls.VersionTLS12}
	if m.CAs != nil {
		cfg.ClientCAs = m.CAs
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// Client returns the configuration of a dial: it verifies the server with the CAs and
// presents the certificate, if any, when asked for one.
func (m Material) Client() *tls.Config {
	return &tls.Config{Certificates: m.Certificates, RootCAs: m.CAs, MinVersion: tls.VersionTLS12}
}
