package frontend

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// Frontend wraps the Prometheus API handler.
type Frontend struct {
	cfg    Config
	next   http.Handler
	cache  store // nil: results are not cached
	logger *slog.Logger
	parser parser.Parser
	now    func() time.Time

	queries     *prometheus.CounterVec
	evaluated   prometheus.Counter
	cachePoints *prometheus.CounterVec
	// cacheExpired counts extents older than results_cache_ttl.
	cacheExpired prometheus.Counter

	shardedQueries prometheus.Counter
	// shardAnswers counts shards' answers by the form they came in.
	shardAnswers *prometheus.CounterVec
}

// New returns a Frontend in front of next, the Prometheus API handler.
func New(cfg Config, next http.Handler, logger *slog.Logger, reg prometheus.Registerer) *Frontend {
	f := &Frontend{
		cfg:    cfg,
		next:   next,
		logger: logger,
		parser: parser.NewParser(parser.Options{}),
		now:    time.Now,
		queries: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_frontend_range_queries_total",
			Help: "Range queries seen by the query frontend, by how they were run: split (into parts, maybe from cache) or passthrough.",
		}, []string{"mode"}),
		evaluated: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "pharos_frontend_query_parts_evaluated_total",
			Help: "Parts of range queries evaluated by the querier (what the cache could not answer).",
		}),
		cachePoints: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_frontend_results_cache_steps_total",
			Help: "Steps of range queries answered from the results cache (hit) or evaluated (miss).",
		}, []string{"result"}),
		cacheExpired: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "pharos_frontend_results_cache_expired_total",
			Help: "Cached extents found older than results_cache_ttl and evaluated again.",
		}),
	}
	f.shardedQueries = promauto.With(reg).NewCounter(prometheus.CounterOpts{
		Name: "pharos_frontend_sharded_queries_total",
		Help: "Queries (or range-query parts) run as shards.",
	})
	f.shardAnswers = promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_frontend_shard_answers_total",
		Help: "Answers of query shards read, by format: binary, or json when the answer holds native histograms or statistics.",
	}, []string{"format"})
	if cfg.CacheResults {
		if cfg.CacheBackend == BackendMemcached {
			f.cache = newMemcachedStore(cfg.Memcached, cfg.CacheTTL, logger, reg)
		} else {
			f.cache = newCache(cfg.CacheMaxBytes, reg)
		}
	}
	return f
}

// store keeps extents by cache key: in this process (cache) or in
// memcached (memcachedStore). An extent from get is not modified.
type store interface {
	get(key string) *extent
	put(key string, ext *extent)
}

// ServeHTTP implements http.Handler.
func (f *Frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		f.next.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/api/v1/query_range":
	case "/api/v1/query":
		if f.cfg.QueryShards < 2 {
			f.next.ServeHTTP(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			f.next.ServeHTTP(w, r)
			return
		}
		res, fail, ok := f.sharded(r.Context(), r, r.URL.Path, r.Form)

		switch {
		case !ok:
			f.next.ServeHTTP(w, rebuild(r, r.Form))
		case fail != nil:
			fail.writeTo(w)
		default:
			writeJSON(w, r, res.shardResult())
		}
		return
	default:
		f.next.ServeHTTP(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.next.ServeHTTP(w, r)
		return
	}
	q, ok := f.plan(r.Form)
	if ok {
		// The cache is per tenant: the tenant middleware in front of the
		// frontend has put it into the context. A frontend used without
		// one (tests, embedding) has one anonymous cache.
		q.tenant, _ = tenant.FromContext(r.Context())
	}
	if !ok {
		f.queries.WithLabelValues("passthrough").Inc()
		f.next.ServeHTTP(w, rebuild(r, r.Form))
		return
	}
	f.queries.WithLabelValues("split").Inc()
	res, failed := f.run(r, q)
	if failed != nil {
		failed.writeTo(w)
		return
	}
	writeJSON(w, r, res)
}

// rangeQuery is a parsed range query. Times are Unix milliseconds.
type rangeQuery struct {
	expr              string
	start, end, step  int64
	form              url.Values
	cacheable         bool
	tenant, cacheBase string
}

// plan parses a range query and decides whether the frontend runs it. Any
// doubt (a parameter upstream would refuse, @ start()/end(), which refer to
// the whole range) leaves it to the upstream handler.
func (f *Frontend) plan(form url.Values) (*rangeQuery, bool) {
	start, err1 := parseTime(form.Get("start"))
	end, err2 := parseTime(form.Get("end"))
	step, err3 := parseDuration(form.Get("step"))
	if err1 != nil || err2 != nil || err3 != nil || step <= 0 || end < start {
		return nil, false
	}
	if (end-start)/step > 11000 {
		return nil, false // upstream's "exceeded maximum resolution" error
	}
	expr, err := f.parser.ParseExpr(form.Get("query"))
	if err != nil || usesRangeBounds(expr) {
		return nil, false
	}
	q := &rangeQuery{expr: form.Get("query"), start: start, end: end, step: step, form: form}
	interval := f.cfg.SplitInterval.Milliseconds()
	split := interval > 0 && floorDiv(start, interval) != floorDiv(end, interval)
	// A cached extent is reused only on the same step grid: the query's
	// start must sit on multiples of step, as Grafana's queries do.
	q.cacheable = f.cache != nil && start%step == 0 && form.Get("timeout") == "" && form.Get("stats") == ""
	_, shard := shardable(expr)
	if !split && !q.cacheable && !(shard && f.cfg.QueryShards > 1) {
		return nil, false
	}
	q.cacheBase = q.expr + "\x00" + strconv.FormatInt(step, 10)
	return q, true
}

// usesRangeBounds reports whether expr uses @ start() or @ end(), whose
// meaning changes when the range is split.
func usesRangeBounds(expr parser.Expr) bool {
	found := false
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			found = found || n.StartOrEnd != 0
		case *parser.MatrixSelector:
			if vs, ok := n.VectorSelector.(*parser.VectorSelector); ok {
				found = found || vs.StartOrEnd != 0
			}
		case *parser.SubqueryExpr:
			found = found || n.StartOrEnd != 0
		}
		return nil
	})
	return found
}

// part is the points of one split interval, on the query's step grid.
type part struct {
	start, end int64 // first and last point, inclusive
	bucket     int64 // the interval's start, the cache key's last element
}

func (f *Frontend) parts(q *rangeQuery) []part {
	interval := f.cfg.SplitInterval.Milliseconds()
	if interval <= 0 {
		return []part{{start: q.start, end: q.end}}
	}
	var out []part
	for t := q.start; t <= q.end; {
		bucket := floorDiv(t, interval) * interval
		next := bucket + interval
		last := t + ((min(next-1, q.end)-t)/q.step)*q.step
		out = append(out, part{start: t, end: last, bucket: bucket})
		t = last + q.step
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// run evaluates every part (from cache where it can) and merges them. A
// part that fails makes the whole query fail with that part's answer.
func (f *Frontend) run(r *http.Request, q *rangeQuery) (*apiResponse, *recorded) {
	ps := f.parts(q)
	results := make([]*apiResponse, len(ps))
	var (
		mu     sync.Mutex
		failed *recorded
		wg     sync.WaitGroup
		sem    = make(chan struct{}, f.cfg.MaxParallelism)
	)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	for i, p := range ps {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			res, fail := f.runPart(ctx, r, q, p)
			mu.Lock()
			defer mu.Unlock()
			if fail != nil {
				if failed == nil {
					failed = fail
					cancel()
				}
				return
			}
			results[i] = res
		})
	}
	wg.Wait()
	if failed != nil {
		return nil, failed
	}
	if ctx.Err() != nil {
		return nil, &recorded{code: http.StatusServiceUnavailable, body: errorBody("canceled", ctx.Err().Error())}
	}
	out := &apiResponse{Status: "success"}
	out.Data.ResultType = "matrix"
	var streams []stream
	for _, res := range results {
		streams = mergeStreams(streams, res.Data.Result)
		out.Warnings = appendUnique(out.Warnings, res.Warnings...)
		out.Infos = appendUnique(out.Infos, res.Infos...)
	}
	out.Data.Result = sortStreams(streams)
	return out, nil
}

// runPart answers one part: the cached extent's points, plus an
// evaluation of what is missing, and updates the cache.
func (f *Frontend) runPart(ctx context.Context, r *http.Request, q *rangeQuery, p part) (*apiResponse, *recorded) {
	steps := (p.end-p.start)/q.step + 1
	if !q.cacheable {
		f.cachePoints.WithLabelValues("miss").Add(float64(steps))
		return f.eval(ctx, r, q, p.start, p.end)
	}
	key := q.tenant + "\x00" + q.cacheBase + "\x00" + strconv.FormatInt(p.bucket, 10)
	now := f.now()
	ext := f.cache.get(key)
	if ext != nil && f.cfg.CacheTTL > 0 && now.Sub(ext.cachedAt) > f.cfg.CacheTTL {
		f.cacheExpired.Inc()
		ext = nil // evaluated again, and replaced below
	}
	var cached []stream
	from := p.start
	if ext != nil && ext.start <= p.start && ext.end >= p.start {
		cached = trim(ext.streams, p.start, min(p.end, ext.end))
		from = min(p.end, ext.end) + q.step
	}
	if hit := (from - p.start) / q.step; hit > 0 {
		f.cachePoints.WithLabelValues("hit").Add(float64(hit))
	}
	res := &apiResponse{Status: "success"}
	res.Data.ResultType = "matrix"
	if from <= p.end {
		f.cachePoints.WithLabelValues("miss").Add(float64((p.end-from)/q.step + 1))
		fresh, fail := f.eval(ctx, r, q, from, p.end)
		if fail != nil {
			return nil, fail
		}
		res.Warnings, res.Infos = fresh.Warnings, fresh.Infos
		res.Data.Result = mergeStreams(cached, fresh.Data.Result)
	} else {
		res.Data.Result = cached
	}
	// Keep what is old enough to be final; results with warnings (a
	// replica missing, say) are not kept.
	if len(res.Warnings) == 0 {
		limit := now.Add(-f.cfg.MaxCacheFreshness).UnixMilli()
		last := p.start + ((min(p.end, limit)-p.start)/q.step)*q.step
		if limit >= p.start {
			start, streams := p.start, trim(res.Data.Result, p.start, last)
			cachedAt := now
			if cached != nil {
				cachedAt = ext.cachedAt
			}
			if ext != nil && ext.start < p.start && ext.end >= p.start-q.step {
				start, streams = ext.start, mergeStreams(trim(ext.streams, ext.start, p.start-q.step), streams)
				cachedAt = ext.cachedAt
			}
			if ext == nil || start < ext.start || last > ext.end {
				f.cache.put(key, &extent{start: start, end: last, streams: streams, cachedAt: cachedAt})
			}
		}
	}
	return res, nil
}

// eval runs the query over [start, end] with the upstream handler.
func (f *Frontend) eval(ctx context.Context, r *http.Request, q *rangeQuery, start, end int64) (*apiResponse, *recorded) {
	f.evaluated.Inc()
	form := url.Values{}
	for k, v := range q.form {
		form[k] = v
	}
	form.Set("start", formatTime(start))
	form.Set("end", formatTime(end))
	if c, fail, ok := f.sharded(ctx, r, "/api/v1/query_range", form); ok {
		if fail != nil {
			return nil, fail
		}
		if c.resultType != "matrix" {
			return nil, &recorded{code: http.StatusInternalServerError, body: errorBody("internal", "query frontend: a sharded range query answered "+c.resultType)}
		}
		return c.apiResponse(), nil
	}
	sub := rebuild(r.WithContext(ctx), form)
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, sub)
	if rec.Code != http.StatusOK {
		return nil, &recorded{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	}
	var res apiResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.Status != "success" || res.Data.ResultType != "matrix" {
		return nil, &recorded{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	}
	for i := range res.Data.Result {
		if err := res.Data.Result[i].index(); err != nil {
			return nil, &recorded{code: http.StatusInternalServerError, body: errorBody("internal", fmt.Sprintf("query frontend: %v", err))}
		}
	}
	return &res, nil
}

// rebuild makes a GET request carrying form in its URL, for the upstream
// handler (a POST body was consumed by ParseForm).
func rebuild(r *http.Request, form url.Values) *http.Request {
	u := *r.URL
	u.RawQuery = form.Encode()
	sub, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	for k, v := range r.Header {
		// The parts' answers are read here, not by the client: no gzip.
		if k != "Content-Type" && k != "Content-Length" && k != "Accept-Encoding" {
			sub.Header[k] = v
		}
	}
	sub.RemoteAddr = r.RemoteAddr
	return sub
}

// recorded is an answer passed on as the upstream handler gave it.
type recorded struct {
	code   int
	header http.Header
	body   []byte
}

func (rc *recorded) writeTo(w http.ResponseWriter) {
	for k, v := range rc.header {
		w.Header()[k] = v
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rc.code)
	_, _ = w.Write(rc.body)
}

func errorBody(typ, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"status": "error", "errorType": typ, "error": msg})
	return b
}

// apiResponse is the Prometheus API's answer to a range query.
type apiResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string   `json:"resultType"`
		Result     []stream `json:"result"`
	} `json:"data"`
	Warnings []string `json:"warnings,omitempty"`
	Infos    []string `json:"infos,omitempty"`
}

// stream is one series of a matrix; points keep their JSON as upstream
// wrote it, with the timestamp parsed for merging.
type stream struct {
	Metric     map[string]string `json:"metric"`
	Values     []json.RawMessage `json:"values,omitempty"`
	Histograms []json.RawMessage `json:"histograms,omitempty"`

	key    string
	lset   labels.Labels
	valueT []int64
	histT  []int64
}

func (s *stream) index() error {
	s.lset = labels.FromMap(s.Metric)
	s.key = s.lset.String()
	var err error
	if s.valueT, err = timestamps(s.Values); err != nil {
		return err
	}
	s.histT, err = timestamps(s.Histograms)
	return err
}

func timestamps(points []json.RawMessage) ([]int64, error) {
	ts := make([]int64, len(points))
	for i, p := range points {
		var pair [2]json.RawMessage
		if err := json.Unmarshal(p, &pair); err != nil {
			return nil, fmt.Errorf("decode point: %w", err)
		}
		f, err := strconv.ParseFloat(string(pair[0]), 64)
		if err != nil {
			return nil, fmt.Errorf("decode timestamp %s: %w", pair[0], err)
		}
		ts[i] = int64(math.Round(f * 1000))
	}
	return ts, nil
}

// mergeStreams returns a and b merged per series; points are ordered by
// time, b's winning where both have one.
func mergeStreams(a, b []stream) []stream {
	if len(a) == 0 {
		return b
	}
	byKey := make(map[string]int, len(a))
	out := slices.Clone(a)
	for i := range out {
		byKey[out[i].key] = i
	}
	for _, s := range b {
		i, ok := byKey[s.key]
		if !ok {
			byKey[s.key] = len(out)
			out = append(out, s)
			continue
		}
		o := out[i]
		o.Values, o.valueT = mergePoints(o.Values, o.valueT, s.Values, s.valueT)
		o.Histograms, o.histT = mergePoints(o.Histograms, o.histT, s.Histograms, s.histT)
		out[i] = o
	}
	return out
}

func mergePoints(a []json.RawMessage, at []int64, b []json.RawMessage, bt []int64) ([]json.RawMessage, []int64) {
	if len(b) == 0 {
		return a, at
	}
	if len(a) == 0 || at[len(at)-1] < bt[0] {
		return append(slices.Clip(a), b...), append(slices.Clip(at), bt...)
	}
	out := make([]json.RawMessage, 0, len(a)+len(b))
	outT := make([]int64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && at[i] < bt[j]):
			out, outT = append(out, a[i]), append(outT, at[i])
			i++
		case i == len(a) || bt[j] < at[i]:
			out, outT = append(out, b[j]), append(outT, bt[j])
			j++
		default:
			out, outT = append(out, b[j]), append(outT, bt[j])
			i++
			j++
		}
	}
	return out, outT
}

// trim keeps the points in [from, to] and drops series left empty.
func trim(streams []stream, from, to int64) []stream {
	var out []stream
	for _, s := range streams {
		v, vt := window(s.Values, s.valueT, from, to)
		h, ht := window(s.Histograms, s.histT, from, to)
		if len(v) == 0 && len(h) == 0 {
			continue
		}
		s.Values, s.valueT, s.Histograms, s.histT = v, vt, h, ht
		out = append(out, s)
	}
	return out
}

func window(points []json.RawMessage, ts []int64, from, to int64) ([]json.RawMessage, []int64) {
	lo, _ := slices.BinarySearch(ts, from)
	hi, found := slices.BinarySearch(ts, to)
	if found {
		hi++
	}
	if lo >= hi {
		return nil, nil
	}
	return points[lo:hi:hi], ts[lo:hi:hi]
}

// sortStreams orders a matrix by labels, as the engine does.
func sortStreams(s []stream) []stream {
	if s == nil {
		return []stream{}
	}
	slices.SortFunc(s, func(a, b stream) int { return labels.Compare(a.lset, b.lset) })
	return s
}

func appendUnique(dst []string, src ...string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

// writeJSON answers v, gzipped when the client accepts it, as the
// upstream handler does.
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(errorBody("internal", err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r) || buf.Len() < 1024 {
		_, _ = w.Write(buf.Bytes())
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw := gzip.NewWriter(w)
	_, _ = zw.Write(buf.Bytes())
	_ = zw.Close()
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if enc, _, _ := strings.Cut(strings.TrimSpace(part), ";"); enc == "gzip" {
			return true
		}
	}
	return false
}

// parseTime and parseDuration accept what the Prometheus API accepts.
func parseTime(s string) (int64, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		s, ns := math.Modf(t)
		return time.Unix(int64(s), int64(math.Round(ns*1000))*int64(time.Millisecond)).UnixMilli(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

func parseDuration(s string) (int64, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ms := d * 1000
		if ms > float64(math.MaxInt64) || ms < float64(math.MinInt64) {
			return 0, fmt.Errorf("duration %q out of range", s)
		}
		return int64(ms), nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return time.Duration(d).Milliseconds(), nil
}

func formatTime(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
}

// SetClock replaces the clock that decides what is fresh (tests).
func (f *Frontend) SetClock(now func() time.Time) { f.now = now }
