package server

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// federationStorages: tenants a and b as newTenantStorages, and c, whose
// series carry a __tenant_id__ label of their own and one label set that
// sorts differently once the tenant label is added: {__name__="up"}
// sorts before {__name__="up", __source="x"}, but after it with
// __tenant_id__="c" added.
func federationStorages(t *testing.T) tenantStorages {
	ts := newTenantStorages(t)
	c := teststorage.New(t)
	app := c.Appender(context.Background())
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "j_c", "__tenant_id__", "own"),
		labels.FromStrings("__name__", "up", "__source", "x"),
		labels.FromStrings("__name__", "up"),
	} {
		_, err := app.Append(0, ls, 0, 7)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	ts["c"] = c
	return ts
}

func TestFederatedQuery(t *testing.T) {
	api, err := NewQueryAPI(federationStorages(t), QueryOptions{MultiTenant: true, Federation: true})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, path, tenant string
		form               url.Values
		wantCode           int
		wantData           string
	}{
		{"one tenant: no label", "/api/v1/query", "a", url.Values{"query": {"count by (job, __tenant_id__) (up)"}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[{"metric":{"job":"j_a"},"value":[135,"2"]}]}`},
		{"two tenants", "/api/v1/query", "b|a", url.Values{"query": {"count by (__tenant_id__) (up)"}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[{"metric":{"__tenant_id__":"a"},"value":[135,"2"]},{"metric":{"__tenant_id__":"b"},"value":[135,"2"]}]}`},
		{"sum over tenants", "/api/v1/query", "a|b", url.Values{"query": {"sum(up)"}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[{"metric":{},"value":[135,"36"]}]}`},
		{"matcher chooses a tenant", "/api/v1/query", "a|b", url.Values{"query": {`count by (__tenant_id__, job) (up{__tenant_id__="b"})`}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[{"metric":{"__tenant_id__":"b","job":"j_b"},"value":[135,"2"]}]}`},
		{"only a tenant matcher", "/api/v1/query", "a|b", url.Values{"query": {`count({__tenant_id__=~"a|z"})`}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[{"metric":{},"value":[135,"2"]}]}`},
		{"no tenant chosen", "/api/v1/query", "a|b", url.Values{"query": {`up{__tenant_id__="c"}`}, "time": {"135"}}, 200,
			`{"resultType":"vector","result":[]}`},
		{"own label kept", "/api/v1/query", "a|c", url.Values{"query": {`up{job="j_c"}`}, "time": {"0"}}, 200,
			`{"resultType":"vector","result":[{"metric":{"__name__":"up","__tenant_id__":"c","job":"j_c","original___tenant_id__":"own"},"value":[0,"7"]}]}`},
		{"matcher on the own label", "/api/v1/query", "a|c", url.Values{"query": {`count(up{original___tenant_id__="own"})`}, "time": {"0"}}, 200,
			`{"resultType":"vector","result":[{"metric":{},"value":[0,"1"]}]}`},
		// Two match[]: Prometheus's API merges sorted selects.
		{"series sorted", "/api/v1/series", "c|b", url.Values{"match[]": {`up{instance!="x"}`, `up{job="none"}`}, "start": {"0"}, "end": {"1"}}, 200,
			`[{"__name__":"up","__source":"x","__tenant_id__":"c"},{"__name__":"up","__tenant_id__":"b","instance":"y","job":"j_b"},{"__name__":"up","__tenant_id__":"c"},{"__name__":"up","__tenant_id__":"c","job":"j_c","original___tenant_id__":"own"}]`},
		{"labels", "/api/v1/labels", "a|c", nil, 200, `["__name__","__source","__tenant_id__","instance","job","original___tenant_id__"]`},
		{"labels of one tenant", "/api/v1/labels", "a|c", url.Values{"match[]": {`{__tenant_id__="a"}`}}, 200, `["__name__","__tenant_id__","instance","job"]`},
		{"tenant label values", "/api/v1/label/__tenant_id__/values", "b|a", nil, 200, `["a","b"]`},
		{"own label values", "/api/v1/label/original___tenant_id__/values", "a|c", nil, 200, `["own"]`},
		{"label values", "/api/v1/label/job/values", "a|b|c", url.Values{"limit": {"2"}}, 200, `["j_a","j_b"]`},
		{"bad tenant in set", "/api/v1/query", "a|b/c", url.Values{"query": {"up"}}, 400, ``},
		{"empty tenant in set", "/api/v1/query", "a||b", url.Values{"query": {"up"}}, 400, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, resp := call(t, api, http.MethodGet, tc.path, tc.tenant, tc.form)
			require.Equal(t, tc.wantCode, code, resp.Error)
			if tc.wantData != "" {
				require.JSONEq(t, tc.wantData, string(resp.Data))
			}
		})
	}
}

// A tenant's error fails a federated call and names the tenant.
func TestFederatedQuerierError(t *testing.T) {
	ts := newTenantStorages(t)
	f, err := newFederatedQuerier(failingStorage{ts, "b"}, []string{"a", "b"}, 0, 1<<40)
	require.NoError(t, err)
	defer f.Close()
	ctx := context.Background()
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for _, sorted := range []bool{false, true} {
		set := f.Select(ctx, sorted, nil, all)
		for set.Next() {
		}
		require.ErrorContains(t, set.Err(), "tenant b: broken")
	}
	_, _, err = f.LabelNames(ctx, nil)
	require.ErrorContains(t, err, "tenant b: broken")
	_, _, err = f.LabelValues(ctx, "job", nil)
	require.ErrorContains(t, err, "tenant b: broken")
	vs, _, err := f.LabelValues(ctx, "job", nil, labels.MustNewMatcher(labels.MatchEqual, TenantLabel, "a"))
	require.NoError(t, err, "b is not read")
	require.Equal(t, []string{"j_a"}, vs)
}

// failingStorage fails every call of one tenant's querier.
type failingStorage struct {
	tenantStorages
	broken string
}

func (s failingStorage) Querier(tenant string, mint, maxt int64) (storage.Querier, error) {
	if tenant == s.broken {
		return errQuerier{}, nil
	}
	return s.tenantStorages.Querier(tenant, mint, maxt)
}

type errQuerier struct{ storage.Querier }

var errBroken = errBrokenT{}

type errBrokenT struct{}

func (errBrokenT) Error() string { return "broken" }

func (errQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return storage.ErrSeriesSet(errBroken)
}

func (errQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errBroken
}

func (errQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errBroken
}

func (errQuerier) Close() error { return nil }
