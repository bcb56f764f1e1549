package membership

import (
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// warningsAmong returns the warnings n logged whose text is one of texts, in order.
func (n *simNode) warningsAmong(texts ...string) []string {
	var out []string
	for _, l := range n.logs {
		if l.level == slog.LevelWarn && slices.Contains(texts, l.text) {
			out = append(out, l.text)
		}
	}
	return out
}

// foreignWarnings returns the warnings n logged about a node of another cluster.
func (n *simNode) foreignWarnings() []string {
	return n.warningsAmong("refused a node of another cluster: the cluster names differ",
		"a node of another cluster refused the stream: the cluster names differ",
		"refused the node dialled: it belongs to another cluster (the cluster names differ)")
}

// requireRefusedBySeed checks x, refused by its seed (127.0.0.1:4000) for 150 s: it kept
// dialling it with backoff, logged line once a minute (warned holds its warnings about the
// refusal), nothing else about the seed, and reports the seed unreachable with reason.
func requireRefusedBySeed(t *testing.T, x *simNode, warned []string, line, reason string) {
	t.Helper()
	require.Greater(t, len(x.dialsTo("127.0.0.1:4000")), 20, "x keeps dialling its seed with backoff")
	require.Equal(t, []string{line, line, line}, warned, "the refused node says so once a minute")
	require.Empty(t, x.seedLogs("127.0.0.1:4000"), "no second line about the seed")
	st := x.core.seedStatuses()
	require.Len(t, st, 1)
	require.False(t, st[0].Reachable)
	require.Contains(t, st[0].LastError, reason)
}

func namedConfig(cluster, name string, seeds ...string) *Config {
	cfg := simConfig(name, seeds...)
	cfg.ClusterName = cluster
	return cfg
}

// Nodes with the same cluster name form a cluster; a node with another name, or none, is
// refused at the handshake on both sides, with one warning on each side however often it
// redials (at most one a minute), and never joins.
func TestCoreClusterNameRefusesOtherClusters(t *testing.T) {
	for _, tc := range []struct{ name, mine, theirs string }{
		{"other name", "blue", "green"},
		{"none on the dialler", "blue", ""},
		{"none on the seed", "", "blue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			a := s.add(simID("a", 4000), namedConfig(tc.mine, "a"))
			b := s.add(simID("b", 4001), namedConfig(tc.mine, "b", "127.0.0.1:4000"))
			s.advanceUntil(10*time.Second, func() bool { return s.fullMesh(a, b) }, "same cluster name: a and b should meet")

			x := s.add(simID("x", 4002), namedConfig(tc.theirs, "x", "127.0.0.1:4000"))
			s.advance(150 * time.Second)
			require.Empty(t, x.connectedIDs(), "x joins nothing")
			require.NotContains(t, a.knownIDs(), "x@127.0.0.1:4002")
			require.NotContains(t, b.knownIDs(), "x@127.0.0.1:4002")
			require.Equal(t, []string{
				"refused a node of another cluster: the cluster names differ",
				"refused a node of another cluster: the cluster names differ",
				"refused a node of another cluster: the cluster names differ",
			}, a.foreignWarnings(), "the seed says so once a minute, not once per dial")
			requireRefusedBySeed(t, x, x.foreignWarnings(), "a node of another cluster refused the stream: the cluster names differ", "cluster_name")
			s.requireFullMesh(a, b)
		})
	}
}

// A dialler whose peer does not check names (an older node) still refuses the peer's hello.
func TestCoreClusterNameCheckedByTheDiallerToo(t *testing.T) {
	// The hello of a node of cluster "blue" that has no check of its own (an older node).
	x, rejected, warned := helloToDialler(t, namedConfig("green", "x", "127.0.0.1:4000"), namedConfig("blue", "a"), func(*Hello) {})
	require.NotNil(t, rejected)
	require.Equal(t, RejectClusterName, rejected.Reason)
	require.Equal(t, `cluster name "green" here, "blue" in the hello`, rejected.Detail)
	require.Equal(t, []string{"refused the node dialled: it belongs to another cluster (the cluster names differ)"}, warned)
	require.Zero(t, x.connected)
	require.Zero(t, x.members.len(), "the refused node is not in the table")
}

// helloToDialler has a node of config mine (x, port 4002) dial its seed and receive, as the
// accepting side's answer, the hello of a node of config theirs (a, port 4000) whose own check,
// if any, let the stream through (an older node), edited by edit. It returns the dialler, the
// Reject it sent if any, and its warnings.
func helloToDialler(t *testing.T, mine, theirs *Config, edit func(*Hello)) (x *core, rejected *Reject, warned []string) {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	x = newCore(MustParseNodeID(simID("x", 4002)), 1, mine, now, rand.New(rand.NewPCG(1, 2)), nil)
	x.start(now)
	var dialled connID
	for _, o := range x.takeOutputs() {
		if o.kind == outDial {
			dialled = o.conn
		}
	}
	require.NotZero(t, dialled, "x dials its seed")
	x.dialed(now, dialled)
	x.takeOutputs()
	a := newCore(MustParseNodeID(simID("a", 4000)), 1, theirs, now, rand.New(rand.NewPCG(3, 4)), nil)
	h := a.hello(now, nil)
	edit(h)
	x.receive(now, dialled, &Message{Hello: h})
	for _, o := range x.takeOutputs() {
		switch {
		case o.kind == outSend && o.msg.Reject != nil:
			rejected = o.msg.Reject
		case o.kind == outLog && o.level == slog.LevelWarn:
			warned = append(warned, o.text)
		}
	}
	return x, rejected, warned
}

func TestConfigClusterNameRule(t *testing.T) {
	cfg := simConfig("a")
	for _, ok := range []string{"", "prod", "eu-west_1", "A"} {
		cfg.ClusterName = ok
		require.NoError(t, cfg.Validate(), ok)
		require.NoError(t, ValidateClusterName(ok))
	}
	for _, bad := range []string{"1prod", "prod.eu", "-x", string(make([]byte, 65))} {
		cfg.ClusterName = bad
		err := cfg.Validate()
		require.ErrorIs(t, err, ErrInvalidConfig, bad)
		require.Contains(t, err.Error(), "ClusterName: ")
		require.Error(t, ValidateClusterName(bad))
	}
}
