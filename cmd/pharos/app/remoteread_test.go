package app

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// remoteRead reads {__name__="m"} from base's /api/v1/read with
// Prometheus's own remote-read client, asking for one response type, and
// returns every series' samples by its id label.
func remoteRead(t *testing.T, base string, typ prompb.ReadRequest_ResponseType, from, through int64) (map[string][]prompb.Sample, error) {
	t.Helper()
	u, err := url.Parse(base + "/api/v1/read")
	require.NoError(t, err)
	c, err := remote.NewReadClient("pharos", &remote.ClientConfig{
		URL:                   &config_util.URL{URL: u},
		Timeout:               model.Duration(30 * time.Second),
		ChunkedReadLimit:      promconfig.DefaultChunkedReadLimit,
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{typ},
	})
	require.NoError(t, err)
	ss, err := c.Read(t.Context(), &prompb.Query{
		StartTimestampMs: from, EndTimestampMs: through,
		Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: model.MetricNameLabel, Value: "m"}},
	}, true)
	if err != nil {
		return nil, err
	}
	got := map[string][]prompb.Sample{}
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		id := s.Labels().Get("id")
		_, dup := got[id]
		require.False(t, dup, "series %s twice: replicas were not merged", s.Labels())
		got[id] = []prompb.Sample{}
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got[id] = append(got[id], prompb.Sample{Timestamp: ts, Value: v})
		}
		require.NoError(t, it.Err())
	}
	return got, ss.Err()
}

// TestRemoteReadAndFederationRF3 reads through /api/v1/read what was
// written to three ingesters with RF 3: with samples and with streamed
// chunks, each series once with every sample, several reads at once, and a
// sampled read over the sample limit refused with 400. /federate gives
// each series' latest sample once.
func TestRemoteReadAndFederationRF3(t *testing.T) {
	c := newTestClusterWith(t, 3, []string{"a", "b", "c"}, "-querier.remote-read.sample-limit=100", "-querier.remote-read.concurrent-limit=2")
	const n = 40
	base := time.Now().Add(-time.Minute).UnixMilli()
	want := map[string][]prompb.Sample{}
	for k := range int64(3) {
		series := genSeries(0, n, base+k*1000)
		writeAll(t, c.base(), series, n)
		for _, s := range series {
			id := s.Labels[1].Value
			want[id] = append(want[id], s.Samples...)
		}
	}

	// 40 series in one read: the sampled type must stay under 100 samples.
	for _, typ := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
		t.Run(typ.String(), func(t *testing.T) {
			through := base + 2000
			if typ == prompb.ReadRequest_SAMPLES {
				through = base + 1000 // 80 samples
			}
			exp := map[string][]prompb.Sample{}
			for id, ss := range want {
				for _, s := range ss {
					if s.Timestamp <= through {
						exp[id] = append(exp[id], s)
					}
				}
			}
			// More reads than the concurrent limit: the rest wait their turn.
			var wg sync.WaitGroup
			errs := make([]error, 4)
			gots := make([]map[string][]prompb.Sample, 4)
			for i := range gots {
				wg.Go(func() { gots[i], errs[i] = remoteRead(t, c.base(), typ, base, through) })
			}
			wg.Wait()
			for i := range gots {
				require.NoError(t, errs[i])
				require.Equal(t, exp, gots[i])
			}
		})
	}

	resp, err := http.Get(c.base() + "/federate?match[]=m")
	require.NoError(t, err)
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Len(t, fams["m"].GetMetric(), n, "each series once")
	for _, m := range fams["m"].GetMetric() {
		var id string
		for _, l := range m.GetLabel() {
			if l.GetName() == "id" {
				id = l.GetValue()
			}
		}
		last := want[id][len(want[id])-1]
		require.Equal(t, last.Timestamp, m.GetTimestampMs(), id)
		require.Equal(t, last.Value, m.GetUntyped().GetValue(), id)
	}

	_, err = remoteRead(t, c.base(), prompb.ReadRequest_SAMPLES, base, base+2000)
	require.ErrorContains(t, err, "exceeded sample limit (100)")
	require.ErrorContains(t, err, strconv.Itoa(http.StatusBadRequest))
	require.Equal(t, http.StatusOK, httpStatusOf(c.base()+"/-/healthy"), fmt.Sprintf("after %v", err))
}
