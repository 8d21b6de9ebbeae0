package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/myelindb/myelin/server/auth"
)

// The browser tests drive the UI in Debian's Chromium, headless, through
// the DevTools protocol (chromedp), against a node started as run starts
// it: they type into the PromQL editor, take a completion, run queries,
// and read the page and the plot's pixels as a user would see them.

// findChromium returns Debian's chromium; it skips the test without it,
// or fails it when CI is set (.ci/run and `make e2e-deps` install it).
func findChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test; skipped with -short")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found on PATH; install it with `make e2e-deps` (apt-get install --no-install-recommends chromium)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip(msg)
	return ""
}

// browser is one headless Chromium with one tab.
type browser struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	// errs: exceptions the page threw and errors it logged on the console.
	errs []string
}

// newBrowser starts Chromium with the flags this machine needs (no
// sandbox as root, no network beyond the node, no first-run work) and a
// viewport of w x h CSS pixels.
func newBrowser(t *testing.T, w, h int) *browser {
	t.Helper()
	exe := findChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(w, h),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.Flag("lang", "en-US"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// The first action starts the browser; then the console is read.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(w), int64(h))); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// Console calls and exceptions; not the browser's own log
			// (a refused token's 401 is logged there, and is expected).
			if m.Source == "" && (m.Type == chromedp.ConsoleError || m.IsException()) {
				b.mu.Lock()
				b.errs = append(b.errs, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v; page errors: %v", what, err, b.pageErrors())
	}
}

func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// evalJS evaluates a JavaScript expression in the page.
func evalJS[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v; page errors: %v", expr, err, b.pageErrors())
	}
	return v
}

// screenshot returns a PNG of the element sel, or of the page if sel is "".
func (b *browser) screenshot(sel string) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	a := chromedp.FullScreenshot(100)
	if sel != "" {
		a = chromedp.Screenshot(chromedp.CSS(sel))
	}
	png, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("screenshot %q: %v", sel, err)
	}
	return png
}

// waitFor polls a JavaScript expression until it is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body := evalJS[string](b, `(document.querySelector("dialog[open]") || document.querySelector("main") || document.body).innerText`)
			b.t.Fatalf("no %s within 20s (%s); page errors: %v; the page says:\n%s", what, expr, b.pageErrors(), body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pressEnter presses Enter as a keyboard does: one keyDown that carries
// the text "\r" (so that a handler that prevents it stops the newline and
// a form is submitted), then keyUp. kb.Enter sends the text as a
// separate char event, which no keydown handler can prevent.
func pressEnter() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter",
			WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13, Text: "\r", UnmodifiedText: "\r"}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		up := down
		up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, up)
		return err
	})
}

// typeQuery replaces the editor's text with q, typed key by key.
func (b *browser) typeQuery(q string) {
	b.t.Helper()
	b.do("type "+q,
		chromedp.Click(chromedp.CSS(".cm-content")),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
		chromedp.KeyEvent(kb.Backspace),
		chromedp.SendKeys(chromedp.CSS(".cm-content"), q),
	)
}

// uiSeries is a counter series of the browser tests: requests of one
// status code, increasing by a rate that swings around base.
type uiSeries struct {
	code string
	base float64
}

// pushUISeries writes the last two hours of ui_test_requests_total, one
// series per code at 15 s, and ui_test_build_info, into tenant.
func pushUISeries(t *testing.T, base, tenant, token string, series []uiSeries, now time.Time) {
	t.Helper()
	end := now.Truncate(15 * time.Second).UnixMilli()
	start := end - 2*time.Hour.Milliseconds()
	var wr prompb.WriteRequest
	for i, s := range series {
		ts := prompb.TimeSeries{Labels: []prompb.Label{
			{Name: "__name__", Value: "ui_test_requests_total"}, {Name: "code", Value: s.code},
			{Name: "instance", Value: "web-1:8080"}, {Name: "job", Value: "web"},
		}}
		v := 0.0
		for tm := start; tm <= end; tm += 15_000 {
			phase := float64(tm)/float64(20*time.Minute.Milliseconds())*2*math.Pi + float64(i)
			v += 15 * s.base * (1 + 0.35*math.Sin(phase))
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: tm, Value: math.Round(v)})
		}
		wr.Timeseries = append(wr.Timeseries, ts)
	}
	wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: "ui_test_build_info"}, {Name: "version", Value: "1.0"}},
		Samples: []prompb.Sample{{Timestamp: end, Value: 1}},
	})
	b, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if code, body := authDo(t, base, "POST", "/api/v1/push", token, tenant, snappy.Encode(nil, b)); code != 204 {
		t.Fatalf("push: %d %s", code, body)
	}
}

// startUINode starts a node with args as run does and returns its base URL.
func startUINode(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := newLogWatcher()
	done := make(chan error, 1)
	argv := append([]string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0"}, args...)
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	addr := stderr.addr(t, done)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("myelin: %v", err)
		}
	})
	waitReady(t, addr)
	return "http://" + addr
}

var uiCodes = []uiSeries{{"200", 40}, {"404", 12}, {"500", 4}}

// TestUIBrowser: a user without auth comes with a link naming a tenant,
// lets the editor complete a metric name of the tenant's data (and of no
// other tenant's), runs a graph of three series, hovers it, shares its
// URL (the same graph comes back from it), zooms by dragging and goes
// back, stacks it, switches to the table, gets Prometheus's error for a
// bad query, and opens the cardinality and cluster views. The plot must
// hold each series' colour, the legend each series' labels, the stats the
// series fetched. With MYELIN_UI_SCREENSHOT set it writes a screenshot of
// the graph there (`make ui-screenshot`: docs/ui-graph.png, in the
// README).
func TestUIBrowser(t *testing.T) {
	b := newBrowser(t, 1440, 760)
	base := startUINode(t)
	now := time.Now()
	pushUISeries(t, base, "team-ui", "", uiCodes, now)
	// Another tenant's metric must not be offered.
	if code, body := authDo(t, base, "POST", "/api/v1/push", "", "team-other", pushBody(t, "ui_test_other_tenant", now.UnixMilli())); code != 204 {
		t.Fatalf("push: %d %s", code, body)
	}

	b.do("open the UI", chromedp.Navigate(base+"/#/query?tenant=team-ui"))
	b.waitFor("the editor", `document.querySelector(".cm-content")`)
	tenant := evalJS[string](b, `document.querySelector(".tenant-input").value`)
	if tenant != "team-ui" {
		t.Fatalf("tenant field = %q, want the URL's team-ui", tenant)
	}

	// Completion of a metric name from the tenant's data; Enter takes it.
	b.typeQuery("ui_test_re")
	b.waitFor("a completion of the metric name",
		`[...document.querySelectorAll(".cm-tooltip-autocomplete li")].some(li => li.textContent.includes("ui_test_requests_total"))`)
	offered := evalJS[[]string](b, `[...document.querySelectorAll(".cm-tooltip-autocomplete li .cm-completionLabel")].map(e => e.textContent)`)
	for _, o := range offered {
		if strings.Contains(o, "other_tenant") {
			t.Fatalf("completion offers another tenant's metric: %v", offered)
		}
	}
	// A person takes longer than CodeMirror's 75 ms before it takes a key
	// for the list that just opened.
	time.Sleep(150 * time.Millisecond)
	b.do("take the completion", pressEnter())
	doc := evalJS[string](b, `document.querySelector(".cm-content").innerText`)
	if strings.TrimSpace(doc) != "ui_test_requests_total" {
		t.Fatalf("editor holds %q after Enter on the completion, want ui_test_requests_total", doc)
	}

	// A graph of three series: the legend names them, the plot draws them.
	query := `sum by (code) (rate(ui_test_requests_total[5m]))`
	b.typeQuery(query)
	runAt := time.Now()
	b.do("run the query", chromedp.KeyEvent(kb.Escape), chromedp.Click(chromedp.CSS("button.run")))
	b.waitFor("a plot of 3 series", `document.querySelector(".plot[data-series='3'] canvas") && document.querySelectorAll(".legend-item").length === 3`)
	plotted := time.Now()
	legend := evalJS[[]string](b, `[...document.querySelectorAll(".legend-item .labels")].map(e => e.textContent)`)
	want := []string{`{code="200"}`, `{code="404"}`, `{code="500"}`}
	if strings.Join(legend, "\n") != strings.Join(want, "\n") {
		t.Fatalf("legend = %q, want %q", legend, want)
	}
	stats := evalJS[string](b, `document.querySelector(".status-line").innerText`)
	for _, w := range []string{"Result series 3", "Samples read"} {
		if !strings.Contains(stats, w) {
			t.Errorf("stats %q lack %q", stats, w)
		}
	}
	// The query frontend splits the graph's hour at UTC midnight, and
	// each piece fetches the 3 series: 6 in the hour after midnight.
	fetched := map[string]bool{}
	for _, end := range []time.Time{runAt, plotted} {
		fetched[fmt.Sprintf("Series fetched %d", 3*dayPieces(end.Add(-time.Hour), end))] = true
	}
	if ok := fetched[uiStatLine(stats, "Series fetched")]; !ok {
		t.Errorf("stats %q: want one of %v (the UI's hour ends between %v and %v)", stats, fetched, runAt, plotted)
	}
	colors := evalJS[[]string](b, `[...document.querySelectorAll(".legend-item")].map(e => e.dataset.color)`)
	b.do("move the mouse away", chromedp.MouseEvent(chromedp.MouseMoved, 5, 5))
	checkPlotColors(t, b.screenshot(".plot canvas"), colors)

	// The URL holds the query.
	hash := evalJS[string](b, `location.hash`)
	for _, w := range []string{"expr=sum+by+%28code%29", "tab=graph", "range=1h", "tenant=team-ui"} {
		if !strings.Contains(hash, w) {
			t.Fatalf("URL fragment %q lacks %q", hash, w)
		}
	}
	// Hover: the tooltip and the legend show the values at the cursor.
	b.do("hover", chromedp.MouseEvent(chromedp.MouseMoved, 760, 330))
	b.waitFor("the tooltip", `!document.querySelector(".tooltip").hidden && document.querySelectorAll(".legend-value:not(:empty)").length === 3`)
	if path := os.Getenv("MYELIN_UI_SCREENSHOT"); path != "" {
		page := b.screenshot("")
		if err := os.WriteFile(path, page, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(page))
	}
	// A new page on the URL shows the same graph.
	b.do("reload from the URL", chromedp.Navigate("about:blank"), chromedp.Navigate(base+"/"+hash))
	b.waitFor("the shared graph", `document.querySelectorAll(".legend-item").length === 3`)
	doc = evalJS[string](b, `document.querySelector(".cm-content").innerText`)
	if strings.TrimSpace(doc) != query {
		t.Fatalf("editor after reload = %q, want %q", doc, query)
	}

	// Zoom: a drag across the plot narrows the range to the dragged part
	// (a new entry in the URL and the browser's history) and queries again.
	box := evalJS[[]float64](b, `(r => [r.left, r.top, r.width, r.height])(document.querySelector(".u-over").getBoundingClientRect())`)
	x0, x1, y := box[0]+0.3*box[2], box[0]+0.6*box[2], box[1]+box[3]/2
	pressed := func(p *input.DispatchMouseEventParams) { p.Buttons = 1 }
	b.do("drag across the plot",
		chromedp.MouseEvent(chromedp.MouseMoved, x0, y),
		chromedp.MouseEvent(chromedp.MousePressed, x0, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(chromedp.MouseMoved, (x0+x1)/2, y, pressed),
		chromedp.MouseEvent(chromedp.MouseMoved, x1, y, pressed),
		chromedp.MouseEvent(chromedp.MouseReleased, x1, y, chromedp.ButtonLeft))
	b.waitFor("the zoomed range in the URL", `location.hash.includes("end=") && !location.hash.includes("range=1h")`)
	b.waitFor("the zoomed graph", `document.querySelectorAll(".legend-item").length === 3 && !document.querySelector(".query-page.loading")`)
	zoomed := evalJS[string](b, `new URLSearchParams(location.hash.split("?")[1]).get("range")`)
	if d, err := time.ParseDuration(zoomed); err != nil || d < 17*time.Minute || d > 19*time.Minute {
		t.Errorf("range after dragging across 30%% of 1h = %q, want about 18m in whole seconds", zoomed)
	}
	b.do("back to the full hour", chromedp.NavigateBack())
	b.waitFor("the hour again", `location.hash.includes("range=1h") && !location.hash.includes("end=")`)

	// Stacked: the same series as areas, the mode in the URL.
	b.do("stacked", chromedp.Click(chromedp.CSS(`.mode button[data-value="stacked"]`)))
	b.waitFor("the stacked graph", `location.hash.includes("mode=stacked") && document.querySelector(".plot[data-series='3']") && !document.querySelector(".query-page.loading")`)
	b.do("move the mouse away", chromedp.MouseEvent(chromedp.MouseMoved, 5, 5))
	checkPlotColors(t, b.screenshot(".plot canvas"), colors)

	// The table tab: an instant query, one row per series.
	b.do("table tab", chromedp.Click(chromedp.CSS(`.tabs button[data-value="table"]`)))
	b.waitFor("a table of 3 rows", `document.querySelectorAll("table.results tbody tr").length === 3`)
	rows := evalJS[[]string](b, `[...document.querySelectorAll("table.results tbody tr td:first-child")].map(e => e.textContent)`)
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Fatalf("table rows = %q, want %q", rows, want)
	}

	// A bad query: Prometheus's error, shown as such.
	b.typeQuery("rate(ui_test_requests_total)")
	b.do("run a bad query", chromedp.KeyEvent(kb.Escape), chromedp.Click(chromedp.CSS("button.run")))
	b.waitFor("an error message", `document.querySelector(".message.error")`)
	msg := evalJS[string](b, `document.querySelector(".message.error").innerText`)
	if !strings.Contains(msg, "bad_data") || !strings.Contains(msg, "parse error") {
		t.Fatalf("error message %q: want the API's bad_data parse error", msg)
	}

	// The cardinality view counts the tenant's series.
	b.do("cardinality", chromedp.Click(chromedp.CSS(`.nav a[data-page="cardinality"]`)))
	b.waitFor("the cardinality tables", `document.querySelector(".stat-table")`)
	card := evalJS[string](b, `document.querySelector(".cardinality").innerText`)
	for _, w := range []string{"ui_test_requests_total", "code=200", "ui_test_build_info"} {
		if !strings.Contains(card, w) {
			t.Errorf("cardinality view lacks %q:\n%s", w, card)
		}
	}
	if strings.Contains(card, "other_tenant") {
		t.Errorf("cardinality view shows another tenant's metric:\n%s", card)
	}

	// The cluster view: open without auth.
	b.do("cluster", chromedp.Click(chromedp.CSS(`.nav a[data-page="cluster"]`)))
	b.waitFor("the ring", `document.querySelector(".page .badge.ok") && document.querySelectorAll(".panel table").length >= 2`)

	if errs := b.pageErrors(); len(errs) > 0 {
		t.Fatalf("the page logged errors: %v", errs)
	}
}

// TestUIBrowserAuth: with auth on, the page asks for a token (and says
// so when the node refuses one), lists the token's tenants, queries two of
// them together (federated, each series with its __tenant_id__), and tells
// a token without the admin scope that the cluster view needs it.
func TestUIBrowserAuth(t *testing.T) {
	b := newBrowser(t, 1280, 800)
	path, tokens := writeAuthFile(t, []auth.Entry{
		{Name: "writer", Tenants: []string{"team-a", "team-b"}, Scopes: []auth.Scope{auth.ScopeWrite}},
		{Name: "grafana", Tenants: []string{"team-a", "team-b"}, Scopes: []auth.Scope{auth.ScopeRead}},
	})
	base := startUINode(t, "-auth.config-file", path)
	now := time.Now()
	pushUISeries(t, base, "team-a", tokens["writer"], uiCodes[:2], now)
	pushUISeries(t, base, "team-b", tokens["writer"], uiCodes[2:], now)

	b.do("open the UI", chromedp.Navigate(base+"/"))
	b.waitFor("the sign-in dialog", `document.querySelector("dialog.dialog[open]")`)
	b.do("a wrong token", chromedp.SendKeys(chromedp.CSS(`dialog input[type=password]`), "myelin_wrong"), pressEnter())
	b.waitFor("the refusal", `document.querySelector(".dialog-error").textContent.includes("does not know this token")`)
	b.do("the token",
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
		chromedp.KeyEvent(kb.Backspace),
		chromedp.SendKeys(chromedp.CSS(`dialog input[type=password]`), tokens["grafana"]),
		chromedp.Click(chromedp.CSS(`dialog button[type=submit]`)))
	b.waitFor("the signed-in header", `document.querySelector(".who") && document.querySelector(".who").textContent.includes("grafana")`)

	// Two tenants: pick both, then query them together.
	b.do("open the tenant menu", chromedp.Click(chromedp.CSS(".tenant-button")))
	names := evalJS[[]string](b, `[...document.querySelectorAll(".menu-item")].map(e => e.textContent)`)
	if strings.Join(names, ",") != "team-a,team-b" {
		t.Fatalf("tenant menu = %q, want the token's team-a, team-b", names)
	}
	b.do("pick both",
		chromedp.Click(chromedp.CSS(`.menu-item:nth-of-type(1) input`)),
		chromedp.Click(chromedp.CSS(`.menu-item:nth-of-type(2) input`)),
		chromedp.Click(chromedp.CSS(`.menu-actions button`)))
	b.waitFor("both tenants chosen", `document.querySelector(".tenant-button").textContent.includes("team-a|team-b")`)
	b.typeQuery(`sum by (__tenant_id__, code) (rate(ui_test_requests_total[5m]))`)
	b.do("run", chromedp.KeyEvent(kb.Escape), chromedp.Click(chromedp.CSS("button.run")))
	b.waitFor("three federated series", `document.querySelectorAll(".legend-item").length === 3`)
	legend := evalJS[[]string](b, `[...document.querySelectorAll(".legend-item .labels")].map(e => e.textContent)`)
	want := `{__tenant_id__="team-a", code="200"},{__tenant_id__="team-a", code="404"},{__tenant_id__="team-b", code="500"}`
	if strings.Join(legend, ",") != want {
		t.Fatalf("legend = %q, want %s", legend, want)
	}

	// The ring needs admin; this token reads only.
	b.do("cluster", chromedp.Click(chromedp.CSS(`.nav a[data-page="cluster"]`)))
	b.waitFor("the admin-only note", `document.querySelector(".message.warning") && document.querySelector(".message.warning").textContent.includes("admin")`)

	if errs := b.pageErrors(); len(errs) > 0 {
		t.Fatalf("the page logged errors: %v", errs)
	}
}

// checkPlotColors requires each series colour (#rrggbb) on at least 50
// pixels of the plot's PNG: each series is drawn, not only listed.
func checkPlotColors(t *testing.T, pngBytes []byte, colors []string) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatalf("decode the plot's screenshot: %v", err)
	}
	if len(colors) == 0 {
		t.Fatal("no series colours")
	}
	for _, c := range colors {
		var r, g, bl uint8
		if _, err := fmt.Sscanf(c, "#%02x%02x%02x", &r, &g, &bl); err != nil {
			t.Fatalf("colour %q: %v", c, err)
		}
		if n := countNear(img, r, g, bl, 40); n < 50 {
			t.Errorf("series colour %s on %d pixels of the plot, want at least 50: the series is not drawn", c, n)
		}
	}
}

// countNear counts the pixels within tol of (r, g, b) in every channel.
func countNear(img image.Image, r, g, b uint8, tol int) int {
	near := func(x uint32, want uint8) bool { return math.Abs(float64(int(x>>8)-int(want))) <= float64(tol) }
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr, r) && near(pg, g) && near(pb, b) {
				n++
			}
		}
	}
	return n
}

// dayPieces is how many pieces the query frontend's 24 h split cuts
// [start, end] into: its boundaries are multiples of a day since the
// epoch, UTC midnights.
func dayPieces(start, end time.Time) int {
	day := int64(24 * time.Hour / time.Millisecond)
	return int(end.UnixMilli()/day-start.UnixMilli()/day) + 1
}

// uiStatLine returns the line of the UI's status line that starts with
// name, "" if none.
func uiStatLine(stats, name string) string {
	for _, l := range strings.Split(stats, "\n") {
		if strings.HasPrefix(l, name) {
			return l
		}
	}
	return ""
}
