package quote

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestInputQuotesShortInputWhole(t *testing.T) {
	require.Equal(t, `"1app@h:1"`, Input("1app@h:1"))
	require.Equal(t, `""`, Input(""))
	exact := strings.Repeat("a", MaxBytes)
	require.Equal(t, `"`+exact+`"`, Input(exact))
}

func TestInputQuotesAPrefixAndTheLengthOfLongInput(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	got := Input(long)
	require.Equal(t, `"`+strings.Repeat("x", MaxBytes)+`"... (1048576 bytes)`, got)
}

func TestInputCutsAtACharacterBoundary(t *testing.T) {
	s := strings.Repeat("a", MaxBytes-1) + "é" + strings.Repeat("b", 100) // é straddles the cut
	got := Input(s)
	require.Equal(t, `"`+strings.Repeat("a", MaxBytes-1)+`"... (165 bytes)`, got)
	require.True(t, utf8.ValidString(got))
}

func TestInputIsBoundedWhateverTheBytes(t *testing.T) {
	s := strings.Repeat("\xff", 1<<16)
	got := Input(s)
	require.Less(t, len(got), 300, got)
	require.Contains(t, got, "(65536 bytes)")
}
