// Package harness runs the benchmark scenarios against our node and hashicorp/memberlist.
package harness

import (
	"context"
	"runtime"
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

// Profiles are the two profiles the report compares, and lan3s, a diagnostic one for the
// worker: lan's threshold at a 3 s interval, a third of the heartbeats, to tell what a
// scenario costs from what the heartbeats of the other nodes on the same cores cost
// (`meshbench -worker -profile lan3s`; memberlist runs it as lan).
var Profiles = map[string]Profile{
	"lan":   {Name: "lan", Interval: time.Second, Threshold: 3},
	"fast":  {Name: "fast", Interval: 500 * time.Millisecond, Threshold: 2},
	"lan3s": {Name: "lan3s", Interval: 3 * time.Second, Threshold: 3},
}

// System is one membership implementation under test.
type System interface {
	// Name is "meshnode" or "memberlist".
	Name() string
	// Start starts node name, joining through seed (an address, or several separated by
	// commas; "" for the first node), reporting what it sees to the tracker.
	Start(ctx context.Context, name, seed string) (Node, error)
	// Traffic returns what every node of the system sent so far.
	Traffic() Traffic
	// Usage returns the CPU time, memory and goroutines of the process(es) hosting the
	// nodes, collecting garbage first when gc is set.
	Usage(gc bool) Usage
	// FDs returns the open file descriptors of the hosting process (the most of any, when
	// there are several), counted without stopping or allocating much: it is sampled while
	// the nodes form.
	FDs() int
	// Describe states the settings used.
	Describe() map[string]any
}

// Sink receives what nodes report about each other. decided is when the observer's node
// decided (the event's own time), zero when the system does not say: a report reaches the
// sink later than that when the process is busy.
type Sink interface {
	// Up: obs now lists subj.
	Up(obs, subj string, decided time.Time)
	// Down: obs reports subj down, for reason.
	Down(obs, subj, reason string, decided time.Time)
}

// Usage is the resource use of the process(es) hosting a system.
type Usage struct {
	CPUSeconds float64 `json:"cpu_s"`
	RSS        int64   `json:"rss"`
	HeapInuse  int64   `json:"heap_inuse"`
	StackInuse int64   `json:"stack_inuse"`
	Goroutines int     `json:"goroutines"`
	FDs        int     `json:"fds"`
	MaxFDs     int     `json:"max_fds"` // of the process holding the most
	Processes  int     `json:"processes"`
	// Dials and Heartbeats count the engine's dials started and heartbeats sent so far
	// (meshnode with BENCH_DIAG=1 only; diagnostics).
	Dials      int64 `json:"dials,omitempty"`
	Heartbeats int64 `json:"heartbeats,omitempty"`
}

// Add returns u + o.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.CPUSeconds + o.CPUSeconds, u.RSS + o.RSS, u.HeapInuse + o.HeapInuse,
		u.StackInuse + o.StackInuse, u.Goroutines + o.Goroutines, u.FDs + o.FDs, max(u.MaxFDs, o.MaxFDs),
		u.Processes + o.Processes, u.Dials + o.Dials, u.Heartbeats + o.Heartbeats}
}

// LocalUsage returns this process's usage, after a garbage collection when gc is set (so the
// heap is what is live).
func LocalUsage(gc bool) Usage {
	if gc {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds := countFDs()
	return Usage{CPUSeconds: CPUSeconds(), RSS: RSSBytes(), HeapInuse: int64(ms.HeapInuse),
		StackInuse: int64(ms.StackInuse), Goroutines: runtime.NumGoroutine(), FDs: fds, MaxFDs: fds, Processes: 1,
		Dials: diagSink.dials.Load(), Heartbeats: diagSink.hbSent.Load()}
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

// faultTimer is a node run in another process (a host): the command to fault it crosses a
// pipe to that process, which may be busy, so the fault begins a little after it was asked
// for. FaultBegan returns when the host began the node's last fault (zero if none).
type faultTimer interface {
	FaultBegan() time.Time
}

// Diagnoser is a Node that can say what it knows of its cluster (diagnostics).
type Diagnoser interface {
	// Diag returns a line on the node's view: how many nodes it knows and reaches, its seeds.
	Diag() string
}

// NewSystem returns the named system for profile p, reporting to tr.
func NewSystem(name string, p Profile, tr Sink) System {
	if name == "memberlist" {
		return newMemberlist(p, tr)
	}
	return newOurs(p, tr)
}
