package harness

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// pair is one (observer, subject) relation.
type pair struct{ obs, subj string }

// waiter waits until every pair it still wants has been seen in the wanted state.
type waiter struct {
	up   bool // true: wait for the subject to be listed; false: reported down
	want map[pair]struct{}
	done chan struct{}
	at   time.Time
	// arrivals are the report times of the pairs, after start, in the order they completed,
	// and last the pair that completed the wait (for the spread across observers). A
	// formation's wait holds N² of them: durations take a third of the room of times.
	start    time.Time
	arrivals []time.Duration
	last     pair
	// decided is the latest time an observer's node decided one of the pairs (its event's
	// own time, or the report's when the system gives none): at - decided is how long the
	// last reports waited to reach the application.
	decided time.Time
}

// pairSet is a set of (observer, subject) pairs of node names, one bit each: the tracker
// holds what every node lists about every other, N² pairs, in the process whose memory the
// bench measures.
type pairSet struct {
	index map[string]int // a number for each name seen
	bits  [][]uint64     // bits[observer]: the subjects, by number
}

// number returns name's number, giving it the next one when it is new.
func (s *pairSet) number(name string) int {
	i, ok := s.index[name]
	if !ok {
		i = len(s.index)
		s.index[name] = i
		s.bits = append(s.bits, nil)
	}
	return i
}

// set puts the pair in the set (in true) or takes it out.
func (s *pairSet) set(obs, subj string, in bool) {
	o, j := s.number(obs), s.number(subj)
	row := s.bits[o]
	if need := j/64 + 1; len(row) < need {
		if !in {
			return
		}
		row = append(row, make([]uint64, need-len(row))...)
		s.bits[o] = row
	}
	if in {
		row[j/64] |= 1 << (j % 64)
	} else {
		row[j/64] &^= 1 << (j % 64)
	}
}

// has reports whether the pair is in the set.
func (s *pairSet) has(obs, subj string) bool {
	o, ok1 := s.index[obs]
	j, ok2 := s.index[subj]
	if !ok1 || !ok2 || j/64 >= len(s.bits[o]) {
		return false
	}
	return s.bits[o][j/64]&(1<<(j%64)) != 0
}

// Tracker records what every node of a system reports about every other node, fed by the
// systems' event hooks (our Subscribe, memberlist's EventDelegate). Waits are incremental, so
// each event costs O(waiters), whatever the cluster size.
type Tracker struct {
	mu         sync.Mutex
	live       pairSet // (observer, subject): the observer lists the subject
	victims    map[string]bool
	falseDowns int
	downs      []Down
	waiters    []*waiter
	closed     bool
}

// Down is one down report.
type Down struct {
	Observer, Subject, Reason string
	At                        time.Time
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{live: pairSet{index: map[string]int{}}, victims: map[string]bool{}}
}

// Up records that obs now lists subj, decided at decided (zero: now).
func (t *Tracker) Up(obs, subj string, decided time.Time) { t.UpAt(obs, subj, time.Now(), decided) }

// Down records that obs reports subj down, decided at decided (zero: now).
func (t *Tracker) Down(obs, subj, reason string, decided time.Time) {
	t.DownAt(obs, subj, reason, time.Now(), decided)
}

// UpAt records that obs listed subj at now (reports from other processes carry their time),
// decided at decided (zero: now).
func (t *Tracker) UpAt(obs, subj string, now, decided time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || obs == subj {
		return
	}
	t.live.set(obs, subj, true)
	t.notify(now, decided, true, pair{obs, subj})
}

// DownAt records that obs reported subj down at now, decided at decided (zero: now).
func (t *Tracker) DownAt(obs, subj, reason string, now, decided time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || obs == subj || t.victims[obs] {
		return // a failed or leaving node's own view is not measured
	}
	t.live.set(obs, subj, false)
	if !t.victims[subj] {
		t.falseDowns++
	}
	t.downs = append(t.downs, Down{obs, subj, reason, now})
	t.notify(now, decided, false, pair{obs, subj})
}

func (t *Tracker) notify(now, decided time.Time, up bool, p pair) {
	if decided.IsZero() || decided.After(now) {
		decided = now
	}
	kept := t.waiters[:0]
	for _, w := range t.waiters {
		if _, ok := w.want[p]; ok && w.up == up {
			delete(w.want, p)
			w.arrivals = append(w.arrivals, now.Sub(w.start))
			if now.After(w.at) {
				w.at = now // the latest report completes the wait, whatever order they arrive in
				w.last = p
			}
			if decided.After(w.decided) {
				w.decided = decided
			}
		}
		if len(w.want) == 0 {
			close(w.done)
			w.want = nil // an emptied map keeps its size: a formation's held N² pairs
			continue
		}
		kept = append(kept, w)
	}
	t.waiters = kept
}

// MarkVictim declares that subj is about to fail or leave on purpose: its downs are
// expected, and what it reports from then on is ignored.
func (t *Tracker) MarkVictim(subj string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.victims[subj] = true
}

// FalseDowns returns how many down reports named a node that was not a victim.
func (t *Tracker) FalseDowns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.falseDowns
}

// Reasons returns the down reasons reported about subj, counted.
func (t *Tracker) Reasons(subj string) map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for _, d := range t.downs {
		if d.Subject == subj {
			out[d.Reason]++
		}
	}
	return out
}

// Close makes the tracker ignore every later report (teardown noise).
func (t *Tracker) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
}

// Wait is a registered condition.
type Wait struct {
	t *Tracker
	w *waiter
}

// ExpectUp registers a wait until every observer lists every subject (pairs with
// obs == subj are skipped). Register before acting, wait after.
func (t *Tracker) ExpectUp(observers, subjects []string) *Wait {
	return t.expect(true, observers, subjects)
}

// ExpectDown registers a wait until every observer reports every subject down.
func (t *Tracker) ExpectDown(observers, subjects []string) *Wait {
	return t.expect(false, observers, subjects)
}

func (t *Tracker) expect(up bool, observers, subjects []string) *Wait {
	w := &waiter{up: up, want: map[pair]struct{}{}, done: make(chan struct{}), start: time.Now()}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range observers {
		for _, s := range subjects {
			if o == s {
				continue
			}
			if up && t.live.has(o, s) {
				continue
			}
			w.want[pair{o, s}] = struct{}{}
		}
	}
	if len(w.want) == 0 {
		w.at = time.Now()
		w.want = nil
		close(w.done)
	} else {
		t.waiters = append(t.waiters, w)
	}
	return &Wait{t, w}
}

// Wait blocks until the condition holds (returning the time of the report that completed it)
// or ctx ends (returning false and how many pairs were still missing).
func (w *Wait) Wait(ctx context.Context) (at time.Time, ok bool, missing int) {
	select {
	case <-w.w.done:
		return w.w.at, true, 0
	case <-ctx.Done():
		w.t.mu.Lock()
		defer w.t.mu.Unlock()
		select {
		case <-w.w.done:
			return w.w.at, true, 0
		default:
		}
		return time.Time{}, false, len(w.w.want)
	}
}

// Remaining returns how many pairs are still missing (diagnostics).
func (w *Wait) Remaining() int {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	return len(w.w.want)
}

// Spreadout summarises the missing pairs (diagnostics): how many observers and how many
// subjects miss more than 500, 51 to 500, 1 to 50 pairs.
func (w *Wait) Spreadout() string {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	obs, subj := map[string]int{}, map[string]int{}
	for p := range w.w.want {
		obs[p.obs]++
		subj[p.subj]++
	}
	bucket := func(m map[string]int) [3]int {
		var b [3]int
		for _, n := range m {
			switch {
			case n > 500:
				b[0]++
			case n > 50:
				b[1]++
			default:
				b[2]++
			}
		}
		return b
	}
	blind := blindOf(obs, 12)
	return fmt.Sprintf("observers >500/51-500/1-50: %v, subjects: %v; observers missing >500: %v",
		bucket(obs), bucket(subj), blind)
}

// Blind returns up to limit observers that still miss more than 500 pairs, sorted
// (diagnostics).
func (w *Wait) Blind(limit int) []string {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	obs := map[string]int{}
	for p := range w.w.want {
		obs[p.obs]++
	}
	return blindOf(obs, limit)
}

// blindOf returns up to limit of the observers counted in obs that miss more than 500 pairs,
// sorted.
func blindOf(obs map[string]int, limit int) []string {
	var blind []string
	for o, n := range obs {
		if n > 500 {
			blind = append(blind, o)
		}
	}
	slices.Sort(blind)
	return blind[:min(len(blind), limit)]
}

// DownSummary summarises the down reports so far (diagnostics): the observers and subjects
// named most often, and the reasons.
func (t *Tracker) DownSummary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	obs, subj, why := map[string]int{}, map[string]int{}, map[string]int{}
	for _, d := range t.downs {
		obs[d.Observer]++
		subj[d.Subject]++
		why[d.Reason]++
	}
	top := func(m map[string]int) string {
		type kv struct {
			k string
			v int
		}
		var all []kv
		for k, v := range m {
			all = append(all, kv{k, v})
		}
		slices.SortFunc(all, func(a, b kv) int { return b.v - a.v })
		out := ""
		for i, e := range all {
			if i == 5 {
				break
			}
			out += fmt.Sprintf(" %s:%d", e.k, e.v)
		}
		return out
	}
	return fmt.Sprintf("downs %d; by observer%s; by subject%s; reasons%s", len(t.downs), top(obs), top(subj), top(why))
}

// Missing returns a few of the pairs still missing, for diagnostics.
func (w *Wait) Missing(max int) []string {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	var out []string
	for p := range w.w.want {
		if len(out) == max {
			break
		}
		out = append(out, p.obs+"->"+p.subj)
	}
	return out
}

// Decided returns when the last of a completed wait's pairs was decided by its observer's
// node, relative to t0 (zero if the wait did not complete).
func (w *Wait) Decided(t0 time.Time) float64 {
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	if w.w.decided.IsZero() {
		return 0
	}
	return w.w.decided.Sub(t0).Seconds()
}

// Spread summarises when the pairs of a completed wait were reported, relative to t0: the
// median and 90th percentile over pairs, and the pair reported last ("observer->subject").
func (w *Wait) Spread(t0 time.Time) (median, p90 float64, last string) {
	at, ok := w.quantiles(t0)
	if !ok {
		return 0, 0, ""
	}
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	return at(0.5), at(0.9), w.w.last.obs + "->" + w.w.last.subj
}

// Head returns when the first observer and the tenth percentile of observers saw the event,
// in seconds after t0: how long the news took to be decided anywhere, apart from how long it
// took to spread.
func (w *Wait) Head(t0 time.Time) (first, p10 float64) {
	at, ok := w.quantiles(t0)
	if !ok {
		return 0, 0
	}
	return at(0), at(0.1)
}

// quantiles returns the arrivals so far as a function from a quantile to seconds after t0,
// and false if there are none.
func (w *Wait) quantiles(t0 time.Time) (at func(q float64) float64, ok bool) {
	w.t.mu.Lock()
	a, start := slices.Clone(w.w.arrivals), w.w.start
	w.t.mu.Unlock()
	if len(a) == 0 {
		return nil, false
	}
	slices.Sort(a)
	return func(q float64) float64 { return start.Add(a[int(q*float64(len(a)-1))]).Sub(t0).Seconds() }, true
}
