package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// A node dials all its peers through one gRPC ClientConn, its peer channel, instead of one
// ClientConn per peer. Every dial still gets its own HTTP/2 connection (a SubConn of its own),
// so a broken stream still means a broken connection; what is shared is the per-channel
// machinery (resolver, balancer, state publisher: three goroutines and about 30 KiB per
// ClientConn, a fifth of a node's memory and a quarter of the formation time in a full mesh
// of 128).
//
// The channel's balancer, peerBalancer, creates no SubConn by itself: Dial asks the router for
// one per dial, and the picker sends each stream to the SubConn of the dial named in the
// stream's context.

// peerBalancerName is the name of the load-balancing policy of peer channels.
const peerBalancerName = "meshnode_peer_dials"

// peerChannelScheme is the resolver scheme of peer channels; the resolver is the channel's
// own (grpc.WithResolvers), never registered globally.
const peerChannelScheme = "meshnode-peers"

// gRPC finds load-balancing policies by name only, in a registry filled at init time. The
// builder is stateless: each channel gets its own balancer, which finds its node's router in
// the channel's resolver state.
func init() { balancer.Register(peerBalancerBuilder{}) }

// errPeerChannelClosed is returned by dials after the node's peer channel was closed.
var errPeerChannelClosed = errors.New("peer channel closed")

// peerChannel is a node's ClientConn for dialling peers, created on the first dial and
// closed when the node stops serving.
type peerChannel struct {
	dialOptions []grpc.DialOption

	mu     sync.Mutex
	cc     *grpc.ClientConn
	router *peerRouter
}

// open returns the live channel and its router, creating them when needed.
func (p *peerChannel) open() (*grpc.ClientConn, *peerRouter, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cc != nil {
		return p.cc, p.router, nil
	}
	router := newPeerRouter()
	opts := append([]grpc.DialOption{
		grpc.WithResolvers(peerResolverBuilder{router: router}),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"` + peerBalancerName + `":{}}]}`),
		grpc.WithIdleTimeout(0), // idleness would shut every SubConn down behind the router's back
	}, p.dialOptions...)
	cc, err := grpc.NewClient(peerChannelScheme+":///peers", opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("peer channel: %w", err)
	}
	cc.Connect() // builds the resolver and the balancer, which attaches the router
	p.cc, p.router = cc, router
	return cc, router, nil
}

// close closes the channel and every connection dialled through it; the next dial opens a
// new channel (a node that restarts).
func (p *peerChannel) close() {
	p.mu.Lock()
	cc, router := p.cc, p.router
	p.cc, p.router = nil, nil
	p.mu.Unlock()
	if cc != nil {
		router.detach()
		_ = cc.Close()
	}
}

// peerRouter is shared by a channel's resolver, balancer and picker and by the dials.
type peerRouter struct {
	attached   chan struct{} // closed once the balancer is attached, or the router detached
	attachOnce sync.Once

	mu     sync.Mutex
	cc     balancer.ClientConn // the channel as its balancer sees it; nil once the balancer closed
	closed bool
}

func newPeerRouter() *peerRouter { return &peerRouter{attached: make(chan struct{})} }

// attach is called by the balancer when it first sees the router: the channel is ready for
// dials. It publishes the picker.
func (r *peerRouter) attach(cc balancer.ClientConn) {
	r.mu.Lock()
	if !r.closed {
		r.cc = cc
	}
	r.mu.Unlock()
	r.attachOnce.Do(func() { close(r.attached) })
	r.repick()
}

// detach is called when the channel or its balancer closes: later dials fail at once.
func (r *peerRouter) detach() {
	r.mu.Lock()
	r.cc, r.closed = nil, true
	r.mu.Unlock()
	r.attachOnce.Do(func() { close(r.attached) })
}

// repick publishes the picker again, so that streams waiting for their SubConn look again.
// It runs on the balancer's goroutine (attach and SubConn state listeners).
func (r *peerRouter) repick() {
	r.mu.Lock()
	cc := r.cc
	r.mu.Unlock()
	if cc != nil {
		cc.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: peerPicker{}})
	}
}

// newDial creates the SubConn of one dial to addr and starts connecting it.
func (r *peerRouter) newDial(ctx context.Context, addr string) (*peerDial, error) {
	select {
	case <-r.attached:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r.mu.Lock()
	cc := r.cc
	r.mu.Unlock()
	if cc == nil {
		return nil, errPeerChannelClosed
	}
	d := &peerDial{router: r, addr: addr, state: connectivity.Idle}
	// ServerName keeps TLS verifying the peer's own name, as a channel per peer did.
	sc, err := cc.NewSubConn([]resolver.Address{{Addr: addr, ServerName: addr}},
		balancer.NewSubConnOptions{StateListener: d.setState})
	if err != nil {
		return nil, fmt.Errorf("new SubConn: %w", err)
	}
	d.mu.Lock()
	d.sc = sc
	d.mu.Unlock()
	sc.Connect()
	return d, nil
}

// peerDial is one dial: a SubConn of its own and the state the picker needs.
type peerDial struct {
	router *peerRouter
	addr   string

	mu      sync.Mutex
	sc      balancer.SubConn
	state   connectivity.State
	err     error
	started bool // the SubConn has left its first IDLE: IDLE again means the connection ended
	// wasRefused says the last connection attempt before any Ready failed with
	// ECONNREFUSED. It outlives the TRANSIENT_FAILURE state, which the SubConn may leave
	// (to retry, or shut down) before the failed dial asks (refused).
	wasRefused bool
}

// setState is the SubConn's state listener (on the balancer's goroutine).
func (d *peerDial) setState(s balancer.SubConnState) {
	d.mu.Lock()
	d.state, d.err = s.ConnectivityState, s.ConnectionError
	switch s.ConnectivityState {
	case connectivity.TransientFailure:
		d.wasRefused = errors.Is(s.ConnectionError, syscall.ECONNREFUSED)
	case connectivity.Ready:
		d.wasRefused = false
	}
	if s.ConnectivityState != connectivity.Idle {
		d.started = true
	}
	d.mu.Unlock()
	if s.ConnectivityState != connectivity.Shutdown {
		d.router.repick()
	}
}

// pick returns the SubConn once it is ready, balancer.ErrNoSubConnAvailable while it
// connects (the stream waits for the next picker), and an Unavailable error once the
// connection failed or ended (the stream fails, and so the dial).
func (d *peerDial) pick() (balancer.PickResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.state == connectivity.Ready:
		return balancer.PickResult{SubConn: d.sc}, nil
	case d.state == connectivity.TransientFailure:
		return balancer.PickResult{}, status.Errorf(codes.Unavailable, "connect to %s: %v", d.addr, d.err)
	case d.state == connectivity.Shutdown, d.state == connectivity.Idle && d.started:
		return balancer.PickResult{}, status.Errorf(codes.Unavailable, "connection to %s ended", d.addr)
	default:
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
}

// refused reports whether the dial's connection failed because nothing listens at its
// address (ECONNREFUSED from the TCP dial).
func (d *peerDial) refused() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wasRefused
}

// shutdown closes the dial's connection once its streams have ended.
func (d *peerDial) shutdown() {
	d.mu.Lock()
	sc := d.sc
	d.mu.Unlock()
	if sc != nil {
		sc.Shutdown()
	}
}

// peerDialKey is the context key under which a stream names its dial for the picker.
type peerDialKey struct{}

// peerPicker sends each stream to the SubConn of its dial.
type peerPicker struct{}

// Pick implements balancer.Picker.
func (peerPicker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	d, ok := info.Ctx.Value(peerDialKey{}).(*peerDial)
	if !ok {
		return balancer.PickResult{}, status.Error(codes.Internal, "peer stream without a dial")
	}
	return d.pick()
}

// routerKey is the resolver-state attribute that carries a channel's router to its balancer.
type routerKey struct{}

// peerResolverBuilder builds the resolver of one peer channel: it resolves to no address and
// carries the router.
type peerResolverBuilder struct{ router *peerRouter }

// Build implements resolver.Builder.
func (b peerResolverBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if err := cc.UpdateState(resolver.State{Attributes: attributes.New(routerKey{}, b.router)}); err != nil {
		return nil, fmt.Errorf("peer resolver: %w", err)
	}
	return peerResolver{}, nil
}

// Scheme implements resolver.Builder.
func (peerResolverBuilder) Scheme() string { return peerChannelScheme }

// peerResolver has nothing to resolve.
type peerResolver struct{}

// ResolveNow implements resolver.Resolver.
func (peerResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close implements resolver.Resolver.
func (peerResolver) Close() {}

// peerBalancerBuilder builds the balancer of a peer channel.
type peerBalancerBuilder struct{}

// Build implements balancer.Builder.
func (peerBalancerBuilder) Build(cc balancer.ClientConn, _ balancer.BuildOptions) balancer.Balancer {
	return &peerBalancer{cc: cc}
}

// Name implements balancer.Builder.
func (peerBalancerBuilder) Name() string { return peerBalancerName }

// peerBalancer attaches its channel's router; the router and the dials do the rest.
type peerBalancer struct {
	cc     balancer.ClientConn
	router *peerRouter
}

// UpdateClientConnState implements balancer.Balancer.
func (b *peerBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	if b.router != nil {
		return nil
	}
	router, ok := s.ResolverState.Attributes.Value(routerKey{}).(*peerRouter)
	if !ok {
		return balancer.ErrBadResolverState
	}
	b.router = router
	router.attach(b.cc)
	return nil
}

// ResolverError implements balancer.Balancer; the peer resolver reports none.
func (*peerBalancer) ResolverError(error) {}

// UpdateSubConnState implements balancer.Balancer; dials use state listeners.
func (*peerBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

// ExitIdle implements balancer.Balancer; dials connect their SubConns themselves.
func (*peerBalancer) ExitIdle() {}

// Close implements balancer.Balancer.
func (b *peerBalancer) Close() {
	if b.router != nil {
		b.router.detach()
	}
}
