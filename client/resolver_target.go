package client

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/resolver"

	"github.com/meshnode/meshnode/internal/quote"
	"github.com/meshnode/meshnode/membership"
)

// Query parameters of a meshnode:/// target.
const (
	// metadataPrefix starts a filter: metadata.KEY=VALUE keeps the nodes whose metadata
	// holds KEY with exactly VALUE.
	metadataPrefix = "metadata."
	// portParam is the application's port on every node.
	portParam = "port"
	// portKeyParam names the metadata key that holds a node's application port.
	portKeyParam = "port_key"
)

// errTarget marks a meshnode:/// target that does not parse.
var errTarget = errors.New("invalid meshnode target")

// filter is one metadata.KEY=VALUE condition of a target.
type filter struct{ key, value string }

// resolverTarget is a parsed meshnode:/// target.
type resolverTarget struct {
	// seeds are the membership addresses (host:port) the resolver may watch, in the order given.
	seeds []string
	// filters must all hold for a node to be an endpoint, sorted by key.
	filters []filter
	// port is the application's port (0: not given).
	port int
	// portKey is the metadata key holding a node's application port ("": not given).
	portKey string
}

// parseTarget parses meshnode:///host:port,host:port?metadata.KEY=VALUE&port=N&port_key=KEY.
// Seeds are plain host:port or node ids (name@host:port). Unknown parameters are refused, so
// that a misspelt filter never silently matches every node.
func parseTarget(t resolver.Target) (resolverTarget, error) {
	fail := func(format string, args ...any) (resolverTarget, error) {
		return resolverTarget{}, fmt.Errorf("%w %s: %s", errTarget, quote.Input(t.String()), fmt.Sprintf(format, args...))
	}
	if t.URL.Host != "" {
		return fail("an authority is not supported (write meshnode:///host:port, with three slashes)")
	}
	var out resolverTarget
	list := strings.TrimPrefix(t.URL.Path, "/")
	if list == "" {
		list = t.URL.Opaque
	}
	if list == "" {
		return fail("no seed address (expected meshnode:///host:port[,host:port...])")
	}
	for s := range strings.SplitSeq(list, ",") {
		addr, _, err := membership.ParseSeed(strings.TrimSpace(s))
		if err != nil {
			return fail("%v", err)
		}
		if !slices.Contains(out.seeds, addr) {
			out.seeds = append(out.seeds, addr)
		}
	}
	query, err := url.ParseQuery(t.URL.RawQuery)
	if err != nil {
		return fail("query: %v", err)
	}
	for name, values := range query {
		if len(values) != 1 {
			return fail("parameter %s given %d times", quote.Input(name), len(values))
		}
		value := values[0]
		switch {
		case strings.HasPrefix(name, metadataPrefix):
			key := strings.TrimPrefix(name, metadataPrefix)
			if key == "" {
				return fail("empty metadata key in %s", quote.Input(name))
			}
			out.filters = append(out.filters, filter{key: key, value: value})
		case name == portParam:
			port, err := parsePort(value)
			if err != nil {
				return fail("port: %v", err)
			}
			out.port = port
		case name == portKeyParam:
			if value == "" {
				return fail("port_key must name a metadata key")
			}
			out.portKey = value
		default:
			return fail("unknown parameter %s (expected metadata.KEY, port or port_key)", quote.Input(name))
		}
	}
	slices.SortFunc(out.filters, func(a, b filter) int { return strings.Compare(a.key, b.key) })
	return out, nil
}

// parsePort parses an application port by the node id rule: digits only, 1–65535.
func parsePort(s string) (int, error) {
	port, err := membership.ParseListenPort(s)
	if err != nil {
		return 0, err
	}
	if port == 0 {
		return 0, fmt.Errorf("invalid port %s: port must be 1-65535", quote.Input(s))
	}
	return port, nil
}

// matches reports whether node's metadata satisfies every filter.
func (t *resolverTarget) matches(node membership.NodeInfo) bool {
	for _, f := range t.filters {
		if v, ok := node.Metadata[f.key]; !ok || v != f.value {
			return false
		}
	}
	return true
}

// address returns the application address of node: its advertised host with the port from
// port_key (when the node's metadata holds a valid port under it), else from port, else, when
// the target names neither, the node's membership port. ok is false when the target names a
// port_key the node lacks and no port to fall back on.
func (t *resolverTarget) address(node membership.NodeInfo) (addr string, ok bool) {
	port := 0
	if t.portKey != "" {
		if p, err := parsePort(node.Metadata[t.portKey]); err == nil {
			port = p
		}
	}
	if port == 0 {
		port = t.port
	}
	if port == 0 {
		if t.portKey != "" {
			return "", false
		}
		port = node.ID.Port()
	}
	return net.JoinHostPort(node.ID.Host(), strconv.Itoa(port)), true
}
