package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	meridianv1 "github.com/meridiandb/meridian/api/meridian/v1"
	"github.com/meridiandb/meridian/api/meridian/v1/meridianv1connect"
	"github.com/meridiandb/meridian/client"
	"github.com/meridiandb/meridian/internal/nodetls"
	"github.com/meridiandb/meridian/region"
)

const testCertValidity = time.Hour

// testCA is a deployment's throwaway CA; its files are in dir.
type testCA struct {
	ca  *nodetls.CA
	dir string
}

func newTestCA(t *testing.T, deployment string) *testCA {
	t.Helper()
	ca, err := nodetls.NewCA(deployment, testCertValidity)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, ca.WriteCA(dir))
	return &testCA{ca: ca, dir: dir}
}

// credentials issues and loads a certificate for id, in a directory of its own.
func (c *testCA) credentials(t *testing.T, id nodetls.Identity) *nodetls.Credentials {
	t.Helper()
	f, err := c.ca.IssueFiles(id, []string{"127.0.0.1", "localhost"}, testCertValidity, t.TempDir(), "node")
	require.NoError(t, err)
	cr, err := nodetls.Load(f)
	require.NoError(t, err)
	return cr
}

func (c *testCA) clientTLS() *tls.Config { return c.ca.ClientConfig() }

// tlsNode starts a node with TLS, gossip and a placement member.
func tlsNode(t *testing.T, ca *testCA, deployment, regionName, id string, bootstrap bool, join []string) *Node {
	t.Helper()
	cfg := Config{
		Region: regionName, NodeID: id, Bootstrap: bootstrap, Join: join,
		PlacementRaftAddr: "127.0.0.1:0", PlacementBootstrap: bootstrap && len(join) == 0,
		GossipWANAddr: "127.0.0.1:0",
		TLS:           ca.credentials(t, nodetls.Identity{Deployment: deployment, Region: regionName, Node: id}),
	}
	return startGossipNode(t, cfg)
}

// TestDeploymentOverTLS runs two regions with TLS on every port: region a
// of three nodes (Raft, joins, autopilot's status calls, forwarding from a
// follower), region b of one (placement join, forwarding to the home
// region, replication back). A client through a follower of a appends, and
// b serves the event from its own replica. A plaintext client and a client
// that does not trust the CA are refused.
func TestDeploymentOverTLS(t *testing.T) {
	ca := newTestCA(t, "prod")
	a1 := tlsNode(t, ca, "prod", "a", "n1", true, nil)
	require.Eventually(t, a1.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	a2 := tlsNode(t, ca, "prod", "a", "n2", false, []string{a1.Addr()})
	a3 := tlsNode(t, ca, "prod", "a", "n3", false, []string{a1.Addr()})
	b1 := tlsNode(t, ca, "prod", "b", "n1", true, []string{a1.Addr()})
	require.Eventually(t, func() bool {
		voters, _ := suffrages(a1)
		return len(voters) == 3
	}, 30*time.Second, 50*time.Millisecond, "a/n2 and a/n3 never became voters over TLS")
	require.Eventually(t, func() bool { return len(b1.Placement().FSM().Regions()) == 2 }, 30*time.Second, 50*time.Millisecond,
		"region b never joined the placement group over TLS")

	follower := a2
	if follower.Region().IsLeader() {
		follower = a3
	}
	assert.Regexp(t, `^https://`, follower.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := client.New([]string{follower.Addr()}, client.WithTLS(ca.clientTLS()))
	require.NoError(t, err)
	defer c.Close()
	ar, err := c.Append(ctx, "tls-1", []*meridianv1.ProposedEvent{{Type: "Created"}})
	require.NoError(t, err)
	assert.EqualValues(t, 1, ar.GetLastVersion())

	// Region b reads its own replica with the append's session token.
	bc, err := client.New([]string{b1.URL()}, client.WithTLS(ca.clientTLS()), client.WithSessionToken(c.SessionToken()))
	require.NoError(t, err)
	defer bc.Close()
	rr, err := bc.Read(ctx, "tls-1")
	require.NoError(t, err)
	require.Len(t, rr.GetEvents(), 1)

	t.Run("plaintext client refused", func(t *testing.T) {
		pc := meridianv1connect.NewEventStoreClient(http.DefaultClient, "http://"+a1.Addr())
		_, err := pc.Status(ctx, connect.NewRequest(&meridianv1.StatusRequest{}))
		require.Error(t, err)
	})
	t.Run("client that does not trust the CA refused", func(t *testing.T) {
		other := newTestCA(t, "prod")
		oc, err := client.New([]string{a1.Addr()}, client.WithTLS(other.clientTLS()), client.WithRetryPolicy(client.RetryPolicy{
			MaxAttempts: 1, MaxElapsed: 5 * time.Second, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, AttemptTimeout: 5 * time.Second,
		}))
		require.NoError(t, err)
		defer oc.Close()
		_, err = oc.Append(ctx, "tls-2", []*meridianv1.ProposedEvent{{Type: "Created"}})
		require.ErrorContains(t, err, "certificate")
	})
}

// TestStrangerNeverJoins: a node whose certificate the deployment's CA
// signed for another deployment, and a node of another CA, join through a
// node of the deployment and are never admitted to the placement group.
func TestStrangerNeverJoins(t *testing.T) {
	ca := newTestCA(t, "prod")
	a1 := tlsNode(t, ca, "prod", "a", "n1", true, nil)
	require.Eventually(t, a1.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	// A control: a member of the deployment joins.
	b1 := tlsNode(t, ca, "prod", "b", "n1", true, []string{a1.Addr()})
	require.Eventually(t, func() bool { return len(a1.Placement().FSM().Regions()) == 2 }, 30*time.Second, 50*time.Millisecond)
	_ = b1
	// Strangers start (their joins retry in the background) ...
	tlsNode(t, ca, "staging", "c", "n1", true, []string{a1.Addr()})
	tlsNode(t, newTestCA(t, "prod"), "prod", "d", "n1", true, []string{a1.Addr()})
	// ... and a third member of the deployment joins after them: once it
	// is in, the strangers have had as long as it needed.
	e1 := tlsNode(t, ca, "prod", "e", "n1", true, []string{a1.Addr()})
	require.Eventually(t, func() bool { return len(e1.Placement().FSM().Regions()) == 3 }, 30*time.Second, 50*time.Millisecond)
	assert.ElementsMatch(t, []string{"a", "b", "e"}, a1.Placement().FSM().Regions())
}

// TestCertificateRotationWhileAppending: every node of a region gets a new
// certificate, from a new CA after both CAs are trusted, while appends run
// through a follower (forwarded to the leader, replicated over Raft). No
// append fails and the stream ends with every acknowledged event.
func TestCertificateRotationWhileAppending(t *testing.T) {
	ca1 := newTestCA(t, "prod")
	ca2 := newTestCA(t, "prod")
	type member struct {
		nd  *Node
		dir string
	}
	var members []member
	for i, id := range []string{"n1", "n2", "n3"} {
		dir := t.TempDir()
		is, err := ca1.ca.Issue(nodetls.Identity{Deployment: "prod", Region: "a", Node: id}, []string{"127.0.0.1"}, testCertValidity)
		require.NoError(t, err)
		f, err := is.Write(dir, "node")
		require.NoError(t, err)
		require.NoError(t, writeBundle(f.CA, ca1, ca2)) // step 1: trust both CAs
		cr, err := nodetls.Load(f)
		require.NoError(t, err)
		var join []string
		if i > 0 {
			join = []string{members[0].nd.Addr()}
		}
		nd := startGossipNode(t, Config{Region: "a", NodeID: id, Bootstrap: i == 0, Join: join, TLS: cr})
		if i == 0 {
			require.Eventually(t, nd.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
		}
		members = append(members, member{nd, dir})
	}
	require.Eventually(t, func() bool {
		voters, _ := suffrages(members[0].nd)
		return len(voters) == 3
	}, 30*time.Second, 50*time.Millisecond)
	follower := followerOf(t, []*Node{members[0].nd, members[1].nd, members[2].nd})

	pool := x509.NewCertPool()
	pool.AddCert(ca1.ca.Cert)
	pool.AddCert(ca2.ca.Cert)
	c, err := client.New([]string{follower.Addr()}, client.WithTLS(&tls.Config{RootCAs: pool}))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var acked atomic.Int64
	var failed error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Append(ctx, "rotating", []*meridianv1.ProposedEvent{{Type: "Tick"}}); err != nil {
				failed = err
				return
			}
			acked.Add(1)
		}
	})
	waitAcks := func(n int64) {
		t.Helper()
		target := acked.Load() + n
		require.Eventually(t, func() bool { return acked.Load() >= target || failed != nil }, 30*time.Second, 10*time.Millisecond)
	}
	waitAcks(20)
	// Step 2: each node a certificate of the new CA, reloaded one by one;
	// the Raft connections already open keep their session, new ones
	// (forwarding, a reconnect) handshake with the new certificate.
	for _, m := range members {
		is, err := ca2.ca.Issue(nodetls.Identity{Deployment: "prod", Region: "a", Node: m.nd.cfg.NodeID}, []string{"127.0.0.1"}, testCertValidity)
		require.NoError(t, err)
		_, err = is.Write(m.dir, "node")
		require.NoError(t, err)
		require.NoError(t, m.nd.cfg.TLS.Reload())
		waitAcks(20)
	}
	// Step 3: only the new CA is trusted.
	for _, m := range members {
		require.NoError(t, writeBundle(filepath.Join(m.dir, "ca.pem"), ca2))
		require.NoError(t, m.nd.cfg.TLS.Reload())
		assert.Equal(t, ca2.ca.Cert.Subject.CommonName, m.nd.cfg.TLS.Leaf().Issuer.CommonName)
	}
	// New handshakes follow the reloaded bundle: a node certificate of the
	// new CA is taken, one of the old CA refused.
	probe := func(ca *testCA) error {
		cr := ca.credentials(t, nodetls.Identity{Deployment: "prod", Region: "a", Node: "probe"})
		require.NoError(t, writeBundle(cr.Files().CA, ca1, ca2))
		require.NoError(t, cr.Reload())
		conn, err := cr.Network(region.TCP).Dial(ctx, members[0].nd.Region().RaftAddr())
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, err = conn.Read(make([]byte, 1)) // the server's verdict on our certificate arrives after the handshake
			_ = conn.Close()
		}
		return err
	}
	require.ErrorContains(t, probe(ca2), "timeout", "a node certificate of the new CA is accepted (the Raft port then waits for a request)")
	require.ErrorContains(t, probe(ca1), "certificate", "a node certificate of the retired CA is refused")
	waitAcks(20)
	close(stop)
	wg.Wait()
	require.NoError(t, failed, "an append failed during rotation")
	rr, err := c.Read(ctx, "rotating", client.WithConsistency(meridianv1.Consistency_CONSISTENCY_STRONG), client.Limit(1))
	require.NoError(t, err)
	assert.EqualValues(t, acked.Load(), rr.GetHeadVersion(), "the stream holds every acknowledged append, and nothing else")
}

func writeBundle(path string, cas ...*testCA) error {
	var b []byte
	for _, c := range cas {
		b = append(b, c.ca.CertPEM...)
	}
	return os.WriteFile(path, b, 0o644)
}

// TestGossipImpostorNotAdmitted: gossip carries names, not proof. A node
// of the deployment that joins region a's gossip pool as "n2" while its
// certificate names a/n9 is never added to the region's Raft group; an
// honest node that joins after it is.
func TestGossipImpostorNotAdmitted(t *testing.T) {
	ca := newTestCA(t, "prod")
	creds := func(id string) *nodetls.Credentials {
		return ca.credentials(t, nodetls.Identity{Deployment: "prod", Region: "a", Node: id})
	}
	a1 := startGossipNode(t, Config{Region: "a", NodeID: "n1", Bootstrap: true, TLS: creds("n1")})
	require.Eventually(t, a1.Region().IsLeader, 10*time.Second, 20*time.Millisecond)
	impostor := startGossipNode(t, Config{Region: "a", NodeID: "n2", TLS: creds("n9")})
	local := a1.gossip.lan.LocalMember()
	require.NoError(t, impostor.gossip.joinLAN([]string{net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))}))
	require.Eventually(t, func() bool { return a1.gossip.lan.NumNodes() == 2 }, 10*time.Second, 20*time.Millisecond,
		"the impostor is in the gossip pool (it has no key to lack)")

	honest := startGossipNode(t, Config{Region: "a", NodeID: "n3", Join: []string{a1.Addr()}, TLS: creds("n3")})
	_ = honest
	require.Eventually(t, func() bool {
		voters, nonvoters := suffrages(a1)
		return slices.Contains(append(voters, nonvoters...), "n3")
	}, 30*time.Second, 50*time.Millisecond, "the honest node was not added")
	voters, nonvoters := suffrages(a1)
	assert.NotContains(t, append(voters, nonvoters...), "n2", "the impostor joined the region's Raft group")
}
