// Package client is a Go client of a node's public MembershipService.
package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	clusterv1 "github.com/meshnode/meshnode/gen/cluster/v1"
	"github.com/meshnode/meshnode/internal/apiconv"
	"github.com/meshnode/meshnode/internal/quote"
	"github.com/meshnode/meshnode/membership"
)

// DefaultAddr is the address clients dial unless told otherwise.
const DefaultAddr = "127.0.0.1:4369"

// Client talks to one node. It is safe for concurrent use.
type Client struct {
	addr string
	cc   *grpc.ClientConn
	api  clusterv1.MembershipServiceClient
}

// options are the dial settings.
type options struct {
	token       string
	tls         *tls.Config
	dialOptions []grpc.DialOption
	// probeInterval is the resolver's liveness probe period (0: the default).
	probeInterval time.Duration
}

// Option customises Dial.
type Option func(*options)

// WithToken sends token as a bearer token with every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS dials with TLS using cfg (nil: plaintext, the default).
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithDialOptions adds raw gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Dial returns a client of the node at addr (host:port). It does not wait for a connection:
// the first call does.
func Dial(addr string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dialOpts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, o.dialOptions...)
	if o.token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{token: o.token}))
	}
	cc, err := grpc.NewClient(addr, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &Client{addr: addr, cc: cc, api: clusterv1.NewMembershipServiceClient(cc)}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.cc.Close() }

// API returns the generated client of the node's MembershipService, for calls and fields
// this package does not wrap; it shares the client's connection, token and TLS.
func (c *Client) API() clusterv1.MembershipServiceClient { return c.api }

// Addr returns the address the client dials.
func (c *Client) Addr() string { return c.addr }

// LocalNode describes the node the client talks to.
type LocalNode struct {
	// Node is the node's own info.
	Node membership.NodeInfo
	// Status is its lifecycle status.
	Status membership.ClusterStatus
	// Uptime is how long it has been running.
	Uptime time.Duration
}

// LocalNode returns the node's own info.
func (c *Client) LocalNode(ctx context.Context) (LocalNode, error) {
	resp, err := c.api.GetLocalNode(ctx, &clusterv1.GetLocalNodeRequest{})
	if err != nil {
		return LocalNode{}, fmt.Errorf("get local node from %s: %w", c.addr, err)
	}
	return LocalNode{
		Node:   apiconv.NodeInfoFromWire(resp.GetNode()),
		Status: apiconv.ClusterStatusFromWire(resp.GetStatus()),
		Uptime: asDuration(resp.GetUptime()),
	}, nil
}

// Nodes lists the nodes the node knows (only the connected ones if connectedOnly).
func (c *Client) Nodes(ctx context.Context, connectedOnly bool) ([]membership.NodeInfo, error) {
	resp, err := c.api.ListNodes(ctx, &clusterv1.ListNodesRequest{ConnectedOnly: connectedOnly})
	if err != nil {
		return nil, fmt.Errorf("list nodes of %s: %w", c.addr, err)
	}
	return apiconv.NodeInfosFromWire(resp.GetNodes()), nil
}

// Node returns one node; the error carries codes.NotFound or codes.InvalidArgument
// (status.Code(err)) for an unknown or malformed id.
func (c *Client) Node(ctx context.Context, id string) (membership.NodeInfo, error) {
	resp, err := c.api.GetNode(ctx, &clusterv1.GetNodeRequest{Id: id})
	if err != nil {
		return membership.NodeInfo{}, fmt.Errorf("get node %s from %s: %w", quote.Input(id), c.addr, err)
	}
	return apiconv.NodeInfoFromWire(resp.GetNode()), nil
}

// UpdateLocalNode changes the node's process count and metadata as u says (nil fields are
// kept; an empty, non-nil Metadata clears it) and returns the node's info after the change.
// Every node that streams to the node (all of them in a full mesh) sees the change within a
// round trip and fires node_updated. A value
// the node refuses carries codes.InvalidArgument.
func (c *Client) UpdateLocalNode(ctx context.Context, u membership.LocalUpdate) (membership.NodeInfo, error) {
	req := &clusterv1.UpdateLocalNodeRequest{Metadata: u.Metadata, ClearMetadata: u.Metadata != nil && len(u.Metadata) == 0}
	if u.ProcessCount != nil {
		if *u.ProcessCount < 0 || *u.ProcessCount > membership.MaxProcessCount {
			return membership.NodeInfo{}, fmt.Errorf("update %s: process count must be between 0 and %d (got %d)", c.addr, membership.MaxProcessCount, *u.ProcessCount)
		}
		n := uint32(*u.ProcessCount)
		req.ProcessCount = &n
	}
	resp, err := c.api.UpdateLocalNode(ctx, req)
	if err != nil {
		return membership.NodeInfo{}, fmt.Errorf("update %s: %w", c.addr, err)
	}
	return apiconv.NodeInfoFromWire(resp.GetNode()), nil
}

// Health returns the node's cluster health report.
func (c *Client) Health(ctx context.Context) (membership.HealthReport, error) {
	resp, err := c.api.GetHealth(ctx, &clusterv1.GetHealthRequest{})
	if err != nil {
		return membership.HealthReport{}, fmt.Errorf("get health of %s: %w", c.addr, err)
	}
	return HealthReport(resp), nil
}

// HealthReport converts a GetHealth response of the API.
func HealthReport(resp *clusterv1.GetHealthResponse) membership.HealthReport {
	report := membership.HealthReport{
		Status:              apiconv.HealthStatusFromWire(resp.GetStatus()),
		Connected:           int(resp.GetConnectedNodes()),
		Known:               int(resp.GetKnownNodes()),
		AvailabilityPercent: resp.GetAvailabilityPercent(),
		RecentDowns:         int(resp.GetRecentDownCount()),
		Window:              asDuration(resp.GetRecentWindow()),
		Uptime:              asDuration(resp.GetUptime()),
		Message:             resp.GetMessage(),
	}
	for _, e := range resp.GetRecentEvents() {
		report.RecentEvents = append(report.RecentEvents, fromEvent(e).Event())
	}
	for _, s := range resp.GetSeeds() {
		report.Seeds = append(report.Seeds, membership.SeedStatus{
			Seed: s.GetSeed(), Reachable: s.GetReachable(), LastError: s.GetLastError(), FailedDials: int(s.GetFailedDials()),
		})
	}
	return report
}

func asDuration(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

// bearer attaches a bearer token to every call.
type bearer struct {
	token string
}

// GetRequestMetadata returns the authorization header.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false so a token also works on a plaintext loopback port.
func (b bearer) RequireTransportSecurity() bool { return false }
