package app

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

// TestRandomQueries evaluates random PromQL, generated from the label sets
// of the data as Cortex does with promqlsmith, through a three-ingester RF 3
// cluster over the HTTP API (a querier without and the front with query
// sharding) and through a plain promql engine on a local tsdb holding the
// same samples; every answer must be the same. PHAROS_RANDOM_QUERIES sets
// the number of queries (300 by default) and PHAROS_RANDOM_SEED the seed.
func TestRandomQueries(t *testing.T) {
	n := 300
	if v := os.Getenv("PHAROS_RANDOM_QUERIES"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("PHAROS_RANDOM_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (PHAROS_RANDOM_SEED reruns it)", seed)

	c := newTestClusterWith(t, 3, []string{"a", "b", "c"}, "-query-frontend.query-sharding-total-shards=3")
	plain := &testNode{id: "plain-querier", dir: t.TempDir()}
	plain.args = append(clusterArgs(3), "-target=querier", "-storage.path="+plain.dir,
		"-memberlist.join="+c.front.app.GossipAddr())
	c.start(plain, "")

	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	data := randomQueryData(end)
	local := localDB(t, data)
	for i := 0; i < len(data); i += 20 {
		code, body := remoteWrite(t, c.base(), data[i:min(i+20, len(data))])
		require.Equal(t, http.StatusNoContent, code, body)
	}
	names := map[string][]labels.Labels{}
	for _, ts := range data {
		ls := labels.New(prompbLabels(ts.Labels)...)
		names[ls.Get(model.MetricNameLabel)] = append(names[ls.Get(model.MetricNameLabel)], ls)
	}
	// Every series is queryable on the cluster before comparing.
	require.Eventually(t, func() bool {
		_, r := query(t, c.base(), `count({__name__=~".+"})`, end.UnixMilli())
		return strings.Contains(string(r.Data), fmt.Sprintf(`"%d"`, len(data)))
	}, 30*time.Second, 50*time.Millisecond)

	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:               50_000_000,
		Timeout:                  time.Minute,
		LookbackDelta:            5 * time.Minute,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   parser.NewParser(parser.Options{}),
	})
	g := &queryGen{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), series: names, end: end}
	start, step := end.Add(-30*time.Minute), time.Minute

	targets := []struct{ name, base string }{
		{"querier", "http://" + plain.app.HTTPAddr()},
		{"sharded front", c.base()},
	}
	agreed, empty, failed, ties, differ := 0, 0, 0, 0, map[string][]string{}
	// compare is diff, except that topk and bottomk may pick another of
	// equal values (upstream leaves ties to the order series arrive in,
	// which differs between a local tsdb and merged or sharded ingester
	// answers): then the values at each step must still be the same.
	compare := func(q string, want, got normalized) string {
		d := want.diff(got)
		if d != "" && (strings.Contains(q, "topk") || strings.Contains(q, "bottomk")) && want.sameValuesPerStep(got) {
			ties++
			return ""
		}
		return d
	}
	for i := range n {
		q := g.expr(0)
		inst, err := engine.NewInstantQuery(t.Context(), local, nil, q, end)
		var want normalized
		if err != nil {
			want = normalized{Err: true}
		} else {
			want = normalize(inst.Exec(t.Context()))
			inst.Close()
		}
		rq, err := engine.NewRangeQuery(t.Context(), local, nil, q, start, end, step)
		var wantRange normalized
		if err != nil {
			wantRange = normalized{Err: true}
		} else {
			wantRange = normalize(rq.Exec(t.Context()))
			rq.Close()
		}
		switch {
		case want.Err:
			failed++
		case len(want.Series) == 0:
			empty++
		}
		ok := true
		for _, tg := range targets {
			got := apiQuery(t, tg.base, url.Values{"query": {q}, "time": {unixSec(end)}})
			if d := compare(q, want, got); d != "" {
				ok = false
				differ[tg.name+" instant"] = append(differ[tg.name+" instant"], fmt.Sprintf("#%d %s: %s", i, q, d))
			}
			got = apiQuery(t, tg.base+"/api/v1/query_range", url.Values{"query": {q}, "start": {unixSec(start)}, "end": {unixSec(end)}, "step": {"60"}})
			if d := compare(q, wantRange, got); d != "" {
				ok = false
				differ[tg.name+" range"] = append(differ[tg.name+" range"], fmt.Sprintf("#%d %s: %s", i, q, d))
			}
		}
		if ok {
			agreed++
		}
	}
	t.Logf("%d of %d queries agreed on every path (locally %d failed, %d had an empty instant answer; %d answers of topk/bottomk chose other series of equal value)", agreed, n, failed, empty, ties)
	// A generator whose queries mostly fail or find nothing compares nothing.
	require.Less(t, failed+empty, n*6/10, "too few queries with an answer")
	for k, v := range differ {
		t.Errorf("%s: %d differences, first ones:\n%s", k, len(v), strings.Join(v[:min(len(v), 5)], "\n"))
	}
}

func prompbLabels(ls []prompb.Label) []labels.Label {
	out := make([]labels.Label, len(ls))
	for i, l := range ls {
		out[i] = labels.Label{Name: l.Name, Value: l.Value}
	}
	return out
}

func unixSec(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

// randomQueryData is an hour of 30s samples up to end, in the shapes of the
// tutorial's exporters: node-exporter counters and gauges, kube-state-metrics
// gauges, and a classic histogram; counters reset now and then.
func randomQueryData(end time.Time) []prompb.TimeSeries {
	rng := rand.New(rand.NewPCG(7, 8))
	var out []prompb.TimeSeries
	add := func(counter bool, scale float64, ls ...string) {
		ts := prompb.TimeSeries{}
		for i := 0; i < len(ls); i += 2 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: ls[i], Value: ls[i+1]})
		}
		slices.SortFunc(ts.Labels, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		v := rng.Float64() * scale
		rate := rng.Float64() * scale / 100
		for at := end.Add(-time.Hour); !at.After(end); at = at.Add(30 * time.Second) {
			if counter {
				v += rate * (0.5 + rng.Float64())
				if rng.IntN(60) == 0 {
					v = 0
				}
			} else {
				v = scale * rng.Float64()
			}
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: math.Round(v*1000) / 1000})
		}
		out = append(out, ts)
	}
	for _, inst := range []string{"node-1:9100", "node-2:9100", "node-3:9100"} {
		for _, cpu := range []string{"0", "1"} {
			for _, mode := range []string{"idle", "user", "system"} {
				add(true, 1000, "__name__", "node_cpu_seconds_total", "job", "node", "instance", inst, "cpu", cpu, "mode", mode)
			}
		}
		add(false, 8e9, "__name__", "node_memory_MemAvailable_bytes", "job", "node", "instance", inst)
		for _, mp := range []string{"/", "/var"} {
			add(false, 1e11, "__name__", "node_filesystem_avail_bytes", "job", "node", "instance", inst, "mountpoint", mp, "device", "sda")
		}
		add(true, 1e6, "__name__", "node_network_receive_bytes_total", "job", "node", "instance", inst, "device", "eth0")
	}
	for _, ns := range []string{"default", "monitoring"} {
		for _, pod := range []string{"api-0", "api-1", "web-0"} {
			for _, phase := range []string{"Running", "Pending", "Failed"} {
				add(false, 1.4, "__name__", "kube_pod_status_phase", "job", "kube-state-metrics", "namespace", ns, "pod", pod, "phase", phase)
			}
			add(true, 5, "__name__", "kube_pod_container_status_restarts_total", "job", "kube-state-metrics", "namespace", ns, "pod", pod, "container", "main")
		}
		add(false, 5, "__name__", "kube_deployment_status_replicas", "job", "kube-state-metrics", "namespace", ns, "deployment", "api")
	}
	// A classic histogram: cumulative buckets that grow together.
	for _, inst := range []string{"api-0:8080", "api-1:8080"} {
		for _, h := range []string{"/query", "/write"} {
			base := []string{"job", "api", "instance", inst, "handler", h}
			var bucketSeries []int
			for _, le := range []string{"0.05", "0.1", "0.5", "1", "5", "+Inf"} {
				add(true, 100, append([]string{"__name__", "http_request_duration_seconds_bucket", "le", le}, base...)...)
				bucketSeries = append(bucketSeries, len(out)-1)
			}
			// Make the buckets cumulative, as an exporter would.
			for i := 1; i < len(bucketSeries); i++ {
				prev, cur := out[bucketSeries[i-1]].Samples, out[bucketSeries[i]].Samples
				for k := range cur {
					cur[k].Value += prev[k].Value
				}
			}
			add(true, 50, append([]string{"__name__", "http_request_duration_seconds_sum"}, base...)...)
			inf := out[bucketSeries[len(bucketSeries)-1]]
			cnt := prompb.TimeSeries{Samples: slices.Clone(inf.Samples)}
			for _, l := range inf.Labels {
				switch l.Name {
				case "le":
				case "__name__":
					cnt.Labels = append(cnt.Labels, prompb.Label{Name: "__name__", Value: "http_request_duration_seconds_count"})
				default:
					cnt.Labels = append(cnt.Labels, l)
				}
			}
			out = append(out, cnt)
		}
	}
	return out
}

func localDB(t *testing.T, data []prompb.TimeSeries) *tsdb.DB {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	app := db.Appender(context.Background())
	for _, ts := range data {
		ls := labels.New(prompbLabels(ts.Labels)...)
		for _, s := range ts.Samples {
			_, err := app.Append(0, ls, s.Timestamp, s.Value)
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	return db
}

// normalized is a query answer in a form both paths reduce to: the error
// class, or each series (by its labels) with its points.
type normalized struct {
	Err    bool
	Type   string
	Series map[string][][2]float64
}

func normalize(r *promql.Result) normalized {
	if r.Err != nil {
		return normalized{Err: true}
	}
	n := normalized{Type: string(r.Value.Type()), Series: map[string][][2]float64{}}
	switch v := r.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			n.Series[s.Metric.String()] = [][2]float64{{float64(s.T) / 1000, s.F}}
		}
	case promql.Matrix:
		for _, s := range v {
			var pts [][2]float64
			for _, p := range s.Floats {
				pts = append(pts, [2]float64{float64(p.T) / 1000, p.F})
			}
			n.Series[s.Metric.String()] = pts
		}
	case promql.Scalar:
		n.Series[""] = [][2]float64{{float64(v.T) / 1000, v.V}}
	case promql.String:
		n.Series[v.V] = nil
	}
	return n
}

// apiQuery runs a query over the HTTP API (base is a query URL or the
// server's root for an instant query) and normalizes the answer.
func apiQuery(t *testing.T, base string, params url.Values) normalized {
	t.Helper()
	if !strings.Contains(base, "/api/") {
		base += "/api/v1/query"
	}
	resp, err := http.PostForm(base, params)
	require.NoError(t, err)
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
	if r.Status != "success" {
		require.Less(t, resp.StatusCode, 500, "a query error is the client's, not the server's")
		return normalized{Err: true}
	}
	n := normalized{Type: r.Data.ResultType, Series: map[string][][2]float64{}}
	point := func(p [2]any) [2]float64 {
		f, err := strconv.ParseFloat(p[1].(string), 64)
		require.NoError(t, err)
		return [2]float64{p[0].(float64), f}
	}
	switch r.Data.ResultType {
	case "vector", "matrix":
		var ss []struct {
			Metric map[string]string `json:"metric"`
			Value  *[2]any           `json:"value"`
			Values [][2]any          `json:"values"`
		}
		require.NoError(t, json.Unmarshal(r.Data.Result, &ss))
		for _, s := range ss {
			key := labels.FromMap(s.Metric).String()
			if s.Value != nil {
				n.Series[key] = [][2]float64{point(*s.Value)}
				continue
			}
			var pts [][2]float64
			for _, p := range s.Values {
				pts = append(pts, point(p))
			}
			n.Series[key] = pts
		}
	case "scalar":
		var p [2]any
		require.NoError(t, json.Unmarshal(r.Data.Result, &p))
		n.Series[""] = [][2]float64{point(p)}
	case "string":
		var p [2]any
		require.NoError(t, json.Unmarshal(r.Data.Result, &p))
		n.Series[p[1].(string)] = nil
	}
	return n
}

// diff describes how got differs from n, or is "" when they agree: the same
// error class, the same series with the same timestamps, values equal
// within 1e-9 relative (sums may add in another order), NaN equal to NaN.
func (n normalized) diff(got normalized) string {
	if n.Err || got.Err {
		if n.Err != got.Err {
			return fmt.Sprintf("error class: local %v, cluster %v", n.Err, got.Err)
		}
		return ""
	}
	if n.Type != got.Type {
		return fmt.Sprintf("result type: local %s, cluster %s", n.Type, got.Type)
	}
	for k := range n.Series {
		if _, ok := got.Series[k]; !ok {
			return fmt.Sprintf("series %s missing (local %d series, cluster %d)", k, len(n.Series), len(got.Series))
		}
	}
	for k := range got.Series {
		if _, ok := n.Series[k]; !ok {
			return fmt.Sprintf("extra series %s (local %d series, cluster %d)", k, len(n.Series), len(got.Series))
		}
	}
	for k, w := range n.Series {
		g := got.Series[k]
		if len(w) != len(g) {
			return fmt.Sprintf("series %s: %d points locally, %d on the cluster", k, len(w), len(g))
		}
		for i := range w {
			if math.Abs(w[i][0]-g[i][0]) > 1e-6 || !sameValue(w[i][1], g[i][1]) {
				return fmt.Sprintf("series %s point %d: local %v, cluster %v", k, i, w[i], g[i])
			}
		}
	}
	return ""
}

// sameValuesPerStep reports whether n and got hold the same values at every
// timestamp, whichever series carry them.
func (n normalized) sameValuesPerStep(got normalized) bool {
	if n.Err || got.Err || n.Type != got.Type {
		return false
	}
	steps := func(x normalized) map[float64][]float64 {
		out := map[float64][]float64{}
		for _, pts := range x.Series {
			for _, p := range pts {
				out[p[0]] = append(out[p[0]], p[1])
			}
		}
		for _, vs := range out {
			slices.Sort(vs)
		}
		return out
	}
	a, b := steps(n), steps(got)
	if len(a) != len(b) {
		return false
	}
	for ts, va := range a {
		vb := b[ts]
		if len(va) != len(vb) {
			return false
		}
		for i := range va {
			if !sameValue(va[i], vb[i]) {
				return false
			}
		}
	}
	return true
}

func sameValue(a, b float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case a == b:
		return true
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return false
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// queryGen writes random PromQL over the real metric names, label names and
// values of the data.
type queryGen struct {
	rng    *rand.Rand
	series map[string][]labels.Labels
	end    time.Time
}

func (g *queryGen) pick(xs ...string) string { return xs[g.rng.IntN(len(xs))] }

func (g *queryGen) metric(counter bool) string {
	var names []string
	for n := range g.series {
		if strings.HasSuffix(n, "_total") || strings.HasSuffix(n, "_bucket") || strings.HasSuffix(n, "_sum") || strings.HasSuffix(n, "_count") {
			if counter {
				names = append(names, n)
			}
		} else if !counter {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return g.pick(names...)
}

func (g *queryGen) labelNames(metric string) []string {
	var out []string
	for _, ls := range g.series[metric] {
		ls.Range(func(l labels.Label) {
			if l.Name != model.MetricNameLabel && !slices.Contains(out, l.Name) {
				out = append(out, l.Name)
			}
		})
	}
	slices.Sort(out)
	return out
}

// selector is metric{matchers} with matchers drawn from the metric's own
// label values (and now and then a value it does not have).
func (g *queryGen) selector(counter bool) (string, string) {
	m := g.metric(counter)
	ls := g.series[m][g.rng.IntN(len(g.series[m]))]
	var ms []string
	for _, name := range g.labelNames(m) {
		if g.rng.IntN(3) != 0 {
			continue
		}
		v := ls.Get(name)
		switch g.rng.IntN(10) {
		case 0, 1, 2:
			ms = append(ms, fmt.Sprintf("%s=%q", name, v))
		case 3, 4:
			ms = append(ms, fmt.Sprintf("%s!=%q", name, v))
		case 5, 6:
			ms = append(ms, fmt.Sprintf("%s=~%q", name, quoteRegexp(v)+"|nope.*"))
		case 7, 8:
			ms = append(ms, fmt.Sprintf("%s!~%q", name, quoteRegexp(v)))
		default:
			ms = append(ms, fmt.Sprintf("%s=%q", name, "absent-value"))
		}
	}
	return m, m + "{" + strings.Join(ms, ",") + "}"
}

func quoteRegexp(v string) string {
	if len(v) > 2 {
		return strings.NewReplacer(".", `\\.`, "+", `\\+`, "/", "/").Replace(v[:len(v)-1]) + ".*"
	}
	return strings.NewReplacer(".", `\\.`, "+", `\\+`).Replace(v)
}

func (g *queryGen) modifiers() string {
	var s string
	switch g.rng.IntN(6) {
	case 0:
		s += " offset " + g.pick("1m", "5m", "90s", "-2m")
	case 1:
		s += fmt.Sprintf(" @ %d", g.end.Add(-time.Duration(g.rng.IntN(40))*time.Minute).Unix())
	case 2:
		s += " @ end()"
	}
	return s
}

func (g *queryGen) rangeSel(counter bool) (string, string) {
	m, sel := g.selector(counter)
	return m, sel + "[" + g.pick("1m", "2m", "5m", "10m") + "]" + g.modifiers()
}

// vector is an instant-vector expression, deeper at lower depth.
func (g *queryGen) vector(depth int) string {
	if depth > 2 {
		_, s := g.selector(g.rng.IntN(2) == 0)
		return s + g.modifiers()
	}
	grouping := func() string {
		names := []string{"instance", "job", "namespace", "mode", "cpu", "le", "handler", "pod", "phase"}
		var by []string
		for range g.rng.IntN(3) {
			by = append(by, g.pick(names...))
		}
		slices.Sort(by)
		by = slices.Compact(by)
		return g.pick(" by ", " without ") + "(" + strings.Join(by, ", ") + ")"
	}
	switch g.rng.IntN(12) {
	case 0, 1:
		_, s := g.selector(g.rng.IntN(2) == 0)
		return s + g.modifiers()
	case 2, 3:
		_, r := g.rangeSel(true)
		return g.pick("rate", "irate", "increase", "resets", "changes") + "(" + r + ")"
	case 4:
		_, r := g.rangeSel(false)
		f := g.pick("delta", "deriv", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "changes", "stddev_over_time", "last_over_time")
		if g.rng.IntN(4) == 0 {
			return fmt.Sprintf("quantile_over_time(%s, %s)", g.pick("0.5", "0.9", "0", "1"), r)
		}
		return f + "(" + r + ")"
	case 5, 6:
		inner := g.vector(depth + 1)
		ops := []string{"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "quantile", "count_values"}
		if depth == 0 {
			// topk and bottomk leave ties to the order series arrive in,
			// which merging changes; only as the outermost expression do
			// their answers compare (per step, by value: see compare).
			// Inside a subquery, a function or an operation, another tied
			// series changes what is computed from it.
			ops = append(ops, "topk", "bottomk")
		}
		switch op := g.pick(ops...); op {
		case "topk", "bottomk":
			return fmt.Sprintf("%s%s(%d, %s)", op, grouping(), 1+g.rng.IntN(3), inner)
		case "quantile":
			return fmt.Sprintf("quantile%s(%s, %s)", grouping(), g.pick("0.5", "0.99", "0"), inner)
		case "count_values":
			return fmt.Sprintf(`count_values%s("value", round(%s))`, grouping(), inner)
		default:
			return op + grouping() + "(" + inner + ")"
		}
	case 7:
		l, r := g.vector(depth+1), g.vector(depth+1)
		op := g.pick("+", "-", "*", "/", "%", "^", "and", "or", "unless", ">", "<", "==", "!=", ">=", "<=")
		if strings.ContainsAny(op, "<>=!") && g.rng.IntN(2) == 0 {
			op += " bool"
		}
		match := ""
		switch g.rng.IntN(4) {
		case 0:
			match = " on(" + g.pick("instance", "job", "namespace", "instance, job") + ")"
		case 1:
			match = " ignoring(" + g.pick("mode", "cpu", "le", "phase", "mountpoint") + ")"
		}
		if match != "" && g.rng.IntN(3) == 0 && !slices.Contains([]string{"and", "or", "unless"}, op) {
			match += " group_left"
		}
		return "(" + l + ") " + op + match + " (" + r + ")"
	case 8:
		return fmt.Sprintf("(%s) %s %s", g.vector(depth+1), g.pick("*", "+", "/", ">", "< bool", "-"), g.pick("2", "0", "0.5", "100", "-1"))
	case 9:
		f := g.pick("abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "round", "sgn", "clamp_min", "clamp_max", "timestamp", "absent", "sort", "sort_desc")
		switch f {
		case "clamp_min", "clamp_max":
			return fmt.Sprintf("%s(%s, %s)", f, g.vector(depth+1), g.pick("0", "10", "-5"))
		}
		return f + "(" + g.vector(depth+1) + ")"
	case 10:
		q := g.pick("0.5", "0.9", "0.99")
		return fmt.Sprintf("histogram_quantile(%s, sum by (le%s) (rate(http_request_duration_seconds_bucket%s[%s])))",
			q, g.pick("", ", handler", ", instance"), g.pick("", `{handler="/query"}`, `{instance=~"api-0.*"}`), g.pick("2m", "5m"))
	default:
		if g.rng.IntN(2) == 0 {
			return fmt.Sprintf(`label_replace(%s, "dst", "$1", "%s", "(.*)[:-].*")`, g.vector(depth+1), g.pick("instance", "pod", "job"))
		}
		// A subquery: a range function over an expression evaluated at a
		// resolution of its own.
		return fmt.Sprintf("%s((%s)[%s:%s])%s", g.pick("max_over_time", "avg_over_time", "rate", "count_over_time"),
			g.vector(depth+1), g.pick("5m", "10m"), g.pick("1m", "30s", ""), g.modifiers())
	}
}

func (g *queryGen) expr(depth int) string {
	if g.rng.IntN(20) == 0 {
		if g.rng.IntN(2) == 0 {
			return "scalar(" + g.vector(depth+1) + ")"
		}
		return "vector(scalar(" + g.vector(depth+1) + "))"
	}
	return g.vector(depth)
}

// TestNormalizedDiff: the comparison sees what it must and forgives sums
// added in another order.
func TestNormalizedDiff(t *testing.T) {
	a := normalized{Type: "vector", Series: map[string][][2]float64{`{a="1"}`: {{1, 0.1 + 0.2}}, `{a="2"}`: {{1, math.NaN()}}}}
	b := normalized{Type: "vector", Series: map[string][][2]float64{`{a="1"}`: {{1, 0.3}}, `{a="2"}`: {{1, math.NaN()}}}}
	require.Empty(t, a.diff(b))
	b.Series[`{a="1"}`] = [][2]float64{{1, 0.31}}
	require.Contains(t, a.diff(b), "point 0")
	delete(b.Series, `{a="1"}`)
	require.Contains(t, a.diff(b), "missing")
	require.Contains(t, a.diff(normalized{Err: true}), "error class")
	require.Empty(t, normalized{Err: true}.diff(normalized{Err: true}))
	require.Contains(t, a.diff(normalized{Type: "matrix", Series: a.Series}), "result type")
}
