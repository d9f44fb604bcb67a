package querier

import (
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/mem"

	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// wireMessage receives one QueryStreamResponse as wire bytes, from gRPC
// (through ingesterclient.Codec) or from the in-process client, so that it
// is decoded once, into the querier's own series, instead of into the
// generated structs and then again.
type wireMessage struct{ data []byte }

// UnmarshalBuffers implements ingesterclient.BufferUnmarshaler: gRPC reuses
// its buffers, so the message is copied, once, into bytes the decoded series
// point into.
func (m *wireMessage) UnmarshalBuffers(data mem.BufferSlice) error {
	m.data = data.Materialize()
	return nil
}

// UnmarshalWire implements ingesterpb.WireUnmarshaler: the in-process
// client's bytes are the reader's already.
func (m *wireMessage) UnmarshalWire(b []byte) error {
	m.data = b
	return nil
}

var errTruncated = errors.New("truncated message")

// wireDecoder decodes QueryStreamResponse messages. chunks and bytes are
// what the last decoded message held, for the query's limits.
type wireDecoder struct {
	lb            labels.ScratchBuilder
	chunks, bytes int64
}

// decode decodes data into a batch whose chunks point into data, which must
// not change afterwards; labels are copied (one allocation per series).
// Unknown fields are skipped, as any protobuf decoder does.
func (d *wireDecoder) decode(data []byte, mint, maxt int64) (batch, error) {
	nseries, nchunks, err := countWire(data)
	if err != nil {
		return batch{}, fmt.Errorf("decode query stream response: %w", err)
	}
	b := batch{series: make([]series, 0, nseries)}
	chks := make([]chunk, 0, nchunks)
	d.chunks, d.bytes = int64(nchunks), 0
	for i := 0; i < len(data); {
		tag, field, next, err := readField(data, i)
		if err != nil {
			return batch{}, fmt.Errorf("decode query stream response: %w", err)
		}
		i = next
		switch tag {
		case ingesterpb.TagQueryStreamSeries:
			first := len(chks)
			lset, c, err := d.decodeSeries(field, chks)
			if err != nil {
				return batch{}, fmt.Errorf("decode query stream series %d: %w", len(b.series), err)
			}
			chks = c
			b.series = append(b.series, series{lset: lset, chunks: chks[first:len(chks):len(chks)], mint: mint, maxt: maxt})
		case ingesterpb.TagQueryStreamWarnings:
			b.warnings = append(b.warnings, string(field))
		}
	}
	return b, nil
}

func (d *wireDecoder) decodeSeries(data []byte, chks []chunk) (labels.Labels, []chunk, error) {
	d.lb.Reset()
	for i := 0; i < len(data); {
		tag, field, next, err := readField(data, i)
		if err != nil {
			return labels.EmptyLabels(), nil, err
		}
		i = next
		switch tag {
		case ingesterpb.TagChunkSeriesLabels:
			var name, value []byte
			for j := 0; j < len(field); {
				t, f, n, err := readField(field, j)
				if err != nil {
					return labels.EmptyLabels(), nil, fmt.Errorf("label: %w", err)
				}
				j = n
				switch t {
				case ingesterpb.TagLabelPairName:
					name = f
				case ingesterpb.TagLabelPairValue:
					value = f
				}
			}
			// Labels copies the strings; the views do not escape.
			d.lb.Add(bytesToString(name), bytesToString(value))
		case ingesterpb.TagChunkSeriesChunks:
			var c chunk
			for j := 0; j < len(field); {
				t, f, n, err := readField(field, j)
				if err != nil {
					return labels.EmptyLabels(), nil, fmt.Errorf("chunk: %w", err)
				}
				j = n
				switch t {
				case ingesterpb.TagChunkMinTime:
					c.minTime = int64(varintValue(f))
				case ingesterpb.TagChunkMaxTime:
					c.maxTime = int64(varintValue(f))
				case ingesterpb.TagChunkEncoding:
					c.encoding = uint32(varintValue(f))
				case ingesterpb.TagChunkData:
					c.data = f
				}
			}
			d.bytes += int64(len(c.data))
			chks = append(chks, c)
		}
	}
	return d.lb.Labels(), chks, nil
}

// countWire counts the series and chunks of a message, so that decode
// allocates each kind once.
func countWire(data []byte) (nseries, nchunks int, err error) {
	for i := 0; i < len(data); {
		tag, field, next, err := readField(data, i)
		if err != nil {
			return 0, 0, err
		}
		i = next
		if tag != ingesterpb.TagQueryStreamSeries {
			continue
		}
		nseries++
		for j := 0; j < len(field); {
			t, _, n, err := readField(field, j)
			if err != nil {
				return 0, 0, err
			}
			j = n
			if t == ingesterpb.TagChunkSeriesChunks {
				nchunks++
			}
		}
	}
	return nseries, nchunks, nil
}

// readField reads the field at data[i:]: its tag, its payload (the bytes
// of a length-delimited field; for a varint, the varint's own bytes, which
// varintValue reads), and where the next field starts.
func readField(data []byte, i int) (tag uint64, field []byte, next int, err error) {
	tag, i, err = readVarint(data, i)
	if err != nil {
		return 0, nil, 0, err
	}
	switch tag & 7 {
	case 0: // varint
		start := i
		if _, i, err = readVarint(data, i); err != nil {
			return 0, nil, 0, err
		}
		return tag, data[start:i], i, nil
	case 1: // 64 bits
		if len(data)-i < 8 {
			return 0, nil, 0, errTruncated
		}
		return tag, data[i : i+8], i + 8, nil
	case 2: // length-delimited
		var n uint64
		if n, i, err = readVarint(data, i); err != nil {
			return 0, nil, 0, err
		}
		if n > uint64(len(data)-i) {
			return 0, nil, 0, errTruncated
		}
		return tag, data[i : i+int(n)], i + int(n), nil
	case 5: // 32 bits
		if len(data)-i < 4 {
			return 0, nil, 0, errTruncated
		}
		return tag, data[i : i+4], i + 4, nil
	}
	return 0, nil, 0, fmt.Errorf("unsupported wire type %d", tag&7)
}

func readVarint(data []byte, i int) (uint64, int, error) {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= len(data) {
			return 0, 0, errTruncated
		}
		b := data[i]
		i++
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return x, i, nil
		}
	}
	return 0, 0, errors.New("varint overflows 64 bits")
}

// varintValue decodes a varint that readField has already checked.
func varintValue(b []byte) uint64 {
	var x uint64
	for k, c := range b {
		x |= uint64(c&0x7f) << (7 * uint(k))
	}
	return x
}
