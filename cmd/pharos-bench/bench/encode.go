package bench

import (
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
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

// Encoder turns batches into snappy-compressed remote-write bodies. It
// reuses its buffers, so a body is valid until the next Encode; one
// goroutine uses an Encoder.
type Encoder struct {
	V2 bool

	v1     prompb.WriteRequest
	v1lbls []prompb.Label
	v2     writev2.Request
	syms   writev2.SymbolsTable
	refs   []uint32
	v2smp  []writev2.Sample
	raw    []byte
	comp   []byte
}

// NewEncoder returns an encoder for protocol 2.0 if v2, else 1.0.
func NewEncoder(v2 bool) *Encoder {
	return &Encoder{V2: v2, syms: writev2.NewSymbolTable()}
}

// Encode returns b as a compressed body, valid until the next call.
func (e *Encoder) Encode(b *Batch) ([]byte, error) {
	var size int
	if e.V2 {
		e.fillV2(b)
		size = e.v2.Size()
	} else {
		e.fillV1(b)
		size = e.v1.Size()
	}
	if cap(e.raw) < size {
		e.raw = make([]byte, size*5/4)
	}
	raw := e.raw[:size]
	var err error
	if e.V2 {
		_, err = e.v2.MarshalToSizedBuffer(raw)
	} else {
		_, err = e.v1.MarshalToSizedBuffer(raw)
	}
	if err != nil {
		return nil, err
	}
	e.comp = snappy.Encode(e.comp[:cap(e.comp)], raw)
	return e.comp, nil
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
