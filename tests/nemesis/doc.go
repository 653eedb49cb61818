// Package nemesis plans and applies faults: seeded, reproducible schedules
// (data: timed steps) and a Runner that applies them to any Cluster
// (the in-process cluster on faultnet, or the multi-process chaos suite).
//
// Schedule kinds (Kinds): leader-kill, partition-minority, partition-leader
// (the leader on the minority side), partition-majority (no side keeps a
// majority: no quorum anywhere), one-way (leader -> one follower cut, the
// follower still reaches the leader), pause, rolling-restart, clock-skew and
// combined (two faults overlapping). Roles (@leader, @follower, @any, @rest)
// are resolved when a step runs, so a schedule stays meaningful whoever
// leads.
//
// Guarantees:
//   - the same kind, seed, node set (in any order) and duration always give
//     the same schedule, and different seeds give different ones
//     (TestGenerateIsDeterministicPerSeed);
//   - every schedule starts faults only after a warm-up (15% of the run),
//     keeps at most one node killed at a time, undoes every kill and pause,
//     and is fully healed by 80% of the run, leaving time to recover and
//     make the final write (TestSchedulesAreWellFormed);
//   - the Runner resolves roles against the cluster's current leader and
//     remembers what it broke, and Recover undoes it
//     (TestRunnerResolvesTargets, TestRunnerRunsAGeneratedSchedule);
//   - OnFailure prints the seed, the schedule, what was applied and the
//     replay command (MERIDIAN_NEMESIS_SEED / MERIDIAN_NEMESIS_SCHEDULE)
//     when a test fails (TestReplayCommand).
//
// It does not judge the run: histories are checked by package check, and
// the run's validity rules (throughput before the first fault, a fault was
// injected, a final write after heal) belong to the test that drives it.
package nemesis
