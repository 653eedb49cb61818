package faultnet

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Profile is a named latency topology: one-way delays between regions, plus
// a delay inside a region. Hosts are grouped into regions by RegionOf.
// Explicit SetLatency on a link overrides the profile for that link.
type Profile struct {
	// Name identifies the profile in logs and replay commands ("wan3").
	Name string
	// RegionOf maps a host name to its region. Nil means RegionFromHost.
	RegionOf func(host string) string
	// OneWay holds the one-way delay between two distinct regions; the key is
	// the pair in either order (lookups try both).
	OneWay map[[2]string]time.Duration
	// Intra is the one-way delay between two hosts of the same region.
	Intra time.Duration
	// JitterFraction is the jitter added to every delay, as a fraction of it
	// (0.1 = up to +10%), drawn uniformly per write chunk.
	JitterFraction float64
}

// RegionFromHost is the default grouping: the host name up to its last '-'
// ("us-1" -> "us", "eu-west-2" -> "eu-west"); a name without '-' is its own
// region.
func RegionFromHost(host string) string {
	if i := strings.LastIndexByte(host, '-'); i > 0 {
		return host[:i]
	}
	return host
}

// region returns the region of host under p.
func (p *Profile) region(host string) string {
	if p.RegionOf != nil {
		return p.RegionOf(host)
	}
	return RegionFromHost(host)
}

// delay returns the one-way base delay and jitter from host a to host b.
func (p *Profile) delay(a, b string) (time.Duration, time.Duration) {
	ra, rb := p.region(a), p.region(b)
	d := p.Intra
	if ra != rb {
		if v, ok := p.OneWay[[2]string{ra, rb}]; ok {
			d = v
		} else if v, ok := p.OneWay[[2]string{rb, ra}]; ok {
			d = v
		}
	}
	return d, time.Duration(float64(d) * p.JitterFraction)
}

// Named profile delays. WAN3 is three regions with realistic one-way delays
// (roughly us-east/eu-west, us-east/ap-south, eu-west/ap-south).
const (
	wan3AB = 35 * time.Millisecond
	wan3AC = 75 * time.Millisecond
	wan3BC = 110 * time.Millisecond
	// lanIntra is the one-way delay between hosts of one region in WAN
	// profiles: a datacenter round trip is about half a millisecond.
	lanIntra = 250 * time.Microsecond
	// wanJitter is the jitter fraction of the WAN profiles.
	wanJitter = 0.1
)

// WAN3 returns the "wan3" profile: a<->b 35 ms, a<->c 75 ms, b<->c 110 ms one
// way, 0.25 ms inside a region, 10% jitter.
func WAN3(a, b, c string) Profile {
	return Profile{
		Name: "wan3",
		OneWay: map[[2]string]time.Duration{
			{a, b}: wan3AB,
			{a, c}: wan3AC,
			{b, c}: wan3BC,
		},
		Intra:          lanIntra,
		JitterFraction: wanJitter,
	}
}

// LAN returns the "lan" profile: every host 0.25 ms from every other, 10%
// jitter.
func LAN() Profile {
	return Profile{Name: "lan", Intra: lanIntra, OneWay: map[[2]string]time.Duration{}, JitterFraction: wanJitter}
}

// ProfileByName returns a named profile over the given regions: "none" (no
// delay), "lan", "wan3" (needs 3 regions, in the order a, b, c of WAN3).
func ProfileByName(name string, regions ...string) (Profile, error) {
	switch name {
	case "none", "":
		return Profile{Name: "none"}, nil
	case "lan":
		return LAN(), nil
	case "wan3":
		if len(regions) != 3 {
			return Profile{}, fmt.Errorf("faultnet: profile wan3 needs 3 regions, got %d", len(regions))
		}
		return WAN3(regions[0], regions[1], regions[2]), nil
	}
	return Profile{}, fmt.Errorf("faultnet: unknown profile %q (known: %s)", name, strings.Join(ProfileNames(), ", "))
}

// ProfileNames lists the names ProfileByName accepts.
func ProfileNames() []string {
	n := []string{"none", "lan", "wan3"}
	sort.Strings(n)
	return n
}
