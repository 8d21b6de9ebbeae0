package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
)

//go:embed dist
var dist embed.FS

// nodeMarker is where the index page gets NodeInfo.
const nodeMarker = "<!--myelin:node-->"

// NodeInfo is what the index page tells the UI about the node that
// served it. It is public: the landing page said as much before the UI
// (version, node, readiness), and whether auth is on shows in any answer.
type NodeInfo struct {
	Version     string `json:"version"`
	NodeID      string `json:"node_id"`
	Ready       bool   `json:"ready"`
	NotReady    string `json:"not_ready,omitempty"` // why not, when not Ready
	Auth        bool   `json:"auth"`                // the UI asks for a token
	MultiTenant bool   `json:"multitenant"`         // the UI asks for a tenant
}

// contentSecurityPolicy allows the page only its own scripts and calls to
// its own node: a label value that slipped past the UI's escaping still
// could not load or send anything. Styles may be inline (CodeMirror and
// uPlot set them from script); images may be data: URIs (the icon).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// Handler serves the embedded UI. Immutable after New but for each
// asset's gzipped copy, made once on first demand.
type Handler struct {
	node       func() NodeInfo
	head, tail []byte            // the index around nodeMarker
	assets     map[string]*asset // by path below /ui/, e.g. "assets/main-3EZEITKL.js"
}

type asset struct {
	body  []byte // owned by the embedded FS; never written
	ctype string
	etag  string // quoted, from the content's SHA-256

	gzOnce sync.Once
	gz     []byte // nil when gzip does not make it smaller
}

// New returns the handler of the embedded UI; node is called for each
// request of the index.
func New(node func() NodeInfo) (*Handler, error) {
	return newHandler(dist, node)
}

func newHandler(fsys fs.FS, node func() NodeInfo) (*Handler, error) {
	sub, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, err
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		return nil, fmt.Errorf("ui: read the built index (make ui): %w", err)
	}
	head, tail, ok := bytes.Cut(index, []byte(nodeMarker))
	if !ok {
		return nil, fmt.Errorf("ui: index.html has no %s marker", nodeMarker)
	}
	h := &Handler{node: node, head: head, tail: tail, assets: map[string]*asset{}}
	err = fs.WalkDir(sub, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.assets[p] = &asset{body: b, ctype: contentType(p), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ui: read the built assets: %w", err)
	}
	// Every asset the index names must be there: a stale index after a
	// partial build would serve a blank page.
	for _, ref := range refs(index) {
		if h.assets[ref] == nil {
			return nil, fmt.Errorf("ui: index.html names /ui/%s, which is not built", ref)
		}
	}
	return h, nil
}

// refs returns the paths below /ui/ that the page names.
func refs(index []byte) []string {
	var out []string
	for rest := string(index); ; {
		i := strings.Index(rest, `"/ui/`)
		if i < 0 {
			return out
		}
		rest = rest[i+len(`"/ui/`):]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			return out
		}
		out = append(out, rest[:j])
		rest = rest[j:]
	}
}

// AssetPaths returns the URL paths of the embedded assets, sorted: for
// tests and tools that need one that exists.
func (h *Handler) AssetPaths() []string {
	var out []string
	for p := range h.assets {
		out = append(out, "/ui/"+p)
	}
	slices.Sort(out)
	return out
}

// Index serves the page at GET / (and only /): the built index.html with
// the node's NodeInfo written in, never cached (it says whether the node
// is ready).
func (h *Handler) Index() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		info, err := json.Marshal(h.node()) // escapes <, > and &: safe inside <script>
		if err != nil {
			http.Error(w, "ui: node info: "+err.Error(), http.StatusInternalServerError)
			return
		}
		var b bytes.Buffer
		b.Grow(len(h.head) + len(info) + len(h.tail) + 64)
		b.Write(h.head)
		b.WriteString(`<script id="myelin-node" type="application/json">`)
		b.Write(info)
		b.WriteString(`</script>`)
		b.Write(h.tail)
		hd := w.Header()
		hd.Set("Content-Type", "text/html; charset=utf-8")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		w.Write(b.Bytes())
	})
}

// Assets serves GET /ui/<path>: an embedded asset, cached for a year
// (its name changes with its content), gzipped for clients that take it;
// 404 for anything else.
func (h *Handler) Assets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := h.assets[strings.TrimPrefix(r.URL.Path, "/ui/")]
		if a == nil {
			w.Header().Set("Cache-Control", "no-store")
			http.NotFound(w, r)
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", a.ctype)
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
		hd.Set("ETag", a.etag)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Add("Vary", "Accept-Encoding")
		if match := r.Header.Get("If-None-Match"); match != "" && etagMatch(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.body
		if acceptsGzip(r) {
			if gz := a.gzipped(); gz != nil {
				hd.Set("Content-Encoding", "gzip")
				body = gz
			}
		}
		hd.Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	})
}

// gzipped returns the asset gzipped at the best compression, made on
// first use (the main script: ~50 ms once, then 190 of 570 KB per
// request); nil if gzip does not make it smaller.
func (a *asset) gzipped() []byte {
	a.gzOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // a valid level: no error
		_, err := zw.Write(a.body)
		if err = errors.Join(err, zw.Close()); err == nil && b.Len() < len(a.body) {
			a.gz = b.Bytes()
		}
	})
	return a.gz
}

// acceptsGzip reports whether the request's Accept-Encoding takes gzip
// with a non-zero quality.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			k, q, _ := strings.Cut(strings.TrimSpace(params), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") && strings.Trim(strings.TrimSpace(q), "0.") == "" {
				return false // q=0, q=0.0, q=0.000
			}
			return true
		}
	}
	return false
}

// etagMatch reports whether an If-None-Match header names etag (or *).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// contentType is the type of an asset by its extension: fixed here, not
// read from the system's MIME tables, which differ between machines.
func contentType(p string) string {
	switch path.Ext(p) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".woff2":
		return "font/woff2"
	}
	return "application/octet-stream"
}
