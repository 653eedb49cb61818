package placement

import (
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
	"github.com/stretchr/testify/assert"
)

// server builds an autopilot server state: id "<region>/<node>".
func server(id string, state autopilot.RaftState, healthy bool) *autopilot.ServerState {
	s := &autopilot.ServerState{Server: autopilot.Server{ID: raft.ServerID(id)}, State: state}
	s.Health.Healthy = healthy
	if healthy {
		s.Health.StableSince = time.Now().Add(-time.Hour)
	}
	return s
}

func stateOf(servers ...*autopilot.ServerState) *autopilot.State {
	st := &autopilot.State{Servers: map[raft.ServerID]*autopilot.ServerState{}}
	for _, s := range servers {
		st.Servers[s.Server.ID] = s
	}
	return st
}

func ids(in []raft.ServerID) []string {
	out := make([]string, 0, len(in))
	for _, id := range in {
		out = append(out, string(id))
	}
	sort.Strings(out)
	return out
}

func TestRegionPromoter(t *testing.T) {
	conf := &autopilot.Config{ServerStabilizationTime: time.Second}
	for _, tc := range []struct {
		name    string
		voters  int
		servers []*autopilot.ServerState
		promote []string
		demote  []string
	}{
		{
			name:   "a region without a voter gets its first stable non-voter",
			voters: 1,
			servers: []*autopilot.ServerState{
				server("us/n1", autopilot.RaftLeader, true),
				server("eu/n2", autopilot.RaftNonVoter, true),
				server("eu/n1", autopilot.RaftNonVoter, true),
			},
			promote: []string{"eu/n1"},
		},
		{
			name:   "a dead voter is replaced by a healthy node of its region",
			voters: 1,
			servers: []*autopilot.ServerState{
				server("us/n1", autopilot.RaftLeader, true),
				server("eu/n1", autopilot.RaftVoter, false),
				server("eu/n2", autopilot.RaftNonVoter, true),
				server("ap/n1", autopilot.RaftVoter, true),
			},
			promote: []string{"eu/n2"},
		},
		{
			name:   "an unhealthy non-voter is not promoted: a region cut off keeps its voter",
			voters: 1,
			servers: []*autopilot.ServerState{
				server("us/n1", autopilot.RaftLeader, true),
				server("ap/n1", autopilot.RaftVoter, false),
				server("ap/n2", autopilot.RaftNonVoter, false),
			},
		},
		{
			name:   "after the replacement the surplus unhealthy voter is demoted",
			voters: 1,
			servers: []*autopilot.ServerState{
				server("us/n1", autopilot.RaftLeader, true),
				server("eu/n1", autopilot.RaftVoter, false),
				server("eu/n2", autopilot.RaftVoter, true),
			},
			demote: []string{"eu/n1"},
		},
		{
			name:   "three voters per region",
			voters: 3,
			servers: []*autopilot.ServerState{
				server("us/n1", autopilot.RaftLeader, true),
				server("us/n2", autopilot.RaftNonVoter, true),
				server("us/n3", autopilot.RaftNonVoter, true),
				server("us/n4", autopilot.RaftNonVoter, true),
			},
			promote: []string{"us/n2", "us/n3"},
		},
		{
			name:   "the leader is never demoted",
			voters: 1,
			servers: []*autopilot.ServerState{
				server("us/n1", autopilot.RaftLeader, true),
				server("us/n2", autopilot.RaftVoter, true),
			},
			demote: []string{"us/n2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &regionPromoter{votersPerRegion: tc.voters}
			ch := p.CalculatePromotionsAndDemotions(conf, stateOf(tc.servers...))
			assert.Equal(t, tc.promote, nilIfEmpty(ids(ch.Promotions)), "promotions")
			assert.Equal(t, tc.demote, nilIfEmpty(ids(ch.Demotions)), "demotions")
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestFilterFailedServerRemovals(t *testing.T) {
	p := &regionPromoter{votersPerRegion: 1}
	failedEU := &autopilot.Server{ID: "eu/n1", NodeStatus: autopilot.NodeFailed}
	failedAP := &autopilot.Server{ID: "ap/n1", NodeStatus: autopilot.NodeFailed}
	failedNonVoter := &autopilot.Server{ID: "ap/n3", NodeStatus: autopilot.NodeFailed}
	// Autopilot passes on every member that is not alive: one that just
	// joined and has not answered a stats fetch yet is unknown, not failed.
	joining := &autopilot.Server{ID: "ap/n4", NodeStatus: autopilot.NodeUnknown}
	unknownVoter := &autopilot.Server{ID: "eu/n3", NodeStatus: autopilot.NodeUnknown}
	st := stateOf(
		server("us/n1", autopilot.RaftLeader, true),
		server("eu/n1", autopilot.RaftVoter, false),
		server("eu/n2", autopilot.RaftVoter, true),  // the replacement
		server("ap/n1", autopilot.RaftVoter, false), // ap cut off: no replacement
		server("ap/n2", autopilot.RaftNonVoter, false),
	)
	out := p.FilterFailedServerRemovals(nil, st, &autopilot.FailedServers{
		FailedVoters:    []*autopilot.Server{failedEU, failedAP, unknownVoter},
		FailedNonVoters: []*autopilot.Server{failedNonVoter, joining},
		StaleVoters:     []raft.ServerID{"xx/n1"},
	})
	assert.Equal(t, []*autopilot.Server{failedEU}, out.FailedVoters, "only a voter whose region has a healthy replacement is removed")
	assert.Equal(t, []*autopilot.Server{failedNonVoter}, out.FailedNonVoters, "failed non-voters are removed (they rejoin), unknown ones are not")
	assert.Empty(t, out.StaleVoters, "stale voters are left alone")
}

func TestHealthStatus(t *testing.T) {
	h := newHealth(time.Hour)
	assert.Equal(t, autopilot.NodeUnknown, h.status("a"), "never fetched")
	h.observe("a", true, time.Now())
	assert.Equal(t, autopilot.NodeAlive, h.status("a"))
	h.observe("a", false, time.Now())
	assert.Equal(t, autopilot.NodeAlive, h.status("a"), "failing for less than failedAfter")
	h.observe("b", false, time.Now().Add(-2*time.Hour))
	assert.Equal(t, autopilot.NodeFailed, h.status("b"), "failing for longer than failedAfter")
	h.observe("b", true, time.Now())
	assert.Equal(t, autopilot.NodeAlive, h.status("b"), "a success clears the failure")
}

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Region, base.NodeID, base.DataDir, base.RaftAddr, base.APIAdvertise = "eu-west", "n1", "/tmp/x", "127.0.0.1:0", "127.0.0.1:7001"
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"two voters per region", func(c *Config) { c.VotersPerRegion = 2 }, "VotersPerRegion"},
		{"no api address", func(c *Config) { c.APIAdvertise = "" }, "APIAdvertise"},
		{"api port 0", func(c *Config) { c.APIAdvertise = "127.0.0.1:0" }, "APIAdvertise"},
		{"bad seed", func(c *Config) { c.Seeds = []string{"nohostport"} }, "Seeds[0]"},
		{"lease over heartbeat", func(c *Config) { c.LeaderLeaseTimeout = time.Hour }, "LeaderLeaseTimeout"},
		{"zero timer", func(c *Config) { c.FailedAfter = 0 }, "FailedAfter"},
		{"bad region", func(c *Config) { c.Region = "" }, "Region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
