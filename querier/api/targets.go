package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/httputil"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/pharos-tsdb/pharos/ingest/scraper/scrapeapi"
	"github.com/pharos-tsdb/pharos/internal/tenant"
)

// ScraperEndpoint is one scraper the targets endpoints ask: its ring ID
// and the base URL of its HTTP server.
type ScraperEndpoint struct {
	ID  string
	URL string
}

// scraperTimeout bounds each scraper's answer, so a hung scraper turns into
// a warning rather than a hung targets page.
const scraperTimeout = 10 * time.Second

// targetsAPI answers /api/v1/targets, /api/v1/targets/metadata and
// /api/v1/scrape_pools from every scraper: each owns a share of the targets.
// A scraper that fails to answer is named in the response's warnings; the
// others' targets are still shown.
type targetsAPI struct {
	api      *API
	scrapers func(context.Context) []ScraperEndpoint
	client   *http.Client
}

func (t *targetsAPI) handler(path string) (http.HandlerFunc, bool) {
	var f http.HandlerFunc
	switch path {
	case Prefix + "/targets":
		f = t.targets
	case Prefix + "/targets/metadata":
		f = t.metadata
	case Prefix + "/scrape_pools":
		f = t.scrapePools
	default:
		return nil, false
	}
	return t.api.opts.Ready(httputil.CompressionHandler{Handler: f}.ServeHTTP), true
}

// fanOut GETs path with q from every scraper and decodes each answer with
// decode, which is called under a lock. It returns one warning per failed
// scraper.
func (t *targetsAPI) fanOut(ctx context.Context, path string, q url.Values, decode func(id string, body io.Reader) error) []string {
	eps := t.scrapers(ctx)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		warnings []string
	)
	for _, ep := range eps {
		wg.Go(func() {
			err := t.get(ctx, ep, path, q, func(body io.Reader) error {
				mu.Lock()
				defer mu.Unlock()
				return decode(ep.ID, body)
			})
			if err != nil {
				mu.Lock()
				warnings = append(warnings, fmt.Sprintf("scraper %s: %v", ep.ID, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(warnings)
	return warnings
}

func (t *targetsAPI) get(ctx context.Context, ep ScraperEndpoint, path string, q url.Values, decode func(io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, scraperTimeout)
	defer cancel()
	u := strings.TrimSuffix(ep.URL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	// The scraper answers for the same tenant. A context without one (the
	// API used without the tenant middleware) sends none.
	_ = tenant.InjectHeader(ctx, req)
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := decode(resp.Body); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

func (t *targetsAPI) targets(w http.ResponseWriter, r *http.Request) {
	httputil.SetCORS(w, t.api.opts.CORSOrigin, r)
	q := url.Values{}
	for _, k := range []string{"scrapePool", "state"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	res := &scrapeapi.TargetDiscovery{
		ActiveTargets:  []*scrapeapi.Target{},
		DroppedTargets: []*scrapeapi.DroppedTarget{},
	}
	state := strings.ToLower(q.Get("state"))
	if state == "" || state == "any" || state == "dropped" {
		res.DroppedTargetCounts = map[string]int{}
	}
	warnings := t.fanOut(r.Context(), scrapeapi.TargetsPath, q, func(_ string, body io.Reader) error {
		var part scrapeapi.TargetDiscovery
		if err := json.NewDecoder(body).Decode(&part); err != nil {
			return err
		}
		res.ActiveTargets = append(res.ActiveTargets, part.ActiveTargets...)
		res.DroppedTargets = append(res.DroppedTargets, part.DroppedTargets...)
		if res.DroppedTargetCounts != nil {
			for pool, n := range part.DroppedTargetCounts {
				res.DroppedTargetCounts[pool] += n
			}
		}
		return nil
	})
	// Prometheus lists pools in order; within a pool, a stable order makes
	// the merged page readable and diffable.
	slices.SortFunc(res.ActiveTargets, func(a, b *scrapeapi.Target) int {
		return cmp.Or(strings.Compare(a.ScrapePool, b.ScrapePool), strings.Compare(a.ScrapeURL, b.ScrapeURL),
			strings.Compare(a.Labels.String(), b.Labels.String()))
	})
	slices.SortFunc(res.DroppedTargets, func(a, b *scrapeapi.DroppedTarget) int {
		return cmp.Or(strings.Compare(a.ScrapePool, b.ScrapePool), strings.Compare(a.DiscoveredLabels.String(), b.DiscoveredLabels.String()))
	})
	t.api.respond(w, http.StatusOK, &v1.Response{Status: "success", Data: res, Warnings: warnings})
}

func (t *targetsAPI) metadata(w http.ResponseWriter, r *http.Request) {
	httputil.SetCORS(w, t.api.opts.CORSOrigin, r)
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			t.api.respond(w, http.StatusBadRequest, &v1.Response{Status: "error", ErrorType: "bad_data", Error: "limit must be a number"})
			return
		}
	}
	q := url.Values{}
	if mt := r.FormValue("match_target"); mt != "" {
		if _, err := parser.NewParser(parser.Options{}).ParseMetricSelector(mt); err != nil {
			t.api.respond(w, http.StatusBadRequest, &v1.Response{Status: "error", ErrorType: "bad_data", Error: fmt.Sprintf("invalid parameter %q: %v", "match_target", err)})
			return
		}
		q.Set("match_target", mt)
	}
	if m := r.FormValue("metric"); m != "" {
		q.Set("metric", m)
	}
	if limit >= 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	res := []scrapeapi.MetricMetadata{}
	warnings := t.fanOut(r.Context(), scrapeapi.TargetMetadataPath, q, func(_ string, body io.Reader) error {
		var part []scrapeapi.MetricMetadata
		if err := json.NewDecoder(body).Decode(&part); err != nil {
			return err
		}
		res = append(res, part...)
		return nil
	})
	slices.SortStableFunc(res, func(a, b scrapeapi.MetricMetadata) int {
		return cmp.Or(strings.Compare(a.Target.String(), b.Target.String()), strings.Compare(a.MetricFamily, b.MetricFamily))
	})
	if limit >= 0 && len(res) > limit {
		res = res[:limit]
	}
	t.api.respond(w, http.StatusOK, &v1.Response{Status: "success", Data: res, Warnings: warnings})
}

func (t *targetsAPI) scrapePools(w http.ResponseWriter, r *http.Request) {
	httputil.SetCORS(w, t.api.opts.CORSOrigin, r)
	// Every scraper runs every pool (each with its share of the targets),
	// but a scraper may be mid-reload: the union is the configured set.
	pools := map[string]struct{}{}
	warnings := t.fanOut(r.Context(), scrapeapi.ScrapePoolsPath, nil, func(_ string, body io.Reader) error {
		var part scrapeapi.ScrapePools
		if err := json.NewDecoder(body).Decode(&part); err != nil {
			return err
		}
		for _, p := range part.ScrapePools {
			pools[p] = struct{}{}
		}
		return nil
	})
	t.api.respond(w, http.StatusOK, &v1.Response{Status: "success", Data: &v1.ScrapePoolsDiscovery{ScrapePools: slices.Sorted(maps.Keys(pools))}, Warnings: warnings})
}
