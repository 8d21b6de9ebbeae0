package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/common/model"

	"github.com/myelindb/myelin/server/tenant"
)

// On a cluster each tenant's Alertmanager runs on its owner node
// (Metadata.Owner); the other nodes forward to the owner's internal
// handler, over the nodes' own listener and its node auth (as the
// querier's remote reads):
//
//	InternalPrefix + PathPrefix + "/..."  the tenant's API v2 request, the
//	                                      tenant in X-Scope-OrgID
//	POST PushPath                         the ruler's alerts (JSON, a list
//	                                      of Alertmanager's alerts), the
//	                                      tenant in X-Scope-OrgID; 204
//
// A node that does not own the tenant (any more) answers 421; it never
// forwards again, so a request makes one hop at most.
const InternalPrefix = "/internal"

// PushPath is where the owner takes the alerts of other nodes' rulers.
const PushPath = InternalPrefix + PathPrefix + "-alerts"

// forwardTimeout bounds the ruler's send of alerts to the owner (the
// rules manager waits for it; it resends what failed).
const forwardTimeout = 5 * time.Second

// forward sends the request to the owner's internal handler and copies
// its answer back.
func (m *Multitenant) forward(w http.ResponseWriter, r *http.Request, owner, org string) {
	addr := ""
	if owner != "" {
		addr = m.opts.Metadata.Address(owner)
	}
	if addr == "" {
		http.Error(w, fmt.Sprintf("no node runs the Alertmanager of tenant %s now (this node has not heard from the cluster, or the owner %q is unknown); retry", org, owner),
			http.StatusServiceUnavailable)
		return
	}
	target := &url.URL{Scheme: "http", Host: addr, Path: InternalPrefix}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The owner trusts the node (node auth), not the user's
			// credentials: the tenant is the one this node resolved.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set(tenant.Header, org)
		},
		Transport: m.opts.Metadata.Client().Transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			m.opts.Logger.Warn("alertmanager: forward to the owner", "tenant", org, "owner", owner, "err", err)
			// 503, not 502: the owner may be dying, and the next one
			// answers once the cluster has declared it dead; retry.
			http.Error(w, fmt.Sprintf("forward to node %s, which runs the Alertmanager of tenant %s: %v; retry", owner, org, err), http.StatusServiceUnavailable)
		},
	}
	p.ServeHTTP(w, r)
}

// forwardAlerts posts alerts to the owner's push handler.
func (m *Multitenant) forwardAlerts(ctx context.Context, owner, org string, alerts []*alert.Alert) error {
	addr := ""
	if owner != "" {
		addr = m.opts.Metadata.Address(owner)
	}
	if addr == "" {
		return fmt.Errorf("no node runs the Alertmanager of tenant %s now (owner %q)", org, owner)
	}
	body := make([]model.Alert, len(alerts))
	for i, a := range alerts {
		body[i] = a.Alert
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+PushPath, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set(tenant.Header, org)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.opts.Metadata.Client().Do(req)
	if err != nil {
		return fmt.Errorf("send alerts of tenant %s to node %s: %w", org, owner, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("send alerts of tenant %s to node %s: %s: %s", org, owner, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// InternalHandler serves other nodes' forwarded requests and alerts
// (mount it at InternalPrefix+PathPrefix+"/" and PushPath on the nodes' internal server, never
// on the public port: it trusts X-Scope-OrgID).
func (m *Multitenant) InternalHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		org, err := tenant.FromRequest(r, true)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, self := m.owner(org); !self {
			http.Error(w, "this node does not run the Alertmanager of tenant "+org, http.StatusMisdirectedRequest)
			return
		}
		if r.URL.Path == PushPath {
			m.servePush(w, r, org)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, InternalPrefix+PathPrefix+"/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = PathPrefix+"/"+rest, ""
		m.serveLocal(w, r2, org)
	})
}

func (m *Multitenant) servePush(w http.ResponseWriter, r *http.Request, org string) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var in []model.Alert
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&in); err != nil {
		http.Error(w, "decode alerts: "+err.Error(), http.StatusBadRequest)
		return
	}
	alerts := make([]*alert.Alert, len(in))
	for i := range in {
		alerts[i] = &alert.Alert{Alert: in[i]}
	}
	am, err := m.running(r.Context(), org)
	if errors.Is(err, errMoved) {
		http.Error(w, err.Error(), http.StatusMisdirectedRequest)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := am.put(r.Context(), alerts); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bufferedResponse holds a handler's answer until it is known whether
// to send it.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header {
	if b.header == nil {
		b.header = http.Header{}
	}
	return b.header
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferedResponse) writeTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.code == 0 {
		b.code = http.StatusOK
	}
	w.WriteHeader(b.code)
	w.Write(b.body.Bytes())
}
