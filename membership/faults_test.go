package membership

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// errCrashed is what a crashed node's streams and dials fail with.
var errCrashed = errors.New("node crashed")

// memFaults injects faults into the streams of one node of a memNet from outside the node, as
// the faultnet package does for a node over gRPC: crash cuts every stream and refuses new
// ones; freeze makes every stream silent both ways (sends, receives and dials wait, and what
// the node closes stays open) until heal.
type memFaults struct {
	mu      sync.Mutex
	crashed bool
	frozen  bool
	changed chan struct{} // closed, and replaced, at every change
	conns   map[*faultConn]struct{}
	// closedWhileFrozen are the streams the node closed while frozen, closed on heal.
	closedWhileFrozen []*faultConn
}

func newMemFaults() *memFaults {
	return &memFaults{changed: make(chan struct{}), conns: map[*faultConn]struct{}{}}
}

// changeLocked wakes whatever waits on f.
func (f *memFaults) changeLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// crash cuts every stream of the node and refuses new ones.
func (f *memFaults) crash() {
	f.mu.Lock()
	conns := f.conns
	f.conns, f.closedWhileFrozen = map[*faultConn]struct{}{}, nil
	f.crashed = true
	f.changeLocked()
	f.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// freeze makes every stream of the node silent until heal.
func (f *memFaults) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = true
	f.changeLocked()
}

// heal ends a freeze or a crash.
func (f *memFaults) heal() {
	f.mu.Lock()
	closing := f.closedWhileFrozen
	f.closedWhileFrozen = nil
	for _, c := range closing {
		delete(f.conns, c)
	}
	f.crashed, f.frozen = false, false
	f.changeLocked()
	f.mu.Unlock()
	for _, c := range closing {
		c.Conn.Close()
	}
}

// wait returns once the node's streams flow (nil), it crashed, or done is closed.
func (f *memFaults) wait(done <-chan struct{}) error {
	for {
		f.mu.Lock()
		crashed, frozen, changed := f.crashed, f.frozen, f.changed
		f.mu.Unlock()
		switch {
		case crashed:
			return errCrashed
		case !frozen:
			return nil
		}
		select {
		case <-changed:
		case <-done:
			return errors.New("stream closed")
		}
	}
}

// wrap subjects c to f; it refuses c when the node crashed.
func (f *memFaults) wrap(c Conn) (Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed {
		c.Close()
		return nil, errCrashed
	}
	fc := &faultConn{Conn: c, f: f, closed: make(chan struct{})}
	f.conns[fc] = struct{}{}
	return fc, nil
}

// transport subjects the streams the node dials through inner to f.
func (f *memFaults) transport(inner Transport) Transport { return faultTransport{inner: inner, f: f} }

// faultTransport is a node's Transport subject to its memFaults.
type faultTransport struct {
	inner Transport
	f     *memFaults
}

func (t faultTransport) Dial(ctx context.Context, addr string) (Conn, error) {
	if err := t.f.wait(ctx.Done()); err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c, err := t.inner.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return t.f.wrap(c)
}

// faultConn is a stream subject to its node's memFaults.
type faultConn struct {
	Conn
	f      *memFaults
	once   sync.Once
	closed chan struct{}
}

func (c *faultConn) Send(msg *Message) error {
	if err := c.f.wait(c.closed); err != nil {
		return err
	}
	return c.Conn.Send(msg)
}

// Recv holds a message that came in while frozen until heal.
func (c *faultConn) Recv() (*Message, error) {
	if err := c.f.wait(c.closed); err != nil {
		return nil, err
	}
	msg, err := c.Conn.Recv()
	if err != nil {
		return nil, err
	}
	if err := c.f.wait(c.closed); err != nil {
		return nil, err
	}
	return msg, nil
}

func (c *faultConn) CloseSend() error {
	if err := c.f.wait(c.closed); err != nil {
		return err
	}
	return c.Conn.CloseSend()
}

// Close ends the stream for the node at once; while frozen the peer sees it only on heal.
func (c *faultConn) Close() {
	c.once.Do(func() {
		close(c.closed)
		c.f.mu.Lock()
		_, open := c.f.conns[c]
		if open && c.f.frozen {
			c.f.closedWhileFrozen = append(c.f.closedWhileFrozen, c)
			c.f.mu.Unlock()
			return
		}
		delete(c.f.conns, c)
		c.f.mu.Unlock()
		c.Conn.Close()
	})
}
