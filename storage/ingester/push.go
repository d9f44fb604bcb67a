package ingester

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// pushState is the scratch space of one Push; pooled so that a warm push
// allocates nothing per sample and, for known series, nothing per series.
type pushState struct {
	// tenant is the value of tenant.Label in the request's series, "" for
	// none (the default tenant).
	tenant string
	// key holds the series' key bytes (appendKey): st.tenant's label,
	// prefixLen bytes, then the client's labels as stored (its tenant
	// label and empty values dropped). What the ref cache hashes, and on a
	// miss what the labels are built from. Copying the bytes costs less
	// than keeping pairs of strings, whose pointers the GC's write barrier
	// would see.
	key        []byte
	prefixLen  int
	sb         labels.ScratchBuilder // series labels, written with Overwrite
	ls         labels.Labels         // may alias sb or the request: never handed to the tsdb
	ownSB      labels.ScratchBuilder // builds the copies of new series' labels
	exSB       labels.ScratchBuilder
	exemplars  []exemplar.Exemplar
	rejections []rejection
	// samples holds the samples of one series of a protoPush, which are
	// messages, as the values appendSeries reads.
	samples []sampleView

	// The series being read: its input and index there, for its labels
	// to be read when needed (labels); raw, when not nil, is the span of
	// the request that may be its key bytes without st.tenant's label
	// (pushRequest.readSeries).
	in         pushInput
	k          int
	labelsRead bool
	raw        []byte
	// Its labels, once read (beginLabels, addLabel): how many of the
	// client's own; once seriesRef has built them, whether they came out
	// of order.
	nLabels  int
	unsorted bool

	// What the series' spans found in the ref cache, looked up for the
	// whole push before its first append (lookupSpans): spanRefs[k] is
	// series k's ref, 0 for a miss or no span. spanKeys and spanOrder are
	// scratch.
	spanKeys  []refKey
	spanRefs  []storage.SeriesRef
	spanOrder []int32
}

var pushStatePool = sync.Pool{New: func() any {
	return &pushState{sb: labels.NewScratchBuilder(16), ownSB: labels.NewScratchBuilder(16), exSB: labels.NewScratchBuilder(4)}
}}

// release returns st to the pool without the request's errors, histograms
// and exemplar labels, which would otherwise stay reachable.
func (st *pushState) release() {
	clear(st.rejections)
	clear(st.exemplars)
	st.rejections, st.exemplars = st.rejections[:0], st.exemplars[:0]
	if cap(st.samples) > maxPooledSamples {
		st.samples = nil
	}
	st.samples = st.samples[:0]
	if cap(st.key) > maxPooledKey {
		st.key = nil
	}
	if cap(st.spanKeys) > maxPooledSamples {
		st.spanKeys, st.spanRefs, st.spanOrder = nil, nil, nil
	}
	st.in, st.raw = nil, nil
	pushStatePool.Put(st)
}

// maxPooledKey bounds the label bytes a pooled pushState keeps.
const maxPooledKey = 64 << 10

// maxPooledSamples bounds the samples scratch a pooled pushState keeps
// (16 bytes each): a series with more samples than that is rare.
const maxPooledSamples = 64 << 10

// pushInput is a push request as push reads it, in one of two forms: a
// pushRequest decoded from the wire by the gRPC handler, or a PushRequest
// message read in place (protoPush: the local client, and gRPC servers
// with interceptors). Both are read without copying: what the tsdb keeps
// is copied by seriesLabels and buildExemplars, so the request may be
// reused as soon as the push returns.
type pushInput interface {
	numSeries() int
	// readSeries makes series k st's current one (st.series) and returns
	// the rest of the series, valid until the next call.
	readSeries(k int, st *pushState) seriesData
	// readLabels writes the labels of series k into st: beginLabels, then
	// addLabel for each.
	readLabels(k int, st *pushState)
	// span returns the span of series k that may be its key bytes without
	// st.tenant's label (what readSeries sets st.raw to), nil for none.
	span(k int) []byte
	pushMetadata() []*ingesterpb.MetricMetadata
}

// seriesData is one series of a request, as appendSeries reads it.
type seriesData struct {
	samples    []sampleView
	histograms []*ingesterpb.Histogram // entries may be nil in a protoPush
	exemplars  []*ingesterpb.Exemplar
	startMs    int64
}

var (
	_ pushInput = (*pushRequest)(nil)
	_ pushInput = (*protoPush)(nil)
)

func (r *pushRequest) numSeries() int { return len(r.series) }

// readSeries leaves the labels unread: a series whose span of label fields
// is its key bytes is found in the ref cache by them (st.raw), and only a
// miss reads its labels.
func (r *pushRequest) readSeries(k int, st *pushState) seriesData {
	s := r.series[k]
	st.series(r, k)
	st.raw = r.span(k)
	return seriesData{
		samples:    r.samples[s.samples.lo:s.samples.hi],
		histograms: r.histograms[s.histograms.lo:s.histograms.hi],
		exemplars:  r.exemplars[s.exemplars.lo:s.exemplars.hi],
		startMs:    s.startMs,
	}
}

func (r *pushRequest) span(k int) []byte {
	if s := &r.series[k]; s.keyOK {
		return r.bytes(s.keyBytes)
	}
	return nil
}

func (r *pushRequest) readLabels(k int, st *pushState) {
	st.beginLabels()
	r.rangeLabels(&r.series[k], func(name, value []byte) {
		st.addLabel(yoloString(name), yoloString(value))
	})
}

func (r *pushRequest) pushMetadata() []*ingesterpb.MetricMetadata { return r.metadata }

// protoPush reads a PushRequest in place. The request may hold nil
// messages anywhere (a gRPC peer could not send them): they read as empty
// ones, through the generated getters.
type protoPush ingesterpb.PushRequest

func (p *protoPush) numSeries() int { return len(p.Series) }

// readSeries reads the labels right away: messages hold no key bytes.
func (p *protoPush) readSeries(k int, st *pushState) seriesData {
	st.series(p, k)
	st.labels()
	return p.data(k, st)
}

// data returns the rest of series k.
func (p *protoPush) data(k int, st *pushState) seriesData {
	ts := p.Series[k]
	st.samples = st.samples[:0]
	for _, smp := range ts.GetSamples() {
		st.samples = append(st.samples, sampleView{t: smp.GetTimestampMs(), v: smp.GetValue()})
	}
	return seriesData{
		samples:    st.samples,
		histograms: ts.GetHistograms(),
		exemplars:  ts.GetExemplars(),
		startMs:    ts.GetStartTimestampMs(),
	}
}

func (p *protoPush) readLabels(k int, st *pushState) {
	st.beginLabels()
	for _, lp := range p.Series[k].GetLabels() {
		st.addLabel(yoloString(lp.GetName()), yoloString(lp.GetValue()))
	}
}

func (p *protoPush) pushMetadata() []*ingesterpb.MetricMetadata { return p.Metadata }

func (p *protoPush) span(int) []byte { return nil }

// spanPush is a protoPush whose series come with the bytes their labels
// were decoded from (see localClient.PushWithLabelSpans): a series with a
// span is looked up by it, as a pushRequest's is, and its labels are read
// only on a miss. The messages stay what the series is: only the key
// bytes of the labels read are ever cached (cacheable).
type spanPush struct {
	*protoPush
	spans [][]byte
}

var _ pushInput = spanPush{}

func (p spanPush) span(k int) []byte { return p.spans[k] }

func (p spanPush) readSeries(k int, st *pushState) seriesData {
	if p.spans[k] == nil {
		return p.protoPush.readSeries(k, st)
	}
	st.series(p, k)
	st.raw = p.spans[k]
	return p.data(k, st)
}

// seriesResult accumulates what happened to one series of the request.
type seriesResult struct {
	samples, histograms uint64
	err                 *ingesterpb.SeriesError
}

// Push implements ingesterpb.IngesterServer. req may come from the vtproto
// pool (see Register): nothing of it is retained after Push returns. Pushes
// through a server without interceptors are decoded into a pushRequest
// instead, which skips the PushRequest message altogether.
func (i *Ingester) Push(ctx context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	return i.pushFrom(ctx, (*protoPush)(req))
}

// pushFrom is Push for a request in either form; in is the caller's, and
// nothing of it is retained after pushFrom returns.
func (i *Ingester) pushFrom(ctx context.Context, in pushInput) (*ingesterpb.PushResponse, error) {
	if err := i.enter(); err != nil {
		i.metrics.pushes.WithLabelValues(codes.Unavailable.String()).Inc()
		return nil, err
	}
	defer i.inflight.Done()
	if err := i.refuseIfFailed(); err != nil {
		i.metrics.pushes.WithLabelValues(codes.Unavailable.String()).Inc()
		return nil, err
	}
	id, err := tenantOf(ctx)
	if err != nil {
		i.metrics.pushes.WithLabelValues(status.Code(err).String()).Inc()
		return nil, err
	}
	if i.testHookPushAdmitted != nil {
		i.testHookPushAdmitted()
	}

	resp, err := i.push(ctx, id, in)
	if err != nil {
		i.metrics.pushes.WithLabelValues(status.Code(err).String()).Inc()
		return nil, err
	}
	i.metrics.pushOK.Inc()
	return resp, nil
}

func (i *Ingester) push(ctx context.Context, id string, in pushInput) (*ingesterpb.PushResponse, error) {
	resp := &ingesterpb.PushResponse{}
	i.noteTenant(id)
	app := i.db.AppenderV2(ctx)
	// Both are implemented by the tsdb's appender; checked once per request
	// so that a future tsdb without them degrades instead of panicking.
	getRef, _ := app.(storage.GetRef)
	exApp, _ := app.(storage.ExemplarAppenderV2)

	st := pushStatePool.Get().(*pushState)
	defer st.release()
	st.setTenant(id)
	if i.refs != nil {
		st.lookupSpans(i.refs, in)
	}

	var rejected [numReasons]uint64
	for idx := range in.numSeries() {
		if err := ctx.Err(); err != nil {
			_ = app.Rollback()
			return nil, status.FromContextError(err).Err()
		}
		s := in.readSeries(idx, st)
		res := i.appendSeries(ctx, st, app, getRef, exApp, uint32(idx), s, &resp.ExemplarsWritten)
		resp.SamplesWritten += res.samples
		resp.HistogramsWritten += res.histograms
		if res.err != nil {
			resp.Errors = append(resp.Errors, res.err)
			rejected[res.err.Reason] += uint64(res.err.RejectedSamples + res.err.RejectedHistograms)
		}
	}
	if err := app.Commit(); err != nil {
		i.storageFailed(err)
		return nil, status.Errorf(codes.Unavailable, "commit: %v", err)
	}

	if dropped := i.meta.update(id, in.pushMetadata()); dropped > 0 {
		i.metrics.metadataDropped.Add(float64(dropped))
	}
	i.metrics.samplesAppended.Add(float64(resp.SamplesWritten))
	i.metrics.histogramsApp.Add(float64(resp.HistogramsWritten))
	i.metrics.exemplarsAppended.Add(float64(resp.ExemplarsWritten))
	for reason, n := range rejected {
		if n > 0 {
			i.metrics.rejected[reason].Add(float64(n))
		}
	}
	return resp, nil
}

// rejection is one sample the appender refused.
type rejection struct {
	t    int64
	err  error
	v    float64
	h    *histogram.Histogram
	fh   *histogram.FloatHistogram
	hist bool
}

// appendSeries appends the samples, histograms and exemplars of one series,
// whose labels readSeries has put into st. Floats and histograms are merged
// by timestamp, so a series that changes type within a request keeps its
// order.
func (i *Ingester) appendSeries(ctx context.Context, st *pushState, app storage.AppenderV2, getRef storage.GetRef, exApp storage.ExemplarAppenderV2,
	idx uint32, s seriesData, exemplarsWritten *uint64,
) seriesResult {
	var res seriesResult
	samples, hists, exemplars := s.samples, s.histograms, s.exemplars
	sr := st.seriesRef(i.refs, getRef)
	if sr.ref == 0 && sr.ls.IsEmpty() {
		return seriesResult{err: &ingesterpb.SeriesError{
			Index:              idx,
			Reason:             ingesterpb.SeriesError_INVALID,
			Message:            "series without labels",
			RejectedSamples:    uint32(len(samples)),
			RejectedHistograms: uint32(len(hists)),
		}}
	}

	st.rejections = st.rejections[:0]
	for len(samples) > 0 || len(hists) > 0 {
		if len(hists) == 0 || (len(samples) > 0 && samples[0].t <= hists[0].GetTimestampMs()) {
			smp := samples[0]
			samples = samples[1:]
			if err := sr.append(st, app, getRef, s.startMs, smp.t, smp.v, nil, nil); err != nil {
				st.rejections = append(st.rejections, rejection{t: smp.t, err: err, v: smp.v})
				continue
			}
			res.samples++
			continue
		}
		hp := hists[0]
		hists = hists[1:]
		if hp == nil {
			hp = &ingesterpb.Histogram{} // as a nil message reads: an empty one
		}
		h, fh := hp.ToHistograms()
		if err := sr.append(st, app, getRef, s.startMs, hp.TimestampMs, 0, h, fh); err != nil {
			st.rejections = append(st.rejections, rejection{t: hp.TimestampMs, err: err, h: h, fh: fh, hist: true})
			continue
		}
		res.histograms++
	}
	if sr.ref != 0 && sr.ref != sr.cached && i.refs != nil && st.cacheable() {
		// New to the cache, or its cached ref had gone stale and the
		// appender made the series anew.
		i.refs.put(i.refs.key(st.key), sr.ref)
	}
	ref := sr.ref
	if len(st.rejections) > 0 || len(exemplars) > 0 {
		sr.resolve(st, getRef) // for messages, and exemplars of a stale ref
	}
	ls := sr.ls
	if len(st.rejections) > 0 {
		res.err = i.seriesError(ctx, st.tenant, idx, ls, st.rejections, &res)
	}

	if len(exemplars) > 0 {
		// With exemplar storage off the tsdb's appender takes exemplars and
		// drops them; they must not count as written (the remote-write 2.0
		// Exemplars-Written header).
		if ref == 0 || exApp == nil || i.cfg.MaxExemplars <= 0 {
			i.metrics.exemplarsRejected.Add(float64(len(exemplars)))
			return res
		}
		exs := st.buildExemplars(exemplars)
		_, err := exApp.AppendExemplars(ref, ls, exs)
		failed := 0
		var perr *storage.AppendPartialError
		switch {
		case err == nil:
		case errors.As(err, &perr):
			failed = len(perr.ExemplarErrors)
		default:
			failed = len(exs)
		}
		*exemplarsWritten += uint64(len(exs) - failed)
		if failed > 0 {
			i.metrics.exemplarsRejected.Add(float64(failed))
		}
	}
	return res
}

// seriesError turns the rejections of one series into its SeriesError, or
// nil if every rejected sample turns out to be already stored with the same
// value. The tsdb only forgives an identical copy of a series' latest sample;
// a retried batch (e.g. after a timeout on a replica that did write it) also
// repeats older samples, which must not count as errors either. That costs a
// read, but only on the error path.
func (i *Ingester) seriesError(ctx context.Context, tenantValue string, idx uint32, ls labels.Labels, rejs []rejection, res *seriesResult) *ingesterpb.SeriesError {
	i.forgiveStoredDuplicates(ctx, tenantValue, ls, rejs)
	var se *ingesterpb.SeriesError
	for _, r := range rejs {
		if r.err == nil {
			if r.hist {
				res.histograms++
			} else {
				res.samples++
			}
			continue
		}
		if se == nil {
			se = &ingesterpb.SeriesError{
				Index:   idx,
				Reason:  reasonOf(r.err),
				Message: fmt.Sprintf("%v for series %s at timestamp %d", r.err, withoutTenant(ls).String(), r.t),
			}
		}
		if r.hist {
			se.RejectedHistograms++
		} else {
			se.RejectedSamples++
		}
	}
	return se
}

// forgiveStoredDuplicates clears the error of each rejection refused for
// its age whose timestamp already holds the very same value. ls holds the
// tenant label unless tenantValue is empty (the default tenant).
func (i *Ingester) forgiveStoredDuplicates(ctx context.Context, tenantValue string, ls labels.Labels, rejs []rejection) {
	mint, maxt := int64(math.MaxInt64), int64(math.MinInt64)
	for _, r := range rejs {
		if errors.Is(r.err, storage.ErrOutOfOrderSample) || errors.Is(r.err, storage.ErrOutOfBounds) || errors.Is(r.err, storage.ErrTooOldSample) {
			mint, maxt = min(mint, r.t), max(maxt, r.t)
		}
	}
	if mint > maxt {
		return
	}
	q, err := i.db.Querier(mint, maxt)
	if err != nil {
		return
	}
	defer q.Close()
	ms := make([]*labels.Matcher, 0, ls.Len()+1)
	ls.Range(func(l labels.Label) {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
	})
	if tenantValue == "" {
		// The default tenant's series are those without the label.
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, tenant.Label, ""))
	}
	ss := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	for ss.Next() {
		s := ss.At()
		if !labels.Equal(s.Labels(), ls) {
			continue
		}
		it := s.Iterator(nil)
		for k := range rejs {
			r := &rejs[k]
			if r.err == nil || r.t < mint || r.t > maxt {
				continue
			}
			switch it.Seek(r.t) {
			case chunkenc.ValFloat:
				if t, v := it.At(); !r.hist && t == r.t && math.Float64bits(v) == math.Float64bits(r.v) {
					r.err = nil
				}
			case chunkenc.ValHistogram:
				if t, h := it.AtHistogram(nil); r.h != nil && t == r.t && h.Equals(r.h) {
					r.err = nil
				}
			case chunkenc.ValFloatHistogram:
				if t, fh := it.AtFloatHistogram(nil); r.fh != nil && t == r.t && fh.Equals(r.fh) {
					r.err = nil
				}
			case chunkenc.ValNone:
				// Seek only moves forward: later rejections are past the end too.
				return
			}
		}
		return
	}
}

// setTenant starts a push for tenant id: its series' key bytes begin with
// its label.
func (st *pushState) setTenant(id string) {
	st.tenant = id
	if id == tenant.DefaultTenant {
		st.tenant = "" // stored without the label, see tenant.go
	}
	st.key = st.key[:0]
	if st.tenant != "" {
		st.key = appendKeyLabel(st.key, tenant.Label, st.tenant)
	}
	st.prefixLen = len(st.key)
}

// lookupSpans looks every series of in that has a span up in refs by it,
// all at once (refCache.getAll), before anything is appended: looked up
// one series at a time, between appends, each lookup waited for its own
// cache miss, a sixth of an all-in-one's CPU at 100k series.
func (st *pushState) lookupSpans(refs *refCache, in pushInput) {
	n := in.numSeries()
	st.spanKeys = st.spanKeys[:0]
	any := false
	for k := range n {
		var key refKey
		if st.raw = in.span(k); st.raw != nil {
			key, any = refs.key(st.rawKey()), true
		}
		st.spanKeys = append(st.spanKeys, key)
	}
	st.raw = nil
	st.spanRefs = slices.Grow(st.spanRefs[:0], n)[:n]
	if !any {
		clear(st.spanRefs)
		return
	}
	st.spanOrder = refs.getAll(st.spanKeys, st.spanRefs, st.spanOrder)
}

// series makes series k of in the current one, its labels not read yet.
func (st *pushState) series(in pushInput, k int) {
	st.in, st.k, st.labelsRead, st.raw = in, k, false, nil
}

// labels reads the current series' labels into st, once.
func (st *pushState) labels() {
	if !st.labelsRead {
		st.in.readLabels(st.k, st)
		st.labelsRead = true
	}
}

// rawKey returns the key bytes the current series has if st.raw is its
// labels as stored: st.raw itself for the default tenant, else a copy
// after the tenant's label.
func (st *pushState) rawKey() []byte {
	if st.prefixLen == 0 {
		return st.raw
	}
	st.key = append(st.key[:st.prefixLen], st.raw...)
	return st.key
}

// cacheable says whether the current series' labels, read, may be cached
// under their key bytes: only sorted ones, so that appendKey finds them
// again when the head deletes the series. Nothing but the bytes a series'
// labels encode to is ever a key, so a hit is always the series pushed. A
// series whose span is not its key bytes (a sender's labels out of order,
// with empty values, or encoded otherwise) misses by its span on every
// push and is found by its key bytes, once its labels are read.
func (st *pushState) cacheable() bool {
	return st.labelsRead && !st.unsorted
}

// rawIsKey says whether the current series' span, its labels read, is
// their key bytes: then the key bytes were looked up already.
func (st *pushState) rawIsKey() bool {
	return st.raw != nil && string(st.raw) == string(st.key[st.prefixLen:])
}

// beginLabels starts the labels of the current series; addLabel adds them.
func (st *pushState) beginLabels() {
	st.key = st.key[:st.prefixLen]
	st.nLabels = 0
	st.unsorted = false
}

// addLabel adds one label of the client's to the series. Both strings may
// alias the request. A client's tenant.Label is dropped; st.tenant, if set,
// takes its place (as the key's prefix). Order is not checked here: a
// series sent out of order misses the cache, whose keys are all sorted, and
// is sorted on the way to the head's lookup.
func (st *pushState) addLabel(name, value string) {
	if value == "" || name == tenant.Label {
		// Prometheus treats an empty value as an absent label.
		return
	}
	st.key = appendKeyLabel(st.key, name, value)
	st.nLabels++
}

// pushedSeries is the series of a push as the appender needs it: its ref,
// and its labels, which a series found in the ref cache comes without.
type pushedSeries struct {
	ref    storage.SeriesRef
	cached storage.SeriesRef // the ref the cache gave, 0 on a miss
	// ls is safe to hand to the tsdb, which keeps them; empty for a
	// series from the cache until resolve.
	ls labels.Labels
}

// seriesRef looks up the series whose labels addLabel built. A series in
// refs costs two hashes of its labels' bytes and comes without labels:
// the appender only needs them if the ref has gone stale. Others cost no
// allocation either while the head knows them: the lookup uses a scratch
// buffer and the tsdb's own copy of the labels comes back. Only new series
// pay for a copy, which the head keeps. An invalid series (no labels of
// the client's own) has neither ref nor labels. With refs, lookupSpans
// must have looked the push's spans up in it.
func (st *pushState) seriesRef(refs *refCache, getRef storage.GetRef) pushedSeries {
	if refs != nil && st.raw != nil && !st.labelsRead {
		if ref := st.spanRefs[st.k]; ref != 0 {
			return pushedSeries{ref: ref, cached: ref, ls: labels.EmptyLabels()}
		}
	}
	st.labels()
	if st.nLabels == 0 {
		// No labels of the client's own: the series is invalid, tenant or not.
		return pushedSeries{ls: labels.EmptyLabels()}
	}
	if refs != nil && !st.rawIsKey() {
		if ref, ok := refs.get(refs.key(st.key)); ok {
			return pushedSeries{ref: ref, cached: ref, ls: labels.EmptyLabels()}
		}
	}
	st.sb.Reset()
	prev := ""
	tenantDone := st.tenant == ""
	rangeKey(st.key[st.prefixLen:], func(name, value string) {
		if name < prev {
			st.unsorted = true
		}
		prev = name
		if !tenantDone && name > tenant.Label {
			// In order, so that sorted input stays sorted without a sort.
			st.sb.Add(tenant.Label, st.tenant)
			tenantDone = true
		}
		st.sb.Add(name, value)
	})
	if !tenantDone {
		st.sb.Add(tenant.Label, st.tenant)
	}
	if st.unsorted {
		st.sb.Sort()
	}
	st.sb.Overwrite(&st.ls)
	if getRef != nil {
		if ref, ls := getRef.GetRef(st.ls, st.ls.Hash()); ref != 0 {
			return pushedSeries{ref: ref, ls: ls}
		}
	}
	return pushedSeries{ls: ownLabels(&st.ownSB, st.ls)}
}

// resolve gives a series from the cache its labels, looking it up the slow
// way: a stale cached ref is replaced by what the head has now (0 if it no
// longer has the series).
func (sr *pushedSeries) resolve(st *pushState, getRef storage.GetRef) {
	if !sr.ls.IsEmpty() {
		return
	}
	*sr = st.seriesRef(nil, getRef)
}

// append appends one sample to the series. A series from the cache is
// appended to by ref alone; if the head no longer has it, the appender
// finds no labels to create it from and says so with ErrInvalidSample (no
// other error of the appender's comes without a metric counted), and the
// sample is appended again with the labels resolved.
func (sr *pushedSeries) append(st *pushState, app storage.AppenderV2, getRef storage.GetRef, startMs, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) error {
	ref, err := app.Append(sr.ref, sr.ls, startMs, t, v, h, fh, storage.AOptions{})
	if err != nil && sr.ls.IsEmpty() && errors.Is(err, tsdb.ErrInvalidSample) {
		sr.resolve(st, getRef)
		ref, err = app.Append(sr.ref, sr.ls, startMs, t, v, h, fh, storage.AOptions{})
	}
	if err != nil {
		return err
	}
	sr.ref = ref
	return nil
}

// buildExemplars converts exemplars, sorted by timestamp as the tsdb wants.
// Their labels are copied (ownLabels): the exemplar storage keeps them, and
// the exemplars' own bytes belong to the request, which the local client's
// caller reuses.
func (st *pushState) buildExemplars(in []*ingesterpb.Exemplar) []exemplar.Exemplar {
	st.exemplars = st.exemplars[:0]
	var ls labels.Labels
	for _, e := range in {
		st.exSB.Reset()
		for _, lp := range e.GetLabels() {
			st.exSB.Add(yoloString(lp.GetName()), yoloString(lp.GetValue()))
		}
		st.exSB.Sort()
		st.exSB.Overwrite(&ls)
		st.exemplars = append(st.exemplars, exemplar.Exemplar{
			Labels: ownLabels(&st.ownSB, ls),
			Value:  e.GetValue(),
			Ts:     e.GetTimestampMs(),
			HasTs:  true,
		})
	}
	slices.SortStableFunc(st.exemplars, func(a, b exemplar.Exemplar) int {
		switch {
		case a.Ts < b.Ts:
			return -1
		case a.Ts > b.Ts:
			return 1
		}
		return 0
	})
	return st.exemplars
}

func reasonOf(err error) ingesterpb.SeriesError_Reason {
	if perMetric, ok := seriesLimitReason(err); ok {
		if perMetric {
			return ingesterpb.SeriesError_PER_METRIC_SERIES_LIMIT
		}
		return ingesterpb.SeriesError_PER_USER_SERIES_LIMIT
	}
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return ingesterpb.SeriesError_OUT_OF_ORDER
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		return ingesterpb.SeriesError_TOO_OLD
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return ingesterpb.SeriesError_DUPLICATE_TIMESTAMP
	default:
		// Everything else the appender refuses at Append time is about the
		// sample itself: invalid histogram, empty or duplicate labels, ...
		return ingesterpb.SeriesError_INVALID
	}
}

// yoloString views b as a string without copying. Only for strings that no
// one keeps past the request: labels for the tsdb go through ownLabels.
func yoloString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
