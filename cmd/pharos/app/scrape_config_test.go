package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTutorialScrapeSectionLoads pastes the tutorial's prometheus.yml,
// unchanged, as the scrape section of a Pharos configuration.
func TestTutorialScrapeSectionLoads(t *testing.T) {
	tutorial, err := os.ReadFile("../../../ingest/scraper/testdata/tutorial-prometheus.yml")
	require.NoError(t, err)
	var b strings.Builder
	b.WriteString("scrape:\n")
	for _, l := range strings.SplitAfter(string(tutorial), "\n") {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	file := filepath.Join(t.TempDir(), "pharos.yml")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o644))
	cfg, err := Load([]string{"-config.file=" + file})
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	scfgs, err := cfg.Scrape.GetScrapeConfigs()
	require.NoError(t, err)
	require.Len(t, scfgs, 2)
	require.Equal(t, "kubernetes-apiservers", scfgs[1].JobName)
	require.Len(t, scfgs[1].RelabelConfigs, 1)
	require.Equal(t, "10s", scfgs[1].ScrapeTimeout.String())

	// A typo is refused with the file, line and field.
	bad := strings.Replace(b.String(), "scheme: https", "schema: https", 1)
	require.NoError(t, os.WriteFile(file, []byte(bad), 0o644))
	_, err = Load([]string{"-config.file=" + file})
	require.ErrorContains(t, err, file)
	require.ErrorContains(t, err, "line 25")
	require.ErrorContains(t, err, "schema")
}
