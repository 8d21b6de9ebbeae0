package limits

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueryLimit matches every *QueryLimitError.
var ErrQueryLimit = errors.New("limits: query limit exceeded")

// QueryLimitError is a query stopped by one of its tenant's read limits.
// Its text is Mimir's, naming the limit, its value and its flag; the
// query API answers it 422 (errorType "execution"), as Mimir does.
type QueryLimitError struct{ msg string }

func (e *QueryLimitError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrQueryLimit) true.
func (e *QueryLimitError) Is(target error) bool { return target == ErrQueryLimit }

// NewQueryLimitError returns a QueryLimitError with text msg: for a
// limit error that crossed the network as text (server/querier).
func NewQueryLimitError(msg string) *QueryLimitError { return &QueryLimitError{msg: msg} }

// cardinalityStrategy is Mimir's advice in its series and chunk limit
// errors.
const cardinalityStrategy = "Consider reducing the time range and/or number of series selected by the query. One way to reduce the number of selected series is to add more label matchers to the query"

// SeriesPerQueryError is the error of a query past
// max_fetched_series_per_query.
func SeriesPerQueryError(limit int) *QueryLimitError {
	return &QueryLimitError{msg: strategyMessage(fmt.Sprintf("the query exceeded the maximum number of series (limit: %d series)", limit),
		"max-series-per-query", "max_fetched_series_per_query")}
}

// ChunkBytesPerQueryError is the error of a query past
// max_fetched_chunk_bytes_per_query.
func ChunkBytesPerQueryError(limit int) *QueryLimitError {
	return &QueryLimitError{msg: strategyMessage(fmt.Sprintf("the query exceeded the aggregated chunks size limit (limit: %d bytes)", limit),
		"max-chunks-bytes-per-query", "max_fetched_chunk_bytes_per_query")}
}

// QueryLengthError is the error of a query whose time range is longer
// than max_query_length.
func QueryLengthError(length, limit time.Duration) *QueryLimitError {
	return &QueryLimitError{msg: perTenantMessage(fmt.Sprintf("the query time range exceeds the limit (query length: %s, limit: %s)", length, limit),
		"max-query-length", "max_query_length")}
}

// perTenantMessage is Mimir's form of a per-tenant limit's error:
// the message, the error ID, and the flags of the limits.
func perTenantMessage(msg, id string, names ...string) string {
	flags, plural := flagList(names)
	return fmt.Sprintf("%s (err-mimir-%s). To adjust the related per-tenant limit%s, configure %s, or contact your service administrator.", msg, id, plural, flags)
}

// strategyMessage is perTenantMessage with Mimir's advice to narrow the
// query first.
func strategyMessage(msg, id string, names ...string) string {
	flags, plural := flagList(names)
	return fmt.Sprintf("%s (err-mimir-%s). %s. Otherwise, to adjust the related per-tenant limit%s, configure %s, or contact your service administrator.",
		msg, id, cardinalityStrategy, plural, flags)
}

func flagList(names []string) (string, string) {
	flags := make([]string, len(names))
	for i, n := range names {
		flags[i] = "-" + Flag[n]
	}
	if len(flags) == 1 {
		return flags[0], ""
	}
	return strings.Join(flags[:len(flags)-1], ", ") + " and " + flags[len(flags)-1], "s"
}

// SeriesPerUserError is the text of a series refused by
// max_global_series_per_user, Mimir's.
func SeriesPerUserError(limit int) string {
	return perTenantMessage(fmt.Sprintf("per-user series limit of %d exceeded", limit), "max-series-per-user", "max_global_series_per_user")
}

// SeriesPerMetricError is the text of a series refused by
// max_global_series_per_metric, Mimir's.
func SeriesPerMetricError(limit int) string {
	return perTenantMessage(fmt.Sprintf("per-metric series limit of %d exceeded", limit), "max-series-per-metric", "max_global_series_per_metric")
}

// MetadataPerUserError is the text of metadata refused by
// max_global_metadata_per_user, Mimir's.
func MetadataPerUserError(limit int) string {
	return perTenantMessage(fmt.Sprintf("per-user metric metadata limit of %d exceeded", limit), "max-metadata-per-user", "max_global_metadata_per_user")
}

// MetadataPerMetricError is the text of metadata refused by
// max_global_metadata_per_metric, Mimir's.
func MetadataPerMetricError(limit int) string {
	return perTenantMessage(fmt.Sprintf("per-metric metadata limit of %d exceeded", limit), "max-metadata-per-metric", "max_global_metadata_per_metric")
}

// QueryBudget is what one query (one request of the query API) may
// still read: max_fetched_series_per_query, counted as the query's
// series are returned to PromQL (each label set once, whichever groups
// and selects it came from), and max_fetched_chunk_bytes_per_query,
// counted as chunks are read or received. The storage also asks it
// before holding a select's series in memory (CheckSelect), so a select
// past the limit stops before it loads them. A nil *QueryBudget allows
// everything. Safe for concurrent use (the groups of a query are read in
// parallel).
type QueryBudget struct {
	maxSeries     int
	maxChunkBytes int
	chunkBytes    atomic.Int64
	mu            struct {
		sync.Mutex
		// seen holds the hashes of the series returned so far; at most
		// maxSeries+1 of them (8 bytes and a map slot each).
		seen map[uint64]struct{}
	}
}

// NewQueryBudget returns the budget of a query with these limits (zero:
// no limit), nil if there is none.
func NewQueryBudget(maxSeries, maxChunkBytes int) *QueryBudget {
	if maxSeries <= 0 && maxChunkBytes <= 0 {
		return nil
	}
	return &QueryBudget{maxSeries: max(maxSeries, 0), maxChunkBytes: max(maxChunkBytes, 0)}
}

// Limits returns the budget's limits (zero: none).
func (b *QueryBudget) Limits() (maxSeries, maxChunkBytes int) {
	if b == nil {
		return 0, 0
	}
	return b.maxSeries, b.maxChunkBytes
}

// CheckSelect refuses a select of one group that matched n series: more
// than the query may return in all. It keeps no count (the series are
// counted as they are returned, AddSeries).
func (b *QueryBudget) CheckSelect(n int) error {
	if b == nil || b.maxSeries == 0 || n <= b.maxSeries {
		return nil
	}
	return SeriesPerQueryError(b.maxSeries)
}

// AddSeries counts a series returned to the query, by the hash of its
// label set; a series counted before is not counted again.
func (b *QueryBudget) AddSeries(hash uint64) error {
	if b == nil || b.maxSeries == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.seen == nil {
		b.mu.seen = map[uint64]struct{}{}
	}
	b.mu.seen[hash] = struct{}{}
	if len(b.mu.seen) > b.maxSeries {
		return SeriesPerQueryError(b.maxSeries)
	}
	return nil
}

// AddChunkBytes counts n bytes of chunks read for the query.
func (b *QueryBudget) AddChunkBytes(n int) error {
	if b == nil || b.maxChunkBytes == 0 {
		return nil
	}
	if b.chunkBytes.Add(int64(n)) > int64(b.maxChunkBytes) {
		return ChunkBytesPerQueryError(b.maxChunkBytes)
	}
	return nil
}

type budgetKey struct{}

// WithQueryBudget returns a context carrying b, for the storage under a
// tenant-less interface (storage.Querier).
func WithQueryBudget(ctx context.Context, b *QueryBudget) context.Context {
	if b == nil {
		return ctx
	}
	return context.WithValue(ctx, budgetKey{}, b)
}

// QueryBudgetFrom returns the budget ctx carries, nil if none.
func QueryBudgetFrom(ctx context.Context) *QueryBudget {
	b, _ := ctx.Value(budgetKey{}).(*QueryBudget)
	return b
}
