package frontend

import (
	"encoding/json"
	"slices"
)

// queryStats is the "stats" object of a query's answer as the server
// writes it (Prometheus's stats.BuiltinStats and Myelin's
// seriesFetched), field for field in the same order, so that an answer
// the frontend put together has the shape of one the API wrote.
type queryStats struct {
	Timings       queryTimings  `json:"timings"`
	Samples       *querySamples `json:"samples,omitempty"`
	SeriesFetched int64         `json:"seriesFetched"`
}

type queryTimings struct {
	EvalTotalTime        float64 `json:"evalTotalTime"`
	ResultSortTime       float64 `json:"resultSortTime"`
	QueryPreparationTime float64 `json:"queryPreparationTime"`
	InnerEvalTime        float64 `json:"innerEvalTime"`
	ExecQueueTime        float64 `json:"execQueueTime"`
	ExecTotalTime        float64 `json:"execTotalTime"`
}

type querySamples struct {
	TotalQueryableSamplesPerStep []stepStat `json:"totalQueryableSamplesPerStep,omitempty"`
	TotalQueryableSamples        int64      `json:"totalQueryableSamples"`
	SamplesReadPerStep           []stepStat `json:"samplesReadPerStep,omitempty"`
	SamplesRead                  int64      `json:"samplesRead"`
	PeakSamples                  int        `json:"peakSamples"`
}

// stepStat is [seconds, count], as Prometheus writes it.
type stepStat [2]json.Number

// add adds the work of another part of the same query: times and counts
// add up, peaks are the largest of the parts (parts run apart; they may
// run at once, so this is a lower bound of the true peak), per-step
// counts of the same step add up.
func (s *queryStats) add(o *queryStats) {
	if o == nil {
		return
	}
	t, ot := &s.Timings, o.Timings
	t.EvalTotalTime += ot.EvalTotalTime
	t.ResultSortTime += ot.ResultSortTime
	t.QueryPreparationTime += ot.QueryPreparationTime
	t.InnerEvalTime += ot.InnerEvalTime
	t.ExecQueueTime += ot.ExecQueueTime
	t.ExecTotalTime += ot.ExecTotalTime
	s.SeriesFetched += o.SeriesFetched
	if o.Samples == nil {
		return
	}
	if s.Samples == nil {
		s.Samples = &querySamples{}
	}
	ss, os := s.Samples, o.Samples
	ss.TotalQueryableSamples += os.TotalQueryableSamples
	ss.SamplesRead += os.SamplesRead
	ss.PeakSamples = max(ss.PeakSamples, os.PeakSamples)
	ss.TotalQueryableSamplesPerStep = addSteps(ss.TotalQueryableSamplesPerStep, os.TotalQueryableSamplesPerStep)
	ss.SamplesReadPerStep = addSteps(ss.SamplesReadPerStep, os.SamplesReadPerStep)
}

// addSteps merges two per-step lists by step, adding the counts of a step
// in both; the result is sorted by step.
func addSteps(a, b []stepStat) []stepStat {
	if len(b) == 0 {
		return a
	}
	idx := make(map[json.Number]int, len(a))
	for i, s := range a {
		idx[s[0]] = i
	}
	sorted := true
	for _, s := range b {
		if i, ok := idx[s[0]]; ok {
			x, _ := a[i][1].Int64()
			y, _ := s[1].Int64()
			a[i][1] = json.Number(itoa(x + y))
			continue
		}
		if len(a) > 0 && stepSeconds(s) < stepSeconds(a[len(a)-1]) {
			sorted = false
		}
		idx[s[0]] = len(a)
		a = append(a, s)
	}
	if !sorted {
		slices.SortStableFunc(a, func(x, y stepStat) int {
			switch fx, fy := stepSeconds(x), stepSeconds(y); {
			case fx < fy:
				return -1
			case fx > fy:
				return 1
			}
			return 0
		})
	}
	return a
}

func stepSeconds(s stepStat) float64 {
	f, _ := s[0].Float64()
	return f
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
