package membership

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// With two rings (K = 2, the fewest a Config accepts) and with three (the fewest that relay
// news as larger K do), every failure is still decided by every node: a crash, a node cut off from all others (and back once the cut heals), a
// leave, and a crash together with the crashed node's own observer. Relayed only towards the
// subjects, the news of that last one stopped at the crashed nodes on both rings, and it
// stayed undecided on some nodes.
func TestOverlayWithTwoRingsDecidesEveryFailure(t *testing.T) {
	for _, k := range []int{2, 3} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			s, nodes := overlayCluster(t, 20, k)
			// reported waits until every node of among but about reported one more event
			// about it than it had when the wait was set up, and that event is want.
			reported := func(about *simNode, want string, among []*simNode) func() bool {
				before := map[*simNode]int{}
				for _, n := range among {
					before[n] = len(n.eventsAbout(about))
				}
				return func() bool {
					for _, n := range allBut(among, about) {
						events := n.eventsAbout(about)
						if len(events) != before[n]+1 || !strings.HasPrefix(events[len(events)-1], want) {
							return false
						}
					}
					return true
				}
			}

			victim := nodes[7]
			done := reported(victim, "down ", nodes)
			victim.crash()
			s.advanceUntil(30*time.Second, done, "K=%d: every node should report the crashed %s down once", k, victim.id)

			rest := allBut(nodes, victim)
			cut := rest[3]
			done = reported(cut, "down ", rest)
			s.partition([]*simNode{cut}, allBut(rest, cut), true)
			s.advanceUntil(30*time.Second, done, "K=%d: every node should report %s, cut off from all, down once", k, cut.id)
			done = reported(cut, "up ", rest)
			s.partition([]*simNode{cut}, allBut(rest, cut), false)
			s.advanceUntil(60*time.Second, done, "K=%d: every node should report %s up again once the cut heals", k, cut.id)

			leaver := rest[5]
			done = reported(leaver, "down ", rest)
			leaver.stop()
			s.advanceUntil(30*time.Second, done, "K=%d: every node should report the leave of %s", k, leaver.id)

			live := allBut(rest, leaver)
			subject := live[9]
			observer := s.byID(topoOf(live, k).observers(subject.id)[0])
			subjectDone := reported(subject, "down ", allBut(live, observer))
			observerDone := reported(observer, "down ", allBut(live, subject))
			subject.crash()
			observer.crash()
			s.advanceUntil(60*time.Second, func() bool { return subjectDone() && observerDone() },
				"K=%d: every node should report both %s and its observer %s down, crashed together", k, subject.id, observer.id)
		})
	}
}
