package process_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The binary the container image holds (CGO off, as the Dockerfile and `make static` build
// it) is static: no interpreter, no shared library. Run as root, it also runs alone in an
// empty root directory, as an unprivileged user with an empty environment (what a FROM
// scratch image gives it): `node version`, then `node agent` until it serves, stopped by
// SIGTERM with exit status 0.
func TestStaticBinaryRunsAloneInAnEmptyRoot(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o755))
	bin := filepath.Join(root, "node")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/meshnode/meshnode/cmd/node")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build: %s", out)

	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary has no interpreter")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "a static binary has no dynamic section")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)

	if os.Geteuid() != 0 {
		t.Skip("not root: the run in an empty root (chroot) is skipped; the ELF checks passed")
	}
	alone := func(args ...string) *exec.Cmd {
		cmd := exec.Command("/node", args...)
		cmd.Env = []string{}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		return cmd
	}
	out, err = alone("version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.True(t, strings.HasPrefix(string(out), "node "), "%s", out)

	agent := alone("agent", "--name", "alone", "--host", "127.0.0.1", "--port", "0", "--log-format", "json")
	stderr, err := agent.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, agent.Start())
	started := make(chan string, 1)
	var logged strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logged.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), `"msg":"node started"`) {
				started <- sc.Text()
			}
		}
		close(started)
	}()
	select {
	case line, ok := <-started:
		require.True(t, ok, "the agent ended before it started")
		require.Contains(t, line, `"listen":"127.0.0.1:`)
	case <-time.After(20 * time.Second):
		_ = agent.Process.Kill()
		_ = agent.Wait()
		t.Fatal("the agent did not start within 20s")
	}
	require.NoError(t, agent.Process.Signal(syscall.SIGTERM))
	for range started { // the log ends when the process does
	}
	require.NoError(t, agent.Wait(), "the agent leaves and exits 0 on SIGTERM")
	require.Contains(t, logged.String(), "stopped")
}
