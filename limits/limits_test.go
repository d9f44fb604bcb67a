package limits

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func defaults(t *testing.T) Limits {
	t.Helper()
	var l Limits
	l.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	require.NoError(t, l.Validate())
	return l
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
}

func TestOverridesReplaceOnlyTheNamedLimits(t *testing.T) {
	d := defaults(t)
	path := filepath.Join(t.TempDir(), "runtime.yml")
	writeFile(t, path, `
overrides:
  team-a:
    ingestion_rate: 500
    max_query_length: 1d
    accept_ha_samples: true
  team-b: {}
`)
	o, err := NewOverrides(d, RuntimeConfig{File: path, Period: time.Second}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 500.0, o.IngestionRate("team-a"))
	require.Equal(t, 24*time.Hour, o.MaxQueryLength("team-a"))
	require.True(t, o.AcceptHASamples("team-a"))
	require.Equal(t, d.IngestionBurstSize, o.IngestionBurstSize("team-a"), "unnamed limits keep the default")
	require.Equal(t, "__replica__", o.HAReplicaLabel("team-a"))
	require.Equal(t, d.IngestionRate, o.IngestionRate("team-b"))
	require.Equal(t, d.MaxLabelNamesPerSeries, o.MaxLabelNamesPerSeries("unknown"))
	require.Len(t, o.Tenants(), 2)
}

func TestBadFileKeepsOldOverridesAndSaysWhere(t *testing.T) {
	d := defaults(t)
	path := filepath.Join(t.TempDir(), "runtime.yml")
	writeFile(t, path, "overrides:\n  a:\n    ingestion_rate: 100\n")
	reg := prometheus.NewRegistry()
	o, err := NewOverrides(d, RuntimeConfig{File: path, Period: time.Second}, nil, reg)
	require.NoError(t, err)
	ok := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "pharos_runtime_config_last_reload_successful" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no reload metric")
		return 0
	}
	require.Equal(t, 1.0, ok())

	for _, tc := range []struct{ file, want string }{
		{"overrides:\n  a:\n    ingestion_rate: 100\n    max_series: 3\n", `line 4: tenant "a": unknown limit "max_series"`},
		{"overrides:\n  a:\n    ingestion_rate: lots\n", "line 3: cannot unmarshal"},
		{"overrides:\n  a:\n    ingestion_rate: -1\n", `line 3: tenant "a": ingestion_rate must not be negative`},
		{"overides:\n  a: {}\n", "line 1: field overides not found"},
		{"overrides: [a]\n", "line 1: overrides must map tenants"},
		{"overrides:\n  a: 5\n", `line 2: tenant "a": limits must be a mapping`},
		{"", "file is empty"},
	} {
		writeFile(t, path, tc.file)
		err := o.Reload()
		require.ErrorContains(t, err, path)
		require.ErrorContains(t, err, tc.want)
		require.Equal(t, 0.0, ok())
		require.Equal(t, 100.0, o.IngestionRate("a"), "the old overrides stay")
	}

	writeFile(t, path, "overrides:\n  a:\n    ingestion_rate: 7\n")
	require.NoError(t, o.Reload())
	require.Equal(t, 1.0, ok())
	require.Equal(t, 7.0, o.IngestionRate("a"))
	require.Equal(t, 2.0, testutil.ToFloat64(o.reloads.WithLabelValues("success")), "the first load and this one")

	writeFile(t, path, "overrides: {}\n")
	require.NoError(t, o.Reload())
	require.Equal(t, 0.0, o.IngestionRate("a"), "an empty overrides map clears them")
}

func TestBadFileAtStartIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yml")
	writeFile(t, path, "overrides:\n  a:\n    nope: 1\n")
	_, err := NewOverrides(defaults(t), RuntimeConfig{File: path, Period: time.Second}, nil, nil)
	require.ErrorContains(t, err, `unknown limit "nope"`)
	_, err = NewOverrides(defaults(t), RuntimeConfig{File: filepath.Join(t.TempDir(), "missing.yml"), Period: time.Second}, nil, nil)
	require.ErrorContains(t, err, "missing.yml")
}

func TestRunPicksUpChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yml")
	writeFile(t, path, "")
	o, err := NewOverrides(defaults(t), RuntimeConfig{File: path, Period: 10 * time.Millisecond}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 0.0, o.IngestionRate("a"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	writeFile(t, path, "overrides:\n  a: {ingestion_rate: 42}\n")
	require.Eventually(t, func() bool { return o.IngestionRate("a") == 42 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	<-done
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Limits)
		want string
	}{
		{func(l *Limits) { l.IngestionRate, l.IngestionBurstSize = 10, 0 }, "ingestion_burst_size"},
		{func(l *Limits) { l.MaxLabelNamesPerSeries = 0 }, "max_label_names_per_series"},
		{func(l *Limits) { l.AcceptHASamples, l.HAClusterLabel = true, "" }, "ha_cluster_label"},
		{func(l *Limits) { l.HAReplicaLabel = "cluster" }, "must differ"},
		{func(l *Limits) { l.MaxQueryLength = -1 }, "max_query_length"},
	} {
		l := defaults(t)
		tc.mod(&l)
		require.ErrorContains(t, l.Validate(), tc.want)
	}
	require.Equal(t, "limits.ingestion_rate", Name("ingestion_rate"))
	require.Panics(t, func() { Name("ingestion") })
}
