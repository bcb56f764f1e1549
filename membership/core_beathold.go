package membership

import (
	"log/slog"
	"time"
)

// Heartbeats give way to failure news. Above K+1 nodes a crash is news to every node: its
// observers' alerts and then the decision cross the overlay hop by hop, each hop waiting for
// the CPU of the nodes it reaches. Where many nodes share few cores (a bench of a thousand
// nodes on two, a crowded host) the heartbeats at rest take as much CPU as the news, and
// every hop waits behind them. A node whose view is still that hears a down alert, or raises
// one, therefore holds the heartbeats that come due for a while (maxBeatHold), so that the
// news it relays goes first; each held heartbeat goes when the hold ends, at most
// maxBeatHold after it was due. A heartbeat's timeout is several intervals, so a held one is
// never taken for a silence; the lateness it shows is forgiven (forgiveHeldBeat), so it does
// not widen the silence a node allows its peers' heartbeats either.

// maxBeatHold is how long this node may hold a heartbeat for news (beatHold).
func (c *core) maxBeatHold() time.Duration {
	return beatHold(c.cfg.HeartbeatInterval, c.cfg.HeartbeatMissThreshold)
}

// beatHold is how long a heartbeat every interval, threshold of which missed make a silence,
// may be held for news: a quarter of the interval per heartbeat missed beyond the first, at
// most half an interval (half a second at the defaults); none at a threshold of one, where a
// late heartbeat is a silence.
func beatHold(interval time.Duration, threshold int) time.Duration {
	return min(interval*time.Duration(max(threshold-1, 0))/4, interval/2)
}

// holdBeats starts a hold of the heartbeats, on news of a failure, unless one is on: a hold
// is never extended, so a node that keeps hearing news still sends every heartbeat within
// maxBeatHold of when it was due. Nothing is held while the view changes (viewStill): in a
// formation, or a storm of failures, the heartbeats' digests repair what the relays miss. In
// a full mesh every node hears a failure first hand, at once, and nothing is held either.
func (c *core) holdBeats(now time.Time) {
	if hold := c.maxBeatHold(); hold > 0 && c.overlay() && !now.Before(c.beatsHeldUntil) && c.viewStill(now) {
		c.beatsHeldStart, c.beatsHeldUntil = now, now.Add(hold)
		c.log(slog.LevelDebug, "holding heartbeats while failure news goes round", "for", hold.String())
	}
}

// viewStill reports whether the view has not changed, as far as this node's heartbeats
// noticed (settledDigest), within the last interval.
func (c *core) viewStill(now time.Time) bool {
	return !c.digestDirty && now.Sub(c.digestLastNoticed) >= c.cfg.HeartbeatInterval
}

// beatHeld reports whether pc's heartbeat, due by now, waits for the hold, and until when:
// the hold's end, or maxBeatHold after the heartbeat was due if that comes first.
func (c *core) beatHeld(now time.Time, pc *peerConn) (time.Time, bool) {
	if !now.Before(c.beatsHeldUntil) {
		return time.Time{}, false
	}
	resume := minTime(c.beatsHeldUntil, pc.nextBeat.Add(c.maxBeatHold()))
	return resume, now.Before(resume)
}

// forgiveHeldBeat returns the gap after which a heartbeat came, in a peer's stream of
// heartbeats every interval, less the lateness a hold of the peer's may explain: while this
// node holds its own heartbeats for news, and for as long again after (the last heartbeats
// held elsewhere are still on their way), its peers most likely heard the same news and held
// theirs, each up to beatHold (at this node's threshold: a cluster shares one).
func (c *core) forgiveHeldBeat(now time.Time, gap, interval time.Duration) time.Duration {
	if c.beatsHeldUntil.IsZero() || !now.Before(c.beatsHeldUntil.Add(c.beatsHeldUntil.Sub(c.beatsHeldStart))) {
		return gap
	}
	return gap - min(max(gap-interval, 0), beatHold(interval, c.cfg.HeartbeatMissThreshold))
}
