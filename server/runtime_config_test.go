package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRuntimeConfigHandler(t *testing.T) {
	o := testOverrides(t, "overrides:\n  team-a:\n    ingestion_rate: 50000\n    max_query_lookback: 30d\n  team-b: {}\n")
	loaded := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var lastErr error
	h := RuntimeConfigHandler(o, func() (string, time.Time, error) { return "/etc/myelin/runtime.yaml", loaded, lastErr })
	get := func(query string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/runtime_config"+query, nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get("")
	require.Equal(t, 200, code)
	require.Contains(t, body, "# runtime config /etc/myelin/runtime.yaml, sha256 "+o.Config().SHA256+", loaded 2025-01-02T03:04:05Z\noverrides:\n  team-a:\n    ingestion_rate: 50000\n    ingestion_burst_size: 200000\n")
	require.Contains(t, body, "    max_query_lookback: 30d\n")
	require.Contains(t, body, "  team-b:\n    ingestion_rate: 0\n")

	code, body = get("?mode=diff")
	require.Equal(t, 200, code)
	require.Contains(t, body, "overrides:\n  team-a:\n    ingestion_rate: 50000\n    max_query_lookback: 30d\n  team-b: {}\n")

	code, body = get("?tenant=team-c&mode=diff")
	require.Equal(t, 200, code)
	require.Contains(t, body, "# limits of tenant team-c: the defaults\n{}\n")
	code, body = get("?tenant=team-a")
	require.Equal(t, 200, code)
	require.Contains(t, body, "# limits of tenant team-a: overrides from the runtime config\ningestion_rate: 50000\n")
	require.Contains(t, body, "query_timeout: 2m\n")

	lastErr = errors.New("runtime config x: line 3: tenant \"a\": unknown limit \"nope\"\nline 5: oops")
	_, body = get("")
	require.Contains(t, body, "# the last reload failed; this config stays in force until the file loads:\n#   runtime config x: line 3: tenant \"a\": unknown limit \"nope\"\n#   line 5: oops\n")

	code, _ = get("?mode=full")
	require.Equal(t, 400, code)
	code, _ = get("?tenant=a%7Cb")
	require.Equal(t, 400, code)

	_, body = get("")
	require.Contains(t, body, "team-a")
	h = RuntimeConfigHandler(o, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/runtime_config", nil))
	require.Contains(t, rec.Body.String(), "# no runtime config file")
}
