package client

import (
	"errors"
	"fmt"
	"sync"

	"connectrpc.com/connect"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
)

// Limits of redirect following.
const (
	// redirectsMax bounds the redirects one call follows. One is the normal
	// case; a second happens when placement moved the entity while the
	// call travelled. The server bounds its own hops the same way.
	redirectsMax = 3
	// homeEndpointsCachedMax bounds the endpoints learnt from redirects whose
	// stubs the client keeps; past it, stubs are built per redirect.
	homeEndpointsCachedMax = 256
)

// HomeRedirectOf returns the HomeRedirect detail of err: the answer of a
// node that is not the entity's home region to a Direct append or to a
// Subscribe, naming the home region, the placement epoch and the home's
// API endpoints (host:port). ok is false when err carries no such detail.
func HomeRedirectOf(err error) (*meridianv1.HomeRedirect, bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil, false
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if hr, ok := v.(*meridianv1.HomeRedirect); ok {
			return hr, true
		}
	}
	return nil, false
}

// homeSet returns the endpoints of a redirect's home, in the order the
// redirecting node gave them. It fails when the redirect names none.
func (c *Client) homeSet(hr *meridianv1.HomeRedirect) (*endpointSet, error) {
	addrs := hr.GetEndpoints()
	if len(addrs) > endpointsMax {
		addrs = addrs[:endpointsMax]
	}
	set := &endpointSet{}
	for _, a := range addrs {
		base, err := c.normalizeEndpoint(a)
		if err != nil {
			continue
		}
		set.eps = append(set.eps, c.homes.get(base, c.dial))
	}
	if len(set.eps) == 0 {
		return nil, fmt.Errorf("client: redirect to region %q names no usable endpoint (%q)", hr.GetHomeRegion(), hr.GetEndpoints())
	}
	return set, nil
}

// endpointCache keeps the stubs of endpoints learnt from redirects, so
// that following the same home again reuses its connections.
type endpointCache struct {
	mu  sync.Mutex
	eps map[string]*endpoint
}

func (c *endpointCache) get(base string, dial func(string) *endpoint) *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep, ok := c.eps[base]; ok {
		return ep
	}
	ep := dial(base)
	if c.eps == nil {
		c.eps = map[string]*endpoint{}
	}
	if len(c.eps) < homeEndpointsCachedMax {
		c.eps[base] = ep
	}
	return ep
}
