// Package limits holds the per-tenant limits of Pharos and the runtime
// overrides file that changes them without a restart.
//
// The names and semantics are Mimir's, so that its users find their way:
// the `limits:` section of the configuration gives every tenant's defaults,
// and the runtime configuration file (runtime_config.file) holds
//
//	overrides:
//	  tenant-a: { ingestion_rate: 50000, max_global_series_per_user: 2000000 }
//
// which Overrides re-reads every runtime_config.period. A file that does not
// load (bad YAML, an unknown limit, an invalid value) is logged with its
// file, line and field, pharos_runtime_config_last_reload_successful drops
// to 0, and the overrides loaded before stay in force.
//
// Consumers do not import this package's types in their signatures: each
// defines the few methods it needs as an interface (the distributor its
// rate and label limits, the ingester its series limits, ...), and
// *Overrides implements them all. Every method is safe for concurrent use.
package limits
