package frontend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
)

// The decoder of the API's answers before decode.go's streaming one,
// with encoding/json: kept to test that one against it
// (FuzzDecodeResult).

// apiResponse is the envelope of the Prometheus API's JSON.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

type apiData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
	Stats      json.RawMessage `json:"stats"`
}

type apiSeries struct {
	Metric     json.RawMessage      `json:"metric"`
	Values     [][2]json.RawMessage `json:"values"`
	Histograms [][2]json.RawMessage `json:"histograms"`
	Value      *[2]json.RawMessage  `json:"value"`
	Histogram  *[2]json.RawMessage  `json:"histogram"`
}

// decodeResultStd decodes a successful answer of the query API.
func decodeResultStd(body []byte) (*result, error) {
	var resp apiResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("decode answer: status %q: %s", resp.Status, resp.Error)
	}
	var data apiData
	if err := json.Unmarshal(resp.Data, &data); err != nil {
		return nil, fmt.Errorf("decode answer's data: %w", err)
	}
	r := &result{resultType: data.ResultType, warnings: resp.Warnings, infos: resp.Infos}
	if len(data.Stats) > 0 && !bytes.Equal(data.Stats, []byte("null")) {
		r.stats = new(queryStats)
		if err := json.Unmarshal(data.Stats, r.stats); err != nil {
			return nil, fmt.Errorf("decode answer's stats: %w", err)
		}
	}
	switch data.ResultType {
	case "matrix", "vector":
		var raw []apiSeries
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, fmt.Errorf("decode %s: %w", data.ResultType, err)
		}
		r.series = make([]series, len(raw))
		for i, rs := range raw {
			s, err := decodeSeriesStd(rs)
			if err != nil {
				return nil, fmt.Errorf("decode %s: %w", data.ResultType, err)
			}
			r.series[i] = s
		}
	case "scalar", "string":
		// Kept as written: Prometheus writes these with encoding/json
		// (promql.Scalar.MarshalJSON), not the codec of series.
		r.raw = data.Result
	default:
		return nil, fmt.Errorf("decode answer: unknown result type %q", data.ResultType)
	}
	return r, nil
}

func decodeSeriesStd(rs apiSeries) (series, error) {
	s := series{metric: rs.Metric}
	var m map[string]string
	if err := json.Unmarshal(rs.Metric, &m); err != nil {
		return s, fmt.Errorf("metric: %w", err)
	}
	s.lbls = labels.FromMap(m)
	if rs.Value != nil {
		rs.Values = [][2]json.RawMessage{*rs.Value}
	}
	if rs.Histogram != nil {
		rs.Histograms = [][2]json.RawMessage{*rs.Histogram}
	}
	s.floats = make([]fpoint, 0, len(rs.Values))
	for _, p := range rs.Values {
		fp, err := decodeFPointStd(p)
		if err != nil {
			return s, err
		}
		s.floats = append(s.floats, fp)
	}
	for _, p := range rs.Histograms {
		t, err := parseTimestamp(p[0])
		if err != nil {
			return s, err
		}
		s.hists = append(s.hists, hpoint{t: t, raw: p[1]})
	}
	return s, nil
}

func decodeFPointStd(p [2]json.RawMessage) (fpoint, error) {
	t, err := parseTimestamp(p[0])
	if err != nil {
		return fpoint{}, err
	}
	var vs string
	if err := json.Unmarshal(p[1], &vs); err != nil {
		return fpoint{}, fmt.Errorf("value %s: %w", p[1], err)
	}
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil {
		return fpoint{}, fmt.Errorf("value %q: %w", vs, err)
	}
	return fpoint{t: t, v: v}, nil
}
