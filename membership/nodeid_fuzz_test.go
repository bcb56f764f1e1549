package membership

import (
	"errors"
	"testing"
)

func FuzzParseNodeID(f *testing.F) {
	for _, seed := range []string{
		"app1@192.168.1.1:4369", "node_2@[::1]:4369", "worker-1@localhost:4370",
		"a@0.0.0.0:1", "", "a@b@c:1", "app@::1:4369", "app@[::1%eth0]:1", "app@host:0080",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseNodeID(s)
		if err != nil {
			var idErr *IDError
			if !errors.As(err, &idErr) || !errors.Is(err, ErrInvalidNodeID) {
				t.Fatalf("ParseNodeID(%q): error %v is not an *IDError", s, err)
			}
			if !id.IsZero() {
				t.Fatalf("ParseNodeID(%q): non-zero id %v with error", s, id)
			}
			return
		}
		if id.IsZero() {
			t.Fatalf("ParseNodeID(%q): zero id without error", s)
		}
		if id.String() != s {
			t.Fatalf("ParseNodeID(%q).String() = %q", s, id.String())
		}
		back, err := ParseNodeID(id.String())
		if err != nil || back != id {
			t.Fatalf("ParseNodeID(%q) round trip: got %v, %v; want %v", id.String(), back, err, id)
		}
		built, err := NewNodeID(id.Name(), id.Host(), id.Port())
		if err != nil || built != id {
			t.Fatalf("NewNodeID(%q, %q, %d) = %v, %v; want %v", id.Name(), id.Host(), id.Port(), built, err, id)
		}
		addr, seedID, err := ParseSeed(s)
		if err != nil || seedID != id || addr != id.Address() {
			t.Fatalf("ParseSeed(%q) = %q, %v, %v; want %q, %v", s, addr, seedID, err, id.Address(), id)
		}
	})
}
