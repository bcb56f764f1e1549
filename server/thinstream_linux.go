package server

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// markThinStream asks the kernel to retransmit a lost segment of c at a steady pace rather
// than with a doubling timeout (TCP_THIN_LINEAR_TIMEOUTS), for as long as c has fewer than
// four segments in flight. A peer stream carries a small heartbeat every interval, so a
// segment lost again and again would otherwise wait 0.2, 0.4, 0.8, 1.6 s between tries (at
// the least: the timeout starts above the round trip): three or four losses in a row, rare
// but seen under 5 % loss, silence a live peer past the default timeout of 3 s. With linear timeouts the first six retries keep the
// retransmission timeout's first value. A connection that is not a socket (a test's
// in-memory pipe, a wrapped connection) is left as it is.
func markThinStream(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("thin stream: %w", err)
	}
	var opErr error
	if err := raw.Control(func(fd uintptr) {
		opErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_THIN_LINEAR_TIMEOUTS, 1)
	}); err != nil {
		return fmt.Errorf("thin stream: %w", err)
	}
	if opErr != nil {
		return fmt.Errorf("thin stream: setting TCP_THIN_LINEAR_TIMEOUTS: %w", opErr)
	}
	return nil
}
