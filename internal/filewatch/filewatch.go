// Package filewatch reloads files a node reads at run time (TLS material,
// token files) when they change on disk. It polls their sizes and
// modification times instead of subscribing to file events: editors and
// configuration managers replace files in ways (rename over, truncate and
// write) that event watches miss or report half done, and a poll every few
// seconds costs nothing.
package filewatch

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Stamp returns the sizes and modification times of paths as one string:
// it changes when any of the files does.
func Stamp(paths ...string) (string, error) {
	var b strings.Builder
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

// Poll calls reload every interval in which Stamp(paths) differs from
// current() (the stamp of what is loaded), until ctx ends, and reports
// each reload's outcome. A reload that failed is not retried until the
// files change again.
func Poll(ctx context.Context, interval time.Duration, paths []string, current func() string, reload func() error, report func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failed := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s, err := Stamp(paths...)
		if err != nil || s == current() || s == failed {
			continue
		}
		err = reload()
		if err != nil {
			failed = s
		} else {
			failed = ""
		}
		report(err)
	}
}
