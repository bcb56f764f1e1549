package server_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The README's embedding code is the example's (embed in example_test.go), which runs: the
// README cannot drift from what compiles and works.
func TestREADMEEmbeddingIsTheExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(src), "\t// README:begin\n")
	require.True(t, ok, "example_test.go marks the README's code")
	body, _, ok := strings.Cut(rest, "\t// README:end\n")
	require.True(t, ok, "example_test.go marks the end of the README's code")
	var b strings.Builder
	for line := range strings.Lines(body) {
		b.WriteString(strings.TrimPrefix(line, "\t"))
	}
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	require.True(t, strings.Contains(string(readme), "\n"+b.String()+"```\n"),
		"the README's \"Embedding in Go\" must hold a code block of embed's code in example_test.go, word for word:\n%s", b.String())
}
