//go:build !slicelabels && !dedupelabels

package ingester

import "github.com/prometheus/prometheus/model/labels"

// ownLabels copies ls into memory of its own, for the tsdb (or the exemplar
// storage) to keep: ls may alias a scratch buffer or the request. The
// default labels implementation holds every name and value in one string,
// so Copy is exactly one allocation and one copy; the other build tags'
// Labels keep the strings they were built from (ownlabels_other.go). At a
// 1M-series ingester's start every series pays this once: building the copy
// through a ScratchBuilder instead cost twice the allocations and bytes.
func ownLabels(_ *labels.ScratchBuilder, ls labels.Labels) labels.Labels {
	return ls.Copy()
}
