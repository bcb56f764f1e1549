package membership

import (
	"testing"
	"time"
)

func TestDbgDoubleSeed(t *testing.T) {
	s := newSim(t)
	z := s.add(simID("zzz", 4000), nil)
	a := s.add(simID("aaa", 4001), simConfig("aaa", "127.0.0.1:4000", "zzz@127.0.0.1:4000"))
	s.advance(10 * time.Second)
	t.Log(z.eventLog(), a.eventLog())
}

func TestDbgHealSmall(t *testing.T) {
	s := newSim(t)
	z := s.add(simID("zzz", 4000), nil)
	y := s.add(simID("yyy", 4002), simConfig("yyy", "127.0.0.1:4000"))
	a := s.add(simID("aaa", 4001), simConfig("aaa", "127.0.0.1:4000"))
	s.advance(3 * time.Second)
	for i := 0; i < 5; i++ {
		s.partition([]*simNode{a}, []*simNode{z, y}, true)
		s.advance(time.Duration(5+i*3) * time.Second)
		s.partition([]*simNode{a}, []*simNode{z, y}, false)
		s.advance(10 * time.Second)
	}
	t.Log(z.eventLog())
	t.Log(y.eventLog())
	t.Log(a.eventLog())
}
