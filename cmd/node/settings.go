package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/meshnode/meshnode/internal/quote"
)

// setting is one option that a flag or an environment variable can set; the flag wins.
type setting struct {
	flag, env string
	value     string
	set       bool
	// fromFlag says the flag, not the environment, set the value.
	fromFlag bool
}

// settings is the flag set of one command plus the environment fallbacks of its flags.
type settings struct {
	fs   *flag.FlagSet
	list []*setting
}

func newSettings(name string) *settings {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &settings{fs: fs}
}

// str declares a string option with a flag, an optional environment variable and a default.
func (s *settings) str(flagName, env, def, help string) *setting {
	st := &setting{flag: flagName, env: env, value: def}
	if env != "" {
		help += " (env " + env + ")"
	}
	s.fs.Func(flagName, help+fmt.Sprintf(" (default %q)", def), func(v string) error {
		st.value, st.set, st.fromFlag = v, true, true
		return nil
	})
	s.list = append(s.list, st)
	return st
}

// parse reads the flags, then fills unset options from the environment.
func (s *settings) parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %s", quote.Input(s.fs.Arg(0)))
	}
	for _, st := range s.list {
		if st.set || st.env == "" {
			continue
		}
		if v, ok := os.LookupEnv(st.env); ok {
			st.value, st.set = strings.TrimSpace(v), true
		}
	}
	return nil
}

// errHelp is returned by parse when -h was asked for; usage has been printed.
var errHelp = flag.ErrHelp
