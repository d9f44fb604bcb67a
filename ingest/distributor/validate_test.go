package distributor

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/internal/tenant"
	"github.com/pharos-tsdb/pharos/storage/ingesterpb"
)

// randomLabels is a label set that is valid more often than not, with
// every way of being invalid or in need of normalising mixed in.
func randomLabels(rng *rand.Rand) []*ingesterpb.LabelPair {
	pieces := []string{"", "a", "b", "job", "__name__", "instance", "node-exporter", "10.0.0.1:9100", "ü", "\xff", "\xc3", "a\x80b",
		"long_enough_to_take_the_eight_byte_loop", "x_______y", tenant.Label, "z"}
	if rng.IntN(3) == 0 {
		// Clean: distinct sorted names, ASCII values; only the limits
		// can fail it.
		names := []string{"__name__", "a", "bb", "instance", "job", "long_label_name_near_limit", "mode", "z"}
		ls := []*ingesterpb.LabelPair{}
		for _, name := range names {
			if name == metricNameLabel || rng.IntN(2) == 0 {
				ls = append(ls, &ingesterpb.LabelPair{Name: []byte(name), Value: bytes.Repeat([]byte("v"), 1+rng.IntN(35))})
			}
		}
		return ls
	}
	n := rng.IntN(8)
	ls := make([]*ingesterpb.LabelPair, 0, n+1)
	if rng.IntN(5) != 0 {
		ls = append(ls, &ingesterpb.LabelPair{Name: []byte(metricNameLabel), Value: []byte("up")})
	}
	for range n {
		name := pieces[rng.IntN(len(pieces))] + pieces[rng.IntN(len(pieces))]
		value := pieces[rng.IntN(len(pieces))] + pieces[rng.IntN(len(pieces))]
		if rng.IntN(3) == 0 {
			value = string(bytes.Repeat([]byte("v"), rng.IntN(40)))
		}
		ls = append(ls, &ingesterpb.LabelPair{Name: []byte(name), Value: []byte(value)})
	}
	if rng.IntN(3) != 0 {
		slices.SortStableFunc(ls, lessPair)
	}
	return ls
}

func cloneLabels(ls []*ingesterpb.LabelPair) []*ingesterpb.LabelPair {
	out := make([]*ingesterpb.LabelPair, len(ls))
	for i, l := range ls {
		out[i] = l.CloneVT()
	}
	return out
}

// plain, labels' shortcut, only ever says yes to series the full checks
// accept unchanged; and labels with it answers what the full checks do.
func TestValidatorPlainIsSound(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxLabelNamesPerSeries = 4
	cfg.MaxLabelNameLength = 20
	cfg.MaxLabelValueLength = 30
	v := newValidator(&cfg, newConfigLimits(&cfg), tenant.DefaultTenant, time.Now())
	rng := rand.New(rand.NewPCG(9, 10))
	plain := 0
	const n = 20000
	for range n {
		ls := randomLabels(rng)
		full := &ingesterpb.TimeSeries{Labels: cloneLabels(ls)}
		wantReason, wantMsg := v.labelsFull(full)
		if v.plain(ls) {
			plain++
			require.Empty(t, wantReason, "plain accepted %s: %s", FormatSeries(ls), wantMsg)
			require.Equal(t, FormatSeries(ls), FormatSeries(full.Labels), "plain accepted labels that normalising changes")
		}
		ts := &ingesterpb.TimeSeries{Labels: cloneLabels(ls)}
		reason, msg, plainToo := v.labels(ts)
		require.Equal(t, wantReason, reason)
		require.Equal(t, wantMsg, msg)
		require.Equal(t, FormatSeries(full.Labels), FormatSeries(ts.Labels))
		require.Equal(t, v.plain(ls), plainToo, "labels says whether the labels were plain")
	}
	require.Greater(t, plain, n/20)
	require.Less(t, plain, n*19/20)

	// Prometheus-shaped series are plain under the default limits.
	def := defaultConfig()
	v = newValidator(&def, newConfigLimits(&def), tenant.DefaultTenant, time.Now())
	for i := range 100 {
		require.True(t, v.plain(promSeries(i, 0).Labels), "%d", i)
	}
}

// orBytes sees a high bit wherever it is, at every length.
func TestOrBytes(t *testing.T) {
	const high = 0x8080808080808080
	for n := range 40 {
		b := bytes.Repeat([]byte{0x7f}, n)
		require.Zero(t, orBytes(b)&high, "ASCII, length %d", n)
		for p := range n {
			b[p] = 0x80
			require.NotZero(t, orBytes(b)&high, "length %d, high bit at %d", n, p)
			b[p] = 0x7f
		}
	}
}
