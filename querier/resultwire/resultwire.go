package resultwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// ContentType is the MIME type the frontend accepts and the codec emits.
const ContentType = "application/vnd.pharos.query-result.v1"

// Result types, as the API names them.
const (
	Vector = "vector"
	Matrix = "matrix"
)

// Result is a decoded answer.
type Result struct {
	Type            string // Vector or Matrix
	Warnings, Infos []string
	Series          []Series
}

// Series is one series of an answer; a vector's has one point.
type Series struct {
	Labels labels.Labels
	Points []Point
}

// Point is one float sample.
type Point struct {
	T int64 // milliseconds
	V float64
}

// Codec encodes answers for v1.API.InstallCodec.
type Codec struct{}

var _ v1.Codec = Codec{}

// ContentType implements v1.Codec.
func (Codec) ContentType() v1.MIMEType {
	return v1.MIMEType{Type: "application", SubType: "vnd.pharos.query-result.v1"}
}

// CanEncode implements v1.Codec: successful vectors and matrices of float
// samples without statistics.
func (Codec) CanEncode(resp *v1.Response) bool {
	if resp.Status != "success" {
		return false
	}
	qd, ok := resp.Data.(*v1.QueryData)
	if !ok || qd.Stats != nil {
		return false
	}
	switch r := qd.Result.(type) {
	case promql.Vector:
		for _, s := range r {
			if s.H != nil {
				return false
			}
		}
		return true
	case promql.Matrix:
		for _, s := range r {
			if len(s.Histograms) > 0 {
				return false
			}
		}
		return true
	}
	return false
}

const (
	tagVector byte = 1
	tagMatrix byte = 2
)

// Encode implements v1.Codec. Layout, integers as uvarints unless said:
// type byte, warnings and infos (count, then strings), series count, and
// per series its labels (count, then name and value strings) and points
// (count, then per point the timestamp as a varint delta from the
// previous one and the value's 8 bytes, little endian).
func (Codec) Encode(resp *v1.Response) ([]byte, error) {
	qd, ok := resp.Data.(*v1.QueryData)
	if !ok {
		return nil, fmt.Errorf("resultwire: cannot encode %T", resp.Data)
	}
	var b []byte
	switch r := qd.Result.(type) {
	case promql.Vector:
		b = appendHeader(make([]byte, 0, 64+len(r)*64), tagVector, resp)
		b = binary.AppendUvarint(b, uint64(len(r)))
		for _, s := range r {
			b = appendLabels(b, s.Metric)
			b = binary.AppendUvarint(b, 1)
			b = binary.AppendVarint(b, s.T)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.F))
		}
	case promql.Matrix:
		n := 0
		for _, s := range r {
			n += len(s.Floats)
		}
		b = appendHeader(make([]byte, 0, 64+len(r)*64+n*10), tagMatrix, resp)
		b = binary.AppendUvarint(b, uint64(len(r)))
		for _, s := range r {
			b = appendLabels(b, s.Metric)
			b = binary.AppendUvarint(b, uint64(len(s.Floats)))
			var prev int64
			for _, p := range s.Floats {
				b = binary.AppendVarint(b, p.T-prev)
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.F))
				prev = p.T
			}
		}
	default:
		return nil, fmt.Errorf("resultwire: cannot encode %T", qd.Result)
	}
	return b, nil
}

func appendHeader(b []byte, tag byte, resp *v1.Response) []byte {
	b = append(b, tag)
	b = appendStrings(b, resp.Warnings)
	return appendStrings(b, resp.Infos)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendLabels(b []byte, ls labels.Labels) []byte {
	b = binary.AppendUvarint(b, uint64(ls.Len()))
	ls.Range(func(l labels.Label) {
		b = appendString(appendString(b, l.Name), l.Value)
	})
	return b
}

var errTruncated = errors.New("resultwire: truncated answer")

// decoder reads b front to back; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items that each take at least size bytes, so a
// corrupt count cannot make Decode allocate more than the input justifies.
func (d *decoder) count(size int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/size) {
		d.err = errTruncated
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) strings() []string {
	n := d.count(1)
	var out []string
	for range n {
		out = append(out, d.string())
	}
	return out
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errTruncated
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// Decode reads an answer Encode wrote.
func Decode(b []byte) (*Result, error) {
	if len(b) == 0 {
		return nil, errTruncated
	}
	res := &Result{}
	switch b[0] {
	case tagVector:
		res.Type = Vector
	case tagMatrix:
		res.Type = Matrix
	default:
		return nil, fmt.Errorf("resultwire: unknown result type %d", b[0])
	}
	d := &decoder{b: b[1:]}
	res.Warnings, res.Infos = d.strings(), d.strings()
	// A series takes at least 2 bytes: its label and point counts.
	res.Series = make([]Series, d.count(2))
	var sb labels.ScratchBuilder
	for i := range res.Series {
		nl := d.count(2)
		sb.Reset()
		for range nl {
			name := d.string()
			sb.Add(name, d.string())
		}
		// A point takes at least 9 bytes.
		pts := make([]Point, d.count(9))
		var t int64
		for k := range pts {
			t += d.varint()
			pts[k] = Point{T: t, V: d.float()}
		}
		if d.err != nil {
			return nil, d.err
		}
		res.Series[i] = Series{Labels: sb.Labels(), Points: pts}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("resultwire: %d bytes after the answer", len(d.b))
	}
	return res, nil
}
