package replication

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Region = "us"
	require.NoError(t, ok.Validate())
	for _, tc := range []struct {
		field  string
		mutate func(*Config)
	}{
		{"Region", func(c *Config) { c.Region = "" }},
		{"HeartbeatInterval", func(c *Config) { c.HeartbeatInterval = 0 }},
		{"BackoffMax", func(c *Config) { c.BackoffMax = c.BackoffMin / 2 }},
		{"StreamIdleTimeout", func(c *Config) { c.StreamIdleTimeout = c.HeartbeatInterval }},
		{"BatchEventsMax", func(c *Config) { c.BatchEventsMax = PullEventsMax + 1 }},
		{"BatchBytesMax", func(c *Config) { c.BatchBytesMax = 0 }},
		{"PendingEventsMax", func(c *Config) { c.PendingEventsMax = c.BatchEventsMax - 1 }},
		{"PendingBytesMax", func(c *Config) { c.PendingBytesMax = c.MessageBytesMax - 1 }},
		{"MessageBytesMax", func(c *Config) { c.MessageBytesMax = pullReadBytesMax }},
		{"DirectoryRefresh", func(c *Config) { c.DirectoryRefresh = time.Microsecond }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestNewShipperRequiresDeps(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Region = "us"
	_, err := NewShipper(cfg, Deps{})
	require.ErrorIs(t, err, ErrInvalidConfig)
}
