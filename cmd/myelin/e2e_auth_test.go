package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myelindb/myelin/server/auth"
)

// TestE2EAuth: Debian's Prometheus 2.42, which drops remote_write
// "headers", writes to myelin with auth on through the settings it does
// send, `authorization: credentials_file:` (tenant e2e, its token made
// by 'myelin token create' as the README says) and `basic_auth:`
// (tenant e2e-basic, the token as the password); queries go with a
// Bearer token, as Grafana's data source sends one. Every series
// Prometheus has in the window is in myelin with identical samples and
// answers, as without auth; a token of both tenants reads them together
// with a __tenant_id__ label; Prometheus lost no sample to a refusal.
func TestE2EAuth(t *testing.T) {
	const basicTenant = "e2e-basic"
	path, tokens := writeAuthFile(t, []auth.Entry{
		{Name: "prometheus-basic", Tenants: []string{basicTenant}, Scopes: []auth.Scope{auth.ScopeWrite}},
		{Name: "grafana", Tenants: []string{e2eTenant}, Scopes: []auth.Scope{auth.ScopeRead}},
		{Name: "federated", Tenants: []string{e2eTenant, basicTenant}, Scopes: []auth.Scope{auth.ScopeRead}},
	})
	// Prometheus's token as the README makes it: its entry added to the
	// file, the token itself in a file Prometheus reads.
	tokenFile := filepath.Join(t.TempDir(), "e2e.token")
	var out bytes.Buffer
	if err := runCommand([]string{"token", "create", "-tenant", e2eTenant, "-scopes", "write", "-file", path}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startE2EWith(t, []string{"-auth.config-file", path}, func(addr string) string {
		return fmt.Sprintf(`remote_write:
  - url: http://%s/api/v1/push
    authorization:
      credentials_file: %s
`+e2eQueueConfig+`  - url: http://%s/prometheus/api/v1/write
    basic_auth:
      username: %s
      password: %s
`+e2eQueueConfig, addr, tokenFile, addr, basicTenant, tokens["prometheus-basic"])
	})
	s.token = tokens["grafana"]
	end := s.startMs + 14_000
	s.waitWritten(t, end+2000, 40*time.Second)
	start := s.startMs - 1000
	s.compareWindow(t, start, end, 15*time.Second)
	s.compareQueries(t, start, end)

	// Basic auth's tenant, read as Grafana's basic auth sends it (the
	// second queue may lag the first by a batch).
	fed := apiClient{name: "myelin", base: "http://" + s.myelin.addr + "/prometheus/api/v1", token: tokens["federated"]}
	var last string
	waitFor(t, 15*time.Second, "the basic_auth tenant's data", func() bool {
		req, err := http.NewRequest("GET", fed.base+"/query?query=count(up)&time="+apiTime(end), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("grafana:"+tokens["federated"])))
		req.Header.Set("X-Scope-OrgID", basicTenant)
		resp, err := e2eHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		return resp.StatusCode == 200 && strings.Contains(string(b), `,"3"]`)
	})
	t.Logf("count(up) of %s with Basic auth: %s", basicTenant, last)

	// Both tenants at once.
	fed.tenant = e2eTenant + "|" + basicTenant
	res, err := fed.query(`count by (__tenant_id__) (up)`, end)
	if err != nil {
		t.Fatal(err)
	}
	want := result{
		`{__tenant_id__="e2e"}`:       {{end, "3"}},
		`{__tenant_id__="e2e-basic"}`: {{end, "3"}},
	}
	if d := diffResults("want", want, "myelin", res, 5, true); d != nil {
		t.Fatalf("federated count by tenant:\n%s", strings.Join(d, "\n"))
	}

	// Every refusal would have dropped samples for good (4xx).
	failed, err := s.promAPI().scalarValue(`sum(prometheus_remote_storage_samples_failed_total)`)
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Fatalf("prometheus failed to send %v samples", failed)
	}
}
