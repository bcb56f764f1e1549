package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshnode/meshnode/membership"
)

func TestBodyCacheEncodesASharedMessageOnceAndEveryOtherFaithfully(t *testing.T) {
	var cache bodyCache
	id := membership.MustParseNodeID("a@127.0.0.1:4370")
	view := []membership.MemberEntry{{ID: membership.MustParseNodeID("b@127.0.0.1:4371"), Incarnation: 7}}
	hello := func(uptime time.Duration) *membership.Message {
		return &membership.Message{Hello: &membership.Hello{ID: id, Incarnation: 1, ProtocolVersion: 1,
			HeartbeatInterval: time.Second, MissThreshold: 3, Uptime: uptime, View: view, ViewDigest: 9}}
	}
	beat := &membership.Message{Heartbeat: &membership.Heartbeat{ViewDigest: 1, AttributesVersion: 1}}

	first, err := cache.encode(beat)
	require.NoError(t, err)
	again, err := cache.encode(beat)
	require.NoError(t, err)
	require.Same(t, &first[0], &again[0], "the shared heartbeat should be encoded once")

	other := &membership.Message{Heartbeat: &membership.Heartbeat{ViewDigest: 2, AttributesVersion: 1}}
	body, err := cache.encode(other)
	require.NoError(t, err)
	got, err := decodeMessage(body)
	require.NoError(t, err)
	require.Equal(t, other, got, "a new heartbeat must be encoded anew, not served from the cache")

	for _, uptime := range []time.Duration{time.Second, time.Minute} {
		body, err := cache.encode(hello(uptime))
		require.NoError(t, err)
		got, err := decodeMessage(body)
		require.NoError(t, err)
		require.Equal(t, hello(uptime), got, "hellos sharing a view differ in their other fields")
	}
	entries := cache.entries
	_, err = cache.encode(hello(time.Hour))
	require.NoError(t, err)
	require.Same(t, &entries[0], &cache.entries[0], "the same view slice should be encoded once")

	view = append([]membership.MemberEntry{{ID: membership.MustParseNodeID("c@127.0.0.1:4372"), Incarnation: 3}}, view...)
	body, err = cache.encode(hello(time.Hour))
	require.NoError(t, err)
	got, err = decodeMessage(body)
	require.NoError(t, err)
	require.Equal(t, view, got.Hello.View, "a changed view must be encoded anew")
}

func TestBodyCacheEncodesARelayOnceForAllItsStreams(t *testing.T) {
	var cache bodyCache
	alert := func(hop uint32) *membership.Message {
		return &membership.Message{Alerts: []*membership.Alert{{
			Subject: membership.MustParseNodeID("s@127.0.0.1:4370"), Observer: membership.MustParseNodeID("o@127.0.0.1:4371"),
			Incarnation: 5, Reason: membership.ReasonHeartbeatTimeout, Hop: hop,
		}}}
	}
	relay := alert(2)
	first, err := cache.encode(relay)
	require.NoError(t, err)
	again, err := cache.encode(relay)
	require.NoError(t, err)
	require.Same(t, &first[0], &again[0], "a relay handed to many streams should be encoded once")

	for hop := range uint32(2 * relayBodies) {
		msg := alert(hop + 3)
		body, err := cache.encode(msg)
		require.NoError(t, err)
		got, err := decodeMessage(body)
		require.NoError(t, err)
		require.Equal(t, msg, got, "every other relay must be encoded as it is, not served from the cache")
	}
	body, err := cache.encode(relay)
	require.NoError(t, err)
	got, err := decodeMessage(body)
	require.NoError(t, err)
	require.Equal(t, relay, got, "a relay gone from the cache is encoded again, faithfully")
}
