package server

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

// flippingProxy forwards TCP connections to target and, once armed, flips one bit in the
// middle of the next chunk a client sends: a host on the path without the secret.
type flippingProxy struct {
	l     net.Listener
	armed atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newFlippingProxy(t *testing.T, target string) *flippingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &flippingProxy{l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); p.pump(out, in); _ = out.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// pump copies src to dst, flipping a bit of the first chunk read once armed.
func (p *flippingProxy) pump(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.armed.CompareAndSwap(true, false) {
				buf[n/2] ^= 0x10
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestFlippedByteOnThePathCutsTheStreamOnly is what a host on the path can do without the
// secret: flip a byte. The stream is cut (the frame's MAC fails, or TLS's own record check),
// both ends report connection_closed, and they rejoin; nothing forged is ever accepted.
func TestFlippedByteOnThePathCutsTheStreamOnly(t *testing.T) {
	const secret = "tamper-test-secret-0123"
	for _, useTLS := range []bool{false, true} {
		name := "HMAC"
		if useTLS {
			name = "HMAC and TLS"
		}
		t.Run(name, func(t *testing.T) {
			var aOpts, bOpts []Option
			if useTLS {
				ca := newTestCA(t, "ca")
				aOpts, bOpts = []Option{WithTLS(ca.issue(t, "a"))}, []Option{WithTLS(ca.issue(t, "b"))}
			}
			a, _ := startLogged(t, withSecrets(testConfig("a"), secret), aOpts...)
			proxy := newFlippingProxy(t, a.Addr().String())
			b, _ := startLogged(t, withSecrets(testConfig("b", proxy.l.Addr().String()), secret), bOpts...)
			requireFullMesh(t, 5*time.Second, a, b)
			ra, rb := record(a), record(b)
			proxy.armed.Store(true)
			require.Eventually(t, func() bool { return len(ra.downs(b.LocalID())) == 1 && len(rb.downs(a.LocalID())) == 1 },
				5*time.Second, 5*time.Millisecond, "the flipped byte cuts the stream")
			cut := time.Now()
			require.Equal(t, membership.ReasonConnectionClosed, ra.downs(b.LocalID())[0])
			require.Equal(t, membership.ReasonConnectionClosed, rb.downs(a.LocalID())[0])
			requireFullMesh(t, 5*time.Second, a, b)
			t.Logf("%s: the stream was cut and the nodes rejoined in %s", name, time.Since(cut).Round(time.Millisecond))
			require.Equal(t, 1, ra.ups(b.LocalID()))
			require.Equal(t, 1, rb.ups(a.LocalID()))
		})
	}
}
