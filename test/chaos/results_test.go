//go:build chaos && linux

package chaos_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"testing"
	"time"
)

// Records are appended to resultsPath as JSON lines; test/chaos/report turns them into
// docs/reliability.md. The format is shared with it (keep the field names in step).

// sampleRecord is one measured figure.
type sampleRecord struct {
	Type     string   `json:"type"` // "sample"
	Run      string   `json:"run"`
	Scenario string   `json:"scenario"`
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit"`
	Observer string   `json:"observer,omitempty"`
	Subject  string   `json:"subject,omitempty"`
	Value    float64  `json:"value"`
	Bound    *float64 `json:"bound,omitempty"`
	OK       bool     `json:"ok"`
	Note     string   `json:"note,omitempty"`
}

// scenarioRecord closes a scenario.
type scenarioRecord struct {
	Type      string         `json:"type"` // "scenario"
	Run       string         `json:"run"`
	Scenario  string         `json:"scenario"`
	Title     string         `json:"title"`
	Status    string         `json:"status"` // pass, fail, skip
	DurationS float64        `json:"duration_s"`
	Metrics   []metricRecord `json:"metrics"`
	Notes     []string       `json:"notes,omitempty"`
}

// metricRecord describes one metric of a scenario and the bound asserted on it.
type metricRecord struct {
	Name      string   `json:"name"`
	Unit      string   `json:"unit"`
	BoundText string   `json:"bound_text"`
	Bound     *float64 `json:"bound,omitempty"`
}

var resultsMu sync.Mutex

func appendRecord(rec any) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	f, err := os.OpenFile(resultsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos: results:", err)
		return
	}
	defer f.Close()
	b, _ := json.Marshal(rec)
	_, _ = f.Write(append(b, '\n'))
}

// scenario records one scenario's figures and its outcome.
type scenario struct {
	t       *testing.T
	id      string
	title   string
	start   time.Time
	mu      sync.Mutex
	metrics []*metric
	notes   []string
	skipped bool
}

// newScenario starts recording; the outcome is written when the test ends.
func newScenario(t *testing.T, id, title string) *scenario {
	s := &scenario{t: t, id: id, title: title, start: time.Now()}
	t.Cleanup(func() {
		status := "pass"
		switch {
		case t.Failed():
			status = "fail"
		case t.Skipped() || s.skipped:
			status = "skip"
		}
		rec := scenarioRecord{Type: "scenario", Run: runID, Scenario: s.id, Title: s.title, Status: status,
			DurationS: math.Round(time.Since(s.start).Seconds()*10) / 10, Notes: s.notes}
		for _, m := range s.metrics {
			rec.Metrics = append(rec.Metrics, metricRecord{Name: m.name, Unit: m.unit, BoundText: m.boundText, Bound: m.bound})
		}
		appendRecord(rec)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, m := range s.metrics {
			t.Logf("figure %s/%s: %s", s.id, m.name, m.summary())
		}
	})
	return s
}

// note adds a line to the scenario's record (and the test log).
func (s *scenario) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.t.Log(msg)
	s.mu.Lock()
	s.notes = append(s.notes, msg)
	s.mu.Unlock()
}

// metric is a measured quantity with an optional upper bound.
type metric struct {
	s         *scenario
	name      string
	unit      string
	boundText string
	bound     *float64
	values    []float64
}

// upTo declares a metric asserted to stay at or below bound (in unit).
func (s *scenario) upTo(name, unit string, bound float64, boundText string) *metric {
	m := &metric{s: s, name: name, unit: unit, boundText: boundText, bound: &bound}
	s.mu.Lock()
	s.metrics = append(s.metrics, m)
	s.mu.Unlock()
	return m
}

// info declares a metric that is recorded, not asserted.
func (s *scenario) info(name, unit string) *metric {
	m := &metric{s: s, name: name, unit: unit, boundText: "—"}
	s.mu.Lock()
	s.metrics = append(s.metrics, m)
	s.mu.Unlock()
	return m
}

// add records a value and reports whether it is within the bound (it does not fail the
// test: the caller decides, so every observer's figure is recorded before failing).
func (m *metric) add(observer, subject string, value float64, note string) bool {
	ok := m.bound == nil || value <= *m.bound
	m.s.mu.Lock()
	m.values = append(m.values, value)
	m.s.mu.Unlock()
	appendRecord(sampleRecord{Type: "sample", Run: runID, Scenario: m.s.id, Metric: m.name, Unit: m.unit,
		Observer: observer, Subject: subject, Value: round3(value), Bound: m.bound, OK: ok, Note: note})
	return ok
}

// addDuration records a duration in ms.
func (m *metric) addDuration(observer, subject string, d time.Duration, note string) bool {
	return m.add(observer, subject, float64(d)/float64(time.Millisecond), note)
}

// check records a value and fails the test (without stopping it) when it breaks the bound.
func (m *metric) check(observer, subject string, value float64, note string) {
	m.s.t.Helper()
	if !m.add(observer, subject, value, note) {
		m.s.t.Errorf("%s: %s %s→%s = %.1f %s, bound %s %s", m.s.id, m.name, observer, subject, value, m.unit, m.boundText, note)
	}
}

// checkDuration is check for a duration in ms.
func (m *metric) checkDuration(observer, subject string, d time.Duration, note string) {
	m.s.t.Helper()
	m.check(observer, subject, float64(d)/float64(time.Millisecond), note)
}

func (m *metric) summary() string {
	if len(m.values) == 0 {
		return "no samples"
	}
	v := append([]float64(nil), m.values...)
	sort.Float64s(v)
	return fmt.Sprintf("n=%d median=%.1f worst=%.1f %s (bound %s)", len(v), median(v), v[len(v)-1], m.unit, m.boundText)
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// human renders a duration for a reader: "4 s", "500 ms", "1 min", "1 min 30 s".
func human(d time.Duration) string {
	switch {
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%d min %g s", d/time.Minute, (d % time.Minute).Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%g s", d.Seconds())
	default:
		return fmt.Sprintf("%g ms", float64(d)/float64(time.Millisecond))
	}
}
