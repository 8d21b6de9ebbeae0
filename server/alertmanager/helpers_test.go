package alertmanager

import (
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/common/model"
)

func testAlerts(lsets ...map[string]string) []*types.Alert {
	var out []*types.Alert
	for _, ls := range lsets {
		a := &types.Alert{}
		a.Labels = model.LabelSet{}
		for k, v := range ls {
			a.Labels[model.LabelName(k)] = model.LabelValue(v)
		}
		out = append(out, a)
	}
	return out
}
