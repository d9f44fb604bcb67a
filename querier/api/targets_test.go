package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"

	"github.com/pharos-tsdb/pharos/ingest/scraper/scrapeapi"
	"github.com/pharos-tsdb/pharos/querier/api"
)

// scraperServer answers the scrapeapi paths with one active and one
// dropped target owned by id.
func scraperServer(t *testing.T, id, pool string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+scrapeapi.TargetsPath, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(scrapeapi.TargetDiscovery{
			ActiveTargets: []*scrapeapi.Target{{Target: v1.Target{
				Labels: labels.FromStrings("instance", id+":9100", "job", pool), ScrapePool: pool,
				ScrapeURL: "http://" + id + ":9100/metrics", Health: "up", LastScrape: time.Unix(1, 0),
			}, ScrapeInstance: id}},
			DroppedTargets:      []*scrapeapi.DroppedTarget{{DroppedTarget: v1.DroppedTarget{DiscoveredLabels: labels.FromStrings("__address__", id+":1"), ScrapePool: pool}, ScrapeInstance: id}},
			DroppedTargetCounts: map[string]int{pool: 1},
		})
	})
	mux.HandleFunc("GET "+scrapeapi.ScrapePoolsPath, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(scrapeapi.ScrapePools{ScrapePools: []string{pool, "shared"}})
	})
	mux.HandleFunc("GET "+scrapeapi.TargetMetadataPath, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode([]scrapeapi.MetricMetadata{{Target: labels.FromStrings("instance", id), MetricFamily: "up", Type: "gauge"}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestTargetsMergedAcrossScrapers(t *testing.T) {
	a, b := scraperServer(t, "s1", "node"), scraperServer(t, "s2", "node")
	eps := []api.ScraperEndpoint{{ID: "s1", URL: a.URL}, {ID: "s2", URL: b.URL}, {ID: "down", URL: "http://127.0.0.1:1"}}
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	defer db.Close()
	h, err := api.New(api.Options{
		Queryable: db, Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1, Timeout: time.Second}), Exemplars: db,
		Metadata: func(context.Context, string, int, int) (map[string][]metadata.Metadata, error) { return nil, nil },
		Scrapers: func(context.Context) []api.ScraperEndpoint { return eps },
	})
	require.NoError(t, err)
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()

	var r struct {
		Status   string                    `json:"status"`
		Data     scrapeapi.TargetDiscovery `json:"data"`
		Warnings []string                  `json:"warnings"`
	}
	get(t, srv.URL+"/api/v1/targets", &r)
	require.Equal(t, "success", r.Status)
	require.Len(t, r.Data.ActiveTargets, 2)
	require.Equal(t, "s1", r.Data.ActiveTargets[0].ScrapeInstance)
	require.Equal(t, "s2", r.Data.ActiveTargets[1].ScrapeInstance)
	require.Len(t, r.Data.DroppedTargets, 2)
	require.Equal(t, map[string]int{"node": 2}, r.Data.DroppedTargetCounts)
	require.Len(t, r.Warnings, 1, "the scraper that is down is named")
	require.Contains(t, r.Warnings[0], "scraper down")

	// A Prometheus client's types parse the merged answer.
	var pr struct {
		Data v1.TargetDiscovery `json:"data"`
	}
	get(t, srv.URL+"/api/v1/targets", &pr)
	require.Len(t, pr.Data.ActiveTargets, 2)
	require.Equal(t, "up", string(pr.Data.ActiveTargets[0].Health))

	var pools struct {
		Data v1.ScrapePoolsDiscovery `json:"data"`
	}
	get(t, srv.URL+"/api/v1/scrape_pools", &pools)
	require.Equal(t, []string{"node", "shared"}, pools.Data.ScrapePools)

	var md struct {
		Data []scrapeapi.MetricMetadata `json:"data"`
	}
	get(t, srv.URL+"/api/v1/targets/metadata?limit=1", &md)
	require.Len(t, md.Data, 1)
	resp, err := http.Get(srv.URL + "/api/v1/targets/metadata?match_target=%7B")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func get(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}
