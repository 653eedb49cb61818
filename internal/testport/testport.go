// Package testport hands out loopback addresses for the in-process test
// deployments (tests/cluster, tests/multiregion), whose nodes keep their
// addresses across restarts.
//
// A port taken with Listen("127.0.0.1:0") comes from the kernel's ephemeral
// range, the same range every outgoing connection's local port comes from.
// While a node is down, any connection on the machine (another test binary
// of the same `go test ./...` run, say) may be given its port, and the
// restart then fails with "address already in use". Ports below the
// ephemeral range are never given out that way, so Addr takes its ports
// from there.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

const (
	// lowest is the first port Addr considers: above the ports of common
	// local services.
	lowest = 10000
	// ephemeralDefault is Linux's default ip_local_port_range start, used
	// when the file cannot be read.
	ephemeralDefault = 32768
	// tries bounds the ports probed per call.
	tries = 1000
)

var (
	mu     sync.Mutex
	handed = map[int]bool{} // ports this process gave out: never twice
)

// Addr returns "127.0.0.1:<port>" for a port that is free now, below the
// kernel's ephemeral range and not handed out before by this process.
// Another process may still take it (with Addr too, or by binding it on
// purpose); the probability is that of two random picks among about 20,000
// ports meeting.
func Addr() (string, error) {
	high := ephemeralStart()
	if high-lowest < 1000 {
		return "", fmt.Errorf("testport: the ephemeral port range starts at %d, leaving fewer than 1000 ports above %d", high, lowest)
	}
	return addrIn(lowest, high)
}

// addrIn is Addr over the ports [low, high).
func addrIn(low, high int) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	for range tries {
		p := low + rand.IntN(high-low)
		if handed[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // in use
		}
		if err := ln.Close(); err != nil {
			return "", err
		}
		handed[p] = true
		return ln.Addr().String(), nil
	}
	return "", fmt.Errorf("testport: no free port among %d tried in [%d, %d)", tries, low, high)
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return ephemeralDefault
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return ephemeralDefault
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return ephemeralDefault
	}
	return n
}
