package querier

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// NewExemplarQueryable returns the exemplars of /api/v1/query_exemplars:
// every ingester of the read set is asked, and the replicas' answers are
// merged into one exemplar per (timestamp, value, labels) of a series.
func NewExemplarQueryable(ings Ingesters) storage.ExemplarQueryable {
	return exemplarQueryable{ings: ings}
}

type exemplarQueryable struct{ ings Ingesters }

// ExemplarQuerier implements storage.ExemplarQueryable. The read set is
// taken here, as Queryable.Querier takes it.
func (q exemplarQueryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	set, err := q.ings.ReadSet()
	if err != nil {
		return nil, err
	}
	return &exemplarQuerier{ctx: ctx, set: set}, nil
}

type exemplarQuerier struct {
	// ctx is the request's: Select takes none, and the calls need its
	// tenant, deadline and cancellation.
	ctx context.Context
	set ReadSet
}

// Select implements storage.ExemplarQuerier.
func (q *exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	if len(matchers) == 0 {
		// Nothing to select, as in the tsdb's exemplar storage.
		return []exemplar.QueryResult{}, nil
	}
	req := &ingesterpb.ExemplarQueryRequest{StartMs: start, EndMs: end, MatcherSets: make([]*ingesterpb.LabelMatchers, 0, len(matchers))}
	for _, ms := range matchers {
		pms, err := ingesterpb.FromLabelMatchers(ms)
		if err != nil {
			return nil, fmt.Errorf("exemplar query: %w", err)
		}
		req.MatcherSets = append(req.MatcherSets, &ingesterpb.LabelMatchers{Matchers: pms})
	}
	// Tolerated failures are not reported: the exemplar API has no
	// warnings, and the replicas answered.
	answers, _, err := fanOutUnary(q.ctx, nil, &q.set, "QueryExemplars", make(chan struct{}, maxConcurrencyPerQuery),
		func(ctx context.Context, c ingesterpb.IngesterClient) ([]*ingesterpb.ExemplarSeries, error) {
			resp, err := c.QueryExemplars(ctx, req)
			if err != nil {
				return nil, err
			}
			return resp.Series, nil
		})
	if err != nil {
		if cerr := contextError(q.ctx); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	return mergeExemplars(answers), nil
}

// mergeExemplars joins the ingesters' answers: a series that several
// replicas hold appears once, with the union of their exemplars, each
// exemplar once. Replicas may each miss some exemplars (one that was down
// during a push, or whose ring dropped older ones sooner), so no single
// answer can be taken as the series' whole. Series are sorted by labels and
// exemplars by timestamp, as the tsdb answers.
func mergeExemplars(answers [][]*ingesterpb.ExemplarSeries) []exemplar.QueryResult {
	out := []exemplar.QueryResult{}
	index := map[string]int{} // series labels' bytes → position in out
	var (
		lb  labels.ScratchBuilder
		key []byte
	)
	for _, series := range answers {
		for _, s := range series {
			ls := toLabels(&lb, s.Labels)
			key = ls.Bytes(key[:0])
			k, ok := index[string(key)]
			if !ok {
				k = len(out)
				index[string(key)] = k
				out = append(out, exemplar.QueryResult{SeriesLabels: ls, Exemplars: make([]exemplar.Exemplar, 0, len(s.Exemplars))})
			}
			for _, e := range s.Exemplars {
				out[k].Exemplars = append(out[k].Exemplars, exemplar.Exemplar{
					Labels: toLabels(&lb, e.Labels), Value: e.Value, Ts: e.TimestampMs, HasTs: true,
				})
			}
		}
	}
	for k := range out {
		exs := out[k].Exemplars
		slices.SortFunc(exs, compareExemplars)
		out[k].Exemplars = slices.CompactFunc(exs, func(a, b exemplar.Exemplar) bool { return compareExemplars(a, b) == 0 })
	}
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out
}

// compareExemplars orders by timestamp, then value, then labels: a total
// order in which replicas' copies of one exemplar are neighbours. Values
// compare by their bits once cmp.Compare finds them equal, so that NaNs
// of different payloads (a stale marker and any other NaN) stay apart.
func compareExemplars(a, b exemplar.Exemplar) int {
	if c := cmp.Compare(a.Ts, b.Ts); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	if c := cmp.Compare(math.Float64bits(a.Value), math.Float64bits(b.Value)); c != 0 {
		return c
	}
	return labels.Compare(a.Labels, b.Labels)
}

// toLabels copies pairs, sorted as the ingester sends them, into labels.
func toLabels(lb *labels.ScratchBuilder, pairs []*ingesterpb.LabelPair) labels.Labels {
	lb.Reset()
	for _, p := range pairs {
		// Labels copies the strings; the views do not escape.
		lb.Add(bytesToString(p.Name), bytesToString(p.Value))
	}
	return lb.Labels()
}
