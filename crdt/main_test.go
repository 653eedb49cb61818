package crdt

import (
	"flag"
	"os"
	"testing"
)

// propertyChecks is how many cases each rapid property generates in a plain
// `go test` (rapid's own default is 100). -rapid.checks=N or RAPID_CHECKS=N
// override it; -rapid.seed=S or RAPID_SEED=S replays a failing seed, which
// rapid prints on failure.
const propertyChecks = "10000"

func TestMain(m *testing.M) {
	flag.Parse()
	setByUser := false
	flag.Visit(func(f *flag.Flag) { setByUser = setByUser || f.Name == "rapid.checks" })
	if _, ok := os.LookupEnv("RAPID_CHECKS"); !ok && !setByUser {
		if err := flag.Set("rapid.checks", propertyChecks); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
