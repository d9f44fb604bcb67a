package ingesterclient

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// vtMessage is what protoc-gen-go-vtproto generates for every message.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// BufferUnmarshaler is implemented by messages that decode straight from
// gRPC's receive buffers, e.g. into a buffer of their own that outlives the
// call (the ingester's Push request). Codec prefers it over vtMessage.
// UnmarshalBuffers must not keep data, nor anything aliasing it, after it
// returns: gRPC reuses the buffers.
type BufferUnmarshaler interface {
	UnmarshalBuffers(data mem.BufferSlice) error
}

// Codec is a gRPC encoding.CodecV2 for vtprotobuf-generated messages. It
// marshals straight into gRPC's pooled buffers and unmarshals without the
// reflection that the default proto codec uses. It is named "proto" so that it
// is wire compatible with any other proto peer.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMessage)
	if !ok {
		return nil, fmt.Errorf("ingesterclient codec: cannot marshal %T: not a vtprotobuf message", v)
	}
	size := m.SizeVT()
	pool := mem.DefaultBufferPool()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	bufp := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT(*bufp); err != nil {
		pool.Put(bufp)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(bufp, pool)}, nil
}

// Unmarshal implements encoding.CodecV2. The message copies what it keeps, so
// data may be freed by gRPC once Unmarshal returns.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if bu, ok := v.(BufferUnmarshaler); ok {
		return bu.UnmarshalBuffers(data)
	}
	m, ok := v.(vtMessage)
	if !ok {
		return fmt.Errorf("ingesterclient codec: cannot unmarshal into %T: not a vtprotobuf message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return m.UnmarshalVT(buf.ReadOnlyData())
}

// Name implements encoding.CodecV2.
func (Codec) Name() string { return "proto" }
