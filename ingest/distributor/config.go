package distributor

import (
	"errors"
	"flag"
	"time"

	"github.com/prometheus/common/model"
)

// Config is the `distributor:` section of the configuration file.
type Config struct {
	// MaxRequestBodySize bounds a remote-write body, both compressed and
	// decompressed (HTTP 413 above it).
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
	// MaxLabelNamesPerSeries, MaxLabelNameLength and MaxLabelValueLength are
	// deprecated: they moved to the per-tenant `limits:` section (same
	// names). Set here (non-zero), they still apply, as the default of
	// every tenant; the app warns.
	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int `yaml:"max_label_name_length"`
	MaxLabelValueLength    int `yaml:"max_label_value_length"`
	// CreationGracePeriod: samples further than this in the future are rejected.
	CreationGracePeriod model.Duration `yaml:"creation_grace_period"`
	// PastGracePeriod: samples older than this are rejected (0 = no limit).
	PastGracePeriod model.Duration `yaml:"past_grace_period"`
	// RemoteTimeout bounds one Push to the ingesters.
	RemoteTimeout model.Duration `yaml:"remote_timeout"`
	// MaxInflightPushRequests bounds concurrent pushes; more are refused as
	// overload (HTTP 429) instead of queueing without limit. 0 = no limit.
	MaxInflightPushRequests int `yaml:"max_inflight_push_requests"`
	// HATracker deduplicates the samples of HA Prometheus pairs.
	HATracker HATrackerConfig `yaml:"ha_tracker"`
}

// RegisterFlags registers the distributor.* flags and their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxRequestBodySize, "distributor.max-request-body-size", 32<<20, "Maximum size in bytes of a remote-write request body, compressed and decompressed.")
	fs.IntVar(&c.MaxLabelNamesPerSeries, "distributor.max-label-names-per-series", 0, "Deprecated: use -limits.max-label-names-per-series. Non-zero overrides it.")
	fs.IntVar(&c.MaxLabelNameLength, "distributor.max-label-name-length", 0, "Deprecated: use -limits.max-label-name-length. Non-zero overrides it.")
	fs.IntVar(&c.MaxLabelValueLength, "distributor.max-label-value-length", 0, "Deprecated: use -limits.max-label-value-length. Non-zero overrides it.")
	c.CreationGracePeriod = model.Duration(10 * time.Minute)
	fs.Var(&c.CreationGracePeriod, "distributor.creation-grace-period", "Samples further than this in the future are rejected.")
	fs.Var(&c.PastGracePeriod, "distributor.past-grace-period", "Samples older than this are rejected (0 = no limit).")
	c.RemoteTimeout = model.Duration(5 * time.Second)
	fs.Var(&c.RemoteTimeout, "distributor.remote-timeout", "Timeout of a push to the ingesters.")
	fs.IntVar(&c.MaxInflightPushRequests, "distributor.max-inflight-push-requests", 0, "Maximum concurrent pushes; more are refused with 429 (0 = no limit).")
	c.HATracker.RegisterFlags(fs)
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.MaxRequestBodySize <= 0:
		return errors.New("max_request_body_size must be positive")
	case c.MaxLabelNamesPerSeries < 0:
		return errors.New("max_label_names_per_series must not be negative")
	case c.MaxLabelNameLength < 0:
		return errors.New("max_label_name_length must not be negative")
	case c.MaxLabelValueLength < 0:
		return errors.New("max_label_value_length must not be negative")
	case c.CreationGracePeriod <= 0:
		return errors.New("creation_grace_period must be positive")
	case c.PastGracePeriod < 0:
		return errors.New("past_grace_period must not be negative")
	case c.RemoteTimeout <= 0:
		return errors.New("remote_timeout must be positive")
	case c.MaxInflightPushRequests < 0:
		return errors.New("max_inflight_push_requests must not be negative")
	}
	return c.HATracker.Validate()
}
