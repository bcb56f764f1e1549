package resolverbench

import (
	"testing"
	"time"
)

func TestAnalyse(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	ch := &channel{mode: "meshnode", calls: []call{
		{start: ms(100), backend: "b1"},
		{start: ms(150), backend: "b2"},
		{start: ms(1010), backend: "b1", failed: true}, // sent to b1 after its kill
		{start: ms(1020), failed: true},                // reached no backend
		{start: ms(1500), backend: "b2"},
		{start: ms(2100), backend: "b2", failed: true}, // b2 frozen at 2 s
		{start: ms(2900), backend: "b2", failed: true},
		{start: ms(3100), backend: "b6"}, // b6 joined at 3 s
		{start: ms(3200), backend: "b2"}, // unrelated to the join
	}}
	changes := []ChangeAt{{"kill", "b1", 1}, {"freeze", "b2", 2}, {"join", "b6", 3}}
	r := ch.analyse(changes, ms(4000))
	if r.Calls != 9 || r.Failed != 4 {
		t.Fatalf("calls %d failed %d, want 9 and 4", r.Calls, r.Failed)
	}
	want := []Outcome{
		{Kind: "kill", Backend: "b1", Failed: 2, Follow: 0.01, Followed: true, Phase: 1},
		{Kind: "freeze", Backend: "b2", Failed: 2, Follow: 1.2, Followed: false, Phase: 1},
		{Kind: "join", Backend: "b6", Failed: 0, Follow: 0.1, Followed: true, Phase: 1},
	}
	for i, w := range want {
		got := r.Outcomes[i]
		if got.Kind != w.Kind || got.Failed != w.Failed || got.Followed != w.Followed || abs(got.Follow-w.Follow) > 1e-9 || abs(got.Phase-w.Phase) > 1e-9 {
			t.Errorf("outcome %d = %+v, want %+v", i, got, w)
		}
	}
	if got := r.Served["b2"][15]; got != 1 {
		t.Errorf("b2 served %d calls in the bin of 1.5 s, want 1", got)
	}
	if got := r.Failures[10]; got != 2 {
		t.Errorf("%d failures in the bin of 1.0 s, want 2", got)
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
