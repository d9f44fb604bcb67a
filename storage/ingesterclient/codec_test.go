package ingesterclient

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// testPush is a push request of n series that marshals to well over gRPC's
// pooling threshold for n of a few dozen.
func testPush(n, round int) *ingesterpb.PushRequest {
	req := &ingesterpb.PushRequest{Metadata: []*ingesterpb.MetricMetadata{{MetricFamilyName: "m", Help: "help"}}}
	for i := range n {
		req.Series = append(req.Series, &ingesterpb.TimeSeries{
			Labels: []*ingesterpb.LabelPair{
				{Name: []byte("__name__"), Value: []byte("m")},
				{Name: []byte("instance"), Value: fmt.Appendf(nil, "host-%d.example.com:9100", i)},
				{Name: []byte("round"), Value: fmt.Appendf(nil, "%d", round)},
			},
			Samples: []*ingesterpb.Sample{{TimestampMs: int64(round) * 1000, Value: float64(i)}},
		})
	}
	return req
}

// countingMsg counts how often it is marshalled.
type countingMsg struct {
	*ingesterpb.PushRequest
	marshals *atomic.Int32
}

func (m countingMsg) MarshalToSizedBufferVT(b []byte) (int, error) {
	m.marshals.Add(1)
	return m.PushRequest.MarshalToSizedBufferVT(b)
}

// countingPool hands out fresh slices and counts what is outstanding, to
// see that shared bytes go back exactly once, after every user.
type countingPool struct {
	gets, puts atomic.Int32
}

func (p *countingPool) Get(n int) *[]byte {
	p.gets.Add(1)
	b := make([]byte, n)
	return &b
}

func (p *countingPool) Put(*[]byte) { p.puts.Add(1) }

func TestSharedMarshalsOnce(t *testing.T) {
	req := testPush(100, 1)
	want, err := req.MarshalVT()
	require.NoError(t, err)
	require.False(t, mem.IsBelowBufferPoolingThreshold(len(want)))

	var marshals atomic.Int32
	msg := &countingMsg{PushRequest: req, marshals: &marshals}
	pool := &countingPool{}
	s := NewShared(msg)
	s.pool = pool
	codec := sharedCodec{s}
	require.Equal(t, "proto", codec.Name())

	// Calls marshal concurrently, and free their buffers on their own
	// goroutines, as gRPC does.
	const calls = 8
	got := make([]mem.BufferSlice, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() { got[i], errs[i] = codec.Marshal(msg) })
	}
	wg.Wait()
	for i := range calls {
		require.NoError(t, errs[i])
		require.Equal(t, want, got[i].Materialize())
	}
	require.EqualValues(t, 1, marshals.Load())
	require.EqualValues(t, 1, pool.gets.Load())

	for i := range calls / 2 {
		wg.Go(func() { got[i].Free() })
	}
	wg.Wait()
	s.Release()
	require.Zero(t, pool.puts.Load(), "calls still hold the bytes")
	require.Equal(t, want, got[calls-1].Materialize())
	for i := calls / 2; i < calls; i++ {
		wg.Go(func() { got[i].Free() })
	}
	wg.Wait()
	require.EqualValues(t, 1, pool.puts.Load(), "the last reference returns the bytes")

	// After Release a call still gets the message, marshalled anew.
	b, err := codec.Marshal(msg)
	require.NoError(t, err)
	require.Equal(t, want, b.Materialize())
	b.Free()
	require.EqualValues(t, 2, marshals.Load())
	s.Release() // twice is harmless
}

func TestSharedSmallAndOtherMessages(t *testing.T) {
	req := testPush(1, 1)
	want, err := req.MarshalVT()
	require.NoError(t, err)
	require.True(t, mem.IsBelowBufferPoolingThreshold(len(want)))
	pool := &countingPool{}
	s := NewShared(req)
	s.pool = pool
	c := sharedCodec{s}
	for range 3 {
		b, err := c.Marshal(req)
		require.NoError(t, err)
		require.Equal(t, want, b.Materialize())
		b.Free()
	}
	s.Release()
	require.Zero(t, pool.gets.Load(), "small messages are not pooled")

	// Another message of the same call goes through Codec.
	other := testPush(2, 2)
	b, err := c.Marshal(other)
	require.NoError(t, err)
	wantOther, err := other.MarshalVT()
	require.NoError(t, err)
	require.Equal(t, wantOther, b.Materialize())
	b.Free()
	var back ingesterpb.PushRequest
	require.NoError(t, c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wantOther)}, &back))
	require.True(t, other.EqualVT(&back))

	_, err = sharedCodec{NewShared("not a message")}.Marshal("not a message")
	require.ErrorContains(t, err, "not a vtprotobuf message")
}

// recordingServer keeps every push it gets.
type recordingServer struct {
	ingesterpb.UnimplementedIngesterServer
	mu     sync.Mutex
	pushes []*ingesterpb.PushRequest
}

func (s *recordingServer) Push(_ context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes = append(s.pushes, req.CloneVT())
	return &ingesterpb.PushResponse{}, nil
}

func (s *recordingServer) received() []*ingesterpb.PushRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*ingesterpb.PushRequest(nil), s.pushes...)
}

// Three ingester servers get, through a shared message sent concurrently,
// exactly the requests a plain call sends, with and without compression,
// and the shared bytes go back to their pool once every call is done.
func TestSharedOverGRPC(t *testing.T) {
	for _, compression := range []string{"", CompressionSnappy} {
		t.Run("compression="+compression, func(t *testing.T) {
			cfg := Config{Compression: compression, MaxRecvMsgSize: 16 << 20, MaxSendMsgSize: 16 << 20, RemoteTimeout: 10 * time.Second}
			var servers []*recordingServer
			var clients []*Client
			for range 3 {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				srv := grpc.NewServer(ServerOptions(16<<20, 16<<20)...)
				rs := &recordingServer{}
				ingesterpb.RegisterIngesterServer(srv, rs)
				go func() { _ = srv.Serve(ln) }()
				t.Cleanup(srv.Stop)
				c, err := Dial(ln.Addr().String(), cfg)
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				servers, clients = append(servers, rs), append(clients, c)
			}
			ctx := tenant.With(t.Context(), tenant.DefaultTenant)
			pool := &countingPool{}
			var sent []*ingesterpb.PushRequest
			for round := range 10 {
				req := testPush(50+round*20, round)
				sent = append(sent, req.CloneVT())
				s := NewShared(req)
				s.pool = pool
				errs := make([]error, len(clients))
				var wg sync.WaitGroup
				for i, c := range clients {
					wg.Go(func() { _, errs[i] = c.Push(ctx, req, s.CallOption()) })
				}
				wg.Wait()
				s.Release()
				for _, err := range errs {
					require.NoError(t, err)
				}
			}
			require.EqualValues(t, len(sent), pool.gets.Load(), "one marshal per request, not per call")
			// The transport lets go of what it wrote on its own goroutine.
			require.Eventually(t, func() bool { return pool.puts.Load() == pool.gets.Load() }, 10*time.Second, time.Millisecond)
			for i, rs := range servers {
				got := rs.received()
				require.Len(t, got, len(sent), "server %d", i)
				for j := range sent {
					require.True(t, sent[j].EqualVT(got[j]), "server %d, request %d", i, j)
				}
			}
		})
	}
}

// BenchmarkMarshalReplicas compares marshalling a 2000-series request for
// three calls (as three gRPC calls to replicas do) with marshalling it once
// through Shared.
func BenchmarkMarshalReplicas(b *testing.B) {
	req := testPush(2000, 1)
	size := req.SizeVT()
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				var codec marshaler = Codec{}
				var s *Shared
				if shared {
					s = NewShared(req)
					codec = sharedCodec{s}
				}
				for range 3 {
					buf, err := codec.Marshal(req)
					if err != nil {
						b.Fatal(err)
					}
					buf.Free()
				}
				if s != nil {
					s.Release()
				}
			}
		})
	}
}

type marshaler interface {
	Marshal(v any) (mem.BufferSlice, error)
}

// encodedMsg is a message in wire form already.
type encodedMsg struct{ b mem.Buffer }

func (m encodedMsg) EncodedBuffer() mem.Buffer { return m.b }

// TestCodecSendsEncoded: an Encoded message goes out as its own bytes,
// its Buffer handed to gRPC (which frees it once written) without a copy.
func TestCodecSendsEncoded(t *testing.T) {
	pool := &countingPool{}
	data := pool.Get(64 << 10) // above gRPC's pooling threshold: a counted Buffer
	buf := mem.NewBuffer(data, pool)
	out, err := Codec{}.Marshal(encodedMsg{buf})
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Same(t, &(*data)[0], &out[0].ReadOnlyData()[0])
	out.Free()
	require.Equal(t, int32(1), pool.puts.Load())
}
