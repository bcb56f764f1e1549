package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// longHost is a valid 253-character hostname (labels of 63+63+63+61).
var longHost = strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." +
	strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)

func TestParseNodeIDValid(t *testing.T) {
	name64 := "a" + strings.Repeat("b", 63)
	tests := []struct {
		in   string
		name string
		host string
		port int
		addr string
	}{
		{"app1@192.168.1.1:4369", "app1", "192.168.1.1", 4369, "192.168.1.1:4369"},
		{"worker-1@localhost:4370", "worker-1", "localhost", 4370, "localhost:4370"},
		{"node_2@[::1]:4369", "node_2", "::1", 4369, "[::1]:4369"},
		{"n@[fe80::1:2]:9", "n", "fe80::1:2", 9, "[fe80::1:2]:9"},
		{"n@[::ffff:1.2.3.4]:9", "n", "::ffff:1.2.3.4", 9, "[::ffff:1.2.3.4]:9"},
		{"app@host:1", "app", "host", 1, "host:1"},
		{"app@host:65535", "app", "host", 65535, "host:65535"},
		{"my_app@h:1", "my_app", "h", 1, "h:1"},
		{"my-app@h:1", "my-app", "h", 1, "h:1"},
		{"A9_-z@h:1", "A9_-z", "h", 1, "h:1"},
		{name64 + "@h:1", name64, "h", 1, "h:1"},
		{"a@" + longHost + ":1", "a", longHost, 1, longHost + ":1"},
		{"a@0.0.0.0:1", "a", "0.0.0.0", 1, "0.0.0.0:1"},
		{"a@255.255.255.255:1", "a", "255.255.255.255", 1, "255.255.255.255:1"},
		{"a@my-host.example.com:80", "a", "my-host.example.com", 80, "my-host.example.com:80"},
		{"a@1host.10:80", "a", "1host.10", 80, "1host.10:80"},
		{"a@Host.Example:80", "a", "Host.Example", 80, "Host.Example:80"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := ParseNodeID(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.name, id.Name())
			assert.Equal(t, tt.host, id.Host())
			assert.Equal(t, tt.port, id.Port())
			assert.Equal(t, tt.addr, id.Address())
			assert.Equal(t, tt.in, id.String())
			assert.False(t, id.IsZero())
			assert.NoError(t, ValidateNodeID(tt.in))
			assert.Equal(t, id, MustParseNodeID(tt.in))
		})
	}
}

func TestParseNodeIDInvalid(t *testing.T) {
	tests := []struct {
		label string
		in    string
		part  string
		rule  string
	}{
		{"name starts with digit", "1app@host:4369", "name", "must start with a letter"},
		{"port too large", "app@host:99999", "port", "between 1 and 65535"},
		{"empty", "", "id", "must not be empty"},
		{"missing @", "applocalhost:4369", "id", "must be name@host:port"},
		{"two @", "a@b@c:1", "id", "more than one '@'"},
		{"missing port", "app@localhost", "port", "is missing"},
		{"empty name", "@localhost:4369", "name", "must not be empty"},
		{"dot in name", "app.name@localhost:4369", "name", `found '.'`},
		{"space in name", "app name@localhost:4369", "name", `found ' '`},
		{"name 65 chars", "a" + strings.Repeat("b", 64) + "@h:1", "name", "at most 64 characters (got 65)"},
		{"non-ASCII name", "appé@h:1", "name", "only letters, digits"},
		{"non-ASCII first letter", "élan@h:1", "name", "must start with a letter"},
		{"empty host", "app@:4369", "host", "must not be empty"},
		{"leading hyphen", "app@-invalid:4369", "host", "must not start or end with '-'"},
		{"trailing hyphen", "app@invalid-:4369", "host", "must not start or end with '-'"},
		{"inner label hyphen", "app@a.-b.c:1", "host", "must not start or end with '-'"},
		{"empty label", "app@a..b:1", "host", "empty label"},
		{"trailing dot", "app@a.b.:1", "host", "empty label"},
		{"label 64 chars", "app@" + strings.Repeat("a", 64) + ":1", "host", "labels must be at most 63"},
		{"host 254 chars", "app@" + longHost + "e:1", "host", "at most 253 characters (got 254)"},
		{"non-ASCII host", "app@hôst:1", "host", "only letters, digits, '-' and '.'"},
		{"underscore host", "app@my_host:1", "host", `found '_'`},
		{"port 0", "app@host:0", "port", "must be between 1 and 65535"},
		{"port 65536", "app@host:65536", "port", "must be between 1 and 65535"},
		{"port abc", "app@host:abc", "port", "only decimal digits"},
		{"port -1", "app@host:-1", "port", "only decimal digits"},
		{"port +80", "app@host:+80", "port", "only decimal digits"},
		{"port 0080", "app@host:0080", "port", "leading zeros"},
		{"port 12abc", "app@host:12abc", "port", "only decimal digits"},
		{"port empty", "app@host:", "port", "must not be empty"},
		{"port huge", "app@host:99999999999999999999", "port", "between 1 and 65535"},
		{"octet 256", "app@256.0.0.1:1", "host", "not a valid IPv4 address"},
		{"3 octets", "app@1.2.3:1", "host", "must have 4 octets"},
		{"5 octets", "app@1.2.3.4.5:1", "host", "must have 4 octets"},
		{"octet leading zero", "app@1.02.3.4:1", "host", "leading zero"},
		{"empty octet", "app@1..3.4:1", "host", "empty octet"},
		{"all digits", "app@1234:1", "host", "not a valid IPv4 address"},
		{"unbracketed IPv6", "app@::1:4369", "host", "in brackets"},
		{"IPv6 zone", "app@[::1%eth0]:1", "host", "zone"},
		{"bad IPv6", "app@[::g]:1", "host", "not a valid IPv6 address"},
		{"IPv4 in brackets", "app@[1.2.3.4]:1", "host", "only around an IPv6 address"},
		{"unclosed bracket", "app@[::1:1", "host", "without a closing ']'"},
		{"bracket no port", "app@[::1]", "port", "is missing"},
		{"bracket junk", "app@[::1]x:1", "host", "followed directly by ':port'"},
		{"stray bracket", "app@x]:1", "host", "brackets"},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			id, err := ParseNodeID(tt.in)
			require.Error(t, err)
			assert.True(t, id.IsZero())

			var idErr *IDError
			require.ErrorAs(t, err, &idErr)
			assert.Equal(t, tt.in, idErr.Input)
			assert.Equal(t, tt.part, idErr.Part)
			assert.Contains(t, idErr.Rule, tt.rule)
			assert.ErrorIs(t, err, ErrInvalidNodeID)
			assert.True(t, strings.HasPrefix(err.Error(), `invalid node id "`), err.Error())
			assert.Contains(t, err.Error(), ": "+tt.part+" ")
			assert.Contains(t, err.Error(), tt.rule)

			assert.Equal(t, err, ValidateNodeID(tt.in))
			assert.Panics(t, func() { MustParseNodeID(tt.in) })
		})
	}
}

func TestIDErrorMessage(t *testing.T) {
	assert.EqualError(t, ValidateNodeID("1app@h:1"), `invalid node id "1app@h:1": name must start with a letter`)
	assert.EqualError(t, ValidateNodeID("app@host:0"), `invalid node id "app@host:0": port must be between 1 and 65535`)

	wrapped := errors.Join(errors.New("loading peers"), ValidateNodeID("x"))
	var idErr *IDError
	require.ErrorAs(t, wrapped, &idErr)
	assert.Equal(t, "id", idErr.Part)
	assert.ErrorIs(t, wrapped, ErrInvalidNodeID)
	assert.NotErrorIs(t, wrapped, ErrInvalidConfig)
}

func TestNewNodeID(t *testing.T) {
	valid := []struct {
		name, host string
		port       int
		want       string
	}{
		{"app1", "192.168.1.1", 4369, "app1@192.168.1.1:4369"},
		{"node_2", "::1", 4369, "node_2@[::1]:4369"},
		{"w", "localhost", 65535, "w@localhost:65535"},
	}
	for _, tt := range valid {
		t.Run(tt.want, func(t *testing.T) {
			id, err := NewNodeID(tt.name, tt.host, tt.port)
			require.NoError(t, err)
			assert.Equal(t, tt.want, id.String())
			assert.Equal(t, MustParseNodeID(tt.want), id)
		})
	}

	invalid := []struct {
		label, name, host string
		port              int
		part, msg         string
	}{
		{"bad name", "1app", "h", 1, "name", `invalid node id "1app@h:1": name must start with a letter`},
		{"port 0", "app", "host", 0, "port", `invalid node id "app@host:0": port must be between 1 and 65535`},
		{"port negative", "app", "host", -1, "port", "port must be between 1 and 65535"},
		{"port too big", "app", "host", 70000, "port", "port must be between 1 and 65535"},
		{"bracketed host", "app", "[::1]", 1, "host", "host must be given without brackets"},
		{"zone", "app", "fe80::1%eth0", 1, "host", "host must not have an IPv6 zone"},
		{"empty host", "app", "", 1, "host", "host must not be empty"},
		{"bad ipv4", "app", "1.2.3", 1, "host", "host is not a valid IPv4 address"},
	}
	for _, tt := range invalid {
		t.Run(tt.label, func(t *testing.T) {
			_, err := NewNodeID(tt.name, tt.host, tt.port)
			var idErr *IDError
			require.ErrorAs(t, err, &idErr)
			assert.Equal(t, tt.part, idErr.Part)
			assert.Contains(t, err.Error(), tt.msg)
			assert.ErrorIs(t, err, ErrInvalidNodeID)
		})
	}
}

func TestParseSeed(t *testing.T) {
	valid := []struct {
		in, addr, id string
	}{
		{"app1@192.168.1.1:4369", "192.168.1.1:4369", "app1@192.168.1.1:4369"},
		{"node_2@[::1]:4369", "[::1]:4369", "node_2@[::1]:4369"},
		{"localhost:4370", "localhost:4370", ""},
		{"10.0.0.1:1", "10.0.0.1:1", ""},
		{"[::1]:4369", "[::1]:4369", ""},
	}
	for _, tt := range valid {
		t.Run(tt.in, func(t *testing.T) {
			addr, id, err := ParseSeed(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.addr, addr)
			assert.Equal(t, tt.id, id.String())
			assert.Equal(t, tt.id == "", id.IsZero())
		})
	}

	invalid := []struct {
		in, part, msg string
	}{
		{"", "seed", `invalid seed "": seed must not be empty`},
		{"localhost", "port", `invalid seed "localhost": port is missing`},
		{"localhost:0", "port", `invalid seed "localhost:0": port must be between 1 and 65535`},
		{"::1:4369", "host", "host must put an IPv6 address in brackets"},
		{"1.2.3:80", "host", "host is not a valid IPv4 address"},
		{"1app@h:1", "name", `invalid seed "1app@h:1": name must start with a letter`},
		{"a@b@c:1", "seed", "seed must be name@host:port"},
		{"a@h:0080", "port", "port must not have leading zeros"},
	}
	for _, tt := range invalid {
		t.Run("invalid "+tt.in, func(t *testing.T) {
			addr, id, err := ParseSeed(tt.in)
			assert.Empty(t, addr)
			assert.True(t, id.IsZero())
			var idErr *IDError
			require.ErrorAs(t, err, &idErr)
			assert.Equal(t, tt.in, idErr.Input)
			assert.Equal(t, tt.part, idErr.Part)
			assert.Contains(t, err.Error(), tt.msg)
			assert.ErrorIs(t, err, ErrInvalidNodeID)
		})
	}
}

func TestNodeIDZero(t *testing.T) {
	var id NodeID
	assert.True(t, id.IsZero())
	assert.Empty(t, id.String())
	assert.Empty(t, id.Address())
	assert.Empty(t, id.Name())
	assert.Empty(t, id.Host())
	assert.Zero(t, id.Port())
}

func TestNodeIDEqualityIsExact(t *testing.T) {
	assert.Equal(t, MustParseNodeID("a@h:1"), MustParseNodeID("a@h:1"))
	assert.NotEqual(t, MustParseNodeID("a@h:1"), MustParseNodeID("A@h:1"))
	assert.NotEqual(t, MustParseNodeID("a@h:1"), MustParseNodeID("a@H:1"))
	assert.NotEqual(t, MustParseNodeID("a@[::1]:1"), MustParseNodeID("a@[0::1]:1"))
	assert.True(t, MustParseNodeID("a@h:1") == MustParseNodeID("a@h:1"))
}

func TestNodeIDCompare(t *testing.T) {
	a := MustParseNodeID("a@h:1")
	b := MustParseNodeID("b@h:1")
	a2 := MustParseNodeID("a@h:2")
	assert.Equal(t, 0, a.Compare(MustParseNodeID("a@h:1")))
	assert.Equal(t, -1, a.Compare(b))
	assert.Equal(t, 1, b.Compare(a))
	assert.Equal(t, -1, a.Compare(a2))
	assert.Equal(t, -1, NodeID{}.Compare(a))
	assert.Equal(t, 0, NodeID{}.Compare(NodeID{}))
}

func TestNodeIDText(t *testing.T) {
	for _, s := range []string{"app1@192.168.1.1:4369", "node_2@[::1]:4369"} {
		id := MustParseNodeID(s)
		text, err := id.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, s, string(text))

		var back NodeID
		require.NoError(t, back.UnmarshalText(text))
		assert.Equal(t, id, back)
	}

	type doc struct {
		ID    NodeID            `json:"id"`
		Peers map[NodeID]string `json:"peers"`
		None  NodeID            `json:"none"`
	}
	in := doc{
		ID:    MustParseNodeID("node_2@[::1]:4369"),
		Peers: map[NodeID]string{MustParseNodeID("a@h:1"): "up"},
	}
	raw, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"node_2@[::1]:4369","peers":{"a@h:1":"up"},"none":""}`, string(raw))
	var out doc
	require.NoError(t, json.Unmarshal(raw, &out))
	assert.Equal(t, in, out)

	err = json.Unmarshal([]byte(`{"id":"1app@h:1"}`), &out)
	var idErr *IDError
	require.ErrorAs(t, err, &idErr)
	assert.Equal(t, "name", idErr.Part)
}

func TestNodeIDAppendToWritesString(t *testing.T) {
	for _, s := range []string{"a@127.0.0.1:4369", "node-1@[::1]:9000", "x@host.example:1"} {
		id, err := ParseNodeID(s)
		require.NoError(t, err, s)
		require.Equal(t, id.String(), string(id.appendTo([]byte("prefix:"))[len("prefix:"):]))
	}
	require.Empty(t, NodeID{}.appendTo(nil), "the zero id appends nothing, as its String is empty")
}

// Errors quote at most a short prefix of what they reject, and its length: an id, a seed or a
// host of a megabyte never comes back whole in a message.
func TestErrorsQuoteAtMostAPrefixOfTheInput(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	inputs := map[string]string{
		"id without '@'":    huge,
		"name":              "1" + huge + "@h:1",
		"IPv4 octet":        "a@1.2.3." + strings.Repeat("9", 1<<20) + ":1",
		"port":              "a@h:" + strings.Repeat("9", 1<<20),
		"hostname":          "a@" + huge + ":1",
		"two '@'":           huge + "@@h:1",
		"unbracketed IPv6":  "a@" + strings.Repeat("1:", 1<<19) + ":1",
		"unclosed bracket":  "a@[" + huge,
		"bracketed junk":    "a@[" + huge + "]:1",
		"seed without port": "seed:" + huge,
	}
	for label, in := range inputs {
		t.Run(label, func(t *testing.T) {
			for _, err := range []error{ValidateNodeID(in), func() error { _, _, err := ParseSeed(in); return err }()} {
				require.Error(t, err)
				assert.Less(t, len(err.Error()), 400, "error %.200q…", err.Error())
				assert.Contains(t, err.Error(), fmt.Sprintf("(%d bytes)", len(in)))
				assert.ErrorIs(t, err, ErrInvalidNodeID)
			}
		})
	}
}

func TestParseListenPortFollowsTheNodeIDPortRule(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "1": 1, "4369": 4369, "65535": 65535} {
		got, err := ParseListenPort(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for in, rule := range map[string]string{
		"":       "must not be empty",
		"+80":    "only decimal digits",
		"-1":     "only decimal digits",
		" 80":    "only decimal digits",
		"12abc":  "only decimal digits",
		"07350":  "leading zeros",
		"00":     "between 1 and 65535",
		"65536":  "between 1 and 65535",
		"999999": "between 1 and 65535",
	} {
		_, err := ParseListenPort(in)
		var idErr *IDError
		require.ErrorAs(t, err, &idErr, in)
		assert.Equal(t, "port", idErr.Part, in)
		assert.Contains(t, err.Error(), rule, in)
		assert.True(t, strings.HasPrefix(err.Error(), "invalid port "), err.Error())
	}
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4369": "127.0.0.1:4369", "localhost:1": "localhost:1", "[::1]:4369": "[::1]:4369",
	} {
		got, err := ParseAddress(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for in, rule := range map[string]string{
		"":               "address must not be empty",
		"not an addr":    "port is missing",
		":99999":         "host must not be empty",
		"127.0.0.1:0":    "port must be between 1 and 65535",
		"127.0.0.1:+80":  "port must contain only decimal digits",
		"127.0.0.1:0080": "port must not have leading zeros",
		"::1:4369":       "in brackets",
		"a@h:1":          "host",
	} {
		_, err := ParseAddress(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), rule, in)
		assert.True(t, strings.HasPrefix(err.Error(), "invalid address "), err.Error())
	}
}

func TestParseListenAddress(t *testing.T) {
	valid := []struct {
		in   string
		host string
		port int
	}{
		{"127.0.0.1:9469", "127.0.0.1", 9469}, {":9469", "", 9469}, {"[::]:0", "::", 0}, {"localhost:0", "localhost", 0},
		{"0.0.0.0:1", "0.0.0.0", 1},
	}
	for _, tt := range valid {
		host, port, err := ParseListenAddress(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.host, host, tt.in)
		assert.Equal(t, tt.port, port, tt.in)
	}
	for in, rule := range map[string]string{
		"":             "must not be empty",
		"notanaddr":    "port is missing",
		":99999":       "port must be between 1 and 65535",
		"127.0.0.1:07": "leading zeros",
		"bad_host:80":  "host must contain only",
		"1.2.3.4:+1":   "only decimal digits",
	} {
		_, _, err := ParseListenAddress(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), rule, in)
		assert.True(t, strings.HasPrefix(err.Error(), "invalid listen address "), err.Error())
	}
}
