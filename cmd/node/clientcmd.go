package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshnode/meshnode/client"
	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/membership"
)

// clientFlags are the options every client command takes.
type clientFlags struct {
	s                      *settings
	addr                   *setting
	token                  tokenFlags
	tlsCA, tlsCert, tlsKey *setting
}

// newClientFlags declares the client options on fs.
func newClientFlags(fs *pflag.FlagSet) *clientFlags {
	s := newSettings(fs)
	return &clientFlags{
		s:       s,
		addr:    s.str("addr", "CLUSTER_ADDR", client.DefaultAddr, "address of the node to ask").as("host:port"),
		token:   newTokenFlags(s, "bearer token for the node's API"),
		tlsCA:   s.str("tls-ca", "CLUSTER_TLS_CA", "", "PEM CA to verify the node's certificate: dial with TLS").as("file"),
		tlsCert: s.str("tls-cert", "CLUSTER_TLS_CERT", "", "PEM client certificate, for mutual TLS").as("file"),
		tlsKey:  s.str("tls-key", "CLUSTER_TLS_KEY", "", "PEM private key of --tls-cert").as("file"),
	}
}

// dial returns a client of the node at --addr, or an exit error (exit 2) for options that
// cannot work: an address that cannot be one, a token given twice or unreadable, bad TLS files.
func (f *clientFlags) dial() (*client.Client, error) {
	f.s.applyEnv()
	// An address that cannot be one is a wrong flag, not a node that cannot be reached.
	if _, err := membership.ParseAddress(f.addr.value); err != nil {
		return nil, configError(fmt.Errorf("--addr: %w", err))
	}
	var opts []client.Option
	token, err := f.token.value()
	if err != nil {
		return nil, configError(err)
	}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	if f.tlsCA.value != "" || f.tlsCert.value != "" {
		cfg, err := client.TLSConfig(f.tlsCA.value, f.tlsCert.value, f.tlsKey.value)
		if err != nil {
			return nil, configError(err)
		}
		opts = append(opts, client.WithTLS(cfg))
	}
	c, err := client.Dial(f.addr.value, opts...)
	if err != nil {
		return nil, configError(err)
	}
	return c, nil
}

// callOnce dials the node at --addr, makes one call within callTimeout and closes the
// connection. A call that fails is reported with callFailed.
func callOnce[T any](ctx context.Context, f *clientFlags, call func(context.Context, clusterv1.MembershipServiceClient) (T, error)) (T, error) {
	var zero T
	c, err := f.dial()
	if err != nil {
		return zero, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := call(ctx, c.API())
	if err != nil {
		return zero, callFailed(f.addr.value, err)
	}
	return resp, nil
}

// callFailed is the exit error (exit 1) of a failed call, said in one sentence.
func callFailed(addr string, err error) error {
	return &exitError{code: exitFailure, err: errors.New(describe(addr, err))}
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
