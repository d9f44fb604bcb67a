package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed static
var embedded embed.FS

// AssetsPrefix is where the UI's static files are served.
const AssetsPrefix = "/assets/"

// NotifierPath is the notifier UI's page. Its views are hash routes
// (#/alerts, #/silences, #/status), as in alertmanager's own UI, so the
// page shares the /alertmanager/ prefix with API v2 without shadowing it.
const NotifierPath = "/alertmanager/"

// pages are the paths that answer with the UI's single HTML page; the
// browser-side router picks the view from the path.
var pages = []string{"/graph", "/alerts", "/targets", "/rules", "/config", "/status", "/cluster", NotifierPath}

// csp allows scripts, styles and fetches from our own origin only: the UI
// works offline and a page cannot be made to load code from elsewhere.
const csp = "default-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'"

// UI serves the pages and their assets.
type UI struct {
	files fs.FS
	// etags are strong validators of the embedded files, computed once:
	// embed.FS has no modification times, and the assets are not named by
	// content hash, so revalidation is what keeps an upgraded binary's
	// browsers current.
	etags map[string]string
	// gzipped holds the compressed form of the text files, made once at
	// start: uPlot alone is 145 KB and a third of that compressed.
	gzipped map[string][]byte
	index   []byte
}

// New returns the UI over the embedded files.
func New() (*UI, error) {
	return newUI(embedded)
}

func newUI(root fs.FS) (*UI, error) {
	files, err := fs.Sub(root, "static")
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	u := &UI{files: files, etags: map[string]string{}, gzipped: map[string][]byte{}}
	err = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		u.etags[p] = hex.EncodeToString(sum[:12])
		switch path.Ext(p) {
		case ".js", ".mjs", ".css", ".html", ".svg", ".json":
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			if _, err := zw.Write(b); err != nil {
				return err
			}
			if err := zw.Close(); err != nil {
				return err
			}
			if buf.Len() < len(b) {
				u.gzipped[p] = buf.Bytes()
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	if u.index, err = fs.ReadFile(files, "index.html"); err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	return u, nil
}

// Register mounts the UI on mux: "/" redirects to /graph, the pages and
// AssetsPrefix. Other paths stay with whatever else mux serves.
func (u *UI) Register(mux *http.ServeMux) {
	mux.Handle("GET /{$}", http.RedirectHandler("/graph", http.StatusFound))
	for _, p := range pages {
		if strings.HasSuffix(p, "/") {
			// Only the directory itself: everything below it belongs to
			// the component mounted there.
			mux.Handle("GET "+p+"{$}", http.HandlerFunc(u.servePage))
			continue
		}
		mux.Handle("GET "+p, http.HandlerFunc(u.servePage))
	}
	mux.Handle("GET /notifier", http.RedirectHandler(NotifierPath, http.StatusFound))
	mux.Handle("GET "+AssetsPrefix, http.HandlerFunc(u.serveAsset))
}

// Pages lists the page paths Register mounts, for tests and docs.
func Pages() []string { return append([]string(nil), pages...) }

func (u *UI) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	u.serve(w, r, "index.html", u.index)
}

func (u *UI) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), AssetsPrefix)
	if name == "index.html" || !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(u.files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	u.serve(w, r, name, b)
}

func (u *UI) serve(w http.ResponseWriter, r *http.Request, name string, b []byte) {
	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js", ".mjs":
		// Module scripts are refused with anything but a JavaScript type,
		// and the host's mime tables are not to be trusted with that.
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".html":
		ctype = "text/html; charset=utf-8"
	}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	etag := u.etags[name]
	gz, hasGz := u.gzipped[name]
	if hasGz {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			// Each encoding is its own representation, with its own tag.
			b, etag = gz, etag+"-gz"
			h.Set("Content-Encoding", "gzip")
		}
	}
	etag = `"` + etag + `"`
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" {
			return strings.TrimSpace(q) != "q=0"
		}
	}
	return false
}
