package scraper

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/scrape"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/pharos-tsdb/pharos/ingest/scraper/scrapeapi"
)

// Handler serves this scraper's targets at the scrapeapi paths, for the
// queriers to merge. advertise is the host:port this process's HTTP server
// is reached at: a target on localhost is shown under that host, as
// Prometheus shows its globalUrl.
func (s *Scraper) Handler(advertise string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+scrapeapi.TargetsPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.targets(r.URL.Query(), advertise))
	})
	mux.HandleFunc("GET "+scrapeapi.TargetMetadataPath, func(w http.ResponseWriter, r *http.Request) {
		md, err := s.targetMetadata(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, md)
	})
	mux.HandleFunc("GET "+scrapeapi.ScrapePoolsPath, func(w http.ResponseWriter, _ *http.Request) {
		pools := s.scrape.ScrapePools()
		slices.Sort(pools)
		writeJSON(w, scrapeapi.ScrapePools{ScrapePools: pools})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// targets mirrors Prometheus's /api/v1/targets handler, parameters
// (scrapePool, state) included.
func (s *Scraper) targets(q url.Values, advertise string) *scrapeapi.TargetDiscovery {
	pool := q.Get("scrapePool")
	state := strings.ToLower(q.Get("state"))
	showActive := state == "" || state == "any" || state == "active"
	showDropped := state == "" || state == "any" || state == "dropped"
	res := &scrapeapi.TargetDiscovery{
		ActiveTargets:       []*scrapeapi.Target{},
		DroppedTargets:      []*scrapeapi.DroppedTarget{},
		DroppedTargetCounts: map[string]int{},
	}
	lb := labels.NewBuilder(labels.EmptyLabels())
	if showActive {
		for _, p := range sortedPools(s.scrape.TargetsActive(), pool) {
			for _, t := range p.targets {
				lastErr := ""
				if err := t.LastError(); err != nil {
					lastErr = err.Error()
				}
				res.ActiveTargets = append(res.ActiveTargets, &scrapeapi.Target{
					Target: v1.Target{
						DiscoveredLabels:   t.DiscoveredLabels(lb),
						Labels:             t.Labels(lb),
						ScrapePool:         p.name,
						ScrapeURL:          t.URL().String(),
						GlobalURL:          globalURL(t.URL(), advertise),
						LastError:          lastErr,
						LastScrape:         t.LastScrape(),
						LastScrapeDuration: t.LastScrapeDuration().Seconds(),
						Health:             t.Health(),
						ScrapeInterval:     t.GetValue(model.ScrapeIntervalLabel),
						ScrapeTimeout:      t.GetValue(model.ScrapeTimeoutLabel),
					},
					ScrapeInstance: s.instanceID,
				})
			}
		}
	}
	if showDropped {
		res.DroppedTargetCounts = s.scrape.TargetsDroppedCounts()
		for _, p := range sortedPools(s.scrape.TargetsDropped(), pool) {
			for _, t := range p.targets {
				res.DroppedTargets = append(res.DroppedTargets, &scrapeapi.DroppedTarget{
					DroppedTarget:  v1.DroppedTarget{DiscoveredLabels: t.DiscoveredLabels(lb), ScrapePool: p.name},
					ScrapeInstance: s.instanceID,
				})
			}
		}
	}
	return res
}

type pool struct {
	name    string
	targets []*scrape.Target
}

func sortedPools(m map[string][]*scrape.Target, only string) []pool {
	out := make([]pool, 0, len(m))
	for name, ts := range m {
		if only == "" || name == only {
			out = append(out, pool{name, ts})
		}
	}
	slices.SortFunc(out, func(a, b pool) int { return strings.Compare(a.name, b.name) })
	return out
}

// globalURL shows a target on localhost under the host this process is
// reached at: seen from a querier, localhost is the scraper's.
func globalURL(u *url.URL, advertise string) string {
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, ""
	}
	if !slices.Contains(v1.LocalhostRepresentations, host) || advertise == "" {
		return u.String()
	}
	ahost, _, err := net.SplitHostPort(advertise)
	if err != nil {
		return u.String()
	}
	g := *u
	g.Host = ahost
	if port != "" {
		g.Host = net.JoinHostPort(ahost, port)
	}
	return g.String()
}

// targetMetadata mirrors Prometheus's /api/v1/targets/metadata handler
// (match_target, metric, limit).
func (s *Scraper) targetMetadata(q url.Values) ([]scrapeapi.MetricMetadata, error) {
	limit := -1
	if v := q.Get("limit"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil {
			return nil, err
		}
	}
	var matchers []*labels.Matcher
	if mt := q.Get("match_target"); mt != "" {
		var err error
		if matchers, err = parser.NewParser(parser.Options{}).ParseMetricSelector(mt); err != nil {
			return nil, err
		}
	}
	metric := q.Get("metric")
	lb := labels.NewBuilder(labels.EmptyLabels())
	res := []scrapeapi.MetricMetadata{}
	for _, p := range sortedPools(s.scrape.TargetsActive(), "") {
		for _, t := range p.targets {
			if limit >= 0 && len(res) >= limit {
				return res, nil
			}
			tl := t.Labels(lb)
			if !matches(tl, matchers) {
				continue
			}
			if metric == "" {
				for _, md := range t.ListMetadata() {
					res = append(res, scrapeapi.MetricMetadata{Target: tl, MetricFamily: md.MetricFamily, Type: md.Type, Help: md.Help, Unit: md.Unit})
				}
				continue
			}
			if md, ok := t.GetMetadata(metric); ok {
				res = append(res, scrapeapi.MetricMetadata{Target: tl, Type: md.Type, Help: md.Help, Unit: md.Unit})
			}
		}
	}
	return res, nil
}

func matches(ls labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}
