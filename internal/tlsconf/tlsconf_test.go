package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadWithoutFilesIsPlainDefaults(t *testing.T) {
	m, err := Load("", "", "")
	require.NoError(t, err)
	require.Empty(t, m.Certificates)
	require.Nil(t, m.CAs)
	require.Equal(t, tls.NoClientCert, m.Server().ClientAuth, "no CA: no client certificate asked for")
	require.Nil(t, m.Client().RootCAs, "no CA: the system roots")
	require.Equal(t, uint16(tls.VersionTLS12), m.Client().MinVersion)
	require.Equal(t, uint16(tls.VersionTLS12), m.Server().MinVersion)
}

func TestACAMakesTheServerMutualAndVerifiesTheServer(t *testing.T) {
	m := Material{CAs: x509.NewCertPool()}
	require.Equal(t, tls.RequireAndVerifyClientCert, m.Server().ClientAuth)
	require.Same(t, m.CAs, m.Server().ClientCAs)
	require.Same(t, m.CAs, m.Client().RootCAs)
}

func TestLoadRefusesWhatItCannotUse(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("not a certificate\n"), 0o600))

	_, err := Load(filepath.Join(dir, "missing.pem"), "", "")
	require.ErrorContains(t, err, "read CA file")
	_, err = Load(empty, "", "")
	require.ErrorContains(t, err, "holds no PEM certificate")
	_, err = Load("", empty, "")
	require.ErrorContains(t, err, "load TLS key pair", "a certificate without its key")
}
