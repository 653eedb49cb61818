// Package testserver starts HTTP servers for tests that speak what a
// Meridian node speaks on its API port: HTTP/1.1 and HTTP/2 without TLS
// (h2c), so that clients of either protocol (the SDK sends unary calls over
// HTTP/1.1 and streams over h2c, ADR 0003) reach test handlers the way they
// reach a node.
package testserver

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Start serves h on a loopback port until the test ends.
func Start(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
