// Package scrapeapi is the wire format between scrapers and queriers for
// the targets API: each scraper serves its own share of the targets under
// the paths below, in the JSON of Prometheus's /api/v1/targets,
// /api/v1/targets/metadata and /api/v1/scrape_pools (the data member, no
// envelope), and the querier merges them into the public endpoints.
//
// Every target carries scrapeInstance, the scraper that owns it: an extra
// field Prometheus clients ignore.
package scrapeapi
