package client

import (
	"crypto/tls"

	"github.com/meshnode/meshnode/internal/tlsconf"
)

// TLSConfig builds a TLS configuration from PEM files: caFile verifies the node's certificate
// (empty: the system roots), certFile and keyFile are the client certificate for mutual TLS
// (both empty: none).
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	m, err := tlsconf.Load(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return m.Client(), nil
}
