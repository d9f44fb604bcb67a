package web

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	ui, err := New()
	require.NoError(t, err)
	mux := http.NewServeMux()
	// Stand-ins for what the app mounts beside the UI, to prove the UI
	// does not shadow them.
	mux.HandleFunc("/alertmanager/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	ui.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func TestHandlerRoutes(t *testing.T) {
	srv := newServer(t)
	client := &http.Client{CheckRedirect: noRedirect}
	get := func(p string, hdr ...string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	resp := get("/")
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Equal(t, "/graph", resp.Header.Get("Location"))

	for _, p := range Pages() {
		resp := get(p + "?g0.expr=up")
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"), p)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'", p)
	}

	for _, tc := range []struct {
		path  string
		code  int
		ctype string
	}{
		{"/assets/app/main.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/assets/vendor/uPlot.esm.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/assets/app/app.css", http.StatusOK, "text/css; charset=utf-8"},
		{"/assets/favicon.svg", http.StatusOK, "image/svg+xml"},
		{"/assets/index.html", http.StatusNotFound, ""},
		{"/assets/nope.js", http.StatusNotFound, ""},
		{"/alertmanager/api/v2/status", http.StatusTeapot, ""},
		{"/api/v1/query", http.StatusTeapot, ""},
		{"/nowhere", http.StatusNotFound, ""},
	} {
		resp := get(tc.path)
		require.Equal(t, tc.code, resp.StatusCode, tc.path)
		if tc.ctype != "" {
			require.Equal(t, tc.ctype, resp.Header.Get("Content-Type"), tc.path)
		}
	}

	// Revalidation: the ETag answers 304, so an upgraded binary's assets
	// reach browsers at once and unchanged ones cost no body.
	resp = get("/assets/app/main.js")
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	require.Equal(t, http.StatusNotModified, get("/assets/app/main.js", "If-None-Match", etag).StatusCode)

	// The mux cleans paths before routing; the handler must not rely on it.
	ui, err := New()
	require.NoError(t, err)
	for _, p := range []string{"/assets/../web.go", "/assets/../static/index.html", "/assets//etc/passwd"} {
		rec := httptest.NewRecorder()
		ui.serveAsset(rec, httptest.NewRequest(http.MethodGet, p, nil))
		require.Equal(t, http.StatusNotFound, rec.Code, p)
	}

	// Text assets go out gzipped to clients that take it, under their own
	// tag; the others get the plain bytes.
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/assets/vendor/uPlot.esm.js", nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
	zresp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	require.NoError(t, err)
	zr, err := gzip.NewReader(zresp.Body)
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	zresp.Body.Close()
	require.Equal(t, "gzip", zresp.Header.Get("Content-Encoding"))
	require.Equal(t, "Accept-Encoding", zresp.Header.Get("Vary"))
	plain, err := embedded.ReadFile("static/vendor/uPlot.esm.js")
	require.NoError(t, err)
	require.Equal(t, plain, unzipped)
	require.NotEqual(t, get("/assets/vendor/uPlot.esm.js", "Accept-Encoding", "identity").Header.Get("ETag"), zresp.Header.Get("ETag"))
	require.Empty(t, get("/assets/vendor/uPlot.esm.js", "Accept-Encoding", "gzip;q=0").Header.Get("Content-Encoding"))

	post, err := client.Post(srv.URL+"/graph", "text/plain", nil)
	require.NoError(t, err)
	post.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, post.StatusCode)
}

// The browser resolves module imports at run time; a broken path would
// only show as a blank page, so every relative import and every asset the
// HTML names must exist in the embedded files.
func TestEmbeddedReferencesResolve(t *testing.T) {
	files, err := fs.Sub(embedded, "static")
	require.NoError(t, err)
	importRe := regexp.MustCompile(`(?m)(?:^|[;\s}])(?:import|export)\s*(?:[\w*{}\s,]*?\s*from\s*)?["'](\.{1,2}/[^"']+)["']`)
	seen := 0
	err = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".mjs")) {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		for _, m := range importRe.FindAllStringSubmatch(string(b), -1) {
			target := path.Join(path.Dir(p), m[1])
			_, err := fs.Stat(files, target)
			require.NoError(t, err, "%s imports %s", p, m[1])
			seen++
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, seen, 10, "the import pattern found too few imports to be trusted")

	index, err := fs.ReadFile(files, "index.html")
	require.NoError(t, err)
	refs := regexp.MustCompile(`(?:href|src)="(/assets/[^"]+)"`).FindAllStringSubmatch(string(index), -1)
	require.NotEmpty(t, refs)
	for _, m := range refs {
		_, err := fs.Stat(files, strings.TrimPrefix(m[1], AssetsPrefix))
		require.NoError(t, err, "index.html names %s", m[1])
	}
	require.NotRegexp(t, `<script>|<script type="(?:text/javascript|importmap)">|https?://`, string(index),
		"inline scripts break the CSP and remote URLs break offline use")
}

// The vendored libraries are what ui/package.json pins, byte for byte what
// ui/vendor.mjs wrote: a hand edit or a half-done upgrade fails here.
func TestVendoredLibrariesMatchPackageJSON(t *testing.T) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile("ui/package.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &pkg))

	var manifest map[string]struct {
		Package, Version, Source, SHA256 string
	}
	b, err = embedded.ReadFile("static/vendor/VERSIONS.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &manifest))

	entries, err := embedded.ReadDir("static/vendor")
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() == "VERSIONS.json" {
			continue
		}
		m, ok := manifest[e.Name()]
		require.True(t, ok, "%s is not in VERSIONS.json: run ui/vendor.mjs", e.Name())
		body, err := embedded.ReadFile("static/vendor/" + e.Name())
		require.NoError(t, err)
		sum := sha256.Sum256(body)
		require.Equal(t, m.SHA256, hex.EncodeToString(sum[:]), "%s differs from what vendor.mjs wrote", e.Name())
		require.Equal(t, pkg.Dependencies[m.Package], m.Version, "%s: vendored %s %s, package.json pins %s", e.Name(), m.Package, m.Version, pkg.Dependencies[m.Package])
	}
	require.Len(t, manifest, len(entries)-1, "VERSIONS.json names files that are missing")
	for name := range pkg.Dependencies {
		found := false
		for _, m := range manifest {
			found = found || m.Package == name
		}
		require.True(t, found, "package.json dependency %s is not vendored", name)
	}
}
