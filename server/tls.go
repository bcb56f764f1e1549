package server

import (
	"crypto/tls"
	"errors"

	"github.com/meshnode/meshnode/internal/tlsconf"
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

// tlsConfigs loads the server and the peer-dial TLS configurations: the same key pair, and
// the CA verifies clients' certificates on the port and peers' server certificates on dials.
func (f TLSFiles) tlsConfigs() (serverCfg, dialCfg *tls.Config, err error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, nil, errors.New("TLS needs both a certificate and a key file")
	}
	m, err := tlsconf.Load(f.CAFile, f.CertFile, f.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	return m.Server(), m.Client(), nil
}
