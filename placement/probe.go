package placement

import (
	"context"
	"sort"
	"sync"
	"time"
)

// prober remembers when this node last reached each region and which of a
// region's endpoints answered, for ListRegions and for routing order.
type prober struct {
	mu       sync.Mutex
	regions  map[string]time.Time
	answered map[string]time.Time // by endpoint
}

func newProber() *prober {
	return &prober{regions: map[string]time.Time{}, answered: map[string]time.Time{}}
}

func (p *prober) record(region, addr string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.regions[region] = at
	p.answered[addr] = at
}

func (p *prober) lastReached(region string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.regions[region]
	return t, ok
}

// order sorts addrs so that those that answered most recently come first
// (stable: the directory's order otherwise).
func (p *prober) order(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sort.SliceStable(addrs, func(i, j int) bool { return p.answered[addrs[i]].After(p.answered[addrs[j]]) })
}

// runProbe calls MemberStats on one node of every other region every
// ProbeInterval (the first endpoint that answers), so ListRegions can say
// which regions this node reaches.
func (n *Node) runProbe() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ProbeInterval)
	defer t.Stop()
	for {
		byRegion := map[string][]string{}
		for _, m := range n.fsm.Members() {
			if m.GetRegion() != n.cfg.Region {
				byRegion[m.GetRegion()] = append(byRegion[m.GetRegion()], m.GetApiAddress())
			}
		}
		var wg sync.WaitGroup
		for region, addrs := range byRegion {
			n.probe.order(addrs)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, addr := range addrs {
					ctx, cancel := context.WithTimeout(n.ctx, n.cfg.CallTimeout)
					_, err := n.peers.stats(ctx, addr)
					cancel()
					if err == nil {
						n.probe.record(region, addr, time.Now())
						return
					}
				}
			}()
		}
		wg.Wait()
		select {
		case <-n.closing:
			return
		case <-t.C:
		}
	}
}
