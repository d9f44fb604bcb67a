package limits

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.yaml.in/yaml/v3"
)

// RuntimeConfig is the `runtime_config:` section: the file of per-tenant
// overrides and how often it is re-read.
type RuntimeConfig struct {
	File   string        `yaml:"file"`
	Period time.Duration `yaml:"period"`
}

// RegisterFlags registers the runtime-config.* flags.
func (c *RuntimeConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.File, "runtime-config.file", "", "File of per-tenant limit overrides (`overrides: {<tenant>: {<limit>: value}}`), re-read periodically; empty means none.")
	fs.DurationVar(&c.Period, "runtime-config.period", 10*time.Second, "How often the runtime configuration file is re-read.")
}

// Validate reports the first invalid field.
func (c *RuntimeConfig) Validate() error {
	if c.File != "" && c.Period <= 0 {
		return errors.New("runtime_config.period must be positive")
	}
	return nil
}

// Overrides answers the limits of each tenant: the tenant's entry of the
// runtime configuration file if it has one, the defaults otherwise. It is
// safe for concurrent use; the answers change when the file does.
type Overrides struct {
	defaults Limits
	cfg      RuntimeConfig
	logger   *slog.Logger
	tenants  atomic.Pointer[map[string]*Limits]
	last     []byte // the file as last loaded; only Run's goroutine touches it

	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	reloads    *prometheus.CounterVec
}

// NewOverrides returns the overrides of defaults by cfg.File, loaded once
// here: a bad file at start is an error, as a bad configuration file is.
// Run keeps it current. Metrics go to reg, which may be nil.
func NewOverrides(defaults Limits, cfg RuntimeConfig, logger *slog.Logger, reg prometheus.Registerer) (*Overrides, error) {
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &Overrides{defaults: defaults, cfg: cfg, logger: logger}
	f := promauto.With(reg)
	o.reloadOK = f.NewGauge(prometheus.GaugeOpts{
		Name: "pharos_runtime_config_last_reload_successful",
		Help: "Whether the last load of the runtime configuration file (per-tenant overrides) succeeded.",
	})
	o.reloadTime = f.NewGauge(prometheus.GaugeOpts{
		Name: "pharos_runtime_config_last_reload_success_timestamp_seconds",
		Help: "When the runtime configuration file was last loaded successfully.",
	})
	o.reloads = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_runtime_config_reloads_total",
		Help: "Loads of the runtime configuration file, by outcome.",
	}, []string{"outcome"})
	o.tenants.Store(&map[string]*Limits{})
	if cfg.File != "" {
		if err := o.Reload(); err != nil {
			return nil, err
		}
	} else {
		o.reloadOK.Set(1)
	}
	return o, nil
}

// Run re-reads the file every period until ctx ends. Without a file it
// returns at once.
func (o *Overrides) Run(ctx context.Context) {
	if o.cfg.File == "" {
		return
	}
	t := time.NewTicker(o.cfg.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := o.Reload(); err != nil {
				o.logger.Error("runtime config not reloaded; the previous overrides stay in force", "file", o.cfg.File, "err", err)
			}
		}
	}
}

// Reload loads the file now. On error the overrides in force stay.
// Reload is not meant to run concurrently with itself (Run calls it, tests
// may call it instead of waiting).
func (o *Overrides) Reload() error {
	data, err := os.ReadFile(o.cfg.File)
	if err == nil && o.last != nil && bytes.Equal(data, o.last) {
		o.reloadOK.Set(1)
		return nil
	}
	if err == nil && len(data) == 0 && len(o.last) > 0 {
		// A writer that truncates and then writes (os.WriteFile, most
		// editors' plain save) leaves the file empty for a moment. Loading
		// that would drop every tenant's overrides until the next period.
		err = errors.New("file is empty, as it is while a writer is part-way through it; write `overrides: {}` to clear the overrides")
	}
	var tenants map[string]*Limits
	if err == nil {
		tenants, err = parse(data, o.defaults)
	}
	if err != nil {
		o.reloadOK.Set(0)
		o.reloads.WithLabelValues("failure").Inc()
		return fmt.Errorf("runtime config %s: %w", o.cfg.File, err)
	}
	o.tenants.Store(&tenants)
	o.last = data
	o.reloadOK.Set(1)
	o.reloadTime.SetToCurrentTime()
	o.reloads.WithLabelValues("success").Inc()
	o.logger.Info("runtime config loaded", "file", o.cfg.File, "tenants_with_overrides", len(tenants))
	return nil
}

// parse reads an overrides file: each tenant's limits are the defaults
// with the limits the file names replaced. Errors name the line, the
// tenant and the limit.
func parse(data []byte, defaults Limits) (map[string]*Limits, error) {
	var doc struct {
		Overrides yaml.Node `yaml:"overrides"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	tenants := map[string]*Limits{}
	ov := &doc.Overrides
	if ov.Kind == 0 || (ov.Kind == yaml.ScalarNode && ov.Tag == "!!null") {
		return tenants, nil
	}
	if ov.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: overrides must map tenants to their limits", ov.Line)
	}
	for i := 0; i+1 < len(ov.Content); i += 2 {
		key, val := ov.Content[i], ov.Content[i+1]
		id := key.Value
		if _, dup := tenants[id]; dup {
			return nil, fmt.Errorf("line %d: tenant %q appears twice", key.Line, id)
		}
		l := defaults
		if val.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(val.Content); j += 2 {
				if f := val.Content[j]; !fieldNames[f.Value] {
					return nil, fmt.Errorf("line %d: tenant %q: unknown limit %q", f.Line, id, f.Value)
				}
			}
		} else if !(val.Kind == yaml.ScalarNode && val.Tag == "!!null") {
			return nil, fmt.Errorf("line %d: tenant %q: limits must be a mapping of limit names to values", val.Line, id)
		}
		if err := val.Decode(&l); err != nil {
			return nil, fmt.Errorf("tenant %q: %w", id, err)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("line %d: tenant %q: %w", val.Line, id, err)
		}
		tenants[id] = &l
	}
	return tenants, nil
}

// ForTenant returns the limits of tenant. The caller must not modify them.
func (o *Overrides) ForTenant(tenant string) *Limits {
	if l, ok := (*o.tenants.Load())[tenant]; ok {
		return l
	}
	return &o.defaults
}

// Tenants returns the tenants that have overrides, for status pages.
func (o *Overrides) Tenants() map[string]Limits {
	m := *o.tenants.Load()
	out := make(map[string]Limits, len(m))
	for k, v := range m {
		out[k] = *v
	}
	return out
}

// IngestionRate is limits.ingestion_rate of tenant.
func (o *Overrides) IngestionRate(tenant string) float64 { return o.ForTenant(tenant).IngestionRate }

// IngestionBurstSize is limits.ingestion_burst_size of tenant.
func (o *Overrides) IngestionBurstSize(tenant string) int {
	return o.ForTenant(tenant).IngestionBurstSize
}

// MaxGlobalSeriesPerUser is limits.max_global_series_per_user of tenant.
func (o *Overrides) MaxGlobalSeriesPerUser(tenant string) int {
	return o.ForTenant(tenant).MaxGlobalSeriesPerUser
}

// MaxGlobalSeriesPerMetric is limits.max_global_series_per_metric of tenant.
func (o *Overrides) MaxGlobalSeriesPerMetric(tenant string) int {
	return o.ForTenant(tenant).MaxGlobalSeriesPerMetric
}

// MaxLabelNamesPerSeries is limits.max_label_names_per_series of tenant.
func (o *Overrides) MaxLabelNamesPerSeries(tenant string) int {
	return o.ForTenant(tenant).MaxLabelNamesPerSeries
}

// MaxLabelNameLength is limits.max_label_name_length of tenant.
func (o *Overrides) MaxLabelNameLength(tenant string) int {
	return o.ForTenant(tenant).MaxLabelNameLength
}

// MaxLabelValueLength is limits.max_label_value_length of tenant.
func (o *Overrides) MaxLabelValueLength(tenant string) int {
	return o.ForTenant(tenant).MaxLabelValueLength
}

// MaxFetchedSeriesPerQuery is limits.max_fetched_series_per_query of tenant.
func (o *Overrides) MaxFetchedSeriesPerQuery(tenant string) int {
	return o.ForTenant(tenant).MaxFetchedSeriesPerQuery
}

// MaxFetchedChunksPerQuery is limits.max_fetched_chunks_per_query of tenant.
func (o *Overrides) MaxFetchedChunksPerQuery(tenant string) int {
	return o.ForTenant(tenant).MaxFetchedChunksPerQuery
}

// MaxFetchedChunkBytesPerQuery is limits.max_fetched_chunk_bytes_per_query
// of tenant.
func (o *Overrides) MaxFetchedChunkBytesPerQuery(tenant string) int {
	return o.ForTenant(tenant).MaxFetchedChunkBytesPerQuery
}

// MaxQueryLength is limits.max_query_length of tenant.
func (o *Overrides) MaxQueryLength(tenant string) time.Duration {
	return o.ForTenant(tenant).maxQueryLength()
}

// RulerMaxRuleGroupsPerTenant is limits.ruler_max_rule_groups_per_tenant.
func (o *Overrides) RulerMaxRuleGroupsPerTenant(tenant string) int {
	return o.ForTenant(tenant).RulerMaxRuleGroupsPerTenant
}

// RulerMaxRulesPerRuleGroup is limits.ruler_max_rules_per_rule_group.
func (o *Overrides) RulerMaxRulesPerRuleGroup(tenant string) int {
	return o.ForTenant(tenant).RulerMaxRulesPerRuleGroup
}

// AcceptHASamples is limits.accept_ha_samples of tenant.
func (o *Overrides) AcceptHASamples(tenant string) bool { return o.ForTenant(tenant).AcceptHASamples }

// HAClusterLabel is limits.ha_cluster_label of tenant.
func (o *Overrides) HAClusterLabel(tenant string) string { return o.ForTenant(tenant).HAClusterLabel }

// HAReplicaLabel is limits.ha_replica_label of tenant.
func (o *Overrides) HAReplicaLabel(tenant string) string { return o.ForTenant(tenant).HAReplicaLabel }

// HAMaxClusters is limits.ha_max_clusters of tenant.
func (o *Overrides) HAMaxClusters(tenant string) int { return o.ForTenant(tenant).HAMaxClusters }
