package ingesterclient

import (
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
)

// Compression names accepted by Config.Compression, besides "" (none) and
// "gzip", which gRPC ships itself.
const (
	CompressionSnappy = "snappy"
	CompressionS2     = "s2"
	CompressionZstd   = "zstd"
)

// gRPC keeps compressors in a process-wide registry; registering ours once,
// here, is one of the two globals this package has (buffers is the other).
func init() {
	encoding.RegisterCompressor(&snappyCompressor{})
	encoding.RegisterCompressor(&s2Compressor{})
	encoding.RegisterCompressor(newZstdCompressor())
}

type snappyCompressor struct {
	writers, readers sync.Pool
}

func (*snappyCompressor) Name() string { return CompressionSnappy }

func (c *snappyCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	sw, ok := c.writers.Get().(*snappy.Writer)
	if !ok {
		sw = snappy.NewBufferedWriter(w)
	} else {
		sw.Reset(w)
	}
	return &pooledWriter{WriteCloser: sw, put: func() { c.writers.Put(sw) }}, nil
}

func (c *snappyCompressor) Decompress(r io.Reader) (io.Reader, error) {
	sr, ok := c.readers.Get().(*snappy.Reader)
	if !ok {
		sr = snappy.NewReader(r)
	} else {
		sr.Reset(r)
	}
	return &pooledReader{Reader: sr, put: func() { c.readers.Put(sr) }}, nil
}

type s2Compressor struct {
	writers, readers sync.Pool
}

func (*s2Compressor) Name() string { return CompressionS2 }

func (c *s2Compressor) Compress(w io.Writer) (io.WriteCloser, error) {
	sw, ok := c.writers.Get().(*s2.Writer)
	if !ok {
		sw = s2.NewWriter(w, s2.WriterConcurrency(1))
	} else {
		sw.Reset(w)
	}
	return &pooledWriter{WriteCloser: sw, put: func() { c.writers.Put(sw) }}, nil
}

func (c *s2Compressor) Decompress(r io.Reader) (io.Reader, error) {
	sr, ok := c.readers.Get().(*s2.Reader)
	if !ok {
		sr = s2.NewReader(r)
	} else {
		sr.Reset(r)
	}
	return &pooledReader{Reader: sr, put: func() { c.readers.Put(sr) }}, nil
}

type zstdCompressor struct {
	writers, readers sync.Pool
}

func newZstdCompressor() *zstdCompressor { return &zstdCompressor{} }

func (*zstdCompressor) Name() string { return CompressionZstd }

func (c *zstdCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	zw, ok := c.writers.Get().(*zstd.Encoder)
	if !ok {
		var err error
		zw, err = zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
	} else {
		zw.Reset(w)
	}
	return &pooledWriter{WriteCloser: zw, put: func() { c.writers.Put(zw) }}, nil
}

func (c *zstdCompressor) Decompress(r io.Reader) (io.Reader, error) {
	zr, ok := c.readers.Get().(*zstd.Decoder)
	if !ok {
		var err error
		zr, err = zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
	} else if err := zr.Reset(r); err != nil {
		return nil, err
	}
	return &pooledReader{Reader: zr, put: func() { c.readers.Put(zr) }}, nil
}

// pooledWriter returns its writer to the pool on Close, after flushing it.
type pooledWriter struct {
	io.WriteCloser
	put func()
}

func (w *pooledWriter) Close() error {
	err := w.WriteCloser.Close()
	w.put()
	return err
}

// pooledReader returns its reader to the pool once the stream is drained.
type pooledReader struct {
	io.Reader
	put  func()
	done bool
}

func (r *pooledReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	n, err := r.Reader.Read(p)
	if err == io.EOF {
		r.done = true
		r.put()
	}
	return n, err
}
