// Package echo is the example's application service: one unary method that answers with the
// name of the backend that served the call. It is written by hand (a grpc.ServiceDesc and
// protobuf's wrapper types), so the example needs no .proto file of its own.
package echo

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Method is the full name of the service's one method.
const Method = "/meshnode.example.Echo/Who"

// Server answers calls with its name.
type Server interface {
	// Who returns the name of the backend, given the caller's message.
	Who(ctx context.Context, msg string) string
}

// serviceDesc describes the service to gRPC.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: "meshnode.example.Echo",
	HandlerType: (*Server)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Who",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			handle := func(ctx context.Context, req any) (any, error) {
				return wrapperspb.String(srv.(Server).Who(ctx, req.(*wrapperspb.StringValue).GetValue())), nil
			}
			if interceptor == nil {
				return handle(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: Method}, handle)
		},
	}},
}

// Register serves s on g.
func Register(g *grpc.Server, s Server) { g.RegisterService(&serviceDesc, s) }

// Call calls the service over cc and returns the name of the backend that answered.
func Call(ctx context.Context, cc grpc.ClientConnInterface, msg string) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, Method, wrapperspb.String(msg), out); err != nil {
		return "", fmt.Errorf("call %s: %w", Method, err)
	}
	return out.GetValue(), nil
}
