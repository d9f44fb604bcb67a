package scrapeapi

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// Paths each scraper serves. They accept the query parameters of their
// public counterparts.
const (
	TargetsPath        = "/scraper/api/v1/targets"
	TargetMetadataPath = "/scraper/api/v1/targets/metadata"
	ScrapePoolsPath    = "/scraper/api/v1/scrape_pools"
)

// Target is an active target as /api/v1/targets shows it, plus its scraper.
type Target struct {
	v1.Target
	ScrapeInstance string `json:"scrapeInstance"`
}

// DroppedTarget is a target dropped by relabelling, plus the scraper that
// reported it (each is reported by exactly one).
type DroppedTarget struct {
	v1.DroppedTarget
	ScrapeInstance string `json:"scrapeInstance"`
}

// TargetDiscovery is the data of /api/v1/targets.
type TargetDiscovery struct {
	ActiveTargets       []*Target        `json:"activeTargets"`
	DroppedTargets      []*DroppedTarget `json:"droppedTargets"`
	DroppedTargetCounts map[string]int   `json:"droppedTargetCounts"`
}

// MetricMetadata is one entry of /api/v1/targets/metadata.
type MetricMetadata struct {
	Target       labels.Labels    `json:"target"`
	MetricFamily string           `json:"metric,omitempty"`
	Type         model.MetricType `json:"type"`
	Help         string           `json:"help"`
	Unit         string           `json:"unit"`
}

// ScrapePools is the data of /api/v1/scrape_pools.
type ScrapePools struct {
	ScrapePools []string `json:"scrapePools"`
}
