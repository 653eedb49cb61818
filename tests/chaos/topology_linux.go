package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Subnet is the address range of the test hosts. It exists only inside the
// namespaces this package creates (see the package comment).
const (
	subnetPrefix = "10.213.7."
	hubAddr      = subnetPrefix + "254"
	maskBits     = "/24"
)

// Host is one test host: a network namespace with one address.
type Host struct {
	Name string // short name, for example "n1"
	NS   string // namespace name
	Addr string // IPv4 address on the test subnet
	veth string // interface name inside NS; its bridge end is veth+"h"
}

// Topology is a set of hosts on one bridge.
type Topology struct {
	Prefix string
	Hosts  []Host
	hubNS  string
}

// Requirements returns an error naming every missing prerequisite.
func Requirements() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces and iptables need it)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" (apt-get install iproute2 iptables)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("chaos suite cannot run: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

func run(args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Setup creates a hub namespace with a bridge and n host namespaces named
// prefix+"-n1".. prefix+"-nN". Leftovers of an earlier run with the same
// prefix are removed first. prefix is at most 8 characters, so that interface
// names fit the kernel's 15.
func Setup(prefix string, n int) (*Topology, error) {
	if len(prefix) > 8 {
		return nil, fmt.Errorf("chaos: prefix %q longer than 8 characters", prefix)
	}
	if n < 1 || n > 200 {
		return nil, fmt.Errorf("chaos: %d hosts, want 1 to 200", n)
	}
	_ = Teardown(prefix)
	t := &Topology{Prefix: prefix, hubNS: prefix + "-hub"}
	steps := [][]string{
		{"ip", "netns", "add", t.hubNS},
		{"ip", "-n", t.hubNS, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", t.hubNS, "addr", "add", hubAddr + maskBits, "dev", "br0"},
		{"ip", "-n", t.hubNS, "link", "set", "br0", "up"},
		{"ip", "-n", t.hubNS, "link", "set", "lo", "up"},
	}
	for i := 1; i <= n; i++ {
		h := Host{
			Name: fmt.Sprintf("n%d", i),
			NS:   fmt.Sprintf("%s-n%d", prefix, i),
			Addr: fmt.Sprintf("%s%d", subnetPrefix, i),
			veth: fmt.Sprintf("%s%d", prefix, i),
		}
		t.Hosts = append(t.Hosts, h)
		steps = append(steps,
			[]string{"ip", "netns", "add", h.NS},
			[]string{"ip", "-n", h.NS, "link", "add", h.veth, "type", "veth", "peer", "name", h.veth + "h", "netns", t.hubNS},
			[]string{"ip", "-n", t.hubNS, "link", "set", h.veth + "h", "master", "br0"},
			[]string{"ip", "-n", t.hubNS, "link", "set", h.veth + "h", "up"},
			[]string{"ip", "-n", h.NS, "addr", "add", h.Addr + maskBits, "dev", h.veth},
			[]string{"ip", "-n", h.NS, "link", "set", h.veth, "up"},
			[]string{"ip", "-n", h.NS, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			_ = Teardown(prefix)
			return nil, fmt.Errorf("chaos: set up namespaces: %w", err)
		}
	}
	return t, nil
}

// Namespaces lists the namespaces whose names start with prefix+"-".
func Namespaces(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("chaos: ip netns list: %w", err)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, prefix+"-") {
			found = append(found, name)
		}
	}
	return found, nil
}

// Teardown kills every process left in the prefix's namespaces (only
// processes this suite started run there) and deletes the namespaces, which
// removes their interfaces and iptables rules with them.
func Teardown(prefix string) error {
	nss, err := Namespaces(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range nss {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 && pid != os.Getpid() {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		if err := run("ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Teardown removes this topology.
func (t *Topology) Teardown() error { return Teardown(t.Prefix) }

// Command returns a command that runs inside host h's namespace. ip netns
// exec execs the program in place, so the command's PID is the program's.
func (t *Topology) Command(h Host, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// DialContext dials from inside the hub namespace. It never dials from the
// namespace the test runs in: if entering the hub fails, it fails.
func (t *Topology) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This goroutine's thread switches namespace; it is locked and never
		// unlocked, so the runtime discards the thread when the goroutine ends
		// instead of reusing a thread in a foreign namespace.
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+t.hubNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{nil, fmt.Errorf("chaos: open hub namespace: %w", err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("chaos: enter hub namespace: %w", err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (t *Topology) iptables(h Host, args ...string) error {
	return run(append([]string{"ip", "netns", "exec", h.NS, "iptables"}, args...)...)
}

// Cut drops all packets between a and b, both ways.
func (t *Topology) Cut(a, b Host) error {
	return errors.Join(t.CutOneWay(a, b), t.CutOneWay(b, a))
}

// CutOneWay drops the packets that from sends to to; to's packets still reach
// from. For TCP this stalls a connection in both directions after at most one
// round trip (acknowledgements are lost), so new connections from either side
// fail while old ones time out: what a one-way loss does to real TCP.
func (t *Topology) CutOneWay(from, to Host) error {
	return t.iptables(to, "-A", "INPUT", "-s", from.Addr, "-j", "DROP")
}

// Isolate cuts h from every other host, the hub (clients) excepted.
func (t *Topology) Isolate(h Host) error {
	var errs []error
	for _, o := range t.Hosts {
		if o.NS != h.NS {
			errs = append(errs, t.Cut(h, o))
		}
	}
	return errors.Join(errs...)
}

// Heal removes every partition.
func (t *Topology) Heal() error {
	var errs []error
	for _, h := range t.Hosts {
		errs = append(errs, t.iptables(h, "-F", "INPUT"))
	}
	return errors.Join(errs...)
}

// Rules returns the number of iptables rules installed in all hosts.
func (t *Topology) Rules() (int, error) {
	n := 0
	for _, h := range t.Hosts {
		out, err := exec.Command("ip", "netns", "exec", h.NS, "iptables", "-S").Output()
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "-A ") {
				n++
			}
		}
	}
	return n, nil
}

// Processes returns the PIDs of running processes whose executable is bin,
// read from /proc (no procps needed). An error means the check could not be
// made, never that nothing runs.
func Processes(bin string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("chaos: list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process directory
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue // the process ended meanwhile
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if string(argv0) == bin {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
