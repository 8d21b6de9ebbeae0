package ui

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func testHandler(t *testing.T, info NodeInfo) *Handler {
	t.Helper()
	h, err := New(func() NodeInfo { return info })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(t *testing.T, hh http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	hh.ServeHTTP(rec, req)
	return rec
}

// TestEmbedded: the committed build is embedded and whole: an index with
// its marker, a script and a stylesheet, and every file the index names.
func TestEmbedded(t *testing.T) {
	h := testHandler(t, NodeInfo{})
	paths := h.AssetPaths()
	var js, css bool
	for _, p := range paths {
		js = js || strings.HasSuffix(p, ".js")
		css = css || strings.HasSuffix(p, ".css")
		if !regexp.MustCompile(`^/ui/assets/[a-z]+-[A-Za-z0-9]{8}\.(js|css|txt)$`).MatchString(p) {
			t.Errorf("asset %s: want a content-hashed name", p)
		}
	}
	if !js || !css {
		t.Fatalf("assets %v: want a script and a stylesheet (make ui)", paths)
	}
	index, err := dist.ReadFile("dist/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if got := refs(index); len(got) < 3 {
		t.Fatalf("index names %v, want the script, the stylesheet and the licences", got)
	}
}

func TestIndex(t *testing.T) {
	info := NodeInfo{Version: "v1.2.3", NodeID: "n1", Ready: false, NotReady: `</script><script>alert(1)</script>`, Auth: true, MultiTenant: true}
	h := testHandler(t, info)
	rec := get(t, h.Index(), "GET", "/", nil)
	if rec.Code != 200 {
		t.Fatalf("GET / = %d", rec.Code)
	}
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Cache-Control":           "no-store",
		"Content-Security-Policy": contentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	body := rec.Body.String()
	if strings.Contains(body, nodeMarker) || strings.Contains(body, "alert(1)</script>") {
		t.Fatalf("the marker is left, or the node info is not escaped:\n%s", body)
	}
	m := regexp.MustCompile(`<script id="myelin-node" type="application/json">(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no node info in the page:\n%s", body)
	}
	var got NodeInfo
	if err := json.Unmarshal([]byte(m[1]), &got); err != nil || got != info {
		t.Fatalf("node info %s = %+v (%v), want %+v", m[1], got, err, info)
	}
	for _, p := range h.AssetPaths() {
		if !strings.Contains(body, `"`+p+`"`) {
			t.Errorf("the page does not name %s", p)
		}
	}

	if rec := get(t, h.Index(), "GET", "/elsewhere", nil); rec.Code != 404 {
		t.Errorf("GET /elsewhere = %d, want 404", rec.Code)
	}
}

func TestAssets(t *testing.T) {
	h := testHandler(t, NodeInfo{})
	var js string
	for _, p := range h.AssetPaths() {
		if strings.HasSuffix(p, ".js") {
			js = p
		}
	}
	plain := get(t, h.Assets(), "GET", js, nil)
	if plain.Code != 200 || plain.Header().Get("Content-Encoding") != "" || plain.Body.Len() < 1000 {
		t.Fatalf("GET %s = %d, encoding %q, %d bytes", js, plain.Code, plain.Header().Get("Content-Encoding"), plain.Body.Len())
	}
	etag := plain.Header().Get("ETag")
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		code       int
		encoding   string
		cache      string
	}{
		{"script", js, nil, 200, "", "public, max-age=31536000, immutable"},
		{"gzip", js, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"}, 200, "gzip", "public, max-age=31536000, immutable"},
		{"gzip refused", js, map[string]string{"Accept-Encoding": "gzip;q=0, deflate"}, 200, "", "public, max-age=31536000, immutable"},
		{"not modified", js, map[string]string{"If-None-Match": `"x", ` + etag}, 304, "", "public, max-age=31536000, immutable"},
		{"unknown asset", "/ui/assets/main-AAAAAAAA.js", nil, 404, "", "no-store"},
		{"directory", "/ui/assets/", nil, 404, "", "no-store"},
		{"the index is not an asset", "/ui/index.html", nil, 404, "", "no-store"},
		{"outside", "/ui/../ui.go", nil, 404, "", "no-store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, h.Assets(), "GET", tc.path, tc.hdr)
			if rec.Code != tc.code {
				t.Fatalf("GET %s = %d, want %d", tc.path, rec.Code, tc.code)
			}
			if got := rec.Header().Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tc.cache)
			}
			if got := rec.Header().Get("Content-Encoding"); got != tc.encoding {
				t.Errorf("Content-Encoding = %q, want %q", got, tc.encoding)
			}
			if tc.code != 200 {
				return
			}
			if got := rec.Header().Get("Content-Type"); got != "text/javascript; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			body := rec.Body.Bytes()
			if tc.encoding == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
				if rec.Body.Len() >= plain.Body.Len()/2 {
					t.Errorf("gzipped %d bytes of %d", rec.Body.Len(), plain.Body.Len())
				}
			}
			if !bytes.Equal(body, plain.Body.Bytes()) {
				t.Error("the body differs from the plain one")
			}
		})
	}
}

// TestBrokenBuild: New refuses a build the page could not run from.
func TestBrokenBuild(t *testing.T) {
	good := `<html><head><!--myelin:node--><script src="/ui/assets/main-ABCDEFGH.js"></script></head></html>`
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"no index", fstest.MapFS{"dist/assets/main-ABCDEFGH.js": {Data: []byte("x")}}, "make ui"},
		{"no marker", fstest.MapFS{"dist/index.html": {Data: []byte(`<html></html>`)}}, "marker"},
		{"missing asset", fstest.MapFS{"dist/index.html": {Data: []byte(good)}}, "not built"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newHandler(tc.files, func() NodeInfo { return NodeInfo{} })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
	h, err := newHandler(fstest.MapFS{"dist/index.html": {Data: []byte(good)}, "dist/assets/main-ABCDEFGH.js": {Data: []byte("x")}},
		func() NodeInfo { return NodeInfo{} })
	if err != nil || len(h.AssetPaths()) != 1 {
		t.Fatalf("a whole build: %v", err)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		hdr  string
		want bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"deflate, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"x-gzip", false},
		{"br", false},
	} {
		req := httptest.NewRequest("GET", "/", nil)
		if tc.hdr != "" {
			req.Header.Set("Accept-Encoding", tc.hdr)
		}
		if got := acceptsGzip(req); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.hdr, got, tc.want)
		}
	}
}
