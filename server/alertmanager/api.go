package alertmanager

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"go.yaml.in/yaml/v3"

	"github.com/myelindb/myelin/server/tenant"
)

// maxConfigBodyBytes bounds a POSTed configuration: Alertmanager
// configurations with their templates are kilobytes; Mimir's default
// -alertmanager.max-config-size-bytes is unlimited, its advice 1 MB.
const maxConfigBodyBytes = 4 << 20

// Cortex's texts for the configuration API's errors.
const (
	errReadingConfiguration = "unable to read the Alertmanager config"
	errMarshallingYAML      = "error marshalling YAML Alertmanager config"
	errValidatingConfig     = "error validating Alertmanager config"
	errStoringConfiguration = "unable to store the Alertmanager config"
	errDeletingConfig       = "unable to delete the Alertmanager config"
)

// RegisterConfigAPI routes Cortex's Alertmanager configuration API with
// handle (server.Routes' registration, without its auth need, which the
// caller binds):
//
//	GET    /api/v1/alerts  the tenant's configuration (YAML: template_files, alertmanager_config); 404 "alertmanager config not found"
//	POST   /api/v1/alerts  set it (same YAML), validated: 400 saying why; 201
//	DELETE /api/v1/alerts  delete it (the tenant goes back to the fallback); 200
func (m *Multitenant) RegisterConfigAPI(handle func(pattern string, h http.Handler)) {
	handle("GET /api/v1/alerts", http.HandlerFunc(m.getConfig))
	handle("POST /api/v1/alerts", http.HandlerFunc(m.setConfig))
	handle("DELETE /api/v1/alerts", http.HandlerFunc(m.deleteConfig))
}

func tenantOf(w http.ResponseWriter, r *http.Request, multiTenant bool) (string, bool) {
	org, err := tenant.FromRequest(r, multiTenant)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, tenant.ErrMissing) {
			code = http.StatusUnauthorized
		}
		http.Error(w, err.Error(), code)
		return "", false
	}
	return org, true
}

func (m *Multitenant) getConfig(w http.ResponseWriter, r *http.Request) {
	org, ok := tenantOf(w, r, m.opts.MultiTenant)
	if !ok {
		return
	}
	uc, err := m.opts.Store.Get(r.Context(), org)
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		m.opts.Logger.Error("alertmanager: read config", "tenant", org, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b, err := marshalConfig(uc)
	if err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", errMarshallingYAML, err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(b)
}

func (m *Multitenant) setConfig(w http.ResponseWriter, r *http.Request) {
	org, ok := tenantOf(w, r, m.opts.MultiTenant)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBodyBytes))
	if err != nil {
		code := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, fmt.Sprintf("%s: %v", errReadingConfiguration, err), code)
		return
	}
	var uc UserConfig
	if err := yaml.Unmarshal(body, &uc); err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", errMarshallingYAML, err), http.StatusBadRequest)
		return
	}
	cfg, tmpl, err := ParseConfig(uc)
	if err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", errValidatingConfig, err), http.StatusBadRequest)
		return
	}
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	if err := m.opts.Store.Set(r.Context(), org, uc); err != nil {
		m.opts.Logger.Error("alertmanager: store config", "tenant", org, "err", err)
		http.Error(w, fmt.Sprintf("%s: %v", errStoringConfiguration, err), storeErrorCode(err))
		return
	}
	// Stored: this node runs it now if it runs the tenant's
	// Alertmanager, others at their next poll.
	if _, self := m.owner(org); !self {
		w.WriteHeader(http.StatusCreated)
		return
	}
	if err := m.applyParsed(org, uc, cfg, tmpl); err != nil {
		m.opts.Logger.Error("alertmanager: apply config", "tenant", org, "err", err)
		http.Error(w, fmt.Sprintf("apply the Alertmanager config: %v", err), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (m *Multitenant) deleteConfig(w http.ResponseWriter, r *http.Request) {
	org, ok := tenantOf(w, r, m.opts.MultiTenant)
	if !ok {
		return
	}
	if err := m.opts.Store.Delete(r.Context(), org); err != nil {
		m.opts.Logger.Error("alertmanager: delete config", "tenant", org, "err", err)
		http.Error(w, fmt.Sprintf("%s: %v", errDeletingConfig, err), storeErrorCode(err))
		return
	}
	m.Changed() // the tenant goes back to the fallback
	w.WriteHeader(http.StatusOK)
}

// storeErrorCode: 503 (retry) when the replicated store has no leader,
// 500 otherwise.
func storeErrorCode(err error) int {
	if errors.Is(err, ErrUnavailable) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
