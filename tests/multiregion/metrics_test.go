package multiregion

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meridiandb/meridian/node"
)

// scrape returns host's /metrics text.
func scrape(t *testing.T, c *Cluster, host string) string {
	t.Helper()
	addr := c.Node(host).MetricsAddr()
	require.NotEmpty(t, addr, "%s serves no metrics", host)
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

// sample returns the value of the series name{labels} in text, or false.
func sample(text, series string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// TestMetricsReportReplicationLagPerOrigin scrapes /metrics from a running
// three-region deployment: every region reports the replication series of
// every other origin, the API's calls and Raft's own metrics; when a
// region is cut off, the others' staleness of its log grows and its source
// becomes unreachable, and both recover after the heal.
func TestMetricsReportReplicationLagPerOrigin(t *testing.T) {
	c := startClusterWith(t, 1, func(nc *node.Config) { nc.MetricsAddr = "127.0.0.1:0" })
	setExampleRules(t, c)
	for _, h := range c.Hosts() {
		for _, e := range []string{"us/m-1", "eu/m-1", "ap/m-1"} {
			appendVia(t, c, h, e, "")
		}
	}
	waitConverged(t, c, []string{"us/m-1", "eu/m-1", "ap/m-1"}, 30*time.Second)

	for _, h := range c.Hosts() {
		text := scrape(t, c, h)
		self := c.RegionOf(h)
		for _, origin := range threeRegions {
			if origin == self {
				continue
			}
			for _, name := range []string{"meridian_replication_lag_events", "meridian_replication_lag_seconds", "meridian_replication_staleness_seconds", "meridian_replication_source_reachable"} {
				_, ok := sample(text, name+`{origin="`+origin+`"}`)
				assert.True(t, ok, "%s: no %s for origin %s", h, name, origin)
			}
		}
		applied, ok := sample(text, `meridian_region_applied_sequence{origin="eu-west"}`)
		assert.True(t, ok && applied >= 3, "%s applied eu-west's three events: %v", h, applied)
		leader, _ := sample(text, "meridian_raft_leader")
		assert.Equal(t, 1.0, leader, h)
		calls, ok := sample(text, `meridian_api_requests_total{code="ok",level="region",procedure="/meridian.v1.EventStore/Append"}`)
		assert.True(t, ok && calls >= 3, "%s counted its appends: %v\n%s", h, calls, text)
		// commitTime is hashicorp/raft's own (go-metrics), not the node's status.
		assert.Regexp(t, `(?m)^meridian_raft_commitTime_count \d`, text, "hashicorp/raft's go-metrics are bridged")
		assert.Regexp(t, `(?m)^meridian_badger_lsm_bytes \d`, text)
		for _, r := range threeRegions {
			_, ok := sample(text, `meridian_region_unreplicated_tail_events{region="`+r+`"}`)
			assert.True(t, ok, "%s: no unreplicated tail series for %s", h, r)
		}
		entries, _ := sample(text, "meridian_group_commit_entries_total")
		batched, _ := sample(text, "meridian_group_commit_appends_total")
		assert.True(t, entries >= 1 && batched >= entries, "%s: group commit counters %v entries, %v appends", h, entries, batched)
		assert.Regexp(t, `(?m)^go_goroutines \d`, text)
	}

	// ap-south is cut off: us-east's view of ap-south's log grows stale.
	us := c.HostsOf("us-east")[0]
	c.Net.Isolate(c.HostsOf("ap-south")[0])
	require.Eventually(t, func() bool {
		text := scrape(t, c, us)
		stale, _ := sample(text, `meridian_replication_staleness_seconds{origin="ap-south"}`)
		reachable, _ := sample(text, `meridian_replication_source_reachable{origin="ap-south"}`)
		return stale > 3 && reachable == 0
	}, 30*time.Second, 200*time.Millisecond, "us-east's metrics never showed ap-south's log going stale and unreachable")
	c.Net.HealAll()
	require.Eventually(t, func() bool {
		text := scrape(t, c, us)
		stale, _ := sample(text, `meridian_replication_staleness_seconds{origin="ap-south"}`)
		reachable, _ := sample(text, `meridian_replication_source_reachable{origin="ap-south"}`)
		return stale < 3 && reachable == 1
	}, 30*time.Second, 200*time.Millisecond, "us-east's metrics never recovered after the heal")
}
