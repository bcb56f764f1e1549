package process_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2conn is a raw HTTP/2 client connection, for what gRPC's own client never does: open
// streams without waiting for the server's stream limit, leave a message unfinished, say
// nothing at all. It honours the server's flow control (a server may reset a stream that
// overruns its window, which would end an attack by the attacker's own mistake).
type h2conn struct {
	conn net.Conn

	wmu  sync.Mutex // serialises writes: the framer, the header encoder, stream ids
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
	next uint32

	mu        sync.Mutex
	cond      *sync.Cond
	connWin   int64
	initWin   int64
	streamWin map[uint32]int64
	ended     map[uint32]string // stream id → how it ended: a grpc-status, or "rst:<code>"
	goAway    bool
	closed    bool
	done      chan struct{}
}

// h2Dial opens a raw HTTP/2 connection to addr and sends the client preface and an empty
// SETTINGS frame. With read false the connection then reads nothing (a silent client). The
// caller closes it.
func h2Dial(addr string, read bool) (*h2conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := &h2conn{
		conn: conn, next: 1, connWin: 65535, initWin: 65535,
		streamWin: map[uint32]int64{}, ended: map[uint32]string{}, done: make(chan struct{}),
	}
	c.cond = sync.NewCond(&c.mu)
	c.fr = http2.NewFramer(conn, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	if read {
		go c.readLoop()
	} else {
		close(c.done)
	}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		c.close()
		return nil, fmt.Errorf("preface to %s: %w", addr, err)
	}
	if err := c.write(func() error { return c.fr.WriteSettings() }); err != nil {
		c.close()
		return nil, fmt.Errorf("settings to %s: %w", addr, err)
	}
	return c, nil
}

// close closes the connection and waits for its reader; nil is closed already.
func (c *h2conn) close() {
	if c == nil {
		return
	}
	_ = c.conn.Close()
	<-c.done
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *h2conn) readLoop() {
	defer close(c.done)
	defer func() {
		c.mu.Lock()
		c.closed = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		c.mu.Lock()
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
					delta := int64(v) - c.initWin
					c.initWin = int64(v)
					for id := range c.streamWin {
						c.streamWin[id] += delta
					}
				}
				c.mu.Unlock()
				c.write(func() error { return c.fr.WriteSettingsAck() })
				c.mu.Lock()
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.connWin += int64(f.Increment)
			} else if _, ok := c.streamWin[f.StreamID]; ok {
				c.streamWin[f.StreamID] += int64(f.Increment)
			}
		case *http2.RSTStreamFrame:
			c.ended[f.StreamID] = "rst:" + f.ErrCode.String()
			delete(c.streamWin, f.StreamID)
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" && s != "200" {
				c.ended[f.StreamID] = "http:" + s
			}
			for _, hf := range f.RegularFields() {
				if hf.Name == "grpc-status" {
					c.ended[f.StreamID] = hf.Value
				}
			}
			if f.StreamEnded() {
				delete(c.streamWin, f.StreamID)
			}
		case *http2.GoAwayFrame:
			c.goAway = true
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				c.mu.Unlock()
				c.write(func() error { return c.fr.WritePing(true, data) })
				c.mu.Lock()
			}
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// write runs one framer write under the write lock; errors end the attack on this
// connection, which the caller sees as a closed connection.
func (c *h2conn) write(fn func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return fn()
}

// open opens a gRPC stream to path with extra header fields (name, value pairs); with
// endStream the request is complete (a request message of zero bytes is sent first).
func (c *h2conn) open(path string, endStream bool, extra ...string) (uint32, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	id := c.next
	c.next += 2
	c.hbuf.Reset()
	for _, kv := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "meshnode"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	c.mu.Lock()
	c.streamWin[id] = c.initWin
	c.mu.Unlock()
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true,
	}); err != nil {
		return id, err
	}
	if endStream {
		// An empty message: the 5-byte gRPC prefix and no bytes.
		if err := c.fr.WriteData(id, true, []byte{0, 0, 0, 0, 0}); err != nil {
			return id, err
		}
	}
	return id, nil
}

// sendUnfinished sends on stream id the 5-byte prefix of a message of size bytes, then
// size-1 bytes of it, and stops: the message never completes. It returns when the bytes are
// sent, the stream or connection ended, or stop is closed; it reports how many body bytes
// went out.
func (c *h2conn) sendUnfinished(id uint32, size int, stop <-chan struct{}) int {
	prefix := make([]byte, 5)
	binary.BigEndian.PutUint32(prefix[1:], uint32(size))
	if err := c.sendFlowControlled(id, prefix, stop); err != nil {
		return 0
	}
	chunk := make([]byte, 16384)
	sent := 0
	for sent < size-1 {
		n := min(len(chunk), size-1-sent)
		if err := c.sendFlowControlled(id, chunk[:n], stop); err != nil {
			return sent
		}
		sent += n
	}
	return sent
}

// errStreamDone says the stream or connection ended, or the attack was stopped.
var errStreamDone = errors.New("stream done")

// sendFlowControlled sends data on stream id as the server's windows allow.
func (c *h2conn) sendFlowControlled(id uint32, data []byte, stop <-chan struct{}) error {
	for len(data) > 0 {
		c.mu.Lock()
		for {
			select {
			case <-stop:
				c.mu.Unlock()
				return errStreamDone
			default:
			}
			_, open := c.streamWin[id]
			if c.closed || !open {
				c.mu.Unlock()
				return errStreamDone
			}
			if c.connWin > 0 && c.streamWin[id] > 0 {
				break
			}
			waitCond(c.cond, 50*time.Millisecond)
		}
		n := int(min(int64(len(data)), c.connWin, c.streamWin[id], 16384))
		c.connWin -= int64(n)
		c.streamWin[id] -= int64(n)
		c.mu.Unlock()
		if err := c.write(func() error { return c.fr.WriteData(id, false, data[:n]) }); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// waitCond waits on cond (its lock held) for a broadcast or at most d.
func waitCond(cond *sync.Cond, d time.Duration) {
	t := time.AfterFunc(d, func() {
		cond.L.Lock()
		cond.Broadcast()
		cond.L.Unlock()
	})
	cond.Wait()
	t.Stop()
}

// isClosed says whether the connection is closed (by either side).
func (c *h2conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// endings returns how the streams that ended so far ended, counted by kind.
func (c *h2conn) endings() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, how := range c.ended {
		out[how]++
	}
	return out
}

// endedHow returns how stream id ended, "" while it is open.
func (c *h2conn) endedHow(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended[id]
}

// waitEnded waits until stream id ended, the connection closed, or d passed; it returns
// how the stream ended ("closed" for the connection, "" if still open).
func (c *h2conn) waitEnded(id uint32, d time.Duration) string {
	deadline := time.Now().Add(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if how := c.ended[id]; how != "" {
			return how
		}
		if c.closed {
			return "closed"
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ""
		}
		waitCond(c.cond, min(left, 50*time.Millisecond))
	}
}
