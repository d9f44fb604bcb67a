package distributor

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/cluster"
	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// dumpIngester returns every series the ingester at addr stores with its
// samples, one line per series ("{labels}| t=v t=v ..."), sorted.
func dumpIngester(t *testing.T, addr string) []string {
	c, err := ingesterclient.Dial(addr, clientConfig())
	require.NoError(t, err)
	defer c.Close()
	stream, err := c.QueryStream(tenant.With(t.Context(), tenant.DefaultTenant), &ingesterpb.QueryRequest{
		StartMs: math.MinInt64, EndMs: math.MaxInt64,
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"}},
	})
	require.NoError(t, err)
	var out []string
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		for _, s := range resp.Series {
			var b strings.Builder
			b.WriteString(FormatSeries(s.Labels))
			b.WriteByte('|')
			for _, c := range s.Chunks {
				ch, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				require.NoError(t, err)
				it := ch.Iterator(nil)
				for it.Next() == chunkenc.ValFloat {
					ts, v := it.At()
					fmt.Fprintf(&b, " %d=%g", ts, v)
				}
				require.NoError(t, it.Err())
			}
			out = append(out, b.String())
		}
	}
	slices.Sort(out)
	return out
}

// Requests sent whole to three replicas, marshalled once for all of them,
// leave the three real ingesters with the same data: through a ring of three
// ingesters at RF 3 (the uniform path), the same with one ingester in
// process, and through static ingesters. Pushes run concurrently, for the
// race detector.
func TestReplicasGetIdenticalData(t *testing.T) {
	const (
		senders = 4
		perReq  = 100
		rounds  = 5
	)
	for _, layout := range []string{"ring", "ring-local", "static"} {
		t.Run(layout, func(t *testing.T) {
			var d *Distributor
			var addrs []string
			switch layout {
			case "ring":
				var ings []ringIngester
				d, _, ings = startRingCluster(t, 3, 3)
				for _, in := range ings {
					addrs = append(addrs, in.addr)
				}
				require.NotNil(t, d.uniform)
				_, ok := d.uniform.UniformWriteReplicas(nil)
				require.True(t, ok, "three ingesters at RF 3 hold every series")
			case "ring-local":
				// The first ingester in process, as in an all-in-one: it
				// reads the request while the other two calls marshal it.
				kv := cluster.NewMemKV()
				rng := rand.New(rand.NewPCG(1, 2))
				taken := map[uint32]struct{}{}
				var local ingesterpb.IngesterClient
				for i := range 3 {
					ing, addr := startIngester(t, t.TempDir())
					if i == 0 {
						local = ing.LocalClient()
					}
					tokens := ring.GenerateTokens(32, taken, rng)
					for _, tk := range tokens {
						taken[tk] = struct{}{}
					}
					id := "ing-" + strconv.Itoa(i)
					kv.Merge(&ring.Desc{Instances: map[string]ring.Instance{id: {
						ID: id, Addr: addr, State: ring.StateActive, Tokens: tokens, Timestamp: time.Now().Add(time.Hour).UnixMilli(),
					}}})
					addrs = append(addrs, addr)
				}
				r, err := cluster.NewRing(cluster.Config{ReplicationFactor: 3, Tokens: 32, Heartbeat: time.Second, HeartbeatTimeout: 2 * time.Hour}, kv, nil)
				require.NoError(t, err)
				pool := ingesterclient.NewPool(clientConfig(), nil, nil)
				t.Cleanup(func() { _ = pool.Close() })
				d, err = New(defaultConfig(), NewRingIngestersWithLocal(r, pool, addrs[0], local), nil, prometheus.NewRegistry())
				require.NoError(t, err)
				_, ok := d.uniform.UniformWriteReplicas(nil)
				require.True(t, ok)
			default:
				var s StaticIngesters
				for range 3 {
					_, addr := startIngester(t, t.TempDir())
					c, err := ingesterclient.Dial(addr, clientConfig())
					require.NoError(t, err)
					t.Cleanup(func() { _ = c.Close() })
					s, addrs = append(s, c), append(addrs, addr)
				}
				var err error
				d, err = New(defaultConfig(), s, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
				require.NoError(t, err)
			}
			base := time.Now().Add(-time.Minute).UnixMilli()
			errs := make([]error, senders)
			var wg sync.WaitGroup
			for g := range senders {
				wg.Go(func() {
					// Each sender its own series, its rounds in order: no
					// sample is out of order on any replica.
					for r := range rounds {
						req := &ingesterpb.PushRequest{}
						for i := g * perReq; i < (g+1)*perReq; i++ {
							req.Series = append(req.Series, promSeries(i, base+int64(r)*1000))
						}
						res, err := d.Push(t.Context(), req)
						if err == nil && len(res.Rejected) > 0 {
							err = fmt.Errorf("rejected: %v", res.Rejected)
						}
						if err != nil {
							errs[g] = err
							return
						}
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			want := dumpIngester(t, addrs[0])
			require.Len(t, want, senders*perReq)
			for _, line := range want {
				_, samples, _ := strings.Cut(line, "|")
				require.Len(t, strings.Fields(samples), rounds, line)
			}
			for _, addr := range addrs[1:] {
				require.Equal(t, want, dumpIngester(t, addr))
			}
		})
	}
}

// The exemplars a push reports written are those the ingesters wrote, not
// those it carried: an out-of-order exemplar is dropped by every replica
// (the series' sample is written, as Prometheus's receiver does) and must
// not be counted, whether the request goes whole to the replicas (three
// ingesters at RF 3) or in parts (four at RF 2).
func TestExemplarsWrittenCountsReplicas(t *testing.T) {
	for _, tc := range []struct{ n, rf int }{{3, 3}, {4, 2}} {
		t.Run(fmt.Sprintf("%d-ingesters-rf%d", tc.n, tc.rf), func(t *testing.T) {
			d, _, _ := startRingCluster(t, tc.n, tc.rf)
			base := time.Now().Add(-time.Minute).UnixMilli()
			push := func(sampleT, exemplarT int64) *PushResult {
				req := &ingesterpb.PushRequest{}
				for i := range 20 {
					ts := promSeries(i, sampleT)
					ts.Exemplars = []*ingesterpb.Exemplar{{
						Labels:      []*ingesterpb.LabelPair{{Name: []byte("trace_id"), Value: []byte(strconv.Itoa(i))}},
						Value:       1,
						TimestampMs: exemplarT,
					}}
					req.Series = append(req.Series, ts)
				}
				res, err := d.Push(t.Context(), req)
				require.NoError(t, err)
				require.Empty(t, res.Rejected)
				return res
			}
			res := push(base, base)
			require.EqualValues(t, 20, res.SamplesWritten)
			require.EqualValues(t, 20, res.ExemplarsWritten)
			res = push(base+1000, base-1000)
			require.EqualValues(t, 20, res.SamplesWritten)
			require.Zero(t, res.ExemplarsWritten)
		})
	}
}
