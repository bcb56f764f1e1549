package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// setting is one option that a flag or an environment variable can set; the flag wins.
type setting struct {
	flag, env string
	// typ names the value in the help, e.g. "duration" or "host:port".
	typ   string
	value string
	set   bool
	// fromFlag says the flag, not the environment, set the value.
	fromFlag bool
}

// label names the setting in messages: the flag and, when it has one, its environment
// variable, e.g. "--heartbeat-interval (CLUSTER_HEARTBEAT_INTERVAL)".
func (st *setting) label() string {
	if st.env == "" {
		return "--" + st.flag
	}
	return "--" + st.flag + " (" + st.env + ")"
}

// flagValue is the pflag.Value of a setting: it records that the flag was given.
type flagValue struct{ st *setting }

// String returns the current value.
func (v flagValue) String() string { return v.st.value }

// Set records a value given on the command line.
func (v flagValue) Set(s string) error {
	v.st.value, v.st.set, v.st.fromFlag = s, true, true
	return nil
}

// Type names the value in the help.
func (v flagValue) Type() string { return v.st.typ }

// settings are the options of one command: its flags plus their environment fallbacks. It
// knows nothing of cobra: a command hands it its flag set.
type settings struct {
	fs   *pflag.FlagSet
	list []*setting
}

// newSettings declares options on fs.
func newSettings(fs *pflag.FlagSet) *settings { return &settings{fs: fs} }

// str declares an option with a flag, an optional environment variable and a default; the
// help names its value "string" unless as names it otherwise.
func (s *settings) str(flagName, env, def, help string) *setting {
	st := &setting{flag: flagName, env: env, typ: "string", value: def}
	if env != "" {
		help += " [$" + env + "]"
	}
	f := s.fs.VarPF(flagValue{st}, flagName, "", help)
	f.DefValue = def
	s.list = append(s.list, st)
	return st
}

// as names the setting's value in the help, e.g. "duration" or "host:port" (a "string"
// default is quoted there, others are not), and returns the setting.
func (st *setting) as(typ string) *setting {
	st.typ = typ
	return st
}

// byFlag returns the setting of a flag name, nil if none.
func (s *settings) byFlag(name string) *setting {
	for _, st := range s.list {
		if st.flag == name {
			return st
		}
	}
	return nil
}

// applyEnv fills the options no flag set from their environment variables (flags win).
func (s *settings) applyEnv() {
	for _, st := range s.list {
		if st.set || st.env == "" {
			continue
		}
		if v, ok := os.LookupEnv(st.env); ok {
			st.value, st.set = strings.TrimSpace(v), true
		}
	}
}

// parse parses args as the command line of a command that takes no arguments, then applies
// the environment. cobra parses the real command line; tests and plain callers use this.
func (s *settings) parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", s.fs.Arg(0))
	}
	s.applyEnv()
	return nil
}
