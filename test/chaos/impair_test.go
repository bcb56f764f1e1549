//go:build chaos && linux

package chaos_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Packet loss and delay on a node's egress (eth0), the same on every node, so every link
// gets loss and delay in each direction, like `tc netem` on every veth.
//
// `tc qdisc … netem` is used where the kernel has it (CONFIG_NET_SCH_NETEM). Kernels built
// without it (the CI machines' is one) get the equivalent from netfilter: an iptables
// NFQUEUE rule on eth0's egress hands every packet to this test process, which drops it with
// the loss probability or releases it after delay ± jitter (uniform), like netem's defaults.
// NFQUEUE is spoken here over raw netlink (package unix), with --queue-bypass so the
// traffic flows unimpaired if the test process is gone.

// impairment is loss and delay applied to one node's egress.
type impairment struct {
	mechanism string
	remove    func()
	stats     func() impairStats
}

// impairStats counts what an NFQUEUE delayer did (zero for netem, which the kernel counts).
type impairStats struct {
	Packets, Dropped uint64
	MeanDelay        time.Duration
}

// impair applies loss (0..1) and delay ± jitter to n's egress on eth0 until remove.
func impair(t *testing.T, n *node, loss float64, delay, jitter time.Duration) *impairment {
	t.Helper()
	if !forceNFQueue() {
		args := []string{"netns", "exec", n.ns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem",
			"delay", delay.String(), jitter.String(), "loss", fmt.Sprintf("%g%%", loss*100)}
		if _, err := runCmd("ip", args...); err == nil {
			im := &impairment{mechanism: "tc netem", stats: func() impairStats { return impairStats{} }}
			var once sync.Once
			im.remove = func() {
				once.Do(func() { _, _ = runCmd("ip", "netns", "exec", n.ns, "tc", "qdisc", "del", "dev", "eth0", "root") })
			}
			t.Cleanup(im.remove)
			return im
		}
	}
	q, err := openNFQueue(n.ns, 0)
	if err != nil {
		t.Fatalf("netem is not available and NFQUEUE failed: %v", err)
	}
	q.loss, q.delay, q.jitter = loss, delay, jitter
	go q.serve()
	rule := []string{"OUTPUT", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"}
	iptables(t, n.ns, append([]string{"-A"}, rule...)...)
	im := &impairment{mechanism: "iptables NFQUEUE delayer (no netem in this kernel)", stats: q.stats}
	var once sync.Once
	im.remove = func() {
		once.Do(func() {
			_, _ = runCmd("ip", append([]string{"netns", "exec", n.ns, "iptables", "-w", "-D"}, rule...)...)
			// Packets already queued get their verdict before the queue goes away.
			time.Sleep(delay + jitter + 50*time.Millisecond)
			q.close()
		})
	}
	t.Cleanup(im.remove)
	return im
}

// forceNFQueue lets a run on a netem kernel exercise the NFQUEUE path (CHAOS_IMPAIR=nfqueue).
func forceNFQueue() bool { return strings.EqualFold(getenv("CHAOS_IMPAIR", ""), "nfqueue") }

// Netlink constants of nfnetlink_queue (linux/netfilter/nfnetlink_queue.h).
const (
	nfnlSubsysQueue    = 3
	nfqnlMsgPacket     = 0
	nfqnlMsgVerdict    = 1
	nfqnlMsgConfig     = 2
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqnlCopyMeta      = 1
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5
	nfqnlCfgCmdBind    = 1
	nfqnlCfgCmdUnbind  = 2
	nfqaPacketHdr      = 1
	nfqaVerdictHdr     = 2
	nfqaCfgFFailOpen   = 1
	nfDrop             = 0
	nfAccept           = 1
)

// nfQueue is one NFQUEUE listener in a namespace.
type nfQueue struct {
	fd     int
	num    uint16
	seq    atomic.Uint32
	sendMu sync.Mutex
	closed atomic.Bool
	done   chan struct{}

	loss          float64
	delay, jitter time.Duration

	packets, dropped atomic.Uint64
	delaySum         atomic.Int64
}

// openNFQueue binds queue num in namespace ns.
func openNFQueue(ns string, num uint16) (*nfQueue, error) {
	q := &nfQueue{num: num, done: make(chan struct{})}
	err := inNetns(ns, func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		q.fd = fd
		return unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	})
	if err != nil {
		if q.fd > 0 {
			unix.Close(q.fd)
		}
		return nil, err
	}
	_ = unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	_ = unix.SetsockoptInt(q.fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	_ = unix.SetsockoptTimeval(q.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	cmd := []byte{nfqnlCfgCmdBind, 0, 0, 0} // command, pad, pf (be16, unused since 3.8)
	if err := q.request(nfqnlMsgConfig, attr(nfqaCfgCmd, cmd)); err != nil {
		unix.Close(q.fd)
		return nil, fmt.Errorf("bind queue %d: %w", num, err)
	}
	// A new queue copies nothing and the kernel then refuses to queue to it: ask for the
	// metadata (the packet id is all a verdict needs).
	params := append(binary.BigEndian.AppendUint32(nil, 0), nfqnlCopyMeta) // copy_range, copy_mode
	if err := q.request(nfqnlMsgConfig, attr(nfqaCfgParams, params)); err != nil {
		unix.Close(q.fd)
		return nil, fmt.Errorf("set copy mode of queue %d: %w", num, err)
	}
	// Fail open: if the queue overflows, accept rather than drop (the loss must be ours).
	flags := binary.BigEndian.AppendUint32(nil, nfqaCfgFFailOpen)
	maxlen := binary.BigEndian.AppendUint32(nil, 8192)
	if err := q.request(nfqnlMsgConfig, append(append(attr(nfqaCfgFlags, flags), attr(nfqaCfgMask, flags)...), attr(nfqaCfgQueueMaxlen, maxlen)...)); err != nil {
		unix.Close(q.fd)
		return nil, fmt.Errorf("configure queue %d: %w", num, err)
	}
	return q, nil
}

// attr encodes one netlink attribute, padded to 4 bytes.
func attr(typ uint16, payload []byte) []byte {
	l := 4 + len(payload)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], payload)
	return b
}

// message encodes an nfnetlink message of the queue subsystem.
func (q *nfQueue) message(msgType uint16, flags uint16, attrs []byte) []byte {
	l := unix.NLMSG_HDRLEN + 4 + len(attrs)
	b := make([]byte, l)
	binary.NativeEndian.PutUint32(b[0:], uint32(l))
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|msgType)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], q.seq.Add(1))
	binary.NativeEndian.PutUint32(b[12:], 0)
	b[16] = unix.AF_UNSPEC // nfgen_family
	b[17] = 0              // NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:], q.num)
	copy(b[20:], attrs)
	return b
}

func (q *nfQueue) send(b []byte) error {
	q.sendMu.Lock()
	defer q.sendMu.Unlock()
	if q.fd < 0 {
		return errors.New("queue closed")
	}
	return unix.Sendto(q.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// request sends a config message with NLM_F_ACK and waits for the kernel's answer.
func (q *nfQueue) request(msgType uint16, attrs []byte) error {
	msg := q.message(msgType, unix.NLM_F_REQUEST|unix.NLM_F_ACK, attrs)
	seq := binary.NativeEndian.Uint32(msg[8:])
	if err := q.send(msg); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type == syscall.NLMSG_ERROR && m.Header.Seq == seq && len(m.Data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
		}
	}
	return errors.New("no answer from nfnetlink_queue")
}

// serve gives every queued packet its verdict until close.
func (q *nfQueue) serve() {
	defer close(q.done)
	buf := make([]byte, 1<<16)
	for !q.closed.Load() {
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err != nil {
			continue // timeout (to notice close), EINTR, ENOBUFS
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != nfnlSubsysQueue<<8|nfqnlMsgPacket || len(m.Data) < 4 {
				continue
			}
			id, ok := packetID(m.Data[4:])
			if !ok {
				continue
			}
			q.packets.Add(1)
			if rand.Float64() < q.loss {
				q.dropped.Add(1)
				_ = q.verdict(id, nfDrop)
				continue
			}
			d := q.delay
			if q.jitter > 0 {
				d += time.Duration(rand.Int64N(int64(2*q.jitter)+1)) - q.jitter
			}
			q.delaySum.Add(int64(d))
			time.AfterFunc(d, func() { _ = q.verdict(id, nfAccept) })
		}
	}
}

// packetID finds NFQA_PACKET_HDR's packet id in the attributes.
func packetID(attrs []byte) (uint32, bool) {
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs[0:]))
		typ := binary.NativeEndian.Uint16(attrs[2:]) & 0x3fff
		if l < 4 || l > len(attrs) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(attrs[4:]), true
		}
		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}
	return 0, false
}

func (q *nfQueue) verdict(id, verdict uint32) error {
	hdr := binary.BigEndian.AppendUint32(nil, verdict)
	hdr = binary.BigEndian.AppendUint32(hdr, id)
	return q.send(q.message(nfqnlMsgVerdict, unix.NLM_F_REQUEST, attr(nfqaVerdictHdr, hdr)))
}

func (q *nfQueue) stats() impairStats {
	s := impairStats{Packets: q.packets.Load(), Dropped: q.dropped.Load()}
	if kept := s.Packets - s.Dropped; kept > 0 {
		s.MeanDelay = time.Duration(q.delaySum.Load() / int64(kept))
	}
	return s
}

// close unbinds the queue and closes the socket.
func (q *nfQueue) close() {
	if q.closed.Swap(true) {
		return
	}
	<-q.done
	q.sendMu.Lock()
	_ = unix.Sendto(q.fd, q.message(nfqnlMsgConfig, unix.NLM_F_REQUEST, attr(nfqaCfgCmd, []byte{nfqnlCfgCmdUnbind, 0, 0, 0})), 0,
		&unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	_ = unix.Close(q.fd)
	q.fd = -1
	q.sendMu.Unlock()
}
