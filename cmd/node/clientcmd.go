package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshnode/meshnode/client"
	"github.com/meshnode/meshnode/membership"
)

// clientFlags are the options every client command takes.
type clientFlags struct {
	s                      *settings
	addr                   *setting
	token                  tokenFlags
	tlsCA, tlsCert, tlsKey *setting
}

func newClientFlags(name string) *clientFlags {
	s := newSettings(name)
	return &clientFlags{
		s:       s,
		addr:    s.str("addr", "CLUSTER_ADDR", client.DefaultAddr, "address of the node to ask, host:port"),
		token:   newTokenFlags(s, "bearer token for the node's API"),
		tlsCA:   s.str("tls-ca", "CLUSTER_TLS_CA", "", "PEM CA to verify the node's certificate: dial with TLS"),
		tlsCert: s.str("tls-cert", "CLUSTER_TLS_CERT", "", "PEM client certificate, for mutual TLS"),
		tlsKey:  s.str("tls-key", "CLUSTER_TLS_KEY", "", "PEM private key of --tls-cert"),
	}
}

// dial parses the flags and returns a client; on error it has printed it and returns the exit code.
func (f *clientFlags) dial(args []string, stderr io.Writer) (*client.Client, int) {
	f.s.fs.SetOutput(stderr)
	if err := f.s.parse(args); err != nil {
		if errors.Is(err, errHelp) {
			return nil, exitOK
		}
		fmt.Fprintf(stderr, "node %s: %v\n", f.s.fs.Name(), err)
		return nil, exitConfig
	}
	// An address that cannot be one is a wrong flag, not a node that cannot be reached.
	if _, err := membership.ParseAddress(f.addr.value); err != nil {
		fmt.Fprintf(stderr, "node %s: --addr: %v\n", f.s.fs.Name(), err)
		return nil, exitConfig
	}
	var opts []client.Option
	token, err := f.token.value()
	if err != nil {
		fmt.Fprintf(stderr, "node %s: %v\n", f.s.fs.Name(), err)
		return nil, exitConfig
	}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	if f.tlsCA.value != "" || f.tlsCert.value != "" {
		cfg, err := client.TLSConfig(f.tlsCA.value, f.tlsCert.value, f.tlsKey.value)
		if err != nil {
			fmt.Fprintf(stderr, "node %s: %v\n", f.s.fs.Name(), err)
			return nil, exitConfig
		}
		opts = append(opts, client.WithTLS(cfg))
	}
	c, err := client.Dial(f.addr.value, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "node %s: %v\n", f.s.fs.Name(), err)
		return nil, exitConfig
	}
	return c, -1
}

// fail prints a call error as one line and returns exit code 1.
func fail(stderr io.Writer, cmd, addr string, err error) int {
	fmt.Fprintf(stderr, "node %s: %s\n", cmd, describe(addr, err))
	return exitError
}

// describe turns a gRPC error into one readable sentence.
func describe(addr string, err error) string {
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	st, ok := statusOf(err)
	if !ok {
		return err.Error()
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Sprintf("cannot reach a node at %s (is `node agent` running there?)", addr)
	case codes.DeadlineExceeded:
		return fmt.Sprintf("the node at %s did not answer in time", addr)
	case codes.Unauthenticated, codes.PermissionDenied:
		return fmt.Sprintf("the node at %s refused the call: %s (check --token-file or --token)", addr, st.Message())
	default:
		return fmt.Sprintf("%s: %s", st.Code(), st.Message())
	}
}

// statusOf returns the gRPC status of err: of the error it wraps when it wraps one, whose
// message is then the server's alone, without the client's context.
func statusOf(err error) (*status.Status, bool) {
	if inner := errors.Unwrap(err); inner != nil {
		if st, ok := status.FromError(inner); ok {
			return st, true
		}
	}
	st, ok := status.FromError(err)
	return st, ok && err != nil
}
