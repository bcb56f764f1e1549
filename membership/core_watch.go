package membership

import "time"

// Which way heartbeats flow on a stream. In a full mesh every node checks every peer, so
// heartbeats go both ways on every stream. In the overlay a node checks only its subjects: a
// stream between an observer and its subject needs heartbeats from the subject alone, and
// the other way they would cost each node K writes and K reads an interval for nothing.
// So each heartbeat says whether its sender checks the receiver (Heartbeat.NotMonitoring),
// and a node sends a heartbeat every interval on a stream only while the peer checks it;
// otherwise every quietBeatEvery intervals, or at once when it has news for the peer
// (attributes that changed, a change of its own role). A peer that says nothing (a new
// stream, or a node from before the flag) is owed heartbeats, so every stream starts with a
// heartbeat each way.

// watches reports whether this node checks pc's peer by its heartbeats: always in a full
// mesh; in the overlay, while it is one of the peer's observers in the live view or in the
// basis (whose alerts count). When it starts to, the peer's silence counts from now: the
// peer may have left its heartbeats out until it hears of the change.
func (c *core) watches(now time.Time, pc *peerConn) bool {
	watching := true
	if c.overlay() {
		topo, basis := c.topo.version()+1, c.basis.version()+1
		if pc.watchTopo == topo && pc.watchBasis == basis {
			return pc.watching
		}
		pc.watchTopo, pc.watchBasis = topo, basis
		watching = c.observes(pc.peer)
	} else {
		pc.watchTopo, pc.watchBasis = 0, 0
	}
	if watching && !pc.watching {
		pc.lastRecv, pc.suspectSince = now, time.Time{}
	}
	pc.watching = watching
	return watching
}

// owesBeat reports whether a heartbeat due on pc goes out: while the peer checks this node,
// to tell it of new attributes or of a change in whether this node checks it, and every
// quietBeatEvery beats in any case.
func (c *core) owesBeat(pc *peerConn, watching bool) bool {
	return !pc.peerQuiet || pc.sentAttrs != c.attrs.Version || pc.toldQuiet == watching || pc.skippedBeats+1 >= quietBeatEvery
}

// quietBeatEvery is how often, in heartbeats due, a node still sends one to a peer that does
// not check it: the peer's last_heartbeat for a direct stream stays within that many
// intervals, at a tenth of the cost of a heartbeat every interval.
const quietBeatEvery = 10

// notePeerWatch takes the peer's word on whether it checks this node. A peer that starts to
// gets a heartbeat at once: it counts this node's silence from the moment it changed.
func (c *core) notePeerWatch(now time.Time, pc *peerConn, hb *Heartbeat) {
	started := pc.peerQuiet && !hb.NotMonitoring
	pc.peerQuiet = hb.NotMonitoring
	if started && c.current(pc) {
		c.sendHeartbeat(now, pc)
		pc.nextBeat = now.Add(c.maxBeatGap())
	}
}

// quietTimeout is how long a stream whose peer this node does not check may stay silent:
// the peer's quietBeatEvery intervals plus its silence limit (both from the peer's interval,
// which the handshake keeps within the configurable range).
func (c *core) quietTimeout(pc *peerConn) time.Duration {
	return time.Duration(quietBeatEvery)*pc.peerBeat + pc.timeout
}

// unwatched reports whether id is a stream this node does not check (watches): it can die
// without this node noticing soon, so a new stream from its peer is taken as the peer's
// word that it did (resolveDuplicate).
func (c *core) unwatched(id connID) bool {
	pc := c.conns[id]
	return pc != nil && !pc.watching
}

// observes reports whether this node monitors id in the live view or in the basis. Every
// stream asks it after each change of the view: the answer comes from this node's subjects,
// found once per change, rather than from a search of every ring for each stream. An id a
// lens does not see (a node down, or not in the view) is looked for on the rings themselves,
// where it would be.
func (c *core) observes(id NodeID) bool {
	topo, basis := c.topo.version()+1, c.basis.version()+1
	if gone, ok := c.topo.removedSince(c.subjectsOf[0] - 1); ok && c.subjectsOf[1] == basis && c.subjectSet != nil && !c.subjectSet[gone] {
		c.subjectsOf[0] = topo // a node that was no subject went: the subjects stay (removedSince)
	}
	if c.subjectsOf != [2]uint64{topo, basis} || c.subjectSet == nil {
		c.subjectsOf = [2]uint64{topo, basis}
		c.subjectSet = map[NodeID]bool{}
		for _, lens := range [2]*topology{c.topo, c.basis} {
			for _, s := range lens.subjects(c.self) {
				c.subjectSet[s] = true
			}
		}
	}
	if c.subjectSet[id] {
		return true
	}
	for _, lens := range [2]*topology{c.topo, c.basis} {
		if !lens.has(id) || !lens.has(c.self) {
			if lens.isObserver(c.self, id) {
				return true
			}
		}
	}
	return false
}
