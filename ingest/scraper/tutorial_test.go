package scraper

import (
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
	"github.com/stretchr/testify/require"
)

// TestTutorialScrapeConfig loads the tutorial's prometheus.yml unchanged,
// applies it, and checks that the kubernetes-apiservers keep rule decides
// which endpoints are targets before they are placed on the ring.
func TestTutorialScrapeConfig(t *testing.T) {
	cfg, err := promconfig.LoadFile("testdata/tutorial-prometheus.yml", false, promslog.NewNopLogger())
	require.NoError(t, err)
	require.Equal(t, model.Duration(60e9), cfg.GlobalConfig.ScrapeInterval)
	require.Equal(t, model.Duration(60e9), cfg.GlobalConfig.EvaluationInterval)
	require.Equal(t, model.Duration(10e9), cfg.GlobalConfig.ScrapeTimeout)
	scfgs, err := cfg.GetScrapeConfigs()
	require.NoError(t, err)
	cfgs := map[string]*promconfig.ScrapeConfig{}
	var jobs []string
	for _, c := range scfgs {
		cfgs[c.JobName] = c
		jobs = append(jobs, c.JobName)
	}
	require.Equal(t, []string{"prometheus", "kubernetes-apiservers"}, jobs)

	s, err := New(Options{Appendable: newRecorder(), Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	require.NoError(t, s.ApplyConfig(cfg))
	s.Stop()

	endpoint := func(ns, svc, port string) model.LabelSet {
		return model.LabelSet{
			model.AddressLabel:                     "10.0.0.1:443",
			"__meta_kubernetes_namespace":          model.LabelValue(ns),
			"__meta_kubernetes_service_name":       model.LabelValue(svc),
			"__meta_kubernetes_endpoint_port_name": model.LabelValue(port),
		}
	}
	tsets := map[string][]*targetgroup.Group{
		"kubernetes-apiservers": {{Source: "endpoints/default/kubernetes", Targets: []model.LabelSet{
			endpoint("default", "kubernetes", "https"),
			endpoint("kube-system", "kube-dns", "dns"),
		}}},
		"prometheus": {{Targets: []model.LabelSet{{model.AddressLabel: "localhost:9090"}}}},
	}
	p := prepare(tsets, cfgs)
	refs := p.refs["kubernetes-apiservers"][0]
	require.NotEqual(t, refs[0].id, refs[1].id)
	// Kept by the relabel rule: an active target's id, from its labels
	// after relabelling.
	lset, err := populate(cfgs["kubernetes-apiservers"], endpoint("default", "kubernetes", "https"))
	require.NoError(t, err)
	require.Equal(t, "https", lset.Get(model.SchemeLabel))
	dropped, err := populate(cfgs["kubernetes-apiservers"], endpoint("kube-system", "kube-dns", "dns"))
	require.NoError(t, err)
	require.True(t, dropped.IsEmpty(), "the keep rule drops other endpoints")
	var d xxhash.Digest
	require.Equal(t, activeID(&d, "kubernetes-apiservers", lset), refs[0].id, "placed by its labels after relabelling")
}

// populate is PopulateLabels for one target without group labels.
func populate(cfg *promconfig.ScrapeConfig, tl model.LabelSet) (labels.Labels, error) {
	return scrape.PopulateLabels(labels.NewBuilder(labels.EmptyLabels()), cfg, tl, nil)
}
