// Package console is the operator console every node serves at /ui/: a
// few static pages (embedded, no build step) whose scripts call the
// node's public Connect API with the viewer's token, and the nodes of
// other regions through CORS for the origins of the deployment's own
// nodes (AllowDeploymentOrigins). Nothing in it is private: what it shows,
// `meridian regions`, `status` and `read` show too.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Path is where the console is served.
const Path = "/ui/"

// Handler serves the console's files under Path.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Path, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src *; img-src 'self' data:; style-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// AllowDeploymentOrigins lets the console served by one node of the
// deployment call the API of another (a page's origin is its node's
// scheme, host and port): a request whose Origin is one of endpoints()
// (host:port API addresses, either scheme) gets the CORS headers a Connect
// call from a browser needs, and its preflight is answered here. Requests
// from any other origin get no CORS headers, so browsers keep refusing
// them; calls without an Origin (every non-browser client) pass as before.
func AllowDeploymentOrigins(next http.Handler, endpoints func() []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !allowed(origin, endpoints()) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "Meridian-Error, Meridian-Current-Version, Grpc-Status, Grpc-Message")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "POST, GET")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Connect-Protocol-Version, Connect-Timeout-Ms")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func allowed(origin string, endpoints []string) bool {
	host, ok := strings.CutPrefix(origin, "https://")
	if !ok {
		if host, ok = strings.CutPrefix(origin, "http://"); !ok {
			return false
		}
	}
	for _, e := range endpoints {
		e = strings.TrimPrefix(strings.TrimPrefix(e, "https://"), "http://")
		if e == host {
			return true
		}
	}
	return false
}
