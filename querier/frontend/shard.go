package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-tsdb/pharos/querier"
)

// Query sharding: an aggregation whose input is computed series by series
// (`sum by (job) (rate(m[5m]))`) is run as N queries, each over the series
// whose label hash falls in one shard (the selectors carry a
// __query_shard__ matcher, which the querier hands to the ingesters), and
// the N partial aggregates are combined: sums and counts add up, min and max
// take theirs. Each shard's evaluation is an engine run of its own, so the
// shards use every core; the ingesters cut and send a shard each.

// perSeriesFuncs are the functions whose output series depends on one
// input series only: a shard's input gives exactly that shard's output.
var perSeriesFuncs = map[string]bool{
	"rate": true, "irate": true, "increase": true, "delta": true, "idelta": true, "deriv": true,
	"resets": true, "changes": true, "predict_linear": true,
	"avg_over_time": true, "min_over_time": true, "max_over_time": true, "sum_over_time": true,
	"count_over_time": true, "last_over_time": true, "present_over_time": true, "stddev_over_time": true,
	"stdvar_over_time": true, "quantile_over_time": true, "mad_over_time": true,
	"abs": true, "ceil": true, "floor": true, "round": true, "exp": true, "ln": true, "log2": true,
	"log10": true, "sqrt": true, "clamp": true, "clamp_min": true, "clamp_max": true, "sgn": true,
	"timestamp": true,
}

// combinable aggregations: how shard results merge.
var combinable = map[parser.ItemType]func(a, b float64) float64{
	parser.SUM:   func(a, b float64) float64 { return a + b },
	parser.COUNT: func(a, b float64) float64 { return a + b },
	parser.MIN:   math.Min,
	parser.MAX:   math.Max,
	parser.GROUP: func(float64, float64) float64 { return 1 },
}

// shardable reports whether expr is an aggregation Pharos can shard, and
// how its results combine.
func shardable(expr parser.Expr) (func(a, b float64) float64, bool) {
	for {
		p, ok := expr.(*parser.ParenExpr)
		if !ok {
			break
		}
		expr = p.Expr
	}
	agg, ok := expr.(*parser.AggregateExpr)
	if !ok || agg.Param != nil {
		return nil, false
	}
	combine, ok := combinable[agg.Op]
	if !ok || !perSeries(agg.Expr) {
		return nil, false
	}
	return combine, true
}

// perSeries reports whether every output series of e comes from one input
// series, so that e over a shard is e's output for that shard.
func perSeries(e parser.Expr) bool {
	switch e := e.(type) {
	case *parser.VectorSelector:
		// A query that picks its own shard is run as written.
		return e.StartOrEnd == 0 && !slices.ContainsFunc(e.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == querier.ShardLabel })
	case *parser.MatrixSelector:
		return perSeries(e.VectorSelector)
	case *parser.ParenExpr:
		return perSeries(e.Expr)
	case *parser.UnaryExpr:
		return perSeries(e.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.SubqueryExpr:
		return e.StartOrEnd == 0 && perSeries(e.Expr)
	case *parser.Call:
		if !perSeriesFuncs[e.Func.Name] {
			return false
		}
		for _, a := range e.Args {
			if !perSeries(a) {
				return false
			}
		}
		return true
	case *parser.BinaryExpr:
		// Only with a scalar side: vector matching pairs series that may
		// sit in different shards.
		_, lnum := e.LHS.(*parser.NumberLiteral)
		_, rnum := e.RHS.(*parser.NumberLiteral)
		return (lnum && perSeries(e.RHS)) || (rnum && perSeries(e.LHS))
	}
	return false
}

// shardQueries renders the query once per shard.
func (f *Frontend) shardQueries(query string, n int) ([]string, error) {
	out := make([]string, n)
	for i := range n {
		expr, err := f.parser.ParseExpr(query)
		if err != nil {
			return nil, err
		}
		m, err := labels.NewMatcher(labels.MatchEqual, querier.ShardLabel, querier.ShardSelector(i, n))
		if err != nil {
			return nil, err
		}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok {
				vs.LabelMatchers = append(vs.LabelMatchers, m)
			}
			return nil
		})
		out[i] = expr.String()
	}
	return out, nil
}

// sharded runs form's query (instant or range, by path) as shards and
// combines them. ok is false when the query cannot be sharded, or a shard's
// answer holds something it cannot combine (native histograms): the caller
// then runs it whole.
func (f *Frontend) sharded(ctx context.Context, r *http.Request, path string, form url.Values) (res *shardResult, fail *recorded, ok bool) {
	n := f.cfg.QueryShards
	if n < 2 {
		return nil, nil, false
	}
	expr, err := f.parser.ParseExpr(form.Get("query"))
	if err != nil {
		return nil, nil, false
	}
	combine, ok := shardable(expr)
	if !ok {
		return nil, nil, false
	}
	queries, err := f.shardQueries(form.Get("query"), n)
	if err != nil {
		return nil, nil, false
	}
	parts := make([]*shardResult, n)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for i, q := range queries {
		wg.Go(func() {
			sub := url.Values{}
			for k, v := range form {
				sub[k] = v
			}
			sub.Set("query", q)
			req := rebuild(r.WithContext(ctx), sub)
			req.URL.Path = path
			rec := httptest.NewRecorder()
			f.next.ServeHTTP(rec, req)
			var sr shardResult
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &sr) != nil || sr.Status != "success" {
				mu.Lock()
				if fail == nil {
					fail = &recorded{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
				}
				mu.Unlock()
				return
			}
			parts[i] = &sr
		})
	}
	wg.Wait()
	f.shardedQueries.Inc()
	if fail != nil {
		return nil, fail, true
	}
	out, ok := combineShards(parts, combine)
	return out, nil, ok
}

// shardResult is an instant or range answer whose points are combined.
type shardResult struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
	Warnings []string `json:"warnings,omitempty"`
	Infos    []string `json:"infos,omitempty"`
}

type shardSeries struct {
	Metric     map[string]string `json:"metric"`
	Value      *[2]any           `json:"value,omitempty"`
	Values     [][2]any          `json:"values,omitempty"`
	Histogram  json.RawMessage   `json:"histogram,omitempty"`
	Histograms json.RawMessage   `json:"histograms,omitempty"`
}

func combineShards(parts []*shardResult, combine func(a, b float64) float64) (*shardResult, bool) {
	type acc struct {
		metric map[string]string
		lset   labels.Labels
		points map[float64]float64 // by timestamp (seconds, as in JSON)
	}
	series := map[string]*acc{}
	out := &shardResult{Status: "success"}
	out.Data.ResultType = parts[0].Data.ResultType
	if rt := out.Data.ResultType; rt != "vector" && rt != "matrix" {
		return nil, false
	}
	for _, p := range parts {
		out.Warnings = appendUnique(out.Warnings, p.Warnings...)
		out.Infos = appendUnique(out.Infos, p.Infos...)
		for _, raw := range p.Data.Result {
			var s shardSeries
			if err := json.Unmarshal(raw, &s); err != nil || s.Histogram != nil || s.Histograms != nil {
				return nil, false
			}
			pts := s.Values
			if s.Value != nil {
				pts = append(pts, *s.Value)
			}
			ls := labels.FromMap(s.Metric)
			a, ok := series[ls.String()]
			if !ok {
				a = &acc{metric: s.Metric, lset: ls, points: map[float64]float64{}}
				series[ls.String()] = a
			}
			for _, pt := range pts {
				t, ok1 := pt[0].(float64)
				vs, ok2 := pt[1].(string)
				v, err := strconv.ParseFloat(vs, 64)
				if !ok1 || !ok2 || err != nil {
					return nil, false
				}
				if prev, ok := a.points[t]; ok {
					v = combine(prev, v)
				}
				a.points[t] = v
			}
		}
	}
	accs := make([]*acc, 0, len(series))
	for _, a := range series {
		accs = append(accs, a)
	}
	slices.SortFunc(accs, func(a, b *acc) int { return labels.Compare(a.lset, b.lset) })
	out.Data.Result = make([]json.RawMessage, 0, len(accs))
	for _, a := range accs {
		ts := make([]float64, 0, len(a.points))
		for t := range a.points {
			ts = append(ts, t)
		}
		slices.Sort(ts)
		var b []byte
		b = append(b, `{"metric":`...)
		mb, _ := json.Marshal(a.metric)
		b = append(b, mb...)
		if out.Data.ResultType == "vector" {
			b = append(b, `,"value":`...)
			b = appendPoint(b, ts[0], a.points[ts[0]])
		} else {
			b = append(b, `,"values":[`...)
			for i, t := range ts {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendPoint(b, t, a.points[t])
			}
			b = append(b, ']')
		}
		b = append(b, '}')
		out.Data.Result = append(out.Data.Result, b)
	}
	return out, true
}

// appendPoint writes [t,"v"] as the Prometheus API does.
func appendPoint(b []byte, t, v float64) []byte {
	b = append(b, '[')
	b = strconv.AppendFloat(b, t, 'f', -1, 64)
	b = append(b, ',', '"')
	format := byte('f')
	if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, v, format, -1, 64)
	return append(b, '"', ']')
}

func (s *shardResult) String() string {
	return fmt.Sprintf("%s %d series", s.Data.ResultType, len(s.Data.Result))
}
