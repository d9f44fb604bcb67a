package querier

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/metadata"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// MetadataFunc returns the metadata of metric (every metric if empty) as
// Prometheus's /api/v1/metadata does: at most limit metrics and
// limitPerMetric entries per metric, a negative limit meaning none.
type MetadataFunc = func(ctx context.Context, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error)

// NewMetadataFunc returns a MetadataFunc that asks every ingester and merges
// the answers, dropping entries that replicas repeat.
func NewMetadataFunc(ings Ingesters) MetadataFunc {
	return func(ctx context.Context, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error) {
		return metricsMetadata(ctx, ings, metric, limit, limitPerMetric)
	}
}

func metricsMetadata(ctx context.Context, ings Ingesters, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error) {
	res := map[string][]metadata.Metadata{}
	if limit == 0 {
		return res, nil
	}
	req := &ingesterpb.MetricsMetadataRequest{Metric: metric, Limit: int64(max(limit, 0)), LimitPerMetric: int64(max(limitPerMetric, 0))}
	set, err := ings.ReadSet()
	if err != nil {
		return nil, err
	}
	// Tolerated failures are not reported: the metadata API has no warnings,
	// and the replicas answered.
	answers, _, err := fanOutUnary(ctx, nil, &set, "MetricsMetadata", make(chan struct{}, maxConcurrencyPerQuery),
		func(ctx context.Context, c ingesterpb.IngesterClient) ([]*ingesterpb.MetricMetadata, error) {
			resp, err := c.MetricsMetadata(ctx, req)
			if err != nil {
				return nil, err
			}
			return resp.Metadata, nil
		})
	if err != nil {
		return nil, err
	}

	sets := map[string]map[metadata.Metadata]struct{}{}
	for _, ms := range answers {
		for _, m := range ms {
			set, ok := sets[m.MetricFamilyName]
			if !ok {
				set = map[metadata.Metadata]struct{}{}
				sets[m.MetricFamilyName] = set
			}
			if limitPerMetric > 0 && len(set) >= limitPerMetric {
				continue
			}
			set[metadata.Metadata{Type: m.Type.ModelMetricType(), Help: m.Help, Unit: m.Unit}] = struct{}{}
		}
	}
	// Sorted, so that a limit keeps the same metrics on every call.
	for _, name := range slices.Sorted(maps.Keys(sets)) {
		if limit > 0 && len(res) >= limit {
			break
		}
		res[name] = slices.SortedFunc(maps.Keys(sets[name]), func(a, b metadata.Metadata) int {
			switch {
			case a.Type != b.Type:
				return strings.Compare(string(a.Type), string(b.Type))
			case a.Help != b.Help:
				return strings.Compare(a.Help, b.Help)
			default:
				return strings.Compare(a.Unit, b.Unit)
			}
		})
	}
	return res, nil
}
