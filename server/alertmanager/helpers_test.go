package alertmanager

import (
	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/common/model"
)

func testAlerts(lsets ...map[string]string) []*alert.Alert {
	var out []*alert.Alert
	for _, ls := range lsets {
		a := &alert.Alert{}
		a.Labels = model.LabelSet{}
		for k, v := range ls {
			a.Labels[model.LabelName(k)] = model.LabelValue(v)
		}
		out = append(out, a)
	}
	return out
}
