package querier

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// streamBuffer is how many received batches may wait for the engine per
// ingester: enough to keep the network busy while the engine decodes.
const streamBuffer = 4

// batch is one received message, decoded: series in order, and the
// ingester's warnings (sent with the last batch).
type batch struct {
	series   []series
	warnings []string
}

// streamSet is the series of one ingester's stream. A goroutine receives
// batches and hands them over a channel, so receiving overlaps with the
// engine's work; the set itself is used by one goroutine, as every SeriesSet.
//
// As a storage.SeriesSet its series are storage.Series; chunkSet wraps it as
// a storage.ChunkSeriesSet.
type streamSet struct {
	f          *fanout
	mint, maxt int64 // the range the series are trimmed to
	// ing is the ingester the producer reads from: the one the set was
	// made for, or the standby that took over when it failed. Only the
	// producer touches it.
	ing     *Ingester
	samples bool
	ch      chan batch
	// err and skipped (the warnings of tolerated failures) are written
	// before ch is closed.
	err     error
	skipped []error
	holding bool // whether the producer holds a concurrency slot
	// last is the last series sent to the consumer (empty before the
	// first); resuming, that a standby's stream has yet to pass it. The
	// producer's, like ing.
	last     labels.Labels
	resuming bool

	pending  []series
	cur      *series
	warnings annotations.Annotations
	done     bool
}

func newStreamSet(f *fanout, ing *Ingester, samples bool, mint, maxt int64) *streamSet {
	return &streamSet{f: f, ing: ing, samples: samples, mint: mint, maxt: maxt, ch: make(chan batch, streamBuffer)}
}

// send hands b to the consumer. The stream holds one of the query's
// concurrency slots while it receives, but gives it up while it waits for
// the consumer: the merge reads the first series of every set before it
// yields any, so a set waiting for a slot held by a blocked sender would
// never be read.
func (s *streamSet) send(ctx context.Context, b batch) bool {
	if n := len(b.series); n > 0 {
		s.last = b.series[n-1].lset
	}
	select {
	case s.ch <- b:
		return true
	default:
	}
	<-s.f.sem
	s.holding = false
	select {
	case s.ch <- b:
	case <-ctx.Done():
		return false
	}
	select {
	case s.f.sem <- struct{}{}:
		s.holding = true
		return true
	case <-ctx.Done():
		return false
	}
}

// run is the frame of the stream goroutines: it takes a slot, runs recv
// and turns its error into the set's error or warning. When the failure is
// tolerated and the read set has a standby left, the standby's stream
// takes over the set where the failed one stopped: streams are sorted, so
// it skips what the consumer already has (see resume), and the consumer
// sees one stream.
func (s *streamSet) run(ctx context.Context, q *Queryable, method, what string, recv func() error) {
	defer close(s.ch)
	for {
		err := s.ing.Err
		if err == nil {
			select {
			case s.f.sem <- struct{}{}:
				s.holding = true
				start := time.Now()
				err = recv()
				if s.holding {
					<-s.f.sem
					s.holding = false
				}
				if err == nil {
					err = ctx.Err()
				}
				q.observe(method, start, err)
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if err == nil {
			return
		}
		if setErr := s.f.fail(s.ing, what, err); setErr != nil {
			s.err = setErr
			return
		}
		next, warning := s.f.budget.replace(s.ing, what, err)
		s.skipped = append(s.skipped, warning)
		if next == nil {
			return
		}
		s.ing, s.resuming = next, !s.last.IsEmpty()
	}
}

// resume drops from b, while a standby's stream catches up with the one it
// replaced, the series the consumer already has: those up to and including
// the last one sent. It returns false when b is left with nothing to send.
func (s *streamSet) resume(b *batch) bool {
	if !s.resuming {
		return true
	}
	i := 0
	for i < len(b.series) && labels.Compare(b.series[i].lset, s.last) <= 0 {
		i++
	}
	b.series = b.series[i:]
	s.resuming = len(b.series) == 0
	return len(b.series) > 0 || len(b.warnings) > 0
}

func (s *streamSet) runQueryStream(ctx context.Context, q *Queryable, req *ingesterpb.QueryRequest) {
	s.run(ctx, q, "QueryStream", "query stream", func() error {
		stream, err := s.ing.Client.QueryStream(ctx, req)
		if err != nil {
			return err
		}
		// Batches are decoded here, on the stream's goroutine, so that
		// decoding overlaps with the engine's work.
		var dec wireDecoder
		recv := func() (batch, error) {
			var m wireMessage
			if err := stream.RecvMsg(&m); err != nil {
				return batch{}, err
			}
			return dec.decode(m.data, s.mint, s.maxt)
		}
		var limitErr error
		err = recvAll(recv, func(b batch) bool {
			// A standby's stream counts against the limits what it
			// resends too: failing over is rare, the overcount small.
			if limitErr = s.f.use.received(dec.chunks, dec.bytes); limitErr != nil {
				return false
			}
			return !s.resume(&b) || s.send(ctx, b)
		})
		if limitErr != nil {
			return limitErr
		}
		return err
	})
}

func (s *streamSet) runSeries(ctx context.Context, q *Queryable, req *ingesterpb.SeriesRequest) {
	s.run(ctx, q, "Series", "series", func() error {
		stream, err := s.ing.Client.Series(ctx, req)
		if err != nil {
			return err
		}
		var lb labels.ScratchBuilder
		return recvAll(stream.Recv, func(m *ingesterpb.SeriesResponse) bool {
			b := batch{series: make([]series, len(m.Series))}
			for i, sl := range m.Series {
				lb.Reset()
				for _, l := range sl.Labels {
					// Labels copies the strings; the views do not escape.
					lb.Add(bytesToString(l.Name), bytesToString(l.Value))
				}
				b.series[i] = series{lset: lb.Labels(), mint: s.mint, maxt: s.maxt}
			}
			return !s.resume(&b) || s.send(ctx, b)
		})
	})
}

// Next implements storage.SeriesSet.
func (s *streamSet) Next() bool {
	for len(s.pending) == 0 {
		if s.done {
			return false
		}
		b, ok := <-s.ch
		if !ok {
			s.done = true
			for _, w := range s.skipped {
				s.warnings.Add(w)
			}
			return false
		}
		for _, w := range b.warnings {
			s.warnings.Add(errors.New(w))
		}
		s.pending = b.series
	}
	s.cur = &s.pending[0]
	s.pending = s.pending[1:]
	return true
}

// At implements storage.SeriesSet.
func (s *streamSet) At() storage.Series { return s.cur }

// Err implements storage.SeriesSet.
func (s *streamSet) Err() error {
	if !s.done {
		return nil
	}
	return s.err
}

// Warnings implements storage.SeriesSet.
func (s *streamSet) Warnings() annotations.Annotations { return s.warnings }

// chunkSet presents a streamSet as a storage.ChunkSeriesSet.
type chunkSet struct{ *streamSet }

func (s chunkSet) At() storage.ChunkSeries { return chunkSeries{s.cur} }

func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// series is one ingester's series with its still-encoded chunks, sorted by
// min time. Ingesters send whole chunks, which may reach beyond the queried
// range; the samples outside [mint, maxt] are skipped, as tsdb's own querier
// skips them.
type series struct {
	lset       labels.Labels
	chunks     []chunk
	mint, maxt int64
}

// chunk is one encoded chunk; data points into the received message.
type chunk struct {
	minTime, maxTime int64
	encoding         uint32 // a chunkenc.Encoding, unchecked
	data             []byte
}

func (s *series) Labels() labels.Labels { return s.lset }

// Iterator implements storage.Series. Chunks that do not overlap, the normal
// case, are read one after the other; overlapping ones are merged.
func (s *series) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	for i := 1; i < len(s.chunks); i++ {
		if s.chunks[i].minTime <= s.chunks[i-1].maxTime {
			return s.mergedIterator(it)
		}
	}
	ci, ok := it.(*chunksIterator)
	if !ok {
		ci = &chunksIterator{}
	}
	ci.reset(s.chunks, s.mint, s.maxt)
	return ci
}

func (s *series) mergedIterator(it chunkenc.Iterator) chunkenc.Iterator {
	parts := make([]storage.Series, len(s.chunks))
	for i := range s.chunks {
		parts[i] = &series{lset: s.lset, chunks: s.chunks[i : i+1], mint: s.mint, maxt: s.maxt}
	}
	return storage.ChainedSeriesMerge(parts...).Iterator(it)
}

// mergeReplicas is the merge function of the sample path: it merges the
// copies of one series that several ingesters returned. Replicas that
// received the same writes hold byte-identical chunks; keeping one copy of
// each leaves, normally, one sequence of non-overlapping chunks, which
// iterates as a single ingester's series does. Chaining the replicas sample
// by sample instead (storage.ChainedSeriesMerge) would reset every native
// histogram's counter-reset hint to unknown, since the chain switches
// between replicas at each duplicate timestamp and cannot know the samples
// are consecutive. Chunks that differ between replicas (one missed writes)
// still overlap and are chained by series.Iterator.
func mergeReplicas(ss ...storage.Series) storage.Series {
	if len(ss) == 1 {
		return ss[0]
	}
	n := 0
	for _, s := range ss {
		sr, ok := s.(*series)
		if !ok {
			return storage.ChainedSeriesMerge(ss...)
		}
		n += len(sr.chunks)
	}
	all := make([]chunk, 0, n)
	for _, s := range ss {
		all = append(all, s.(*series).chunks...)
	}
	slices.SortStableFunc(all, func(a, b chunk) int {
		if c := cmp.Compare(a.minTime, b.minTime); c != 0 {
			return c
		}
		return cmp.Compare(a.maxTime, b.maxTime)
	})
	kept := all[:0]
	run := 0 // start in kept of the chunks with the current chunk's time range
	for _, c := range all {
		if run < len(kept) && (kept[run].minTime != c.minTime || kept[run].maxTime != c.maxTime) {
			run = len(kept)
		}
		if !slices.ContainsFunc(kept[run:], func(k chunk) bool {
			return k.encoding == c.encoding && bytes.Equal(k.data, c.data)
		}) {
			kept = append(kept, c)
		}
	}
	first := ss[0].(*series)
	return &series{lset: first.lset, chunks: kept, mint: first.mint, maxt: first.maxt}
}

// chunkSeries presents a series as a storage.ChunkSeries.
type chunkSeries struct{ *series }

func (s chunkSeries) Iterator(chunks.Iterator) chunks.Iterator {
	return &metaIterator{chunks: s.chunks, i: -1}
}

// metaIterator yields the chunks of a series as chunks.Meta, decoding each
// only as far as chunkenc.FromData does (not at all).
type metaIterator struct {
	chunks []chunk
	i      int
	cur    chunks.Meta
	err    error
}

func (m *metaIterator) Next() bool {
	if m.err != nil || m.i+1 >= len(m.chunks) {
		return false
	}
	m.i++
	c := &m.chunks[m.i]
	if c.encoding > math.MaxUint8 {
		m.err = fmt.Errorf("unknown chunk encoding %d", c.encoding)
		return false
	}
	chk, err := chunkenc.FromData(chunkenc.Encoding(c.encoding), c.data)
	if err != nil {
		m.err = err
		return false
	}
	m.cur = chunks.Meta{Chunk: chk, MinTime: c.minTime, MaxTime: c.maxTime}
	return true
}

func (m *metaIterator) At() chunks.Meta { return m.cur }
func (m *metaIterator) Err() error      { return m.err }

// chunksIterator iterates the samples in [mint, maxt] of non-overlapping
// chunks in order. It keeps one chunk object per encoding and resets it onto
// each chunk's bytes, so moving to the next chunk allocates nothing.
type chunksIterator struct {
	chunks     []chunk
	mint, maxt int64
	next       int // index of the chunk to open next
	cur        chunkenc.Iterator
	curMax     int64
	err        error

	decoders [chunkenc.EncFloatHistogramST + 1]chunkenc.Chunk
	iters    [chunkenc.EncFloatHistogramST + 1]chunkenc.Iterator
}

func (c *chunksIterator) reset(chks []chunk, mint, maxt int64) {
	c.chunks = chks
	c.mint, c.maxt = mint, maxt
	c.next = 0
	c.cur = nil
	c.err = nil
}

// open makes chunk c.next the current one.
func (c *chunksIterator) open() bool {
	if c.err != nil || c.next >= len(c.chunks) {
		c.cur = nil
		return false
	}
	pc := &c.chunks[c.next]
	c.next++
	if int(pc.encoding) >= len(c.decoders) {
		c.err = fmt.Errorf("unknown chunk encoding %d", pc.encoding)
		c.cur = nil
		return false
	}
	enc := chunkenc.Encoding(pc.encoding)
	d := c.decoders[enc]
	if d == nil {
		var err error
		if d, err = chunkenc.FromData(enc, pc.data); err != nil {
			c.err = err
			c.cur = nil
			return false
		}
		c.decoders[enc] = d
	} else {
		d.Reset(pc.data)
	}
	c.iters[enc] = d.Iterator(c.iters[enc])
	c.cur = c.iters[enc]
	c.curMax = pc.maxTime
	return true
}

func (c *chunksIterator) Next() chunkenc.ValueType {
	for {
		if c.cur != nil {
			if vt := c.cur.Next(); vt != chunkenc.ValNone {
				if t := c.cur.AtT(); t < c.mint {
					continue
				} else if t > c.maxt {
					return c.exhaust()
				}
				return vt
			}
			if err := c.cur.Err(); err != nil {
				c.err = err
				return c.exhaust()
			}
		}
		if !c.open() {
			return chunkenc.ValNone
		}
	}
}

func (c *chunksIterator) Seek(t int64) chunkenc.ValueType {
	t = max(t, c.mint)
	if c.cur != nil && c.curMax >= t {
		if vt := c.cur.Seek(t); vt != chunkenc.ValNone {
			return c.bounded(vt)
		}
		if err := c.cur.Err(); err != nil {
			c.err = err
			return c.exhaust()
		}
	}
	for c.next < len(c.chunks) && c.chunks[c.next].maxTime < t {
		c.next++
	}
	for c.open() {
		if vt := c.cur.Seek(t); vt != chunkenc.ValNone {
			return c.bounded(vt)
		}
		if err := c.cur.Err(); err != nil {
			c.err = err
			return c.exhaust()
		}
	}
	return chunkenc.ValNone
}

// bounded returns vt unless the current sample is past maxt.
func (c *chunksIterator) bounded(vt chunkenc.ValueType) chunkenc.ValueType {
	if c.cur.AtT() > c.maxt {
		return c.exhaust()
	}
	return vt
}

// exhaust ends the iteration: later Next and Seek calls return ValNone.
func (c *chunksIterator) exhaust() chunkenc.ValueType {
	c.cur = nil
	c.next = len(c.chunks)
	return chunkenc.ValNone
}

func (c *chunksIterator) At() (int64, float64) { return c.cur.At() }
func (c *chunksIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return c.cur.AtHistogram(h)
}

func (c *chunksIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return c.cur.AtFloatHistogram(fh)
}
func (c *chunksIterator) AtT() int64  { return c.cur.AtT() }
func (c *chunksIterator) AtST() int64 { return c.cur.AtST() }
func (c *chunksIterator) Err() error  { return c.err }
