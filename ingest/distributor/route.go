package distributor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/pharos-tsdb/pharos/cluster/ring"
	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// batch is what one ingester gets.
type batch struct {
	inst   *ring.Instance
	client ingesterpb.IngesterClient
	req    *ingesterpb.PushRequest
	// owned: req belongs to the routing and is reused; otherwise it is the
	// request being sent, shared with the caller.
	owned bool
	// pos maps a series of req to its position in the request being sent;
	// nil means the identity (the batch is the whole request).
	pos []int
	// spans: the label spans of req's series when req is not the request
	// being sent (pos set); scratch.
	spans [][]byte
	resp  *ingesterpb.PushResponse
	err   error
}

// labelSpanPusher is a client that finds known series by the bytes their
// labels were decoded from, as the ingester of the same process does (see
// ingester's localClient.PushWithLabelSpans): a request decoded from
// remote write 1.0 skips reading each series' labels again.
type labelSpanPusher interface {
	PushWithLabelSpans(ctx context.Context, req *ingesterpb.PushRequest, spans [][]byte) (*ingesterpb.PushResponse, error)
}

// routing is the per-push state of send. It is pooled: at 100k series per
// request its buffers are the bulk of a push's allocations otherwise.
type routing struct {
	batches []batch
	inst    []*ring.Instance // scratch for WriteReplicas
	key     []byte           // scratch for shard keys
	// whole: every batch is the whole request being sent, so it can be
	// marshalled once for all of them.
	whole bool
	// Per series of the request being sent: acks needed, acks received,
	// replicas that rejected (part of) it.
	need, acks, rejs []uint16
}

func (d *Distributor) getRouting(n int) *routing {
	r, _ := d.routePool.Get().(*routing)
	if r == nil {
		r = &routing{}
	}
	r.need = grow(r.need, n)
	r.acks = grow(r.acks, n)
	r.rejs = grow(r.rejs, n)
	return r
}

func (d *Distributor) putRouting(r *routing) {
	for i := range r.batches {
		b := &r.batches[i]
		if b.owned {
			clear(b.req.Series)
			b.req.Series = b.req.Series[:0]
			b.req.Metadata = nil
		} else {
			b.req = nil
		}
		b.inst, b.client, b.resp, b.err = nil, nil, nil, nil
		b.pos = b.pos[:0]
		clear(b.spans)
		b.spans = b.spans[:0]
	}
	r.batches = r.batches[:0]
	r.whole = false
	clear(r.inst[:cap(r.inst)])
	d.routePool.Put(r)
}

// grow returns s with length n, zeroed.
func grow(s []uint16, n int) []uint16 {
	if cap(s) < n {
		return make([]uint16, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// batchFor returns the batch of the ingester in, adding one if needed.
// Instances are compared by address: a ring update between two series
// yields different pointers for the same ingester.
func (r *routing) batchFor(in *ring.Instance) *batch {
	for i := range r.batches {
		if b := &r.batches[i]; b.inst == in || b.inst.Addr == in.Addr {
			return b
		}
	}
	if len(r.batches) < cap(r.batches) {
		r.batches = r.batches[:len(r.batches)+1]
	} else {
		r.batches = append(r.batches, batch{})
	}
	b := &r.batches[len(r.batches)-1]
	b.inst = in
	if !b.owned || b.req == nil {
		b.req, b.owned = &ingesterpb.PushRequest{}, true
	}
	return b
}

// route splits req into per-ingester batches and sets the acks each series
// needs. Static ingesters all get the whole request, and so do the ingesters
// of a ring that puts every series on the same ones.
func (d *Distributor) route(tenantID string, req *ingesterpb.PushRequest, r *routing) error {
	if d.static != nil {
		if len(d.static) == 0 {
			return ErrNoIngesters
		}
		q := uint16(ring.WriteQuorum(len(d.static)))
		for i := range req.Series {
			r.need[i] = q
		}
		for i, c := range d.static {
			r.batches = append(r.batches, batch{inst: &d.staticInst[i], client: c, req: req})
		}
		r.whole = true
		return nil
	}
	if d.uniform != nil {
		rs, ok := d.uniform.UniformWriteReplicas(r.inst[:0])
		r.inst = rs.Instances
		if ok && distinctAddrs(rs.Instances) {
			d.routeWhole(req, r, rs)
			return nil
		}
	}
	return d.routeEach(tenantID, req, r)
}

// routeWhole sends the whole request to rs, the replication set of every
// series: what routeEach would do, without hashing and placing each series.
func (d *Distributor) routeWhole(req *ingesterpb.PushRequest, r *routing, rs ring.ReplicationSet) {
	q := uint16(len(rs.Instances) - rs.MaxErrors)
	for i := range req.Series {
		r.need[i] = q
	}
	for _, in := range rs.Instances {
		c, err := d.ings.Client(in.Addr)
		// A literal, not a reused slot: pos must be nil (the identity).
		r.batches = append(r.batches, batch{inst: in, client: c, err: err, req: req})
	}
	r.whole = true
}

// distinctAddrs tells whether no two instances share an address. routeEach
// merges such instances into one batch that gets each series twice; rings
// like that are not worth a fast path of their own.
func distinctAddrs(ins []*ring.Instance) bool {
	for i, a := range ins {
		for _, b := range ins[:i] {
			if a.Addr == b.Addr {
				return false
			}
		}
	}
	return true
}

// routeEach places every series of req on the ring and batches the series
// per ingester.
func (d *Distributor) routeEach(tenantID string, req *ingesterpb.PushRequest, r *routing) error {
	r.key = appendTenantKey(r.key[:0], tenantID)
	prefix := len(r.key)
	for i, ts := range req.Series {
		var key uint32
		key, r.key = shardKeyAppend(r.key[:prefix], ts.Labels)
		rs, err := d.ings.WriteReplicas(key, r.inst[:0])
		r.inst = rs.Instances
		if err != nil {
			return fmt.Errorf("%w for series %s: %w", ErrWriteQuorum, FormatSeries(ts.Labels), err)
		}
		r.need[i] = uint16(len(rs.Instances) - rs.MaxErrors)
		for _, in := range rs.Instances {
			b := r.batchFor(in)
			b.req.Series = append(b.req.Series, ts)
			b.pos = append(b.pos, i)
		}
	}
	for i := range r.batches {
		b := &r.batches[i]
		b.req.Metadata = req.Metadata
		b.client, b.err = d.ings.Client(b.inst.Addr)
	}
	return nil
}

// send pushes req to its ingesters in parallel and waits for a write quorum
// of every series. spans are its series' label spans, or nil (see push);
// index maps req's series to the caller's request (nil: identity).
func (d *Distributor) send(ctx context.Context, req *ingesterpb.PushRequest, spans [][]byte, index []int, res *PushResult) error {
	// A push whose context names no tenant (an appender of a component
	// that has none) is the default tenant's; the ingesters need to know.
	id, err := tenant.FromContext(ctx)
	if err != nil {
		id = tenant.DefaultTenant
		ctx = tenant.With(ctx, id)
	}
	r := d.getRouting(len(req.Series))
	defer d.putRouting(r)
	if err := d.route(id, req, r); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(d.cfg.RemoteTimeout))
	defer cancel()

	batches := r.batches
	if len(batches) == 1 {
		d.pushOne(ctx, &batches[0], spans)
	} else {
		var opts []grpc.CallOption
		if r.whole {
			// Every call sends req: marshal it once for all of them.
			m := sharedPush(req, spans)
			defer m.Release() // after wg.Wait: no call uses it any more
			opts = []grpc.CallOption{m.CallOption()}
		}
		var wg sync.WaitGroup
		for i := range batches {
			wg.Go(func() { d.pushOne(ctx, &batches[i], spans, opts...) })
		}
		wg.Wait()
	}

	failed := 0
	for bi := range batches {
		b := &batches[bi]
		if b.err != nil {
			failed++
			continue
		}
		for j := range b.req.Series {
			r.acks[at(b.pos, j)]++
		}
		for _, e := range b.resp.Errors {
			if int(e.Index) < len(b.req.Series) {
				r.rejs[at(b.pos, int(e.Index))]++
			}
		}
	}
	if failed > 0 {
		for i := range req.Series {
			if r.acks[i] < r.need[i] {
				return d.quorumError(req, r, i)
			}
		}
	}

	// A series is rejected when every replica that answered rejected it;
	// if one wrote it, it is stored and readable.
	var rejS, rejH int
	for bi := range batches {
		b := &batches[bi]
		if b.err != nil {
			continue
		}
		for _, e := range b.resp.Errors {
			if int(e.Index) >= len(b.req.Series) {
				continue
			}
			i := at(b.pos, int(e.Index))
			if r.rejs[i] == 0 || r.rejs[i] != r.acks[i] {
				continue
			}
			r.rejs[i] = 0 // reported
			rejS += int(e.RejectedSamples)
			rejH += int(e.RejectedHistograms)
			d.reject(res, Rejection{
				Index:      at(index, i),
				Reason:     ingesterReason(e.Reason),
				Series:     FormatSeries(b.req.Series[e.Index].Labels),
				Message:    e.Message,
				Samples:    int(e.RejectedSamples),
				Histograms: int(e.RejectedHistograms),
			})
		}
	}
	// Count from the request, minus what ingesters rejected: replicas do
	// not multiply what the sender wrote.
	for _, ts := range req.Series {
		res.SamplesWritten += uint64(len(ts.Samples))
		res.HistogramsWritten += uint64(len(ts.Histograms))
		res.ExemplarsWritten += uint64(len(ts.Exemplars))
	}
	res.SamplesWritten -= uint64(min(rejS, int(res.SamplesWritten)))
	res.HistogramsWritten -= uint64(min(rejH, int(res.HistogramsWritten)))
	res.ExemplarsWritten = min(res.ExemplarsWritten, exemplarsWritten(batches, r.whole))
	sortRejections(res.Rejected)
	return nil
}

// exemplarsWritten bounds the exemplars of a push that some replica wrote.
// Ingesters drop exemplars they cannot store without rejecting the series
// (as Prometheus's receiver does), so only their counts say how many were
// written. When every batch carried the whole request, an exemplar one of
// them wrote is readable: the best replica's count is the answer. Batches
// of parts of a request count different series, so their sum is only an
// upper bound.
func exemplarsWritten(batches []batch, whole bool) uint64 {
	var best, sum uint64
	for i := range batches {
		if b := &batches[i]; b.err == nil {
			best = max(best, b.resp.ExemplarsWritten)
			sum += b.resp.ExemplarsWritten
		}
	}
	if whole {
		return best
	}
	return sum
}

// quorumError describes series i's replication set: who failed and why.
func (d *Distributor) quorumError(req *ingesterpb.PushRequest, r *routing, i int) error {
	var failures []string
	var first error
	for bi := range r.batches {
		b := &r.batches[bi]
		if b.err == nil || (b.pos != nil && !containsSorted(b.pos, i)) {
			continue
		}
		if first == nil {
			first = b.err
		}
		failures = append(failures, fmt.Sprintf("push to ingester %s (%s): %v", b.inst.ID, b.inst.Addr, b.err))
	}
	return &quorumErr{
		msg: fmt.Sprintf("%v (%d of %d acks, need %d) for series %s: %s", ErrWriteQuorum,
			r.acks[i], int(r.acks[i])+len(failures), r.need[i], FormatSeries(req.Series[i].Labels), strings.Join(failures, "; ")),
		cause: first,
	}
}

// quorumErr is ErrWriteQuorum with the replicas' errors in its message; it
// also unwraps to the first of them, so an overloaded ingester's gRPC
// status still reaches the sender.
type quorumErr struct {
	msg   string
	cause error
}

func (e *quorumErr) Error() string   { return e.msg }
func (e *quorumErr) Unwrap() []error { return []error{ErrWriteQuorum, e.cause} }

func containsSorted(s []int, v int) bool {
	j := sort.SearchInts(s, v)
	return j < len(s) && s[j] == v
}

// sharedPush is req marshalled once for the calls that send it, its
// series' labels from spans when there are any (ingesterpb.LabelSpanPush).
func sharedPush(req *ingesterpb.PushRequest, spans [][]byte) *ingesterclient.Shared {
	if spans == nil {
		return ingesterclient.NewShared(req)
	}
	return ingesterclient.NewSharedAs(req, ingesterpb.LabelSpanPush{Req: req, Spans: spans})
}

// pushOne sends b; spans are the label spans of the request being sent,
// or nil.
func (d *Distributor) pushOne(ctx context.Context, b *batch, spans [][]byte, opts ...grpc.CallOption) {
	if b.err != nil { // no client
		return
	}
	start := time.Now()
	if spans != nil && b.pos != nil {
		for _, p := range b.pos {
			b.spans = append(b.spans, spans[p])
		}
		spans = b.spans
	}
	if sp, ok := b.client.(labelSpanPusher); ok && spans != nil {
		b.resp, b.err = sp.PushWithLabelSpans(ctx, b.req, spans)
	} else {
		if spans != nil && len(opts) == 0 {
			// Not marshalled by send for every batch: this one's labels
			// still go out as the spans they were decoded from.
			m := sharedPush(b.req, spans)
			defer m.Release()
			opts = []grpc.CallOption{m.CallOption()}
		}
		b.resp, b.err = b.client.Push(ctx, b.req, opts...)
	}
	d.ingesterLatency.Observe(time.Since(start).Seconds())
	d.ingesterPushes.WithLabelValues(grpcCode(b.err)).Inc()
	if b.err != nil {
		d.logger.Debug("push to ingester failed", "ingester", b.inst.ID, "addr", b.inst.Addr, "err", b.err)
	}
}
