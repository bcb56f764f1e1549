package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// agentFlags are the options of `node agent`.
type agentFlags struct {
	s                                        *settings
	name, host, port, advertise, seeds       *setting
	secretFile, interval, threshold          *setting
	metadata, processCount, logFormat, level *setting
	tlsCert, tlsKey, tlsCA                   *setting
	metricsAddr                              *setting
	token                                    tokenFlags
	limits                                   limitFlags
}

func newAgentFlags() *agentFlags {
	s := newSettings("agent")
	d := membership.DefaultConfig()
	return &agentFlags{
		s:            s,
		name:         s.str("name", "NODE_NAME", "", "node name (required)"),
		host:         s.str("host", "CLUSTER_HOST", d.BindHost, "bind address"),
		port:         s.str("port", "CLUSTER_PORT", strconv.Itoa(d.Port), "listen port; 0 picks a free one"),
		advertise:    s.str("advertise", "CLUSTER_ADVERTISE", "", "host other nodes dial (default: the bind host, or the first private address)"),
		seeds:        s.str("seeds", "CLUSTER_SEEDS", "", "comma-separated seeds, name@host:port or host:port"),
		secretFile:   s.str("secret-file", "", "", "file with the cluster secret(s), one per line: sign with the first, accept any (env CLUSTER_SECRET holds one secret)"),
		interval:     s.str("heartbeat-interval", "CLUSTER_HEARTBEAT_INTERVAL", d.HeartbeatInterval.String(), "heartbeat period (>= 100ms)"),
		threshold:    s.str("heartbeat-miss-threshold", "CLUSTER_HEARTBEAT_MISS_THRESHOLD", strconv.Itoa(d.HeartbeatMissThreshold), "missed heartbeats before heartbeat_timeout (>= 1)"),
		metadata:     s.str("metadata", "CLUSTER_METADATA", "", "comma-separated key=value metadata advertised to peers"),
		processCount: s.str("process-count", "CLUSTER_PROCESS_COUNT", "0", "process count advertised to peers"),
		logFormat:    s.str("log-format", "LOG_FORMAT", "text", "log format: text or json"),
		level:        s.str("log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error"),
		token:        newTokenFlags(s, "require this bearer token on the public API"),
		tlsCert:      s.str("tls-cert", "CLUSTER_TLS_CERT", "", "PEM certificate: serve and dial peers over TLS"),
		tlsKey:       s.str("tls-key", "CLUSTER_TLS_KEY", "", "PEM private key of --tls-cert"),
		metricsAddr:  s.str("metrics-addr", "CLUSTER_METRICS_ADDR", "", "serve Prometheus metrics at http://ADDR/metrics"),
		tlsCA:        s.str("tls-ca", "CLUSTER_TLS_CA", "", "PEM CA: mutual TLS, peers and clients must present a certificate it signed"),
		limits:       newLimitFlags(s),
	}
}

// config builds the membership configuration; every problem is reported at once, as a
// *membership.ConfigError.
func (f *agentFlags) config() (*membership.Config, error) {
	cfg := membership.DefaultConfig()
	var problems []membership.FieldError
	bad := func(field, format string, args ...any) {
		problems = append(problems, membership.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	cfg.Name = f.name.value
	cfg.BindHost = f.host.value
	cfg.AdvertiseHost = f.advertise.value
	if port, err := strconv.Atoi(f.port.value); err != nil {
		bad("Port", "%q is not a number", f.port.value)
	} else {
		cfg.Port = port
	}
	cfg.Seeds = splitList(f.seeds.value)
	if d, err := time.ParseDuration(f.interval.value); err != nil {
		bad("HeartbeatInterval", "%q is not a duration such as 5s or 500ms", f.interval.value)
	} else {
		cfg.HeartbeatInterval = d
	}
	if n, err := strconv.Atoi(f.threshold.value); err != nil {
		bad("HeartbeatMissThreshold", "%q is not a number", f.threshold.value)
	} else {
		cfg.HeartbeatMissThreshold = n
	}
	if n, err := strconv.Atoi(f.processCount.value); err != nil {
		bad("ProcessCount", "%q is not a number", f.processCount.value)
	} else {
		cfg.ProcessCount = n
	}
	md, err := parseMetadata(f.metadata.value)
	if err != nil {
		bad("Metadata", "%v", err)
	}
	cfg.Metadata = md
	secrets, err := f.secrets()
	if err != nil {
		bad("Secrets", "%v", err)
	}
	cfg.Secrets = secrets
	problems = append(problems, f.limits.problems()...)
	if err := cfg.Validate(); err != nil {
		if ce, ok := err.(*membership.ConfigError); ok {
			problems = append(problems, ce.Problems...)
		}
	}
	if len(problems) > 0 {
		return nil, &membership.ConfigError{Problems: problems}
	}
	return cfg, nil
}

// secrets reads --secret-file (one secret per line, blank lines and #comments skipped) or
// CLUSTER_SECRET. The secret never appears in an error.
func (f *agentFlags) secrets() ([][]byte, error) {
	if f.secretFile.value != "" {
		data, err := os.ReadFile(f.secretFile.value)
		if err != nil {
			return nil, fmt.Errorf("cannot read secret file %q: %w", f.secretFile.value, unwrapPathError(err))
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
			return nil, fmt.Errorf("secret file %q holds no secret", f.secretFile.value)
		}
		return out, nil
	}
	if s := os.Getenv("CLUSTER_SECRET"); s != "" {
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
			return nil, fmt.Errorf("%q is not key=value", item)
		}
		md[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return md, nil
}

// serverOptions returns the server options the flags ask for beyond the membership config.
func (f *agentFlags) serverOptions() ([]server.Option, error) {
	var opts []server.Option
	if f.metricsAddr.value != "" {
		opts = append(opts, server.WithMetricsAddr(f.metricsAddr.value))
	}
	token, err := f.token.value()
	if err != nil {
		return nil, err
	}
	if token != "" {
		opts = append(opts, server.WithAPIToken(token))
	}
	limits, err := f.limits.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, limits...)
	if f.tlsCert.value != "" || f.tlsKey.value != "" || f.tlsCA.value != "" {
		if f.tlsCert.value == "" || f.tlsKey.value == "" {
			return nil, fmt.Errorf("TLS needs both --tls-cert and --tls-key")
		}
		opts = append(opts, server.WithTLS(server.TLSFiles{CertFile: f.tlsCert.value, KeyFile: f.tlsKey.value, CAFile: f.tlsCA.value}))
	}
	return opts, nil
}
