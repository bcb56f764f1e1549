package main

import (
	"fmt"
	"strconv"

	"github.com/meshnode/meshnode/membership"
	"github.com/meshnode/meshnode/server"
)

// limitFlags are the agent's limits on what clients that have not authenticated can make
// the node hold (the server package documents each; the ranges are checked there).
type limitFlags struct {
	pending, pendingPerSource, openCalls, watchers, idleConns *setting
}

// newLimitFlags declares the limit options on s.
func newLimitFlags(s *settings) limitFlags {
	return limitFlags{
		pending: s.str("max-pending-handshakes", "CLUSTER_MAX_PENDING_HANDSHAKES", strconv.Itoa(server.DefaultMaxPendingHandshakes),
			"peer streams authenticating at once (at least twice the nodes known); past it a newcomer evicts the least promising").as("int"),
		pendingPerSource: s.str("max-pending-handshakes-per-source", "CLUSTER_MAX_PENDING_HANDSHAKES_PER_SOURCE", strconv.Itoa(server.DefaultMaxPendingHandshakesPerSource),
			"peer streams authenticating at once from one address").as("int"),
		openCalls: s.str("max-open-calls", "CLUSTER_MAX_OPEN_CALLS", strconv.Itoa(server.DefaultMaxOpenCalls),
			"health, reflection and token-less API calls in progress; more are refused").as("int"),
		watchers: s.str("max-watchers", "CLUSTER_MAX_WATCHERS", strconv.Itoa(server.DefaultMaxWatchers),
			"WatchEvents streams at once; more are refused").as("int"),
		idleConns: s.str("max-idle-connections", "CLUSTER_MAX_IDLE_CONNECTIONS", strconv.Itoa(server.DefaultMaxIdleConnections),
			"connections without a stream (at least twice the nodes known); past it the one idle longest is closed").as("int"),
	}
}

// problems lists every limit that is not a positive count.
func (f limitFlags) problems() []membership.FieldError {
	_, problems := f.parse()
	return problems
}

// options returns the server options of the limits (call it once problems found none).
func (f limitFlags) options() ([]server.Option, error) {
	v, problems := f.parse()
	if len(problems) > 0 {
		return nil, &membership.ConfigError{Problems: problems}
	}
	return []server.Option{
		server.WithMaxPendingHandshakes(v.pending),
		server.WithMaxPendingHandshakesPerSource(v.perSource),
		server.WithMaxOpenCalls(v.openCalls, server.DefaultOpenCallTimeout, server.DefaultOpenStreamTimeout),
		server.WithMaxWatchers(v.watchers),
		server.WithMaxIdleConnections(v.idle),
	}, nil
}

// limitValues are the parsed limits.
type limitValues struct{ pending, perSource, openCalls, watchers, idle int }

func (f limitFlags) parse() (limitValues, []membership.FieldError) {
	var problems []membership.FieldError
	num := func(field string, st *setting) int {
		n, err := parseCount(st.value)
		if err == nil && n < 1 {
			err = fmt.Errorf("must be at least 1 (got %d)", n)
		}
		if err != nil {
			problems = append(problems, membership.FieldError{Field: field, Message: err.Error()})
		}
		return n
	}
	v := limitValues{
		pending:   num("MaxPendingHandshakes", f.pending),
		perSource: num("MaxPendingHandshakesPerSource", f.pendingPerSource),
		openCalls: num("MaxOpenCalls", f.openCalls),
		watchers:  num("MaxWatchers", f.watchers),
		idle:      num("MaxIdleConnections", f.idleConns),
	}
	return v, problems
}

// parseCount parses a count: decimal digits only (no sign, no leading zero), at most 9 of them.
func parseCount(s string) (int, error) {
	valid := len(s) > 0 && len(s) <= 9 && (s == "0" || s[0] != '0')
	for _, c := range s {
		valid = valid && c >= '0' && c <= '9'
	}
	if !valid {
		q := s
		if len(q) > 16 {
			q = q[:16] + "…"
		}
		return 0, fmt.Errorf("%q is not a count (digits only, at most 9)", q)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a count: %w", s, err)
	}
	return n, nil
}
