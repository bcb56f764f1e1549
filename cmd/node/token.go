package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// tokenFlags are the two ways to give the API token on the command line: --token, which `ps`
// shows to every user of the machine, and --token-file, which it does not; the environment
// (CLUSTER_API_TOKEN, CLUSTER_API_TOKEN_FILE) stays out of `ps` too.
type tokenFlags struct {
	token, file *setting
}

// tokenHelp is the help of --token; what states purpose is the caller's.
const tokenHelp = "; visible in ps: prefer --token-file or the environment"

// newTokenFlags declares --token and --token-file on s; purpose starts the help of --token.
func newTokenFlags(s *settings, purpose string) tokenFlags {
	return tokenFlags{
		token: s.str("token", "CLUSTER_API_TOKEN", "", purpose+tokenHelp),
		file:  s.str("token-file", "CLUSTER_API_TOKEN_FILE", "", "file holding the API token (its first line; not visible in ps)").as("file"),
	}
}

// value returns the token (empty: none). A flag wins over the environment; the token never
// appears in an error.
func (f tokenFlags) value() (string, error) {
	fromFlag := f.token.value != "" && (f.token.fromFlag || !f.file.fromFlag)
	fromFile := f.file.value != "" && (f.file.fromFlag || !f.token.fromFlag)
	switch {
	case fromFlag && fromFile:
		return "", errors.New("give the API token once: --token or --token-file (or CLUSTER_API_TOKEN or CLUSTER_API_TOKEN_FILE), not both")
	case fromFile:
		data, err := os.ReadFile(f.file.value)
		if err != nil {
			return "", fmt.Errorf("cannot read token file %q: %w", f.file.value, unwrapPathError(err))
		}
		line, _, _ := strings.Cut(string(data), "\n")
		token := strings.TrimSpace(line)
		if token == "" {
			return "", fmt.Errorf("token file %q holds no token on its first line", f.file.value)
		}
		return token, nil
	default:
		return f.token.value, nil
	}
}
