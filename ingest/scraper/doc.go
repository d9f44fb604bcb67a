// Package scraper runs Prometheus's own discovery and scrape managers for a
// `scrape_configs` block, verbatim, and appends what it scrapes through the
// distributor, so scraped series are validated and replicated exactly like
// remote-written ones.
//
// Between discovery and scraping sits a TargetFilter: the seam where scrape
// sharding plugs in. With the default (keep everything) one scraper scrapes
// every target, as a single Prometheus does.
package scraper
