package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/myelindb/myelin/server/tenant"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

func TestExprDepth(t *testing.T) {
	for _, tc := range []struct {
		name, expr string
		want       int
	}{
		{"empty", "", 0},
		{"number", "1", 0},
		{"selector", `up{job="a"}`, 1},
		{"matcher-operators-do-not-count", `up{job!="a",x=~"b",y!~"c"}`, 1},
		{"parens", "((1))", 2},
		{"chain", "1+2*3-4/5%6^7", 6},
		{"comparisons", "1 == 2 != 3 <= 4 >= 5 < 6 > 7", 6},
		{"bool", "1 > bool 2", 1},
		{"keywords", "a and b or c unless d AND e atan2 f", 5},
		{"keywords-inside-names", "android or order_total", 1},
		{"unary", "- - -1", 3},
		{"chain-after-group", "(((1)))+1+1+1", 6}, // ((((1)))+1)+1)+1: not 3
		{"groups", "(1+1)+(1+(1+1))", 5},
		{"real", `sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m]))`, 4},
		{"subquery", "max_over_time((rate(x[5m]))[1h:1m])", 4},
		{"strings-skipped", `label_replace(up, "a", "((((", "b", "[[[{{{\"(((")`, 1},
		{"raw-string", "x{a=`(((`}", 1},
		{"single-quotes", `x{a='(\'(('}`, 1},
		{"comment", "1 # ((((+++\n+ 2", 1},
		{"exponent-and-hex-overcount", "1e-3 + 0x1e+1", 3},
		{"unclosed", "((((", 4},
		{"unbalanced-closer", "))1+1", 1},
		{"unterminated-string", `x{a="((((`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, at := exprDepth(tc.expr, 1000)
			require.Equal(t, -1, at)
			require.Equal(t, tc.want, d)
		})
	}
	d, at := exprDepth(strings.Repeat("(", 2000), 10)
	require.Equal(t, 11, d)
	require.Equal(t, 10, at, "stops with 11 groups open")
}

// The parser's tree is at most twice as deep as exprDepth says (plus the
// root and a leaf): a call, a subquery or a range selector is two nodes
// for one bracket, so bounding exprDepth bounds the tree.
func TestExprDepthBoundsParser(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, expr := range []string{
		"1", "(((1)))+1+1+1", "1+1+1+(((1)))", "1+2*3^4^5-6", "-(-(-(1)))",
		`sum by (job) (rate(x{a="b"}[5m])) / on (job) group_left count(y) > bool 0`,
		"max_over_time((rate(x[5m]))[1h:1m])", "a and b or c unless d",
		"abs(abs(abs(abs(x))))", "rate(x[5m])", "sum(sum(sum(x)))", "max_over_time(max_over_time(rate(x[1m])[5m:])[1h:])",
		"x offset 5m @ 100", "-x^-x^-x",
		chain(50), parens(50), broom(500, 40),
	} {
		e, err := p.ParseExpr(expr)
		require.NoError(t, err, expr)
		got, at := exprDepth(expr, 10_000)
		require.Equal(t, -1, at)
		require.LessOrEqual(t, treeDepth(e), 2*got+2, expr)
	}
}

// treeDepth is the depth of the parser's tree; a leaf is 1.
func treeDepth(n parser.Node) int {
	d := 0
	for _, c := range parser.Children(n) {
		d = max(d, treeDepth(c))
	}
	return d + 1
}

func TestCheckExpr(t *testing.T) {
	require.NoError(t, checkExpr(parens(10), 100, 10))
	err := checkExpr(strings.Repeat("1+", 60)+"1", 100, 10)
	require.ErrorIs(t, err, ErrExpressionTooLarge)
	require.EqualError(t, err, "server: query expression too large: 121 bytes, the limit is 100 bytes")
	err = checkExpr(chain(11), 100, 10)
	require.ErrorIs(t, err, ErrExpressionTooDeep)
	require.EqualError(t, err, "server: query expression nested too deeply: 11 levels, the limit is 10 levels "+
		"(each level of brackets and each operator chained at one level adds one)")
	err = checkExpr(parens(11), 100, 10)
	require.ErrorIs(t, err, ErrExpressionTooDeep)
	require.EqualError(t, err, "server: query expression nested too deeply: more than 10 levels at byte 10, the limit is 10 levels "+
		"(each level of brackets and each operator chained at one level adds one)")
}

// parens is 1 in depth parentheses.
func parens(depth int) string {
	return strings.Repeat("(", depth) + "1" + strings.Repeat(")", depth)
}

// chain is 1+1+...+1 with depth operators.
func chain(depth int) string { return strings.Repeat("1+", depth) + "1" }

// broom is the costliest expression for the parser within size bytes and
// depth levels (exprDepth): as many leaves as fit, all as deep as the
// bound allows. A balanced tree of additions, in parentheses, hangs at
// the bottom of a chain. The parser's type checks walk each node's
// subtree, so their time is the sum of the leaves' depths.
func broom(size, depth int) string {
	var tree func(n int) string
	tree = func(n int) string {
		if n == 1 {
			return "1"
		}
		return "(" + tree(n/2) + "+" + tree(n-n/2) + ")"
	}
	// A tree of n leaves is ~4n bytes and 2*log2(n) levels deep, and the
	// chain 2 bytes a level: the sum of the leaves' depths, n*(chain+tree),
	// is largest with the chain as long as the depth allows.
	for n := max(1, (size-2*depth)/4); n > 1; n = n * 9 / 10 {
		b := tree(n)
		d, _ := exprDepth(b, depth)
		if d > depth || len(b) > size {
			continue
		}
		ops := min(depth-d, (size-len(b))/2)
		return b + strings.Repeat("+1", ops)
	}
	return chain(min(depth, size/2))
}

// BenchmarkParseDepth measures the PromQL parser's time against the depth
// of its input, for nested parentheses and for a chain of additions; the
// numbers choose DefaultMaxExpressionDepth (see query_guard.go). "parse"
// is the parser alone, "engine" what an /api/v1/query pays before
// evaluation starts (parse, then the engine's preprocessing walks).
//
//	go test -run '^$' -bench 'ParseDepth' -benchtime 3x ./server/
func BenchmarkParseDepth(b *testing.B) {
	for _, shape := range []struct {
		name string
		expr func(int) string
	}{{"parens", parens}, {"chain", chain}} {
		for _, depth := range []int{256, 1024, 4096, 16384, 65536} {
			expr := shape.expr(depth)
			b.Run(fmt.Sprintf("%s/depth=%d", shape.name, depth), func(b *testing.B) {
				benchParse(b, expr)
			})
		}
	}
}

// BenchmarkParseLimits measures the parser on the costliest expressions
// the guard lets through at its defaults, and the guard's own scan.
//
//	go test -run '^$' -bench 'ParseLimits' -benchtime 3x ./server/
func BenchmarkParseLimits(b *testing.B) {
	for _, depth := range []int{125, 250, 500, 1000, 2000} {
		expr := broom(DefaultMaxExpressionBytes, depth)
		b.Run(fmt.Sprintf("broom/depth=%d", depth), func(b *testing.B) {
			require.NoError(b, checkExpr(expr, DefaultMaxExpressionBytes, depth))
			benchParse(b, expr)
		})
	}
	b.Run("guard", func(b *testing.B) {
		expr := broom(DefaultMaxExpressionBytes, DefaultMaxExpressionDepth)
		b.SetBytes(int64(len(expr)))
		b.ReportAllocs()
		for b.Loop() {
			if err := checkExpr(expr, DefaultMaxExpressionBytes, DefaultMaxExpressionDepth); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchParse(b *testing.B, expr string) {
	b.Run("parse", func(b *testing.B) {
		p := parser.NewParser(parser.Options{})
		b.SetBytes(int64(len(expr)))
		for b.Loop() {
			if _, err := p.ParseExpr(expr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("engine", func(b *testing.B) {
		engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1, Timeout: time.Minute, Parser: parser.NewParser(parser.Options{})})
		q := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) { return storage.NoopQuerier(), nil })
		b.SetBytes(int64(len(expr)))
		for b.Loop() {
			qry, err := engine.NewInstantQuery(context.Background(), q, nil, expr, time.Unix(0, 0))
			if err != nil {
				b.Fatal(err)
			}
			qry.Close()
		}
	})
}

// The runaway queries: expressions that took the parser seconds to
// minutes, with no way to stop it, come back 400 before parsing, on every
// endpoint that parses an expression or a selector, GET or POST.
func TestQueryAPIRefusesRunawayExpressions(t *testing.T) {
	api, err := NewQueryAPI(newTenantStorages(t), QueryOptions{MultiTenant: true})
	require.NoError(t, err)
	deepChain := chain(60_000)  // 120 KB; ~10 s to parse
	deepParens := parens(1_000) // 2 KB
	huge := parens(100_000)     // 200 KB, the 3 minutes
	const (
		tooDeep  = "server: query expression nested too deeply: "
		tooLarge = "server: query expression too large: 200001 bytes, the limit is 131072 bytes"
	)
	for _, tc := range []struct {
		name, path, param, expr, wantErr string
	}{
		{"query-chain", "/api/v1/query", "query", deepChain, tooDeep + "60000 levels, the limit is 500 levels"},
		{"query-parens", "/api/v1/query", "query", deepParens, tooDeep + "more than 500 levels at byte 500, the limit is 500 levels"},
		{"query-huge", "/api/v1/query", "query", huge, tooLarge},
		{"query_range", "/prometheus/api/v1/query_range", "query", deepChain, tooDeep},
		{"query_exemplars", "/api/v1/query_exemplars", "query", deepChain, tooDeep},
		{"format_query", "/api/v1/format_query", "query", deepParens, tooDeep},
		{"parse_query", "/api/v1/parse_query", "query", huge, tooLarge},
		{"series", "/api/v1/series", "match[]", deepParens, tooDeep},
		{"labels", "/api/v1/labels", "match[]", huge, tooLarge},
		{"label-values", "/api/v1/label/job/values", "match[]", deepChain, tooDeep},
	} {
		for _, method := range []string{"GET", "POST"} {
			if method == "POST" && tc.name == "label-values" {
				continue // GET only in Prometheus's API
			}
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				form := url.Values{tc.param: {`up{job="a"}`, tc.expr}, "start": {"0"}, "end": {"30"}, "step": {"15"}}
				code, resp := call(t, api, method, tc.path, "a", form)
				require.Equal(t, http.StatusBadRequest, code)
				require.Equal(t, "error", resp.Status)
				require.Equal(t, "bad_data", resp.ErrorType)
				require.Contains(t, resp.Error, fmt.Sprintf("invalid parameter %q: ", tc.param)+tc.wantErr)
			})
		}
	}

	// At the limits, queries are answered.
	for _, expr := range []string{chain(500), parens(500), "sum(up) " + strings.Repeat(" ", DefaultMaxExpressionBytes-8)} {
		code, resp := call(t, api, "POST", "/api/v1/query", "a", url.Values{"query": {expr}, "time": {"135"}})
		require.Equal(t, http.StatusOK, code, resp.Error)
	}
}

func TestQueryAPIForm(t *testing.T) {
	api, err := NewQueryAPI(newTenantStorages(t), QueryOptions{MultiTenant: true, MaxExpressionBytes: 1000})
	require.NoError(t, err)
	do := func(r *http.Request) (int, apiResponse) {
		r.Header.Set(tenant.Header, "a")
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		var resp apiResponse
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp), w.Body.String())
		return w.Code, resp
	}

	// The body is read once, bounded: 8 times the expression limit.
	body := url.Values{"query": {"sum(up)"}, "time": {"135"}, "padding": {strings.Repeat("x", 8000)}}.Encode()
	r := httptest.NewRequest("POST", "/api/v1/query", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	code, resp := do(r)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "server: request body larger than 8000 bytes", resp.Error)

	// Multipart forms are checked too.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	require.NoError(t, mw.WriteField("query", strings.Repeat("-", 600)+"1"))
	require.NoError(t, mw.Close())
	r = httptest.NewRequest("POST", "/api/v1/query", &mp)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	code, resp = do(r)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, resp.Error, "nested too deeply")

	mp.Reset()
	mw = multipart.NewWriter(&mp)
	require.NoError(t, mw.WriteField("query", "count(up)"))
	require.NoError(t, mw.WriteField("time", "135"))
	require.NoError(t, mw.Close())
	r = httptest.NewRequest("POST", "/api/v1/query", &mp)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	code, resp = do(r)
	require.Equal(t, http.StatusOK, code, resp.Error)
	require.JSONEq(t, `{"resultType":"vector","result":[{"metric":{},"value":[135,"2"]}]}`, string(resp.Data))

	r = httptest.NewRequest("GET", "/api/v1/query?query=%zz", nil)
	code, resp = do(r)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, resp.Error, "server: read form: invalid URL escape")
}
