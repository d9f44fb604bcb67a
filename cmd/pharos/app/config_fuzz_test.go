package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"
)

// FuzzScrapeSection holds the `scrape:` section to Prometheus's own loader:
// a prometheus.yml indented under `scrape:` loads exactly when upstream's
// config.Load takes the same text alone, to the same jobs. The section is
// cut out of the file as text (loadScrapeSection), so this is what shows a
// cut that ends too early or too late.
func FuzzScrapeSection(f *testing.F) {
	tutorial, err := os.ReadFile(filepath.Join("..", "..", "..", "ingest", "scraper", "testdata", "tutorial-prometheus.yml"))
	require.NoError(f, err)
	f.Add(tutorial)
	f.Add([]byte("global:\n  scrape_interval: 15s\nscrape_configs:\n- job_name: node\n  static_configs:\n  - targets: ['node-1:9100', 'node-2:9100']\n    labels: {zone: a}\n"))
	f.Add([]byte("scrape_configs:\n- job_name: ksm\n  metrics_path: /metrics\n  honor_labels: true\n  relabel_configs:\n  - source_labels: [__address__]\n    regex: (.*):.*\n    replacement: ${1}:8080\n    target_label: __address__\n"))
	f.Add([]byte("scrape_configs:\n- job_name: a\n  # a comment at the first column follows\n# here\n  static_configs: [{targets: [x:1]}]\n"))
	f.Add([]byte("scrape_configs:\n- job_name: a\n  params:\n    q: |\n      multi\n      line\n"))
	f.Add([]byte("scrape_configs: [{job_name: a}, {job_name: a}]\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		// Indenting keeps the meaning of block YAML but not of document
		// markers, directives, tabs or carriage returns at a line start.
		if bytes.ContainsAny(body, "\t\r%\x00") || bytes.Contains(body, []byte("---")) || bytes.Contains(body, []byte("...")) {
			return
		}
		want, wantErr := promconfig.Load(string(body), promslog.NewNopLogger())

		var file strings.Builder
		file.WriteString("scrape:\n")
		for _, l := range strings.SplitAfter(string(body), "\n") {
			if l != "" {
				file.WriteString("  " + l)
			}
		}
		if !strings.HasSuffix(file.String(), "\n") {
			file.WriteString("\n")
		}
		path := filepath.Join(t.TempDir(), "pharos.yml")
		require.NoError(t, os.WriteFile(path, []byte(file.String()), 0o600))
		cfg, err := Load([]string{"-config.file=" + path})
		if wantErr != nil {
			if err == nil {
				// Upstream refuses the text; the section may still be
				// refused by our YAML pass first, never accepted.
				require.Error(t, err, "upstream refuses it: %v", wantErr)
			}
			return
		}
		if err != nil && strings.Contains(err.Error(), "yaml: ") && !strings.Contains(err.Error(), "scrape:") {
			// Our strict pass over the whole file refuses what upstream
			// reads with a lenient YAML decoder (a duplicate key, say).
			t.Skipf("refused by the whole-file YAML pass: %v", err)
		}
		require.NoError(t, err, "upstream accepts it")
		var wantJobs, gotJobs []string
		for _, sc := range want.ScrapeConfigs {
			wantJobs = append(wantJobs, sc.JobName)
		}
		if cfg.Scrape != nil {
			for _, sc := range cfg.Scrape.ScrapeConfigs {
				gotJobs = append(gotJobs, sc.JobName)
			}
			require.Equal(t, want.GlobalConfig.ScrapeInterval, cfg.Scrape.GlobalConfig.ScrapeInterval)
		}
		require.Equal(t, wantJobs, gotJobs)
	})
}
