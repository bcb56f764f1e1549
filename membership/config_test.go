package membership

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validConfig returns the defaults with a name: the smallest valid Config.
func validConfig() *Config {
	c := DefaultConfig()
	c.Name = "app1"
	return c
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	assert.Equal(t, &Config{
		BindHost:               "0.0.0.0",
		Port:                   4369,
		HeartbeatInterval:      5 * time.Second,
		HeartbeatMissThreshold: 3,
		Monitors:               10,
		DialTimeout:            5 * time.Second,
		HandshakeTimeout:       5 * time.Second,
		ReconnectBaseDelay:     200 * time.Millisecond,
		ReconnectMaxDelay:      5 * time.Second,
		ReconnectTimeout:       time.Hour,
		TombstoneTimeout:       time.Hour,
	}, c)

	err := c.Validate()
	var cfgErr *ConfigError
	require.ErrorAs(t, err, &cfgErr)
	assert.Equal(t, []FieldError{{Field: "Name", Message: "is required"}}, cfgErr.Problems)
	assert.NoError(t, validConfig().Validate())
}

func TestConfigPresets(t *testing.T) {
	assert.Equal(t, DefaultLANConfig(), DefaultConfig(), "DefaultConfig is the LAN preset")

	local := DefaultLocalConfig()
	want := DefaultLANConfig()
	want.BindHost, want.Port = "127.0.0.1", 0
	want.HeartbeatInterval = 300 * time.Millisecond
	want.DialTimeout, want.HandshakeTimeout = 2*time.Second, 2*time.Second
	want.ReconnectBaseDelay, want.ReconnectMaxDelay = 100*time.Millisecond, time.Second
	assert.Equal(t, want, local, "the local preset changes only the listener and the timings")
	local.Name = "app1"
	assert.NoError(t, local.Validate())
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		label  string
		modify func(c *Config)
		field  string // "" when the config is valid
		msg    string
	}{
		{"name required", func(c *Config) { c.Name = "" }, "Name", "is required"},
		{"name starts with digit", func(c *Config) { c.Name = "1app" }, "Name", `must start with a letter (got "1app")`},
		{"name with dot", func(c *Config) { c.Name = "app.name" }, "Name", "only letters, digits, '_' and '-'"},
		{"name too long", func(c *Config) { c.Name = "a" + strings.Repeat("b", 64) }, "Name", "at most 64 characters"},
		{"name 64 chars", func(c *Config) { c.Name = "a" + strings.Repeat("b", 63) }, "", ""},

		{"bind host required", func(c *Config) { c.BindHost = "" }, "BindHost", "is required"},
		{"bind host bad IPv4", func(c *Config) { c.BindHost = "256.0.0.1" }, "BindHost", "not a valid IPv4 address"},
		{"bind host bracketed", func(c *Config) { c.BindHost = "[::]" }, "BindHost", "without brackets"},
		{"bind host bad name", func(c *Config) { c.BindHost = "-host" }, "BindHost", "must not start or end with '-'"},
		{"bind host IPv6", func(c *Config) { c.BindHost = "::" }, "", ""},
		{"bind host IPv6 loopback", func(c *Config) { c.BindHost = "::1" }, "", ""},
		{"bind host name", func(c *Config) { c.BindHost = "localhost" }, "", ""},

		{"port negative", func(c *Config) { c.Port = -1 }, "Port", "must be between 0 and 65535 (got -1)"},
		{"port too big", func(c *Config) { c.Port = 65536 }, "Port", "must be between 0 and 65535 (got 65536)"},
		{"port 0 picks free port", func(c *Config) { c.Port = 0 }, "", ""},
		{"port 65535", func(c *Config) { c.Port = 65535 }, "", ""},

		{"advertise invalid", func(c *Config) { c.AdvertiseHost = "bad_host" }, "AdvertiseHost", `found '_'`},
		{"advertise unspecified", func(c *Config) { c.AdvertiseHost = "0.0.0.0" }, "AdvertiseHost", "address other nodes can dial"},
		{"advertise unspecified IPv6", func(c *Config) { c.AdvertiseHost = "::" }, "AdvertiseHost", "address other nodes can dial"},
		{"advertise IPv4", func(c *Config) { c.AdvertiseHost = "10.0.0.5" }, "", ""},
		{"advertise IPv6", func(c *Config) { c.AdvertiseHost = "fd00::5" }, "", ""},

		{"seed invalid", func(c *Config) { c.Seeds = []string{"a@h:1", "h:0"} }, "Seeds",
			`seed 1: invalid seed "h:0": port must be between 1 and 65535`},
		{"seeds valid", func(c *Config) { c.Seeds = []string{"a@h:1", "h:2", "[::1]:3"} }, "", ""},

		{"secret empty", func(c *Config) { c.Secrets = [][]byte{[]byte("s3cret"), nil} }, "Secrets", "secret 1 is empty"},
		{"secrets valid", func(c *Config) { c.Secrets = [][]byte{[]byte("new"), []byte("old")} }, "", ""},

		{"heartbeat too short", func(c *Config) { c.HeartbeatInterval = 50 * time.Millisecond }, "HeartbeatInterval",
			"must be between 100ms and 10m0s (got 50ms)"},
		{"heartbeat minimum", func(c *Config) { c.HeartbeatInterval = 100 * time.Millisecond }, "", ""},
		{"heartbeat maximum", func(c *Config) { c.HeartbeatInterval = 10 * time.Minute }, "", ""},
		{"heartbeat too long", func(c *Config) { c.HeartbeatInterval = 10*time.Minute + 1 }, "HeartbeatInterval",
			"must be between 100ms and 10m0s (got 10m0.000000001s)"},
		{"heartbeat 1300000h", func(c *Config) { c.HeartbeatInterval = 1300000 * time.Hour }, "HeartbeatInterval",
			"(got 1300000h0m0s)"},
		{"threshold zero", func(c *Config) { c.HeartbeatMissThreshold = 0 }, "HeartbeatMissThreshold", "must be between 1 and 100 (got 0)"},
		{"threshold one", func(c *Config) { c.HeartbeatMissThreshold = 1 }, "", ""},
		{"threshold 100", func(c *Config) { c.HeartbeatMissThreshold = 100 }, "", ""},
		{"threshold 101", func(c *Config) { c.HeartbeatMissThreshold = 101 }, "HeartbeatMissThreshold", "must be between 1 and 100 (got 101)"},
		{"threshold 19000000000", func(c *Config) { c.HeartbeatMissThreshold = 19000000000 }, "HeartbeatMissThreshold",
			"must be between 1 and 100 (got 19000000000)"},

		{"monitors negative", func(c *Config) { c.Monitors = -1 }, "Monitors", "must be between 0 and 64 (got -1)"},
		{"monitors one", func(c *Config) { c.Monitors = 1 }, "Monitors", "must be 0 (a full mesh at any size) or at least 2 (got 1)"},
		{"monitors zero", func(c *Config) { c.Monitors = 0 }, "", ""},
		{"monitors two", func(c *Config) { c.Monitors = 2 }, "", ""},
		{"monitors 64", func(c *Config) { c.Monitors = 64 }, "", ""},
		{"monitors 65", func(c *Config) { c.Monitors = 65 }, "Monitors", "must be between 0 and 64 (got 65)"},

		{"dial timeout zero", func(c *Config) { c.DialTimeout = 0 }, "DialTimeout", "must be positive (got 0s)"},
		{"handshake timeout negative", func(c *Config) { c.HandshakeTimeout = -time.Second }, "HandshakeTimeout", "must be positive (got -1s)"},
		{"base delay zero", func(c *Config) { c.ReconnectBaseDelay = 0 }, "ReconnectBaseDelay", "must be positive"},
		{"max delay zero", func(c *Config) { c.ReconnectMaxDelay = 0 }, "ReconnectMaxDelay", "must be positive"},
		{"max delay below base", func(c *Config) { c.ReconnectMaxDelay = 100 * time.Millisecond }, "ReconnectMaxDelay",
			"must be at least ReconnectBaseDelay 200ms (got 100ms)"},
		{"max delay equals base", func(c *Config) { c.ReconnectMaxDelay = c.ReconnectBaseDelay }, "", ""},
		{"reconnect timeout zero", func(c *Config) { c.ReconnectTimeout = 0 }, "ReconnectTimeout", "must be positive"},
		{"tombstone timeout zero", func(c *Config) { c.TombstoneTimeout = 0 }, "TombstoneTimeout", "must be positive"},
		{"dial timeout too long", func(c *Config) { c.DialTimeout = 2 * time.Hour }, "DialTimeout", "must be at most 1h0m0s (got 2h0m0s)"},
		{"handshake timeout too long", func(c *Config) { c.HandshakeTimeout = 2 * time.Hour }, "HandshakeTimeout", "must be at most 1h0m0s"},
		{"max delay too long", func(c *Config) { c.ReconnectMaxDelay = math.MaxInt64 }, "ReconnectMaxDelay", "must be at most 1h0m0s"},
		{"max delay at limit", func(c *Config) { c.ReconnectMaxDelay = time.Hour }, "", ""},
		{"reconnect timeout too long", func(c *Config) { c.ReconnectTimeout = 721 * time.Hour }, "ReconnectTimeout", "must be at most 720h0m0s"},
		{"tombstone timeout too long", func(c *Config) { c.TombstoneTimeout = 721 * time.Hour }, "TombstoneTimeout", "must be at most 720h0m0s"},
		{"retention at limit", func(c *Config) { c.ReconnectTimeout, c.TombstoneTimeout = 720*time.Hour, 720*time.Hour }, "", ""},

		{"metadata empty key", func(c *Config) { c.Metadata = map[string]string{"": "x"} }, "Metadata", "keys must not be empty"},
		{"metadata bad UTF-8", func(c *Config) { c.Metadata = map[string]string{"k": "\xff"} }, "Metadata", "valid UTF-8"},
		{"metadata too big", func(c *Config) { c.Metadata = map[string]string{"k": strings.Repeat("v", 4096)} }, "Metadata",
			"at most 4096 bytes (got 4097)"},
		{"metadata at limit", func(c *Config) { c.Metadata = map[string]string{"k": strings.Repeat("v", 4095)} }, "", ""},

		{"process count negative", func(c *Config) { c.ProcessCount = -1 }, "ProcessCount", "must be between 0 and 2147483647 (got -1)"},
		{"process count positive", func(c *Config) { c.ProcessCount = 7 }, "", ""},
		{"process count at limit", func(c *Config) { c.ProcessCount = math.MaxInt32 }, "", ""},
		{"process count past 32 bits", func(c *Config) { c.ProcessCount = 4294967297 }, "ProcessCount",
			"must be between 0 and 2147483647 (got 4294967297)"},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			c := validConfig()
			tt.modify(c)
			err := c.Validate()
			if tt.field == "" {
				assert.NoError(t, err)
				return
			}
			var cfgErr *ConfigError
			require.ErrorAs(t, err, &cfgErr)
			require.Len(t, cfgErr.Problems, 1, err.Error())
			assert.Equal(t, tt.field, cfgErr.Problems[0].Field)
			assert.Contains(t, cfgErr.Problems[0].Message, tt.msg)
			assert.Contains(t, err.Error(), tt.field+": ")
			assert.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.HeartbeatInterval = 50 * time.Millisecond
	c.Port = 70000
	c.Seeds = []string{"ok@h:1", "bad", "h:0"}
	c.ProcessCount = -3

	err := c.Validate()
	require.EqualError(t, err, "invalid cluster config: Name: is required; "+
		"Port: must be between 0 and 65535 (got 70000); "+
		`Seeds: seed 1: invalid seed "bad": port is missing (expected host:port); `+
		`Seeds: seed 2: invalid seed "h:0": port must be between 1 and 65535; `+
		"HeartbeatInterval: must be between 100ms and 10m0s (got 50ms); "+
		"ProcessCount: must be between 0 and 2147483647 (got -3)")

	var cfgErr *ConfigError
	require.ErrorAs(t, err, &cfgErr)
	fields := make([]string, len(cfgErr.Problems))
	for i, p := range cfgErr.Problems {
		fields[i] = p.Field
	}
	assert.Equal(t, []string{"Name", "Port", "Seeds", "Seeds", "HeartbeatInterval", "ProcessCount"}, fields)
}

func TestConfigErrorMatching(t *testing.T) {
	c := validConfig()
	c.Name = ""
	c.HeartbeatInterval = 50 * time.Millisecond
	err := fmt.Errorf("starting node: %w", c.Validate())

	assert.EqualError(t, err,
		"starting node: invalid cluster config: Name: is required; HeartbeatInterval: must be between 100ms and 10m0s (got 50ms)")
	var cfgErr *ConfigError
	require.ErrorAs(t, err, &cfgErr)
	assert.Len(t, cfgErr.Problems, 2)
	assert.ErrorIs(t, err, ErrInvalidConfig)
	assert.NotErrorIs(t, err, ErrNotRunning)
	assert.NotErrorIs(t, err, ErrInvalidNodeID)

	assert.ErrorIs(t, fmt.Errorf("list nodes: %w", ErrNotRunning), ErrNotRunning)
	assert.EqualError(t, &ConfigError{}, "invalid cluster config")

	var nilConfig *Config
	assert.ErrorIs(t, nilConfig.Validate(), ErrInvalidConfig)
}

func TestConfigValidateNeverLeaksSecrets(t *testing.T) {
	c := validConfig()
	c.Secrets = [][]byte{[]byte("hunter2-topsecret"), {}}
	err := c.Validate()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestConfigClone(t *testing.T) {
	orig := validConfig()
	orig.Seeds = []string{"a@h:1"}
	orig.Secrets = [][]byte{[]byte("secret")}
	orig.Metadata = map[string]string{"zone": "a"}

	clone := orig.Clone()
	require.Equal(t, orig, clone)

	clone.Name = "other"
	clone.Seeds[0] = "b@h:2"
	clone.Seeds = append(clone.Seeds, "c@h:3")
	clone.Secrets[0][0] = 'X'
	clone.Metadata["zone"] = "b"
	clone.Metadata["rack"] = "1"

	assert.Equal(t, "app1", orig.Name)
	assert.Equal(t, []string{"a@h:1"}, orig.Seeds)
	assert.Equal(t, [][]byte{[]byte("secret")}, orig.Secrets)
	assert.Equal(t, map[string]string{"zone": "a"}, orig.Metadata)

	empty := DefaultConfig().Clone()
	assert.Nil(t, empty.Seeds)
	assert.Nil(t, empty.Secrets)
	assert.Nil(t, empty.Metadata)

	var nilConfig *Config
	assert.Nil(t, nilConfig.Clone())
	assert.NoError(t, validConfig().Clone().Validate())
}

func TestConfigErrorsQuoteAtMostAPrefixOfTheInput(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	c := validConfig()
	c.Name = "1" + huge
	c.BindHost = huge + "_"
	c.AdvertiseHost = "-" + huge
	c.Seeds = []string{"1" + huge + "@h:1", huge}
	err := c.Validate()
	var cfgErr *ConfigError
	require.ErrorAs(t, err, &cfgErr)
	require.Len(t, cfgErr.Problems, 5, err.Error()[:min(len(err.Error()), 2000)])
	for _, p := range cfgErr.Problems {
		assert.Less(t, len(p.Message), 400, "%s: %.200q…", p.Field, p.Message)
	}
	assert.Less(t, len(err.Error()), 2000)
}

func TestSetProcessCountIsRefusedOutOfRange(t *testing.T) {
	c, err := New(MustParseNodeID("app1@127.0.0.1:4000"), validConfig(), nil)
	require.NoError(t, err)
	for _, n := range []int{-1, math.MaxInt32 + 1, 4294967297} {
		err := c.SetProcessCount(n)
		var cfgErr *ConfigError
		require.ErrorAs(t, err, &cfgErr, "%d", n)
		assert.Equal(t, "ProcessCount", cfgErr.Problems[0].Field)
	}
	require.NoError(t, c.SetProcessCount(math.MaxInt32))
}
