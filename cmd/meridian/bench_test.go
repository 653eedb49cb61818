package main

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBenchClosedLoopCountsWhatTheStoreReceived(t *testing.T) {
	f, url := startFake(t)
	code, out, errOut := runCLI(t, t.Context(), "bench", "--endpoint="+url, "--duration", "400ms", "--clients", "4",
		"--events-per-append", "3", "--size", "100", "--entities", "5", "--prefix", "b-", "--read-ratio", "0.25", "--json")
	require.Equal(t, 0, code, errOut)
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.Equal(t, 4, rep.Clients)
	require.Positive(t, rep.Appends.OK)
	require.Positive(t, rep.Reads.OK)
	assert.Zero(t, rep.Appends.Failed)
	assert.Zero(t, rep.Reads.Failed)
	assert.Positive(t, rep.Appends.P50Ms)
	assert.LessOrEqual(t, rep.Appends.P50Ms, rep.Appends.P99Ms)
	assert.LessOrEqual(t, rep.Appends.P99Ms, rep.Appends.MaxMs)
	assert.InDelta(t, rep.Appends.PerS*3, rep.EventsPerS, 0.001)

	f.mu.Lock()
	defer f.mu.Unlock()
	var events int64
	for name, s := range f.streams {
		assert.Contains(t, []string{"b-0", "b-1", "b-2", "b-3", "b-4"}, name)
		for _, e := range s {
			assert.Len(t, e.GetData(), 100)
		}
		events += int64(len(s))
	}
	// An append cut off by the end of the run may have reached the store
	// without being counted: at most one per client.
	assert.GreaterOrEqual(t, events, rep.Appends.OK*3)
	assert.LessOrEqual(t, events, (rep.Appends.OK+4)*3)
}

func TestBenchOpenLoopOffersTheRate(t *testing.T) {
	_, url := startFake(t)
	code, out, errOut := runCLI(t, t.Context(), "bench", "--endpoint="+url, "--duration", "1s", "--clients", "4", "--rate", "200")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "open loop, offered 200 ops/s")
	assert.Regexp(t, `appends +\d+ ok +0 failed`, out)
}

func TestBenchRejectsBadFlags(t *testing.T) {
	_, url := startFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--clients", "0"}, "--clients must be 1 to 4096"},
		{[]string{"--duration", "0s"}, "--duration must be above 0"},
		{[]string{"--rate", "-1"}, "--rate must be 0"},
		{[]string{"--events-per-append", "1001"}, "--events-per-append must be 1 to 1000"},
		{[]string{"--size", "-1"}, "--size must be 0 to 1048576"},
		{[]string{"--read-ratio", "1.5"}, "--read-ratio must be 0 to 1"},
		{[]string{"--prefix", ""}, "--prefix must not be empty"},
		{[]string{"--consistency", "bounded"}, "--consistency bounded is not offered"},
		{[]string{"extra"}, "takes no arguments"},
	} {
		code, _, errOut := runCLI(t, t.Context(), append([]string{"bench", "--endpoint=" + url}, tc.args...)...)
		assert.Equal(t, 2, code, "%v: %s", tc.args, errOut)
		assert.Contains(t, errOut, tc.want, "%v", tc.args)
	}
}

func TestBenchFailsWhenNothingSucceeds(t *testing.T) {
	// Nothing listens there: every append fails, and so does the command.
	code, out, errOut := runCLI(t, t.Context(), "bench", "--endpoint=http://127.0.0.1:1", "--duration", "300ms", "--clients", "1", "--timeout", "100ms")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "no operation succeeded")
	assert.Contains(t, out, "first error:")
}

func TestBenchSamplesStayUniformPastTheirBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := benchSamples{max: 1000}
	for i := range 100_000 {
		s.add(time.Duration(i), rng)
	}
	assert.Len(t, s.d, 1000)
	assert.Equal(t, int64(100_000), s.ok)
	assert.Equal(t, time.Duration(99_999), s.longest)
	st := s.stats(1)
	// The median of a uniform sample of 0..99,999 ns: about 50,000 ns.
	assert.InDelta(t, 0.05, st.P50Ms, 0.01, "p50 %v ms", st.P50Ms)
}
