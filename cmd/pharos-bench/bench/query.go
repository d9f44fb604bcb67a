package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// Query is one PromQL expression run as an instant query, or as a range
// query over Config.QueryRange at Config.QueryStep when Range is set.
type Query struct {
	Name  string
	Expr  string
	Range bool
	// Uncached asks the query frontend to evaluate the query rather than
	// answer it from its results cache: the frontend caches only range
	// queries without a timeout parameter, so this one carries the
	// querier's default timeout (2m), which changes nothing else.
	Uncached bool
}

// RangeQueries are the range queries of Queries.
func RangeQueries() []Query {
	var out []Query
	for _, q := range Queries {
		if q.Range {
			out = append(out, q)
		}
	}
	return out
}

// Queries are the kinds dashboards and rules run over the generated
// series: per-job and per-instance rates over an hour, an alerting rule's
// instant aggregation, a top-k panel.
var Queries = []Query{
	{Name: "sum_by_job_rate_1h", Expr: `sum by (job) (rate(node_cpu_seconds_total[5m]))`, Range: true},
	{Name: "sum_by_instance_rate_1h", Expr: `sum by (instance) (rate(node_network_receive_bytes_total[5m]))`, Range: true},
	{Name: "count_by_phase", Expr: `count by (namespace, phase) (kube_pod_status_phase)`},
	{Name: "restarts_increase", Expr: `sum by (namespace) (increase(kube_pod_container_status_restarts_total[15m])) > 0`},
	{Name: "topk_cpu", Expr: `topk(10, rate(node_cpu_seconds_total{mode!="idle"}[5m]))`},
}

// QueryResult is one query's latencies (sorted) and failures.
type QueryResult struct {
	Query     Query
	Latencies []time.Duration
	Errors    int
	FirstErr  error
	// Series is the number of series in the first answer, and Digest a
	// hash of it (labels, timestamps, values to 10 significant digits), to
	// show both sides computed the same thing; First is that answer.
	Series int
	Digest uint64
	First  Answer
}

// Answer is a query's result in a form both sides produce alike.
type Answer []AnswerSeries

// AnswerSeries is one series of an answer.
type AnswerSeries struct {
	Metric string
	T      []int64
	V      []float64
}

// digest hashes the answer's lines, sorted.
func (a Answer) digest() uint64 {
	lines := make([]string, len(a))
	for i, s := range a {
		lines[i] = answerLine(s.Metric, s.T, s.V)
	}
	slices.Sort(lines)
	h := fnv.New64a()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// answerLine renders one series; values are rounded so that sums in a
// different order (sharding, merging) mostly compare equal.
func answerLine(metric string, ts []int64, vs []float64) string {
	var b strings.Builder
	b.WriteString(metric)
	for i := range ts {
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(ts[i], 10))
		b.WriteByte('=')
		b.WriteString(strconv.FormatFloat(vs[i], 'g', 10, 64))
	}
	return b.String()
}

// Same reports whether a and b hold the same series and timestamps, with
// values within a relative 1e-9 of each other. Sums in another order
// (query shards, replicas merged) differ in the last bits, which a
// rounded digest sees whenever one straddles a rounding boundary: at
// millions of points, a few do.
func (a Answer) Same(b Answer) bool {
	if len(a) != len(b) {
		return false
	}
	byMetric := func(x, y AnswerSeries) int { return strings.Compare(x.Metric, y.Metric) }
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, byMetric)
	slices.SortFunc(b, byMetric)
	for i := range a {
		x, y := a[i], b[i]
		if x.Metric != y.Metric || !slices.Equal(x.T, y.T) || len(x.V) != len(y.V) {
			return false
		}
		for k := range x.V {
			u, v := x.V[k], y.V[k]
			switch {
			case u == v, math.IsNaN(u) && math.IsNaN(v):
			case math.Abs(u-v) <= 1e-9*max(math.Abs(u), math.Abs(v)):
			default:
				return false
			}
		}
	}
	return true
}

// Querier runs one query ending at end (ms). It returns the answer and
// how long the query took until the answer was in hand (the engine's
// result, the last byte of an HTTP body), not counting the harness's own
// decoding of it.
type Querier interface {
	Run(ctx context.Context, q Query, end int64, cfg Config) (Answer, time.Duration, error)
}

// RunQueries runs each of Queries repeatedly for cfg.QueryDuration (at
// least three times) with cfg.QueryConcurrency callers.
func RunQueries(ctx context.Context, cfg Config, qr Querier, end int64) []QueryResult {
	return runQueries(ctx, cfg, qr, end, Queries)
}

func runQueries(ctx context.Context, cfg Config, qr Querier, end int64, queries []Query) []QueryResult {
	var out []QueryResult
	for _, q := range queries {
		res := QueryResult{Query: q, Series: -1}
		var mu sync.Mutex
		var wg sync.WaitGroup
		deadline := time.Now().Add(cfg.QueryDuration)
		for range cfg.QueryConcurrency {
			wg.Go(func() {
				for n := 0; ctx.Err() == nil && (n < 3 || time.Now().Before(deadline)); n++ {
					ans, d, err := qr.Run(ctx, q, end, cfg)
					mu.Lock()
					if err != nil {
						res.Errors++
						if res.FirstErr == nil {
							res.FirstErr = err
						}
					} else {
						res.Latencies = append(res.Latencies, d)
						if res.Series < 0 {
							res.Series, res.Digest, res.First = len(ans), ans.digest(), ans
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(res.Latencies)
		out = append(out, res)
	}
	return out
}

// LocalQuerier runs queries on a storage.Queryable in this process with
// the upstream engine, as a single Prometheus would.
type LocalQuerier struct {
	Engine    *promql.Engine
	Queryable storage.Queryable
}

// NewLocalQuerier returns an engine with Prometheus's defaults.
func NewLocalQuerier(q storage.Queryable) *LocalQuerier {
	return &LocalQuerier{
		Engine: promql.NewEngine(promql.EngineOpts{
			MaxSamples: 50_000_000, Timeout: 2 * time.Minute, LookbackDelta: 5 * time.Minute,
		}),
		Queryable: q,
	}
}

// Run executes q; the time is the engine's, up to its result.
func (l *LocalQuerier) Run(ctx context.Context, q Query, end int64, cfg Config) (Answer, time.Duration, error) {
	var (
		qry promql.Query
		err error
		te  = time.UnixMilli(end)
	)
	t := time.Now()
	if q.Range {
		qry, err = l.Engine.NewRangeQuery(ctx, l.Queryable, nil, q.Expr, te.Add(-cfg.QueryRange), te, cfg.QueryStep)
	} else {
		qry, err = l.Engine.NewInstantQuery(ctx, l.Queryable, nil, q.Expr, te)
	}
	if err != nil {
		return nil, 0, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	took := time.Since(t)
	if res.Err != nil {
		return nil, 0, res.Err
	}
	var out Answer
	switch v := res.Value.(type) {
	case promql.Matrix:
		for _, s := range v {
			ts, vs := make([]int64, len(s.Floats)), make([]float64, len(s.Floats))
			for i, p := range s.Floats {
				ts[i], vs[i] = p.T, p.F
			}
			out = append(out, AnswerSeries{Metric: s.Metric.String(), T: ts, V: vs})
		}
	case promql.Vector:
		for _, s := range v {
			out = append(out, AnswerSeries{Metric: s.Metric.String(), T: []int64{s.T}, V: []float64{s.F}})
		}
	}
	return out, took, nil
}

// HTTPQuerier runs queries through a Prometheus HTTP API at Base.
type HTTPQuerier struct {
	Base   string
	Client *http.Client
}

// Run executes q over HTTP. The time runs until the last byte of the
// answer is read (gunzipped, as any client accepting gzip reads it); the
// JSON is decoded after the clock stops, as that cost is the harness's,
// not the server's.
func (h *HTTPQuerier) Run(ctx context.Context, q Query, end int64, cfg Config) (Answer, time.Duration, error) {
	te := time.UnixMilli(end)
	v := url.Values{"query": {q.Expr}}
	path := "/api/v1/query"
	if q.Range {
		path = "/api/v1/query_range"
		v.Set("start", formatTime(te.Add(-cfg.QueryRange)))
		v.Set("end", formatTime(te))
		v.Set("step", strconv.FormatFloat(cfg.QueryStep.Seconds(), 'f', -1, 64))
	} else {
		v.Set("time", formatTime(te))
	}
	if q.Uncached {
		v.Set("timeout", "2m")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Base+path+"?"+v.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	t := time.Now()
	resp, err := h.Client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("query: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(t)
	if err != nil {
		return nil, 0, fmt.Errorf("query: %w", err)
	}
	ans, err := decodeAnswer(resp.Status, body)
	return ans, took, err
}

// decodeAnswer reads a Prometheus API answer.
func decodeAnswer(status string, body []byte) (Answer, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query: %s: %w", status, err)
	}
	if r.Status != "success" {
		return nil, errors.New("query: " + status + ": " + r.Error)
	}
	var out Answer
	for _, s := range r.Data.Result {
		points := s.Values
		if s.Value != nil {
			points = [][]any{s.Value}
		}
		ts, vs := make([]int64, 0, len(points)), make([]float64, 0, len(points))
		for _, p := range points {
			if len(p) != 2 {
				return nil, fmt.Errorf("query: malformed point %v", p)
			}
			t, _ := p[0].(float64)
			vstr, _ := p[1].(string)
			v, err := strconv.ParseFloat(vstr, 64)
			if err != nil {
				return nil, fmt.Errorf("query: value %q: %w", vstr, err)
			}
			ts, vs = append(ts, int64(math.Round(t*1000))), append(vs, v)
		}
		out = append(out, AnswerSeries{Metric: labels.FromMap(s.Metric).String(), T: ts, V: vs})
	}
	return out, nil
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}
