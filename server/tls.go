package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/meshnode/meshnode/internal/quote"
)

// TLSFiles names the PEM files of a node's TLS setup. With CAFile set, TLS is mutual: peers
// and API clients must present a certificate signed by that CA, and peers' server
// certificates are verified against it.
type TLSFiles struct {
	// CertFile and KeyFile are the node's certificate and private key.
	CertFile, KeyFile string
	// CAFile is the CA that signs peer (and client) certificates; empty: system roots, no
	// client certificates.
	CAFile string
}

// tlsConfigs loads the server and the peer-dial TLS configurations.
func (f TLSFiles) tlsConfigs() (serverCfg, dialCfg *tls.Config, err error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, nil, errors.New("TLS needs both a certificate and a key file")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	serverCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	dialCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pool, err := LoadCertPool(f.CAFile)
		if err != nil {
			return nil, nil, err
		}
		serverCfg.ClientCAs = pool
		serverCfg.ClientAuth = tls.RequireAndVerifyClientCert
		dialCfg.RootCAs = pool
	}
	return serverCfg, dialCfg, nil
}

// LoadCertPool reads a PEM file of CA certificates.
func LoadCertPool(path string) (*x509.CertPool, error) {
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
