package ingester

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// LocalClient returns a client that calls this ingester directly, for the
// distributor and querier of the same process: nothing is encoded and
// nothing crosses a connection. It behaves as a client of the ingester's
// gRPC server does, so the ingester admits, counts and refuses the same
// calls:
//
//   - The tenant of each call's context (tenant.With) reaches the ingester
//     as the incoming metadata tenant.UnaryClientInterceptor sends; a call
//     without one fails with codes.Unauthenticated before it reaches the
//     ingester, as it fails before leaving the process over gRPC.
//   - Push reads the request in place and keeps nothing of it: the caller
//     may reuse it once Push returns.
//   - Messages received from a stream are the caller's own, as decoded ones
//     would be. As with gRPC, the caller must read a stream until it fails
//     (io.EOF at its end) or cancel the call's context, else the method
//     serving the stream waits for the reader forever.
//   - Errors are gRPC statuses, as a gRPC client receives them.
//
// Call options are ignored: there is no connection for them to configure.
func (i *Ingester) LocalClient() ingesterpb.IngesterClient { return localClient{ing: i} }

type localClient struct{ ing *Ingester }

var _ ingesterpb.IngesterClient = localClient{}

// Push implements ingesterpb.IngesterClient. Ingester.Push reads the
// request in place (protoPush): no copy of it is made, the labels the tsdb
// keeps are copied one series at a time, and only for new series.
func (c localClient) Push(ctx context.Context, req *ingesterpb.PushRequest, _ ...grpc.CallOption) (*ingesterpb.PushResponse, error) {
	return unary(ctx, ingesterpb.Ingester_Push_FullMethodName, req, c.ing.Push)
}

// PushWithLabelSpans is Push for a request decoded from bytes that encode
// each series' labels as ingester.proto's TimeSeries.labels fields do:
// remote write 1.0's Label is the same message as LabelPair. spans[k], if
// not nil, is series k's span of such fields, from which the decoder made
// req.Series[k].Labels, and a series whose labels were changed since (but
// for what the ingester itself normalises: empty values dropped, order,
// the tenant label) must come without one. A known series is then found
// by its span, without reading its labels, as over gRPC (see pushRequest).
// spans must have one entry per series; otherwise it is ignored.
func (c localClient) PushWithLabelSpans(ctx context.Context, req *ingesterpb.PushRequest, spans [][]byte) (*ingesterpb.PushResponse, error) {
	if req == nil || len(spans) != len(req.Series) {
		return c.Push(ctx, req)
	}
	return unary(ctx, ingesterpb.Ingester_Push_FullMethodName, req, func(ctx context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
		return c.ing.pushFrom(ctx, spanPush{protoPush: (*protoPush)(req), spans: spans})
	})
}

// QueryStream implements ingesterpb.IngesterClient.
func (c localClient) QueryStream(ctx context.Context, req *ingesterpb.QueryRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[ingesterpb.QueryStreamResponse], error) {
	return serverStream(ctx, ingesterpb.Ingester_QueryStream_FullMethodName, req.CloneVT(), streamCodec[ingesterpb.QueryStreamResponse]{
		clone:  (*ingesterpb.QueryStreamResponse).CloneVT,
		decode: decodeQueryStreamResponse,
		encode: (*ingesterpb.QueryStreamResponse).MarshalVT,
	}, c.ing.QueryStream)
}

// LabelNames implements ingesterpb.IngesterClient.
func (c localClient) LabelNames(ctx context.Context, req *ingesterpb.LabelNamesRequest, _ ...grpc.CallOption) (*ingesterpb.LabelNamesResponse, error) {
	return unary(ctx, ingesterpb.Ingester_LabelNames_FullMethodName, req, c.ing.LabelNames)
}

// LabelValues implements ingesterpb.IngesterClient.
func (c localClient) LabelValues(ctx context.Context, req *ingesterpb.LabelValuesRequest, _ ...grpc.CallOption) (*ingesterpb.LabelValuesResponse, error) {
	return unary(ctx, ingesterpb.Ingester_LabelValues_FullMethodName, req, c.ing.LabelValues)
}

// Series implements ingesterpb.IngesterClient.
func (c localClient) Series(ctx context.Context, req *ingesterpb.SeriesRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[ingesterpb.SeriesResponse], error) {
	return serverStream(ctx, ingesterpb.Ingester_Series_FullMethodName, req.CloneVT(), streamCodec[ingesterpb.SeriesResponse]{
		clone: (*ingesterpb.SeriesResponse).CloneVT,
	}, c.ing.Series)
}

// MetricsMetadata implements ingesterpb.IngesterClient.
func (c localClient) MetricsMetadata(ctx context.Context, req *ingesterpb.MetricsMetadataRequest, _ ...grpc.CallOption) (*ingesterpb.MetricsMetadataResponse, error) {
	return unary(ctx, ingesterpb.Ingester_MetricsMetadata_FullMethodName, req, c.ing.MetricsMetadata)
}

// QueryExemplars implements ingesterpb.IngesterClient.
func (c localClient) QueryExemplars(ctx context.Context, req *ingesterpb.ExemplarQueryRequest, _ ...grpc.CallOption) (*ingesterpb.ExemplarQueryResponse, error) {
	return unary(ctx, ingesterpb.Ingester_QueryExemplars_FullMethodName, req, c.ing.QueryExemplars)
}

// unary calls a unary method of the ingester as its gRPC server would.
// The answers of the methods are built for the call (they share nothing
// with the ingester's state), so they are handed over as they are.
func unary[Req, Resp any](ctx context.Context, method string, req *Req, call func(context.Context, *Req) (*Resp, error)) (*Resp, error) {
	sctx, err := serverContext(ctx, method)
	if err != nil {
		return nil, err
	}
	if req == nil {
		req = new(Req) // gRPC sends a nil message as an empty one
	}
	resp, err := call(sctx, req)
	if err != nil {
		// A gRPC client gets no answer with an error, whatever the method returned.
		return nil, wireError(err)
	}
	return resp, nil
}

// serverContext is the context the ingester's gRPC server would give the
// method of a call made with ctx: the caller's deadline and cancellation,
// and its outgoing metadata, to which tenant.UnaryClientInterceptor adds
// the tenant, as incoming metadata. Going through the interceptor keeps
// one definition of how the tenant travels. A call whose context is done
// fails at once, as a gRPC call does.
func serverContext(ctx context.Context, method string) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	var sctx context.Context
	err := tenant.UnaryClientInterceptor(ctx, method, nil, nil, nil, func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		sctx = metadata.NewIncomingContext(ctx, md)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sctx, nil
}

// wireError is the error a gRPC client receives when the method returns
// err: a status as it is, anything else what grpc-go's server makes of it
// (a context error its code, the rest codes.Unknown).
func wireError(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.FromContextError(err).Err()
}

// localStreamBuffer is how many messages a stream's method may send ahead
// of the reader: one, so that the ingester fills its next batch while the
// caller works on the last one, as gRPC's flow control window lets it.
const localStreamBuffer = 1

// decodeQueryStreamResponse decodes an encoded batch for a reader that
// asked for the generated struct (Recv). b is the reader's alone, so the
// message may alias it.
func decodeQueryStreamResponse(b []byte) (*ingesterpb.QueryStreamResponse, error) {
	m := &ingesterpb.QueryStreamResponse{}
	if err := m.UnmarshalVTUnsafe(b); err != nil {
		return nil, status.Errorf(codes.Internal, "local ingester stream: decode query stream response: %v", err)
	}
	return m, nil
}

// streamCodec is how a local stream hands over a method's messages. clone
// copies a message the method sent as a struct, which it reuses between
// sends (see Series). A method may send encoded messages instead
// (QueryStream, through sendEncoded); decode turns those into a struct for
// Recv, and encode turns a struct into bytes for a reader that receives
// wire bytes (RecvMsg into an ingesterpb.WireUnmarshaler). Either may be
// nil for a method that does not need it.
type streamCodec[T any] struct {
	clone  func(*T) *T
	decode func([]byte) (*T, error)
	encode func(*T) ([]byte, error)
}

// serverStream runs a server-streaming method of the ingester in a
// goroutine of its own and hands its messages to the caller's Recv over a
// channel; what the caller receives is its own (see streamCodec). req must
// be the method's alone, as the method reads it after serverStream returns.
func serverStream[Req, Resp any](ctx context.Context, method string, req *Req, codec streamCodec[Resp],
	serve func(*Req, grpc.ServerStreamingServer[Resp]) error,
) (grpc.ServerStreamingClient[Resp], error) {
	sctx, err := serverContext(ctx, method)
	if err != nil {
		return nil, err
	}
	if req == nil {
		req = new(Req)
	}
	s := &localStream[Resp]{
		cctx:  ctx,
		sctx:  sctx,
		codec: codec,
		msgs:  make(chan localMsg[Resp], localStreamBuffer),
		done:  make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.err = wireError(serve(req, localServerStream[Resp]{s}))
	}()
	return localClientStream[Resp]{s}, nil
}

// localStream is one call of a server-streaming method; localServerStream
// is the method's side of it, localClientStream the caller's.
type localStream[T any] struct {
	cctx, sctx context.Context // the caller's context and the method's
	codec      streamCodec[T]
	msgs       chan localMsg[T]
	// done is closed once the method has returned, with its error in err.
	// Every Send has completed by then.
	done chan struct{}
	err  error
}

// localMsg is one sent message: a struct of the reader's own, or encoded
// bytes of the reader's own.
type localMsg[T any] struct {
	m   *T
	raw []byte
}

// localClientStream implements grpc.ServerStreamingClient.
type localClientStream[T any] struct{ s *localStream[T] }

// localServerStream implements grpc.ServerStreamingServer.
type localServerStream[T any] struct{ s *localStream[T] }

var (
	_ grpc.ServerStreamingClient[ingesterpb.QueryStreamResponse] = localClientStream[ingesterpb.QueryStreamResponse]{}
	_ grpc.ServerStreamingServer[ingesterpb.QueryStreamResponse] = localServerStream[ingesterpb.QueryStreamResponse]{}
	_ encodedSender                                              = localServerStream[ingesterpb.QueryStreamResponse]{}
)

// Recv returns the next message; io.EOF once the method has returned
// without error, its error if it failed, or at once the context's error
// (as a status) once the caller's context is done.
func (c localClientStream[T]) Recv() (*T, error) {
	msg, err := c.next()
	if err != nil {
		return nil, err
	}
	if msg.m != nil {
		return msg.m, nil
	}
	if c.s.codec.decode == nil {
		return nil, status.Errorf(codes.Internal, "local ingester stream: cannot decode a %T", msg.m)
	}
	return c.s.codec.decode(msg.raw)
}

func (c localClientStream[T]) next() (localMsg[T], error) {
	s := c.s
	// A canceled call fails even with a message waiting, as a gRPC stream
	// does; select alone would pick either at random.
	if err := s.sctx.Err(); err != nil {
		return localMsg[T]{}, status.FromContextError(err).Err()
	}
	select {
	case m := <-s.msgs:
		return m, nil
	case <-s.done:
	case <-s.sctx.Done():
		// The method sees the same cancellation and stops on its own.
		return localMsg[T]{}, status.FromContextError(s.sctx.Err()).Err()
	}
	// The last message may still wait in the buffer.
	select {
	case m := <-s.msgs:
		return m, nil
	default:
	}
	if s.err != nil {
		return localMsg[T]{}, s.err
	}
	return localMsg[T]{}, io.EOF
}

// Header implements grpc.ClientStream: the ingester sets no headers.
func (localClientStream[T]) Header() (metadata.MD, error) { return nil, nil }

// Trailer implements grpc.ClientStream: the ingester sets no trailers.
func (localClientStream[T]) Trailer() metadata.MD { return nil }

// CloseSend implements grpc.ClientStream: the request was sent with the call.
func (localClientStream[T]) CloseSend() error { return nil }

// Context implements grpc.ClientStream.
func (c localClientStream[T]) Context() context.Context { return c.s.cctx }

// SendMsg implements grpc.ClientStream. A server stream takes one request,
// sent with the call.
func (localClientStream[T]) SendMsg(any) error {
	return status.Error(codes.Internal, "local ingester stream: SendMsg after the request was sent")
}

// RecvMsg implements grpc.ClientStream for messages that take wire bytes
// (ingesterpb.WireUnmarshaler), as the querier's QueryStream reader does:
// an encoded message's bytes are handed over without a copy. Other
// messages are received with Recv: copying a struct into the caller's
// would need reflection, and no caller asks.
func (c localClientStream[T]) RecvMsg(dst any) error {
	wu, ok := dst.(ingesterpb.WireUnmarshaler)
	if !ok {
		return status.Errorf(codes.Unimplemented, "local ingester stream: cannot receive into %T, use Recv", dst)
	}
	msg, err := c.next()
	if err != nil {
		return err
	}
	raw := msg.raw
	if msg.m != nil {
		if c.s.codec.encode == nil {
			return status.Errorf(codes.Internal, "local ingester stream: cannot encode a %T", msg.m)
		}
		if raw, err = c.s.codec.encode(msg.m); err != nil {
			return status.Errorf(codes.Internal, "local ingester stream: encode %T: %v", msg.m, err)
		}
	}
	return wu.UnmarshalWire(raw)
}

// Send hands a copy of m to the reader, waiting while the buffer is full;
// once the caller's context is done it fails with the context's error (as a
// status), which is how the method learns that the caller went away.
func (v localServerStream[T]) Send(m *T) error {
	s := v.s
	if err := s.sctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return v.put(localMsg[T]{m: s.codec.clone(m)})
}

// sendEncoded implements encodedSender: b, a message in wire form, becomes
// the reader's.
func (v localServerStream[T]) sendEncoded(b []byte) error {
	if err := v.s.sctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return v.put(localMsg[T]{raw: b})
}

func (v localServerStream[T]) put(m localMsg[T]) error {
	s := v.s
	select {
	case s.msgs <- m:
		return nil
	case <-s.sctx.Done():
		return status.FromContextError(s.sctx.Err()).Err()
	}
}

// SetHeader implements grpc.ServerStream; there is no connection to send
// headers on, and the caller does not read them.
func (localServerStream[T]) SetHeader(metadata.MD) error { return nil }

// SendHeader implements grpc.ServerStream, as SetHeader.
func (localServerStream[T]) SendHeader(metadata.MD) error { return nil }

// SetTrailer implements grpc.ServerStream, as SetHeader.
func (localServerStream[T]) SetTrailer(metadata.MD) {}

// Context implements grpc.ServerStream: the call's, with the tenant in its
// incoming metadata.
func (v localServerStream[T]) Context() context.Context { return v.s.sctx }

// SendMsg implements grpc.ServerStream.
func (v localServerStream[T]) SendMsg(m any) error {
	if e, ok := m.(*ingesterpb.EncodedQueryStreamResponse); ok {
		// Not pooled buffers only: the reader keeps what it is given.
		if e.Pool != nil {
			return status.Error(codes.Internal, "local ingester stream: cannot hand over a pooled buffer")
		}
		return v.sendEncoded(*e.Buf)
	}
	msg, ok := m.(*T)
	if !ok {
		return status.Errorf(codes.Internal, "local ingester stream: cannot send %T", m)
	}
	return v.Send(msg)
}

// RecvMsg implements grpc.ServerStream: the one request was handed to the
// method with the call, so the client has nothing more to send.
func (localServerStream[T]) RecvMsg(any) error { return io.EOF }
