package harness

import (
	"bufio"
	"encoding/binary"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Header bytes one packet carries besides its payload, as /proc/net/dev counts them on lo
// (IP packet length; a real Ethernet link adds 14 bytes of header, plus preamble and gap):
// 20 (IPv4) + 32 (TCP with the timestamp option Linux uses by default) or + 8 (UDP).
const (
	tcpOverhead = 20 + 32
	udpOverhead = 20 + 8
)

// Traffic is what a system's sockets have sent so far.
type Traffic struct {
	// Payload is the TCP/UDP payload bytes written to sockets (gRPC's HTTP/2 frames, or
	// memberlist's UDP packets and TCP streams).
	Payload int64
	// Wire is Payload plus the headers of every packet sent, pure ACKs included.
	Wire int64
	// Sockets is how many sockets were counted (ours: open TCP sockets).
	Sockets int
}

// Sub returns t - o.
func (t Traffic) Sub(o Traffic) Traffic {
	return Traffic{Payload: t.Payload - o.Payload, Wire: t.Wire - o.Wire, Sockets: t.Sockets}
}

// tcpInfo reads the kernel's counters of one TCP socket: payload bytes sent (first
// transmissions only) and segments sent (data and pure ACKs).
func tcpInfo(fd int) (payload, wire int64, ok bool) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, 0, false
	}
	payload = int64(info.Bytes_sent) - int64(info.Bytes_retrans)
	wire = int64(info.Bytes_sent) + int64(info.Segs_out)*tcpOverhead
	return payload, wire, true
}

// ProcessTCPTraffic sums the kernel counters of every TCP socket the process holds. A worker
// process hosts one system only, so these are that system's bytes; sockets closed between
// two samples are lost, which is why the steady-state window checks that none closed.
func ProcessTCPTraffic() Traffic {
	var t Traffic
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return t
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		if p, w, ok := tcpInfo(fd); ok {
			t.Payload += p
			t.Wire += w
			t.Sockets++
		}
	}
	return t
}

// connTCPInfo reads the counters of one net.Conn's socket.
func connTCPInfo(c net.Conn) (payload, wire int64, ok bool) {
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return 0, 0, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	_ = raw.Control(func(fd uintptr) { payload, wire, ok = tcpInfo(int(fd)) })
	return payload, wire, ok
}

// ConnCounter counts memberlist's traffic: UDP packets as they are written, TCP streams
// through their kernel counters (read when they close and when sampled while open).
type ConnCounter struct {
	udpPayload atomic.Int64
	udpPackets atomic.Int64

	mu         sync.Mutex
	closedPay  int64
	closedWire int64
	open       map[*countedConn]struct{}
}

// NewConnCounter returns an empty counter.
func NewConnCounter() *ConnCounter { return &ConnCounter{open: map[*countedConn]struct{}{}} }

// Packet counts one UDP packet of n payload bytes.
func (c *ConnCounter) Packet(n int) {
	c.udpPayload.Add(int64(n))
	c.udpPackets.Add(1)
}

// Wrap tracks conn until it is closed.
func (c *ConnCounter) Wrap(conn net.Conn) net.Conn {
	cc := &countedConn{Conn: conn, counter: c}
	c.mu.Lock()
	c.open[cc] = struct{}{}
	c.mu.Unlock()
	return cc
}

// Total returns everything sent so far.
func (c *ConnCounter) Total() Traffic {
	c.mu.Lock()
	t := Traffic{Payload: c.closedPay, Wire: c.closedWire, Sockets: len(c.open)}
	for cc := range c.open {
		if p, w, ok := connTCPInfo(cc.Conn); ok {
			t.Payload += p
			t.Wire += w
		}
	}
	c.mu.Unlock()
	up := c.udpPayload.Load()
	t.Payload += up
	t.Wire += up + c.udpPackets.Load()*udpOverhead
	return t
}

type countedConn struct {
	net.Conn
	counter *ConnCounter
	once    sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() {
		p, w, _ := connTCPInfo(cc.Conn)
		c := cc.counter
		c.mu.Lock()
		c.closedPay += p
		c.closedWire += w
		delete(c.open, cc)
		c.mu.Unlock()
	})
	return cc.Conn.Close()
}

// CPUSeconds returns the user+system CPU time the process has used.
func CPUSeconds() float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// RSSBytes returns the process's resident set size (VmRSS).
func RSSBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				kb, _ := strconv.ParseInt(fields[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// LoopbackTxBytes returns the bytes sent on lo so far, from /proc/net/dev. The interface
// is shared with every process on the machine: it is an upper bound, a cross-check only.
func LoopbackTxBytes() int64 {
	f, err := os.Open("/proc/net/dev")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		if !ok || strings.TrimSpace(name) != "lo" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) >= 9 {
			v, _ := strconv.ParseInt(fields[8], 10, 64)
			return v
		}
	}
	return 0
}

// countFDs returns how many file descriptors the process holds.
// countFDs counts the entries of /proc/self/fd (the directory's own descriptor included)
// with getdents into one buffer: os.ReadDir would allocate and sort an entry per descriptor,
// tens of thousands of them while a large cluster forms, in the process being measured.
func countFDs() int {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(dir)
	buf := make([]byte, 64<<10)
	n := 0
	for {
		got, err := unix.Getdents(dir, buf)
		if err != nil || got <= 0 {
			return n
		}
		// struct linux_dirent64: inode (8 bytes), offset (8), record length (2), type (1), name.
		for off := 0; off+19 < got; {
			if buf[off+19] != '.' { // "." and ".."
				n++
			}
			off += int(binary.NativeEndian.Uint16(buf[off+16:]))
		}
	}
}

// fdLimit returns the process's RLIMIT_NOFILE soft limit.
func fdLimit() uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// fdSampler records the peak file descriptor count while it runs.
type fdSampler struct {
	done chan struct{}
	peak chan int
	once sync.Once
	val  int
}

// startFDSampler samples the file descriptors of sys's process(es) every second (the peak
// of the largest process, which is what meets RLIMIT_NOFILE).
func startFDSampler(sys System) *fdSampler {
	countFDs := sys.FDs
	s := &fdSampler{done: make(chan struct{}), peak: make(chan int, 1)}
	go func() {
		peak := countFDs()
		t := time.NewTicker(time.Second) // listing /proc/self/fd costs the kernel time per descriptor
		defer t.Stop()
		for {
			select {
			case <-s.done:
				s.peak <- max(peak, countFDs())
				return
			case <-t.C:
				peak = max(peak, countFDs())
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak.
func (s *fdSampler) stop() int {
	s.once.Do(func() { close(s.done); s.val = <-s.peak })
	return s.val
}
