package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// ANSI styles the CLI uses.
const (
	styleGreen  = "32"
	styleYellow = "33"
	styleRed    = "31"
	styleGrey   = "90"
	styleBold   = "1"
)

// colourOn reports whether output to w may be coloured: only on a terminal, and never when
// NO_COLOR is set to anything (no-color.org) or TERM is dumb.
func colourOn(w io.Writer) bool {
	if v, ok := os.LookupEnv("NO_COLOR"); ok && v != "" {
		return false
	}
	if os.Getenv("TERM") == "dumb" {
		return false
	}
	return isTerminal(w)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// paint wraps s in an ANSI style when on is set.
func paint(on bool, style, s string) string {
	if !on {
		return s
	}
	return "\x1b[" + style + "m" + s + "\x1b[0m"
}
