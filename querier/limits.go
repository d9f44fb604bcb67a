package querier

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// LimitError is a query stopped by a per-query limit. It is never
// tolerated as an ingester failure: every replica would hit it too.
type LimitError struct {
	What string // "series", "chunks", "chunk bytes"
	Max  int64
	Flag string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("the query exceeded the maximum number of %s fetched (limit: %d); use more selective matchers or a shorter time range, or raise -%s", e.What, e.Max, e.Flag)
}

// usage counts what one query fetched, across all its selects.
type usage struct {
	limits                Limits
	series, chunks, bytes atomic.Int64
	limited               *prometheus.CounterVec
}

func (u *usage) over(n *atomic.Int64, add, max int64, what, flag string) error {
	if max <= 0 {
		return nil
	}
	if n.Add(add) > max {
		u.limited.WithLabelValues(what).Inc()
		return &LimitError{What: what, Max: max, Flag: flag}
	}
	return nil
}

// received counts one QueryStream message.
func (u *usage) received(m *ingesterpb.QueryStreamResponse) error {
	if u == nil || (u.limits.MaxFetchedChunks <= 0 && u.limits.MaxFetchedChunkBytes <= 0) {
		return nil
	}
	var chunks, bytes int64
	for _, s := range m.Series {
		chunks += int64(len(s.Chunks))
		for _, c := range s.Chunks {
			bytes += int64(len(c.Data))
		}
	}
	if err := u.over(&u.chunks, chunks, u.limits.MaxFetchedChunks, "chunks", "querier.max-fetched-chunks-per-query"); err != nil {
		return err
	}
	return u.over(&u.bytes, bytes, u.limits.MaxFetchedChunkBytes, "chunk bytes", "querier.max-fetched-chunk-bytes-per-query")
}

func (u *usage) seriesLimited() bool { return u != nil && u.limits.MaxFetchedSeries > 0 }

func (u *usage) addSeries() error {
	return u.over(&u.series, 1, u.limits.MaxFetchedSeries, "series", "querier.max-fetched-series-per-query")
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
