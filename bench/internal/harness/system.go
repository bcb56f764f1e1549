// Package harness runs the benchmark scenarios against our node and hashicorp/memberlist.
package harness

import (
	"context"
	"time"
)

// Profile is one pair of comparable settings.
type Profile struct {
	// Name is "lan" (ours 1s × 3 vs memberlist DefaultLANConfig) or "fast" (ours 500ms × 2 vs
	// memberlist tuned to detect in about 1–2 s).
	Name string
	// Interval and Threshold are our heartbeat settings.
	Interval  time.Duration
	Threshold int
}

// Profiles are the two profiles of the issue.
var Profiles = map[string]Profile{
	"lan":  {Name: "lan", Interval: time.Second, Threshold: 3},
	"fast": {Name: "fast", Interval: 500 * time.Millisecond, Threshold: 2},
}

// System is one membership implementation under test.
type System interface {
	// Name is "meshnode" or "memberlist".
	Name() string
	// Start starts node name, joining through seed (an address; "" for the first node),
	// reporting what it sees to the tracker.
	Start(ctx context.Context, name, seed string) (Node, error)
	// Traffic returns what every node of the system sent so far.
	Traffic() Traffic
	// Describe states the settings used.
	Describe() map[string]any
}

// Node is one running node.
type Node interface {
	Name() string
	// Addr is the address other nodes join through.
	Addr() string
	// Kill crashes the node: sockets closed, nobody told.
	Kill()
	// Freeze makes the node silent with its sockets open.
	Freeze()
	// Leave leaves gracefully; it may return before peers know.
	Leave()
	// Close releases whatever is left (teardown).
	Close()
}

// NewSystem returns the named system for profile p, reporting to tr.
func NewSystem(name string, p Profile, tr *Tracker) System {
	if name == "memberlist" {
		return newMemberlist(p, tr)
	}
	return newOurs(p, tr)
}
