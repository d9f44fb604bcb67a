package ingesterpb

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
