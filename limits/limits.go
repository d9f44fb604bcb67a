package limits

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Limits are the limits of one tenant; 0 means "no limit" unless a field
// says otherwise. The zero value is not useful: start from the flag
// defaults (RegisterFlags) or from another tenant's Limits.
type Limits struct {
	// IngestionRate is the samples per second a tenant may write through
	// one distributor (Mimir's "local" strategy: Pharos has no distributor
	// ring to share a global rate by); histograms and exemplars count as
	// samples, as Mimir counts them.
	IngestionRate float64 `yaml:"ingestion_rate"`
	// IngestionBurstSize is the most samples one burst (one request) may
	// carry above the rate.
	IngestionBurstSize int `yaml:"ingestion_burst_size"`

	// MaxGlobalSeriesPerUser and MaxGlobalSeriesPerMetric bound a tenant's
	// active (in-memory) series across the cluster, before replication.
	MaxGlobalSeriesPerUser   int `yaml:"max_global_series_per_user"`
	MaxGlobalSeriesPerMetric int `yaml:"max_global_series_per_metric"`

	// Label limits of one series, checked by the distributor.
	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int `yaml:"max_label_name_length"`
	MaxLabelValueLength    int `yaml:"max_label_value_length"`

	// Query limits: what one query may fetch from the ingesters, and the
	// longest time range it may select.
	MaxFetchedSeriesPerQuery     int            `yaml:"max_fetched_series_per_query"`
	MaxFetchedChunksPerQuery     int            `yaml:"max_fetched_chunks_per_query"`
	MaxFetchedChunkBytesPerQuery int            `yaml:"max_fetched_chunk_bytes_per_query"`
	MaxQueryLength               model.Duration `yaml:"max_query_length"`

	// Ruler limits.
	RulerMaxRuleGroupsPerTenant int `yaml:"ruler_max_rule_groups_per_tenant"`
	RulerMaxRulesPerRuleGroup   int `yaml:"ruler_max_rules_per_rule_group"`

	// HA pairs: samples of series carrying both labels are deduplicated by
	// the distributor's HA tracker, one replica per cluster at a time.
	AcceptHASamples bool   `yaml:"accept_ha_samples"`
	HAClusterLabel  string `yaml:"ha_cluster_label"`
	HAReplicaLabel  string `yaml:"ha_replica_label"`
	HAMaxClusters   int    `yaml:"ha_max_clusters"`
}

// RegisterFlags registers the limits.* flags, the defaults of every tenant.
func (l *Limits) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&l.IngestionRate, "limits.ingestion-rate", 0, "Per-tenant ingestion rate limit of each distributor in samples per second (histograms and exemplars count as samples); 0 means no limit.")
	fs.IntVar(&l.IngestionBurstSize, "limits.ingestion-burst-size", 200_000, "Per-tenant burst size in samples above the ingestion rate.")
	fs.IntVar(&l.MaxGlobalSeriesPerUser, "limits.max-global-series-per-user", 0, "Maximum active series of a tenant across the cluster, before replication; 0 means no limit.")
	fs.IntVar(&l.MaxGlobalSeriesPerMetric, "limits.max-global-series-per-metric", 0, "Maximum active series of one metric name of a tenant across the cluster; 0 means no limit.")
	fs.IntVar(&l.MaxLabelNamesPerSeries, "limits.max-label-names-per-series", 30, "Maximum number of labels of a series.")
	fs.IntVar(&l.MaxLabelNameLength, "limits.max-label-name-length", 1024, "Maximum length in bytes of a label name.")
	fs.IntVar(&l.MaxLabelValueLength, "limits.max-label-value-length", 2048, "Maximum length in bytes of a label value.")
	fs.IntVar(&l.MaxFetchedSeriesPerQuery, "limits.max-fetched-series-per-query", 0, "Maximum distinct series one query may fetch; 0 means no limit.")
	fs.IntVar(&l.MaxFetchedChunksPerQuery, "limits.max-fetched-chunks-per-query", 2_000_000, "Maximum chunks one query may fetch from ingesters, replicas included; 0 means no limit.")
	fs.IntVar(&l.MaxFetchedChunkBytesPerQuery, "limits.max-fetched-chunk-bytes-per-query", 0, "Maximum chunk bytes one query may fetch from ingesters, replicas included; 0 means no limit.")
	fs.Var(&l.MaxQueryLength, "limits.max-query-length", "Longest time range a query may select (end - start); 0 means no limit.")
	fs.IntVar(&l.RulerMaxRuleGroupsPerTenant, "limits.ruler-max-rule-groups-per-tenant", 0, "Maximum rule groups of a tenant; 0 means no limit.")
	fs.IntVar(&l.RulerMaxRulesPerRuleGroup, "limits.ruler-max-rules-per-rule-group", 0, "Maximum rules in one rule group; 0 means no limit.")
	fs.BoolVar(&l.AcceptHASamples, "limits.accept-ha-samples", false, "Deduplicate samples of HA Prometheus pairs (series with the HA cluster and replica labels).")
	fs.StringVar(&l.HAClusterLabel, "limits.ha-cluster-label", "cluster", "Label naming the HA cluster of a Prometheus pair.")
	fs.StringVar(&l.HAReplicaLabel, "limits.ha-replica-label", "__replica__", "Label naming the replica within an HA cluster; dropped from accepted samples.")
	fs.IntVar(&l.HAMaxClusters, "limits.ha-max-clusters", 100, "Maximum HA clusters a tenant may have; 0 means no limit.")
}

// Validate reports the first invalid field, by its YAML name.
func (l *Limits) Validate() error {
	switch {
	case l.IngestionRate < 0:
		return errors.New("ingestion_rate must not be negative")
	case l.IngestionBurstSize < 0:
		return errors.New("ingestion_burst_size must not be negative")
	case l.IngestionRate > 0 && l.IngestionBurstSize == 0:
		return errors.New("ingestion_burst_size must be positive when ingestion_rate is set: no request could pass")
	case l.MaxGlobalSeriesPerUser < 0:
		return errors.New("max_global_series_per_user must not be negative")
	case l.MaxGlobalSeriesPerMetric < 0:
		return errors.New("max_global_series_per_metric must not be negative")
	case l.MaxLabelNamesPerSeries <= 0:
		return errors.New("max_label_names_per_series must be positive")
	case l.MaxLabelNameLength <= 0:
		return errors.New("max_label_name_length must be positive")
	case l.MaxLabelValueLength <= 0:
		return errors.New("max_label_value_length must be positive")
	case l.MaxFetchedSeriesPerQuery < 0:
		return errors.New("max_fetched_series_per_query must not be negative")
	case l.MaxFetchedChunksPerQuery < 0:
		return errors.New("max_fetched_chunks_per_query must not be negative")
	case l.MaxFetchedChunkBytesPerQuery < 0:
		return errors.New("max_fetched_chunk_bytes_per_query must not be negative")
	case l.MaxQueryLength < 0:
		return errors.New("max_query_length must not be negative")
	case l.RulerMaxRuleGroupsPerTenant < 0:
		return errors.New("ruler_max_rule_groups_per_tenant must not be negative")
	case l.RulerMaxRulesPerRuleGroup < 0:
		return errors.New("ruler_max_rules_per_rule_group must not be negative")
	case l.AcceptHASamples && l.HAClusterLabel == "":
		return errors.New("ha_cluster_label must not be empty when accept_ha_samples is on")
	case l.AcceptHASamples && l.HAReplicaLabel == "":
		return errors.New("ha_replica_label must not be empty when accept_ha_samples is on")
	case l.HAClusterLabel != "" && l.HAClusterLabel == l.HAReplicaLabel:
		return errors.New("ha_cluster_label and ha_replica_label must differ")
	case l.HAMaxClusters < 0:
		return errors.New("ha_max_clusters must not be negative")
	}
	return nil
}

// fieldNames are the YAML names of Limits' fields, for the overrides
// file's checks.
var fieldNames = func() map[string]bool {
	names := map[string]bool{}
	t := reflect.TypeFor[Limits]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		names[name] = true
	}
	return names
}()

// Name returns the configuration name of a limit for error messages, e.g.
// "limits.ingestion_rate"; field is a YAML name of Limits.
func Name(field string) string {
	if !fieldNames[field] {
		panic(fmt.Sprintf("limits: no limit %q", field))
	}
	return "limits." + field
}

// maxQueryLength is MaxQueryLength as a time.Duration.
func (l *Limits) maxQueryLength() time.Duration { return time.Duration(l.MaxQueryLength) }
