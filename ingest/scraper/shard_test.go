package scraper

import (
	"fmt"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/stretchr/testify/require"
)

func TestShardSplitsTargetsAndDroppedTargets(t *testing.T) {
	cfg, err := promconfig.Load(`
scrape_configs:
  - job_name: node
    relabel_configs:
      - {source_labels: [env], regex: prod, action: keep}
  - job_name: idle
`, promslog.NewNopLogger())
	require.NoError(t, err)
	scfgs, err := cfg.GetScrapeConfigs()
	require.NoError(t, err)
	cfgs := map[string]*promconfig.ScrapeConfig{}
	for _, c := range scfgs {
		cfgs[c.JobName] = c
	}
	g := &targetgroup.Group{Source: "0"}
	for i := range 1000 {
		env := "prod"
		if i%4 == 0 {
			env = "dev" // dropped by relabelling
		}
		g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(fmt.Sprintf("host-%d:9100", i)), "env": model.LabelValue(env)})
	}
	tsets := map[string][]*targetgroup.Group{"node": {g}, "idle": {}}
	p := prepare(tsets, cfgs)

	// Three scrapers, each owning a third of the key space: every target
	// (active or dropped) lands on exactly one.
	total := 0
	for i := range uint32(3) {
		owns := func(k uint32) bool { return k/(1<<32/3+1) == i }
		out, owned, seen := p.shard(owns)
		require.Contains(t, out, "idle", "every job stays, so its pool syncs")
		require.Len(t, seen, 1000)
		n := 0
		for _, g := range out["node"] {
			n += len(g.Targets)
		}
		require.Equal(t, len(owned), n)
		require.InDelta(t, 333, n, 80, "an even split")
		total += n
	}
	require.Equal(t, 1000, total)

	// Ids are stable across preparations and do not depend on the
	// discovered-only labels of an active target.
	q := prepare(tsets, cfgs)
	require.Equal(t, p.refs, q.refs)
}
