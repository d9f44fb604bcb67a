package ingesterclient

import (
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// vtMessage is what protoc-gen-go-vtproto generates for every message.
type vtMessage interface {
	vtMarshaler
	UnmarshalVT([]byte) error
}

// vtMarshaler is what Marshal needs of a message: vtprotobuf's sizing and
// marshalling, which ingesterpb.LabelSpanPush has too.
type vtMarshaler interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
}

// BufferUnmarshaler is implemented by messages that decode straight from
// gRPC's receive buffers, e.g. into a buffer of their own that outlives the
// call (the ingester's Push request). Codec prefers it over vtMessage.
// UnmarshalBuffers must not keep data, nor anything aliasing it, after it
// returns: gRPC reuses the buffers.
type BufferUnmarshaler interface {
	UnmarshalBuffers(data mem.BufferSlice) error
}

// Encoded is implemented by messages that are already in wire form, such as
// a query stream batch the ingester encodes straight from the tsdb. Codec
// sends the Buffer as it is; gRPC frees it once written, so it must be the
// message's to give away (a fresh Buffer each call).
type Encoded interface {
	EncodedBuffer() mem.Buffer
}

// Codec is a gRPC encoding.CodecV2 for vtprotobuf-generated messages. It
// marshals straight into gRPC's pooled buffers and unmarshals without the
// reflection that the default proto codec uses. It is named "proto" so that it
// is wire compatible with any other proto peer.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(Encoded); ok {
		return mem.BufferSlice{e.EncodedBuffer()}, nil
	}
	pool := buffers
	small, pooled, err := marshalVT(v, pool)
	if err != nil {
		return nil, err
	}
	if pooled == nil {
		return mem.BufferSlice{mem.SliceBuffer(small)}, nil
	}
	return mem.BufferSlice{mem.NewBuffer(pooled, pool)}, nil
}

// marshalVT marshals v, a vtprotobuf message, into a plain slice when it is
// below gRPC's pooling threshold (small), else into a buffer from pool
// (pooled), which the caller owns and must return to pool.
func marshalVT(v any, pool mem.BufferPool) (small []byte, pooled *[]byte, err error) {
	m, ok := v.(vtMarshaler)
	if !ok {
		return nil, nil, fmt.Errorf("ingesterclient codec: cannot marshal %T: not a vtprotobuf message", v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		// mem.NewBuffer would not pool (nor count references to) so small
		// a slice anyway: it returns it as a SliceBuffer.
		small = make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(small); err != nil {
			return nil, nil, fmt.Errorf("ingesterclient codec: marshal %T: %w", v, err)
		}
		return small, nil, nil
	}
	pooled = pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT(*pooled); err != nil {
		pool.Put(pooled)
		return nil, nil, fmt.Errorf("ingesterclient codec: marshal %T: %w", v, err)
	}
	return nil, pooled, nil
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
	buf := data.MaterializeToBuffer(buffers)
	defer buf.Free()
	return m.UnmarshalVT(buf.ReadOnlyData())
}

// Name implements encoding.CodecV2.
func (Codec) Name() string { return "proto" }

// Shared is a message that several calls send, marshalled once for all of
// them: a distributor pushes the same request to every replica, and each
// gRPC call would otherwise marshal it anew. Pass CallOption to every call
// that sends the message, and call Release once they have all returned.
// The bytes on the wire are Codec's, so the receiver sees an ordinary
// message.
//
// The first call to marshal the message does it; the others get a
// reference to the same bytes. gRPC frees what Marshal returns once it has
// written it (or given up on retrying it), so each call gets a Buffer of
// its own over the shared bytes, counted, and the bytes go back to the pool
// when the last call and Release have let go. Nothing is marshalled when no
// call reaches the codec (a client that is not a gRPC connection).
type Shared struct {
	msg  any
	enc  any            // what is marshalled in msg's place: msg, or see NewSharedAs
	pool mem.BufferPool // where the bytes come from and go back to

	mu       sync.Mutex
	done     bool // marshalled, or failed to
	err      error
	small    []byte       // a message below gRPC's pooling threshold: not counted
	bytes    *sharedBytes // otherwise: pooled and counted; nil after Release
	released bool
}

// NewShared returns msg, a vtprotobuf message, to be marshalled at most once.
// msg must not change until Release.
func NewShared(msg any) *Shared {
	return NewSharedAs(msg, msg)
}

// NewSharedAs is NewShared for a message sent as enc, a vtprotobuf message
// whose bytes decode to msg (ingesterpb.LabelSpanPush): the calls pass msg,
// and enc is what is marshalled, once. If a call marshals after Release,
// msg is marshalled instead, so enc need not outlive Release.
func NewSharedAs(msg, enc any) *Shared {
	return &Shared{msg: msg, enc: enc, pool: buffers}
}

// CallOption makes a call marshal the message through s. Other messages of
// the call (the response) go through Codec.
func (s *Shared) CallOption() grpc.CallOption { return grpc.ForceCodecV2(sharedCodec{s}) }

// Release drops the caller's reference to the marshalled bytes. Calls still
// holding theirs keep the bytes alive; a call that marshals after Release
// marshals anew.
func (s *Shared) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	if s.bytes != nil {
		s.bytes.unref()
		s.bytes = nil
	}
	s.small = nil
}

// marshal returns a new reference to the message's bytes, marshalling them
// on the first call.
func (s *Shared) marshal() (mem.BufferSlice, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return Codec{}.Marshal(s.msg)
	}
	if !s.done {
		s.done = true
		s.small, s.bytes, s.err = s.marshalOnce()
	}
	if s.err != nil {
		return nil, s.err
	}
	if s.bytes == nil {
		return mem.BufferSlice{mem.SliceBuffer(s.small)}, nil
	}
	s.bytes.refs.Add(1)
	// A Buffer of the call's own (mem.Buffers are not safe for concurrent
	// use: readers advance them in place), over the shared bytes; its Free
	// comes back to sharedBytes.Put.
	return mem.BufferSlice{mem.NewBuffer(s.bytes.data, s.bytes)}, nil
}

func (s *Shared) marshalOnce() ([]byte, *sharedBytes, error) {
	small, pooled, err := marshalVT(s.enc, s.pool)
	if err != nil || pooled == nil {
		return small, nil, err
	}
	b := &sharedBytes{data: pooled, pool: s.pool}
	b.refs.Store(1) // Release's
	return nil, b, nil
}

// sharedBytes counts the references to a Shared's pooled bytes. It is the
// mem.BufferPool of the Buffers handed to calls, so that freeing one of
// them drops a reference instead of pooling bytes other calls still read.
type sharedBytes struct {
	refs atomic.Int32
	data *[]byte
	pool mem.BufferPool
}

// Get implements mem.BufferPool; mem only calls Put on a Buffer's pool.
func (b *sharedBytes) Get(n int) *[]byte { return b.pool.Get(n) }

// Put implements mem.BufferPool: a call freed its Buffer.
func (b *sharedBytes) Put(*[]byte) { b.unref() }

func (b *sharedBytes) unref() {
	switch n := b.refs.Add(-1); {
	case n == 0:
		b.pool.Put(b.data)
	case n < 0:
		panic("ingesterclient: shared message bytes freed more often than referenced")
	}
}

// sharedCodec marshals its Shared message through it, anything else as
// Codec does.
type sharedCodec struct{ s *Shared }

func (c sharedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if v == c.s.msg {
		return c.s.marshal()
	}
	return Codec{}.Marshal(v)
}

func (sharedCodec) Unmarshal(data mem.BufferSlice, v any) error { return Codec{}.Unmarshal(data, v) }

// Name is Codec's: the call's content subtype stays "proto".
func (sharedCodec) Name() string { return Codec{}.Name() }
