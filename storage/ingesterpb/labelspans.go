package ingesterpb

import (
	protohelpers "github.com/planetscale/vtprotobuf/protohelpers"
)

// LabelSpanPush marshals Req with the labels of its series copied from
// Spans instead of encoded from their messages. Spans[k], when not nil, is
// series k's TimeSeries.labels fields in wire form: what a remote-write
// 1.0 body holds, since its Label has a LabelPair's fields, and what the
// series' labels decode to. A distributor holds those bytes already;
// encoding 2000 series' labels again, for every push, was a fifth of its
// CPU. The bytes on the wire decode to the same request: the receiver
// cannot tell.
//
// Spans must have one entry per series of Req, and neither may change
// until marshalled.
type LabelSpanPush struct {
	Req   *PushRequest
	Spans [][]byte
}

// SizeVT is the marshalled size, as a vtprotobuf message's.
func (p LabelSpanPush) SizeVT() (n int) {
	m := p.Req
	for k, ts := range m.Series {
		if span := p.Spans[k]; span != nil {
			n += sizeField(seriesSizeWithSpan(ts, span))
		} else {
			n += sizeField(ts.SizeVT())
		}
	}
	return n + sizeRepeated(m.Metadata) + len(m.unknownFields)
}

// seriesSizeWithSpan is TimeSeries.SizeVT with span for the label fields.
func seriesSizeWithSpan(ts *TimeSeries, span []byte) int {
	n := len(span)
	for _, e := range ts.Samples { // every series has one: no generic call
		n += sizeField(e.SizeVT())
	}
	if len(ts.Histograms)+len(ts.Exemplars) > 0 { // rare: two generic calls a series were a tenth of the marshalling
		n += sizeRepeated(ts.Histograms) + sizeRepeated(ts.Exemplars)
	}
	if ts.StartTimestampMs != 0 {
		n += 1 + protohelpers.SizeOfVarint(uint64(ts.StartTimestampMs))
	}
	return n + len(ts.unknownFields)
}

// sizeField is the size of a length-delimited field of l bytes, its
// one-byte tag included.
func sizeField(l int) int { return 1 + l + protohelpers.SizeOfVarint(uint64(l)) }

// sizeRepeated is the size of a repeated message field, as the generated
// SizeVT methods count it.
func sizeRepeated[M interface{ SizeVT() int }](ms []M) (n int) {
	for _, m := range ms {
		n += sizeField(m.SizeVT())
	}
	return n
}

// MarshalToSizedBufferVT marshals into the end of dAtA, which must hold
// SizeVT bytes, as a vtprotobuf message does; it returns the bytes
// written. The fields are in the order PushRequest.MarshalVT writes them.
func (p LabelSpanPush) MarshalToSizedBufferVT(dAtA []byte) (int, error) {
	m := p.Req
	i := len(dAtA)
	i -= len(m.unknownFields)
	copy(dAtA[i:], m.unknownFields)
	i, err := marshalRepeated(dAtA, i, m.Metadata, 0x12)
	if err != nil {
		return 0, err
	}
	for k := len(m.Series) - 1; k >= 0; k-- {
		var size int
		if span := p.Spans[k]; span == nil {
			size, err = m.Series[k].MarshalToSizedBufferVT(dAtA[:i])
		} else {
			size, err = marshalSeriesWithSpan(m.Series[k], span, dAtA[:i])
		}
		if err != nil {
			return 0, err
		}
		i = prependField(dAtA, i-size, size, 0xa)
	}
	return len(dAtA) - i, nil
}

// marshalSeriesWithSpan is TimeSeries.MarshalToSizedBufferVT with span for
// the label fields.
func marshalSeriesWithSpan(m *TimeSeries, span, dAtA []byte) (int, error) {
	i := len(dAtA)
	i -= len(m.unknownFields)
	copy(dAtA[i:], m.unknownFields)
	if m.StartTimestampMs != 0 {
		i = protohelpers.EncodeVarint(dAtA, i, uint64(m.StartTimestampMs))
		i--
		dAtA[i] = 0x28
	}
	if len(m.Histograms)+len(m.Exemplars) > 0 { // rare: two generic calls a series were a tenth of the marshalling
		var err error
		if i, err = marshalRepeated(dAtA, i, m.Exemplars, 0x22); err != nil {
			return 0, err
		}
		if i, err = marshalRepeated(dAtA, i, m.Histograms, 0x1a); err != nil {
			return 0, err
		}
	}
	for k := len(m.Samples) - 1; k >= 0; k-- { // every series has one: no generic call
		size, err := m.Samples[k].MarshalToSizedBufferVT(dAtA[:i])
		if err != nil {
			return 0, err
		}
		i = prependField(dAtA, i-size, size, 0x12)
	}
	i -= len(span)
	copy(dAtA[i:], span)
	return len(dAtA) - i, nil
}

// marshalRepeated writes the messages of a repeated field, each under tag,
// into dAtA[:i] backwards, as the generated MarshalToSizedBufferVT methods
// do; it returns where the first one starts.
func marshalRepeated[M interface {
	MarshalToSizedBufferVT([]byte) (int, error)
}](dAtA []byte, i int, ms []M, tag byte) (int, error) {
	for k := len(ms) - 1; k >= 0; k-- {
		size, err := ms[k].MarshalToSizedBufferVT(dAtA[:i])
		if err != nil {
			return 0, err
		}
		i = prependField(dAtA, i-size, size, tag)
	}
	return i, nil
}

// prependField writes the tag and length of a field whose size bytes
// start at dAtA[i] in front of them, and returns where the field starts.
func prependField(dAtA []byte, i, size int, tag byte) int {
	i = protohelpers.EncodeVarint(dAtA, i, uint64(size))
	i--
	dAtA[i] = tag
	return i
}
