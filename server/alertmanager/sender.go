package alertmanager

import (
	"context"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
)

// PrometheusSender is the Multitenant as the ruler's notifier: the
// alerts of Prometheus's rules manager, converted to Alertmanager's,
// are taken in process by the tenant's Alertmanager (no HTTP, no
// queue: Put only stores them; the dispatcher notifies later).
type PrometheusSender struct{ m *Multitenant }

// PrometheusSender returns m as the ruler's notifier.
func (m *Multitenant) PrometheusSender() PrometheusSender { return PrometheusSender{m} }

// Send hands alerts to the tenant's Alertmanager; alerts it refuses are
// logged with the reason (the rules manager resends firing alerts every
// resend delay, so a refused one is retried).
func (s PrometheusSender) Send(tenant string, alerts ...*notifier.Alert) {
	out := make([]*alert.Alert, 0, len(alerts))
	for _, a := range alerts {
		ta := &alert.Alert{}
		ta.Labels = make(model.LabelSet, a.Labels.Len())
		a.Labels.Range(func(l labels.Label) { ta.Labels[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		ta.Annotations = make(model.LabelSet, a.Annotations.Len())
		a.Annotations.Range(func(l labels.Label) { ta.Annotations[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		ta.StartsAt, ta.EndsAt, ta.GeneratorURL = a.StartsAt, a.EndsAt, a.GeneratorURL
		out = append(out, ta)
	}
	if err := s.m.Send(context.Background(), tenant, out); err != nil {
		s.m.opts.Logger.Warn("alertmanager: alerts from the ruler refused", "tenant", tenant, "alerts", len(alerts), "err", err)
	}
}
