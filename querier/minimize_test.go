package querier_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/querier"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// streamFaults counts the streaming calls an ingester's gRPC server
// serves, and from the call numbered failFrom on (1-based; 0 never) fails
// each after it sent failAfter messages, as a connection that drops
// mid-answer would.
type streamFaults struct {
	calls               atomic.Int64
	failFrom, failAfter int64
}

func (f *streamFaults) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	n := f.calls.Add(1)
	if f.failFrom == 0 || n < f.failFrom {
		return handler(srv, ss)
	}
	return handler(srv, &failingStream{ServerStream: ss, left: f.failAfter})
}

type failingStream struct {
	grpc.ServerStream
	left int64
}

func (s *failingStream) SendMsg(m any) error {
	if s.left == 0 {
		return status.Error(codes.Unavailable, "injected: connection dropped")
	}
	s.left--
	return s.ServerStream.SendMsg(m)
}

// minimizedCluster is three ingesters at RF 3, read with minimized
// requests, each holding every series: numSeries series in several
// batches of a stream.
func minimizedCluster(t *testing.T, faults []*streamFaults) (*ringCluster, []labels.Labels, []sample) {
	t.Helper()
	c := newRingClusterWith(t, 3, []string{"", "", ""}, querier.RingReadConfig{MinimizeRequests: true}, func(i int) []grpc.ServerOption {
		return []grpc.ServerOption{grpc.StreamInterceptor(faults[i].intercept)}
	})
	const numSeries = 2500 // 20 batches of a query stream, 3 of a series stream
	series := make([]labels.Labels, numSeries)
	req := &ingesterpb.PushRequest{}
	samples := samplesRange(0, 60_000, 15_000)
	for i := range series {
		series[i] = labels.FromStrings("__name__", "m", "i", fmt.Sprintf("%04d", i))
		ts := &ingesterpb.TimeSeries{}
		series[i].Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, &ingesterpb.LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
		})
		for _, s := range samples {
			ts.Samples = append(ts.Samples, &ingesterpb.Sample{TimestampMs: s.t, Value: s.v})
		}
		req.Series = append(req.Series, ts)
	}
	for _, n := range c.nodes {
		resp, err := n.client.Push(context.Background(), req)
		require.NoError(t, err)
		require.Empty(t, resp.Errors)
	}
	return c, series, samples
}

// selectChecked runs one query (one read set) selecting every series with
// hints, checks the answer is every series once, in order, with all its
// samples unless labelsOnly, and returns the warnings.
func selectChecked(t *testing.T, q storage.Queryable, hints *storage.SelectHints, series []labels.Labels, samples []sample) []string {
	t.Helper()
	qr, err := q.Querier(0, 60_000)
	require.NoError(t, err)
	defer qr.Close()
	ss := qr.Select(context.Background(), true, hints, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	order, got := readSeries(t, ss)
	require.Len(t, order, len(series))
	for i, ls := range order {
		require.Equal(t, series[i].String(), ls.String(), "series %d", i)
		if hints == nil {
			require.Equal(t, samples, got[ls.String()], ls.String())
		}
	}
	var warns []string
	for _, w := range ss.Warnings().AsErrors() {
		warns = append(warns, w.Error())
	}
	return warns
}

// TestMinimizedReadsAskTwoOfThree: with RF 3 on three ingesters a query
// asks two, and which two rotates, so each serves two thirds of the reads.
func TestMinimizedReadsAskTwoOfThree(t *testing.T) {
	faults := []*streamFaults{{}, {}, {}}
	c, series, samples := minimizedCluster(t, faults)
	const queries = 6
	for range queries {
		require.Empty(t, selectChecked(t, c.q, nil, series, samples))
	}
	for i, f := range faults {
		require.Equal(t, int64(queries*2/3), f.calls.Load(), "query streams served by ingester %d", i)
	}
}

// TestMinimizedReadsFailOverMidStream: an asked ingester whose streams
// drop after a few batches is replaced by the one standing by, which takes
// over where the dropped stream stopped: the answer is every series once,
// in order, complete, with a warning naming both. Both streaming calls
// (samples, and label sets only) fail over.
func TestMinimizedReadsFailOverMidStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hints *storage.SelectHints
	}{
		{"samples", nil},
		{"series", &storage.SelectHints{Start: 0, End: 60_000, Func: "series"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults := []*streamFaults{{}, {failFrom: 1, failAfter: 2}, {}}
			c, series, samples := minimizedCluster(t, faults)
			replaced := 0
			for range 3 { // every rotation: ing-1 is asked in two of them
				warns := selectChecked(t, c.q, tc.hints, series, samples)
				t.Logf("warnings: %s", strings.Join(warns, "; "))
				if len(warns) > 0 {
					require.Len(t, warns, 1)
					require.Contains(t, warns[0], "ingester ing-1@")
					require.Contains(t, warns[0], "was asked in its place")
					require.Contains(t, warns[0], "injected: connection dropped")
					replaced++
				}
			}
			require.Equal(t, 2, replaced)
			require.Equal(t, int64(2), faults[1].calls.Load())
			require.Equal(t, int64(6), faults[0].calls.Load()+faults[2].calls.Load(), "the other two: asked four times, and twice in ing-1's place")
		})
	}
}

// TestMinimizedReadsFailTwice: when an asked ingester and its standby both
// fail, which is one failure more than RF 3 tolerates, the query fails
// naming both, as a read of all three would.
func TestMinimizedReadsFailTwice(t *testing.T) {
	faults := []*streamFaults{{failFrom: 1, failAfter: 1}, {failFrom: 1, failAfter: 3}, {}}
	c, _, _ := minimizedCluster(t, faults)
	for range 3 {
		qr, err := c.q.Querier(0, 60_000)
		require.NoError(t, err)
		ss := qr.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
		for ss.Next() {
		}
		err = ss.Err()
		require.Error(t, err)
		require.ErrorContains(t, err, "ing-0@")
		require.ErrorContains(t, err, "ing-1@")
		require.ErrorContains(t, err, "at most 1 tolerated")
		require.NoError(t, qr.Close())
	}
}
