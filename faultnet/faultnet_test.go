package faultnet_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/faultnet"
	"github.com/meshnode/meshnode/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A faultnet network is what server.WithNetwork takes.
var _ server.Network = (*faultnet.Network)(nil)

// pair is a connection between a node's network (local: accepted or dialled through it) and a
// plain peer socket.
type pair struct {
	local, peer net.Conn
}

// listen listens on loopback through nw and closes the listener when the test ends.
func listen(t *testing.T, nw *faultnet.Network) net.Listener {
	t.Helper()
	l, err := nw.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// accepted connects a plain peer to a listener of nw.
func accepted(t *testing.T, nw *faultnet.Network) pair {
	t.Helper()
	l := listen(t, nw)
	peer, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	local, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = local.Close(); _ = peer.Close() })
	return pair{local: local, peer: peer}
}

// dialled connects nw to a plain peer's listener.
func dialled(t *testing.T, nw *faultnet.Network) pair {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	local, err := nw.DialContext(context.Background(), "tcp", l.Addr().String())
	require.NoError(t, err)
	peer, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = local.Close(); _ = peer.Close() })
	return pair{local: local, peer: peer}
}

// both runs f on a connection the network accepted and on one it dialled.
func both(t *testing.T, f func(t *testing.T, nw *faultnet.Network, p pair)) {
	t.Run("accepted", func(t *testing.T) { nw := faultnet.New(); f(t, nw, accepted(t, nw)) })
	t.Run("dialled", func(t *testing.T) { nw := faultnet.New(); f(t, nw, dialled(t, nw)) })
}

// send writes msg on from and reads it on to.
func send(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	_, err := from.Write([]byte(msg))
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	require.NoError(t, to.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(to, buf)
	require.NoError(t, err)
	require.Equal(t, msg, string(buf))
}

// readFails reads on c within d and returns the error (nil if data came).
func readFails(c net.Conn, d time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 16))
	return err
}

// isTimeout reports whether err is a passed deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

func TestHealthyNetworkPassesEverythingThrough(t *testing.T) {
	both(t, func(t *testing.T, _ *faultnet.Network, p pair) {
		send(t, p.local, p.peer, "ping")
		send(t, p.peer, p.local, "pong")
		require.NoError(t, p.local.Close())
		require.ErrorIs(t, readFails(p.peer, 5*time.Second), io.EOF, "a close reaches the peer")
	})
}

func TestCrashClosesEveryConnectionAndRefusesNewOnes(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		send(t, p.local, p.peer, "ping")
		nw.Crash()
		require.Error(t, readFails(p.peer, 5*time.Second), "the peer sees the connection closed")
		_, err := p.local.Write([]byte("x"))
		require.Error(t, err, "the crashed side cannot write")
		_, err = p.local.Read(make([]byte, 1))
		require.Error(t, err, "nor read")

		_, err = nw.DialContext(context.Background(), "tcp", p.peer.LocalAddr().String())
		require.ErrorIs(t, err, faultnet.ErrCrashed)
		_, err = nw.Listen(context.Background(), "tcp", "127.0.0.1:0")
		require.ErrorIs(t, err, faultnet.ErrCrashed)
	})
}

func TestCrashedListenerRefusesConnectionsAndAcceptWaitsForClose(t *testing.T) {
	nw := faultnet.New()
	l, err := nw.Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	nw.Crash()
	_, err = net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	require.Error(t, err, "nothing listens on a crashed node's port")
	select {
	case err := <-accepted:
		t.Fatalf("Accept returned before Close: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	require.NoError(t, l.Close())
	require.ErrorIs(t, <-accepted, net.ErrClosed)

	nw.Heal()
	again, err := nw.Listen(context.Background(), "tcp", l.Addr().String())
	require.NoError(t, err, "after Heal the node listens again, on the same port")
	require.NoError(t, again.Close())
}

func TestFreezeSilencesBothDirectionsUntilHeal(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		send(t, p.local, p.peer, "before")
		nw.Freeze()

		// The peer's message does not reach the frozen side; a read honours its deadline.
		_, err := p.peer.Write([]byte("in"))
		require.NoError(t, err)
		require.True(t, isTimeout(readFails(p.local, 100*time.Millisecond)), "a frozen read waits until its deadline")

		// What the frozen side writes waits.
		require.NoError(t, p.local.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
		_, err = p.local.Write([]byte("out"))
		require.True(t, isTimeout(err), "a frozen write waits until its deadline: %v", err)
		require.NoError(t, p.local.SetWriteDeadline(time.Time{}))
		require.True(t, isTimeout(readFails(p.peer, 100*time.Millisecond)), "the peer hears nothing")

		wrote := make(chan error, 1)
		go func() {
			_, err := p.local.Write([]byte("out"))
			wrote <- err
		}()
		nw.Heal()
		require.NoError(t, <-wrote)
		require.NoError(t, p.local.SetReadDeadline(time.Time{}))
		buf := make([]byte, 2)
		_, err = io.ReadFull(p.local, buf)
		require.NoError(t, err)
		require.Equal(t, "in", string(buf), "after Heal the held message is read")
		buf = make([]byte, 3)
		require.NoError(t, p.peer.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = io.ReadFull(p.peer, buf)
		require.NoError(t, err)
		require.Equal(t, "out", string(buf))
	})
}

func TestDataAlreadyReadIsHeldDuringAFreeze(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 16)
			n, err := p.local.Read(buf) // waits in the socket, before the freeze
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(buf[:n])
		}()
		time.Sleep(50 * time.Millisecond)
		nw.Freeze()
		_, err := p.peer.Write([]byte("late"))
		require.NoError(t, err)
		select {
		case s := <-got:
			t.Fatalf("a frozen reader got %q", s)
		case <-time.After(200 * time.Millisecond):
		}
		nw.Heal()
		require.Equal(t, "late", <-got)
	})
}

func TestCloseWhileFrozenReachesThePeerOnlyAfterHeal(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		reading := make(chan error, 1)
		go func() {
			_, err := p.local.Read(make([]byte, 1))
			reading <- err
		}()
		time.Sleep(50 * time.Millisecond)
		nw.Freeze()
		require.NoError(t, p.local.Close())
		require.ErrorIs(t, <-reading, net.ErrClosed, "the node's own pending read returns at once")
		require.True(t, isTimeout(readFails(p.peer, 200*time.Millisecond)), "a paused process closes nothing")
		nw.Heal()
		require.ErrorIs(t, readFails(p.peer, 5*time.Second), io.EOF, "the close goes out once healed")
	})
}

func TestFrozenDialWaitsForHealOrItsContext(t *testing.T) {
	nw := faultnet.New()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	nw.Freeze()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = nw.DialContext(ctx, "tcp", l.Addr().String())
	require.ErrorIs(t, err, context.DeadlineExceeded)

	dialled := make(chan error, 1)
	go func() {
		c, err := nw.DialContext(context.Background(), "tcp", l.Addr().String())
		if err == nil {
			_ = c.Close()
		}
		dialled <- err
	}()
	time.Sleep(50 * time.Millisecond)
	nw.Heal()
	require.NoError(t, <-dialled)
}

func TestFrozenListenerHoldsNewConnectionsUntilHeal(t *testing.T) {
	nw := faultnet.New()
	l := listen(t, nw)
	nw.Freeze()
	peer, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err, "the kernel still completes the connect")
	defer peer.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	select {
	case <-accepted:
		t.Fatal("a frozen node accepted a connection")
	case <-time.After(100 * time.Millisecond):
	}
	nw.Heal()
	c := <-accepted
	require.NotNil(t, c)
	defer c.Close()
	send(t, peer, c, "hello")
}

func TestCrashEndsAFreeze(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		nw.Freeze()
		reading := make(chan error, 1)
		go func() {
			_, err := p.local.Read(make([]byte, 1))
			reading <- err
		}()
		nw.Crash()
		require.Error(t, <-reading, "a crash ends the frozen read")
		require.Error(t, readFails(p.peer, 5*time.Second), "and closes the connection on the wire")
		nw.Freeze() // a crashed network stays crashed
		_, err := nw.Listen(context.Background(), "tcp", "127.0.0.1:0")
		require.ErrorIs(t, err, faultnet.ErrCrashed)
	})
}

func TestDataHeldPastAReadDeadlineIsReadAfterHeal(t *testing.T) {
	both(t, func(t *testing.T, nw *faultnet.Network, p pair) {
		read := make(chan error, 1)
		go func() {
			_ = p.local.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err := p.local.Read(make([]byte, 16)) // waits in the socket, before the freeze
			read <- err
		}()
		time.Sleep(50 * time.Millisecond)
		nw.Freeze()
		_, err := p.peer.Write([]byte("kept"))
		require.NoError(t, err)
		require.True(t, isTimeout(<-read), "the read's deadline passes while the data is held")
		nw.Heal()
		require.NoError(t, p.local.SetReadDeadline(time.Now().Add(5*time.Second)))
		buf := make([]byte, 4)
		_, err = io.ReadFull(p.local, buf)
		require.NoError(t, err)
		require.Equal(t, "kept", string(buf), "nothing is lost")
	})
}
