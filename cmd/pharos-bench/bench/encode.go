package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/protobuf/encoding/protowire"
)

// Remote-write content types and version headers, per protocol.
const (
	ContentTypeV1 = "application/x-protobuf"
	ContentTypeV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	VersionV1     = "0.1.0"
	VersionV2     = "2.0.0"
)

// Batch is the series of one request in one round: labels and samples are
// owned by the caller and read by the encoder only.
type Batch struct {
	Labels  []labels.Labels
	Counter []bool
	// Refs are the local tsdb's series references, 0 when unknown.
	Refs []storage.SeriesRef
	// Samples holds len(Labels) × per-series samples, series by series.
	Samples []prompb.Sample
}

// PerSeries is the number of samples each series carries in b.
func (b *Batch) PerSeries() int {
	if len(b.Labels) == 0 {
		return 0
	}
	return len(b.Samples) / len(b.Labels)
}

// Compress is the snappy block encoder of every body. s2's fast level
// writes snappy-compatible blocks about 2.5 times as fast as
// EncodeSnappyBetter (what klauspost's snappy.Encode is, and what the
// harness used before), for bodies about 6% larger (BenchmarkEncode): the
// harness shares its cores with the server it measures, so its own CPU is
// the cost that counts.
func Compress(dst, raw []byte) []byte {
	return s2.EncodeSnappy(dst[:cap(dst)], raw)
}

// Encoder turns batches into snappy-compressed remote-write bodies. It
// reuses its buffers, so a body is valid until the next Encode; one
// goroutine uses an Encoder.
//
// From one round to the next a batch usually changes only its samples'
// timestamps and values, which sit at fixed offsets of the protobuf
// message as long as every field keeps its encoded length. So the encoder
// keeps each batch's last message (keyed by the *Batch: callers reuse one
// Batch per request across rounds, as RunWrites does) and patches those
// bytes in place. A series relabelled by churn is marshalled alone and
// spliced in (1.0; in 2.0 new label strings renumber the symbols table, so
// the batch is encoded again), and anything else (a value becoming 0, which
// proto3 omits, a timestamp whose varint grows) encodes the batch again.
// Whichever way, the message is byte for byte what MarshalToSizedBuffer
// writes for the batch.
type Encoder struct {
	V2 bool

	v1        prompb.WriteRequest
	v1lbls    []prompb.Label
	v2        writev2.Request
	syms      writev2.SymbolsTable
	refs      []uint32
	v2smp     []writev2.Sample
	comp      []byte
	changed   []int
	templates map[*Batch]*template
	prepared  map[*Batch]*prepared
	// Full, Spliced, Patched and Prepared count the bodies encoded from
	// scratch, with relabelled series spliced in, patched in place, and
	// taken as Prepare made them.
	Full, Spliced, Patched, Prepared int
}

// template is a batch's last encoded message and where its parts are.
type template struct {
	labels  []labels.Labels
	counter []bool
	raw     []byte
	spare   []byte // the previous raw, reused by the next splice
	// Per series, the offsets of its field in the request, from tag to
	// end (1.0 only: the splice points).
	seriesOff []int32
	// Per sample: offset of the value's 8 bytes, -1 when the message
	// omits it (a zero value); offset and length of the timestamp's
	// varint, -1 when omitted.
	valOff, tsOff []int32
	tsLen         []uint8
}

// prepared is a body compressed ahead of time, and the samples it holds.
type prepared struct {
	labels  []labels.Labels
	samples []prompb.Sample
	body    []byte
}

// NewEncoder returns an encoder for protocol 2.0 if v2, else 1.0.
func NewEncoder(v2 bool) *Encoder {
	return &Encoder{V2: v2, syms: writev2.NewSymbolTable(), templates: map[*Batch]*template{}, prepared: map[*Batch]*prepared{}}
}

// Prepare does ahead of time, before a write phase's clock starts, the
// work of b's first two requests: it compresses b's body as it is now
// (kept until the next Encode of b, which returns it if b still holds the
// same series and samples) and lays b's template out for next, the samples
// of the round after. That round's layout is what later rounds keep: the
// first often differs, as counters start at 0.
func (e *Encoder) Prepare(b *Batch, next []prompb.Sample) error {
	var t template
	if err := e.marshal(&t, b); err != nil {
		return err
	}
	e.prepared[b] = &prepared{
		labels: slices.Clone(b.Labels), samples: slices.Clone(b.Samples),
		body: slices.Clone(Compress(e.comp, t.raw)),
	}
	cur := b.Samples
	b.Samples = next
	tmpl := &template{}
	err := e.encodeTemplate(tmpl, b)
	b.Samples = cur
	if err != nil {
		return err
	}
	e.templates[b] = tmpl
	return nil
}

// Encode returns b as a compressed body, valid until the next call.
func (e *Encoder) Encode(b *Batch) ([]byte, error) {
	if p := e.prepared[b]; p != nil {
		delete(e.prepared, b)
		if slices.EqualFunc(p.samples, b.Samples, sameSample) && slices.EqualFunc(p.labels, b.Labels, labels.Equal) {
			e.Prepared++
			return p.body, nil
		}
	}
	raw, err := e.encodeRaw(b)
	if err != nil {
		return nil, err
	}
	e.comp = Compress(e.comp, raw)
	return e.comp, nil
}

// sameSample compares values by their bits, so that a NaN equals itself.
func sameSample(a, b prompb.Sample) bool {
	return a.Timestamp == b.Timestamp && math.Float64bits(a.Value) == math.Float64bits(b.Value)
}

// encodeRaw returns b's message, from its template when it can.
func (e *Encoder) encodeRaw(b *Batch) ([]byte, error) {
	t := e.templates[b]
	if t != nil && len(b.Labels) == len(t.labels) && len(b.Samples) == len(t.valOff) {
		e.changed = e.changed[:0]
		for i := range b.Labels {
			// The same label set is usually the same string: this
			// compares pointers.
			if b.Counter[i] != t.counter[i] || !labels.Equal(b.Labels[i], t.labels[i]) {
				e.changed = append(e.changed, i)
			}
		}
		spliced := len(e.changed) > 0
		ok := !spliced || (!e.V2 && e.splice(t, b, e.changed) == nil)
		if ok && t.patch(b) {
			if spliced {
				e.Spliced++
			} else {
				e.Patched++
			}
			return t.raw, nil
		}
	}
	if t == nil {
		t = &template{}
		e.templates[b] = t
	}
	if err := e.encodeTemplate(t, b); err != nil {
		delete(e.templates, b)
		return nil, err
	}
	e.Full++
	return t.raw, nil
}

// Marshal returns b's uncompressed message, encoded from scratch.
func (e *Encoder) Marshal(b *Batch) ([]byte, error) {
	var t template
	if err := e.marshal(&t, b); err != nil {
		return nil, err
	}
	return t.raw, nil
}

func (e *Encoder) marshal(t *template, b *Batch) error {
	var size int
	if e.V2 {
		e.fillV2(b)
		size = e.v2.Size()
	} else {
		e.fillV1(b)
		size = e.v1.Size()
	}
	if cap(t.raw) < size {
		t.raw = make([]byte, size)
	}
	t.raw = t.raw[:size]
	var err error
	if e.V2 {
		_, err = e.v2.MarshalToSizedBuffer(t.raw)
	} else {
		_, err = e.v1.MarshalToSizedBuffer(t.raw)
	}
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	return nil
}

// encodeTemplate encodes b from scratch into t and finds its parts.
func (e *Encoder) encodeTemplate(t *template, b *Batch) error {
	if err := e.marshal(t, b); err != nil {
		return err
	}
	t.labels = append(t.labels[:0], b.Labels...)
	t.counter = append(t.counter[:0], b.Counter...)
	return e.index(t, len(b.Samples))
}

// index finds the series and samples of t's message, which must hold n
// samples.
func (e *Encoder) index(t *template, n int) error {
	t.seriesOff, t.valOff, t.tsOff, t.tsLen = t.seriesOff[:0], t.valOff[:0], t.tsOff[:0], t.tsLen[:0]
	// Both protocols hold the series in one repeated field of the request
	// (1.0: 1, 2.0: 5), and each series its samples in field 2, as
	// messages of value (fixed64, 1) and timestamp (varint, 2).
	seriesField := protowire.Number(1)
	if e.V2 {
		seriesField = 5
	}
	err := eachField(t.raw, 0, seriesField, func(ts []byte, tsAt, tagAt int) error {
		t.seriesOff = append(t.seriesOff, int32(tagAt))
		return eachField(ts, tsAt, 2, func(smp []byte, at, _ int) error { return t.indexSample(smp, at) })
	})
	t.seriesOff = append(t.seriesOff, int32(len(t.raw)))
	if err != nil {
		return fmt.Errorf("index samples: %w", err)
	}
	if len(t.valOff) != n {
		return fmt.Errorf("index samples: found %d, the batch has %d", len(t.valOff), n)
	}
	return nil
}

// splice replaces the series changed (ascending) of t's 1.0 message by
// b's, each marshalled alone as WriteRequest.MarshalToSizedBuffer embeds
// it, finds the new series' samples and moves the offsets of the rest by
// what the message grew or shrank before them.
func (e *Encoder) splice(t *template, b *Batch, changed []int) error {
	per := b.PerSeries()
	n := len(b.Labels)
	buf := t.spare[:0]
	var d int32 // growth so far
	prevSeries, prevByte := 0, int32(0)
	for _, k := range changed {
		buf = append(buf, t.raw[prevByte:t.seriesOff[k]]...)
		t.shift(prevSeries, k, per, d)
		e.v1lbls = e.v1lbls[:0]
		b.Labels[k].Range(func(l labels.Label) { e.v1lbls = append(e.v1lbls, prompb.Label{Name: l.Name, Value: l.Value}) })
		ts := prompb.TimeSeries{Labels: e.v1lbls, Samples: b.Samples[k*per : (k+1)*per]}
		size := ts.Size()
		start := len(buf)
		buf = protowire.AppendTag(buf, 1, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(size))
		msgAt := len(buf)
		buf = slices.Grow(buf, size)[:msgAt+size]
		if _, err := ts.MarshalToSizedBuffer(buf[msgAt:]); err != nil {
			return fmt.Errorf("marshal series: %w", err)
		}
		j := k * per
		err := eachField(buf[msgAt:], msgAt, 2, func(smp []byte, at, _ int) error {
			if j == (k+1)*per {
				return errors.New("a series with more samples than the batch")
			}
			var err error
			t.valOff[j], t.tsOff[j], t.tsLen[j], err = parseSample(smp, at)
			j++
			return err
		})
		if err == nil && j != (k+1)*per {
			err = errors.New("a series with fewer samples than the batch")
		}
		if err != nil {
			return fmt.Errorf("index the spliced series: %w", err)
		}
		oldStart, oldEnd := t.seriesOff[k], t.seriesOff[k+1]
		t.seriesOff[k] = int32(start)
		d += int32(len(buf)-start) - (oldEnd - oldStart)
		prevSeries, prevByte = k+1, oldEnd
		t.labels[k], t.counter[k] = b.Labels[k], b.Counter[k]
	}
	buf = append(buf, t.raw[prevByte:]...)
	t.shift(prevSeries, n, per, d)
	t.seriesOff[n] += d // the end
	t.raw, t.spare = buf, t.raw
	return nil
}

// shift moves the offsets of series [from, to) and their samples by d.
func (t *template) shift(from, to, per int, d int32) {
	if d == 0 {
		return
	}
	for k := from; k < to; k++ {
		t.seriesOff[k] += d
	}
	for i := from * per; i < to*per; i++ {
		if t.valOff[i] >= 0 {
			t.valOff[i] += d
		}
		if t.tsOff[i] >= 0 {
			t.tsOff[i] += d
		}
	}
}

// eachField calls fn with the contents of every length-delimited field num
// of the message msg, found at offset base of the whole body: the contents,
// their offset and the offset of the field's tag.
func eachField(msg []byte, base int, num protowire.Number, fn func(field []byte, at, tagAt int) error) error {
	for off := 0; off < len(msg); {
		n, typ, tagLen := protowire.ConsumeTag(msg[off:])
		if tagLen < 0 {
			return protowire.ParseError(tagLen)
		}
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(msg[off+tagLen:])
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := fn(v, base+off+tagLen+l-len(v), base+off); err != nil {
				return err
			}
			off += tagLen + l
			continue
		}
		l := protowire.ConsumeFieldValue(n, typ, msg[off+tagLen:])
		if l < 0 {
			return protowire.ParseError(l)
		}
		off += tagLen + l
	}
	return nil
}

// indexSample records where the value and timestamp of the Sample message
// smp (at offset at of the body) are.
func (t *template) indexSample(smp []byte, at int) error {
	val, ts, tsLen, err := parseSample(smp, at)
	t.valOff, t.tsOff, t.tsLen = append(t.valOff, val), append(t.tsOff, ts), append(t.tsLen, tsLen)
	return err
}

// parseSample returns the offsets of the value and of the timestamp of the
// Sample message smp (at offset at of the body), -1 for an absent one, and
// the timestamp's length.
func parseSample(smp []byte, at int) (val, ts int32, tsLen uint8, err error) {
	val, ts = -1, -1
	for off := 0; off < len(smp); {
		n, typ, tagLen := protowire.ConsumeTag(smp[off:])
		if tagLen < 0 {
			return val, ts, tsLen, protowire.ParseError(tagLen)
		}
		l := protowire.ConsumeFieldValue(n, typ, smp[off+tagLen:])
		if l < 0 {
			return val, ts, tsLen, protowire.ParseError(l)
		}
		switch {
		case n == 1 && typ == protowire.Fixed64Type:
			val = int32(at + off + tagLen)
		case n == 2 && typ == protowire.VarintType:
			ts, tsLen = int32(at+off+tagLen), uint8(l)
		default:
			return val, ts, tsLen, errors.New("sample field other than value and timestamp")
		}
		off += tagLen + l
	}
	return val, ts, tsLen, nil
}

// patch writes b's samples into t's message in place, and reports false
// when a sample's encoded length differs from the template's (the caller
// encodes b from scratch). b's series must be t's.
func (t *template) patch(b *Batch) bool {
	raw := t.raw
	for i, s := range b.Samples {
		// proto3 leaves out zero fields: a sample's presence must match.
		if (s.Value != 0) != (t.valOff[i] >= 0) || (s.Timestamp != 0) != (t.tsOff[i] >= 0) {
			return false
		}
		if off := t.valOff[i]; off >= 0 {
			binary.LittleEndian.PutUint64(raw[off:], math.Float64bits(s.Value))
		}
		if off := t.tsOff[i]; off >= 0 {
			// A protobuf varint is binary's uvarint.
			u := uint64(s.Timestamp)
			if protowire.SizeVarint(u) != int(t.tsLen[i]) {
				return false
			}
			binary.PutUvarint(raw[off:], u)
		}
	}
	return true
}

func (e *Encoder) fillV1(b *Batch) {
	per := b.PerSeries()
	e.v1.Timeseries = e.v1.Timeseries[:0]
	e.v1lbls = e.v1lbls[:0]
	for i, ls := range b.Labels {
		start := len(e.v1lbls)
		ls.Range(func(l labels.Label) { e.v1lbls = append(e.v1lbls, prompb.Label{Name: l.Name, Value: l.Value}) })
		e.v1.Timeseries = append(e.v1.Timeseries, prompb.TimeSeries{
			Labels:  e.v1lbls[start:len(e.v1lbls):len(e.v1lbls)],
			Samples: b.Samples[i*per : (i+1)*per],
		})
	}
	// A grown label buffer moved earlier series' slices: point them again.
	off := 0
	for i := range e.v1.Timeseries {
		n := len(e.v1.Timeseries[i].Labels)
		e.v1.Timeseries[i].Labels = e.v1lbls[off : off+n : off+n]
		off += n
	}
}

func (e *Encoder) fillV2(b *Batch) {
	per := b.PerSeries()
	e.syms.Reset()
	e.v2.Timeseries = e.v2.Timeseries[:0]
	e.refs = e.refs[:0]
	e.v2smp = e.v2smp[:0]
	for _, s := range b.Samples {
		e.v2smp = append(e.v2smp, writev2.Sample{Value: s.Value, Timestamp: s.Timestamp})
	}
	offs := make([]int, 0, len(b.Labels)+1)
	for _, ls := range b.Labels {
		offs = append(offs, len(e.refs))
		ls.Range(func(l labels.Label) {
			e.refs = append(e.refs, e.syms.Symbolize(l.Name), e.syms.Symbolize(l.Value))
		})
	}
	offs = append(offs, len(e.refs))
	for i := range b.Labels {
		typ := writev2.Metadata_METRIC_TYPE_GAUGE
		if b.Counter[i] {
			typ = writev2.Metadata_METRIC_TYPE_COUNTER
		}
		e.v2.Timeseries = append(e.v2.Timeseries, writev2.TimeSeries{
			LabelsRefs: e.refs[offs[i]:offs[i+1]:offs[i+1]],
			Samples:    e.v2smp[i*per : (i+1)*per],
			Metadata:   writev2.Metadata{Type: typ},
		})
	}
	e.v2.Symbols = e.syms.Symbols()
}
