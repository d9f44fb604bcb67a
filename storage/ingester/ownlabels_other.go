//go:build slicelabels || dedupelabels

package ingester

import "github.com/prometheus/prometheus/model/labels"

// ownLabels copies ls into memory of its own, built with sb. Labels.Copy
// is not enough with these build tags: slicelabels keeps the strings it was
// given and dedupelabels interns them in its symbol table, and here they
// alias the request. One allocation holds every name and value.
func ownLabels(sb *labels.ScratchBuilder, ls labels.Labels) labels.Labels {
	n := 0
	ls.Range(func(l labels.Label) { n += len(l.Name) + len(l.Value) })
	b := make([]byte, 0, n)
	ls.Range(func(l labels.Label) { b = append(append(b, l.Name...), l.Value...) })
	all := yoloString(b) // b is never written again
	sb.Reset()
	off := 0
	ls.Range(func(l labels.Label) {
		name := all[off : off+len(l.Name)]
		off += len(l.Name)
		value := all[off : off+len(l.Value)]
		off += len(l.Value)
		sb.Add(name, value)
	})
	return sb.Labels()
}
