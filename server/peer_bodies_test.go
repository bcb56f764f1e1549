package server

import (
	"fmt"
	"sync"
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

// A steady cluster sends no views and few relays: what no stream asked for between two sweeps
// (a heartbeat's encoding, once per bodyIdle) is let go, and what streams still ask for stays.
func TestBodyCacheLetsGoOfViewsAndRelaysNoStreamAskedForLately(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cache := bodyCache{clock: func() time.Time { return now }}
	view := []membership.MemberEntry{{ID: membership.MustParseNodeID("b@127.0.0.1:4371"), Incarnation: 7}}
	hello := &membership.Message{Hello: &membership.Hello{ID: membership.MustParseNodeID("a@127.0.0.1:4370"),
		Incarnation: 1, ProtocolVersion: 1, HeartbeatInterval: time.Second, MissThreshold: 3, View: view}}
	relay := &membership.Message{Update: &membership.Update{Entries: view}}
	kept := &membership.Message{Update: &membership.Update{Entries: view, Hop: 2}}
	beat := func(digest uint64) *membership.Message {
		return &membership.Message{Heartbeat: &membership.Heartbeat{ViewDigest: digest, AttributesVersion: 1}}
	}
	for _, msg := range []*membership.Message{hello, relay, kept, beat(1)} {
		_, err := cache.encode(msg)
		require.NoError(t, err)
	}
	require.NotNil(t, cache.entries, "the view sent in a hello is cached")

	now = now.Add(bodyIdle - time.Second)
	_, err := cache.encode(kept) // still asked for
	require.NoError(t, err)
	_, err = cache.encode(beat(2))
	require.NoError(t, err)
	require.NotNil(t, cache.entries, "a view asked for within bodyIdle stays")

	now = now.Add(2 * time.Second)
	_, err = cache.encode(beat(3))
	require.NoError(t, err)
	require.Nil(t, cache.entries, "a view no hello asked for in bodyIdle is let go")
	held := map[*membership.Message]bool{}
	for _, c := range cache.relays {
		held[c.msg] = true
	}
	require.False(t, held[relay], "a relay no stream asked for in bodyIdle is let go")
	require.True(t, held[kept], "a relay asked for within bodyIdle stays")

	body, err := cache.encode(relay)
	require.NoError(t, err)
	got, err := decodeMessage(body)
	require.NoError(t, err)
	require.Equal(t, relay, got, "a relay let go is encoded anew when asked for again")
}

// The streams of a burst encode relays through one cache at once; each gets the body of its
// own message, whatever the others refill the cache with meanwhile (run with -race).
func TestBodyCacheServesConcurrentStreamsTheirOwnRelays(t *testing.T) {
	var cache bodyCache
	msgs := make([]*membership.Message, 3*relayBodies)
	for i := range msgs {
		msgs[i] = &membership.Message{Update: &membership.Update{Hop: uint32(i + 1), Entries: []membership.MemberEntry{
			{ID: membership.MustParseNodeID("b@127.0.0.1:4371"), Incarnation: uint64(i + 1)},
		}}}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for round := range 300 {
				msg := msgs[(g*7+round)%len(msgs)]
				body, err := cache.encode(msg)
				if err == nil {
					var got *membership.Message
					if got, err = decodeMessage(body); err == nil && got.Update.Hop != msg.Update.Hop {
						err = fmt.Errorf("stream %d got the body of hop %d for hop %d", g, got.Update.Hop, msg.Update.Hop)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
