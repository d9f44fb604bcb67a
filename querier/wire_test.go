package querier

import (
	"math"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// TestWireDecoderMatchesGenerated: what the querier decodes from wire bytes
// is what the generated code decodes, for messages the generated code made
// (so not only what the ingester's encoder writes).
func TestWireDecoderMatchesGenerated(t *testing.T) {
	big := make([]byte, 1000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	msg := &ingesterpb.QueryStreamResponse{
		Series: []*ingesterpb.ChunkSeries{
			{
				Labels: []*ingesterpb.LabelPair{{Name: []byte("__name__"), Value: []byte("m")}, {Name: []byte("job"), Value: []byte("a")}},
				Chunks: []*ingesterpb.Chunk{
					{MinTimeMs: -3, MaxTimeMs: 10, Encoding: 1, Data: []byte{1, 2}},
					{MinTimeMs: 11, MaxTimeMs: math.MaxInt64, Encoding: 2, Data: big},
				},
			},
			{Labels: []*ingesterpb.LabelPair{{Name: []byte("empty")}}},
			{},
			{Labels: []*ingesterpb.LabelPair{{Name: []byte("a"), Value: []byte("b")}}, Chunks: []*ingesterpb.Chunk{{}}},
		},
		Warnings: []string{"w1", ""},
	}
	data, err := msg.MarshalVT()
	require.NoError(t, err)

	// Both ways in: from gRPC's buffers, split as gRPC may split them, and
	// from the in-process client's bytes.
	var fromGRPC, fromLocal wireMessage
	require.NoError(t, fromGRPC.UnmarshalBuffers(mem.BufferSlice{mem.SliceBuffer(data[:7]), mem.SliceBuffer(data[7:])}))
	require.NoError(t, fromLocal.UnmarshalWire(data))
	for _, m := range []wireMessage{fromGRPC, fromLocal} {
		var d wireDecoder
		b, err := d.decode(m.data, 5, 20)
		require.NoError(t, err)
		require.Equal(t, msg.Warnings, b.warnings)
		require.Len(t, b.series, len(msg.Series))
		var chunks, bytes int64
		for i, want := range msg.Series {
			got := b.series[i]
			lb := labels.NewScratchBuilder(0)
			for _, l := range want.Labels {
				lb.Add(string(l.Name), string(l.Value))
			}
			require.Equal(t, lb.Labels(), got.lset, "series %d", i)
			require.Equal(t, int64(5), got.mint)
			require.Equal(t, int64(20), got.maxt)
			require.Len(t, got.chunks, len(want.Chunks))
			for k, wc := range want.Chunks {
				gc := got.chunks[k]
				require.Equal(t, wc.MinTimeMs, gc.minTime)
				require.Equal(t, wc.MaxTimeMs, gc.maxTime)
				require.Equal(t, wc.Encoding, gc.encoding)
				require.Equal(t, len(wc.Data), len(gc.data))
				if len(wc.Data) > 0 {
					require.Equal(t, wc.Data, gc.data)
				}
				chunks++
				bytes += int64(len(wc.Data))
			}
		}
		require.Equal(t, chunks, d.chunks)
		require.Equal(t, bytes, d.bytes)
	}

	// Chunk data points into the received bytes: no copy per chunk.
	var d wireDecoder
	b, err := d.decode(fromLocal.data, 0, 0)
	require.NoError(t, err)
	got := b.series[0].chunks[1].data
	base := uintptr(unsafe.Pointer(unsafe.SliceData(fromLocal.data)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(got)))
	require.True(t, p >= base && p+uintptr(len(got)) <= base+uintptr(len(fromLocal.data)), "chunk data is a copy")
}

// TestWireDecoderSkipsUnknownFields: a newer ingester may send fields this
// querier does not know; they are skipped, as the generated code skips them.
func TestWireDecoderSkipsUnknownFields(t *testing.T) {
	msg := &ingesterpb.QueryStreamResponse{Series: []*ingesterpb.ChunkSeries{{
		Labels: []*ingesterpb.LabelPair{{Name: []byte("a"), Value: []byte("b")}},
		Chunks: []*ingesterpb.Chunk{{MinTimeMs: 1, MaxTimeMs: 2, Encoding: 1, Data: []byte{9}}},
	}}}
	data, err := msg.MarshalVT()
	require.NoError(t, err)
	// Field 9 of every wire type the decoder must skip, at the top level.
	extra := []byte{
		9 << 3, 0x96, 0x01, // wire type 0, varint
		9<<3 | 1, 1, 2, 3, 4, 5, 6, 7, 8,
		9<<3 | 2, 2, 'x', 'y',
		9<<3 | 5, 1, 2, 3, 4,
	}
	var d wireDecoder
	b, err := d.decode(append(extra, data...), 0, 0)
	require.NoError(t, err)
	require.Len(t, b.series, 1)
	require.Equal(t, labels.FromStrings("a", "b"), b.series[0].lset)
	require.Equal(t, []byte{9}, b.series[0].chunks[0].data)
}

// TestWireDecoderRejectsTruncated: a cut message is an error, never a
// panic or a silently shorter answer.
func TestWireDecoderRejectsTruncated(t *testing.T) {
	msg := &ingesterpb.QueryStreamResponse{Series: []*ingesterpb.ChunkSeries{{
		Labels: []*ingesterpb.LabelPair{{Name: []byte("a"), Value: []byte("b")}},
		Chunks: []*ingesterpb.Chunk{{MinTimeMs: 1000, MaxTimeMs: 2000, Encoding: 1, Data: []byte{9, 8, 7}}},
	}}}
	data, err := msg.MarshalVT()
	require.NoError(t, err)
	for n := 1; n < len(data); n++ {
		var d wireDecoder
		_, err := d.decode(data[:n], 0, 0)
		require.Error(t, err, "cut at %d of %d", n, len(data))
	}
}
