package membership

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// seedLogs returns the lines n logged about seed, as "LEVEL text".
func (n *simNode) seedLogs(seed string) []string {
	var out []string
	for _, l := range n.logs {
		for i := 0; i+1 < len(l.attrs); i += 2 {
			if l.attrs[i] == "seed" && l.attrs[i+1] == seed {
				out = append(out, l.level.String()+" "+l.text)
			}
		}
	}
	return out
}

// A seed nobody answers at is warned about at its first failed dial, then at most once a
// minute however often it is redialled, and said to be reachable again once, when a node
// appears there. Its status says why meanwhile.
func TestCoreUnreachableSeedIsWarnedAboutRateLimitedAndItsRecoveryOnce(t *testing.T) {
	s := newSim(t)
	const seed = "127.0.0.1:4999"
	a := s.add(simID("a", 4000), simConfig("a", seed))
	require.Equal(t, []string{"WARN seed unreachable; retrying with backoff"}, a.seedLogs(seed), "warned at the first failed dial")
	st := a.core.seedStatuses()
	require.Len(t, st, 1)
	require.Equal(t, SeedStatus{Seed: seed, LastError: "connection refused", FailedDials: 1}, st[0])

	s.advance(150 * time.Second)
	dials := len(a.dialsTo(seed))
	require.Greater(t, dials, 20, "redialled with capped backoff")
	warns := a.seedLogs(seed)
	require.Equal(t, []string{
		"WARN seed unreachable; retrying with backoff",
		"WARN seed still unreachable; retrying with backoff",
		"WARN seed still unreachable; retrying with backoff",
	}, warns, "one warning at the first failure, then one a minute, not one per dial (%d dials)", dials)
	var at []time.Time
	for _, l := range a.logs {
		if strings.Contains(l.text, "seed") {
			at = append(at, l.at)
			require.Equal(t, slog.LevelWarn, l.level)
		}
	}
	for i := 1; i < len(at); i++ {
		require.GreaterOrEqual(t, at[i].Sub(at[i-1]), seedWarnEvery)
	}
	st = a.core.seedStatuses()
	require.False(t, st[0].Reachable)
	require.Equal(t, dials, st[0].FailedDials)

	b := s.add("b@127.0.0.1:4999", simConfig("b"))
	s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(a, b) }, "a should reach b through its seed")
	s.advance(5 * time.Second)
	logs := a.seedLogs(seed)
	require.Equal(t, "INFO seed reachable again", logs[len(logs)-1])
	require.Len(t, logs, len(warns)+1, "the recovery is said once")
	require.Equal(t, []SeedStatus{{Seed: seed, Reachable: true}}, a.core.seedStatuses())

	// The seed's node gone, the seed's status follows the node (redialled as a member).
	b.crash()
	s.advanceUntil(10*time.Second, func() bool { return !a.core.seedStatuses()[0].Reachable }, "b's crash should show")
	require.Contains(t, a.core.seedStatuses()[0].LastError, "b@127.0.0.1:4999 is disconnected")
}

// A seed given by id is reported under its configured text, and a seed that is the node
// itself is neither dialled for ever nor reported.
func TestCoreSeedStatusesByIDAndWithoutSelf(t *testing.T) {
	s := newSim(t)
	cfg := simConfig("a", "ghost@127.0.0.1:4998", "a@127.0.0.1:4000")
	a := s.add(simID("a", 4000), cfg)
	st := a.core.seedStatuses()
	require.Len(t, st, 1, "the node itself is not one of its seeds")
	require.Equal(t, "ghost@127.0.0.1:4998", st[0].Seed)
	require.False(t, st[0].Reachable)
	require.Equal(t, "connection refused", st[0].LastError)
	require.Equal(t, []string{"WARN seed unreachable; retrying with backoff"}, a.seedLogs("ghost@127.0.0.1:4998"))
}

// A seed so busy that it takes longer than the dial timeout to answer each dial (every node
// of a large cluster joining through it at once) still lets a joiner in: each dial of it that
// failed makes the next one wait longer, so the seed's late answer finds the joiner waiting.
// With the usual timeout every time, the joiner gives up on each dial before the answer comes,
// and never joins.
func TestCoreJoinerWaitsLongerForASeedThatAnswersLate(t *testing.T) {
	s := newSim(t)
	seed := s.add(simID("seed", 4000), simConfig("seed"))
	s.dialLatency = 6 * time.Second // longer than the 5 s dial timeout
	joiner := s.add(simID("joiner", 4001), simConfig("joiner", "127.0.0.1:4000"))
	took := s.advanceUntil(time.Minute, func() bool { return s.fullMesh(seed, joiner) },
		"the joiner should reach a seed that answers each dial in 6 s, 1 s after the dial timeout")
	dials := len(joiner.dialsTo("127.0.0.1:4000"))
	t.Logf("joined after %v and %d dials", took, dials)
	require.Equal(t, 2, dials, "the second dial, twice as patient as the first, should reach the seed")
	st := joiner.core.seedStatuses()
	require.Len(t, st, 1)
	require.True(t, st[0].Reachable, "the seed is reachable once the joiner is in")
}

// A seed that hundreds of nodes join through at once answers each joiner late: a joiner's
// hello waits for the seed behind those of the joiners ahead of it. A joiner whose dial
// reached the seed waits for the answer: giving up at the usual timeout and dialling again
// would queue one more handshake at the busy seed. With the usual patience, an answer 7 s
// late is missed by the first dial (5 s) and comes within the second.
func TestCoreJoinerWaitsForTheHelloOfASeedItReached(t *testing.T) {
	s := newSim(t)
	cfg := simConfig("seed")
	cfg.HandshakeTimeout = 10 * time.Second // a busy seed's wait grows as its handshakes time out
	seed := s.add(simID("seed", 4000), cfg)
	s.delay = func(from, to *simNode, msg *Message) time.Duration {
		if to == seed && msg.Hello != nil {
			return 7 * time.Second // the seed gets to the joiner's hello 7 s after the dial
		}
		return 0
	}
	joiner := s.add(simID("joiner", 4001), simConfig("joiner", "127.0.0.1:4000"))
	took := s.advanceUntil(time.Minute, func() bool { return s.fullMesh(seed, joiner) },
		"the joiner should join through a seed that answers its hello 7 s late")
	dials := joiner.dialsTo("127.0.0.1:4000")
	t.Logf("joined after %v and %d dials", took, len(dials))
	require.Len(t, dials, 1, "the joiner should wait for the hello of the seed its first dial reached, not dial again")
	require.Less(t, took, 8*time.Second, "the joiner should be in as soon as the seed's late hello comes")
}

// Members answer late too, on a machine busy enough (a large cluster forming, a late joiner
// dialling its neighbours): after each dial of a member that failed, the next one waits
// longer, so the member's late answer finds the dialler waiting. With the usual timeout
// every time, two nodes whose dials of each other take 6 s would never stream to each other.
func TestCoreDialWaitsLongerForAMemberThatAnswersLate(t *testing.T) {
	s := newSim(t)
	nodes := newCluster(s, 2)
	s.dialLatency = 6 * time.Second // longer than the 5 s dial timeout
	late := s.add(simID("late", 4002), simConfig("late", "127.0.0.1:4000"))
	took := s.advanceUntil(2*time.Minute, func() bool { return s.fullMesh(append(nodes, late)...) },
		"the late node should stream to every member though each dial takes 6 s, 1 s after the dial timeout")
	t.Logf("full mesh after %v", took)
	member := nodes[1]
	for _, pair := range [][2]*simNode{{late, member}, {member, late}} {
		require.LessOrEqual(t, len(pair[0].dialsTo(pair[1].id.Address())), 2,
			"%s: its second dial of %s, twice as patient as the first, should reach it", pair[0].id, pair[1].id)
	}
	for _, n := range append(nodes, late) {
		requireAlternating(t, n)
	}
}
