//go:build console

// The console test drives headless Chromium, which a fresh machine does
// not have: it runs with -tags console (make console-test, in .ci/run after
// installing chromium), not in the default suite.

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds a Chromium to drive; the console test fails (loudly)
// without one: .ci/run installs Debian's chromium package.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MERIDIAN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found (chromium, chromium-browser, google-chrome or MERIDIAN_CHROMIUM): install it with `apt-get install chromium`, as .ci/run does")
	return ""
}

// artifactDir is where the console test writes its screenshots:
// MERIDIAN_TEST_ARTIFACTS, else a temporary directory (logged).
func artifactDir(t *testing.T) string {
	dir := os.Getenv("MERIDIAN_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "console")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	t.Logf("screenshots in %s", dir)
	return dir
}

// TestConsoleInHeadlessChromium opens the console of a 3-region `meridian
// dev` in headless Chromium and checks the rendered pages: three regions
// reachable, a lag chart with a series per other origin, an appended
// event on the Streams page, the rules and the nodes; then cuts ap-south
// off (dev's SIGUSR1) and checks the Regions page shows it unreachable
// within 5 s. Any JavaScript exception or console error fails the test.
func TestConsoleInHeadlessChromium(t *testing.T) {
	chrome := chromiumPath(t)
	bin := buildBinary(t)
	d := startDevBinary(t, bin)
	banner := d.proc.out.String()
	creds := regexp.MustCompile(`(?m)^  export MERIDIAN_TLS_CA=(\S+) MERIDIAN_AUTH_TOKEN=(\S+) `).FindStringSubmatch(banner)
	require.Len(t, creds, 3, banner)
	t.Setenv("MERIDIAN_TLS_CA", creds[1])
	t.Setenv("MERIDIAN_AUTH_TOKEN", creds[2])
	us := fmt.Sprintf("https://127.0.0.1:%d", d.apiPort)
	code, out, errOut := runBin(t, bin, "append", "eu/console-1", "--type", "OrderPlaced", "--data", `{"total":42}`, "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "appended eu/console-1 v1")
	shots := artifactDir(t)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1280, 900))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelRun()
	var mu sync.Mutex
	var jsErrors []string
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			jsErrors = append(jsErrors, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, desc))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				jsErrors = append(jsErrors, "console.error: "+strings.Join(args, " "))
			}
		}
	}))
	checkJS := func(step string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		require.Empty(t, jsErrors, "JavaScript errors by %s", step)
	}
	// eval polls js (an expression) until it is true, within d.
	eval := func(what, js string, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			if err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				html, _ := chromedp.Run(ctx, chromedp.OuterHTML("main"))
				t.Fatalf("%s: not true within %s (err %v): %s\npage:\n%s", what, d, err, js, html)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644))
	}

	// Regions: three rows, all reachable, answered by a named node; a lag
	// chart per region, with a series per other origin.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(us+"/ui/#/regions?token="+creds[2])))
	eval("three regions listed and reachable", `document.querySelectorAll('#regions-table tbody tr').length === 3 &&
		[...document.querySelectorAll('#regions-table [data-reachability]')].every(td => td.dataset.reachability === 'reachable')`, 30*time.Second)
	eval("a lag chart per region with a series per other origin", `[...document.querySelectorAll('svg.lag-chart')].length === 3 &&
		[...document.querySelectorAll('svg.lag-chart')].every(s => s.querySelectorAll('polyline.series').length === 2)`, 30*time.Second)
	eval("the token left the address bar", `!location.hash.includes('token=')`, time.Second)
	eval("the footer names the answering node", `/answered by us-east\/n1 at/.test(document.getElementById('freshness').textContent)`, 5*time.Second)
	shot("regions")
	checkJS("the Regions page")

	// Streams: the appended event, with its dot.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(us+"/ui/#/streams?entity=eu/console-1")))
	eval("the appended event listed", `[...document.querySelectorAll('#events-table tr.event')].some(tr => tr.textContent.includes('OrderPlaced') && tr.textContent.includes('{"total":42}') && tr.textContent.includes('eu-west/'))`, 20*time.Second)
	eval("which node served the read", `/served by us-east\/n1/.test(document.getElementById('stream-note').textContent)`, 5*time.Second)
	// Followed live, a new event shows up without a reload.
	eval("follow turned on", `(document.getElementById('stream-follow').click(), document.getElementById('stream-follow').checked)`, time.Second)
	code, _, errOut = runBin(t, bin, "append", "eu/console-1", "--type", "OrderPaid", "--data", `{"paid":true}`, "--endpoint", us)
	require.Equal(t, 0, code, errOut)
	eval("the new event followed live", `[...document.querySelectorAll('#events-table tr.event')].some(tr => tr.dataset.version === '2' && tr.textContent.includes('OrderPaid'))`, 10*time.Second)
	shot("streams")
	checkJS("the Streams page")

	// Placement: the rules; Nodes: every node answering.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(us+"/ui/#/placement")))
	eval("the rules listed", `[...document.querySelectorAll('#rules-table td')].some(td => td.textContent === 'eu/')`, 20*time.Second)
	shot("placement")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(us+"/ui/#/nodes")))
	eval("three nodes answering, with their versions", `document.querySelectorAll('#nodes-table tbody tr.up').length === 3 &&
		[...document.querySelectorAll('#nodes-table tbody tr.up')].every(tr => /go1\.\d+/.test(tr.textContent) && /Leader|Follower/.test(tr.textContent))`, 20*time.Second)
	shot("nodes")
	checkJS("the Placement and Nodes pages")

	// Cut ap-south off: the open Regions page shows it within 5 s.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(us+"/ui/#/regions")))
	eval("three regions reachable before the cut", `[...document.querySelectorAll('#regions-table [data-reachability]')].filter(td => td.dataset.reachability === 'reachable').length === 3`, 30*time.Second)
	require.NoError(t, d.proc.cmd.Process.Signal(syscall.SIGUSR1))
	cut := time.Now()
	eval("ap-south shown unreachable", `document.querySelector('#regions-table tr[data-region="ap-south"] [data-reachability]').dataset.reachability === 'unreachable'`, 5*time.Second)
	t.Logf("ap-south shown unreachable %s after the cut", time.Since(cut).Round(10*time.Millisecond))
	shot("regions-cut")
	require.NoError(t, d.proc.cmd.Process.Signal(syscall.SIGUSR1)) // heal
	eval("ap-south reachable again", `document.querySelector('#regions-table tr[data-region="ap-south"] [data-reachability]').dataset.reachability === 'reachable'`, 30*time.Second)
	checkJS("the cut")
}
