package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/client"
)

// Bounds of `meridian bench`'s flags.
const (
	benchClientsMax  = 4096
	benchPerAppendMx = 1000    // the server's default events-per-append limit
	benchSizeMax     = 1 << 20 // the server's default event size limit
	benchDurationMax = time.Hour
	// benchSamplesMax bounds the latencies kept per operation kind over all
	// clients (8 bytes each; each client keeps an equal share, at least
	// 1,024): past it, new samples replace random old ones, so percentiles
	// stay unbiased and memory stays at 8 MiB per kind whatever the run's
	// length (32 MiB at the 4,096-client limit).
	benchSamplesMax = 1 << 20
)

// benchConfig is one `meridian bench` run.
type benchConfig struct {
	clients   int
	duration  time.Duration
	rate      float64 // operations/s over all clients; 0 = each client as fast as it can
	perAppend int
	size      int
	entities  int
	prefix    string
	readRatio float64
	readLast  uint32
	level     meridianv1.Consistency
}

// benchReport is what a run measured; printed as text or JSON.
type benchReport struct {
	Clients         int          `json:"clients"`
	Seconds         float64      `json:"seconds"`
	OfferedOpsPerS  float64      `json:"offered_ops_per_s,omitempty"`
	Appends         benchOpStats `json:"appends"`
	Reads           benchOpStats `json:"reads"`
	EventsPerS      float64      `json:"events_per_s"`
	EventsPerAppend int          `json:"events_per_append"`
	EventBytes      int          `json:"event_bytes"`
	FirstError      string       `json:"first_error,omitempty"`
}

type benchOpStats struct {
	OK     int64   `json:"ok"`
	Failed int64   `json:"failed"`
	PerS   float64 `json:"per_s"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// benchSamples counts one kind of operation and keeps up to max of its
// latencies, a uniform sample of all of them (reservoir sampling).
type benchSamples struct {
	max     int
	d       []time.Duration
	ok      int64
	fail    int64
	longest time.Duration // of all, not only the kept
}

func (s *benchSamples) add(d time.Duration, rng *rand.Rand) {
	s.ok++
	s.longest = max(s.longest, d)
	if len(s.d) < s.max {
		s.d = append(s.d, d)
		return
	}
	if i := rng.Int64N(s.ok); i < int64(s.max) {
		s.d[i] = d
	}
}

// merge adds o's counts and samples. Each client keeps the same share of
// its own, so clients that ran more operations are under-represented only
// once they passed their share: at most benchSamplesMax/clients samples
// each, which no run shorter than minutes reaches.
func (s *benchSamples) merge(o *benchSamples) {
	s.d = append(s.d, o.d...)
	s.ok += o.ok
	s.fail += o.fail
	s.longest = max(s.longest, o.longest)
}

func (s *benchSamples) stats(seconds float64) benchOpStats {
	st := benchOpStats{OK: s.ok, Failed: s.fail}
	if seconds > 0 {
		st.PerS = float64(s.ok) / seconds
	}
	if len(s.d) == 0 {
		return st
	}
	slices.Sort(s.d)
	at := func(p float64) float64 {
		i := min(len(s.d)-1, int(p*float64(len(s.d))))
		return float64(s.d[i].Microseconds()) / 1000
	}
	st.P50Ms, st.P90Ms, st.P99Ms, st.MaxMs = at(0.50), at(0.90), at(0.99), float64(s.longest.Microseconds())/1000
	return st
}

func newBenchCmd(r *rootCmd) *cobra.Command {
	var (
		cfg         benchConfig
		consistency string
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load a running deployment with appends (and reads) and report throughput and latency",
		Long: `Runs --clients concurrent clients against --endpoint for --duration. Each
client is its own session (its own token and connections) and appends
--events-per-append events of --size bytes to entities PREFIX0..PREFIX(N-1);
with --read-ratio, that share of operations reads the last --read-last
events of one of them instead. Without --rate every client sends its next
operation as soon as the previous one returns (closed loop); with --rate the
clients together offer that many operations per second (open loop), and the
report says how much of it was achieved. Ctrl-C ends the run early and
still reports. Latencies are client-side, retries included; --timeout
bounds each operation.`,
		Example: `  meridian bench --duration 10s --clients 64
  meridian bench --rate 500 --events-per-append 4 --prefix eu/bench- --json
  meridian bench --read-ratio 0.9 --consistency eventual`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			level, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			if level == meridianv1.Consistency_CONSISTENCY_BOUNDED {
				return usagef("--consistency bounded is not offered by bench (it needs a staleness bound per read); use session, eventual or strong")
			}
			cfg.level = level
			if err := cfg.validate(); err != nil {
				return err
			}
			rep, err := runBench(cmd.Context(), r, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSONValue(r.stdout, rep)
			}
			printBench(r, rep)
			if rep.Appends.OK+rep.Reads.OK == 0 {
				if rep.FirstError == "" {
					return fmt.Errorf("no operation finished within --duration %s", cfg.duration)
				}
				return fmt.Errorf("no operation succeeded: %s", rep.FirstError)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.clients, "clients", 16, "concurrent clients (sessions), 1 to "+strconv.Itoa(benchClientsMax))
	f.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run, up to "+benchDurationMax.String())
	f.Float64Var(&cfg.rate, "rate", 0, "operations per second over all clients (open loop); 0 = as fast as each client can (closed loop)")
	f.IntVar(&cfg.perAppend, "events-per-append", 1, "events in each append, 1 to "+strconv.Itoa(benchPerAppendMx))
	f.IntVar(&cfg.size, "size", 1024, "bytes of data per event, 0 to "+strconv.Itoa(benchSizeMax))
	f.IntVar(&cfg.entities, "entities", 0, "entities to spread the load over; default one per client")
	f.StringVar(&cfg.prefix, "prefix", "bench-", "entity name prefix: its placement decides the home region (for example eu/bench-)")
	f.Float64Var(&cfg.readRatio, "read-ratio", 0, "share of operations that are reads, 0 to 1")
	f.Uint32Var(&cfg.readLast, "read-last", 10, "events each read returns (the last of the stream)")
	f.StringVar(&consistency, "consistency", "session", "read consistency: session, eventual or strong")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func (c *benchConfig) validate() error {
	switch {
	case c.clients < 1 || c.clients > benchClientsMax:
		return usagef("--clients must be 1 to %d, got %d", benchClientsMax, c.clients)
	case c.duration <= 0 || c.duration > benchDurationMax:
		return usagef("--duration must be above 0 and at most %s, got %s", benchDurationMax, c.duration)
	case c.rate < 0:
		return usagef("--rate must be 0 (closed loop) or positive, got %v", c.rate)
	case c.perAppend < 1 || c.perAppend > benchPerAppendMx:
		return usagef("--events-per-append must be 1 to %d, got %d", benchPerAppendMx, c.perAppend)
	case c.size < 0 || c.size > benchSizeMax:
		return usagef("--size must be 0 to %d bytes, got %d", benchSizeMax, c.size)
	case c.entities < 0:
		return usagef("--entities must be positive (or 0 for one per client), got %d", c.entities)
	case c.prefix == "":
		return usagef("--prefix must not be empty")
	case c.readRatio < 0 || c.readRatio > 1:
		return usagef("--read-ratio must be 0 to 1, got %v", c.readRatio)
	case c.readRatio > 0 && c.readLast < 1:
		return usagef("--read-last must be at least 1 when reading")
	}
	if c.entities == 0 {
		c.entities = c.clients
	}
	return nil
}

// runBench runs the load and measures it. Each worker owns a client and
// its own samples; they are merged at the end.
func runBench(ctx context.Context, r *rootCmd, cfg benchConfig) (*benchReport, error) {
	clients := make([]*client.Client, cfg.clients)
	for i := range clients {
		c, err := r.newClient()
		if err != nil {
			for _, o := range clients[:i] {
				o.Close()
			}
			return nil, err
		}
		clients[i] = c
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()

	data := make([]byte, cfg.size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	type result struct {
		appends, reads benchSamples
		firstErr       error
	}
	results := make([]result, cfg.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[w]
			share := max(1024, benchSamplesMax/cfg.clients)
			res.appends.max, res.reads.max = share, share
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			var tick <-chan time.Time
			if cfg.rate > 0 {
				interval := time.Duration(float64(time.Second) * float64(cfg.clients) / cfg.rate)
				// Spread the clients' phases so the load is not offered in bursts.
				select {
				case <-time.After(interval * time.Duration(w) / time.Duration(cfg.clients)):
				case <-runCtx.Done():
					return
				}
				t := time.NewTicker(interval)
				defer t.Stop()
				tick = t.C
			}
			for n := 0; ; n++ {
				if tick != nil {
					select {
					case <-tick:
					case <-runCtx.Done():
						return
					}
				}
				if runCtx.Err() != nil {
					return
				}
				entity := cfg.prefix + strconv.Itoa((w+n*cfg.clients)%cfg.entities)
				read := cfg.readRatio > 0 && rng.Float64() < cfg.readRatio
				opCtx, opCancel := context.WithTimeout(runCtx, r.timeout)
				began := time.Now()
				var err error
				if read {
					_, err = clients[w].Read(opCtx, entity, client.Backward(), client.Limit(cfg.readLast), client.WithConsistency(cfg.level))
				} else {
					events := make([]*meridianv1.ProposedEvent, cfg.perAppend)
					for i := range events {
						events[i] = &meridianv1.ProposedEvent{Type: "BenchEvent", Data: data, ContentType: "application/octet-stream"}
					}
					_, err = clients[w].Append(opCtx, entity, events)
				}
				took := time.Since(began)
				opCancel()
				samples := &res.appends
				if read {
					samples = &res.reads
				}
				switch {
				case err == nil:
					samples.add(took, rng)
				case runCtx.Err() != nil && (errors.Is(err, runCtx.Err()) || connect.CodeOf(err) == connect.CodeDeadlineExceeded || connect.CodeOf(err) == connect.CodeCanceled):
					// Cut off by the end of the run: neither a success nor a
					// failure. The run's deadline travels with the call, so
					// the server may be the one that reports it.
				default:
					samples.fail++
					if res.firstErr == nil {
						res.firstErr = err
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()

	var appends, reads benchSamples
	var firstErr error
	for i := range results {
		appends.merge(&results[i].appends)
		reads.merge(&results[i].reads)
		if firstErr == nil {
			firstErr = results[i].firstErr
		}
	}
	rep := &benchReport{
		Clients: cfg.clients, Seconds: elapsed, OfferedOpsPerS: cfg.rate,
		Appends: appends.stats(elapsed), Reads: reads.stats(elapsed),
		EventsPerAppend: cfg.perAppend, EventBytes: cfg.size,
	}
	rep.EventsPerS = rep.Appends.PerS * float64(cfg.perAppend)
	if firstErr != nil {
		rep.FirstError = firstErr.Error()
	}
	return rep, nil
}

func printJSONValue(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func printBench(r *rootCmd, rep *benchReport) {
	w := r.stdout
	mode := "closed loop"
	if rep.OfferedOpsPerS > 0 {
		mode = fmt.Sprintf("open loop, offered %.0f ops/s", rep.OfferedOpsPerS)
	}
	fmt.Fprintf(w, "%d clients, %.1fs, %s; %d events of %d bytes per append\n", rep.Clients, rep.Seconds, mode, rep.EventsPerAppend, rep.EventBytes)
	line := func(name string, s benchOpStats) {
		if s.OK+s.Failed == 0 {
			return
		}
		fmt.Fprintf(w, "%-8s %8d ok %6d failed %10.1f/s   p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n",
			name, s.OK, s.Failed, s.PerS, s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs)
	}
	line("appends", rep.Appends)
	line("reads", rep.Reads)
	fmt.Fprintf(w, "events   %10.1f/s appended\n", rep.EventsPerS)
	if rep.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", rep.FirstError)
	}
}
