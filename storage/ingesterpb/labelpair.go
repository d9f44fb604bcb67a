package ingesterpb

import "google.golang.org/protobuf/encoding/protowire"

// AppendLabelField appends one label as a TimeSeries.labels field, its
// LabelPair encoded as MarshalVT encodes it (an empty name or value has no
// field): the bytes ingesters key known series by, label after label, and
// what a distributor may send in place of a series' labels
// (LabelSpanPush).
func AppendLabelField[T string | []byte](buf []byte, name, value T) []byte {
	n := 0
	if len(name) > 0 {
		n += 1 + protowire.SizeBytes(len(name))
	}
	if len(value) > 0 {
		n += 1 + protowire.SizeBytes(len(value))
	}
	buf = append(buf, TagTimeSeriesLabels)
	buf = protowire.AppendVarint(buf, uint64(n))
	if len(name) > 0 {
		buf = append(buf, TagLabelPairName)
		buf = protowire.AppendVarint(buf, uint64(len(name)))
		buf = append(buf, name...)
	}
	if len(value) > 0 {
		buf = append(buf, TagLabelPairValue)
		buf = protowire.AppendVarint(buf, uint64(len(value)))
		buf = append(buf, value...)
	}
	return buf
}

// SplitShortLabelPair reports where the value's field starts in an encoded
// LabelPair (or a remote-write Label, which has the same fields) written as
// every encoder writes a label with a value: the name's field, then the
// value's, each under 128 bytes, and nothing else. The name is then
// b[2:v], the value b[v+2:]. It returns -1 for any other encoding, which
// the caller decodes field by field.
func SplitShortLabelPair(b []byte) (v int) {
	if len(b) < 4 || b[0] != TagLabelPairName || b[1] >= 0x80 {
		return -1
	}
	v = 2 + int(b[1])
	if v+2 > len(b) || b[v] != TagLabelPairValue || b[v+1] >= 0x80 || v+2+int(b[v+1]) != len(b) {
		return -1
	}
	return v
}
