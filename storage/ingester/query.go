package ingester

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Batch bounds of streamed responses: large enough to amortise per-message
// cost, small enough to stay far below gRPC's message size limits.
const (
	maxSeriesPerBatch = 128
	maxBytesPerBatch  = 1 << 20
)

// QueryStream implements ingesterpb.IngesterServer: the matching series with
// their encoded chunks, in batches, sorted by labels unless the request says
// the querier does not need it; warnings come last. Batches are encoded
// straight into wire form (ingesterpb.EncodedQueryStreamResponse).
func (i *Ingester) QueryStream(req *ingesterpb.QueryRequest, stream ingesterpb.Ingester_QueryStreamServer) (err error) {
	if err := i.enter(); err != nil {
		return err
	}
	defer i.inflight.Done()
	ctx := stream.Context()
	defer func() {
		switch {
		case ctx.Err() != nil:
			i.metrics.queryStreams.WithLabelValues("canceled").Inc()
		case err != nil:
			i.metrics.queryStreams.WithLabelValues("error").Inc()
		default:
			i.metrics.queryStreams.WithLabelValues("ok").Inc()
		}
	}()

	id, err := tenantOf(ctx)
	if err != nil {
		return err
	}
	matchers, err := fromProtoMatchers(req.Matchers)
	if err != nil {
		return err
	}
	matchers, none := i.scopeMatchers(id, matchers)
	if none {
		return nil
	}
	q, err := i.db.ChunkQuerier(req.StartMs, req.EndMs)
	if err != nil {
		return status.Errorf(codes.Internal, "open chunk querier: %v", err)
	}
	defer q.Close()

	// Chunks go out whole: trimming re-encodes the edge chunks, which loses
	// native histograms' counter-reset hints, and the querier cuts samples
	// to the range itself, as tsdb's own querier does.
	hints := &storage.SelectHints{Start: req.StartMs, End: req.EndMs, DisableTrimming: true}
	if h := req.Hints; h != nil {
		hints.Step, hints.Func, hints.Grouping, hints.By, hints.Range = h.StepMs, h.Func, h.Grouping, h.By, h.RangeMs
		hints.Limit = int(h.Limit)
		if h.ShardCount > 0 {
			if h.ShardIndex >= h.ShardCount {
				return status.Errorf(codes.InvalidArgument, "shard index %d out of %d shards", h.ShardIndex, h.ShardCount)
			}
			hints.ShardIndex, hints.ShardCount = h.ShardIndex, h.ShardCount
		}
	}
	ss := q.Select(ctx, !req.UnsortedSeries, hints, matchers...)

	out := newQueryStreamOut(stream)
	var (
		enc  ingesterpb.QueryStreamEncoder
		it   chunks.Iterator
		chks []ingesterpb.WireChunk
	)
	enc.Reset(out.next())
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		chks = chks[:0]
		for it.Next() {
			meta := it.At()
			// The bytes are copied into the message before the next series:
			// the head's open chunk keeps growing, and a memory-mapped chunk
			// may be dropped by compaction once the querier is closed.
			chks = append(chks, ingesterpb.WireChunk{
				MinTimeMs: meta.MinTime, MaxTimeMs: meta.MaxTime,
				Encoding: uint32(meta.Chunk.Encoding()), Data: meta.Chunk.Bytes(),
			})
		}
		if err := it.Err(); err != nil {
			return status.Errorf(codes.Internal, "iterate chunks of %s: %v", s.Labels(), err)
		}
		enc.AddSeries(s.Labels(), tenant.Label, chks)
		if enc.Series() >= maxSeriesPerBatch || enc.Len() >= maxBytesPerBatch {
			// A querier that gave up cancels the stream: stop reading.
			if err := ctx.Err(); err != nil {
				return status.FromContextError(err).Err()
			}
			n := enc.Series()
			if err := out.send(enc.Bytes()); err != nil {
				return err
			}
			i.metrics.seriesStreamed.Add(float64(n))
			enc.Reset(out.next())
		}
	}
	if err := ss.Err(); err != nil {
		return selectError(ctx, err)
	}
	n := enc.Series()
	enc.AddWarnings(warningStrings(ss.Warnings()))
	if enc.Len() == 0 {
		return nil
	}
	if err := out.send(enc.Bytes()); err != nil {
		return err
	}
	i.metrics.seriesStreamed.Add(float64(n))
	return nil
}

// encodedSender is a stream that takes encoded messages whose buffer its
// reader keeps: the in-process client's.
type encodedSender interface {
	sendEncoded(b []byte) error
}

// queryStreamOut hands encoded batches to a QueryStream's stream. Each
// batch is given away with its buffer (gRPC writes it after Send returns),
// so every batch is encoded into a new one: over gRPC from the call's own
// pool, which gRPC puts it back to once written; in process a plain slice
// the reader keeps, as the decoded series point into it.
type queryStreamOut struct {
	stream ingesterpb.Ingester_QueryStreamServer
	local  encodedSender // nil over gRPC
	pool   *sendBuffers
	buf    *[]byte // the pooled buffer of the batch being encoded
	// size is the capacity to start a batch with: the largest batch so
	// far, so that a batch rarely outgrows its buffer.
	size int
}

func newQueryStreamOut(stream ingesterpb.Ingester_QueryStreamServer) *queryStreamOut {
	o := &queryStreamOut{stream: stream, size: 16 << 10}
	if l, ok := stream.(encodedSender); ok {
		o.local = l
	} else {
		o.pool = &sendBuffers{}
	}
	return o
}

// sendBuffers is the buffer pool of one QueryStream call. gRPC's own pool
// would do, but it hands out a batch of tens of KB from its 1 MB tier and
// zeroes all of it on every Get; buffers of the call's own batch sizes are
// not zeroed (each is overwritten by the next batch), and only the few
// that gRPC's flow control keeps in flight at once are ever allocated.
type sendBuffers struct {
	mu   sync.Mutex
	free []*[]byte
}

var _ mem.BufferPool = (*sendBuffers)(nil)

// Get implements mem.BufferPool.
func (p *sendBuffers) Get(n int) *[]byte {
	p.mu.Lock()
	var b *[]byte
	if k := len(p.free); k > 0 {
		b = p.free[k-1]
		p.free = p.free[:k-1]
	}
	p.mu.Unlock()
	if b == nil || cap(*b) < n {
		nb := make([]byte, n)
		return &nb
	}
	*b = (*b)[:n]
	return b
}

// Put implements mem.BufferPool; gRPC calls it once it wrote a batch.
func (p *sendBuffers) Put(b *[]byte) {
	p.mu.Lock()
	p.free = append(p.free, b)
	p.mu.Unlock()
}

// next returns an empty buffer for the next batch.
func (o *queryStreamOut) next() []byte {
	if o.local != nil {
		return make([]byte, 0, o.size)
	}
	o.buf = o.pool.Get(o.size)
	return (*o.buf)[:0]
}

// send sends b, the batch encoded into the buffer of the last next (or,
// when it outgrew that, a larger one).
func (o *queryStreamOut) send(b []byte) error {
	o.size = max(o.size, len(b)+len(b)/8)
	if o.local != nil {
		return o.local.sendEncoded(b)
	}
	*o.buf = b
	buf := o.buf
	o.buf = nil
	return o.stream.SendMsg(&ingesterpb.EncodedQueryStreamResponse{Buf: buf, Pool: o.pool})
}

// setLabels writes ls into *dst, reusing its pairs and their byte slices,
// and returns roughly how many bytes that adds to the message. The tenant
// label is left out: clients never see it. Removing it keeps series sorted,
// since every series of one answer has the same value.
func setLabels(dst *[]*ingesterpb.LabelPair, ls labels.Labels) int {
	pairs := (*dst)[:0]
	size := 0
	ls.Range(func(l labels.Label) {
		if l.Name == tenant.Label {
			return
		}
		k := len(pairs)
		if k < cap(pairs) {
			pairs = pairs[:k+1]
			if pairs[k] == nil {
				pairs[k] = &ingesterpb.LabelPair{}
			}
		} else {
			pairs = append(pairs, &ingesterpb.LabelPair{})
		}
		p := pairs[k]
		p.Name = append(p.Name[:0], l.Name...)
		p.Value = append(p.Value[:0], l.Value...)
		size += len(l.Name) + len(l.Value) + 4
	})
	*dst = pairs
	return size
}

// Series implements ingesterpb.IngesterServer: label sets only, sorted, in
// batches, at most req.Limit of them (0 = no limit).
func (i *Ingester) Series(req *ingesterpb.SeriesRequest, stream ingesterpb.Ingester_SeriesServer) error {
	if err := i.enter(); err != nil {
		return err
	}
	defer i.inflight.Done()
	ctx := stream.Context()

	q, matchers, err := i.querier(ctx, req.StartMs, req.EndMs, req.Matchers)
	if err != nil || q == nil {
		return err
	}
	defer q.Close()
	ss := q.Select(ctx, true, &storage.SelectHints{Start: req.StartMs, End: req.EndMs, Func: "series", Limit: int(req.Limit)}, matchers...)

	resp := &ingesterpb.SeriesResponse{}
	var n, size, total int
	for ss.Next() {
		if req.Limit > 0 && int64(total) >= req.Limit {
			break
		}
		total++
		if n < cap(resp.Series) {
			resp.Series = resp.Series[:n+1]
			if resp.Series[n] == nil {
				resp.Series[n] = &ingesterpb.SeriesLabels{}
			}
		} else {
			resp.Series = append(resp.Series, &ingesterpb.SeriesLabels{})
		}
		size += setLabels(&resp.Series[n].Labels, ss.At().Labels())
		n++
		if n >= maxSeriesPerBatch*8 || size >= maxBytesPerBatch {
			if err := stream.Send(resp); err != nil {
				return err
			}
			n, size = 0, 0
			resp.Series = resp.Series[:0]
		}
	}
	if err := ss.Err(); err != nil {
		return selectError(ctx, err)
	}
	if n == 0 {
		return nil
	}
	return stream.Send(resp)
}

// LabelNames implements ingesterpb.IngesterServer.
func (i *Ingester) LabelNames(ctx context.Context, req *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	if err := i.enter(); err != nil {
		return nil, err
	}
	defer i.inflight.Done()

	q, matchers, err := i.querier(ctx, req.StartMs, req.EndMs, req.Matchers)
	if err != nil || q == nil {
		return &ingesterpb.LabelNamesResponse{}, err
	}
	defer q.Close()
	limit := req.Limit
	if limit > 0 {
		// One more: the tenant label may be among the first names.
		limit++
	}
	names, warns, err := q.LabelNames(ctx, labelHints(limit), matchers...)
	if err != nil {
		return nil, selectError(ctx, err)
	}
	names = withoutTenantLabel(names)
	if req.Limit > 0 && int64(len(names)) > req.Limit {
		names = names[:req.Limit]
	}
	return &ingesterpb.LabelNamesResponse{Names: cloneStrings(names), Warnings: warningStrings(warns)}, nil
}

// LabelValues implements ingesterpb.IngesterServer.
func (i *Ingester) LabelValues(ctx context.Context, req *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
	if err := i.enter(); err != nil {
		return nil, err
	}
	defer i.inflight.Done()

	if req.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "label name must not be empty")
	}
	if req.Name == tenant.Label {
		if _, err := tenantOf(ctx); err != nil {
			return nil, err
		}
		// The label does not exist for clients.
		return &ingesterpb.LabelValuesResponse{}, nil
	}
	q, matchers, err := i.querier(ctx, req.StartMs, req.EndMs, req.Matchers)
	if err != nil || q == nil {
		return &ingesterpb.LabelValuesResponse{}, err
	}
	defer q.Close()
	values, warns, err := q.LabelValues(ctx, req.Name, labelHints(req.Limit), matchers...)
	if err != nil {
		return nil, selectError(ctx, err)
	}
	return &ingesterpb.LabelValuesResponse{Values: cloneStrings(values), Warnings: warningStrings(warns)}, nil
}

// cloneStrings copies ss, which may alias a block's memory-mapped index:
// such strings are only valid until the querier is closed (see
// storage.LabelQuerier), and the querier closes when the method returns.
// gRPC marshals the answer after that, and the local client hands it on
// as it is. One allocation holds all the bytes.
func cloneStrings(ss []string) []string {
	if len(ss) == 0 {
		return ss
	}
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	b := make([]byte, 0, n)
	for _, s := range ss {
		b = append(b, s...)
	}
	all := yoloString(b) // b is never written again
	out := make([]string, len(ss))
	off := 0
	for k, s := range ss {
		out[k] = all[off : off+len(s)]
		off += len(s)
	}
	return out
}

// MetricsMetadata implements ingesterpb.IngesterServer from the in-memory
// metadata of pushes since start.
func (i *Ingester) MetricsMetadata(ctx context.Context, req *ingesterpb.MetricsMetadataRequest) (*ingesterpb.MetricsMetadataResponse, error) {
	if err := i.enter(); err != nil {
		return nil, err
	}
	defer i.inflight.Done()
	id, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	return &ingesterpb.MetricsMetadataResponse{Metadata: i.meta.query(id, req.Metric, req.Limit)}, nil
}

// QueryExemplars implements ingesterpb.IngesterServer from the head's
// exemplar storage. Each matcher set is confined to the call's tenant on
// its own: the sets are a union, so one left unscoped would reach every
// tenant's series. No query limits apply, as to the label queries: the
// exemplar storage is a ring of storage.max-exemplars entries, which
// bounds the answer.
func (i *Ingester) QueryExemplars(ctx context.Context, req *ingesterpb.ExemplarQueryRequest) (*ingesterpb.ExemplarQueryResponse, error) {
	if err := i.enter(); err != nil {
		return nil, err
	}
	defer i.inflight.Done()
	id, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	sets := make([][]*labels.Matcher, 0, len(req.MatcherSets))
	for _, set := range req.MatcherSets {
		matchers, err := fromProtoMatchers(set.GetMatchers())
		if err != nil {
			return nil, err
		}
		matchers, none := i.scopeMatchers(id, matchers)
		if none {
			continue
		}
		sets = append(sets, matchers)
	}
	resp := &ingesterpb.ExemplarQueryResponse{}
	if len(sets) == 0 {
		return resp, nil
	}
	q, err := i.db.ExemplarQuerier(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "open exemplar querier: %v", err)
	}
	results, err := q.Select(req.StartMs, req.EndMs, sets...)
	if err != nil {
		return nil, selectError(ctx, err)
	}
	// The storage sorts series by their stored labels (dropping the tenant
	// label keeps that order, as every series of the answer has the same)
	// and links a series' exemplars in timestamp order, out-of-order ones
	// included: the answer is in the order the RPC promises as it is.
	resp.Series = make([]*ingesterpb.ExemplarSeries, 0, len(results))
	for _, r := range results {
		s := &ingesterpb.ExemplarSeries{Exemplars: make([]*ingesterpb.Exemplar, 0, len(r.Exemplars))}
		setLabels(&s.Labels, r.SeriesLabels)
		for _, e := range r.Exemplars {
			pe := &ingesterpb.Exemplar{Value: e.Value, TimestampMs: e.Ts}
			// Exemplar labels are the client's own: a tenant-named one is
			// kept, unlike in series labels, where the ingester put it.
			e.Labels.Range(func(l labels.Label) {
				pe.Labels = append(pe.Labels, &ingesterpb.LabelPair{Name: []byte(l.Name), Value: []byte(l.Value)})
			})
			s.Exemplars = append(s.Exemplars, pe)
		}
		resp.Series = append(resp.Series, s)
	}
	return resp, nil
}

// labelHints asks for the lexically smallest values when limited, so that a
// querier merging several ingesters' answers still gets the right first N.
func labelHints(limit int64) *storage.LabelHints {
	if limit <= 0 {
		return nil
	}
	return &storage.LabelHints{Limit: int(limit), LimitSmallest: true}
}

// querier opens a querier over [mint, maxt] with the request's matchers,
// confined to the call's tenant; the caller closes it. A nil querier without
// error means that nothing can match. Errors are gRPC statuses.
func (i *Ingester) querier(ctx context.Context, mint, maxt int64, pms []*ingesterpb.LabelMatcher) (storage.Querier, []*labels.Matcher, error) {
	id, err := tenantOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	matchers, err := fromProtoMatchers(pms)
	if err != nil {
		return nil, nil, err
	}
	matchers, none := i.scopeMatchers(id, matchers)
	if none {
		return nil, nil, nil
	}
	q, err := i.db.Querier(mint, maxt)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "open querier: %v", err)
	}
	return q, matchers, nil
}

// fromProtoMatchers converts the request's matchers; a bad one is the
// caller's error.
func fromProtoMatchers(in []*ingesterpb.LabelMatcher) ([]*labels.Matcher, error) {
	ms, err := ingesterpb.ToLabelMatchers(in)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "matcher: %v", err)
	}
	return ms, nil
}

// selectError maps a read error to a gRPC status: the caller's cancellation
// or deadline keeps its code, anything else is the ingester's fault.
func selectError(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Error(codes.Internal, fmt.Sprintf("select: %v", err))
}

func warningStrings(w annotations.Annotations) []string {
	if len(w) == 0 {
		return nil
	}
	out := make([]string, 0, len(w))
	for _, err := range w {
		out = append(out, err.Error())
	}
	// Annotations are a map; sort so that replicas answer identically.
	slices.Sort(out)
	return out
}
