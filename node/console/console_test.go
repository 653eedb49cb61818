package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandlerServesTheEmbeddedPages(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]string{"/ui/": `<script src="app.js" defer></script>`, "/ui/app.js": "function call(", "/ui/style.css": "table {"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.Contains(t, string(body), want, path)
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'", path)
	}
}

// TestAllowDeploymentOrigins: a browser page of one of the deployment's
// nodes gets CORS headers and its preflight answered; any other origin
// gets none (the browser refuses it), and calls without Origin pass.
func TestAllowDeploymentOrigins(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := AllowDeploymentOrigins(inner, func() []string { return []string{"127.0.0.1:7001", "10.0.0.2:7002"} })
	do := func(method, origin string, preflight bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/meridian.v1.EventStore/Status", strings.NewReader("{}"))
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if preflight {
			r.Header.Set("Access-Control-Request-Method", "POST")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := do(http.MethodPost, "https://127.0.0.1:7001", false)
	assert.Equal(t, http.StatusTeapot, w.Code, "the call itself is served")
	assert.Equal(t, "https://127.0.0.1:7001", w.Header().Get("Access-Control-Allow-Origin"))
	w = do(http.MethodOptions, "http://10.0.0.2:7002", true)
	assert.Equal(t, http.StatusNoContent, w.Code)
	assert.Contains(t, w.Header().Get("Access-Control-Allow-Headers"), "Authorization")
	for _, origin := range []string{"https://evil.example:7001", "https://127.0.0.1:7009", "file://", "null"} {
		w = do(http.MethodPost, origin, false)
		assert.Empty(t, w.Header().Get("Access-Control-Allow-Origin"), origin)
		assert.Equal(t, http.StatusTeapot, w.Code, origin)
	}
	w = do(http.MethodPost, "", false)
	assert.Empty(t, w.Header().Get("Access-Control-Allow-Origin"))
}
