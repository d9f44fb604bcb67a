package ingesterclient

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // registers "gzip", as a server importing grpc does

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// pushBody is a marshalled push of n series shaped like node-exporter's,
// one sample each, as a distributor sends them.
func pushBody(tb testing.TB, n int) []byte {
	tb.Helper()
	req := &ingesterpb.PushRequest{}
	modes := []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}
	for k := range n {
		pairs := [][2]string{
			{"__name__", "node_cpu_seconds_total"}, {"cluster", "prod-eu-1"}, {"cpu", fmt.Sprint(k % 16)},
			{"endpoint", "metrics"}, {"instance", fmt.Sprintf("10.2.%d.%d:9100", k/4096, k/16%256)}, {"job", "node-exporter"},
			{"mode", modes[k/16%len(modes)]}, {"namespace", "monitoring"}, {"node", fmt.Sprintf("ip-10-2-%d-%d", k/4096, k/16%256)},
			{"pod", fmt.Sprintf("node-exporter-%05x", k/128)}, {"service", "node-exporter"},
		}
		ts := &ingesterpb.TimeSeries{Samples: []*ingesterpb.Sample{{TimestampMs: 1_700_000_000_000 + int64(k), Value: float64(k) * 1.25}}}
		for _, p := range pairs {
			ts.Labels = append(ts.Labels, &ingesterpb.LabelPair{Name: []byte(p[0]), Value: []byte(p[1])})
		}
		req.Series = append(req.Series, ts)
	}
	raw, err := req.MarshalVT()
	require.NoError(tb, err)
	return raw
}

var compressions = []string{"gzip", CompressionSnappy, CompressionS2, CompressionZstd}

// roundTrip compresses raw with the gRPC compressor c into buf and reads
// it back into out, as a client and a server do with one message.
func roundTrip(c encoding.Compressor, buf, out *bytes.Buffer, raw []byte) ([]byte, int, error) {
	buf.Reset()
	out.Reset()
	w, err := c.Compress(buf)
	if err != nil {
		return nil, 0, err
	}
	if _, err := w.Write(raw); err != nil {
		return nil, 0, err
	}
	if err := w.Close(); err != nil {
		return nil, 0, err
	}
	wire := buf.Len()
	r, err := c.Decompress(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, 0, err
	}
	_, err = out.ReadFrom(r)
	return out.Bytes(), wire, err
}

func TestCompressorsRoundTrip(t *testing.T) {
	raw := pushBody(t, 2000)
	var buf, outBuf bytes.Buffer
	for _, name := range compressions {
		t.Run(name, func(t *testing.T) {
			c := encoding.GetCompressor(name)
			require.NotNil(t, c, "compressor %q is registered", name)
			// Twice: the second round uses the pooled writer and reader.
			for range 2 {
				out, wire, err := roundTrip(c, &buf, &outBuf, raw)
				require.NoError(t, err)
				require.Equal(t, raw, out)
				require.Less(t, wire, len(raw), "series labels repeat: every codec shrinks them")
			}
		})
	}
}

// BenchmarkCompression is the cost of each gRPC compression on a push of
// 2000 series: compress on the distributor plus decompress on the
// ingester, per push and per series, and the bytes on the wire against the
// raw message. The choice trades this CPU, paid once per replica, against
// network bytes: on one host (loopback) no compression is cheapest.
func BenchmarkCompression(b *testing.B) {
	raw := pushBody(b, 2000)
	var buf, out bytes.Buffer
	for _, name := range append([]string{"none"}, compressions...) {
		b.Run(name, func(b *testing.B) {
			c := encoding.GetCompressor(name)
			wire := len(raw)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if c == nil {
					continue
				}
				var err error
				if _, wire, err = roundTrip(c, &buf, &out, raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(wire)/float64(len(raw)), "wire/raw")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/series")
		})
	}
}
