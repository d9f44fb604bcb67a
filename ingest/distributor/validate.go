package distributor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// Reasons of pharos_discarded_samples_total and of Rejection.Reason.
const (
	ReasonMissingMetricName    = "missing_metric_name"
	ReasonInvalidMetricName    = "invalid_metric_name"
	ReasonInvalidLabel         = "invalid_label"
	ReasonDuplicateLabelNames  = "duplicate_label_names"
	ReasonLabelNameTooLong     = "label_name_too_long"
	ReasonLabelValueTooLong    = "label_value_too_long"
	ReasonMaxLabelNames        = "max_label_names_per_series"
	ReasonInvalidUTF8          = "invalid_utf8"
	ReasonInvalidSymbolRef     = "invalid_symbol_reference"
	ReasonNoSamples            = "no_samples"
	ReasonTooFarInFuture       = "too_far_in_future"
	ReasonTooOld               = "too_old"
	ReasonOutOfOrder           = "out_of_order"
	ReasonDuplicateSample      = "duplicate_sample"
	ReasonInvalid              = "invalid"
	ReasonIngesterRejected     = "ingester_rejected"
	ReasonPerUserSeriesLimit   = "per_user_series_limit"
	ReasonPerMetricSeriesLimit = "per_metric_series_limit"
	metricNameLabel            = model.MetricNameLabel
	maxLabelValueInMessage     = 256
	timestampLayoutInRejection = time.RFC3339Nano
)

// Rejection is a series, or some samples of a series, that was not written
// because of what it contains. Retrying it cannot succeed.
type Rejection struct {
	// Index of the series in the PushRequest.
	Index int
	// Reason is one of the Reason* constants.
	Reason string
	// Series is the label set in Prometheus notation, e.g. {__name__="up", job="node"}.
	Series string
	// Message says what is wrong, without the series.
	Message string
	// Samples and Histograms count what was discarded.
	Samples, Histograms int
}

func (r Rejection) Error() string { return r.Message + " for series " + r.Series }

// validator checks and normalises series in place.
type validator struct {
	cfg         *Config
	minT, maxT  int64 // accepted sample timestamps, inclusive
	pastEnabled bool
	// The tenant's label limits.
	maxNames, maxNameLen, maxValueLen int
}

func newValidator(cfg *Config, l Limits, id string, now time.Time) validator {
	v := validator{cfg: cfg, maxT: now.Add(time.Duration(cfg.CreationGracePeriod)).UnixMilli(),
		maxNames: l.MaxLabelNamesPerSeries(id), maxNameLen: l.MaxLabelNameLength(id), maxValueLen: l.MaxLabelValueLength(id)}
	if cfg.PastGracePeriod > 0 {
		v.pastEnabled = true
		v.minT = now.Add(-time.Duration(cfg.PastGracePeriod)).UnixMilli()
	}
	return v
}

func lessPair(a, b *ingesterpb.LabelPair) int { return bytes.Compare(a.Name, b.Name) }

// labels normalises ts.Labels (drops empty values, sorts) and checks them.
// It returns a non-empty reason and a message when the series is invalid;
// plain says the labels passed as they were sent (see plain), unchanged.
func (v *validator) labels(ts *ingesterpb.TimeSeries) (reason, msg string, plain bool) {
	if v.plain(ts.Labels) {
		return "", "", true
	}
	reason, msg = v.labelsFull(ts)
	return reason, msg, false
}

// labelsFull is labels without plain's shortcut.
func (v *validator) labelsFull(ts *ingesterpb.TimeSeries) (reason, msg string) {
	ls := ts.Labels
	// Empty values mean "no such label" in Prometheus: drop them. The
	// tenant label is the ingester's to set: a client's is dropped too.
	for i := 0; i < len(ls); i++ {
		if len(ls[i].Value) == 0 || string(ls[i].Name) == tenant.Label {
			ls = slices.DeleteFunc(ls, func(l *ingesterpb.LabelPair) bool { return len(l.Value) == 0 || string(l.Name) == tenant.Label })
			break
		}
	}
	if !slices.IsSortedFunc(ls, lessPair) {
		slices.SortStableFunc(ls, lessPair)
	}
	ts.Labels = ls

	if len(ls) > v.maxNames {
		return ReasonMaxLabelNames, fmt.Sprintf("series has %d labels, more than the limit of %d (limits.max_label_names_per_series)", len(ls), v.maxNames)
	}
	hasName := false
	for _, l := range ls {
		if string(l.Name) == metricNameLabel {
			hasName = true
			if !utf8.Valid(l.Value) {
				return ReasonInvalidMetricName, fmt.Sprintf("invalid metric name %s (not valid UTF-8)", strconv.Quote(string(l.Value)))
			}
			break
		}
	}
	if !hasName {
		return ReasonMissingMetricName, "missing metric name (__name__ label)"
	}
	for i, l := range ls {
		if len(l.Name) == 0 || !utf8.Valid(l.Name) {
			return ReasonInvalidLabel, fmt.Sprintf("invalid label name %s", strconv.Quote(string(l.Name)))
		}
		if len(l.Name) > v.maxNameLen {
			return ReasonLabelNameTooLong, fmt.Sprintf("label name %s is longer than the limit of %d bytes (%d bytes, limits.max_label_name_length)", quoteTrunc(l.Name), v.maxNameLen, len(l.Name))
		}
		if len(l.Value) > v.maxValueLen {
			return ReasonLabelValueTooLong, fmt.Sprintf("value of label %s is longer than the limit of %d bytes (%d bytes, limits.max_label_value_length)", quoteTrunc(l.Name), v.maxValueLen, len(l.Value))
		}
		if !utf8.Valid(l.Value) {
			return ReasonInvalidUTF8, fmt.Sprintf("value of label %s is not valid UTF-8", strconv.Quote(string(l.Name)))
		}
		if i > 0 && bytes.Equal(l.Name, ls[i-1].Name) {
			return ReasonDuplicateLabelNames, fmt.Sprintf("duplicate label name %s", strconv.Quote(string(l.Name)))
		}
	}
	return "", ""
}

// plain reports, in one pass, that ls needs no normalising and passes
// every check of labels: sorted with unique names, no empty value, no
// tenant label, a metric name, within the limits, and nothing but ASCII
// (which is valid UTF-8). That is every series of a well-behaved sender,
// and it costs a fraction of the full checks: one comparison per pair of
// names and one ASCII test of all bytes 8 at a time, instead of a
// utf8.Valid call per name and value (22 calls on 11 labels, most on a few
// bytes, where the call is the cost). When plain says false, the full
// checks run and say what is wrong, so no rule or message depends on it.
func (v *validator) plain(ls []*ingesterpb.LabelPair) bool {
	if len(ls) > v.maxNames {
		return false
	}
	var bits uint64 // OR of every byte: a high bit set means non-ASCII
	hasName := false
	var prev []byte
	for i, l := range ls {
		name, value := l.Name, l.Value
		if len(name) == 0 || len(value) == 0 || len(name) > v.maxNameLen || len(value) > v.maxValueLen {
			return false
		}
		// Strictly increasing: sorted, and no duplicate names. Most
		// neighbours differ in their first byte: compare that inline.
		if i > 0 && (prev[0] > name[0] || prev[0] == name[0] && bytes.Compare(prev, name) >= 0) {
			return false
		}
		prev = name
		switch string(name) {
		case metricNameLabel:
			hasName = true
		case tenant.Label:
			return false
		}
		bits |= orBytes(name) | orBytes(value)
	}
	return hasName && bits&0x8080808080808080 == 0
}

// orBytes returns the OR of b's bytes, folded into a uint64 whose bytes'
// high bits are those of b's. Loads may overlap (OR does not mind), so that
// a short name or value costs one or two loads instead of a byte loop.
func orBytes(b []byte) uint64 {
	n := len(b)
	switch {
	case n >= 8:
		var x uint64
		for i := 0; i+8 < n; i += 8 {
			x |= binary.LittleEndian.Uint64(b[i:])
		}
		return x | binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		return uint64(binary.LittleEndian.Uint32(b) | binary.LittleEndian.Uint32(b[n-4:]))
	case n > 0:
		return uint64(b[0] | b[n/2] | b[n-1])
	}
	return 0
}

// samples drops the samples and histograms outside the accepted time range
// from ts and describes the first offender.
func (v *validator) samples(ts *ingesterpb.TimeSeries) (reason, msg string, samples, histograms int) {
	bad := func(t int64) bool { return t > v.maxT || (v.pastEnabled && t < v.minT) }
	first := int64(0)
	found := false
	for _, s := range ts.Samples {
		if bad(s.TimestampMs) {
			first, found = s.TimestampMs, true
			break
		}
	}
	if !found {
		for _, h := range ts.Histograms {
			if bad(h.TimestampMs) {
				first, found = h.TimestampMs, true
				break
			}
		}
	}
	if !found {
		return "", "", 0, 0
	}
	n, m := len(ts.Samples), len(ts.Histograms)
	ts.Samples = slices.DeleteFunc(ts.Samples, func(s *ingesterpb.Sample) bool { return bad(s.TimestampMs) })
	ts.Histograms = slices.DeleteFunc(ts.Histograms, func(h *ingesterpb.Histogram) bool { return bad(h.TimestampMs) })
	samples, histograms = n-len(ts.Samples), m-len(ts.Histograms)
	ft := time.UnixMilli(first).UTC().Format(timestampLayoutInRejection)
	if first > v.maxT {
		return ReasonTooFarInFuture, fmt.Sprintf("sample timestamp %s (%d) is too far in the future (creation grace period %s)", ft, first, v.cfg.CreationGracePeriod), samples, histograms
	}
	return ReasonTooOld, fmt.Sprintf("sample timestamp %s (%d) is too old (past grace period %s)", ft, first, v.cfg.PastGracePeriod), samples, histograms
}

// FormatSeries renders labels as Prometheus does, e.g.
// {__name__="up", job="node"}. Over-long values are cut, so that a message
// about an over-long value stays readable.
func FormatSeries(ls []*ingesterpb.LabelPair) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		if model.LegacyValidation.IsValidLabelName(string(l.Name)) {
			b.Write(l.Name)
		} else {
			b.WriteString(strconv.Quote(string(l.Name)))
		}
		b.WriteByte('=')
		b.WriteString(quoteTrunc(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

func quoteTrunc(s []byte) string {
	if len(s) > maxLabelValueInMessage {
		return strconv.Quote(string(s[:maxLabelValueInMessage])) + "..."
	}
	return strconv.Quote(string(s))
}
