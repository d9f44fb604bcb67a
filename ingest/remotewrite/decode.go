package remotewrite

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

var (
	errTruncated = errors.New("truncated message")
	errWireType  = errors.New("wrong wire type")
)

// field reads one field header and, for length-delimited fields, its payload.
// For varint and fixed fields it returns the value in v.
func field(b []byte) (num protowire.Number, typ protowire.Type, v uint64, payload []byte, n int, err error) {
	num, typ, n = protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, nil, 0, fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
	}
	if num <= 0 {
		return 0, 0, 0, nil, 0, fmt.Errorf("bad field number %d", num)
	}
	b = b[n:]
	var m int
	switch typ {
	case protowire.VarintType:
		v, m = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		v, m = protowire.ConsumeFixed64(b)
	case protowire.Fixed32Type:
		var v32 uint32
		v32, m = protowire.ConsumeFixed32(b)
		v = uint64(v32)
	case protowire.BytesType:
		payload, m = protowire.ConsumeBytes(b)
	default:
		m = protowire.ConsumeFieldValue(num, typ, b)
	}
	if m < 0 {
		return 0, 0, 0, nil, 0, fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
	}
	return num, typ, v, payload, n + m, nil
}

func (r *Request) newSeries() *ingesterpb.TimeSeries {
	ts := r.series.next()
	ts.Labels, ts.Samples, ts.Histograms, ts.Exemplars, ts.StartTimestampMs = nil, nil, nil, nil, 0
	r.seriesPtrs = append(r.seriesPtrs, ts)
	return ts
}

func (r *Request) addLabel(name, value []byte) {
	l := r.labels.next()
	l.Name, l.Value = name, value
	r.labelPtrs = append(r.labelPtrs, l)
}

func (r *Request) addSample(ts int64, v float64) {
	s := r.samples.next()
	s.TimestampMs, s.Value = ts, v
	r.samplePtrs = append(r.samplePtrs, s)
}

// window returns the elements appended since start, capped so that an
// append to the window can never overwrite a neighbour's elements.
func window[T any](s []T, start int) []T {
	if len(s) == start {
		return nil
	}
	return s[start:len(s):len(s)]
}

func (r *Request) finishSeries() {
	r.Push.Series = r.seriesPtrs
	r.Push.Metadata = r.metaPtrs
}

// ---- remote write 1.0 ----

func (r *Request) decodeV1(b []byte) error {
	for len(b) > 0 {
		num, typ, _, payload, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return fmt.Errorf("timeseries: %w", errWireType)
			}
			if err := r.decodeV1Series(payload); err != nil {
				return fmt.Errorf("timeseries %d: %w", len(r.seriesPtrs), err)
			}
		case 3:
			if typ != protowire.BytesType {
				return fmt.Errorf("metadata: %w", errWireType)
			}
			if err := r.decodeV1Metadata(payload); err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
		}
	}
	r.finishSeries()
	return nil
}

func (r *Request) decodeV1Series(b []byte) error {
	ts := r.newSeries()
	l0, s0, h0, e0 := len(r.labelPtrs), len(r.samplePtrs), len(r.histPtrs), len(r.exemplarPtrs)
	// The span of the label fields, while they are contiguous (see
	// LabelSpans): lo and hi are offsets in whole.
	whole, lo, hi, contiguous := b, 0, 0, true
	span := func(at int) {
		if hi != at && hi != 0 {
			contiguous = false
		} else if hi == 0 {
			lo = at
		}
		hi = len(whole) - len(b)
	}
	for len(b) > 0 {
		// Fast path: a label (tag 0x0a) or sample (0x12) of less than 128
		// bytes, which is nearly every field of a series, without field's
		// general tag and length decoding. Anything else, a truncated
		// field included, takes the general path and its errors.
		if len(b) >= 2 && b[1] < 0x80 && (b[0] == 0x0a || b[0] == 0x12) && len(b) >= 2+int(b[1]) {
			payload := b[2 : 2+int(b[1])]
			tag := b[0]
			at := len(whole) - len(b)
			b = b[2+len(payload):]
			if tag == 0x0a {
				name, value, err := decodeLabel(payload)
				if err != nil {
					return fmt.Errorf("label: %w", err)
				}
				r.addLabel(name, value)
				span(at)
			} else if err := r.decodeSample(payload, nil); err != nil {
				return fmt.Errorf("sample: %w", err)
			}
			continue
		}
		at := len(whole) - len(b)
		num, typ, _, payload, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num > 4 {
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("field %d: %w", num, errWireType)
		}
		switch num {
		case 1:
			name, value, err := decodeLabel(payload)
			if err != nil {
				return fmt.Errorf("label: %w", err)
			}
			r.addLabel(name, value)
			span(at)
		case 2:
			if err := r.decodeSample(payload, nil); err != nil {
				return fmt.Errorf("sample: %w", err)
			}
		case 3:
			e := r.exemplars.next()
			e.Reset()
			if err := e.UnmarshalVT(payload); err != nil {
				return fmt.Errorf("exemplar: %w", err)
			}
			r.exemplarPtrs = append(r.exemplarPtrs, e)
		case 4:
			h := r.hists.next()
			h.Reset()
			if err := h.UnmarshalVT(payload); err != nil {
				return fmt.Errorf("histogram: %w", err)
			}
			r.histPtrs = append(r.histPtrs, h)
		}
	}
	ts.Labels = window(r.labelPtrs, l0)
	ts.Samples = window(r.samplePtrs, s0)
	ts.Histograms = window(r.histPtrs, h0)
	ts.Exemplars = window(r.exemplarPtrs, e0)
	var labelSpan []byte
	if contiguous && hi > lo {
		labelSpan = whole[lo:hi:hi]
	}
	r.labelSpans = append(r.labelSpans, labelSpan)
	return nil
}

// decodeLabel decodes a prometheus.Label {1: name, 2: value}.
func decodeLabel(b []byte) (name, value []byte, err error) {
	// Fastest path: how every encoder writes a label with a value.
	if v := ingesterpb.SplitShortLabelPair(b); v >= 0 {
		return b[2:v:v], b[v+2 : len(b) : len(b)], nil
	}
	for len(b) > 0 {
		// Fast path: one-byte tags 0x0a / 0x12 and one-byte lengths.
		if len(b) >= 2 && b[1] < 0x80 && (b[0] == 0x0a || b[0] == 0x12) {
			l := int(b[1])
			if len(b) < 2+l {
				return nil, nil, errTruncated
			}
			if b[0] == 0x0a {
				name = b[2 : 2+l : 2+l]
			} else {
				value = b[2 : 2+l : 2+l]
			}
			b = b[2+l:]
			continue
		}
		num, typ, _, payload, n, err := field(b)
		if err != nil {
			return nil, nil, err
		}
		b = b[n:]
		switch num {
		case 1, 2:
			if typ != protowire.BytesType {
				return nil, nil, errWireType
			}
			payload = payload[:len(payload):len(payload)]
			if num == 1 {
				name = payload
			} else {
				value = payload
			}
		}
	}
	return name, value, nil
}

// decodeSample decodes a 1.0 Sample {1: double value, 2: int64 timestamp} or
// a 2.0 Sample, which adds {3: int64 start_timestamp}; st receives the
// latter when non-nil.
func (r *Request) decodeSample(b []byte, st *int64) error {
	var ts int64
	var v float64
	for len(b) > 0 {
		// Fast path: value (tag 0x09, fixed64) then timestamp (tag 0x10, varint).
		if b[0] == 0x09 && len(b) >= 9 {
			v = math.Float64frombits(uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16 | uint64(b[4])<<24 |
				uint64(b[5])<<32 | uint64(b[6])<<40 | uint64(b[7])<<48 | uint64(b[8])<<56)
			b = b[9:]
			continue
		}
		if b[0] == 0x10 {
			x, n := protowire.ConsumeVarint(b[1:])
			if n < 0 {
				return protowire.ParseError(n)
			}
			ts = int64(x)
			b = b[1+n:]
			continue
		}
		num, typ, x, _, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case 1:
			if typ != protowire.Fixed64Type {
				return errWireType
			}
			v = math.Float64frombits(x)
		case 2:
			if typ != protowire.VarintType {
				return errWireType
			}
			ts = int64(x)
		case 3:
			if st != nil {
				if typ != protowire.VarintType {
					return errWireType
				}
				*st = int64(x)
			}
		}
	}
	r.addSample(ts, v)
	return nil
}

func (r *Request) decodeV1Metadata(b []byte) error {
	var (
		typ                uint64
		family, help, unit []byte
	)
	for len(b) > 0 {
		num, wt, x, payload, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case 1:
			if wt != protowire.VarintType {
				return errWireType
			}
			typ = x
		case 2, 4, 5:
			if wt != protowire.BytesType {
				return errWireType
			}
			switch num {
			case 2:
				family = payload
			case 4:
				help = payload
			case 5:
				unit = payload
			}
		}
	}
	r.addMetadata(typ, family, help, unit)
	return nil
}

// addMetadata records metadata unless it is empty, repeats an earlier entry's
// family or is not UTF-8 (metadata is advisory; a bad entry is dropped, not fatal).
func (r *Request) addMetadata(typ uint64, family, help, unit []byte) {
	if len(family) == 0 || typ > uint64(ingesterpb.MetricMetadata_STATESET) {
		return
	}
	// 2.0 repeats metadata on every series of a family: send it once, and
	// check it once.
	if _, ok := r.metaSeen[unsafeString(family)]; ok {
		return
	}
	if !utf8.Valid(family) || !utf8.Valid(help) || !utf8.Valid(unit) {
		return
	}
	if r.metaSeen == nil {
		r.metaSeen = map[string]struct{}{}
	}
	r.metaSeen[unsafeString(family)] = struct{}{}
	m := r.metadata.next()
	m.Type = ingesterpb.MetricMetadata_MetricType(typ)
	m.MetricFamilyName, m.Help, m.Unit = unsafeString(family), unsafeString(help), unsafeString(unit)
	r.metaPtrs = append(r.metaPtrs, m)
	r.Push.Metadata = r.metaPtrs
}

// unsafeString views b as a string without copying. Only for bytes of the
// request's own buffers, which outlive every use of Push.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// ---- remote write 2.0 ----

func (r *Request) decodeV2(b []byte) error {
	// Symbols come before timeseries in any sane encoder, but the wire format
	// does not promise it: collect them first.
	for rest := b; len(rest) > 0; {
		num, typ, _, payload, n, err := field(rest)
		if err != nil {
			return err
		}
		rest = rest[n:]
		if num == 4 {
			if typ != protowire.BytesType {
				return fmt.Errorf("symbols: %w", errWireType)
			}
			r.symbols = append(r.symbols, payload[:len(payload):len(payload)])
		}
	}
	if len(r.symbols) > 0 && len(r.symbols[0]) != 0 {
		return errors.New("symbols table must start with the empty string")
	}
	index := 0
	for len(b) > 0 {
		num, typ, _, payload, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num != 5 {
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("timeseries: %w", errWireType)
		}
		if err := r.decodeV2Series(payload, index); err != nil {
			return fmt.Errorf("timeseries %d: %w", index, err)
		}
		index++
	}
	r.finishSeries()
	// Sliced only now: keyBytes moved as it grew.
	lo := 0
	for _, hi := range r.keyEnds {
		if hi < 0 {
			r.labelSpans = append(r.labelSpans, nil)
			continue
		}
		r.labelSpans = append(r.labelSpans, r.keyBytes[lo:hi:hi])
		lo = hi
	}
	return nil
}

// appendKeyBytes encodes the labels of a 2.0 series as 1.0 label fields
// into keyBytes (see LabelSpans).
func (r *Request) appendKeyBytes(ls []*ingesterpb.LabelPair) {
	for _, l := range ls {
		if len(l.Value) == 0 {
			r.keyEnds = append(r.keyEnds, -1)
			return
		}
	}
	for _, l := range ls {
		r.keyBytes = ingesterpb.AppendLabelField(r.keyBytes, l.Name, l.Value)
	}
	r.keyEnds = append(r.keyEnds, len(r.keyBytes))
}

// symbol resolves a symbol reference; ok is false when it is out of range.
func (r *Request) symbol(ref uint64) ([]byte, bool) {
	if ref >= uint64(len(r.symbols)) {
		return nil, false
	}
	return r.symbols[ref], true
}

// shortVarint reads a varint of one or two bytes, which symbol references
// below 2^14 are: nearly all of them, a request having thousands of symbols,
// not millions. n is 0 for anything else, longer or truncated.
func shortVarint(b []byte) (x uint64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	if len(b) > 1 && b[1] < 0x80 {
		return uint64(b[0]&0x7f) | uint64(b[1])<<7, 2
	}
	return 0, 0
}

// refsError describes a label reference list that does not resolve.
type refsError struct {
	what   string
	nsyms  int
	odd    bool
	badRef uint64
}

func (e *refsError) Error() string {
	if e.odd {
		return fmt.Sprintf("%s: odd number of label references", e.what)
	}
	return fmt.Sprintf("%s: label reference %d outside of the symbols table (size %d)", e.what, e.badRef, e.nsyms)
}

// addLabelRefs resolves packed label references (name, value, name, ...)
// and appends the labels.
func (r *Request) addLabelRefs(packed []byte, what string) error {
	count := 0
	var name []byte
	for len(packed) > 0 {
		x, n := shortVarint(packed)
		if n == 0 {
			if x, n = protowire.ConsumeVarint(packed); n < 0 {
				return protowire.ParseError(n)
			}
		}
		packed = packed[n:]
		sym, ok := r.symbol(x)
		if !ok {
			return &refsError{what: what, nsyms: len(r.symbols), badRef: x}
		}
		if count%2 == 0 {
			name = sym
		} else {
			r.addLabel(name, sym)
		}
		count++
	}
	if count%2 != 0 {
		return &refsError{what: what, odd: true}
	}
	return nil
}

func (r *Request) decodeV2Series(b []byte, index int) error {
	ts := r.newSeries()
	l0, s0, h0, e0 := len(r.labelPtrs), len(r.samplePtrs), len(r.histPtrs), len(r.exemplarPtrs)
	var (
		refsErr        error
		unpackedRefs   []uint64
		meta           []byte
		start          int64
		nSamples, nHis int
	)
	for len(b) > 0 {
		// Fast path, as in decodeV1Series: packed label references (tag
		// 0x0a) or a sample (0x12) of less than 128 bytes, without field's
		// general decoding; anything else takes the general path below.
		if len(b) >= 2 && b[1] < 0x80 && (b[0] == 0x0a || b[0] == 0x12) && len(b) >= 2+int(b[1]) {
			payload := b[2 : 2+int(b[1])]
			tag := b[0]
			b = b[2+len(payload):]
			if tag == 0x0a {
				if refsErr == nil {
					refsErr = r.addLabelRefs(payload, "series labels")
				}
				continue
			}
			if err := r.decodeV2Sample(payload, &start); err != nil {
				return err
			}
			nSamples++
			continue
		}
		num, typ, x, payload, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case 1:
			switch typ {
			case protowire.BytesType:
				if refsErr == nil {
					refsErr = r.addLabelRefs(payload, "series labels")
				}
			case protowire.VarintType:
				unpackedRefs = append(unpackedRefs, x)
			default:
				return fmt.Errorf("labels_refs: %w", errWireType)
			}
		case 2:
			if typ != protowire.BytesType {
				return fmt.Errorf("sample: %w", errWireType)
			}
			if err := r.decodeV2Sample(payload, &start); err != nil {
				return err
			}
			nSamples++
		case 3:
			if typ != protowire.BytesType {
				return fmt.Errorf("histogram: %w", errWireType)
			}
			st, err := r.decodeV2Histogram(payload)
			if err != nil {
				return fmt.Errorf("histogram: %w", err)
			}
			if start == 0 {
				start = st
			}
			nHis++
		case 4:
			if typ != protowire.BytesType {
				return fmt.Errorf("exemplar: %w", errWireType)
			}
			// Decoded after the series labels, which must stay contiguous.
			r.pending = append(r.pending, payload)
		case 5:
			if typ != protowire.BytesType {
				return fmt.Errorf("metadata: %w", errWireType)
			}
			meta = payload
		}
	}
	if len(unpackedRefs) > 0 && refsErr == nil {
		// Rare: an encoder that does not pack repeated scalars.
		var packed []byte
		for _, x := range unpackedRefs {
			packed = protowire.AppendVarint(packed, x)
		}
		refsErr = r.addLabelRefs(packed, "series labels")
	}
	ts.Labels = window(r.labelPtrs, l0)
	for _, p := range r.pending {
		if err := r.decodeV2Exemplar(p); err != nil && refsErr == nil {
			refsErr = err
		}
	}
	clear(r.pending)
	r.pending = r.pending[:0]
	ts.Samples = window(r.samplePtrs, s0)
	ts.Histograms = window(r.histPtrs, h0)
	ts.Exemplars = window(r.exemplarPtrs, e0)
	ts.StartTimestampMs = start
	if refsErr == nil && nSamples == 0 && nHis == 0 {
		// "At least one element in samples or in histograms MUST be
		// provided": a series of exemplars alone (or of nothing) is
		// invalid in 2.0, and answered 400 as Prometheus's receiver does,
		// rather than accepted with its exemplars dropped for want of a
		// series to attach them to. 1.0 senders do send exemplars alone.
		refsErr = ErrNoSamples
	}
	if refsErr != nil {
		// Invalid series are reported, not fatal: the rest of the request
		// is still written, as the 2.0 spec's partial writes allow.
		inv := InvalidSeries{Index: index, Samples: nSamples, Histograms: nHis, Exemplars: len(ts.Exemplars), Err: refsErr}
		if refsErr == ErrNoSamples {
			// Its labels resolved: copied out of the slab, which the next
			// series reuses, for the error to name the series.
			for _, l := range ts.Labels {
				inv.Labels = append(inv.Labels, &ingesterpb.LabelPair{Name: l.Name, Value: l.Value})
			}
		}
		r.seriesPtrs = r.seriesPtrs[:len(r.seriesPtrs)-1]
		r.labelPtrs, r.samplePtrs, r.histPtrs, r.exemplarPtrs = r.labelPtrs[:l0], r.samplePtrs[:s0], r.histPtrs[:h0], r.exemplarPtrs[:e0]
		r.Invalid = append(r.Invalid, inv)
		return nil
	}
	if meta != nil {
		if err := r.decodeV2Metadata(meta, ts); err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
	}
	r.appendKeyBytes(ts.Labels)
	return nil
}

// decodeV2Sample decodes a 2.0 sample; start keeps the series' first
// non-zero start timestamp.
func (r *Request) decodeV2Sample(b []byte, start *int64) error {
	var st int64
	if err := r.decodeSample(b, &st); err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	if *start == 0 {
		*start = st
	}
	return nil
}

func (r *Request) decodeV2Exemplar(b []byte) error {
	e := r.exemplars.next()
	l0 := len(r.labelPtrs)
	e.Labels, e.Value, e.TimestampMs = nil, 0, 0
	var refsErr error
	var unpacked []byte
	for len(b) > 0 {
		num, typ, x, payload, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch num {
		case 1:
			switch typ {
			case protowire.BytesType:
				if refsErr == nil {
					refsErr = r.addLabelRefs(payload, "exemplar labels")
				}
			case protowire.VarintType:
				unpacked = protowire.AppendVarint(unpacked, x)
			default:
				return errWireType
			}
		case 2:
			if typ != protowire.Fixed64Type {
				return errWireType
			}
			e.Value = math.Float64frombits(x)
		case 3:
			if typ != protowire.VarintType {
				return errWireType
			}
			e.TimestampMs = int64(x)
		}
	}
	if unpacked != nil && refsErr == nil {
		refsErr = r.addLabelRefs(unpacked, "exemplar labels")
	}
	if refsErr != nil {
		r.labelPtrs = r.labelPtrs[:l0]
		return refsErr
	}
	e.Labels = window(r.labelPtrs, l0)
	r.exemplarPtrs = append(r.exemplarPtrs, e)
	return nil
}

// decodeV2Histogram decodes a 2.0 Histogram, which is the 1.0 (and
// ingesterpb) Histogram plus field 17, start_timestamp. Field 17 is cut out
// before unmarshalling so that it does not ride along as an unknown field.
func (r *Request) decodeV2Histogram(b []byte) (start int64, err error) {
	clean := b
	for rest, off := b, 0; len(rest) > 0; {
		num, typ, x, _, n, err := field(rest)
		if err != nil {
			return 0, err
		}
		if num == 17 {
			if typ != protowire.VarintType {
				return 0, errWireType
			}
			start = int64(x)
			r.scratch = append(append(r.scratch[:0], b[:off]...), b[off+n:]...)
			clean = r.scratch
			break
		}
		rest = rest[n:]
		off += n
	}
	h := r.hists.next()
	h.Reset()
	if err := h.UnmarshalVT(clean); err != nil {
		return 0, err
	}
	r.histPtrs = append(r.histPtrs, h)
	return start, nil
}

func (r *Request) decodeV2Metadata(b []byte, ts *ingesterpb.TimeSeries) error {
	var typ, helpRef, unitRef uint64
	for len(b) > 0 {
		// Fast path: type (tag 0x08), help_ref (0x18) or unit_ref (0x20)
		// of one or two bytes, without field's general decoding.
		if len(b) >= 2 && (b[0] == 0x08 || b[0] == 0x18 || b[0] == 0x20) {
			if x, n := shortVarint(b[1:]); n > 0 {
				switch b[0] {
				case 0x08:
					typ = x
				case 0x18:
					helpRef = x
				default:
					unitRef = x
				}
				b = b[1+n:]
				continue
			}
		}
		num, wt, x, _, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if num != 1 && num != 3 && num != 4 {
			continue
		}
		if wt != protowire.VarintType {
			return errWireType
		}
		switch num {
		case 1:
			typ = x
		case 3:
			helpRef = x
		case 4:
			unitRef = x
		}
	}
	help, ok1 := r.symbol(helpRef)
	unit, ok2 := r.symbol(unitRef)
	if !ok1 || !ok2 {
		// Metadata is advisory: drop it rather than the samples.
		return nil
	}
	if typ == 0 && len(help) == 0 && len(unit) == 0 {
		return nil
	}
	var family []byte
	for _, l := range ts.Labels {
		if string(l.Name) == "__name__" {
			family = l.Value
			break
		}
	}
	// 2.0 and ingesterpb number the metric types alike.
	r.addMetadata(typ, family, help, unit)
	return nil
}
