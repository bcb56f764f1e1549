package server

import (
	"context"
	"crypto/subtle"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
)

// apiTokenAuth checks the bearer token of MembershipService calls in constant time. Health
// and reflection stay open for probes and grpcurl; PeerService has its own HMAC.
type apiTokenAuth struct{ token []byte }

// isPublicAPI selects MembershipService calls.
func isPublicAPI(_ context.Context, meta interceptors.CallMeta) bool {
	return meta.Service == clusterv1.MembershipService_ServiceDesc.ServiceName
}

// enabled says whether a token is required.
func (a apiTokenAuth) enabled() bool { return len(a.token) > 0 }

// check accepts ctx's call if it carries the token as a bearer token.
func (a apiTokenAuth) check(ctx context.Context) (context.Context, error) {
	token, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(token), a.token) != 1 {
		return nil, status.Error(codes.Unauthenticated, "invalid API token")
	}
	return ctx, nil
}

// unary returns the unary interceptor (a no-op without a token).
func (a apiTokenAuth) unary() grpc.UnaryServerInterceptor {
	if len(a.token) == 0 {
		return passUnary
	}
	return selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(a.check), selector.MatchFunc(isPublicAPI))
}

// stream returns the stream interceptor (a no-op without a token).
func (a apiTokenAuth) stream() grpc.StreamServerInterceptor {
	if len(a.token) == 0 {
		return passStream
	}
	return selector.StreamServerInterceptor(auth.StreamServerInterceptor(a.check), selector.MatchFunc(isPublicAPI))
}

func passUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(ctx, req)
}

func passStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, ss)
}
