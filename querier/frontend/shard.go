package frontend

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
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
	"github.com/pharos-tsdb/pharos/querier/resultwire"
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
func (f *Frontend) sharded(ctx context.Context, r *http.Request, path string, form url.Values) (res *combined, fail *recorded, ok bool) {
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
	parts := make([]*shardPart, n)
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
			// The binary form when the answer fits it, JSON otherwise.
			req.Header.Set("Accept", resultwire.ContentType+", application/json;q=0.5")
			rec := httptest.NewRecorder()
			f.next.ServeHTTP(rec, req)
			var part *shardPart
			err := errNotOK
			if rec.Code == http.StatusOK {
				part, err = f.decodeShard(rec.Header().Get("Content-Type"), rec.Body.Bytes())
			}
			if err != nil {
				mu.Lock()
				if fail == nil {
					fail = &recorded{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
				}
				mu.Unlock()
				return
			}
			parts[i] = part
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

var errNotOK = errors.New("shard failed")

// shardPart is one shard's answer, decoded. A part that holds native
// histograms is not combinable: the query then runs whole.
type shardPart struct {
	resultType      string
	warnings, infos []string
	series          []partSeries
	combinable      bool
}

type partSeries struct {
	lset   labels.Labels
	points []point
}

// decodeShard reads a shard's answer in the form the API chose.
func (f *Frontend) decodeShard(contentType string, body []byte) (*shardPart, error) {
	if contentType == resultwire.ContentType {
		f.shardAnswers.WithLabelValues("binary").Inc()
		res, err := resultwire.Decode(body)
		if err != nil {
			return nil, err
		}
		part := &shardPart{resultType: res.Type, warnings: res.Warnings, infos: res.Infos, combinable: true,
			series: make([]partSeries, len(res.Series))}
		for i, s := range res.Series {
			pts := make([]point, len(s.Points))
			for k, p := range s.Points {
				// The nearest float to the milliseconds in seconds, which
				// is what parsing the API's "1733112345.123" gives.
				pts[k] = point{t: float64(p.T) / 1000, v: p.V}
			}
			part.series[i] = partSeries{lset: s.Labels, points: pts}
		}
		return part, nil
	}
	f.shardAnswers.WithLabelValues("json").Inc()
	var sr shardResult
	if err := json.Unmarshal(body, &sr); err != nil {
		return nil, err
	}
	if sr.Status != "success" {
		return nil, errNotOK
	}
	part := &shardPart{resultType: sr.Data.ResultType, warnings: sr.Warnings, infos: sr.Infos, combinable: true,
		series: make([]partSeries, 0, len(sr.Data.Result))}
	for _, raw := range sr.Data.Result {
		var s shardSeries
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if s.Histogram != nil || s.Histograms != nil {
			part.combinable = false
			return part, nil
		}
		pts := s.Values
		if s.Value != nil {
			pts = append(pts, *s.Value)
		}
		part.series = append(part.series, partSeries{lset: labels.FromMap(s.Metric), points: pts})
	}
	return part, nil
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
	Value      *point            `json:"value,omitempty"`
	Values     []point           `json:"values,omitempty"`
	Histogram  json.RawMessage   `json:"histogram,omitempty"`
	Histograms json.RawMessage   `json:"histograms,omitempty"`
}

// point is one [t, "v"] of an answer. It decodes itself: through any, a
// range answer of a thousand series cost more to decode than the shards
// took to evaluate.
type point struct{ t, v float64 }

func (p *point) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return fmt.Errorf("point %q: not an array", b)
	}
	ts, vs, ok := bytes.Cut(b[1:len(b)-1], []byte{','})
	vs = bytes.TrimSpace(vs)
	if !ok || len(vs) < 2 || vs[0] != '"' || vs[len(vs)-1] != '"' {
		return fmt.Errorf("point %q: want [time, \"value\"]", b)
	}
	var err error
	if p.t, err = strconv.ParseFloat(string(bytes.TrimSpace(ts)), 64); err != nil {
		return fmt.Errorf("point %q: time: %w", b, err)
	}
	if p.v, err = strconv.ParseFloat(string(vs[1:len(vs)-1]), 64); err != nil {
		return fmt.Errorf("point %q: value: %w", b, err)
	}
	return nil
}

// combinePoints merges b into a, both sorted by time, combining the values
// of equal times.
func combinePoints(a, b []point, combine func(a, b float64) float64) []point {
	if len(a) == 0 {
		return b
	}
	out := make([]point, 0, max(len(a), len(b)))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0].t < b[0].t:
			out, a = append(out, a[0]), a[1:]
		case b[0].t < a[0].t:
			out, b = append(out, b[0]), b[1:]
		default:
			out = append(out, point{t: a[0].t, v: combine(a[0].v, b[0].v)})
			a, b = a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// combined is the shards' answers merged: series sorted by labels, each
// with its points sorted by time.
type combined struct {
	resultType      string
	warnings, infos []string
	series          []*combinedSeries
}

type combinedSeries struct {
	metric map[string]string
	lset   labels.Labels
	key    string
	points []point
}

func combineShards(parts []*shardPart, combine func(a, b float64) float64) (*combined, bool) {
	out := &combined{resultType: parts[0].resultType}
	if rt := out.resultType; rt != "vector" && rt != "matrix" {
		return nil, false
	}
	series := map[string]*combinedSeries{}
	for _, p := range parts {
		if !p.combinable || p.resultType != out.resultType {
			return nil, false
		}
		out.warnings = appendUnique(out.warnings, p.warnings...)
		out.infos = appendUnique(out.infos, p.infos...)
		for _, s := range p.series {
			if !slices.IsSortedFunc(s.points, func(a, b point) int { return cmp.Compare(a.t, b.t) }) {
				return nil, false
			}
			key := s.lset.String()
			a, ok := series[key]
			if !ok {
				a = &combinedSeries{metric: s.lset.Map(), lset: s.lset, key: key}
				series[key] = a
			}
			a.points = combinePoints(a.points, s.points, combine)
		}
	}
	out.series = make([]*combinedSeries, 0, len(series))
	for _, a := range series {
		out.series = append(out.series, a)
	}
	slices.SortFunc(out.series, func(a, b *combinedSeries) int { return labels.Compare(a.lset, b.lset) })
	return out, true
}

// shardResult renders c as the API's answer.
func (c *combined) shardResult() *shardResult {
	out := &shardResult{Status: "success", Warnings: c.warnings, Infos: c.infos}
	out.Data.ResultType = c.resultType
	out.Data.Result = make([]json.RawMessage, 0, len(c.series))
	for _, a := range c.series {
		var b []byte
		b = append(b, `{"metric":`...)
		mb, _ := json.Marshal(a.metric)
		b = append(b, mb...)
		if c.resultType == "vector" {
			b = append(b, `,"value":`...)
			b = appendPoint(b, a.points[0].t, a.points[0].v)
		} else {
			b = append(b, `,"values":[`...)
			for i, pt := range a.points {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendPoint(b, pt.t, pt.v)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
		out.Data.Result = append(out.Data.Result, b)
	}
	return out
}

// apiResponse renders a combined range answer as a part's answer, indexed
// for merging, without a round trip through JSON.
func (c *combined) apiResponse() *apiResponse {
	res := &apiResponse{Status: "success", Warnings: c.warnings, Infos: c.infos}
	res.Data.ResultType = c.resultType
	res.Data.Result = make([]stream, len(c.series))
	for i, a := range c.series {
		st := stream{Metric: a.metric, key: a.key, lset: a.lset,
			Values: make([]json.RawMessage, len(a.points)), valueT: make([]int64, len(a.points))}
		// One buffer holds every point's JSON.
		buf := make([]byte, 0, len(a.points)*32)
		for k, pt := range a.points {
			from := len(buf)
			buf = appendPoint(buf, pt.t, pt.v)
			st.Values[k] = buf[from:len(buf):len(buf)]
			st.valueT[k] = int64(math.Round(pt.t * 1000))
		}
		res.Data.Result[i] = st
	}
	return res
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
