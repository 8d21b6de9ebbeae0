package alertmanager

import "github.com/myelindb/myelin/server/internal/tenantreg"

// exported are the metrics of the tenants' Alertmanagers (each in its
// own registry, named by the library) that /metrics shows, under the
// myelin_ prefix with a tenant label: Cortex's
// cortex_alertmanager_notifications_total{user, integration} and its
// siblings, with our prefix and our per-tenant label.
var exported = map[string]string{
	"alertmanager_notifications_total":                "The total number of attempted notifications, per tenant and integration.",
	"alertmanager_notifications_failed_total":         "The total number of failed notifications, per tenant, integration and reason.",
	"alertmanager_notification_requests_total":        "The total number of attempted notification requests, per tenant and integration.",
	"alertmanager_notification_requests_failed_total": "The total number of failed notification requests, per tenant and integration.",
	"alertmanager_notifications_suppressed_total":     "The total number of notifications suppressed (silenced, inhibited, outside active or within muted time intervals), per tenant and reason.",
	"alertmanager_alerts":                             "How many alerts the tenant's Alertmanager holds, by state.",
	"alertmanager_alerts_received_total":              "The total number of alerts received through the API, per tenant and status.",
	"alertmanager_alerts_invalid_total":               "The total number of alerts received through the API that did not validate, per tenant.",
	"alertmanager_silences":                           "How many silences the tenant has, by state.",
	"alertmanager_state_replicated_total":             "The total number of silence (kind silences) and notification log (kind nflog) changes committed to the metadata group, per tenant.",
	"alertmanager_state_replication_failed_total":     "The total number of silence and notification log changes that could not be committed to the metadata group, per tenant and kind.",
}

func newTenantMetrics() *tenantreg.Collector { return tenantreg.New("myelin_", exported) }
