// Package patience is how long a handshake waits on a loaded machine: a multiple of its usual
// timeout that doubles after each handshake that timed out, up to Max. The dialling side
// counts the failed dials of the node it dials; the accepting side, which cannot tell who
// dials before the handshake, counts its own handshakes that timed out (Adaptive).
//
// Both sides must agree. A dialler that waits four times as long gains nothing if the node it
// dials closes every stream at its usual timeout: on a machine so loaded that a handshake
// takes longer than that, every try fails on the accepting side, is tried again, and keeps the
// machine as loaded as it was.
package patience

import (
	"sync/atomic"
	"time"
)

// Max is the most times its usual timeout a handshake waits (20 s at the default 5 s).
const Max = 4

// After returns the patience after failed handshakes in a row: twice as long after each, up
// to Max times the usual timeout.
func After(failed int) time.Duration {
	return min(time.Duration(1)<<min(max(failed, 0), 30), Max)
}

// Adaptive is the accepting side's patience: After the handshakes that timed out since one
// last finished promptly (in less than half its usual timeout). The zero value is ready; it
// is safe for concurrent use.
type Adaptive struct {
	timedOut atomic.Int32
}

// Patience returns the patience of a handshake starting now: After the handshakes that timed
// out since one last finished promptly.
func (a *Adaptive) Patience() time.Duration { return After(int(a.timedOut.Load())) }

// Timeout returns the time a handshake starting now has, for a usual timeout of base.
func (a *Adaptive) Timeout(base time.Duration) time.Duration { return base * a.Patience() }

// TimedOut records a handshake that did not finish in time.
func (a *Adaptive) TimedOut() {
	for {
		n := a.timedOut.Load()
		if n >= 30 || a.timedOut.CompareAndSwap(n, n+1) {
			return
		}
	}
}

// Finished records a handshake that finished after took, for a usual timeout of base: one
// that took less than half of base shows the machine keeps up again, and the patience returns
// to the usual timeout; a slower one leaves it as it is.
func (a *Adaptive) Finished(took, base time.Duration) {
	if took < base/2 {
		a.timedOut.Store(0)
	}
}
