package querier

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// TenantLimits are the per-query limits of each tenant; 0 means no limit.
// *limits.Overrides implements them, and so does Limits (the same for
// every tenant). The methods are called once per query.
type TenantLimits interface {
	MaxFetchedSeriesPerQuery(tenant string) int
	MaxFetchedChunksPerQuery(tenant string) int
	MaxFetchedChunkBytesPerQuery(tenant string) int
	MaxQueryLength(tenant string) time.Duration
}

// MaxFetchedSeriesPerQuery implements TenantLimits.
func (l Limits) MaxFetchedSeriesPerQuery(string) int { return int(l.MaxFetchedSeries) }

// MaxFetchedChunksPerQuery implements TenantLimits.
func (l Limits) MaxFetchedChunksPerQuery(string) int { return int(l.MaxFetchedChunks) }

// MaxFetchedChunkBytesPerQuery implements TenantLimits.
func (l Limits) MaxFetchedChunkBytesPerQuery(string) int { return int(l.MaxFetchedChunkBytes) }

// MaxQueryLength implements TenantLimits: Limits has none.
func (Limits) MaxQueryLength(string) time.Duration { return 0 }

// LimitError is a query stopped by a per-query limit. It is never
// tolerated as an ingester failure: every replica would hit it too. The
// API answers it with 422, as upstream answers execution errors.
type LimitError struct {
	What   string // "series", "chunks", "chunk bytes"
	Max    int64
	Tenant string
	Limit  string // the configuration name, e.g. limits.max_fetched_series_per_query
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("the query exceeded the maximum number of %s fetched (limit: %d) for tenant %q; use more selective matchers or a shorter time range, or raise %s", e.What, e.Max, e.Tenant, e.Limit)
}

// QueryLengthError is a select over a longer time range than the tenant's
// limits.max_query_length.
type QueryLengthError struct {
	Length, Max time.Duration
	Tenant      string
}

func (e *QueryLengthError) Error() string {
	return fmt.Sprintf("the query time range exceeds the limit (query length: %s, limit: %s) for tenant %q; shorten the time range or raise limits.max_query_length", e.Length, e.Max, e.Tenant)
}

// usageLimits are one tenant's limits as one query applies them.
type usageLimits struct {
	tenant                             string
	maxSeries, maxChunks, maxChunkByte int64
}

// usage counts what one query fetched, across all its selects.
type usage struct {
	limits                usageLimits
	series, chunks, bytes atomic.Int64
	limited               *prometheus.CounterVec
}

// newUsage returns the usage of a query of ctx's tenant, nil when it has
// no fetch limits.
func newUsage(ctx context.Context, l TenantLimits, limited *prometheus.CounterVec) *usage {
	id := queryTenant(ctx)
	ul := usageLimits{
		tenant:       id,
		maxSeries:    int64(l.MaxFetchedSeriesPerQuery(id)),
		maxChunks:    int64(l.MaxFetchedChunksPerQuery(id)),
		maxChunkByte: int64(l.MaxFetchedChunkBytesPerQuery(id)),
	}
	if ul.maxSeries <= 0 && ul.maxChunks <= 0 && ul.maxChunkByte <= 0 {
		return nil
	}
	return &usage{limits: ul, limited: limited}
}

// queryTenant is the tenant of a query; a query without one (internal
// callers while multi-tenancy is off) is the default tenant's.
func queryTenant(ctx context.Context) string {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return tenant.DefaultTenant
	}
	return id
}

// checkQueryLength refuses a select over more than the tenant's
// limits.max_query_length.
func checkQueryLength(ctx context.Context, l TenantLimits, mint, maxt int64) error {
	if l == nil {
		return nil
	}
	id := queryTenant(ctx)
	limit := l.MaxQueryLength(id)
	if limit <= 0 {
		return nil
	}
	if length := time.Duration(maxt-mint) * time.Millisecond; length > limit {
		return &QueryLengthError{Length: length, Max: limit, Tenant: id}
	}
	return nil
}

func (u *usage) over(n *atomic.Int64, add, max int64, what, limit string) error {
	if max <= 0 {
		return nil
	}
	if n.Add(add) > max {
		u.limited.WithLabelValues(what).Inc()
		return &LimitError{What: what, Max: max, Tenant: u.limits.tenant, Limit: limit}
	}
	return nil
}

// received counts one QueryStream message.
func (u *usage) received(chunks, bytes int64) error {
	if u == nil || (u.limits.maxChunks <= 0 && u.limits.maxChunkByte <= 0) {
		return nil
	}
	if err := u.over(&u.chunks, chunks, u.limits.maxChunks, "chunks", "limits.max_fetched_chunks_per_query"); err != nil {
		return err
	}
	return u.over(&u.bytes, bytes, u.limits.maxChunkByte, "chunk bytes", "limits.max_fetched_chunk_bytes_per_query")
}

func (u *usage) seriesLimited() bool { return u != nil && u.limits.maxSeries > 0 }

func (u *usage) addSeries() error {
	return u.over(&u.series, 1, u.limits.maxSeries, "series", "limits.max_fetched_series_per_query")
}

// countingSet counts the distinct series a merged set yields.
type countingSet struct {
	storage.SeriesSet
	u   *usage
	err error
}

func (c *countingSet) Next() bool {
	if c.err != nil || !c.SeriesSet.Next() {
		return false
	}
	if err := c.u.addSeries(); err != nil {
		c.err = err
		return false
	}
	return true
}

func (c *countingSet) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.SeriesSet.Err()
}

func (c *countingSet) Warnings() annotations.Annotations { return c.SeriesSet.Warnings() }

type countingChunkSet struct {
	storage.ChunkSeriesSet
	u   *usage
	err error
}

func (c *countingChunkSet) Next() bool {
	if c.err != nil || !c.ChunkSeriesSet.Next() {
		return false
	}
	if err := c.u.addSeries(); err != nil {
		c.err = err
		return false
	}
	return true
}

func (c *countingChunkSet) Err() error {
	if c.err != nil {
		return c.err
	}
	return c.ChunkSeriesSet.Err()
}
