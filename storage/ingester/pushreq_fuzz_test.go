package ingester

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// FuzzPushRequestDecode holds the hand-written decoder to the generated
// vtproto one on any bytes: both refuse, or both accept and see the same
// series, labels, samples, histograms, exemplars and metadata. A decoder
// that accepted what the generated one refuses would append garbage to
// the tsdb; one that refused what it accepts would drop a valid push.
// Samples are compared bit for bit so that a NaN payload survives too.
func FuzzPushRequestDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 6 {
		raw, err := randomPushRequest(rng).MarshalVT()
		require.NoError(f, err)
		f.Add(raw, uint16(len(raw)/2))
	}
	// A node-exporter push as the distributor sends it.
	raw, err := (&ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{
		Labels:  lbls("__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "node-1:9100", "job", "node", "mode", "idle"),
		Samples: floats(1_700_000_000_000, 1234.5),
	}}}).MarshalVT()
	require.NoError(f, err)
	f.Add(raw, uint16(3))
	withGroup := protowire.AppendTag(append([]byte(nil), raw...), 12, protowire.StartGroupType)
	withGroup = protowire.AppendTag(withGroup, 12, protowire.EndGroupType)
	f.Add(withGroup, uint16(0))
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00}, uint16(1))
	f.Add([]byte{}, uint16(0))

	f.Fuzz(func(t *testing.T, raw []byte, cut uint16) {
		want := &ingesterpb.PushRequest{}
		wantErr := want.UnmarshalVT(raw)

		c := int(cut)
		if c > len(raw) {
			c = len(raw)
		}
		var got pushRequest
		gotErr := got.UnmarshalBuffers(mem.BufferSlice{mem.SliceBuffer(raw[:c]), mem.SliceBuffer(raw[c:])})
		if wantErr != nil {
			require.Error(t, gotErr, "the generated decoder refuses it (%v)", wantErr)
			return
		}
		if gotErr != nil && proto.Unmarshal(raw, &ingesterpb.PushRequest{}) != nil {
			// The generated decoder skips unknown fields as gogo's does:
			// it takes the low 64 bits of a 10-byte varint whose last
			// byte overflows and ignores the field number of an end
			// group marker. protowire refuses both, as the official
			// decoder does, and no encoder writes either.
			return
		}
		require.NoError(t, gotErr, "the generated decoder accepts it")

		wantSeries, wantMeta := viewOf((*protoPush)(want))
		gotSeries, gotMeta := viewOf(&got)
		require.Equal(t, len(wantSeries), len(gotSeries))
		for k := range wantSeries {
			w, g := wantSeries[k], gotSeries[k]
			require.Equal(t, w.Labels, g.Labels, "series %d", k)
			require.Equal(t, w.StartMs, g.StartMs, "series %d", k)
			require.Equal(t, len(w.Samples), len(g.Samples), "series %d", k)
			for i := range w.Samples {
				require.Equal(t, w.Samples[i].t, g.Samples[i].t, "series %d sample %d", k, i)
				require.Equal(t, math.Float64bits(w.Samples[i].v), math.Float64bits(g.Samples[i].v), "series %d sample %d", k, i)
			}
			require.Equal(t, len(w.Histograms), len(g.Histograms), "series %d", k)
			for h := range w.Histograms {
				requireSameMessage(t, w.Histograms[h], g.Histograms[h])
			}
			require.Equal(t, len(w.Exemplars), len(g.Exemplars), "series %d", k)
			for e := range w.Exemplars {
				requireSameMessage(t, w.Exemplars[e], g.Exemplars[e])
			}
		}
		require.Equal(t, len(wantMeta), len(gotMeta))
		for m := range wantMeta {
			requireSameMessage(t, wantMeta[m], gotMeta[m])
		}
	})
}

// requireSameMessage compares two messages by their encoding: EqualVT
// compares floats with ==, so a NaN it decoded would differ from itself.
func requireSameMessage(t *testing.T, want, got interface{ MarshalVT() ([]byte, error) }) {
	t.Helper()
	w, err := want.MarshalVT()
	require.NoError(t, err)
	g, err := got.MarshalVT()
	require.NoError(t, err)
	require.Equal(t, w, g)
}
