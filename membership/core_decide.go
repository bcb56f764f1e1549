package membership

import (
	"time"
)

// Decisions: a node reports a subject down once a quorum of its observers say so (or a
// majority found nothing listening at its address), and back up once they no longer do
// (decide); a decision, its own or a peer's, takes the subject down and goes on (settleDown).

// decideFrom decides subject, whose alerts changed, and then the subjects whose count it may
// change: a node that is suspected or decided down counts as alerting for the nodes it
// observes (its subjects), so a decision or a new suspicion about one node is followed by its
// subjects' decisions, and theirs after them. Each node is decided at most twice per call.
func (c *core) decideFrom(now time.Time, subject NodeID) (decidedSubject bool) {
	work := []NodeID{subject}
	visits := map[NodeID]int{}
	for len(work) > 0 {
		id := work[0]
		work = work[1:]
		if visits[id] >= 2 {
			continue
		}
		visits[id]++
		m := c.members.get(id)
		if m == nil {
			continue
		}
		changed := c.decide(now, m)
		if changed && id == subject {
			decidedSubject = true
		}
		// Its subjects' counts change only if it changed, or if its new alert may have made
		// it suspected: an alert that leaves it unsuspected changes nobody else's count.
		if !changed && (id != subject || !c.suspected(id)) {
			continue
		}
		for _, s := range c.basisNeighbours(id).subjects {
			if c.alerts[s] != nil {
				work = append(work, s)
			}
		}
	}
	return decidedSubject
}

// decide reports m down once a quorum of its observers report it down, or the first time
// its incarnation goes down, once more than half of them found nothing listening at its
// address (refused redials), with the reason most of them give; and back up once so many of
// them report it up again (up alerts) that fewer than a quorum are left to report it down.
// It reports whether it changed m's status.
//
// An observer that is itself suspected (down alerts from at least L of its own observers,
// L = 3 of 10 as in Rapid) counts as reporting m down: when several nodes fail at once, some
// of a failed node's observers failed too and cannot say so.
func (c *core) decide(now time.Time, m *member) bool {
	set := c.alerts[m.id]
	if set == nil || set.incarnation != m.incarnation {
		return false
	}
	observers := c.basisNeighbours(m.id).observers
	quorum := c.quorum(len(observers))
	if m.status == StatusDisconnected {
		// Back once an observer says it reaches it again (an up alert heard since it went
		// down: an older one may predate what took it down) and either fewer than a quorum
		// of its observers can still report it down, or none does: no down alert stands, and
		// none of them failed or is suspected. One observer that reaches it again (the one
		// link a partial cut left) is not enough while the others' alerts stand. But a node
		// decided down across a partition, on the alert of its one observer on this side and
		// the suspicion of the others, comes back once that observer reaches it again and the
		// others, reached again too, are no longer suspected: they never alerted, so they
		// never say it is up, and it stayed down for good after the partition healed.
		ups, downs := 0, 0
		for _, o := range observers {
			mark, ok := set.by[o]
			switch {
			case ok && mark.up:
				if mark.number > m.downMark {
					ups++
				}
			case ok || c.members.get(o).isDown() || c.suspected(o):
				downs++
			}
		}
		if ups == 0 || (len(observers)-ups >= quorum && downs > 0) {
			return false
		}
		delete(c.alerts, m.id)
		c.markUp(now, m)
		return true
	}
	// The observers' own alerts first; those without one count only if they failed or are
	// suspected, which costs more to tell, and is told only while a quorum is within reach.
	downs := map[DownReason]int{}
	count, silent, refused := 0, 0, 0
	for _, o := range observers {
		mark, ok := set.by[o]
		switch {
		case ok && !mark.up:
			downs[mark.reason]++
			count++
			if mark.refused {
				refused++
			}
		case !ok:
			silent++
		}
	}
	if refused > len(observers)/2 && m.downs.of(m.incarnation) == 0 {
		// A majority found nothing listening at its address: no slow observer or bad link
		// refuses a dial, and the rest would only say the same later. Once per incarnation:
		// one that came back (its other observers reach it) is decided by H from then on, so
		// a port that refuses only some of its observers cannot take it down again and again.
		c.settleDown(now, m, majority(downs), nil, nil)
		return true
	}
	if count == 0 || count+silent < quorum {
		return false
	}
	// The silent observers, until a quorum is reached or out of reach: with one alert of ten
	// (the usual case in a busy cluster, where every node hears every alert) the second
	// silent observer that is up and unsuspected settles it.
	for _, o := range observers {
		if count >= quorum || count+silent < quorum {
			break
		}
		if _, ok := set.by[o]; ok {
			continue
		}
		silent--
		if c.members.get(o).isDown() || c.suspected(o) {
			count++ // failed with its subject, or suspected itself: it cannot say so
		}
	}
	if count < quorum {
		return false
	}
	c.settleDown(now, m, majority(downs), nil, nil)
	return true
}

// ringNeighbours are a node's observers and subjects in the basis.
type ringNeighbours struct {
	observers, subjects []NodeID
}

// basisNeighbours returns id's observers and subjects in the basis, cached until an id joins
// or leaves it, or a tick finds the cache unused since the last (releaseIdleBasisCache): a
// decision reads the observers of a subject and of each of those observers, and a burst of
// alerts decides many subjects, so the same lookups repeat.
func (c *core) basisNeighbours(id NodeID) ringNeighbours {
	c.basisCacheUsed = true
	if c.basisCache == nil || c.basisCacheVersion != c.basis.version() {
		c.basisCache = map[NodeID]ringNeighbours{}
		c.basisCacheVersion = c.basis.version()
	}
	nb, ok := c.basisCache[id]
	if !ok {
		nb = ringNeighbours{observers: c.basis.observers(id), subjects: c.basis.subjects(id)}
		c.basisCache[id] = nb
	}
	return nb
}

// releaseIdleBasisCache drops the cache of basisNeighbours if nothing asked for it since the
// last call (a tick). A steady basis never invalidates it, and after a formation's alerts it
// held the neighbours of a hundred subjects or more, some 100 KB a node at 1,024 nodes, for
// decisions that were over.
func (c *core) releaseIdleBasisCache() {
	if !c.basisCacheUsed {
		c.basisCache = nil
	}
	c.basisCacheUsed = false
}

// suspected reports whether at least L of id's observers report it down.
func (c *core) suspected(id NodeID) bool {
	set := c.alerts[id]
	if set == nil {
		return false
	}
	m := c.members.get(id)
	if m == nil || set.incarnation != m.incarnation || m.status == StatusDisconnected {
		return false
	}
	observers := c.basisNeighbours(id).observers
	k := c.cfg.Monitors
	low := max(1, k*3/10)
	need := max(1, (low*len(observers)+k-1)/k)
	if set.downs < need {
		return false // too few down marks, whoever gave them: the usual case, told at once
	}
	count := 0
	for _, o := range observers {
		if mark, ok := set.by[o]; ok && !mark.up {
			count++
		}
	}
	return count >= need
}

// quorum is how many of a subject's observers must report it down: H of K (K - K/10, 9 of
// 10 as in Rapid), scaled to the observers the subject has (fewer than K when rings repeat).
func (c *core) quorum(observers int) int {
	k := c.cfg.Monitors
	h := k - k/10
	return max(1, (h*observers+k-1)/k)
}

// majority returns the reason given most, the most specific on a tie.
func majority(counts map[DownReason]int) DownReason {
	best, bestCount := ReasonConnectionClosed, 0
	for _, r := range []DownReason{ReasonHeartbeatTimeout, ReasonConnectionClosed, ReasonConnectionRefused, ReasonGracefulShutdown} {
		if counts[r] > bestCount {
			best, bestCount = r, counts[r]
		}
	}
	return best
}

// redecideSubjectsOf decides again the nodes down on the basis that the given live nodes
// observe, once those lost a down alert (expireAlerts) or an up alert replaced one
// (onAlert): an observer no longer suspected counts no more as reporting its subjects down,
// which may bring one back (decide). Nothing else would: the alerts about a node decided
// down across a partition may all be in, the last of them while its observers on the far
// side were still suspected.
func (c *core) redecideSubjectsOf(now time.Time, observers []NodeID) {
	if len(observers) == 0 || c.basis.size() == c.topo.size() {
		return // nobody down on the basis
	}
	for _, o := range observers {
		for _, s := range c.basisNeighbours(o).subjects {
			if m := c.members.get(s); m.isDown() && c.alerts[s] != nil {
				c.decideFrom(now, s)
			}
		}
	}
}

// settleDown reports m down for reason, decided here (heard nil) or by the decision heard
// on stream from, and relays the decision once: the nodes that have not decided yet do so on
// it, and no longer need each observer's alert. The alerts stay (expireAlerts holds them
// while m is down): an up alert that came before the decision still counts towards bringing
// m back when the next one comes.
func (c *core) settleDown(now time.Time, m *member, reason DownReason, heard *Alert, from *peerConn) {
	round := m.downs.of(m.incarnation) + 1
	decision := &Alert{Subject: m.id, Incarnation: m.incarnation, Observer: c.self, Reason: reason, Decided: true, Round: round}
	if heard != nil {
		decision = heard
		round = max(round, heard.Round)
	}
	m.downs = downRound{incarnation: m.incarnation, count: round}
	direct := m.conn
	// Asked while m is still on the rings, the neighbour set at hand answers; asked after,
	// the set would be built anew for a view without m, in every node at the same moment, a
	// tenth of the CPU a crash cost a cluster of 1,024 nodes. Reconcile builds it later.
	neighbour := c.isNeighbour(m.id)
	c.markDown(now, m, reason) // clears m.conn
	if direct != 0 {
		c.dropConn(direct) // the cluster has decided: this node's stream does not overrule it
	}
	c.relayAlert(from, decision)
	if neighbour {
		c.scheduleRedial(now, m)
	}
}
