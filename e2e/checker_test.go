//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// writer remote-writes like Prometheus's queue manager with one shard:
// batches in order, a recoverable error (network, 5xx, 429) retried with
// exponential backoff from 30ms to 5s (min_backoff, max_backoff) for as
// long as it takes, anything else (4xx) dropped and counted. Every
// request is `series` series with one sample each at one timestamp; a
// timestamp is recorded only once its request was answered 2xx.
type writer struct {
	name   string
	url    string
	series int
	every  time.Duration
	client *http.Client

	mu        sync.Mutex
	acked     []int64 // timestamps, in order
	attempts  int
	retries   int
	dropped   []string // non-retryable failures: status and body
	slowest   time.Duration
	slow      []slowAck // acknowledgements that took over slowAckAt
	lastError string

	stop chan struct{}
	done chan struct{}
}

// startWriter sends `series` series every `every` to base's remote-write
// endpoint until stopped.
func startWriter(t *testing.T, name, base string, series int, every time.Duration) *writer {
	w := &writer{
		name: name, url: base + "/api/v1/write", series: series, every: every,
		// Prometheus's remote_timeout default.
		client: &http.Client{Timeout: 30 * time.Second},
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	go w.run()
	t.Cleanup(w.halt)
	return w
}

func (w *writer) run() {
	defer close(w.done)
	var last int64
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		ts := max(last+1, time.Now().UnixMilli())
		body := w.encode(ts)
		began := time.Now()
		if !w.send(body) {
			continue // dropped as Prometheus drops a 4xx batch
		}
		last = ts
		w.mu.Lock()
		w.acked = append(w.acked, ts)
		took := time.Since(began)
		w.slowest = max(w.slowest, took)
		if took > slowAckAt {
			w.slow = append(w.slow, slowAck{began, took})
		}
		w.mu.Unlock()
	}
}

// slowAckAt is the acknowledgement latency the writer reports as slow.
const slowAckAt = 500 * time.Millisecond

type slowAck struct {
	at   time.Time
	took time.Duration
}

// slowSince summarises slow acknowledgements of batches begun after t: how
// many, and the span from t to the end of the last one.
func (w *writer) slowSince(t time.Time) (n int, until time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.slow {
		if s.at.After(t) {
			n++
			until = max(until, s.at.Add(s.took).Sub(t))
		}
	}
	return n, until
}

// value is the sample of series i at ts: unique, so a misplaced sample
// cannot pass for a right one.
func sampleValue(i int, ts int64) float64 { return float64(ts%1e9) + float64(i)/1000 }

func (w *writer) encode(ts int64) []byte {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, w.series)}
	for i := range req.Timeseries {
		req.Timeseries[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "e2e_load"},
				{Name: "series", Value: strconv.Itoa(i)},
				{Name: "writer", Value: w.name},
			},
			Samples: []prompb.Sample{{Timestamp: ts, Value: sampleValue(i, ts)}},
		}
	}
	raw, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, raw)
}

// send retries until the batch is acknowledged (true) or refused with a
// non-recoverable status (false). Once stopped, it still finishes the
// batch in hand, as Prometheus flushes on shutdown, but gives up after a
// minute so a broken cluster fails the test instead of hanging it.
func (w *writer) send(body []byte) bool {
	backoff := 30 * time.Millisecond
	var giveUp time.Time
	stop := w.stop
	select {
	case <-stop:
		stop, giveUp = nil, time.Now().Add(time.Minute)
	default:
	}
	for {
		w.mu.Lock()
		w.attempts++
		w.mu.Unlock()
		req, _ := http.NewRequest(http.MethodPost, w.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		resp, err := w.client.Do(req)
		var status int
		var msg string
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			status, msg = resp.StatusCode, string(b)
		} else {
			msg = err.Error()
		}
		switch {
		case status/100 == 2:
			return true
		case status/100 == 4 && status != http.StatusTooManyRequests:
			w.mu.Lock()
			w.dropped = append(w.dropped, fmt.Sprintf("%d %s", status, msg))
			w.mu.Unlock()
			return false
		}
		w.mu.Lock()
		w.retries++
		w.lastError = fmt.Sprintf("%d %s", status, msg[:min(len(msg), 160)])
		w.mu.Unlock()
		if !giveUp.IsZero() && !time.Now().Before(giveUp) {
			w.mu.Lock()
			w.dropped = append(w.dropped, "not acknowledged a minute after stop: "+msg)
			w.mu.Unlock()
			return false
		}
		wait := backoff
		if !giveUp.IsZero() {
			wait = min(wait, time.Until(giveUp))
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-stop:
			// A stop cuts the backoff short: the batch in hand gets one
			// more try now, then a minute of backoff-paced tries. stop is
			// nil from here on, so a closed channel does not spin the loop.
			timer.Stop()
			stop, giveUp = nil, time.Now().Add(time.Minute)
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// halt stops the writer after the batch in hand.
func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// ackedSnapshot is a copy of the acknowledged timestamps.
func (w *writer) ackedSnapshot() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...)
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// String is the writer's name and statistics, for failure messages.
func (w *writer) String() string { return w.name + ": " + w.stats().String() }

type writerStats struct {
	Acked, Attempts, Retries, Dropped int
	Slowest                           time.Duration
	LastError                         string
}

func (s writerStats) String() string {
	return fmt.Sprintf("%d batches acknowledged, %d attempts, %d retries, %d dropped, slowest ack %s, last error %q",
		s.Acked, s.Attempts, s.Retries, s.Dropped, s.Slowest.Round(time.Millisecond), s.LastError)
}

func (w *writer) stats() writerStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return writerStats{len(w.acked), w.attempts, w.retries, len(w.dropped), w.slowest, w.lastError}
}

// requireNoDrops: no batch was given up on; every failure was transient.
func (w *writer) requireNoDrops(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Empty(t, w.dropped, "%s: writes refused for good", w.name)
}

// queryResult is /api/v1/query's answer for a range selector.
type queryResult struct {
	Status   string   `json:"status"`
	Error    string   `json:"error"`
	Warnings []string `json:"warnings"`
	Data     struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// checkExactlyOnce asks querier base for every sample of w up to the last
// acknowledged one, with a range selector (raw samples, no step), and
// returns a description of every difference from what was acknowledged:
// a missing sample, a duplicate, an unexpected one or a wrong value.
// Samples written after the snapshot are outside the range and ignored.
func checkExactlyOnce(base string, w *writer, acked []int64) (problems []string, warnings []string, err error) {
	if len(acked) == 0 {
		return []string{"nothing acknowledged"}, nil, nil
	}
	first, last := acked[0], acked[len(acked)-1]
	q := url.Values{
		"query": {fmt.Sprintf(`e2e_load{writer=%q}[%dms]`, w.name, last-first+1)},
		"time":  {strconv.FormatFloat(float64(last)/1000, 'f', 3, 64)},
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Get(base + "/api/v1/query?" + q.Encode())
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var r queryResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || r.Status != "success" {
		return nil, r.Warnings, fmt.Errorf("query: %s: %s", resp.Status, r.Error)
	}
	want := make(map[int64]bool, len(acked))
	for _, ts := range acked {
		want[ts] = true
	}
	seen := map[string]bool{}
	add := func(format string, a ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, a...))
		} else if len(problems) == 20 {
			problems = append(problems, "...")
		}
	}
	for _, s := range r.Data.Result {
		i, _ := strconv.Atoi(s.Metric["series"])
		key := s.Metric["series"]
		if seen[key] {
			add("series %s returned twice", key)
		}
		seen[key] = true
		got := make(map[int64]bool, len(s.Values))
		for _, v := range s.Values {
			secs, _ := v[0].(float64)
			ts := int64(math.Round(secs * 1000))
			val, _ := strconv.ParseFloat(fmt.Sprint(v[1]), 64)
			switch {
			case got[ts]:
				add("series %d: sample at %d returned twice", i, ts)
			case !want[ts]:
				add("series %d: sample at %d was never acknowledged", i, ts)
			case val != sampleValue(i, ts):
				add("series %d: sample at %d is %v, written %v", i, ts, val, sampleValue(i, ts))
			}
			got[ts] = true
		}
		if missing := len(acked) - len(got); missing > 0 {
			var lost []int64
			for _, ts := range acked {
				if !got[ts] && len(lost) < 5 {
					lost = append(lost, ts)
				}
			}
			add("series %d: %d acknowledged samples missing (first: %v)", i, missing, lost)
		}
	}
	if len(seen) != w.series {
		add("%d series returned, %d written", len(seen), w.series)
	}
	return problems, r.Warnings, nil
}

// requireExactlyOnce checks every writer through every querier.
func requireExactlyOnce(t *testing.T, queriers []*proc, ws ...*writer) {
	t.Helper()
	for _, w := range ws {
		acked := w.ackedSnapshot()
		for _, q := range queriers {
			problems, warnings, err := checkExactlyOnce(q.http, w, acked)
			require.NoError(t, err, "query %s through %s", w.name, q.name)
			require.Empty(t, problems, "%s through %s (warnings %v)", w.name, q.name, warnings)
			t.Logf("%s: all %d acknowledged batches (%d samples) returned exactly once by %s",
				w.name, len(acked), len(acked)*w.series, q.name)
		}
	}
}

// ingesterHolds asks one ingester directly over gRPC (no querier, no
// merging of replicas) for w's samples in [acked[0], acked[last]] and
// describes every acknowledged sample it lacks and every one it has twice.
func ingesterHolds(ctx context.Context, p *proc, w *writer, acked []int64) ([]string, error) {
	cl, err := ingesterclient.Dial(fmt.Sprintf("%s:%d", p.host.ip, portGRPC), ingesterclient.Config{
		MaxRecvMsgSize: 256 << 20, MaxSendMsgSize: 1 << 20, RemoteTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	// The e2e cluster runs without multi-tenancy: its data is the default
	// tenant's.
	stream, err := cl.QueryStream(tenant.With(ctx, tenant.DefaultTenant), &ingesterpb.QueryRequest{
		StartMs: acked[0], EndMs: acked[len(acked)-1],
		Matchers: []*ingesterpb.LabelMatcher{
			{Type: ingesterpb.LabelMatcher_EQ, Name: "__name__", Value: "e2e_load"},
			{Type: ingesterpb.LabelMatcher_EQ, Name: "writer", Value: w.name},
		},
	})
	if err != nil {
		return nil, err
	}
	got := map[string]map[int64]int{}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, s := range resp.Series {
			var series string
			for _, l := range s.Labels {
				if string(l.Name) == "series" {
					series = string(l.Value)
				}
			}
			if got[series] == nil {
				got[series] = map[int64]int{}
			}
			for _, ch := range s.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(ch.Encoding), ch.Data)
				if err != nil {
					return nil, err
				}
				it := chk.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					ts, _ := it.At()
					if ts >= acked[0] && ts <= acked[len(acked)-1] {
						got[series][ts]++
					}
				}
			}
		}
	}
	var problems []string
	for i := range w.series {
		have := got[strconv.Itoa(i)]
		missing := 0
		for _, ts := range acked {
			switch have[ts] {
			case 0:
				missing++
			case 1:
			default:
				problems = append(problems, fmt.Sprintf("series %d: sample at %d held %d times", i, ts, have[ts]))
			}
		}
		if missing > 0 {
			problems = append(problems, fmt.Sprintf("series %d: %d of %d acknowledged samples missing", i, missing, len(acked)))
		}
		if len(problems) > 10 {
			break
		}
	}
	return problems, nil
}
