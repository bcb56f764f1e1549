package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/meshnode/meshnode/membership"
)

// Scheme is the gRPC target scheme of the membership resolver: a channel dialled with
//
//	grpc.NewClient("meshnode:///10.0.0.1:4369,10.0.0.2:4369?metadata.role=api&port=8080",
//		grpc.WithDefaultServiceConfig(client.RoundRobinServiceConfig), ...)
//
// balances over the live nodes of the cluster that match the metadata filters.
//
// The path lists membership addresses (host:port or name@host:port, comma-separated) of
// nodes the resolver may watch. The query holds:
//
//   - metadata.KEY=VALUE: keep only the nodes whose metadata holds KEY with exactly VALUE;
//     every filter must hold.
//   - port=N: the application's port on every node.
//   - port_key=KEY: the metadata key under which each node publishes its application port
//     (a node that lacks it, or holds no valid port there, falls back to port=N, and is
//     left out when the target has no port=N).
//
// Without port and port_key, an endpoint is the node's membership address itself.
// Unknown parameters are refused, so a misspelt filter never matches every node.
const Scheme = "meshnode"

// RoundRobinServiceConfig is the service config that spreads a meshnode:/// channel's calls
// over every endpoint (gRPC's default policy, pick_first, sends them all to one). Pass it
// with grpc.WithDefaultServiceConfig. To add gRPC's client-side health checking, import
// google.golang.org/grpc/health for its side effect and use instead
//
//	{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}
const RoundRobinServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Defaults of the resolver.
const (
	// DefaultResolverProbeInterval is how often the resolver checks, with GetLocalNode, that
	// the node it watches still answers (and refreshes that node's metadata).
	DefaultResolverProbeInterval = time.Second
	// resolverBackoffBase and resolverBackoffMax bound the jittered delay between attempts
	// to watch a node.
	resolverBackoffBase = 100 * time.Millisecond
	resolverBackoffMax  = 5 * time.Second
)

func init() {
	// The one process-wide registration: grpc.NewClient("meshnode:///...") finds the
	// resolver by importing this package. Pass NewResolverBuilder(opts...) with
	// grpc.WithResolvers to use a token or TLS.
	resolver.Register(NewResolverBuilder())
}

// WithResolverProbeInterval sets how often a resolver built by NewResolverBuilder calls
// GetLocalNode on the node it watches (default DefaultResolverProbeInterval; each call has
// the interval as its deadline). A node that does not answer in time, frozen or cut off, is
// taken for gone: the resolver drops it and watches another node. The probe also refreshes
// the watched node's own metadata. Dial ignores this option.
func WithResolverProbeInterval(interval time.Duration) Option {
	return func(o *options) { o.probeInterval = interval }
}

// watchConn is what the resolver needs of a client of one node; *Client implements it.
type watchConn interface {
	LocalNode(ctx context.Context) (LocalNode, error)
	Watch(ctx context.Context, handler func(Event), opts ...WatchOption) error
	Close() error
}

// ResolverBuilder builds the resolvers of meshnode:/// targets (see Scheme). The package
// registers one without options for the scheme when it is imported; to watch nodes that
// require an API token or TLS, pass one built with NewResolverBuilder to grpc.NewClient with
// grpc.WithResolvers. It is safe for concurrent use.
type ResolverBuilder struct {
	opts          []Option
	probeInterval time.Duration
	// dial opens a client of a node; tests replace it with a fake.
	dial func(addr string) (watchConn, error)
	// backoffBase and backoffMax bound the delay between attempts.
	backoffBase, backoffMax time.Duration
}

// NewResolverBuilder returns a builder whose resolvers dial the nodes they watch with opts:
// WithToken, WithTLS and WithDialOptions as Dial takes them (they concern the membership
// API only, never the application's channel), and WithResolverProbeInterval.
func NewResolverBuilder(opts ...Option) *ResolverBuilder {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	b := &ResolverBuilder{
		opts:          slices.Clone(opts),
		probeInterval: DefaultResolverProbeInterval,
		backoffBase:   resolverBackoffBase,
		backoffMax:    resolverBackoffMax,
	}
	if o.probeInterval > 0 {
		b.probeInterval = o.probeInterval
	}
	b.dial = func(addr string) (watchConn, error) { return Dial(addr, b.opts...) }
	return b
}

// Scheme returns "meshnode".
func (b *ResolverBuilder) Scheme() string { return Scheme }

// Build parses target and starts watching one of its nodes. It returns at once; the
// endpoints follow as soon as a node has sent its snapshot.
func (b *ResolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	t, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &meshResolver{
		builder: b,
		target:  t,
		cc:      cc,
		ctx:     ctx,
		cancel:  cancel,
		next:    rand.IntN(len(t.seeds)),
	}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// ResolvedNode is what a meshnode:/// endpoint says about its node, in the endpoint's
// attributes (see NodeOfEndpoint), for balancers and interceptors that want it.
type ResolvedNode struct {
	// ID is the node's membership id.
	ID membership.NodeID
	// Incarnation distinguishes restarts of the node.
	Incarnation uint64
	// Metadata is the node's metadata when the resolver last saw it. Do not modify it.
	Metadata map[string]string
}

// Equal reports whether o is a ResolvedNode with the same id, incarnation and metadata; gRPC
// compares attributes with it.
func (n ResolvedNode) Equal(o any) bool {
	other, ok := o.(ResolvedNode)
	return ok && n.ID == other.ID && n.Incarnation == other.Incarnation && maps.Equal(n.Metadata, other.Metadata)
}

// nodeKey is the attribute key of an endpoint's ResolvedNode.
type nodeKey struct{}

// NodeOfEndpoint returns the node behind an endpoint that a meshnode:/// resolver produced.
func NodeOfEndpoint(ep resolver.Endpoint) (ResolvedNode, bool) {
	n, ok := ep.Attributes.Value(nodeKey{}).(ResolvedNode)
	return n, ok
}

// endpoint is one endpoint the resolver pushes.
type endpoint struct {
	addr string
	node ResolvedNode
}

// meshResolver watches one node at a time and pushes the matching live nodes.
type meshResolver struct {
	builder *ResolverBuilder
	target  resolverTarget
	cc      resolver.ClientConn
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// next is the index of the next candidate to watch (only the run goroutine uses it).
	next int

	mu sync.Mutex
	// view holds the connected nodes of the watched node's view, by id.
	view map[membership.NodeID]membership.NodeInfo
	// local is the watched node itself (a view never lists the node it belongs to).
	local membership.NodeInfo
	// running reports that the current watch has its snapshot and its node is running:
	// only then is its view the truth.
	running bool
	// pushed is the last state pushed, sorted by address; published reports that one was.
	pushed    []endpoint
	published bool
	// learned are membership addresses of the nodes last seen, candidates after the seeds.
	learned []string
}

// ResolveNow does nothing: the resolver follows a watch, it never polls.
func (r *meshResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the watch and waits for it to end; the resolver pushes nothing afterwards.
func (r *meshResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

// run watches the candidates one after the other until the resolver is closed: a stream that
// breaks, or a node that stops answering or leaves, hands over to the next candidate, which
// starts from a fresh snapshot.
func (r *meshResolver) run() {
	defer r.wg.Done()
	failures := 0
	for {
		candidates := r.candidates()
		addr := candidates[r.next%len(candidates)]
		r.next++
		progressed, err := r.watch(addr)
		if r.ctx.Err() != nil {
			return
		}
		if progressed {
			failures = 0
		} else {
			failures++
			r.mu.Lock()
			published := r.published && len(r.pushed) > 0
			r.mu.Unlock()
			if !published && failures >= len(candidates) {
				// Calls fail fast with the reason rather than wait for a state.
				r.cc.ReportError(fmt.Errorf("meshnode resolver: no node answered (last: %w)", err))
			}
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(r.backoff(failures)):
		}
	}
}

// candidates returns the seeds, then the other nodes last seen, without duplicates.
func (r *meshResolver) candidates() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.target.seeds)
	for _, addr := range r.learned {
		if !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	return out
}

// backoff returns the delay before the next attempt: a short random pause after a watch
// that worked (so clients of a node that died do not all move at once), then a jittered
// exponential delay, capped, while attempts fail.
func (r *meshResolver) backoff(failures int) time.Duration {
	base, capped := r.builder.backoffBase, r.builder.backoffMax
	if failures == 0 {
		return rand.N(base)
	}
	d := base
	for i := 1; i < failures && d < capped; i++ {
		d *= 2
	}
	d = min(d, capped)
	return d/2 + rand.N(d/2+1)
}

// watch follows the node at addr until its stream breaks, it stops answering the probe, it
// leaves, or the resolver closes. progressed reports that it got as far as a snapshot.
func (r *meshResolver) watch(addr string) (progressed bool, err error) {
	conn, err := r.builder.dial(addr)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancelCause(r.ctx)
	defer cancel(nil)

	probe := r.builder.probeInterval
	callCtx, callCancel := context.WithTimeout(ctx, probe)
	local, err := conn.LocalNode(callCtx)
	callCancel()
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	r.local = local.Node
	r.running = false
	r.mu.Unlock()

	var probes sync.WaitGroup
	probes.Add(1)
	go func() {
		defer probes.Done()
		r.probe(ctx, cancel, conn, probe)
	}()

	var snapshot bool
	err = conn.Watch(ctx, func(e Event) {
		if e.Snapshot {
			snapshot = true
		}
		if r.apply(e) {
			cancel(fmt.Errorf("node %s is leaving", local.Node.ID))
		}
	}, StopOnBreak())
	cancel(err)
	probes.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = false
	r.learned = r.learned[:0]
	for _, id := range slices.SortedFunc(maps.Keys(r.view), membership.NodeID.Compare) {
		r.learned = append(r.learned, id.Address())
	}
	if snapshot {
		// The node the endpoints relied on broke off: it goes, the others stay until the
		// next node's snapshot says otherwise. A node that failed before its snapshot was
		// never relied on; what the last snapshot said of it stands.
		r.publishLocked()
	}
	return snapshot, err
}

// probe calls GetLocalNode every interval until ctx ends, ending the watch (cancel) when the
// node does not answer in time, and keeping the node's own metadata fresh.
func (r *meshResolver) probe(ctx context.Context, cancel context.CancelCauseFunc, conn watchConn, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		callCtx, callCancel := context.WithTimeout(ctx, interval)
		local, err := conn.LocalNode(callCtx)
		callCancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			cancel(fmt.Errorf("probe: %w", err))
			return
		}
		r.mu.Lock()
		if local.Node.ID == r.local.ID {
			r.local = local.Node
			r.publishLocked()
		}
		r.mu.Unlock()
	}
}

// apply updates the view with one event of the watched node and pushes the result. It
// reports that the watched node is leaving (or stopped), so the watch moves on.
func (r *meshResolver) apply(e Event) (leaving bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case e.Snapshot:
		r.view = make(map[membership.NodeID]membership.NodeInfo, len(e.Nodes))
		for _, n := range e.Nodes {
			if n.Status == membership.StatusConnected && n.ID != r.local.ID {
				r.view[n.ID] = n
			}
		}
		r.running = e.Current == membership.ClusterRunning
	case r.view == nil:
		// Events before a snapshot cannot be placed in a view; a watch always starts with one.
	case e.Type == membership.EventNodeUp:
		if e.Node.ID != r.local.ID {
			r.view[e.Node.ID] = e.Node
		}
	case e.Type == membership.EventNodeDown:
		delete(r.view, e.Node.ID)
	case e.Type == membership.EventNodeUpdated:
		// New metadata can bring a node into the filters or take it out.
		if _, ok := r.view[e.Node.ID]; ok {
			r.view[e.Node.ID] = e.Node
		}
	case e.Type == membership.EventStatusChange:
		r.running = e.Current == membership.ClusterRunning
		leaving = e.Current == membership.ClusterStopping || e.Current == membership.ClusterStopped
	}
	r.publishLocked()
	return leaving
}

// publishLocked pushes the endpoints if they changed. While the watched node's view is the
// truth (snapshot received, node running), they are the matching nodes of the view plus the
// watched node; otherwise the last endpoints stay, minus the watched node, which is leaving,
// stopped, starting, or no longer reachable.
func (r *meshResolver) publishLocked() {
	var eps []endpoint
	if r.running {
		eps = make([]endpoint, 0, len(r.view)+1)
		for _, n := range r.view {
			eps = r.appendNode(eps, n)
		}
		eps = r.appendNode(eps, r.local)
		slices.SortFunc(eps, func(a, b endpoint) int {
			if c := strings.Compare(a.addr, b.addr); c != 0 {
				return c
			}
			return a.node.ID.Compare(b.node.ID)
		})
		// Two nodes publishing one application address make one endpoint (the first by id).
		eps = slices.CompactFunc(eps, func(a, b endpoint) bool { return a.addr == b.addr })
	} else {
		if !r.published {
			return
		}
		eps = slices.DeleteFunc(slices.Clone(r.pushed), func(ep endpoint) bool { return ep.node.ID == r.local.ID })
	}
	if r.published && slices.EqualFunc(eps, r.pushed, func(a, b endpoint) bool { return a.addr == b.addr && a.node.Equal(b.node) }) {
		return
	}
	r.pushed, r.published = eps, true
	state := resolver.State{
		Endpoints: make([]resolver.Endpoint, len(eps)),
		Addresses: make([]resolver.Address, len(eps)),
	}
	for i, ep := range eps {
		addr := resolver.Address{Addr: ep.addr}
		state.Addresses[i] = addr
		state.Endpoints[i] = resolver.Endpoint{
			Addresses:  []resolver.Address{addr},
			Attributes: attributes.New(nodeKey{}, ep.node),
		}
	}
	// The error asks for a new resolution: a watch has nothing better to say until the
	// membership changes, and will push again then.
	_ = r.cc.UpdateState(state)
}

// appendNode appends n's endpoint when n matches the filters and has an application address.
func (r *meshResolver) appendNode(eps []endpoint, n membership.NodeInfo) []endpoint {
	if n.ID.IsZero() || !r.target.matches(n) {
		return eps
	}
	addr, ok := r.target.address(n)
	if !ok {
		return eps
	}
	return append(eps, endpoint{addr: addr, node: ResolvedNode{ID: n.ID, Incarnation: n.Incarnation, Metadata: n.Metadata}})
}
