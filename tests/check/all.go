package check

import "github.com/meridiandb/meridian/tests/history"

// All resolves unknown outcomes from the replicas' final streams, then runs
// every checker on the resolved history. The first report is the
// resolution's. A run passes when every report is OK.
func All(h history.History, replicas Replicas, opts LinOptions) (history.History, []Report) {
	resolved, res := ResolveUnknown(h, replicas)
	return resolved, []Report{
		res,
		Linearizability(resolved, opts),
		NoLostWrites(resolved, replicas),
		Convergence(replicas),
		Idempotency(resolved, replicas),
		Sessions(resolved, replicas),
		Subscriptions(resolved, replicas),
	}
}

// Failed returns the reports that found violations.
func Failed(reports []Report) []Report {
	var out []Report
	for _, r := range reports {
		if !r.OK() {
			out = append(out, r)
		}
	}
	return out
}
