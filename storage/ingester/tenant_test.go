package ingester

import (
	"context"
	"fmt"
	"io"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

func asTenant(id string) context.Context { return tenant.With(context.Background(), id) }

// pushAs writes one sample of up{job="node"} (and whatever extra labels say)
// with value v as tenant id.
func pushUpAs(t *testing.T, c ingesterpb.IngesterClient, id string, ts int64, v float64, extra ...string) {
	t.Helper()
	resp, err := c.Push(asTenant(id), &ingesterpb.PushRequest{
		Series: []*ingesterpb.TimeSeries{{Labels: lbls(append([]string{"__name__", "up", "job", "node"}, extra...)...), Samples: floats(float64(ts), v)}},
		Metadata: []*ingesterpb.MetricMetadata{{
			Type: ingesterpb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "help of " + id,
		}},
	})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	require.EqualValues(t, 1, resp.SamplesWritten)
}

func queryAs(t *testing.T, c ingesterpb.IngesterClient, id string, ms ...*ingesterpb.LabelMatcher) map[string][]sample {
	t.Helper()
	got, _ := queryAll(t, tenantClient{c, id}, math.MinInt64, math.MaxInt64, ms...)
	return got
}

// tenantClient makes every call of the embedded client as tenant id.
type tenantClient struct {
	ingesterpb.IngesterClient
	id string
}

func (c tenantClient) QueryStream(ctx context.Context, in *ingesterpb.QueryRequest, opts ...grpc.CallOption) (ingesterpb.Ingester_QueryStreamClient, error) {
	return c.IngesterClient.QueryStream(tenant.With(ctx, c.id), in, opts...)
}

func TestTenantsAreKeptApart(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	now := time.Now().UnixMilli()
	pushUpAs(t, h.client, tenant.DefaultTenant, now, 1)
	pushUpAs(t, h.client, "team-a", now, 2)
	// A client's own tenant label is overwritten, not stored.
	pushUpAs(t, h.client, "team-b", now, 3, tenant.Label, "team-a")

	up := eq("__name__", "up")
	for id, v := range map[string]float64{tenant.DefaultTenant: 1, "team-a": 2, "team-b": 3} {
		require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {{T: now, F: v}}}, queryAs(t, h.client, id, up), id)
		// The label does not exist for clients: naming another tenant
		// matches nothing, asking for its absence matches everything.
		require.Empty(t, queryAs(t, h.client, id, up, eq(tenant.Label, "team-a")), id)
		require.Len(t, queryAs(t, h.client, id, up, eq(tenant.Label, "")), 1, id)

		names, err := h.client.LabelNames(asTenant(id), &ingesterpb.LabelNamesRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64})
		require.NoError(t, err)
		require.Equal(t, []string{"__name__", "job"}, names.Names, id)
		vals, err := h.client.LabelValues(asTenant(id), &ingesterpb.LabelValuesRequest{Name: tenant.Label, StartMs: math.MinInt64, EndMs: math.MaxInt64})
		require.NoError(t, err)
		require.Empty(t, vals.Values, id)

		stream, err := h.client.Series(asTenant(id), &ingesterpb.SeriesRequest{StartMs: math.MinInt64, EndMs: math.MaxInt64, Matchers: []*ingesterpb.LabelMatcher{up}})
		require.NoError(t, err)
		var series []string
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			for _, s := range resp.Series {
				series = append(series, toLabels(s.Labels).String())
			}
		}
		require.Equal(t, []string{`{__name__="up", job="node"}`}, series, id)

		md, err := h.client.MetricsMetadata(asTenant(id), &ingesterpb.MetricsMetadataRequest{})
		require.NoError(t, err)
		require.Len(t, md.Metadata, 1, id)
		require.Equal(t, "help of "+id, md.Metadata[0].Help)
	}

	// Series only one tenant has stay with it.
	resp, err := h.client.Push(asTenant("team-a"), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "only_a"), Samples: floats(float64(now), 1)},
	}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	for id, want := range map[string][]string{"team-a": {"only_a", "up"}, "team-b": {"up"}, tenant.DefaultTenant: {"up"}} {
		vals, err := h.client.LabelValues(asTenant(id), &ingesterpb.LabelValuesRequest{Name: "__name__", StartMs: math.MinInt64, EndMs: math.MaxInt64})
		require.NoError(t, err)
		require.Equal(t, want, vals.Values, id)
	}

	// A retried old sample is forgiven within the tenant's own series: the
	// other tenants' series with the same labels are not it.
	resp, err = h.client.Push(asTenant("team-a"), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "up", "job", "node"), Samples: floats(float64(now+1000), 2)},
	}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	resp, err = h.client.Push(asTenant("team-a"), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "up", "job", "node"), Samples: floats(float64(now), 2, float64(now+1000), 2)},
	}})
	require.NoError(t, err)
	require.Empty(t, resp.Errors)
	resp, err = h.client.Push(asTenant("team-a"), &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{
		{Labels: lbls("__name__", "up", "job", "node"), Samples: floats(float64(now), 3)},
	}})
	require.NoError(t, err)
	require.Len(t, resp.Errors, 1)
	require.NotContains(t, resp.Errors[0].Message, tenant.Label, "errors name the series as the client wrote it")
}

// The default tenant's series are stored without a tenant label; once
// another tenant has written, they must stay apart from its series, also
// after a restart, when only the DB tells that other tenants exist.
func TestDefaultTenantAfterRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UnixMilli()
	h := startIngester(t, testConfig(t, dir))
	pushUpAs(t, h.client, tenant.DefaultTenant, now, 1)
	require.Len(t, queryAs(t, h.client, tenant.DefaultTenant, eq("__name__", "up")), 1)
	require.False(t, h.ing.otherTenants.Load())
	pushUpAs(t, h.client, "team-a", now, 2, "only", "a")
	require.True(t, h.ing.otherTenants.Load())
	require.NoError(t, h.ing.Close(context.Background()))

	h2 := startIngester(t, testConfig(t, dir))
	require.True(t, h2.ing.otherTenants.Load())
	require.Equal(t, map[string][]sample{`{__name__="up", job="node"}`: {{T: now, F: 1}}}, queryAs(t, h2.client, tenant.DefaultTenant, eq("__name__", "up")))
	require.Equal(t, map[string][]sample{`{__name__="up", job="node", only="a"}`: {{T: now, F: 2}}}, queryAs(t, h2.client, "team-a", eq("__name__", "up")))
}

func TestCallsWithoutTenant(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	srvCtx := context.Background() // no tenant in the incoming metadata
	_, err := h.ing.Push(srvCtx, &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{Labels: lbls("__name__", "x"), Samples: floats(1, 1)}}})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = h.ing.LabelNames(srvCtx, &ingesterpb.LabelNamesRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = h.ing.LabelValues(srvCtx, &ingesterpb.LabelValuesRequest{Name: tenant.Label})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = h.ing.MetricsMetadata(srvCtx, &ingesterpb.MetricsMetadataRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	_, err = h.ing.QueryExemplars(srvCtx, &ingesterpb.ExemplarQueryRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
}

// BenchmarkSeriesLabels is the per-series cost of Push's label handling for
// a known series: no allocation, with or without a tenant label to insert,
// from a request decoded off the wire or read in place (the local client),
// through the ref cache or the head's lookup.
func BenchmarkSeriesLabels(b *testing.B) {
	for _, form := range []string{"wire", "proto"} {
		for _, id := range []string{tenant.DefaultTenant, "team-a"} {
			b.Run("form="+form+"/tenant="+id, func(b *testing.B) {
				h := startIngester(b, testConfig(b, b.TempDir()))
				const n = 1000
				req := &ingesterpb.PushRequest{}
				for k := range n {
					req.Series = append(req.Series, &ingesterpb.TimeSeries{
						Labels:  lbls("__name__", "http_requests_total", "instance", fmt.Sprintf("host-%d:9100", k), "job", "api", "method", "GET", "zone", "a"),
						Samples: floats(1, 1),
					})
				}
				_, err := h.client.Push(asTenant(id), req)
				require.NoError(b, err)
				var in pushInput = (*protoPush)(req)
				if form == "wire" {
					raw, err := req.MarshalVT()
					require.NoError(b, err)
					r := newPushRequests().get()
					require.NoError(b, r.UnmarshalVT(raw))
					in = r
				}
				app := h.ing.DB().AppenderV2(context.Background())
				defer app.Rollback() //nolint:errcheck
				getRef := app.(storage.GetRef)
				st := pushStatePool.Get().(*pushState)
				defer st.release()
				st.setTenant(id)
				for _, refs := range []*refCache{nil, h.ing.refs} {
					b.Run(fmt.Sprintf("ref_cache=%t", refs != nil), func(b *testing.B) {
						b.ReportAllocs()
						for b.Loop() {
							if refs != nil {
								st.lookupSpans(refs, in) // as push does
							}
							for k := range in.numSeries() {
								in.readSeries(k, st)
								sr := st.seriesRef(refs, getRef)
								if sr.ref == 0 {
									b.Fatalf("series %d unknown", k)
								}
								if (sr.cached != 0) != (refs != nil) {
									b.Fatalf("series %d: cached ref %d with the cache on=%t", k, sr.cached, refs != nil)
								}
							}
						}
						b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
					})
				}
			})
		}
	}
}
