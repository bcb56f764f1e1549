package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// --cluster-name and CLUSTER_NAME follow the rule of a node's name; an invalid one is
// refused with the other configuration errors, exit status 2.
func TestClusterNameFlagAndEnvironment(t *testing.T) {
	code, _, errOut := runCLI(t, "agent", "--name", "ok", "--port", "0", "--cluster-name", "1bad")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `--cluster-name (CLUSTER_NAME): must start with a letter (got "1bad")`)

	t.Setenv("CLUSTER_NAME", "has space")
	code, _, errOut = runCLI(t, "agent", "--name", "ok", "--port", "0")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--cluster-name (CLUSTER_NAME): ")
}
