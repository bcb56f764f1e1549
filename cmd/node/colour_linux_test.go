package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the program writes to tty, the test reads from master.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { _ = master.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tty.Close() })
	return master, tty
}

// onTerminal runs a command with its stdout on a terminal and returns what the terminal got.
func onTerminal(t *testing.T, args ...string) string {
	t.Helper()
	master, tty := openPTY(t)
	read := make(chan string, 1)
	go func() {
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				read <- b.String()
				return
			}
		}
	}()
	code := run(t.Context(), args, tty, io.Discard)
	require.Equal(t, 0, code)
	require.NoError(t, tty.Close())
	// Closing the terminal's last descriptor ends the reads; a deadline guards the test.
	require.NoError(t, master.SetReadDeadline(time.Now().Add(5*time.Second)))
	return <-read
}

func TestColourOnlyOnATerminalAndNeverWithNoColor(t *testing.T) {
	t.Setenv("TERM", "xterm")
	a := startTestNode(t, "alpha")
	addr := a.Addr().String()
	for _, cmd := range [][]string{{"health", "--addr", addr}, {"members", "--addr", addr}, {"health", "--addr", addr, "--json"}} {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			t.Setenv("NO_COLOR", "")
			if cmd[len(cmd)-1] == "--json" {
				require.NotContains(t, onTerminal(t, cmd...), "\x1b[", "JSON is never coloured")
			} else {
				require.Contains(t, onTerminal(t, cmd...), "\x1b[", "colour on a terminal")
			}

			t.Setenv("NO_COLOR", "1")
			out := onTerminal(t, cmd...)
			require.NotContains(t, out, "\x1b[", "NO_COLOR: plain text on a terminal too")
			require.NotEmpty(t, out)

			t.Setenv("NO_COLOR", "")
			code, piped, _ := runCLI(t, cmd...)
			require.Equal(t, 0, code)
			require.NotContains(t, piped, "\x1b[", "plain text into a pipe or a file")
		})
	}
}
