package membership

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshnode/meshnode/internal/quote"
)

// Defaults of Config, as set by DefaultConfig.
const (
	// DefaultBindHost is the default BindHost: every IPv4 interface.
	DefaultBindHost = "0.0.0.0"
	// DefaultPort is the default Port.
	DefaultPort = 4369
	// DefaultHeartbeatInterval is the default HeartbeatInterval.
	DefaultHeartbeatInterval = 5 * time.Second
	// DefaultHeartbeatMissThreshold is the default HeartbeatMissThreshold.
	DefaultHeartbeatMissThreshold = 3
	// DefaultMonitors is the default Monitors (K).
	DefaultMonitors = 10
	// MaxMonitors is the largest Monitors accepted.
	MaxMonitors = 64
	// DefaultDialTimeout is the default DialTimeout.
	DefaultDialTimeout = 5 * time.Second
	// DefaultHandshakeTimeout is the default HandshakeTimeout.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultReconnectBaseDelay is the default ReconnectBaseDelay.
	DefaultReconnectBaseDelay = 200 * time.Millisecond
	// DefaultReconnectMaxDelay is the default ReconnectMaxDelay.
	DefaultReconnectMaxDelay = 5 * time.Second
	// DefaultReconnectTimeout is the default ReconnectTimeout.
	DefaultReconnectTimeout = time.Hour
	// DefaultTombstoneTimeout is the default TombstoneTimeout.
	DefaultTombstoneTimeout = time.Hour
)

// Limits enforced by Config.Validate. Every numeric field has a range, and the ranges keep
// every product of two settings (interval × threshold, the doubling backoff) far from
// overflowing a time.Duration.
const (
	// MinHeartbeatInterval is the shortest allowed HeartbeatInterval.
	MinHeartbeatInterval = 100 * time.Millisecond
	// MaxHeartbeatInterval is the longest allowed HeartbeatInterval.
	MaxHeartbeatInterval = 10 * time.Minute
	// MinHeartbeatMissThreshold is the smallest allowed HeartbeatMissThreshold.
	MinHeartbeatMissThreshold = 1
	// MaxHeartbeatMissThreshold is the largest allowed HeartbeatMissThreshold.
	MaxHeartbeatMissThreshold = 100
	// MaxTimeout is the longest allowed DialTimeout, HandshakeTimeout, ReconnectBaseDelay
	// and ReconnectMaxDelay.
	MaxTimeout = time.Hour
	// MaxRetention is the longest allowed ReconnectTimeout and TombstoneTimeout.
	MaxRetention = 30 * 24 * time.Hour
	// MaxProcessCount is the largest allowed ProcessCount (and SetProcessCount argument):
	// the largest 32-bit signed integer, which every peer and API client can hold.
	MaxProcessCount = math.MaxInt32
	// MaxMetadataBytes caps the total size of Metadata keys and values.
	MaxMetadataBytes = 4096
)

// ErrInvalidConfig is the sentinel for a rejected Config:
// errors.Is(err, ErrInvalidConfig) is true for any *ConfigError.
var ErrInvalidConfig = errors.New("invalid cluster config")

// ErrNotRunning is returned by queries on a node that is not running (the
// seed's ClusterNotStartedError).
var ErrNotRunning = errors.New("cluster is not running")

// Config configures one node. Start from DefaultConfig, set Name (and
// whatever else differs), then Validate. Durations are Go durations; the CLI
// takes them as "5s", "200ms" and so on.
type Config struct {
	// Name is the node's name, the part before '@' in its id (1–64 chars, a
	// letter first, then letters, digits, '_', '-'). Required.
	// Flag --name, env NODE_NAME.
	Name string

	// BindHost is the address to listen on: an IPv4 or IPv6 literal (IPv6
	// without brackets, e.g. "::") or a hostname. Default "0.0.0.0".
	// Flag --host, env CLUSTER_HOST.
	BindHost string

	// Port is the port to listen on, 0–65535; 0 picks a free port.
	// Default 4369. Flag --port, env CLUSTER_PORT.
	Port int

	// AdvertiseHost is the host other nodes dial and the host in this node's
	// id. Default "": the bind host when it is a specific address, else the
	// machine's first private non-loopback address, falling back to
	// 127.0.0.1. Flag --advertise, env CLUSTER_ADVERTISE.
	AdvertiseHost string

	// Seeds are the addresses dialled to join a cluster, each
	// "name@host:port" or plain "host:port" (see ParseSeed), or a DNS seed (see
	// ParseDNSSeed): "dns+host:port" dials every A/AAAA address of host at port,
	// "dnssrv+_service._proto.domain" reads SRV records and dials the addresses of their
	// targets at their ports. DNS seeds are resolved at start and again, with backoff,
	// while the node is alone or cannot reach one of the addresses they gave. Default
	// none. Flag --seeds, env CLUSTER_SEEDS (comma-separated).
	Seeds []string

	// DNSServer is the DNS server (host:port) that resolves DNS seeds; empty means the
	// system's resolver. Default none. Flag --dns-server, env CLUSTER_DNS_SERVER.
	DNSServer string

	// Secrets authenticate peers: messages are signed with the first secret
	// and accepted if they verify with any, which allows rotation. Empty
	// means no peer authentication. Default none.
	// Flag --secret-file, env CLUSTER_SECRET.
	Secrets [][]byte

	// ClusterName is a label every node of one cluster shares: a peer whose handshake
	// carries another name is refused (RejectClusterName), so two clusters whose nodes reuse
	// each other's addresses never merge, even without a secret. Empty means none, and a
	// node without a name and a node with one refuse each other too. When set it follows the
	// rule of a node's name: 1–64 chars, a letter first, then letters, digits, '_' and '-'.
	// Default none. Flag --cluster-name, env CLUSTER_NAME.
	ClusterName string

	// HeartbeatInterval is the heartbeat period, 100ms–10m.
	// Default 5s. Flag --heartbeat-interval, env CLUSTER_HEARTBEAT_INTERVAL.
	HeartbeatInterval time.Duration

	// HeartbeatMissThreshold is how many heartbeat intervals may pass without
	// a heartbeat before a peer is down with heartbeat_timeout; 1–100. A node that saw a
	// watched heartbeat come late in the last 10 to 20 intervals (a busy machine, a lossy
	// link) waits that lateness longer, at most two more timeouts. Above K+1 nodes it also
	// sets how long a node that hears of a failure may hold its heartbeats, so that the news
	// goes first: a quarter interval per heartbeat beyond the first, half an interval at most,
	// none at 1.
	// Default 3. Flag --heartbeat-miss-threshold,
	// env CLUSTER_HEARTBEAT_MISS_THRESHOLD.
	HeartbeatMissThreshold int

	// Monitors is K, how many peers monitor each node. While the cluster has at most K+1
	// nodes it is a full mesh; above that each node streams only to the K nodes that
	// monitor it and the K it monitors (K hash rings over the membership view), and a node
	// is reported down once enough of its monitors agree. 0 keeps the full mesh at any
	// size. 0, or 2 to MaxMonitors: with one monitor a single observer would decide alone.
	// Every node of a cluster must use the same K: a peer whose K differs is refused
	// (RejectMonitors). Default DefaultMonitors. Flag --monitors, env CLUSTER_MONITORS.
	Monitors int

	// DialTimeout bounds an outbound dial: the connection, its
	// authentication and the hellos; once the stream is open the hellos
	// still get HandshakeTimeout, as on the accepting side. A dial to a
	// seed or a member whose last dial failed waits twice these, after two
	// failures four times, until it answers: a seed that a whole cluster
	// joins through, or any node of a machine that busy, answers late. A
	// seed whose stream is open gets four times HandshakeTimeout for its
	// hello from the first dial on. Positive, at most 1h. Default 5s.
	DialTimeout time.Duration

	// HandshakeTimeout is how long an inbound peer has to complete the
	// handshake (and an outbound stream, once open, its hellos). After
	// inbound handshakes timed out, the next get twice as long, then four
	// times, as a dialler does, until one is done within half of it; a
	// connection's TLS and HTTP/2 setup always gets four times. Positive,
	// at most 1h. Default 5s.
	HandshakeTimeout time.Duration

	// ReconnectBaseDelay is the first delay of the capped, jittered
	// exponential redial backoff; positive, at most 1h. Default 200ms.
	ReconnectBaseDelay time.Duration

	// ReconnectMaxDelay caps the redial backoff; at least
	// ReconnectBaseDelay, at most 1h. Default 5s.
	ReconnectMaxDelay time.Duration

	// ReconnectTimeout is how long a disconnected node is redialled before
	// it is forgotten; positive, at most 30 days (720h). Default 1h.
	ReconnectTimeout time.Duration

	// TombstoneTimeout is how long nodes that left or were forgotten are
	// remembered, so stale gossip cannot revive them; positive, at most 30
	// days (720h). Default 1h.
	TombstoneTimeout time.Duration

	// Metadata is the initial free-form metadata advertised to peers. Keys
	// are non-empty, keys and values valid UTF-8, and all keys and values
	// together at most 4096 bytes. Default none.
	Metadata map[string]string

	// ProcessCount is the initial process count advertised to peers (the
	// seed's processCount); 0–2147483647 (MaxProcessCount). Default 0.
	ProcessCount int
}

// DefaultConfig returns a Config holding every default above: it is DefaultLANConfig. Name
// is left empty: it is required and has no default.
func DefaultConfig() *Config { return DefaultLANConfig() }

// DefaultLANConfig returns the configuration of a node in a data centre or on a LAN, the
// defaults above (the command line's defaults too). Name is left empty: it is required.
//
//   - BindHost 0.0.0.0, Port 4369: reachable from the other machines on a fixed, well-known
//     port (Erlang's epmd port).
//   - HeartbeatInterval 5s × HeartbeatMissThreshold 3: a silent (frozen, partitioned) node is
//     reported down within 15–20 s, and a heartbeat delayed by a busy machine or a GC pause
//     of a few seconds raises no false alarm. A crash or a leave is reported at once whatever
//     the interval: the stream closes.
//   - Monitors 10: a full mesh up to 11 nodes; beyond, each node is monitored by 10 others,
//     and a node's streams and heartbeats no longer grow with the cluster.
//   - DialTimeout and HandshakeTimeout 5s: several round trips of a slow network.
//   - ReconnectBaseDelay 200ms to ReconnectMaxDelay 5s: a restarting peer is found again
//     quickly, an absent one costs a dial every 5 s.
//   - ReconnectTimeout 1h: a disconnected node is redialled for an hour, enough for a
//     maintenance window, then forgotten.
//   - TombstoneTimeout 1h: a node that left or was forgotten is remembered for an hour, so
//     that stale gossip cannot bring it back.
func DefaultLANConfig() *Config {
	return &Config{
		BindHost:               DefaultBindHost,
		Port:                   DefaultPort,
		HeartbeatInterval:      DefaultHeartbeatInterval,
		HeartbeatMissThreshold: DefaultHeartbeatMissThreshold,
		Monitors:               DefaultMonitors,
		DialTimeout:            DefaultDialTimeout,
		HandshakeTimeout:       DefaultHandshakeTimeout,
		ReconnectBaseDelay:     DefaultReconnectBaseDelay,
		ReconnectMaxDelay:      DefaultReconnectMaxDelay,
		ReconnectTimeout:       DefaultReconnectTimeout,
		TombstoneTimeout:       DefaultTombstoneTimeout,
	}
}

// DefaultLocalConfig returns the configuration of nodes on one machine over loopback: tests,
// examples, development. It is DefaultLANConfig with these changes (Name is left empty):
//
//   - BindHost 127.0.0.1, Port 0: nothing outside the machine can reach the node, and each
//     start picks a free port, so many nodes share a machine or a process without
//     colliding (Node.Addr and Node.LocalID tell the port; a restarted node keeps it).
//   - HeartbeatInterval 300ms (× HeartbeatMissThreshold 3): a silent node is reported down
//     within about a second, as loopback delivers in microseconds; still slow enough for
//     dozens of nodes in one process under the race detector.
//   - DialTimeout and HandshakeTimeout 2s: a loopback dial takes microseconds; 2 s still
//     covers a loaded machine.
//   - ReconnectBaseDelay 100ms to ReconnectMaxDelay 1s: a restarted node is found again
//     within a second.
//
// Monitors, ReconnectTimeout and TombstoneTimeout keep their LAN values: they cost nothing
// more on one machine, and shorter retention would only let stale gossip back in sooner.
func DefaultLocalConfig() *Config {
	c := DefaultLANConfig()
	c.BindHost, c.Port = "127.0.0.1", 0
	c.HeartbeatInterval = 300 * time.Millisecond
	c.DialTimeout, c.HandshakeTimeout = 2*time.Second, 2*time.Second
	c.ReconnectBaseDelay, c.ReconnectMaxDelay = 100*time.Millisecond, time.Second
	return c
}

// Clone returns a deep copy of c (Seeds, Secrets and Metadata are copied too);
// nil for a nil c.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	clone := *c
	clone.Seeds = slices.Clone(c.Seeds)
	if c.Secrets != nil {
		clone.Secrets = make([][]byte, len(c.Secrets))
		for i, secret := range c.Secrets {
			clone.Secrets[i] = bytes.Clone(secret)
		}
	}
	clone.Metadata = maps.Clone(c.Metadata)
	return &clone
}

// Validate checks every field and returns nil or a *ConfigError listing every
// invalid field at once. Secret values never appear in its messages.
func (c *Config) Validate() error {
	if c == nil {
		return &ConfigError{Problems: []FieldError{{Field: "Config", Message: "must not be nil"}}}
	}
	var v validator
	v.check(c.Name == "", "Name", "is required")
	if rule := nameRule(c.Name); c.Name != "" && rule != "" {
		v.add("Name", fmt.Sprintf("%s (got %s)", rule, quote.Input(c.Name)))
	}
	v.check(c.BindHost == "", "BindHost", "is required")
	if rule := hostRule(c.BindHost); c.BindHost != "" && rule != "" {
		v.add("BindHost", fmt.Sprintf("%s (got %s)", rule, quote.Input(c.BindHost)))
	}
	v.check(c.Port < 0 || c.Port > maxPort, "Port", fmt.Sprintf("must be between 0 and %d (got %d)", maxPort, c.Port))
	if c.AdvertiseHost != "" {
		if rule := hostRule(c.AdvertiseHost); rule != "" {
			v.add("AdvertiseHost", fmt.Sprintf("%s (got %s)", rule, quote.Input(c.AdvertiseHost)))
		} else if isUnspecified(c.AdvertiseHost) {
			v.add("AdvertiseHost", fmt.Sprintf("must be an address other nodes can dial (got %s)", quote.Input(c.AdvertiseHost)))
		}
	}
	for i, seed := range c.Seeds {
		var err error
		if IsDNSSeed(seed) {
			_, err = ParseDNSSeed(seed)
		} else {
			_, _, err = ParseSeed(seed)
		}
		if err != nil {
			v.add("Seeds", fmt.Sprintf("seed %d: %v", i, err))
		}
	}
	if c.DNSServer != "" {
		if _, err := ParseAddress(c.DNSServer); err != nil {
			v.add("DNSServer", err.Error())
		}
	}
	for i, secret := range c.Secrets {
		v.check(len(secret) == 0, "Secrets", fmt.Sprintf("secret %d is empty", i))
	}
	if rule := nameRule(c.ClusterName); c.ClusterName != "" && rule != "" {
		v.add("ClusterName", fmt.Sprintf("%s (got %s)", rule, quote.Input(c.ClusterName)))
	}
	v.check(c.HeartbeatInterval < MinHeartbeatInterval || c.HeartbeatInterval > MaxHeartbeatInterval, "HeartbeatInterval",
		fmt.Sprintf("must be between %v and %v (got %v)", MinHeartbeatInterval, MaxHeartbeatInterval, c.HeartbeatInterval))
	v.check(c.HeartbeatMissThreshold < MinHeartbeatMissThreshold || c.HeartbeatMissThreshold > MaxHeartbeatMissThreshold,
		"HeartbeatMissThreshold", fmt.Sprintf("must be between %d and %d (got %d)",
			MinHeartbeatMissThreshold, MaxHeartbeatMissThreshold, c.HeartbeatMissThreshold))
	v.check(c.Monitors < 0 || c.Monitors > MaxMonitors, "Monitors",
		fmt.Sprintf("must be between 0 and %d (got %d)", MaxMonitors, c.Monitors))
	v.check(c.Monitors == 1, "Monitors",
		"must be 0 (a full mesh at any size) or at least 2 (got 1): with one monitor, one bad link or one slow observer would take a live node down")
	v.duration("DialTimeout", c.DialTimeout, MaxTimeout)
	v.duration("HandshakeTimeout", c.HandshakeTimeout, MaxTimeout)
	v.duration("ReconnectBaseDelay", c.ReconnectBaseDelay, MaxTimeout)
	v.duration("ReconnectMaxDelay", c.ReconnectMaxDelay, MaxTimeout)
	v.check(c.ReconnectMaxDelay > 0 && c.ReconnectMaxDelay < c.ReconnectBaseDelay, "ReconnectMaxDelay",
		fmt.Sprintf("must be at least ReconnectBaseDelay %v (got %v)", c.ReconnectBaseDelay, c.ReconnectMaxDelay))
	v.duration("ReconnectTimeout", c.ReconnectTimeout, MaxRetention)
	v.duration("TombstoneTimeout", c.TombstoneTimeout, MaxRetention)
	v.metadata(c.Metadata)
	if rule := processCountRule(c.ProcessCount); rule != "" {
		v.add("ProcessCount", rule)
	}
	return v.err()
}

// ValidateClusterName returns nil if name is a valid cluster name (Config.ClusterName): empty
// (none), or 1–64 chars, a letter first, then letters, digits, '_' and '-', as a node's name.
// Otherwise the error says which rule is broken and quotes the name at most in part.
func ValidateClusterName(name string) error {
	if name == "" {
		return nil
	}
	if rule := nameRule(name); rule != "" {
		return fmt.Errorf("invalid cluster name %s: %s", quote.Input(name), rule)
	}
	return nil
}

// processCountRule returns the rule a process count breaks, or "" if it is in range.
func processCountRule(n int) string {
	if n < 0 || n > MaxProcessCount {
		return fmt.Sprintf("must be between 0 and %d (got %d)", MaxProcessCount, n)
	}
	return ""
}

// isUnspecified reports whether host is the wildcard address 0.0.0.0 or ::.
func isUnspecified(host string) bool {
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsUnspecified()
}

// validator accumulates the problems found by Config.Validate.
type validator struct{ problems []FieldError }

func (v *validator) add(field, message string) {
	v.problems = append(v.problems, FieldError{Field: field, Message: message})
}

func (v *validator) check(invalid bool, field, message string) {
	if invalid {
		v.add(field, message)
	}
}

// duration checks that d is positive and at most limit.
func (v *validator) duration(field string, d, limit time.Duration) {
	switch {
	case d <= 0:
		v.add(field, fmt.Sprintf("must be positive (got %v)", d))
	case d > limit:
		v.add(field, fmt.Sprintf("must be at most %v (got %v)", limit, d))
	}
}

func (v *validator) metadata(md map[string]string) {
	size := 0
	emptyKey, badUTF8 := false, false
	for key, value := range md {
		size += len(key) + len(value)
		emptyKey = emptyKey || key == ""
		badUTF8 = badUTF8 || !utf8.ValidString(key) || !utf8.ValidString(value)
	}
	v.check(emptyKey, "Metadata", "keys must not be empty")
	v.check(badUTF8, "Metadata", "keys and values must be valid UTF-8")
	v.check(size > MaxMetadataBytes, "Metadata",
		fmt.Sprintf("keys and values must total at most %d bytes (got %d)", MaxMetadataBytes, size))
}

func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ConfigError{Problems: v.problems}
}

// FieldError is one invalid Config field.
type FieldError struct {
	// Field is the Go name of the field, e.g. "HeartbeatInterval" (or of a
	// server option, e.g. "MetricsAddr" or "TLS").
	Field string
	// Message says which rule is broken and the value found, e.g.
	// "must be between 100ms and 10m0s (got 50ms)".
	Message string
}

// String returns "Field: Message".
func (e FieldError) String() string { return e.Field + ": " + e.Message }

// ConfigError is returned by Config.Validate: every invalid field at once.
type ConfigError struct {
	// Problems lists the invalid fields in Config field order.
	Problems []FieldError
}

// Error reads like
//
//	invalid cluster config: Name: is required; HeartbeatInterval: must be between 100ms and 10m0s (got 50ms)
func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	if len(parts) == 0 {
		return ErrInvalidConfig.Error()
	}
	return ErrInvalidConfig.Error() + ": " + strings.Join(parts, "; ")
}

// Is reports whether target is ErrInvalidConfig, so that
// errors.Is(err, ErrInvalidConfig) holds for every *ConfigError.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }
