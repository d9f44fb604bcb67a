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
		l := p.seriesSize(k, ts)
		n += 1 + l + protohelpers.SizeOfVarint(uint64(l))
	}
	for _, e := range m.Metadata {
		l := e.SizeVT()
		n += 1 + l + protohelpers.SizeOfVarint(uint64(l))
	}
	return n + len(m.unknownFields)
}

func (p LabelSpanPush) seriesSize(k int, ts *TimeSeries) int {
	span := p.Spans[k]
	if span == nil {
		return ts.SizeVT()
	}
	n := len(span)
	for _, e := range ts.Samples {
		l := e.SizeVT()
		n += 1 + l + protohelpers.SizeOfVarint(uint64(l))
	}
	for _, e := range ts.Histograms {
		l := e.SizeVT()
		n += 1 + l + protohelpers.SizeOfVarint(uint64(l))
	}
	for _, e := range ts.Exemplars {
		l := e.SizeVT()
		n += 1 + l + protohelpers.SizeOfVarint(uint64(l))
	}
	if ts.StartTimestampMs != 0 {
		n += 1 + protohelpers.SizeOfVarint(uint64(ts.StartTimestampMs))
	}
	return n + len(ts.unknownFields)
}

// MarshalToSizedBufferVT marshals into the end of dAtA, which must hold
// SizeVT bytes, as a vtprotobuf message does; it returns the bytes
// written. The fields are in the order PushRequest.MarshalVT writes them.
func (p LabelSpanPush) MarshalToSizedBufferVT(dAtA []byte) (int, error) {
	m := p.Req
	i := len(dAtA)
	i -= len(m.unknownFields)
	copy(dAtA[i:], m.unknownFields)
	for k := len(m.Metadata) - 1; k >= 0; k-- {
		size, err := m.Metadata[k].MarshalToSizedBufferVT(dAtA[:i])
		if err != nil {
			return 0, err
		}
		i -= size
		i = protohelpers.EncodeVarint(dAtA, i, uint64(size))
		i--
		dAtA[i] = 0x12
	}
	for k := len(m.Series) - 1; k >= 0; k-- {
		var size int
		var err error
		if span := p.Spans[k]; span == nil {
			size, err = m.Series[k].MarshalToSizedBufferVT(dAtA[:i])
		} else {
			size, err = marshalSeriesWithSpan(m.Series[k], span, dAtA[:i])
		}
		if err != nil {
			return 0, err
		}
		i -= size
		i = protohelpers.EncodeVarint(dAtA, i, uint64(size))
		i--
		dAtA[i] = 0xa
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
	for k := len(m.Exemplars) - 1; k >= 0; k-- {
		size, err := m.Exemplars[k].MarshalToSizedBufferVT(dAtA[:i])
		if err != nil {
			return 0, err
		}
		i -= size
		i = protohelpers.EncodeVarint(dAtA, i, uint64(size))
		i--
		dAtA[i] = 0x22
	}
	for k := len(m.Histograms) - 1; k >= 0; k-- {
		size, err := m.Histograms[k].MarshalToSizedBufferVT(dAtA[:i])
		if err != nil {
			return 0, err
		}
		i -= size
		i = protohelpers.EncodeVarint(dAtA, i, uint64(size))
		i--
		dAtA[i] = 0x1a
	}
	for k := len(m.Samples) - 1; k >= 0; k-- {
		size, err := m.Samples[k].MarshalToSizedBufferVT(dAtA[:i])
		if err != nil {
			return 0, err
		}
		i -= size
		i = protohelpers.EncodeVarint(dAtA, i, uint64(size))
		i--
		dAtA[i] = 0x12
	}
	i -= len(span)
	copy(dAtA[i:], span)
	return len(dAtA) - i, nil
}
