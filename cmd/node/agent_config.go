package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/pflag"

	"github.com/meshnode/meshnode/internal/quote"
	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// agentFlags are the options of `node agent`. Building the configuration from them (config,
// serverOptions, setup) is plain code: the cobra wiring only hands over the flag set.
type agentFlags struct {
	s                                        *settings
	name, host, port, advertise, seeds       *setting
	secretFile, interval, threshold          *setting
	monitors                                 *setting
	metadata, processCount, logFormat, level *setting
	tlsCert, tlsKey, tlsCA                   *setting
	metricsAddr                              *setting
	clusterName, dnsServer                   *setting
	token                                    tokenFlags
	limits                                   limitFlags
}

// newAgentFlags declares the agent's options on fs.
func newAgentFlags(fs *pflag.FlagSet) *agentFlags {
	s := newSettings(fs)
	d := membership.DefaultConfig()
	return &agentFlags{
		s:            s,
		name:         s.str("name", "NODE_NAME", "", "node name, required: a letter, then letters, digits, _ or -"),
		host:         s.str("host", "CLUSTER_HOST", d.BindHost, "bind address").as("host"),
		port:         s.str("port", "CLUSTER_PORT", strconv.Itoa(d.Port), "listen port, 1 to 65535; 0 picks a free one").as("port"),
		advertise:    s.str("advertise", "CLUSTER_ADVERTISE", "", "host other nodes dial; when unset, the bind host, or the first private address when binding every interface").as("host"),
		seeds:        s.str("seeds", "CLUSTER_SEEDS", "", "comma-separated seeds to join through: name@host:port, host:port, dns+host:port (every A/AAAA address) or dnssrv+_service._proto.domain (SRV records)").as("list"),
		secretFile:   s.str("secret-file", "", "", "file with the cluster secrets, one per line: sign with the first, accept any (CLUSTER_SECRET holds one secret)").as("file"),
		interval:     s.str("heartbeat-interval", "CLUSTER_HEARTBEAT_INTERVAL", d.HeartbeatInterval.String(), "heartbeat period, 100ms to 10m").as("duration"),
		threshold:    s.str("heartbeat-miss-threshold", "CLUSTER_HEARTBEAT_MISS_THRESHOLD", strconv.Itoa(d.HeartbeatMissThreshold), "missed heartbeats before heartbeat_timeout, 1 to 100").as("int"),
		monitors:     s.str("monitors", "CLUSTER_MONITORS", strconv.Itoa(d.Monitors), "K: peers that monitor each node; above K+1 nodes each node streams to 2K peers, not all (0, or 2 to 64; 0 keeps a full mesh)").as("int"),
		metadata:     s.str("metadata", "CLUSTER_METADATA", "", "metadata advertised to peers").as("key=value,..."),
		processCount: s.str("process-count", "CLUSTER_PROCESS_COUNT", "0", "process count advertised to peers, 0 to 2147483647").as("int"),
		logFormat:    s.str("log-format", "LOG_FORMAT", "text", "log format").as("text|json"),
		level:        s.str("log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error").as("level"),
		token:        newTokenFlags(s, "require this bearer token on the public API"),
		tlsCert:      s.str("tls-cert", "CLUSTER_TLS_CERT", "", "PEM certificate: serve and dial peers over TLS").as("file"),
		tlsKey:       s.str("tls-key", "CLUSTER_TLS_KEY", "", "PEM private key of --tls-cert").as("file"),
		tlsCA:        s.str("tls-ca", "CLUSTER_TLS_CA", "", "PEM CA: mutual TLS, peers and clients must present a certificate it signed").as("file"),
		metricsAddr:  s.str("metrics-addr", "CLUSTER_METRICS_ADDR", "", "serve Prometheus metrics at http://ADDR/metrics (an empty host is every interface)").as("host:port"),
		limits:       newLimitFlags(s),
		dnsServer:    s.str("dns-server", "CLUSTER_DNS_SERVER", "", "DNS server (host:port) that resolves dns+ and dnssrv+ seeds (default: the system's resolver)").as("host:port"),
		clusterName:  s.str("cluster-name", "CLUSTER_NAME", "", "label every node of the cluster shares; a peer with another name (or none) is refused (1-64 chars: a letter, then letters, digits, _ or -)").as("name"),
	}
}

// problems collects the invalid fields of the flags, to report them all in one message.
type problems []membership.FieldError

// add records one invalid field.
func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, membership.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// addErr records the fields of a *membership.ConfigError, or err as one problem of field.
func (p *problems) addErr(field string, err error) {
	var ce *membership.ConfigError
	if errors.As(err, &ce) {
		*p = append(*p, ce.Problems...)
		return
	}
	p.add(field, "%v", err)
}

// err returns nil or a *membership.ConfigError listing every problem.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &membership.ConfigError{Problems: p}
}

// fieldFlags names the flags of the Go fields (of membership.Config and the server options)
// whose flag is not the field's name in kebab case; every other field Foo or FooBar is the
// flag --foo or --foo-bar.
var fieldFlags = map[string]string{
	"BindHost":      "host",
	"AdvertiseHost": "advertise",
	"Secrets":       "secret-file",
}

// fieldLabels name the fields that no single flag sets.
var fieldLabels = map[string]string{
	"Secrets": "--secret-file or CLUSTER_SECRET",
	"TLS":     "--tls-cert, --tls-key, --tls-ca (CLUSTER_TLS_CERT, CLUSTER_TLS_KEY, CLUSTER_TLS_CA)",
	"Token":   "--token or --token-file (CLUSTER_API_TOKEN or CLUSTER_API_TOKEN_FILE)",
}

// relabel names each problem by its flag and environment variable instead of its Go field,
// e.g. "--heartbeat-interval (CLUSTER_HEARTBEAT_INTERVAL)" for HeartbeatInterval. A field no
// flag sets keeps its name.
func (s *settings) relabel(err error) error {
	var ce *membership.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	out := &membership.ConfigError{Problems: make([]membership.FieldError, len(ce.Problems))}
	order := make([]int, len(ce.Problems))
	for i, p := range ce.Problems {
		out.Problems[i] = membership.FieldError{Field: s.label(p.Field), Message: p.Message}
		order[i] = len(s.list)
		for j, st := range s.list {
			if strings.HasPrefix(out.Problems[i].Field, "--"+st.flag+" ") || out.Problems[i].Field == "--"+st.flag {
				order[i] = j
				break
			}
		}
	}
	// In the order of the flags, as the help lists them.
	sort.Stable(byOrder{out.Problems, order})
	return out
}

// byOrder sorts problems by their flags' positions.
type byOrder struct {
	p     []membership.FieldError
	order []int
}

func (b byOrder) Len() int           { return len(b.p) }
func (b byOrder) Less(i, j int) bool { return b.order[i] < b.order[j] }
func (b byOrder) Swap(i, j int) {
	b.p[i], b.p[j] = b.p[j], b.p[i]
	b.order[i], b.order[j] = b.order[j], b.order[i]
}

// label returns the flag label of a Go field name.
func (s *settings) label(field string) string {
	if l, ok := fieldLabels[field]; ok {
		return l
	}
	name, ok := fieldFlags[field]
	if !ok {
		name = kebab(field)
	}
	if st := s.byFlag(name); st != nil {
		return st.label()
	}
	return field
}

// kebab turns a Go name into a flag name: HeartbeatMissThreshold is heartbeat-miss-threshold.
func kebab(field string) string {
	var b strings.Builder
	for i, r := range field {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// setup turns the options into the node's configuration, server options and logger. Nothing
// listens yet: every invalid field (of the membership configuration, the listener addresses,
// the TLS files, the token, the limits, the log settings) is reported at once, as a
// *membership.ConfigError whose fields are named by their flags and environment variables.
func (f *agentFlags) setup(stderr io.Writer) (*membership.Config, []server.Option, *slog.Logger, error) {
	var bad problems
	cfg, err := f.config()
	if err != nil {
		bad.addErr("Config", err)
	}
	opts, err := f.serverOptions()
	if err != nil {
		bad.addErr("TLS", err)
	}
	logger, err := newLogger(stderr, f.logFormat.value, f.level.value)
	if err != nil {
		bad.addErr("Log", err)
	}
	// The membership fields that did not parse keep their defaults: Validate reports only
	// the others, so no field is listed twice.
	if err := server.Validate(cfg, opts...); err != nil {
		bad.addErr("Config", err)
	}
	if err := bad.err(); err != nil {
		return nil, nil, nil, f.s.relabel(err)
	}
	return cfg, opts, logger, nil
}

// config builds the membership configuration from the flags, without validating it: values
// that do not parse are reported at once, as a *membership.ConfigError, and the returned
// configuration keeps their defaults.
func (f *agentFlags) config() (*membership.Config, error) {
	cfg := membership.DefaultConfig()
	var bad problems
	cfg.Name = f.name.value
	cfg.BindHost = f.host.value
	cfg.AdvertiseHost = f.advertise.value
	if port, err := membership.ParseListenPort(f.port.value); err != nil {
		bad.add("Port", "%v", err)
	} else {
		cfg.Port = port
	}
	cfg.Seeds = splitList(f.seeds.value)
	cfg.ClusterName = f.clusterName.value
	cfg.DNSServer = f.dnsServer.value
	if d, err := time.ParseDuration(f.interval.value); err != nil {
		bad.add("HeartbeatInterval", "%s is not a duration such as 5s or 500ms, or is out of range", quote.Input(f.interval.value))
	} else {
		cfg.HeartbeatInterval = d
	}
	if n, err := parseInt(f.threshold.value); err != nil {
		bad.add("HeartbeatMissThreshold", "%v", err)
	} else {
		cfg.HeartbeatMissThreshold = n
	}
	if n, err := parseInt(f.monitors.value); err != nil {
		bad.add("Monitors", "%v", err)
	} else {
		cfg.Monitors = n
	}
	if n, err := parseInt(f.processCount.value); err != nil {
		bad.add("ProcessCount", "%v", err)
	} else {
		cfg.ProcessCount = n
	}
	md, err := parseMetadata(f.metadata.value)
	if err != nil {
		bad.add("Metadata", "%v", err)
	}
	cfg.Metadata = md
	secrets, err := f.secrets()
	if err != nil {
		bad.add("Secrets", "%v", err)
	}
	cfg.Secrets = secrets
	return cfg, bad.err()
}

// parseInt parses a decimal integer; the range is Config.Validate's to check, but a number
// too large for an int is out of every range.
func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%s is out of range", quote.Input(s))
	case err != nil:
		return 0, fmt.Errorf("%s is not a number", quote.Input(s))
	}
	return n, nil
}

// secrets reads --secret-file (one secret per line, blank lines and #comments skipped) or
// CLUSTER_SECRET. A secret that is set but empty (an empty file, an empty variable) is an
// error, never a silent run without authentication. The secret never appears in an error.
func (f *agentFlags) secrets() ([][]byte, error) {
	if f.secretFile.value != "" {
		data, err := os.ReadFile(f.secretFile.value)
		if err != nil {
			return nil, fmt.Errorf("cannot read secret file %s: %w", quote.Input(f.secretFile.value), unwrapPathError(err))
		}
		var out [][]byte
		for _, line := range bytes.Split(data, []byte("\n")) {
			line = bytes.TrimSpace(line)
			if len(line) == 0 || line[0] == '#' {
				continue
			}
			out = append(out, line)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("secret file %s holds no secret", quote.Input(f.secretFile.value))
		}
		return out, nil
	}
	if f.secretFile.set {
		return nil, errors.New("--secret-file is empty: name a file, or leave the flag out to run without authentication")
	}
	if s, ok := os.LookupEnv("CLUSTER_SECRET"); ok {
		if strings.TrimSpace(s) == "" {
			return nil, errors.New("CLUSTER_SECRET is set but empty: set a secret, or unset it to run without authentication")
		}
		return [][]byte{[]byte(s)}, nil
	}
	return nil, nil
}

// unwrapPathError drops the path from an *os.PathError (it is already in the message).
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseMetadata parses k=v,k=v.
func parseMetadata(s string) (map[string]string, error) {
	items := splitList(s)
	if len(items) == 0 {
		return nil, nil
	}
	md := make(map[string]string, len(items))
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s is not key=value", quote.Input(item))
		}
		md[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return md, nil
}

// serverOptions returns the server options the flags ask for beyond the membership config,
// or a *membership.ConfigError listing every problem of the token, the limits and the TLS
// flags. The metrics address and the TLS files are checked by server.Validate.
func (f *agentFlags) serverOptions() ([]server.Option, error) {
	var opts []server.Option
	var bad problems
	if f.metricsAddr.value != "" {
		opts = append(opts, server.WithMetricsAddr(f.metricsAddr.value))
	}
	token, err := f.token.value()
	if err != nil {
		bad.add("Token", "%v", err)
	} else if token != "" {
		opts = append(opts, server.WithAPIToken(token))
	}
	limits, err := f.limits.options()
	if err != nil {
		bad.addErr("Limits", err)
	}
	opts = append(opts, limits...)
	if f.tlsCert.value != "" || f.tlsKey.value != "" || f.tlsCA.value != "" {
		if f.tlsCert.value == "" || f.tlsKey.value == "" {
			bad.add("TLS", "TLS needs both --tls-cert and --tls-key")
		} else {
			opts = append(opts, server.WithTLS(server.TLSFiles{CertFile: f.tlsCert.value, KeyFile: f.tlsKey.value, CAFile: f.tlsCA.value}))
		}
	}
	return opts, bad.err()
}
