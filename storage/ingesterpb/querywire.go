package ingesterpb

import (
	"math/bits"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/mem"
)

// Protobuf tags (field number << 3 | wire type: 0 varint, 2 length
// delimited) of the QueryStreamResponse family of messages, which
// QueryStreamEncoder writes and queriers read without going through the
// generated structs.
const (
	TagQueryStreamSeries   = 1<<3 | 2 // QueryStreamResponse.series
	TagQueryStreamWarnings = 2<<3 | 2 // QueryStreamResponse.warnings
	TagChunkSeriesLabels   = 1<<3 | 2 // ChunkSeries.labels
	TagChunkSeriesChunks   = 2<<3 | 2 // ChunkSeries.chunks
	TagLabelPairName       = 1<<3 | 2
	TagLabelPairValue      = 2<<3 | 2
	TagTimeSeriesLabels    = 1<<3 | 2 // TimeSeries.labels, which PushRequest carries
	TagChunkMinTime        = 1 << 3
	TagChunkMaxTime        = 2 << 3
	TagChunkEncoding       = 3 << 3
	TagChunkData           = 4<<3 | 2
)

// WireChunk is one chunk as QueryStreamEncoder takes it: Data is read only
// while the series is added, so it may alias the tsdb's memory.
type WireChunk struct {
	MinTimeMs, MaxTimeMs int64
	Encoding             uint32
	Data                 []byte
}

// QueryStreamEncoder writes a QueryStreamResponse in wire form, series by
// series, straight from the tsdb's labels and chunk bytes: building the
// generated structs first and then marshalling them would copy every chunk
// twice. The bytes are exactly what MarshalVT makes of the same message, so
// any client decodes them.
type QueryStreamEncoder struct {
	buf    []byte
	series int
}

// Reset starts a new message, written into buf's spare capacity.
func (e *QueryStreamEncoder) Reset(buf []byte) {
	e.buf = buf[:0]
	e.series = 0
}

// Bytes returns the message so far. It aliases the buffer given to Reset
// (or a larger one once that filled up).
func (e *QueryStreamEncoder) Bytes() []byte { return e.buf }

// Len is the size of the message so far.
func (e *QueryStreamEncoder) Len() int { return len(e.buf) }

// Series is how many series the message holds.
func (e *QueryStreamEncoder) Series() int { return e.series }

// AddSeries appends a series with ls, without the label named omit (the
// tenant label, which clients never see), and chks.
func (e *QueryStreamEncoder) AddSeries(ls labels.Labels, omit string, chks []WireChunk) {
	body := 0
	ls.Range(func(l labels.Label) {
		if l.Name != omit {
			body += lenField(labelPairSize(l.Name, l.Value))
		}
	})
	for i := range chks {
		body += lenField(chunkSize(&chks[i]))
	}
	b := e.buf
	b = append(b, TagQueryStreamSeries)
	b = appendVarint(b, uint64(body))
	ls.Range(func(l labels.Label) {
		if l.Name == omit {
			return
		}
		b = append(b, TagChunkSeriesLabels)
		b = appendVarint(b, uint64(labelPairSize(l.Name, l.Value)))
		if len(l.Name) > 0 {
			b = append(b, TagLabelPairName)
			b = appendVarint(b, uint64(len(l.Name)))
			b = append(b, l.Name...)
		}
		if len(l.Value) > 0 {
			b = append(b, TagLabelPairValue)
			b = appendVarint(b, uint64(len(l.Value)))
			b = append(b, l.Value...)
		}
	})
	for i := range chks {
		c := &chks[i]
		b = append(b, TagChunkSeriesChunks)
		b = appendVarint(b, uint64(chunkSize(c)))
		if c.MinTimeMs != 0 {
			b = append(b, TagChunkMinTime)
			b = appendVarint(b, uint64(c.MinTimeMs))
		}
		if c.MaxTimeMs != 0 {
			b = append(b, TagChunkMaxTime)
			b = appendVarint(b, uint64(c.MaxTimeMs))
		}
		if c.Encoding != 0 {
			b = append(b, TagChunkEncoding)
			b = appendVarint(b, uint64(c.Encoding))
		}
		if len(c.Data) > 0 {
			b = append(b, TagChunkData)
			b = appendVarint(b, uint64(len(c.Data)))
			b = append(b, c.Data...)
		}
	}
	e.buf = b
	e.series++
}

// AddWarnings appends warnings; they follow every series, as MarshalVT
// orders fields by number.
func (e *QueryStreamEncoder) AddWarnings(ws []string) {
	for _, w := range ws {
		e.buf = append(e.buf, TagQueryStreamWarnings)
		e.buf = appendVarint(e.buf, uint64(len(w)))
		e.buf = append(e.buf, w...)
	}
}

func labelPairSize(name, value string) int {
	n := 0
	if len(name) > 0 {
		n += lenField(len(name))
	}
	if len(value) > 0 {
		n += lenField(len(value))
	}
	return n
}

func chunkSize(c *WireChunk) int {
	n := 0
	if c.MinTimeMs != 0 {
		n += 1 + varintSize(uint64(c.MinTimeMs))
	}
	if c.MaxTimeMs != 0 {
		n += 1 + varintSize(uint64(c.MaxTimeMs))
	}
	if c.Encoding != 0 {
		n += 1 + varintSize(uint64(c.Encoding))
	}
	if len(c.Data) > 0 {
		n += lenField(len(c.Data))
	}
	return n
}

// lenField is the size of a length-delimited field with a one-byte tag.
func lenField(n int) int { return 1 + varintSize(uint64(n)) + n }

func varintSize(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func appendVarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

// EncodedQueryStreamResponse is a QueryStreamResponse in wire form, as
// QueryStreamEncoder wrote it, sent with a stream's SendMsg: the gRPC codec
// (ingesterclient.Codec) writes the bytes as they are, and the in-process
// client hands them to the reader. Either way Buf is given away with the
// message: gRPC returns it to Pool once written (a nil Pool: to the garbage
// collector), the in-process reader keeps it.
type EncodedQueryStreamResponse struct {
	Buf  *[]byte
	Pool mem.BufferPool
}

// EncodedBuffer implements ingesterclient.Encoded.
func (m *EncodedQueryStreamResponse) EncodedBuffer() mem.Buffer {
	if m.Pool == nil {
		return mem.SliceBuffer(*m.Buf)
	}
	return mem.NewBuffer(m.Buf, m.Pool)
}

// WireUnmarshaler is implemented by messages that decode from wire bytes
// they may keep: b is theirs, nobody writes it again. The in-process client
// hands encoded messages to them without a copy.
type WireUnmarshaler interface {
	UnmarshalWire(b []byte) error
}
