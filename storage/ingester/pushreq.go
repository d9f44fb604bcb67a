package ingester

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-tsdb/pharos/storage/ingesterclient"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// pushRequest is a PushRequest decoded for the append path. Labels stay in
// buf, a copy of the request that the pushRequest owns, and are read from
// there when needed (rangeLabels); samples are values. A decoded request of 2000 series therefore holds
// a handful of slices instead of tens of thousands of small messages, which
// the vtproto pool loses at every GC and the GC has to scan while they live.
// Histograms, exemplars and metadata are rare on this path and are decoded
// into ordinary (copying) messages.
//
// Nothing handed to the tsdb may alias buf: the request is reused as soon as
// the Push returns (see seriesLabels and ownLabels).
type pushRequest struct {
	buf        []byte
	series     []seriesView
	samples    []sampleView
	histograms []*ingesterpb.Histogram
	exemplars  []*ingesterpb.Exemplar
	metadata   []*ingesterpb.MetricMetadata
}

// span is the half-open range [lo, hi) of a slice of pushRequest or of buf.
type span struct{ lo, hi int }

type seriesView struct {
	samples, histograms, exemplars span
	// keyBytes is the span of buf from the first label field's tag to the
	// last one's end. When no other field lies between them (keyOK), it is
	// the series' key bytes if the distributor sent them in the ingester's
	// own order (see appendKey).
	keyBytes span
	keyOK    bool
	labels   int // label fields
	startMs  int64
}

type labelView struct{ name, value span }

type sampleView struct {
	t int64
	v float64
}

var _ ingesterclient.BufferUnmarshaler = (*pushRequest)(nil)

// pushRequests recycles decoded requests. A sync.Pool alone loses its
// contents every other GC cycle, and an ingester under load collects often:
// refilling the slices of a 2000-series request costs more than decoding it.
// So a few requests of ordinary size wait in a free list that survives GC;
// cheap to keep, as their big slices hold no pointers the GC must scan. The
// rest go to the sync.Pool, except huge ones, which are left to the GC.
type pushRequests struct {
	free chan *pushRequest
	pool sync.Pool
}

const (
	// freePushRequests bounds what the free list keeps: at most
	// freePushRequests × maxFreeRequestBytes.
	freePushRequests    = 16
	maxFreeRequestBytes = 4 << 20
	maxPooledBytes      = 64 << 20
)

func newPushRequests() *pushRequests {
	return &pushRequests{free: make(chan *pushRequest, freePushRequests)}
}

func (p *pushRequests) get() *pushRequest {
	select {
	case r := <-p.free:
		return r
	default:
	}
	if r, ok := p.pool.Get().(*pushRequest); ok {
		return r
	}
	return new(pushRequest)
}

// put recycles r. Slices keep their capacity; the pointers to histograms,
// exemplars and metadata are dropped so the GC can free them.
func (p *pushRequests) put(r *pushRequest) {
	size := r.footprint()
	if size > maxPooledBytes {
		return
	}
	r.reset()
	if size <= maxFreeRequestBytes {
		select {
		case p.free <- r:
			return
		default:
		}
	}
	p.pool.Put(r)
}

// footprint is the memory r holds, roughly.
func (r *pushRequest) footprint() int {
	return cap(r.buf) + cap(r.series)*int(unsafe.Sizeof(seriesView{})) +
		cap(r.samples)*int(unsafe.Sizeof(sampleView{})) + 8*(cap(r.histograms)+cap(r.exemplars)+cap(r.metadata))
}

func (r *pushRequest) reset() {
	clear(r.histograms)
	clear(r.exemplars)
	clear(r.metadata)
	r.buf = r.buf[:0]
	r.series, r.samples = r.series[:0], r.samples[:0]
	r.histograms, r.exemplars, r.metadata = r.histograms[:0], r.exemplars[:0], r.metadata[:0]
}

// bytes returns the bytes of s in buf; valid until r is reset.
func (r *pushRequest) bytes(s span) []byte { return r.buf[s.lo:s.hi] }

// UnmarshalBuffers implements ingesterclient.BufferUnmarshaler: it copies the
// wire bytes into r.buf and decodes them.
func (r *pushRequest) UnmarshalBuffers(data mem.BufferSlice) error {
	r.reset()
	n := data.Len()
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	data.CopyTo(r.buf)
	return r.decode()
}

// The codec's fallback interface; a pushRequest is only ever decoded through
// UnmarshalBuffers, never sent.
func (r *pushRequest) SizeVT() int { return 0 }

func (r *pushRequest) MarshalToSizedBufferVT([]byte) (int, error) {
	return 0, errors.New("ingester push request: marshal not supported")
}

func (r *pushRequest) UnmarshalVT(b []byte) error {
	r.reset()
	r.buf = append(r.buf, b...)
	return r.decode()
}

var errWireType = errors.New("wrong wire type")

// decode parses r.buf as a PushRequest. Unknown fields are skipped.
func (r *pushRequest) decode() error {
	b := r.buf
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return fmt.Errorf("push request: %w", protowire.ParseError(n))
		}
		off += n
		switch num {
		case 1, 2:
			if typ != protowire.BytesType {
				return fmt.Errorf("push request field %d: %w", num, errWireType)
			}
			v, n := protowire.ConsumeBytes(b[off:])
			if n < 0 {
				return fmt.Errorf("push request field %d: %w", num, protowire.ParseError(n))
			}
			start := off + n - len(v)
			off += n
			if num == 1 {
				if err := r.decodeSeries(start, off); err != nil {
					return fmt.Errorf("push request series %d: %w", len(r.series), err)
				}
				continue
			}
			md := &ingesterpb.MetricMetadata{}
			if err := md.UnmarshalVT(v); err != nil {
				return fmt.Errorf("push request metadata: %w", err)
			}
			r.metadata = append(r.metadata, md)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b[off:])
			if n < 0 {
				return fmt.Errorf("push request: %w", protowire.ParseError(n))
			}
			off += n
		}
	}
	return nil
}

// Tags of the TimeSeries and Sample fields the fast paths of decodeSeries
// read (field number << 3 | wire type).
const (
	tagSeriesLabels  = ingesterpb.TagTimeSeriesLabels
	tagSeriesSamples = 2<<3 | 2
	tagSampleTime    = 1 << 3 // varint
	tagSampleValue   = 2<<3 | 1
)

// decodeSeries parses the TimeSeries in r.buf[lo:hi] and appends it. Its
// labels are checked but not kept: a series found in the ref cache by its
// key bytes never needs them, and readLabels reads them again from buf for
// the others. Keeping a view of every label was a fifth of the decode.
// Short labels and float samples, what every encoder writes for them, are
// read without the general protowire walk.
func (r *pushRequest) decodeSeries(lo, hi int) error {
	s := seriesView{
		samples:    span{len(r.samples), len(r.samples)},
		histograms: span{len(r.histograms), len(r.histograms)},
		exemplars:  span{len(r.exemplars), len(r.exemplars)},
	}
	b := r.buf[:hi]
	contiguous := true // the label fields so far, up to s.keyBytes.hi
	label := func(tagAt, end int) {
		if s.labels == 0 {
			s.keyBytes.lo = tagAt
		} else if s.keyBytes.hi != tagAt {
			contiguous = false
		}
		s.keyBytes.hi = end
		s.labels++
	}
	for off := lo; off < hi; {
		tagAt := off
		if off+1 < hi && b[off+1] < 0x80 {
			end := off + 2 + int(b[off+1])
			switch {
			case end > hi:
			case b[off] == tagSeriesLabels && ingesterpb.SplitShortLabelPair(b[off+2:end]) >= 0:
				label(tagAt, end)
				off = end
				continue
			case b[off] == tagSeriesSamples:
				if smp, ok := decodeFloatSample(b[off+2 : end]); ok {
					r.samples = append(r.samples, smp)
					off = end
					continue
				}
			}
		}
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		off += n
		switch num {
		case 1, 2, 3, 4:
			if typ != protowire.BytesType {
				return fmt.Errorf("field %d: %w", num, errWireType)
			}
			v, n := protowire.ConsumeBytes(b[off:])
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			start := off + n - len(v)
			off += n
			switch num {
			case 1:
				if _, err := r.decodeLabel(start, off); err != nil {
					return fmt.Errorf("label: %w", err)
				}
				label(tagAt, off)
			case 2:
				smp, err := decodeSample(v)
				if err != nil {
					return fmt.Errorf("sample: %w", err)
				}
				r.samples = append(r.samples, smp)
			case 3:
				h := &ingesterpb.Histogram{}
				if err := h.UnmarshalVT(v); err != nil {
					return fmt.Errorf("histogram: %w", err)
				}
				r.histograms = append(r.histograms, h)
			case 4:
				e := &ingesterpb.Exemplar{}
				if err := e.UnmarshalVT(v); err != nil {
					return fmt.Errorf("exemplar: %w", err)
				}
				r.exemplars = append(r.exemplars, e)
			}
		case 5:
			if typ != protowire.VarintType {
				return fmt.Errorf("field %d: %w", num, errWireType)
			}
			v, n := protowire.ConsumeVarint(b[off:])
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			off += n
			s.startMs = int64(v)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b[off:])
			if n < 0 {
				return protowire.ParseError(n)
			}
			off += n
		}
	}
	s.samples.hi = len(r.samples)
	s.histograms.hi, s.exemplars.hi = len(r.histograms), len(r.exemplars)
	s.keyOK = contiguous && s.labels > 0
	r.series = append(r.series, s)
	return nil
}

// rangeLabels calls f with each label of series s, which decodeSeries has
// checked, in the order sent.
func (r *pushRequest) rangeLabels(s *seriesView, f func(name, value []byte)) {
	if s.labels == 0 {
		return
	}
	b := r.buf[:s.keyBytes.hi]
	for off := s.keyBytes.lo; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		off += n
		if num != 1 {
			off += protowire.ConsumeFieldValue(num, typ, b[off:])
			continue
		}
		v, n := protowire.ConsumeBytes(b[off:])
		off += n
		start := off - len(v)
		l, _ := r.decodeLabel(start, off)
		f(r.bytes(l.name), r.bytes(l.value))
	}
}

// decodeFloatSample reads a Sample written with both fields, in order, as
// every encoder writes one with a timestamp and a non-zero value; ok is
// false for any other form, which decodeSample reads.
func decodeFloatSample(b []byte) (s sampleView, ok bool) {
	if len(b) < 11 || b[0] != tagSampleTime {
		return s, false
	}
	t, n := protowire.ConsumeVarint(b[1:])
	if n < 0 || len(b) != 1+n+9 || b[1+n] != tagSampleValue {
		return s, false
	}
	return sampleView{t: int64(t), v: math.Float64frombits(binary.LittleEndian.Uint64(b[2+n:]))}, true
}

// decodeLabel parses the LabelPair in r.buf[lo:hi]; the last occurrence of a
// field wins, as in any proto decoder.
func (r *pushRequest) decodeLabel(lo, hi int) (labelView, error) {
	// Fastest path: how every encoder writes a label with a value.
	if v := ingesterpb.SplitShortLabelPair(r.buf[lo:hi]); v >= 0 {
		return labelView{name: span{lo + 2, lo + v}, value: span{lo + v + 2, hi}}, nil
	}
	var l labelView
	b := r.buf[:hi]
	for off := lo; off < hi; {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return l, protowire.ParseError(n)
		}
		off += n
		if num != 1 && num != 2 {
			n := protowire.ConsumeFieldValue(num, typ, b[off:])
			if n < 0 {
				return l, protowire.ParseError(n)
			}
			off += n
			continue
		}
		if typ != protowire.BytesType {
			return l, fmt.Errorf("field %d: %w", num, errWireType)
		}
		v, n := protowire.ConsumeBytes(b[off:])
		if n < 0 {
			return l, protowire.ParseError(n)
		}
		sp := span{off + n - len(v), off + n}
		off += n
		if num == 1 {
			l.name = sp
		} else {
			l.value = sp
		}
	}
	return l, nil
}

func decodeSample(b []byte) (sampleView, error) {
	var s sampleView
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return s, protowire.ParseError(n)
		}
		off += n
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b[off:])
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			off += n
			s.t = int64(v)
		case num == 2 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b[off:])
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			off += n
			s.v = math.Float64frombits(v)
		case num == 1 || num == 2:
			return s, fmt.Errorf("field %d: %w", num, errWireType)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b[off:])
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			off += n
		}
	}
	return s, nil
}
