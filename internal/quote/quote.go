// Package quote quotes untrusted input for error messages and logs, at a bounded length, so
// that an error never echoes unbounded input back to whoever sent it.
package quote

import (
	"strconv"
	"unicode/utf8"
)

// MaxBytes is how many bytes of the input Input quotes at most.
const MaxBytes = 64

// Input returns s quoted as strconv.Quote does when it is at most MaxBytes long. A longer s is
// quoted only in part, its first MaxBytes bytes (cut at a character boundary), followed by
// its length:
//
//	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"... (1048576 bytes)
//
// The result is at most a few hundred bytes, whatever s holds.
func Input(s string) string {
	if len(s) <= MaxBytes {
		return strconv.Quote(s)
	}
	cut := MaxBytes
	// Back up to the start of a character, unless the bytes there are not UTF-8 at all.
	for i := cut; i > cut-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			cut = i
			break
		}
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}
