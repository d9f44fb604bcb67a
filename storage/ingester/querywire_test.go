package ingester

import (
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// rawMessage receives a QueryStream message as wire bytes, from gRPC (a
// ingesterclient.BufferUnmarshaler) or from the local client (an
// ingesterpb.WireUnmarshaler).
type rawMessage struct{ data []byte }

func (m *rawMessage) UnmarshalBuffers(data mem.BufferSlice) error {
	m.data = data.Materialize()
	return nil
}

func (m *rawMessage) UnmarshalWire(b []byte) error {
	m.data = b
	return nil
}

func recvRaw(t *testing.T, stream grpc.ClientStream) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		var m rawMessage
		err := stream.RecvMsg(&m)
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		out = append(out, m.data)
	}
}

// TestQueryStreamWire: the batches are the same bytes over gRPC and through
// the local client, each decodes as a QueryStreamResponse, and together
// they hold every series once, sorted unless the request lets the ingester
// skip sorting, which it then does (the head's order, here creation order).
func TestQueryStreamWire(t *testing.T) {
	h := startIngester(t, testConfig(t, t.TempDir()))
	lc := h.ing.LocalClient()
	const n = 3*maxSeriesPerBatch + 5
	req := &ingesterpb.PushRequest{}
	var want []string
	for k := n - 1; k >= 0; k-- {
		name := fmt.Sprintf("%05d", k)
		req.Series = append(req.Series, &ingesterpb.TimeSeries{Labels: lbls("__name__", "m", "i", name), Samples: floats(1000, float64(k), 2000, 1)})
		want = append(want, name)
	}
	ctx := asTenant(tenant.DefaultTenant)
	_, err := lc.Push(ctx, req)
	require.NoError(t, err)
	slices.Sort(want)

	for _, unsorted := range []bool{false, true} {
		t.Run(fmt.Sprintf("unsorted=%v", unsorted), func(t *testing.T) {
			qr := &ingesterpb.QueryRequest{StartMs: 0, EndMs: 3000, Matchers: []*ingesterpb.LabelMatcher{eq("__name__", "m")}, UnsortedSeries: unsorted}
			gs, err := h.client.QueryStream(ctx, qr)
			require.NoError(t, err)
			overGRPC := recvRaw(t, gs)
			ls, err := lc.QueryStream(ctx, qr)
			require.NoError(t, err)
			local := recvRaw(t, ls)
			require.Equal(t, overGRPC, local)
			require.Len(t, local, 4)

			var got []string
			for _, b := range local {
				m := &ingesterpb.QueryStreamResponse{}
				require.NoError(t, m.UnmarshalVT(b))
				require.LessOrEqual(t, len(m.Series), maxSeriesPerBatch)
				for _, s := range m.Series {
					require.Len(t, s.Labels, 2, "the tenant label is left out")
					require.Len(t, s.Chunks, 1)
					got = append(got, string(s.Labels[1].Value))
				}
			}
			if unsorted {
				require.False(t, slices.IsSorted(got), "the ingester sorted anyway")
				slices.Sort(got)
			}
			require.Equal(t, want, got)
		})
	}
}

// TestLocalQueryStreamRecvMsgOfStruct: a method that sends a struct is still
// received as wire bytes by a reader that asks for them.
func TestLocalQueryStreamRecvMsgOfStruct(t *testing.T) {
	want := &ingesterpb.QueryStreamResponse{Warnings: []string{"w"}, Series: []*ingesterpb.ChunkSeries{{Labels: lbls("a", "b")}}}
	stream, err := serverStream(asTenant(tenant.DefaultTenant), ingesterpb.Ingester_QueryStream_FullMethodName, &ingesterpb.QueryRequest{},
		streamCodec[ingesterpb.QueryStreamResponse]{
			clone:  (*ingesterpb.QueryStreamResponse).CloneVT,
			encode: (*ingesterpb.QueryStreamResponse).MarshalVT,
		},
		func(_ *ingesterpb.QueryRequest, s grpc.ServerStreamingServer[ingesterpb.QueryStreamResponse]) error {
			return s.Send(want)
		})
	require.NoError(t, err)
	got := recvRaw(t, stream)
	wantBytes, err := want.MarshalVT()
	require.NoError(t, err)
	require.Equal(t, [][]byte{wantBytes}, got)
}
