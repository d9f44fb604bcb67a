package remotewrite

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/snappy"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Version is a remote-write protocol version.
type Version int

const (
	// V1 is remote write 1.0: prometheus.WriteRequest.
	V1 Version = 1
	// V2 is remote write 2.0: io.prometheus.write.v2.Request.
	V2 Version = 2
)

func (v Version) String() string {
	switch v {
	case V1:
		return "prometheus.WriteRequest"
	case V2:
		return "io.prometheus.write.v2.Request"
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

// Sentinel errors. Every error the package returns wraps exactly one of them,
// so that callers map errors to statuses with errors.Is.
var (
	// ErrUnsupportedMediaType: the Content-Type or Content-Encoding is not one
	// the protocol defines (HTTP 415).
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrTooLarge: the body, compressed or decompressed, is over the limit (HTTP 413).
	ErrTooLarge = errors.New("request too large")
	// ErrMalformed: the body is not a snappy block or not the protobuf message
	// its Content-Type announces (HTTP 400).
	ErrMalformed = errors.New("malformed request")
)

const appProtobuf = "application/x-protobuf"

// ParseContentType returns the protocol version announced by a Content-Type
// header. An empty header and a bare application/x-protobuf mean 1.0, as the
// 1.0 specification predates the proto parameter.
func ParseContentType(contentType string) (Version, error) {
	contentType = strings.TrimSpace(contentType)
	if contentType == "" {
		return V1, nil
	}
	media, params, _ := strings.Cut(contentType, ";")
	if !strings.EqualFold(strings.TrimSpace(media), appProtobuf) {
		return 0, fmt.Errorf("%w: content type %q, want %s", ErrUnsupportedMediaType, contentType, appProtobuf)
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			if strings.TrimSpace(p) == "" {
				continue
			}
			return 0, fmt.Errorf("%w: malformed parameter %q in content type %q", ErrUnsupportedMediaType, p, contentType)
		}
		if !strings.EqualFold(strings.TrimSpace(k), "proto") {
			continue
		}
		switch strings.Trim(strings.TrimSpace(v), `"`) {
		case V1.String():
			return V1, nil
		case V2.String():
			return V2, nil
		default:
			return 0, fmt.Errorf("%w: unknown proto %q in content type %q, want %s or %s", ErrUnsupportedMediaType, v, contentType, V1, V2)
		}
	}
	return V1, nil
}

// CheckContentEncoding accepts "snappy" (block format), which both versions
// require. An empty header is taken as snappy, as Prometheus's receiver does.
func CheckContentEncoding(enc string) error {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "", "snappy":
		return nil
	}
	return fmt.Errorf("%w: content encoding %q, only snappy is accepted", ErrUnsupportedMediaType, enc)
}

// ErrNoSamples is the error of an InvalidSeries that carried neither
// samples nor histograms.
var ErrNoSamples = errors.New("timeseries must contain at least one sample or histogram")

// InvalidSeries is a series of a 2.0 request that is left out of Push: its
// labels could not be resolved (bad symbol references), or it carried no
// sample and no histogram (Err is ErrNoSamples).
type InvalidSeries struct {
	// Index of the series in the request.
	Index int
	// Samples, Histograms and Exemplars the series carried.
	Samples, Histograms, Exemplars int
	// Labels of the series when they resolved (ErrNoSamples), else nil.
	// The pairs alias the request's buffers: valid until Release.
	Labels []*ingesterpb.LabelPair
	Err    error
}

// Request is one decoded remote-write request. Push aliases the Request's
// buffers: it stays valid until Release, and must not be handed to anything
// that keeps it longer (gRPC marshals it synchronously, which is fine). Do
// not put any of its messages back into the ingesterpb vtproto pools: their
// byte slices point into this Request's buffers.
type Request struct {
	Push ingesterpb.PushRequest
	// Invalid lists the 2.0 series that failed to decode. 1.0 has no
	// per-series decode failures.
	Invalid []InvalidSeries

	compressed []byte
	raw        []byte

	series    slab[ingesterpb.TimeSeries]
	labels    slab[ingesterpb.LabelPair]
	samples   slab[ingesterpb.Sample]
	hists     slab[ingesterpb.Histogram]
	exemplars slab[ingesterpb.Exemplar]
	metadata  slab[ingesterpb.MetricMetadata]

	// Pointer arrays: each series' slices are windows of these, so a series
	// costs no slice allocation of its own.
	seriesPtrs   []*ingesterpb.TimeSeries
	labelPtrs    []*ingesterpb.LabelPair
	samplePtrs   []*ingesterpb.Sample
	histPtrs     []*ingesterpb.Histogram
	exemplarPtrs []*ingesterpb.Exemplar
	metaPtrs     []*ingesterpb.MetricMetadata

	// labelSpans holds, per series of Push, the span of raw its label
	// fields take (1.0), or of keyBytes its labels were encoded into (2.0;
	// see LabelSpans).
	labelSpans [][]byte
	// keyBytes holds a 2.0 request's series' labels as 1.0 label fields,
	// keyEnds where each series' end (-1: none).
	keyBytes []byte
	keyEnds  []int

	symbols [][]byte // 2.0 symbol table, sub-slices of raw
	scratch []byte   // histogram re-encoding
	pending [][]byte // 2.0 exemplars of the series being decoded
	// metaSeen holds the families in Push.Metadata; keys alias raw.
	metaSeen map[string]struct{}
}

var requestPool = sync.Pool{New: func() any { return new(Request) }}

// NewRequest returns an empty Request from a pool.
func NewRequest() *Request { return requestPool.Get().(*Request) }

// maxPooledBuffer keeps one unusually large request from pinning its
// buffers in the pool forever.
const maxPooledBuffer = 64 << 20

// Release resets r and returns it to the pool. r must not be used afterwards.
func (r *Request) Release() {
	r.reset()
	if cap(r.compressed) > maxPooledBuffer || cap(r.raw) > maxPooledBuffer {
		return
	}
	requestPool.Put(r)
}

func (r *Request) reset() {
	r.Push.Series = r.seriesPtrs[:0]
	r.Push.Metadata = r.metaPtrs[:0]
	r.Invalid = r.Invalid[:0]
	r.compressed = r.compressed[:0]
	r.raw = r.raw[:0]
	r.series.reset()
	r.labels.reset()
	r.samples.reset()
	r.hists.reset()
	r.exemplars.reset()
	r.metadata.reset()
	r.seriesPtrs = r.seriesPtrs[:0]
	r.labelPtrs = r.labelPtrs[:0]
	r.samplePtrs = r.samplePtrs[:0]
	r.histPtrs = r.histPtrs[:0]
	r.exemplarPtrs = r.exemplarPtrs[:0]
	r.metaPtrs = r.metaPtrs[:0]
	clear(r.labelSpans) // drop references into raw
	r.labelSpans = r.labelSpans[:0]
	r.keyBytes, r.keyEnds = r.keyBytes[:0], r.keyEnds[:0]
	clear(r.metaSeen)
	clear(r.symbols) // drop references into raw
	r.symbols = r.symbols[:0]
}

// ReadBody reads a snappy-compressed body into r and decompresses it.
// sizeHint is the Content-Length (-1 if unknown). maxSize bounds both the
// compressed and the decompressed size; the decompressed size is checked
// from the snappy header before anything is decompressed.
func (r *Request) ReadBody(body io.Reader, sizeHint, maxSize int64) error {
	if sizeHint > maxSize {
		return fmt.Errorf("%w: body of %d bytes exceeds the limit of %d bytes", ErrTooLarge, sizeHint, maxSize)
	}
	want := 512
	if sizeHint > 0 {
		want = int(sizeHint) + 1 // +1 so that EOF is seen without growing
	}
	buf := r.compressed[:0]
	if cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > maxSize {
			r.compressed = buf
			return fmt.Errorf("%w: body exceeds the limit of %d bytes", ErrTooLarge, maxSize)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			r.compressed = buf
			return fmt.Errorf("%w: read body: %w", ErrMalformed, err)
		}
	}
	r.compressed = buf
	return r.decompress(maxSize)
}

// SetBody sets the compressed body directly, for callers that already hold it.
// r keeps a reference to compressed until Release.
func (r *Request) SetBody(compressed []byte, maxSize int64) error {
	if int64(len(compressed)) > maxSize {
		return fmt.Errorf("%w: body of %d bytes exceeds the limit of %d bytes", ErrTooLarge, len(compressed), maxSize)
	}
	r.compressed = compressed
	return r.decompress(maxSize)
}

func (r *Request) decompress(maxSize int64) error {
	if len(r.compressed) == 0 {
		// An empty body is a valid (empty) snappy block of an empty message.
		r.raw = r.raw[:0]
		return nil
	}
	n, err := snappy.DecodedLen(r.compressed)
	if err != nil {
		return fmt.Errorf("%w: body is not snappy block compressed: %w", ErrMalformed, err)
	}
	if int64(n) > maxSize {
		return fmt.Errorf("%w: decompressed body of %d bytes exceeds the limit of %d bytes", ErrTooLarge, n, maxSize)
	}
	if cap(r.raw) < n {
		r.raw = make([]byte, n)
	}
	raw, err := snappy.Decode(r.raw[:cap(r.raw)], r.compressed)
	if err != nil {
		return fmt.Errorf("%w: body is not snappy block compressed: %w", ErrMalformed, err)
	}
	r.raw = raw
	return nil
}

// Decode decodes the body read by ReadBody or SetBody as a message of
// version v into r.Push (and r.Invalid).
func (r *Request) Decode(v Version) error {
	return r.DecodeProto(v, r.raw)
}

// DecodeProto decodes an uncompressed protobuf message of version v. The
// result aliases data, which must not change until Release.
func (r *Request) DecodeProto(v Version, data []byte) error {
	var err error
	switch v {
	case V1:
		err = r.decodeV1(data)
	case V2:
		err = r.decodeV2(data)
	default:
		return fmt.Errorf("%w: unknown version %d", ErrUnsupportedMediaType, int(v))
	}
	if err != nil {
		r.reset()
		return fmt.Errorf("%w: decode %s: %w", ErrMalformed, v, err)
	}
	return nil
}

// LabelSpans returns, for each series of a request's Push, its labels as
// the label fields of a 1.0 TimeSeries (tags included). For 1.0 they are
// the bytes of the body the labels were decoded from, as they follow one
// another in the TimeSeries message; nil for a series whose label fields
// are not contiguous or that has none. A 1.0 Label has the encoding of
// ingester.proto's LabelPair, so the span is what an ingester keys known
// series by whenever the sender encoded the labels as Pharos's distributor
// does (sorted, without empty values, with the shortest lengths): see
// ingester's localClient.PushWithLabelSpans. 2.0's labels are symbol
// references, different in every request, so the decoder encodes each
// series' labels that way once (nil for a series with an empty value,
// which validation drops anyway). Valid until Release, and only while the
// series' labels are the ones decoded.
func (r *Request) LabelSpans() [][]byte {
	if len(r.labelSpans) != len(r.Push.Series) {
		return nil
	}
	return r.labelSpans
}

const slabBlock = 1024

// slab hands out pointers to T from fixed-size blocks that are kept across
// requests, so pointers stay valid while the slab grows and a warm slab
// allocates nothing.
type slab[T any] struct {
	blocks [][]T
	n      int
}

// next returns a T that may hold values from an earlier request: the caller
// sets every field it uses.
func (s *slab[T]) next() *T {
	b, i := s.n/slabBlock, s.n%slabBlock
	if b == len(s.blocks) {
		s.blocks = append(s.blocks, make([]T, slabBlock))
	}
	s.n++
	return &s.blocks[b][i]
}

func (s *slab[T]) reset() { s.n = 0 }
