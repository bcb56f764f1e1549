package server

import (
	"crypto/tls"
	"errors"

	"github.com/meshnode/meshnode/membership"
)

// Validate checks cfg and the options as Start does before it binds anything: it returns nil
// or a *membership.ConfigError listing every invalid field at once, those of cfg (see
// membership.Config.Validate) and those of the options: the metrics address
// (membership.ParseListenAddress) and the TLS files (readable, a matching key pair, a CA file
// holding a certificate).
func Validate(cfg *membership.Config, opts ...Option) error {
	o := newOptions(opts)
	_, err := validate(cfg, &o)
	return err
}

// tlsSetup is the loaded TLS configuration of a node, nil for plaintext.
type tlsSetup struct{ server, dial *tls.Config }

// validate checks cfg and o, and loads what the check reads anyway (the TLS files).
func validate(cfg *membership.Config, o *options) (*tlsSetup, error) {
	var problems []membership.FieldError
	if err := cfg.Validate(); err != nil {
		var ce *membership.ConfigError
		if !errors.As(err, &ce) {
			return nil, err
		}
		problems = append(problems, ce.Problems...)
	}
	if err := o.validate(); err != nil {
		var ce *membership.ConfigError
		if !errors.As(err, &ce) {
			return nil, err
		}
		problems = append(problems, ce.Problems...)
	}
	if o.metricsAddr != "" {
		if _, _, err := membership.ParseListenAddress(o.metricsAddr); err != nil {
			problems = append(problems, membership.FieldError{Field: "MetricsAddr", Message: err.Error()})
		}
	}
	var setup *tlsSetup
	if o.tls != nil {
		serverTLS, dialTLS, err := o.tls.tlsConfigs()
		if err != nil {
			problems = append(problems, membership.FieldError{Field: "TLS", Message: err.Error()})
		} else {
			setup = &tlsSetup{server: serverTLS, dial: dialTLS}
		}
	}
	if len(problems) > 0 {
		return nil, &membership.ConfigError{Problems: problems}
	}
	return setup, nil
}
